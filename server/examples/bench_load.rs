//! Load (issue 17, point 3): 200 concurrent signed-in sessions for 60 s over a mix of pages
//! and API reads — incident list, incident page, Kafka overview, Kafka group page, probe run
//! page — against the real `lookout serve` binary (its own process, so its RSS is its own)
//! on a database seeded like the benchmarks: 100,000 incidents, one with 500 notes and 100
//! findings, a Kafka target with 2,000 consumer groups, a real Redis probe run.
//!
//! Run (needs a PostgreSQL and a Redis; scripts/test's throwaway ones or any):
//!   cargo build --release -p server --bin lookout
//!   DATABASE_URL=postgres://… REDIS_URL=redis://… cargo run --release -p server --example bench_load
//! Optional: LOOKOUT_BIN (default: the release binary next to this example), LOAD_SESSIONS
//! (200), LOAD_SECS (60). Prints per route: requests, errors, p50/p99/max; the server's RSS
//! before and after; exits non-zero when any request failed.

#[path = "support/bench.rs"]
#[allow(dead_code)]
mod bench;

use bench::{admin, fresh_database, pct};
use domain::Role;
use domain::services::accounts;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const PASSWORD: &str = "load-test-password-1";

/// Per route: latencies, errors, the first few error lines.
type Stats = BTreeMap<&'static str, (Vec<Duration>, usize, Vec<String>)>;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let sessions = env_num("LOAD_SESSIONS", 200) as usize;
    let secs = env_num("LOAD_SECS", 60);
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL (a Redis for the probe run)");
    let bin = std::env::var("LOOKOUT_BIN").unwrap_or_else(|_| {
        let me = std::env::current_exe().expect("exe");
        me.parent()
            .and_then(|p| p.parent())
            .expect("target dir")
            .join("lookout")
            .display()
            .to_string()
    });
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin}: build it first (cargo build --release -p server --bin lookout)"
    );

    let pool = fresh_database("lookout_load").await;
    let who = admin();
    println!(
        "seeding: 100,000 incidents, one with 500 notes and 100 findings, 2,000 Kafka groups …"
    );
    let t = Instant::now();
    let big = bench::seed_big_incident(&pool, 500, 100).await;
    bench::seed_incidents(&pool, 100_000).await;
    let kafka: i64 = sqlx::query_scalar(
        "INSERT INTO targets (name, kind, connection, environment, created_by)
         VALUES ('orders-kafka', 'kafka', '127.0.0.1:9', 'production', 'bench') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("kafka target");
    bench::seed_group_states(&pool, kafka, 2000).await;
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    // 20 people; each signs in ten times (ten browsers).
    for u in 0..20 {
        accounts::create_user(
            &pool,
            &who,
            &domain::RequestMeta::default(),
            accounts::NewUser {
                username: format!("oncall{u:02}"),
                display_name: format!("On-call {u}"),
                role: if u % 2 == 0 {
                    Role::Responder
                } else {
                    Role::Viewer
                },
                password: PASSWORD.into(),
            },
        )
        .await
        .expect("user");
    }
    let admin_token = accounts::create_token(
        &pool,
        &who,
        &domain::RequestMeta::default(),
        "load",
        Role::Admin,
    )
    .await
    .expect("token")
    .secret;
    println!("  seeded in {:.1} s", t.elapsed().as_secs_f64());

    // The real binary, on a loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut u =
        url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).expect("url");
    u.set_path("/lookout_load");
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    let mut child = std::process::Command::new(&bin)
        .arg("serve")
        .env("DATABASE_URL", u.as_str())
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_SITE_ROOT", site)
        .env(
            "LOOKOUT_SECRET_KEY",
            "5f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615243a",
        )
        .env("LOOKOUT_LOG", "warn")
        .env("LOOKOUT_KAFKA_SAMPLE_SECS", "0")
        .env("LOOKOUT_DB_MAX_CONNECTIONS", "20")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start lookout");
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let plain = reqwest::Client::new();
    for _ in 0..300 {
        if plain
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A real probe run against the Redis.
    let target: serde_json::Value = plain
        .post(format!("{base}/api/v1/targets"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({ "name": "orders-redis", "kind": "redis", "connection": redis, "environment": "production" }))
        .send()
        .await
        .expect("target")
        .json()
        .await
        .expect("target json");
    let target_id = target["id"].as_i64().expect("target id");
    let run: serde_json::Value = plain
        .post(format!("{base}/api/v1/targets/{target_id}/probe-runs"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({ "probe": "redis", "incident_key": big }))
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("run json");
    let run_id = run["id"].as_i64().expect("run id");
    for _ in 0..600 {
        let r: serde_json::Value = plain
            .get(format!("{base}/api/v1/probe-runs/{run_id}"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .expect("run")
            .json()
            .await
            .expect("json");
        if r["run"]["finished_at"].is_string() || r["finished_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Sign the sessions in (a few at a time: each sign-in is a password hash).
    println!("signing in {sessions} sessions …");
    let mut clients = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        loop {
            let res = c
                .post(format!("{base}/auth/login"))
                .header("origin", &base)
                .form(&[
                    ("username", format!("oncall{:02}", s % 20)),
                    ("password", PASSWORD.into()),
                    ("next", "/".into()),
                ])
                .send()
                .await
                .expect("login");
            if res.status() == 303 {
                break;
            }
            assert!(
                matches!(res.status().as_u16(), 429 | 503),
                "sign-in: {}",
                res.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        clients.push(c);
    }

    let mix: Vec<(&str, String)> = vec![
        ("page /incidents", "/incidents".into()),
        (
            "page /incidents?severity=SEV2",
            "/incidents?severity=SEV2".into(),
        ),
        (
            "page /incidents/{key} (500 notes, 100 findings)",
            format!("/incidents/{big}"),
        ),
        ("page /incidents/{key} (small)", "/incidents/INC-{n}".into()),
        (
            "page /kafka/{target} (2,000 groups)",
            format!("/kafka/{kafka}"),
        ),
        (
            "page /kafka/{target}/groups/{group}",
            format!("/kafka/{kafka}/groups/group-{{g}}"),
        ),
        ("page /probe-runs/{id}", format!("/probe-runs/{run_id}")),
        ("api /api/v1/incidents", "/api/v1/incidents?limit=50".into()),
        (
            "api /api/v1/incidents/{key}",
            "/api/v1/incidents/INC-{n}".into(),
        ),
        (
            "api /api/v1/kafka/{target}/groups",
            format!("/api/v1/kafka/{kafka}/groups"),
        ),
        (
            "api /api/v1/probe-runs/{id}",
            format!("/api/v1/probe-runs/{run_id}"),
        ),
    ];
    let mix = Arc::new(mix);

    // Warm-up, then RSS before.
    for (_, p) in mix.iter() {
        let p = p.replace("{n}", "2").replace("{g}", "000002");
        let _ = clients[0].get(format!("{base}{p}")).send().await;
    }
    let rss_before = rss_kib(pid);

    println!(
        "load: {sessions} sessions for {secs} s over {} routes …",
        mix.len()
    );
    let results: Arc<Mutex<Stats>> = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut jobs = vec![];
    for (s, c) in clients.into_iter().enumerate() {
        let (mix, results, base) = (mix.clone(), results.clone(), base.clone());
        jobs.push(tokio::spawn(async move {
            let mut i = s * 7919;
            let mut local: Stats = BTreeMap::new();
            while Instant::now() < stop {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (name, path) = &mix[(i >> 33) % mix.len()];
                let path = path
                    .replace("{n}", &(2 + (i >> 20) % 99_999).to_string())
                    .replace("{g}", &format!("{:06}", 1 + (i >> 12) % 2000));
                let t = Instant::now();
                let res = c.get(format!("{base}{path}")).send().await;
                let ok = match res {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.bytes().await;
                        if status.is_success() && body.is_ok() {
                            None
                        } else {
                            Some(format!("{status} {path}"))
                        }
                    }
                    Err(e) => Some(format!("{e} {path}")),
                };
                let e = local.entry(name).or_default();
                e.0.push(t.elapsed());
                if let Some(err) = ok {
                    e.1 += 1;
                    if e.2.len() < 3 {
                        e.2.push(err);
                    }
                }
            }
            let mut all = results.lock().await;
            for (k, (d, n, errs)) in local {
                let e = all.entry(k).or_default();
                e.0.extend(d);
                e.1 += n;
                e.2.extend(errs);
            }
        }));
    }
    for j in jobs {
        j.await.expect("session");
    }
    let elapsed = started.elapsed();
    let rss_after = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();

    let mut all = results.lock().await;
    let (mut total, mut errors) = (0usize, 0usize);
    println!(
        "\n{:<50} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "route (GET)", "requests", "errors", "p50 ms", "p99 ms", "max ms"
    );
    for (name, (d, n, errs)) in all.iter_mut() {
        d.sort();
        total += d.len();
        errors += *n;
        println!(
            "{:<50} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2}",
            name,
            d.len(),
            n,
            pct(d, 0.5),
            pct(d, 0.99),
            d.last().map(|x| x.as_secs_f64() * 1000.0).unwrap_or(0.0)
        );
        for e in errs.iter() {
            println!("    error: {e}");
        }
    }
    println!(
        "total: {total} requests in {:.1} s ({:.0}/s), {errors} errors; server RSS {:.1} MiB before, {:.1} MiB after",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
