//! A PostgreSQL cluster of a test's own (Debian's, `LOOKOUT_PG_BIN`, or the newest under
//! /usr/lib/postgresql) on a fixed loopback port, so a test can stop, pause, fill and start
//! it again under a Lookout that keeps running. Its programs run as the `postgres` user when
//! the tests run as root (PostgreSQL refuses root).

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOOKOUT_PG_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server packages under /usr/lib/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql")
}

/// A running cluster; dropped, it is stopped (resumed first if paused) and removed, and
/// the tmpfs its data sat on unmounted.
pub struct OwnPg {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    bin: PathBuf,
    mounted: Option<PathBuf>,
}

impl OwnPg {
    /// `data_on`: a directory (e.g. a small tmpfs) for the data files; the WAL stays in the
    /// test's directory, so a full data disk fails statements rather than crashing the server.
    pub fn start(name: &str, data_on: Option<&Path>) -> OwnPg {
        let dir =
            std::env::temp_dir().join(format!("lookout-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = match data_on {
            Some(d) => d.join("data"),
            None => dir.join("data"),
        };
        let pg = OwnPg {
            dir: dir.clone(),
            data,
            port: super::free_port(),
            bin: pg_bin(),
            mounted: data_on.map(Path::to_path_buf),
        };
        if is_root() {
            for d in [Some(dir.as_path()), data_on].into_iter().flatten() {
                let ok = Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(d)
                    .status()
                    .unwrap();
                assert!(ok.success(), "chown {}", d.display());
            }
        }
        let out = pg
            .cmd("initdb")
            .arg("-D")
            .arg(&pg.data)
            .arg("--waldir")
            .arg(dir.join("wal"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.pg_ctl_start();
        pg
    }

    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pg_ctl_stop(&self, mode: &str) {
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "30", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The postmaster and every backend (SIGSTOP on the postmaster alone leaves the open
    /// connections answering).
    pub fn signal_all(&self, sig: &str) {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_string();
        let _ = Command::new("pkill")
            .args([&format!("-{sig}"), "-P", &pid])
            .status();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Lookout's pool (the server's settings, with a shorter acquire timeout) over a new
    /// database with the migrations applied.
    pub async fn lookout_pool(&self, acquire: Duration) -> PgPool {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query("CREATE DATABASE lookout")
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(acquire)
            .connect(&self.url("lookout"))
            .await
            .unwrap();
        server::migrate(&pool).await.unwrap();
        pool
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.signal_all("CONT"));
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if let Some(m) = &self.mounted {
            let _ = Command::new("umount").arg(m).status();
            let _ = std::fs::remove_dir_all(m);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
