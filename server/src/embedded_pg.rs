//! The embedded default: with no DATABASE_URL, Lookout runs a private PostgreSQL cluster
//! under LOOKOUT_DATA_DIR (default `.data/`) using the system's initdb and pg_ctl. The
//! cluster is created once, reused and restarted on later runs, listens on loopback only
//! (no Unix socket, so long paths don't matter), and requires a generated password kept in
//! `<data dir>/postgres.password` (mode 0600). PostgreSQL refuses to run as root, so when
//! Lookout runs as root the cluster belongs to the `postgres` system user.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct EmbeddedPostgres {
    cluster: PathBuf,
    bindir: PathBuf,
    run_as: Option<String>,
    pub url: String,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The newest /usr/lib/postgresql/<major>/bin that has initdb, unless configured.
pub fn find_bindir(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = configured {
        return if dir.join("initdb").exists() {
            Ok(dir.to_path_buf())
        } else {
            Err(format!("LOOKOUT_PG_BINDIR: no initdb in {}", dir.display()))
        };
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, b)| b).ok_or_else(|| {
        "DATABASE_URL is unset and no PostgreSQL server was found under /usr/lib/postgresql \
         (install the `postgresql` package, set LOOKOUT_PG_BINDIR, or set DATABASE_URL)"
            .to_string()
    })
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port for PostgreSQL: {e}"))
}

impl EmbeddedPostgres {
    fn cmd(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut c = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(path);
                c
            }
            None => Command::new(path),
        };
        // Own process group: Ctrl-C in the terminal reaches Lookout, which then stops
        // PostgreSQL after in-flight requests finish, instead of PostgreSQL dying first.
        c.process_group(0);
        c
    }

    fn run(&self, mut c: Command, what: &str) -> Result<Output, String> {
        let out = c.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Creates (first run) or reuses the cluster under `data_dir` and starts it.
    pub fn start(data_dir: &Path, bindir: Option<&Path>) -> Result<Self, String> {
        let bindir = find_bindir(bindir)?;
        fs::create_dir_all(data_dir).map_err(|e| {
            format!(
                "LOOKOUT_DATA_DIR: cannot create {}: {e}",
                data_dir.display()
            )
        })?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| format!("LOOKOUT_DATA_DIR: {}: {e}", data_dir.display()))?;
        let cluster = data_dir.join("postgres");
        let pwfile = data_dir.join("postgres.password");
        let run_as = is_root().then(|| "postgres".to_string());
        let mut pg = EmbeddedPostgres {
            cluster: cluster.clone(),
            bindir,
            run_as,
            url: String::new(),
        };

        if let Some(user) = &pg.run_as {
            // The cluster directory must belong to the postgres user, and that user must be
            // able to reach it through every parent directory.
            let probe = Command::new("runuser")
                .args(["-u", user, "--", "test", "-x"])
                .arg(&data_dir)
                .status()
                .map_err(|e| format!("runuser: {e}"))?;
            if !probe.success() {
                return Err(format!(
                    "running as root, the private PostgreSQL runs as the `{user}` user, which \
                     cannot reach {} (a parent directory is not searchable). Set \
                     LOOKOUT_DATA_DIR to a directory it can reach (e.g. /var/lib/lookout), run \
                     Lookout as a normal user, or set DATABASE_URL.",
                    data_dir.display()
                ));
            }
        }

        if !cluster.join("PG_VERSION").exists() {
            pg.init(&data_dir, &pwfile)?;
        }
        let password = fs::read_to_string(&pwfile)
            .map_err(|e| format!("cannot read {}: {e}", pwfile.display()))?
            .trim()
            .to_string();

        let port = match pg.running_port() {
            Some(port) => {
                tracing::info!(
                    port,
                    "reusing the private PostgreSQL that is already running"
                );
                port
            }
            None => {
                let port = free_port()?;
                let log = data_dir.join("postgres.log");
                let mut c = pg.cmd("pg_ctl");
                c.arg("-D")
                    .arg(&cluster)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!("-p {port}"))
                    .arg("start");
                pg.run(c, "pg_ctl start").map_err(|e| {
                    format!("{e}\n(see {} for PostgreSQL's own log)", log.display())
                })?;
                port
            }
        };
        pg.url = format!("postgres://lookout:{password}@127.0.0.1:{port}/lookout");
        Ok(pg)
    }

    fn init(&self, data_dir: &Path, pwfile: &Path) -> Result<(), String> {
        // (write_private: the files never exist with wider permissions, not even briefly.)
        tracing::info!(cluster = %self.cluster.display(), "creating the private PostgreSQL cluster");
        let password = domain::services::passwords::random_secret(18);
        write_private(pwfile, &format!("{password}\n"))?;
        fs::create_dir_all(&self.cluster).map_err(|e| format!("mkdir: {e}"))?;
        fs::set_permissions(&self.cluster, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod: {e}"))?;
        // initdb reads the password file as the cluster owner: give it a private copy.
        let owner_pwfile = data_dir.join(".initdb-password");
        write_private(&owner_pwfile, &format!("{password}\n"))?;
        if let Some(user) = &self.run_as {
            for p in [
                &self.cluster,
                &owner_pwfile.to_path_buf(),
                &data_dir.to_path_buf(),
            ] {
                let st = Command::new("chown")
                    .arg(format!("{user}:"))
                    .arg(p)
                    .status()
                    .map_err(|e| format!("chown: {e}"))?;
                if !st.success() {
                    return Err(format!("chown {user} {} failed", p.display()));
                }
            }
        }
        let mut c = self.cmd("initdb");
        c.arg("-D")
            .arg(&self.cluster)
            .args([
                "-U",
                "lookout",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", owner_pwfile.display()));
        let res = self.run(c, "initdb");
        let _ = fs::remove_file(&owner_pwfile);
        res?;
        // Loopback TCP only; no Unix socket.
        let conf = self.cluster.join("postgresql.conf");
        let mut text =
            fs::read_to_string(&conf).map_err(|e| format!("read {}: {e}", conf.display()))?;
        text.push_str(
            "\n# Lookout's private cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n",
        );
        fs::write(&conf, text).map_err(|e| format!("write {}: {e}", conf.display()))?;

        // Create the `lookout` database with a single-user backend (no server needed).
        let mut c = self.cmd("postgres");
        c.args(["--single", "-D"])
            .arg(&self.cluster)
            .arg("postgres")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("postgres --single: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(b"CREATE DATABASE lookout;\n")
                .map_err(|e| format!("postgres --single: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("postgres --single: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "creating the lookout database failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// The port of a postmaster already running on this cluster (left by a killed run).
    fn running_port(&self) -> Option<u16> {
        let mut c = self.cmd("pg_ctl");
        c.arg("-D").arg(&self.cluster).arg("status");
        let running = c.output().ok()?.status.success();
        if !running {
            return None;
        }
        // postmaster.pid: line 4 is the port.
        let pid = fs::read_to_string(self.cluster.join("postmaster.pid")).ok()?;
        pid.lines().nth(3)?.trim().parse().ok()
    }

    /// Stops the cluster (fast shutdown: open sessions are closed, data is safe).
    pub fn stop(&self) {
        let mut c = self.cmd("pg_ctl");
        c.arg("-D")
            .arg(&self.cluster)
            .args(["-m", "fast", "-w", "-t", "30", "stop"]);
        match self.run(c, "pg_ctl stop") {
            Ok(_) => tracing::info!("stopped the private PostgreSQL"),
            Err(e) => tracing::warn!(error = %e, "could not stop the private PostgreSQL"),
        }
    }
}

/// Writes a secret to a new file that is created with mode 0600 (never readable by others,
/// not even between create and chmod); an existing file is replaced.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod write_private_tests {
    use super::*;

    #[test]
    fn secret_files_are_created_private() {
        let dir = std::env::temp_dir().join(format!("lookout-wp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pw");
        fs::write(&p, "old, world-readable").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, "s3cret\n").unwrap();
        let meta = fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&p).unwrap(), "s3cret\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
