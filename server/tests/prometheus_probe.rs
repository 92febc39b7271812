//! The Prometheus probe (issue 16) against a **real Prometheus** scraping **real Node.js
//! services** (`end2end/fixtures/service.js`: prom-client's default metrics, an HTTP server
//! with a chosen error rate and latency timed by a histogram, memory that grows at a chosen
//! rate, an opossum circuit breaker around a dependency that refuses connections, counted by
//! opossum-prometheus). The findings' numbers are compared with the ones the services were
//! told to produce; a JVM service's resilience4j and HikariCP metrics; cAdvisor's collector over
//! two cgroups of the test's own (CPU throttling under a quota, memory growth projected to the
//! container's own limit). Also: a worker restarted mid-window (a sawtooth), a selector that matches
//! nothing, bad parameters refused (422) before anything runs, Prometheus down and hanging.

mod common;

use common::{Prometheus, TestApp, fact, free_port, run_findings as findings};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fixture service, killed when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn service(port: u16, vars: &[(&str, &str)]) -> Service {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../end2end/fixtures/service.js"
    );
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("node {script}: {e} (npm ci in end2end/)"));
    Service { child, port }
}

async fn target(app: &TestApp, admin: &str, name: &str, url: &str) -> i64 {
    let (s, t) = app
        .post(
            admin,
            "/api/v1/targets",
            json!({"name": name, "kind": "prometheus", "connection": url, "environment": "test"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_i64().unwrap()
}

/// "12.3 %" → 0.123
fn pct(s: &str) -> f64 {
    s.trim_end_matches(" %").trim().parse::<f64>().unwrap() / 100.0
}

/// "+14.1 GiB/h (4194304 bytes/s)" → 4194304
fn bytes_per_s(s: &str) -> f64 {
    let inner = s.split('(').nth(1).unwrap();
    inner.split_whitespace().next().unwrap().parse().unwrap()
}

async fn query(prom: &Prometheus, q: &str) -> f64 {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/query", prom.url))
        .form(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("NaN")
        .parse()
        .unwrap()
}

async fn run(app: &TestApp, token: &str, t: i64, params: Value, incident: Option<&str>) -> Value {
    common::probe_run(app, token, t, "prometheus", params, incident).await
}

/// OpenMetrics for the same window a day ago (from 25 h to 23 h back, every 15 s): 20
/// requests/s of which 1 % answered 500, all in the (50 ms, 100 ms] bucket.
fn yesterday() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (from, to) = (now - 25 * 3600, now - 23 * 3600);
    let buckets = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
    ];
    let mut out = String::from("# TYPE http_request_duration_seconds histogram\n");
    for (code, rps) in [("200", 19.8), ("500", 0.2)] {
        let labels = format!(
            "job=\"checkout\",instance=\"yesterday:9464\",method=\"GET\",route=\"/work\",status_code=\"{code}\""
        );
        let count = |t: i64| (rps * (t - from) as f64).round();
        for le in buckets {
            let share = if ["0.005", "0.01", "0.025", "0.05"].contains(&le) {
                0.0
            } else {
                1.0
            };
            for t in (from..=to).step_by(15) {
                out.push_str(&format!(
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {} {t}\n",
                    count(t) * share
                ));
            }
        }
        for t in (from..=to).step_by(15) {
            out.push_str(&format!(
                "http_request_duration_seconds_count{{{labels}}} {} {t}\n",
                count(t)
            ));
        }
        for t in (from..=to).step_by(15) {
            out.push_str(&format!(
                "http_request_duration_seconds_sum{{{labels}}} {} {t}\n",
                count(t) * 0.075
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

#[sqlx::test(migrations = "../migrations")]
async fn the_probe_reads_leaks_errors_latency_and_breakers_off_real_services(pool: PgPool) {
    // checkout: 25 % of requests fail, each takes 300 ms, memory +4 MiB/s, the payments
    // breaker trips against a refused dependency. worker: memory +6 MiB/s, restarted once.
    let dead = free_port();
    let checkout_port = free_port();
    let checkout = service(
        checkout_port,
        &[
            ("ERROR_RATE", "0.25"),
            ("LATENCY_MS", "300"),
            ("LOAD_RPS", "20"),
            ("GROW_MIB_PER_S", "4"),
            ("BREAKER", "1"),
            ("DEPENDENCY_PORT", &dead.to_string()),
        ],
    );
    let worker_port = free_port();
    // The worker also holds its event loop for 400 ms once a second.
    let worker_vars = [
        ("GROW_MIB_PER_S", "6"),
        ("LOAD_RPS", "0"),
        ("BLOCK_MS", "400"),
    ];
    let mut worker = service(worker_port, &worker_vars);
    // Yesterday, checkout was healthy: 1 % errors, every request 50–100 ms (backfilled
    // into Prometheus, as if it had scraped it).
    let prom = Prometheus::start_with_history(
        &[
            ("checkout", &[format!("127.0.0.1:{}", checkout.port)]),
            ("worker", &[format!("127.0.0.1:{worker_port}")]),
        ],
        Some(&yesterday()),
    )
    .await;
    prom.wait_for("process_resident_memory_bytes{job=\"worker\"}")
        .await;
    prom.wait_for("circuit{job=\"checkout\",event=\"open\"}")
        .await;
    let started = Instant::now();
    // The worker restarts once, half-way through the window.
    tokio::time::sleep(Duration::from_secs(17)).await;
    drop(worker);
    worker = service(worker_port, &worker_vars);
    let left = Duration::from_secs(36).saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;

    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "prom", &prom.url).await;
    let (s, inc) = app
        .post(
            &responder,
            "/api/v1/incidents",
            json!({"title": "checkout failing", "severity": "SEV2", "services": ["checkout"], "environment": "test"}),
        )
        .await;
    assert_eq!(s, 201, "{inc}");
    let key = inc["key"].as_str().unwrap().to_string();

    let d = run(
        &app,
        &responder,
        t,
        json!({"selector": "job=\"checkout\"", "window": "30s", "p99_ms": "250",
               "memory_limit_bytes": (2u64 << 30).to_string()}),
        Some(&key),
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");

    // Memory: +4 MiB/s (what the service was told), a steady line, the limit minutes away.
    let mem = findings(&d, "PROM_MEMORY_GROWTH");
    assert_eq!(mem.len(), 1, "{d}");
    let slope = bytes_per_s(&fact(mem[0], "slope"));
    let want = 4.0 * 1024.0 * 1024.0;
    assert!(
        (slope - want).abs() / want < 0.25,
        "slope {slope} B/s, want {want}"
    );
    assert!(fact(mem[0], "fit (R²)").parse::<f64>().unwrap() >= 0.9);
    assert_eq!(
        mem[0]["severity"], "critical",
        "2 GiB is minutes away at 4 MiB/s"
    );
    assert!(fact(mem[0], "time to limit").contains("min"), "{}", mem[0]);
    assert!(
        mem[0]["evidence"]["command"]
            .as_str()
            .unwrap()
            .contains("process_resident_memory_bytes{job=\"checkout\"}")
    );
    let chart = &mem[0]["evidence"]["charts"][0];
    assert_eq!(chart["unit"], "bytes");
    assert!(chart["series"][0]["points"].as_array().unwrap().len() >= 20);

    // Errors: exactly 25 % of requests fail; the same ratio Prometheus computes itself.
    let err = findings(&d, "PROM_ERROR_RATE");
    assert_eq!(err.len(), 1, "{d}");
    assert_eq!(
        err[0]["severity"], "critical",
        "25 % is over 4 × the 5 % threshold"
    );
    let ratio = pct(&fact(err[0], "error ratio"));
    assert!((ratio - 0.25).abs() < 0.03, "error ratio {ratio}");
    let direct = query(
        &prom,
        "sum(rate(http_request_duration_seconds_count{job=\"checkout\",status_code=\"500\"}[30s])) / sum(rate(http_request_duration_seconds_count{job=\"checkout\"}[30s]))",
    )
    .await;
    assert!((ratio - direct).abs() < 0.03, "{ratio} vs {direct}");
    // …compared with yesterday's 1 % (backfilled), and no data a week ago.
    assert_eq!(fact(err[0], "a day earlier"), "1.0 %", "{}", err[0]);
    assert_eq!(fact(err[0], "a week earlier"), "no data");
    let rps: f64 = fact(err[0], "requests/s").parse().unwrap();
    assert!((14.0..=22.0).contains(&rps), "requests/s {rps}");
    assert!(
        !err[0]["evidence"]["charts"][0]["series"][0]["points"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Latency: every request takes 300 ms, in the (250 ms, 500 ms] bucket.
    let lat = findings(&d, "PROM_LATENCY");
    assert_eq!(lat.len(), 1, "{d}");
    let p99 = fact(lat[0], "p99");
    let p99_ms: f64 = p99.trim_end_matches(" ms").parse().unwrap();
    assert!((250.0..=500.0).contains(&p99_ms), "p99 {p99}");
    // Yesterday's p99 was in the (50 ms, 100 ms] bucket.
    let day = fact(lat[0], "p99 a day earlier");
    let day_ms: f64 = day.trim_end_matches(" ms").parse().unwrap();
    assert!((50.0..=100.0).contains(&day_ms), "p99 a day earlier {day}");
    assert_eq!(lat[0]["severity"], "warning");

    // The breaker: open, with its rejected calls and fallbacks counted.
    let brk = findings(&d, "PROM_BREAKER_OPEN");
    assert_eq!(brk.len(), 1, "{d}");
    assert_eq!(brk[0]["severity"], "critical");
    assert_eq!(fact(brk[0], "breaker"), "payments");
    assert_eq!(fact(brk[0], "state"), "open");
    assert!(
        fact(brk[0], "rejected (short-circuited)")
            .parse::<f64>()
            .unwrap()
            > 50.0
    );
    assert!(fact(brk[0], "fallbacks").parse::<f64>().unwrap() > 50.0);
    // It opened before the 30 s window: said so, not guessed.
    assert_eq!(fact(brk[0], "last opened"), "before the window (30s)");

    // The summary: how many queries (bounded), and what it saw.
    let sum = findings(&d, "PROM_SUMMARY");
    assert_eq!(sum.len(), 1);
    let queries: u64 = fact(sum[0], "queries").parse().unwrap();
    assert!((10..=20).contains(&queries), "{queries} queries");
    assert!(findings(&d, "PROM_NO_SERIES").is_empty(), "{d}");

    // On the incident, with their source.
    let (_, inc) = app
        .get(&responder, &format!("/api/v1/incidents/{key}"))
        .await;
    let on_incident: Vec<&str> = inc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for code in [
        "PROM_MEMORY_GROWTH",
        "PROM_ERROR_RATE",
        "PROM_LATENCY",
        "PROM_BREAKER_OPEN",
    ] {
        assert!(on_incident.contains(&code), "{code} not on the incident");
    }

    // Each condition is one copy away from a deployment checklist: the finding's copyable
    // block is a metric item; the template takes all four, and each item's query, asked of
    // the same Prometheus, fails its success condition as the finding said.
    let mut yaml = String::from("id: checkout-gate\nname: Checkout gate\nsections:\n  pre:\n");
    for f in [mem[0], err[0], lat[0], brk[0]] {
        let item = f["commands"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str())
            .find(|c| c.contains("kind: metric"))
            .unwrap_or_else(|| panic!("no checklist item in {f}"));
        for line in item.lines() {
            yaml.push_str(&format!("    {line}\n"));
        }
        let field = |name: &str| -> String {
            let v = item
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
                .unwrap()
                .to_string();
            v.strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace("''", "'"))
                .unwrap_or(v)
        };
        let value = query(&prom, &field("query")).await;
        let cond = probes::prometheus::condition::Condition::parse(&field("success")).unwrap();
        assert_eq!(
            cond.eval(&probes::prometheus::QueryValue::Scalar(value)),
            probes::prometheus::condition::Truth::False,
            "{}: {} = {value} should fail {}",
            f["code"],
            field("query"),
            field("success")
        );
    }
    let approver = app.create_token("tpl", Role::Approver).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(yaml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{yaml}\n{}", res.text().await.unwrap());

    // "Add to checklist" (one click on the finding's page): the item goes at the end of the
    // chosen section of an existing template as a new version, the author's YAML (comments,
    // the Prometheus binding's own name) kept; a second add is refused, and so are the roles
    // that may not edit templates — nothing is written by a refusal.
    let authored = "id: checkout-release\nname: Checkout release  # ours\nversion: 1\nsections:\n  during:\n    - id: errors-low\n      kind: metric\n      text: Errors low\n      target: metrics\n      query: sum(rate(http_request_duration_seconds_count{job=\"checkout\"}[1m]))\n      success: result >= 0\n  post:\n    # by hand\n    - id: smoke\n      kind: manual\n      text: Smoke test\n";
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(authored)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let item = err[0]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| domain::deployments::is_suggested_item(c))
        .unwrap()
        .to_string();
    let add = |token: String, item: String| {
        let app = &app;
        async move {
            app.plain()
                .post(app.url("/api/fn/deployments/template-add-item"))
                .bearer_auth(&token)
                .header("accept", "application/json")
                .form(&[
                    ("template_id", "checkout-release"),
                    ("section", "post"),
                    ("item", item.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let offered = |token: String| {
        let app = &app;
        async move {
            let v: Value = app
                .plain()
                .post(app.url("/api/fn/deployments/templates-to-add-to"))
                .bearer_auth(&token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v.as_array().unwrap().len()
        }
    };
    assert!(
        offered(approver.clone()).await >= 2,
        "the form lists the templates"
    );
    for role in [Role::Viewer, Role::Responder] {
        let tok = app.create_token("nope", role).await;
        assert_eq!(offered(tok.clone()).await, 0, "no form for {role:?}");
        assert_eq!(add(tok, item.clone()).await.status(), 403);
    }
    let res = add(approver.clone(), item.clone()).await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let (s, tpl) = app
        .get(&approver, "/api/v1/deployment-templates/checkout-release")
        .await;
    assert_eq!(s, 200);
    assert_eq!(tpl["version"], 2, "{tpl}");
    let y = tpl["yaml"].as_str().unwrap();
    assert!(
        y.starts_with("id: checkout-release\nname: Checkout release  # ours\nversion: 2\n"),
        "{y}"
    );
    assert!(y.contains("    # by hand\n    - id: smoke\n"), "{y}");
    let post = tpl["spec"]["sections"]["post"].as_array().unwrap();
    assert_eq!(post.len(), 2, "{tpl}");
    assert_eq!(post[1]["kind"], "metric");
    assert_eq!(
        post[1]["metric"]["target"], "metrics",
        "the template's binding"
    );
    assert_eq!(post[1]["id"], "error-ratio-checkout", "{tpl}");
    let again = add(approver.clone(), item.clone()).await;
    assert_eq!(again.status(), 422);
    assert!(again.text().await.unwrap().contains("already has an item"));
    let bad = add(
        approver.clone(),
        "- id: x\n  kind: metric\n  text: x\n  target: p\n  query: up\n  success: bogus".into(),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let huge = format!("{item}\n  help: '{}'", "x".repeat(9_000));
    assert_eq!(add(approver.clone(), huge).await.status(), 422);
    let (_, versions) = app
        .get(
            &approver,
            "/api/v1/deployment-templates/checkout-release/versions",
        )
        .await;
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    // Two adds at once: each lands as its own version, or one is refused (409) — never one
    // version that lost the other's item.
    let suggested = |f: &Value| -> String {
        f["commands"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str())
            .find(|c| domain::deployments::is_suggested_item(c))
            .unwrap()
            .to_string()
    };
    let (r1, r2) = tokio::join!(
        add(approver.clone(), suggested(lat[0])),
        add(approver.clone(), suggested(brk[0]))
    );
    let ok: Vec<bool> = [r1.status(), r2.status()]
        .iter()
        .map(|s| {
            assert!(s.is_success() || *s == 409, "{s}");
            s.is_success()
        })
        .collect();
    let (_, tpl) = app
        .get(&approver, "/api/v1/deployment-templates/checkout-release")
        .await;
    let landed = ok.iter().filter(|x| **x).count();
    assert!(landed >= 1);
    assert_eq!(tpl["version"], 2 + landed as i64, "{tpl}");
    assert_eq!(
        tpl["spec"]["sections"]["post"].as_array().unwrap().len(),
        2 + landed,
        "{tpl}"
    );

    // The worker: no HTTP metrics (said so), memory climbing in both runs around its restart.
    let d = run(
        &app,
        &responder,
        t,
        json!({"selector": "job=\"worker\"", "window": "30s"}),
        None,
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    let mem = findings(&d, "PROM_MEMORY_GROWTH");
    assert_eq!(mem.len(), 1, "{d}");
    assert_eq!(fact(mem[0], "runs between restarts"), "2", "{}", mem[0]);
    assert_eq!(fact(mem[0], "climbing runs"), "2");
    assert!(
        mem[0]["title"]
            .as_str()
            .unwrap()
            .contains("restarts reset it"),
        "{}",
        mem[0]["title"]
    );
    // Its event loop: prom-client's p99 of the loop's delay between scrapes sees the 400 ms
    // holds (at least twice the 100 ms threshold: critical), with the PromQL that showed it.
    let lag = findings(&d, "PROM_EVENT_LOOP_LAG");
    assert_eq!(lag.len(), 1, "{d}");
    assert_eq!(lag[0]["severity"], "critical", "{}", lag[0]);
    let peak: f64 = fact(lag[0], "peak")
        .trim_end_matches(" ms")
        .parse()
        .unwrap_or_else(|_| panic!("{}", lag[0]));
    assert!((300.0..1000.0).contains(&peak), "{}", lag[0]);
    assert!(
        lag[0]["evidence"]["command"]
            .as_str()
            .unwrap()
            .contains("nodejs_eventloop_lag_p99_seconds{job=\"worker\"}"),
        "{}",
        lag[0]
    );
    let no = findings(&d, "PROM_NO_SERIES");
    assert_eq!(no.len(), 1);
    assert!(
        no[0]["title"]
            .as_str()
            .unwrap()
            .contains("errors and latency")
    );
    drop(worker);

    // A selector that matches nothing: said exactly, nothing else judged.
    let d = run(
        &app,
        &responder,
        t,
        json!({"selector": "job=\"nope\"", "window": "30s"}),
        None,
    )
    .await;
    assert_eq!(d["run"]["status"], "ok");
    assert_eq!(findings(&d, "PROM_NO_SERIES").len(), 1, "{d}");
    assert!(findings(&d, "PROM_MEMORY_GROWTH").is_empty());
}

/// The JVM service (end2end/fixtures/jvm-service/Service.java, run from source with the jars
/// `scripts/lib/services.sh jvm_service_libs` fetched): resilience4j and HikariCP metrics
/// through Micrometer's Prometheus registry, as a Spring or plain JVM service exports them.
fn jvm_service(port: u16, vars: &[(&str, String)]) -> Service {
    let libs = std::env::var("LOOKOUT_JVM_SERVICE_LIBS").expect(
        "LOOKOUT_JVM_SERVICE_LIBS: the JVM service's jars (scripts/test sets it: jvm_service_libs)",
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../end2end/fixtures/jvm-service/Service.java"
    );
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!("{libs}/*"))
        .arg(script)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("java {script}: {e}"));
    Service { child, port }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_jvm_service_s_resilience4j_breaker_retries_and_hikaricp_pool(pool: PgPool) {
    // The inventory breaker opens against a refused dependency; every pricing call needs its
    // retry and a quarter fail after three attempts; 6 threads share a pool of 4 connections
    // to the test PostgreSQL, each holding one for 300 ms.
    let port = free_port();
    let svc = jvm_service(
        port,
        &[
            ("DEPENDENCY_PORT", free_port().to_string()),
            ("DATABASE_URL", std::env::var("DATABASE_URL").unwrap()),
            ("POOL_SIZE", "4".into()),
            ("WAITERS", "2".into()),
        ],
    );
    let prom = Prometheus::start_jobs(&[("orders", &[format!("127.0.0.1:{}", svc.port)])]).await;
    prom.wait_for("resilience4j_circuitbreaker_state{job=\"orders\",state=\"open\"} == 1")
        .await;
    prom.wait_for("hikaricp_connections_pending{job=\"orders\"} > 0")
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "prom-jvm", &prom.url).await;
    let d = run(
        &app,
        &responder,
        t,
        json!({"selector": "job=\"orders\"", "window": "30s"}),
        None,
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");

    let brk = findings(&d, "PROM_BREAKER_OPEN");
    assert_eq!(brk.len(), 1, "{d}");
    assert_eq!(fact(brk[0], "breaker"), "inventory");
    assert_eq!(fact(brk[0], "library"), "resilience4j");
    assert_eq!(fact(brk[0], "state"), "open");
    assert_eq!(fact(brk[0], "failure rate"), "100.0 %");
    let rejected: f64 = fact(brk[0], "calls rejected in the window")
        .parse()
        .unwrap();
    assert!(
        rejected >= 20.0,
        "10 calls a second turned away: {}",
        brk[0]
    );
    assert_eq!(brk[0]["severity"], "critical", "{}", brk[0]);

    let rt = findings(&d, "PROM_RETRIES");
    assert_eq!(rt.len(), 1, "{d}");
    let ok: f64 = fact(rt[0], "succeeded after retries").parse().unwrap();
    let failed: f64 = fact(rt[0], "failed after retries").parse().unwrap();
    let total: f64 = fact(rt[0], "calls").parse().unwrap();
    assert!(total >= 20.0, "{}", rt[0]);
    assert!(
        (ok + failed - total).abs() <= 2.0,
        "every call retried: {}",
        rt[0]
    );
    assert!(
        (failed / total - 0.25).abs() < 0.1,
        "a quarter failed after retrying: {}",
        rt[0]
    );
    assert!(
        rt[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("Retry pricing: 100 % of calls needed retries"),
        "{}",
        rt[0]
    );

    let pool_f = findings(&d, "PROM_POOL_SATURATED");
    assert_eq!(pool_f.len(), 1, "{d}");
    assert_eq!(fact(pool_f[0], "pool"), "orders-db");
    assert_eq!(fact(pool_f[0], "peak use"), "100 %");
    let waiting: f64 = fact(pool_f[0], "most callers waiting").parse().unwrap();
    assert!((1.0..=2.0).contains(&waiting), "{}", pool_f[0]);
    assert_eq!(pool_f[0]["severity"], "warning", "{}", pool_f[0]);
    // A JVM without the Node.js or HTTP metrics: said, not guessed.
    assert!(findings(&d, "PROM_EVENT_LOOP_LAG").is_empty());
    assert!(!findings(&d, "PROM_NO_SERIES").is_empty(), "{d}");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_parameters_are_refused_and_dead_or_hanging_prometheus_is_a_finding(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let t = target(&app, &admin, "prom-dead", &dead).await;
    let runs_before = app.count("probe_runs").await;
    for (params, needle) in [
        (json!({}), "selector"),
        (json!({"selector": "job=checkout"}), "double quotes"),
        (
            json!({"selector": "job=\"a\"} or vector(1) or up{x=\"1\""}),
            "selector",
        ),
        (json!({"selector": "job=~\".*\""}), "empty string"),
        (json!({"selector": "job=\"a\"", "window": "10s"}), "window"),
        (
            json!({"selector": "job=\"a\"", "window": "1h30m"}),
            "window",
        ),
        (
            json!({"selector": "job=\"a\"", "memory_metrics": "up{x=\"1\"}"}),
            "memory_metrics",
        ),
        (
            json!({"selector": "job=\"a\"", "status_labels": "a-b"}),
            "status_labels",
        ),
        (
            json!({"selector": "job=\"</textarea><svg onload=alert(1)>\"", "window": "\u{0}1h"}),
            "control",
        ),
    ] {
        let (s, e) = app
            .post(
                &responder,
                &format!("/api/v1/targets/{t}/probe-runs"),
                json!({"probe": "prometheus", "params": params}),
            )
            .await;
        assert_eq!(s, 422, "{params}: {e}");
        assert!(e.to_string().contains(needle), "{params}: {e}");
    }
    assert_eq!(
        app.count("probe_runs").await,
        runs_before,
        "nothing written"
    );

    // Down: a finding that says so, at once.
    let d = run(&app, &responder, t, json!({"selector": "job=\"a\""}), None).await;
    assert_eq!(d["run"]["status"], "failed", "{d}");
    assert_eq!(findings(&d, "TARGET_UNREACHABLE").len(), 1, "{d}");

    // Hanging (accepts, never answers): the step limit ends it.
    let addr = common::hanging_listener().await;
    let t = target(&app, &admin, "prom-hang", &format!("http://{addr}")).await;
    let started = Instant::now();
    let d = run(
        &app,
        &responder,
        t,
        json!({"selector": "job=\"a\"", "step_timeout_s": "2"}),
        None,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(d["run"]["status"], "timed_out", "{d}");
    assert_eq!(findings(&d, "TARGET_TIMEOUT").len(), 1, "{d}");
}

/// A cgroup of the test's own, with a CPU quota and a memory limit (cgroup v1: one directory
/// under each of `cpu`, `cpuacct` and `memory`; v2: one directory with both controllers).
/// Dropping it kills what runs inside and removes it. Needs root, as TEST runs.
struct Cgroup {
    dirs: Vec<std::path::PathBuf>,
}

impl Cgroup {
    fn new(path: &str, cpu_quota_pct: u32, memory_limit: u64) -> Cgroup {
        use std::path::Path;
        let name = path.trim_start_matches('/');
        let root = Path::new("/sys/fs/cgroup");
        let write = |p: std::path::PathBuf, v: String| {
            std::fs::write(&p, &v)
                .unwrap_or_else(|e| panic!("write {v:?} to {}: {e} (needs root)", p.display()))
        };
        if root.join("cgroup.controllers").exists() {
            write(root.join("cgroup.subtree_control"), "+cpu +memory".into());
            let dir = root.join(name);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            write(
                dir.join("cpu.max"),
                format!("{} 100000", cpu_quota_pct * 1000),
            );
            write(dir.join("memory.max"), memory_limit.to_string());
            Cgroup { dirs: vec![dir] }
        } else {
            assert!(
                root.join("cpu/cpu.cfs_quota_us").exists(),
                "neither cgroup v2 nor v1's cpu controller under /sys/fs/cgroup"
            );
            let dirs: Vec<_> = ["cpu", "cpuacct", "memory"]
                .iter()
                .map(|c| root.join(c).join(name))
                .collect();
            for d in &dirs {
                std::fs::create_dir(d)
                    .unwrap_or_else(|e| panic!("{}: {e} (needs root)", d.display()));
            }
            write(dirs[0].join("cpu.cfs_period_us"), "100000".into());
            write(
                dirs[0].join("cpu.cfs_quota_us"),
                (cpu_quota_pct * 1000).to_string(),
            );
            write(
                dirs[2].join("memory.limit_in_bytes"),
                memory_limit.to_string(),
            );
            Cgroup { dirs }
        }
    }

    /// `program args…` started inside the cgroup (it moves itself in before `exec`, so all
    /// it allocates is charged there).
    fn spawn(&self, program: &str, args: &[&str]) -> Service {
        let procs: Vec<String> = self
            .dirs
            .iter()
            .map(|d| d.join("cgroup.procs").display().to_string())
            .collect();
        let script = format!(
            "for f in {}; do echo $$ > \"$f\" || exit 97; done; exec \"$@\"",
            procs.join(" ")
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Service { child, port: 0 }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let mut alive = false;
            for d in &self.dirs {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.split_whitespace() {
                    alive = true;
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// cAdvisor's collector (`end2end/fixtures/cadvisor`: github.com/google/cadvisor's manager
/// and Prometheus collector, as kubelet embeds them) watching cgroups under `prefix`.
fn cadvisor(port: u16, prefix: &str) -> Service {
    let bin = std::env::var("LOOKOUT_CADVISOR_BIN").expect(
        "LOOKOUT_CADVISOR_BIN: the cAdvisor exporter (scripts/test builds it: build_cadvisor_bg)",
    );
    let child = Command::new(&bin)
        .arg("-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cgroup-prefix")
        .arg(prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    Service { child, port }
}

#[sqlx::test(migrations = "../migrations")]
async fn cadvisor_cpu_throttling_and_memory_growth_against_the_container_limit(pool: PgPool) {
    // Two containers as cAdvisor sees them: "burn" spins under a 20 % CPU quota (every
    // period throttled) with a 64 MiB limit; "grow" allocates 2 MiB/s under a 512 MiB
    // limit and no CPU quota worth hitting.
    let prefix = format!("/lookout-test-{}-", std::process::id());
    let burn = Cgroup::new(&format!("{prefix}burn"), 20, 64 << 20);
    let grow = Cgroup::new(&format!("{prefix}grow"), 400, 512 << 20);
    let _spin = burn.spawn("sh", &["-c", "while :; do :; done"]);
    let _alloc = grow.spawn(
        "python3",
        &[
            "-c",
            "import time\nkeep = []\nt0 = time.time()\nwhile True:\n    keep.append(b'\\x01' * (1 << 20))\n    time.sleep(max(0.0, t0 + len(keep) * 0.5 - time.time()))\n",
        ],
    );
    let exporter = cadvisor(free_port(), &prefix);
    let prom =
        Prometheus::start_jobs(&[("cadvisor", &[format!("127.0.0.1:{}", exporter.port)])]).await;
    let sel = format!("job=\"cadvisor\",id=~\"{prefix}.*\"");
    prom.wait_for(&format!(
        "count(container_spec_memory_limit_bytes{{{sel}}}) == 2"
    ))
    .await;
    prom.wait_for(&format!(
        "rate(container_cpu_cfs_throttled_periods_total{{{sel}}}[5s]) > 0"
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(25)).await;

    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "prom-cadvisor", &prom.url).await;
    let d = run(
        &app,
        &responder,
        t,
        json!({"selector": sel, "window": "30s"}),
        None,
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");

    // CPU: only the container with the quota it keeps hitting.
    let thr = findings(&d, "PROM_CPU_THROTTLED");
    assert_eq!(thr.len(), 1, "{d}");
    assert!(fact(thr[0], "container").ends_with("burn"), "{}", thr[0]);
    assert!(
        pct(&fact(thr[0], "throttled share (mean)")) >= 0.9,
        "a busy loop under a 20 % quota is throttled every period: {}",
        thr[0]
    );
    assert!(
        thr[0]["evidence"]["command"]
            .as_str()
            .unwrap()
            .contains("container_cpu_cfs_throttled_periods_total"),
        "{}",
        thr[0]
    );

    // Memory: the growing container, against its own limit read from cAdvisor (not the
    // other container's 64 MiB).
    let mem = findings(&d, "PROM_MEMORY_GROWTH");
    assert_eq!(mem.len(), 1, "{d}");
    assert!(fact(mem[0], "instance").ends_with("grow"), "{}", mem[0]);
    let slope = bytes_per_s(&fact(mem[0], "slope"));
    let want = 2.0 * 1024.0 * 1024.0;
    assert!(
        (slope - want).abs() / want < 0.25,
        "slope {slope} B/s, want {want}: {}",
        mem[0]
    );
    assert_eq!(fact(mem[0], "memory limit"), "512.0 MiB", "{}", mem[0]);
    let now = query(
        &prom,
        &format!("container_memory_working_set_bytes{{job=\"cadvisor\",id=\"{prefix}grow\"}}"),
    )
    .await;
    let eta_s = (512.0 * 1024.0 * 1024.0 - now) / want;
    let to_limit = fact(mem[0], "time to limit");
    // rules::span: "N s" under two minutes, whole minutes (rounded down) above.
    let secs = match to_limit.split_once(' ') {
        Some((n, "s")) => n.parse::<f64>().unwrap(),
        Some((n, "min")) => n.parse::<f64>().unwrap() * 60.0 + 30.0,
        _ => panic!("time to limit {to_limit}"),
    };
    assert!(
        (secs - eta_s).abs() < eta_s * 0.25 + 30.0,
        "time to limit {to_limit}, want about {eta_s:.0} s"
    );
    assert_eq!(mem[0]["severity"], "critical", "{}", mem[0]);
    assert!(
        mem[0]["evidence"]["command"]
            .as_str()
            .unwrap()
            .contains(&format!("container_spec_memory_limit_bytes{{{sel}}} > 0")),
        "{}",
        mem[0]
    );
    drop(prom);
    drop(exporter);
}
