//! Helpers for the probe tests: throwaway Redis servers (one per test, so counters and
//! configuration never leak between tests) and a way to run a probe to the end.
#![allow(dead_code)]

use probes::framework::{self, Connection, Finding, RunOutcome};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A redis-server of our own on a random loopback port; killed on drop.
pub struct TestRedis {
    pub port: u16,
    pub child: Child,
    pub dir: std::path::PathBuf,
}

impl TestRedis {
    /// The healthy baseline: a memory limit with an evicting policy.
    pub fn start() -> Self {
        Self::start_with(&["--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("lookout-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        let r = TestRedis { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // A stopped (SIGSTOP) server must be continued to die cleanly.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs the named probe against `url` with `raw` parameters, to the end.
pub async fn run(probe: &str, url: &str, raw: &[(&str, &str)]) -> RunOutcome {
    let p = probes::registry::find(probe).expect("registered probe");
    let prm = framework::validate_params(p.spec(), &params(raw)).expect("valid params");
    let conn = Connection {
        allowed: vec![],
        url: url.into(),
        display: if url.contains("://") {
            probes::redact_url(url)
        } else {
            url.to_string()
        },
    };
    framework::run(p, &conn, &prm, CancellationToken::new(), Arc::new(())).await
}

pub fn codes(o: &RunOutcome) -> Vec<&str> {
    o.findings.iter().map(|f| f.code.as_str()).collect()
}

pub fn finding<'a>(o: &'a RunOutcome, code: &str) -> &'a Finding {
    o.findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code} finding; got {:?}", codes(o)))
}

pub fn fact<'a>(f: &'a Finding, name: &str) -> &'a str {
    f.facts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no fact {name} in {}: {:?}", f.code, f.facts))
}

/// Every cell of every evidence table, for "contains" checks.
pub fn cells(f: &Finding) -> Vec<String> {
    f.tables
        .iter()
        .flat_map(|t| t.rows.iter().flatten().cloned())
        .collect()
}

/// Warning-or-worse codes of a run.
pub fn problems(o: &RunOutcome) -> Vec<&str> {
    o.findings
        .iter()
        .filter(|f| f.severity != framework::Severity::Info)
        .map(|f| f.code.as_str())
        .collect()
}
