//! A real Jaeger (v2, built from the Go module proxy by the TEST command:
//! `LOOKOUT_JAEGER_BIN`) with in-memory storage on random loopback ports; killed when
//! dropped. Traces reach it over OTLP/HTTP from the OpenTelemetry SDK
//! (`scripts/lib/trace_shapes.py`).

use super::{free_port, tempdir};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Jaeger {
    /// The query API, `http://127.0.0.1:PORT`.
    pub query: String,
    /// The OTLP/HTTP receiver, `http://127.0.0.1:PORT`.
    pub otlp_http: String,
    child: Child,
    _dir: tempdir::Dir,
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Jaeger {
    pub async fn start() -> Jaeger {
        let bin = std::env::var("LOOKOUT_JAEGER_BIN").expect(
            "LOOKOUT_JAEGER_BIN: Jaeger's binary (the TEST command builds it into ~/.cache/lookout/jaeger-VERSION/)",
        );
        let dir = tempdir::Dir::new("lookout-jaeger");
        let (q, g, oh, og) = (free_port(), free_port(), free_port(), free_port());
        std::fs::write(
            dir.0.join("jaeger.yaml"),
            format!(
                "service:\n  extensions: [jaeger_storage, jaeger_query]\n  pipelines:\n    traces: {{receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}}\n  telemetry: {{metrics: {{level: none}}, logs: {{level: warn}}}}\nextensions:\n  jaeger_query:\n    storage: {{traces: mem}}\n    http: {{endpoint: \"127.0.0.1:{q}\"}}\n    grpc: {{endpoint: \"127.0.0.1:{g}\"}}\n  jaeger_storage:\n    backends: {{mem: {{memory: {{max_traces: 100000}}}}}}\nreceivers:\n  otlp:\n    protocols: {{http: {{endpoint: \"127.0.0.1:{oh}\"}}, grpc: {{endpoint: \"127.0.0.1:{og}\"}}}}\nprocessors:\n  batch: {{timeout: 100ms}}\nexporters:\n  jaeger_storage_exporter: {{trace_storage: mem}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(format!("file:{}", dir.0.join("jaeger.yaml").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let j = Jaeger {
            query: format!("http://127.0.0.1:{q}"),
            otlp_http: format!("http://127.0.0.1:{oh}"),
            child,
            _dir: dir,
        };
        let c = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = c.get(format!("{}/api/services", j.query)).send().await
                && r.status() == 200
            {
                return j;
            }
            assert!(Instant::now() < deadline, "Jaeger did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends the traces of `scripts/lib/trace_shapes.py` (OpenTelemetry SDK, OTLP/HTTP) and
    /// returns their ids by name, once Jaeger serves all of them.
    pub async fn send_shapes(&self) -> serde_json::Value {
        let python = std::env::var("LOOKOUT_GENAI_PYTHON").expect(
            "LOOKOUT_GENAI_PYTHON: a Python with the OpenTelemetry SDK (scripts/lib/common.sh)",
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/lib/trace_shapes.py"
        );
        let out = Command::new(python)
            .arg(script)
            .arg(&self.otlp_http)
            .output()
            .expect("trace_shapes.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ids: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let c = reqwest::Client::new();
        for id in ids.as_object().unwrap().values() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let r = c
                    .get(format!(
                        "{}/api/traces/{}",
                        self.query,
                        id.as_str().unwrap()
                    ))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 200 {
                    break;
                }
                assert!(Instant::now() < deadline, "Jaeger never served trace {id}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Each span was exported as it ended; the batch processor flushes within 100 ms.
        tokio::time::sleep(Duration::from_millis(500)).await;
        ids
    }
}
