//! What the bench examples share: a fresh database, the real router on loopback,
//! sequential HTTP timing with percentiles, the table row, and the admin principal that
//! seeds data. Included with `#[path]` (not an example itself).

use domain::{AuthMethod, Principal, Role};
use std::time::{Duration, Instant};

pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `n` sequential GETs after 10 warm-up ones: (p50 ms, p99 ms, max ms, body bytes).
pub async fn measure(
    c: &reqwest::Client,
    url: &str,
    token: &str,
    n: usize,
) -> (f64, f64, f64, usize) {
    for _ in 0..10 {
        let r = c.get(url).bearer_auth(token).send().await.expect("request");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let _ = r.bytes().await;
    }
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = c.get(url).bearer_auth(token).send().await.expect("request");
        let body = r.bytes().await.expect("body");
        times.push(t.elapsed());
        size = body.len();
    }
    times.sort();
    (pct(&times, 0.5), pct(&times, 0.99), pct(&times, 1.0), size)
}

/// Prints the header of the result table.
pub fn header(samples: usize) {
    println!(
        "\n{:<64} {:>9} {:>9} {:>9} {:>10}",
        format!("request (sequential, n={samples})"),
        "p50 ms",
        "p99 ms",
        "max ms",
        "bytes"
    );
}

/// Prints one result row (name, p50, p99, max, bytes) and returns it.
pub fn row(name: &str, r: (f64, f64, f64, usize)) -> (f64, f64, f64, usize) {
    println!(
        "{:<64} {:>9.2} {:>9.2} {:>9.2} {:>10}",
        name, r.0, r.1, r.2, r.3
    );
    r
}

/// A fresh database `name` next to DATABASE_URL's (dropped first if it exists), migrated.
pub async fn fresh_database(name: &str) -> sqlx::PgPool {
    let base_url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let admin_pool = sqlx::PgPool::connect(&base_url).await.expect("connect");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin_pool)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin_pool)
        .await
        .expect("create");
    let mut u = url::Url::parse(&base_url).expect("url");
    u.set_path(&format!("/{name}"));
    // As the server connects (no JIT).
    let pool = server::connect(u.as_str(), 10)
        .await
        .expect("connect bench");
    server::migrate(&pool).await.expect("migrate");
    pool
}

/// A site directory for the bench server (`static/` in it); the caller may put files there.
pub fn site_dir() -> std::path::PathBuf {
    let site = std::env::temp_dir().join(format!("lookout-bench-site-{}", std::process::id()));
    std::fs::create_dir_all(site.join("static")).expect("site dir");
    site
}

/// The real router on a loopback port, serving `site`; returns its base URL and a
/// responder token for the requests.
pub async fn serve(pool: &sqlx::PgPool, site: &std::path::Path) -> (String, String) {
    let token = domain::services::accounts::create_token(
        pool,
        &admin(),
        &domain::RequestMeta::default(),
        "bench",
        Role::Responder,
    )
    .await
    .expect("token")
    .secret;
    let mut config = server::config::Config::for_tests("postgres://unused");
    config.site_root = site.display().to_string();
    let router = server::router(pool.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        server::serve_until_dropped(listener, router)
            .await
            .expect("serve");
    });
    (format!("http://{addr}"), token)
}

pub fn admin() -> Principal {
    Principal {
        user_id: None,
        name: "bench".into(),
        role: Role::Admin,
        method: AuthMethod::Cli,
        token_id: None,
        deploy_services: None,
        ingest: false,
    }
}

/// `n` incidents over five services and two environments, a week of minutes apart, most
/// closed (every 50th still investigating, every 7th resolved), in one statement.
pub async fn seed_incidents(pool: &sqlx::PgPool, n: i32) {
    sqlx::query(
        "INSERT INTO incidents (title, summary, severity, status, services, environment, labels, created_by,
             detected_at, acknowledged_at, mitigated_at, resolved_at, closed_at, created_at)
         SELECT 'Incident ' || g || ' on ' || (ARRAY['checkout','search','payments','auth','kafka'])[1 + g % 5],
                '', (ARRAY['SEV1','SEV2','SEV3','SEV4'])[1 + g % 4]::incident_severity,
                CASE WHEN g % 50 = 0 THEN 'investigating' WHEN g % 7 = 0 THEN 'resolved' ELSE 'closed' END::incident_status,
                ARRAY[(ARRAY['checkout','search','payments','auth','kafka'])[1 + g % 5]],
                (ARRAY['production','staging'])[1 + g % 2],
                jsonb_build_object('team', (ARRAY['core','growth','data'])[1 + g % 3]),
                'bench',
                now() - (g || ' minutes')::interval,
                now() - (g || ' minutes')::interval + interval '2 minutes',
                CASE WHEN g % 50 = 0 THEN NULL ELSE now() - (g || ' minutes')::interval + interval '10 minutes' END,
                CASE WHEN g % 50 = 0 THEN NULL ELSE now() - (g || ' minutes')::interval + interval '30 minutes' END,
                CASE WHEN g % 50 = 0 OR g % 7 = 0 THEN NULL ELSE now() - (g || ' minutes')::interval + interval '60 minutes' END,
                now() - (g || ' minutes')::interval
         FROM generate_series(1, $1) g",
    )
    .bind(n)
    .execute(pool)
    .await
    .expect("seed incidents");
}

/// `n` consumer-group states of a Kafka target, as the sampler writes them (10 partitions
/// each, statuses cycling OK / WARN / ERR / INCOMPLETE), in one statement.
pub async fn seed_group_states(pool: &sqlx::PgPool, target: i64, n: i32) {
    sqlx::query(
        "INSERT INTO kafka_groups (target_id, group_name, at, state, protocol, members, partitions, total_lag,
             time_lag_s, time_lag_kind, status, worst, reason, catch_up, verdicts, trend, status_rank, member_count)
         SELECT $1, 'group-' || lpad(g::text, 6, '0'), now(), 'Stable', 'range',
             jsonb_build_array(jsonb_build_object('id', 'm-' || g, 'client_id', 'svc', 'host', '/10.0.0.1', 'parts', '[]'::jsonb)),
             10, (g * 7919) % 1000003, ((g * 31) % 3600)::float8, 'estimated',
             (ARRAY['OK','WARN','ERR','INCOMPLETE'])[1 + g % 4], (ARRAY['OK','WARN','STALL','INCOMPLETE'])[1 + g % 4],
             'partition 3 lag never decreased across 10 samples', 'catching up: ~14 min to zero',
             (SELECT jsonb_agg(jsonb_build_object('topic', 'orders-' || (g % 500), 'partition', p, 'status', 'OK',
                 'reason', 'ok', 'committed', 1000, 'end', 1100, 'start', 0, 'lag', 100)) FROM generate_series(0, 9) p),
             ARRAY(SELECT ((g * k) % 5000)::bigint FROM generate_series(1, 20) k),
             (ARRAY[0,2,3,1])[1 + g % 4], 1 + g % 12
         FROM generate_series(1, $2) g",
    )
    .bind(target)
    .bind(n)
    .execute(pool)
    .await
    .expect("seed groups");
}

/// The benchmarks' big incident: opened by the admin, with `notes` markdown notes and
/// `findings` findings (evidence facts, a command, an excerpt, a remediation); its key.
pub async fn seed_big_incident(pool: &sqlx::PgPool, notes: usize, findings: usize) -> String {
    use domain::incidents::*;
    use domain::services::incidents as svc;
    let who = admin();
    let d = svc::create(
        pool,
        &who,
        svc::NewIncident {
            title: "Checkout returns 500s".into(),
            severity: Severity::Sev1,
            services: vec!["checkout".into(), "payments".into()],
            environment: "production".into(),
            summary: "Customers cannot pay. **Error rate 12%**.".into(),
            labels: Default::default(),
            commander: None,
        },
    )
    .await
    .expect("create");
    let key = d.incident.key.clone();
    for i in 0..notes {
        svc::add_note(pool, &who, &key, &format!(
            "Note {i}: checked `orders-cache`; memory at **{}%**, evictions {}. See [dashboard](https://grafana.example/d/{i}).\n\n- step one\n- step two",
            50 + i % 50, i * 3)).await.expect("note");
    }
    for i in 0..findings {
        svc::add_finding(pool, &who, &key, svc::NewFinding {
            code: format!("BENCH_FINDING_{i}"),
            severity: [FindingSeverity::Critical, FindingSeverity::Warning, FindingSeverity::Info][i % 3],
            title: format!("Finding {i}: orders-cache near its limit"),
            evidence: Evidence {
                facts: (0..5).map(|k| EvidenceFact { name: format!("fact_{k}"), value: format!("{}", i * k) }).collect(),
                command: Some("redis-cli INFO memory".into()),
                excerpt: Some("used_memory:1960000000\nmaxmemory:2000000000\n".repeat(5)),
                tables: vec![],
                charts: vec![],
            },
            remediation: "Switch the policy:\n\n```sh\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n".into(),
            doc_link: None, source: None,
        }).await.expect("finding");
    }
    key
}
