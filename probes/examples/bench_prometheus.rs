//! Benchmark of the Prometheus probe (issue 16: "finishes < 5 s against a Prometheus holding
//! 24 h of 1,000 series; report how many range queries"). Writes 24 h of 1,000 series of one
//! service (`job="checkout"`: 10 instances with memory, event-loop lag, an HTTP duration
//! histogram by route and status, opossum breaker counters, and other process metrics) at a
//! 30 s interval as OpenMetrics, turns it into TSDB blocks with `promtool tsdb
//! create-blocks-from openmetrics`, starts a real Prometheus on the blocks, and runs the
//! probe against it with a 1 h and a 24 h window, several times each.
//!
//! `cargo run --release -p probes --example bench_prometheus [runs]`
//! (needs Debian's `prometheus`, which brings `promtool`).

use probes::framework::{self, Connection, Probe};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const INTERVAL: i64 = 30;
const HOURS: i64 = 24;
const INSTANCES: usize = 10;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("lookout-bench-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // The newest sample a little in the past, so the blocks end before "now".
    let end = now - 60;
    let start = end - HOURS * 3600;

    let t = Instant::now();
    let om = dir.join("data.om");
    let series = write_openmetrics(&om, start, end);
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let data = dir.join("data");
    let status = Command::new("promtool")
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
        ])
        .arg(&om)
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("promtool (apt install prometheus)");
    assert!(status.success(), "promtool failed");
    let _ = std::fs::remove_file(&om);
    let blocks_s = t.elapsed().as_secs_f64();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1m\n",
    )
    .expect("config");
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=30d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let c = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = c.get(format!("{url}/-/ready")).send().await
                && r.status() == 200
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The blocks are loaded: count the series Prometheus holds for the service.
        let v: serde_json::Value = c
            .post(format!("{url}/api/v1/query"))
            .form(&[("query", "count({job=\"checkout\"})")])
            .send()
            .await
            .expect("query")
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        println!(
            "Prometheus holds {} series of job=\"checkout\" ({series} written), {HOURS} h at {INTERVAL} s; generated in {gen_s:.1} s, blocks built in {blocks_s:.1} s",
            v["data"]["result"][0]["value"][1].as_str().unwrap_or("?")
        );
        for window in ["1h", "24h"] {
            let mut times = vec![];
            let mut last = None;
            for _ in 0..runs {
                let probe = probes::prometheus::probe::PrometheusProbe;
                let mut raw = BTreeMap::new();
                raw.insert("selector".to_string(), "job=\"checkout\"".to_string());
                raw.insert("window".to_string(), window.to_string());
                raw.insert("memory_limit_bytes".to_string(), (2u64 << 30).to_string());
                let params = framework::validate_params(probe.spec(), &raw).expect("params");
                let conn = Connection {
                    url: url.clone(),
                    display: url.clone(),
                    allowed: vec![],
                };
                let t = Instant::now();
                let out = framework::run(&probe, &conn, &params, CancellationToken::new(), Arc::new(())).await;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(out.is_ok(), "{:?}", out.result);
                last = Some(out);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            let out = last.expect("a run");
            let codes: Vec<String> = out
                .findings
                .iter()
                .map(|f| f.code.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let range = out
                .findings
                .iter()
                .find(|f| f.code == "PROM_SUMMARY")
                .and_then(|f| f.facts.iter().find(|(n, _)| n == "range queries"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if std::env::var("BENCH_DEBUG").is_ok() {
                for f in &out.findings {
                    println!("{} {} {:?}", f.code, f.title, f.tables.first().map(|t| &t.rows));
                }
            }
            println!(
                "window {window}: {runs} runs, median {:.0} ms, max {:.0} ms; {} queries ({range} range queries); findings: {}",
                times[times.len() / 2],
                times[times.len() - 1],
                out.commands,
                codes.join(", ")
            );
        }
    });
    let _ = prom.kill();
    let _ = prom.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// 24 h of the service's series as OpenMetrics; returns how many series.
fn write_openmetrics(path: &std::path::Path, start: i64, end: i64) -> usize {
    let f = std::fs::File::create(path).expect("file");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let steps = (end - start) / INTERVAL;
    let mut series = 0;
    let inst = |i: usize| format!("10.0.0.{}:9464", i + 1);
    // Memory: instance 0 leaks 40 KiB/s from 150 MiB, restarting every 6 h; the rest flat
    // with noise.
    writeln!(w, "# TYPE process_resident_memory_bytes gauge").ok();
    for i in 0..INSTANCES {
        for s in 0..=steps {
            let t = start + s * INTERVAL;
            let base = 150.0 * 1048576.0;
            let v = if i == 0 {
                base + 40.0 * 1024.0 * ((t - start) % (6 * 3600)) as f64
            } else {
                base + ((s * 7919 + i as i64 * 104729) % 997) as f64 * 4096.0
            };
            writeln!(
                w,
                "process_resident_memory_bytes{{job=\"checkout\",instance=\"{}\"}} {v} {t}",
                inst(i)
            )
            .ok();
        }
        series += 1;
    }
    writeln!(w, "# TYPE nodejs_eventloop_lag_seconds gauge").ok();
    for i in 0..INSTANCES {
        for s in 0..=steps {
            let t = start + s * INTERVAL;
            let v = 0.002 + ((s + i as i64) % 13) as f64 * 0.001;
            writeln!(
                w,
                "nodejs_eventloop_lag_seconds{{job=\"checkout\",instance=\"{}\"}} {v} {t}",
                inst(i)
            )
            .ok();
        }
        series += 1;
    }
    // The HTTP histogram: 3 routes × 2 statuses × (10 buckets + +Inf + sum + count).
    let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    writeln!(w, "# TYPE http_request_duration_seconds histogram").ok();
    for i in 0..INSTANCES {
        for route in ["/cart", "/checkout", "/pay"] {
            for (code, rps) in [("200", 9.0), ("500", 0.3)] {
                let labels = format!(
                    "job=\"checkout\",instance=\"{}\",route=\"{route}\",status_code=\"{code}\"",
                    inst(i)
                );
                // Every request takes 30–80 ms: cumulative counts per bucket.
                let share = |le: f64| {
                    if le >= 0.1 {
                        1.0
                    } else if le >= 0.05 {
                        0.6
                    } else {
                        0.0
                    }
                };
                for le in buckets
                    .iter()
                    .map(|b| format!("{b}"))
                    .chain(["+Inf".to_string()])
                {
                    let lev: f64 = le.parse().unwrap_or(f64::INFINITY);
                    for s in 0..=steps {
                        let t = start + s * INTERVAL;
                        let n = (rps * (s * INTERVAL) as f64 * share(lev)).floor();
                        writeln!(
                            w,
                            "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n} {t}"
                        )
                        .ok();
                    }
                    series += 1;
                }
                for (suffix, per) in [("count", 1.0), ("sum", 0.05)] {
                    for s in 0..=steps {
                        let t = start + s * INTERVAL;
                        let v = rps * (s * INTERVAL) as f64 * per;
                        writeln!(
                            w,
                            "http_request_duration_seconds_{suffix}{{{labels}}} {v} {t}"
                        )
                        .ok();
                    }
                    series += 1;
                }
            }
        }
    }
    // opossum: a breaker per instance, closed, a few failures.
    // opossum-prometheus exports `circuit` without the `_total` suffix: an "unknown" family.
    writeln!(w, "# TYPE circuit unknown").ok();
    for i in 0..INSTANCES {
        for (event, per_s) in [
            ("fire", 5.0),
            ("success", 4.9),
            ("failure", 0.1),
            ("fallback", 0.1),
            ("open", 0.0),
            ("close", 0.0),
        ] {
            for s in 0..=steps {
                let t = start + s * INTERVAL;
                let v = (per_s * (s * INTERVAL) as f64).floor();
                writeln!(w, "circuit{{job=\"checkout\",instance=\"{}\",name=\"payments\",event=\"{event}\"}} {v} {t}", inst(i)).ok();
            }
            series += 1;
        }
    }
    // Other process metrics up to 1,000 series.
    writeln!(w, "# TYPE app_misc gauge").ok();
    let mut k = 0;
    while series < 1000 {
        for s in 0..=steps {
            let t = start + s * INTERVAL;
            writeln!(
                w,
                "app_misc{{job=\"checkout\",instance=\"{}\",k=\"{k}\"}} {} {t}",
                inst(k % INSTANCES),
                (s % 100) as f64
            )
            .ok();
        }
        series += 1;
        k += 1;
    }
    writeln!(w, "# EOF").ok();
    w.flush().expect("write");
    series
}
