//! A real RabbitMQ (Debian's `rabbitmq-server` with the management plugin, or the script
//! named by `LOOKOUT_RABBITMQ_SERVER`): a throwaway node on random loopback ports with its
//! own Erlang port mapper, statistics collected and kept at one-second resolution (the
//! default is five); stopped (node and epmd) when
//! dropped.

use super::{free_port, tempdir};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rabbit {
    /// The management API, `http://127.0.0.1:PORT`.
    pub api: String,
    /// `amqp://guest:guest@127.0.0.1:PORT`
    pub amqp: String,
    child: Child,
    env: Vec<(String, String)>,
    epmd_port: u16,
    _dir: tempdir::Dir,
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        // The server script runs erl in its process group (started as its leader): stop the
        // whole group, then the node's own port mapper.
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // epmd refuses to stop while it still lists the node: it notices the node's death
        // within moments.
        for _ in 0..50 {
            let out = Command::new("epmd")
                .args(["-port", &self.epmd_port.to_string(), "-kill"])
                .output();
            match out {
                Ok(o) if String::from_utf8_lossy(&o.stdout).contains("Killed") => break,
                Err(_) => break,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Rabbit {
    pub async fn start() -> Rabbit {
        use std::os::unix::process::CommandExt;
        let server = std::env::var("LOOKOUT_RABBITMQ_SERVER")
            .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".into());
        let dir = tempdir::Dir::new("lookout-rabbitmq");
        let (amqp, api, dist, epmd) = (free_port(), free_port(), free_port(), free_port());
        std::fs::write(dir.0.join("enabled_plugins"), "[rabbitmq_management].\n").unwrap();
        std::fs::write(
            dir.0.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp}\nmanagement.tcp.port = {api}\nmanagement.tcp.ip = 127.0.0.1\ncollect_statistics_interval = 1000\nmanagement.sample_retention_policies.global.minute = 1\nmanagement.sample_retention_policies.basic.minute = 1\nmanagement.sample_retention_policies.detailed.10 = 1\nlog.console = false\nlog.file.level = warning\n"
            ),
        )
        .unwrap();
        let d = dir.0.display().to_string();
        let env: Vec<(String, String)> = [
            ("RABBITMQ_NODENAME", format!("lookout{amqp}@localhost")),
            ("RABBITMQ_DIST_PORT", dist.to_string()),
            ("ERL_EPMD_PORT", epmd.to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{d}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{d}/log")),
            ("RABBITMQ_CONFIG_FILE", format!("{d}/rabbitmq.conf")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{d}/enabled_plugins"),
            ),
            (
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                format!("{d}/advanced.config"),
            ),
            ("RABBITMQ_PID_FILE", format!("{d}/pid")),
            ("HOME", d.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let child = Command::new(&server)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {server} (apt install rabbitmq-server): {e}"));
        let r = Rabbit {
            api: format!("http://127.0.0.1:{api}"),
            amqp: format!("amqp://guest:guest@127.0.0.1:{amqp}"),
            child,
            env,
            epmd_port: epmd,
            _dir: dir,
        };
        let c = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = c
                .get(format!("{}/api/overview", r.api))
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                && res.status() == 200
            {
                return r;
            }
            assert!(Instant::now() < deadline, "RabbitMQ did not start");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `rabbitmqctl ARGS` against this node.
    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["-n", &self.env[0].1])
            .args(args)
            .output()
            .expect("rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
