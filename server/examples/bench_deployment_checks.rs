//! Benchmark for the evaluation loop of metric items (issue 12: 200 metric items evaluating
//! every 10 s against one Prometheus — does the loop keep up, and does a Prometheus that
//! hangs delay the other items?).
//!
//! Run (needs a PostgreSQL — scripts/test's throwaway one or any DATABASE_URL — and Debian's
//! `prometheus`, or LOOKOUT_PROMETHEUS_BIN):
//!   cargo run --release -p server --example bench_deployment_checks [SECONDS]
//! It creates its own database `lookout_bench_checks`, starts a real Prometheus scraping an
//! in-process exporter every second, opens 20 deployments × 10 metric items (interval 10 s)
//! bound to it and 5 × 10 bound to a "Prometheus" that accepts connections and never
//! answers, runs the real evaluation loop (default settings: 1 s tick, 16 measurements per
//! target, 10 s limit) for SECONDS (default 65), and reports per item: measurements taken,
//! the lag behind schedule at each claim, and the spacing between measurements.

use domain::services::deployments as svc;
#[path = "support/bench.rs"]
#[allow(dead_code)]
mod bench;

use bench::{admin, fresh_database};
use std::time::{Duration, Instant};

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(65);
    let pool = fresh_database("lookout_bench_checks").await;
    let who = admin();
    let meta = domain::RequestMeta::default();

    // An exporter with 10 series, and a real Prometheus scraping it every second.
    let text: String = (0..10)
        .map(|i| format!("bench_error_ratio{{service=\"svc-{i}\"}} 0.000{i}\n"))
        .collect();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let t = text.clone();
            async move { t }
        }),
    );
    let exp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let exp_addr = exp.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(exp, router).await;
    });
    let dir = std::env::temp_dir().join(format!("lookout-bench-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: ['{exp_addr}']\n"),
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let bin = std::env::var("LOOKOUT_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    let mut prom = std::process::Command::new(&bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prom_url = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        let ok = c
            .post(format!("{prom_url}/api/v1/query"))
            .form(&[("query", "bench_error_ratio")])
            .send()
            .await
            .ok()
            .map(|r| async { r.text().await.unwrap_or_default() });
        if let Some(f) = ok
            && f.await.contains("\"value\"")
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Prometheus never saw the exporter"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A Prometheus that hangs: accepts connections, never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hang_url = format!("http://{}", hang.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });

    let mut config = server::config::Config::for_tests("postgres://unused");
    config.secret_key =
        Some(domain::secrets::SecretBox::from_config(&"ab".repeat(32)).expect("key"));
    let access = config.access();
    for (name, url) in [
        ("prom-main", prom_url.as_str()),
        ("prom-hang", hang_url.as_str()),
    ] {
        domain::services::targets::create(
            &pool,
            &who,
            &meta,
            &access,
            domain::services::targets::NewTarget {
                name: name.into(),
                kind: domain::targets::TargetKind::new("prometheus").expect("kind"),
                connection: url.into(),
                username: String::new(),
                secret: None,
                environment: "bench".into(),
                labels: Default::default(),
            },
        )
        .await
        .expect("target");
    }
    // The hanging target's items tolerate inconclusive measurements, so they keep asking it
    // (and keep waiting out their limit) for the whole run.
    for (id, extra) in [
        ("bench-checks", ""),
        ("bench-checks-hang", ", inconclusive_limit: 999"),
    ] {
        let mut yaml = format!("id: {id}\nname: Bench checks\nsections:\n  pre:\n");
        for i in 0..10 {
            yaml.push_str(&format!(
                "    - {{id: m-{i}, kind: metric, text: Metric {i}, target: prometheus, query: 'max(bench_error_ratio{{service=\"svc-{i}\"}})', success: result < 0.01, interval: 10s, count: 1000{extra}}}\n"
            ));
        }
        svc::save_template(&pool, &who, &meta, None, &yaml)
            .await
            .expect("template");
    }
    let policy = domain::deployments::ApprovalPolicy::default();
    for d in 0..25 {
        let target = if d < 20 { "prom-main" } else { "prom-hang" };
        svc::create_deployment(
            &pool,
            &who,
            &policy,
            svc::NewDeployment {
                service: format!("svc-{d}"),
                environment: "bench".into(),
                version: "1".into(),
                template: if d < 20 {
                    "bench-checks"
                } else {
                    "bench-checks-hang"
                }
                .into(),
                template_version: None,
                description: String::new(),
                commit: None,
                pipeline_url: None,
                targets: [("prometheus".to_string(), target.to_string())].into(),
                parameters: Default::default(),
            },
        )
        .await
        .expect("deployment");
    }

    println!("200 items on a real Prometheus, 50 on a hanging one, every 10 s, for {secs} s …");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let h = server::workers::spawn_deployment_checks(
        pool.clone(),
        access,
        domain::services::probe_runs::Runner::default(),
        server::workers::CheckSettings::default(),
        rx,
    )
    .expect("loop");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let ran = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    // Measurements in flight end within their limit (the hanging target's take all of it).
    let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
    let _ = prom.kill();
    let _ = prom.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let rows: Vec<(String, String, i32, f64, String)> = sqlx::query_as(
        "SELECT t.name, m.item_id || '@' || m.deployment_id, m.lag_ms, EXTRACT(EPOCH FROM m.at)::float8, m.phase
         FROM deployment_measurements m
         JOIN deployment_items i USING (deployment_id, item_id)
         JOIN targets t ON t.id = i.target_id
         ORDER BY m.id",
    )
    .fetch_all(&pool)
    .await
    .expect("measurements");
    println!(
        "\nthe loop ran {ran:.1} s; expected per item: {} measurements (one at the start, then every 10 s)",
        (ran / 10.0).floor() as u64 + 1
    );
    println!(
        "{:<10} {:>6} {:>12} {:>12} {:>14} {:>14} {:>15} {:>15}",
        "target",
        "items",
        "measured",
        "per item",
        "lag p50 ms",
        "lag p99 ms",
        "spacing p50 s",
        "spacing max s"
    );
    for target in ["prom-main", "prom-hang"] {
        let mine: Vec<&(String, String, i32, f64, String)> =
            rows.iter().filter(|r| r.0 == target).collect();
        let mut per: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
        for r in &mine {
            per.entry(r.1.as_str()).or_default().push(r.3);
        }
        let mut lags: Vec<f64> = mine.iter().map(|r| r.2 as f64).collect();
        let mut spacing: Vec<f64> = per
            .values()
            .flat_map(|ts| ts.windows(2).map(|w| w[1] - w[0]))
            .collect();
        let counts: Vec<usize> = per.values().map(|v| v.len()).collect();
        println!(
            "{:<10} {:>6} {:>12} {:>12} {:>14.0} {:>14.0} {:>15.2} {:>15.2}",
            target,
            per.len(),
            mine.len(),
            format!(
                "{}–{}",
                counts.iter().min().unwrap_or(&0),
                counts.iter().max().unwrap_or(&0)
            ),
            pct(&mut lags, 0.5),
            pct(&mut lags, 0.99),
            pct(&mut spacing, 0.5),
            spacing.iter().copied().fold(0.0, f64::max),
        );
        let phases: std::collections::BTreeMap<&str, usize> =
            mine.iter().fold(Default::default(), |mut m, r| {
                *m.entry(r.4.as_str()).or_default() += 1;
                m
            });
        println!("           phases: {phases:?}");
    }
}
