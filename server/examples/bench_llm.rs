//! Benchmark for the LLM cost figures of issue 13:
//! 1. OTLP/HTTP protobuf ingest, batches of 512 GenAI spans, each acknowledged after its
//!    commit: records per second (goal ≥ 50,000/s), with the batch size, the ack latency and
//!    the CPU the process used (server and the sending client share it and the machine's two
//!    cores with PostgreSQL);
//! 2. the weekly review over N records spread over 13 weeks (50 services, 200 features, 1,000
//!    tenants, 30 models; goal for N = 10,000,000: every view p95 < 300 ms), each view's time,
//!    and the same breakdown computed from the raw rows, with the ratio.
//!
//! Run (DATABASE_URL pointing at a PostgreSQL; it creates `lookout_bench_llm`):
//!   cargo run --release -p server --example bench_llm
//! Sizes: LOOKOUT_BENCH_LLM_RECORDS (ingest, default 300000), LOOKOUT_BENCH_LLM_CONCURRENCY
//! (senders, default 4), LOOKOUT_BENCH_LLM_REVIEW_RECORDS (review, default 1000000);
//! LOOKOUT_BENCH_LLM_REUSE=1 measures the views again over the database a previous run left
//! (no ingest part, no seeding when it holds N records).

#[path = "support/bench.rs"]
#[allow(dead_code)]
mod bench;

use bench::{admin, fresh_database, pct, site_dir};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::{Duration, Instant};

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

const MODELS: [&str; 6] = [
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o4-mini",
];

/// Batch `b` of 512 chat spans of one service (ids unique across batches).
fn batch(b: usize, start_ns: u64) -> Vec<u8> {
    let spans = (0..512usize)
        .map(|i| {
            let n = b * 512 + i;
            let mut trace_id = vec![0u8; 16];
            trace_id[..8].copy_from_slice(&(n as u64).to_be_bytes());
            trace_id[15] = 7;
            Span {
                trace_id,
                span_id: vec![1; 8],
                parent_span_id: vec![2; 8],
                name: "chat".into(),
                start_time_unix_nano: start_ns + (n as u64 % 3_600) * 1_000_000_000,
                end_time_unix_nano: start_ns + (n as u64 % 3_600) * 1_000_000_000 + 900_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                    kv("gen_ai.provider.name", Value::StringValue("openai".into())),
                    kv(
                        "gen_ai.request.model",
                        Value::StringValue(MODELS[n % 6].into()),
                    ),
                    kv(
                        "gen_ai.response.model",
                        Value::StringValue(MODELS[n % 6].into()),
                    ),
                    kv(
                        "gen_ai.usage.input_tokens",
                        Value::IntValue(1000 + (n % 500) as i64),
                    ),
                    kv(
                        "gen_ai.usage.cache_read.input_tokens",
                        Value::IntValue((n % 4) as i64 * 200),
                    ),
                    kv(
                        "gen_ai.usage.output_tokens",
                        Value::IntValue(100 + (n % 50) as i64),
                    ),
                    kv(
                        "app.feature",
                        Value::StringValue(format!("feature-{}", n % 200)),
                    ),
                    kv(
                        "tenant.id",
                        Value::StringValue(format!("tenant-{}", n % 1000)),
                    ),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    Value::StringValue(format!("service-{}", b % 50)),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

async fn ingest_part(pool: &sqlx::PgPool, base: &str) {
    let token = domain::services::accounts::create_ingest_token(
        pool,
        &admin(),
        &domain::RequestMeta::default(),
        "bench-ingest",
    )
    .await
    .expect("token")
    .secret;
    let records = env_usize("LOOKOUT_BENCH_LLM_RECORDS", 300_000);
    let senders = env_usize("LOOKOUT_BENCH_LLM_CONCURRENCY", 4);
    let batches = records.div_ceil(512);
    let start_ns =
        (time::OffsetDateTime::now_utc() - time::Duration::hours(2)).unix_timestamp_nanos() as u64;
    let bodies: Vec<Vec<u8>> = (0..batches).map(|b| batch(b, start_ns)).collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/traces");
    // The server's own one-second fold (deltas into the daily rollups and trace costs) runs
    // beside ingest, as in production: its work competes for the same cores.
    let (stop_fold, fold_rx) = tokio::sync::watch::channel(false);
    let fold = server::workers::spawn_llm_rollups(pool.clone(), fold_rx);
    let pending = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM llm_rollup_delta) OR EXISTS (SELECT 1 FROM llm_trace_delta)",
        )
        .fetch_one(pool)
        .await
        .expect("deltas")
    };
    // Warm-up: 4 batches (their ids are reused below and count as duplicates: skipped).
    let warm: Vec<Vec<u8>> = (0..4)
        .map(|b| batch(batches + 1000 + b, start_ns))
        .collect();
    for b in &warm {
        let r = client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/x-protobuf")
            .body(b.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    // Their deltas folded before the clock starts.
    while pending().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queue = std::sync::Arc::new(std::sync::Mutex::new(
        bodies
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (q, c, u, tok) = (queue.clone(), client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let Some(body) = q.lock().expect("queue").pop_front() else {
                    break;
                };
                let t = Instant::now();
                loop {
                    let r = c
                        .post(&u)
                        .bearer_auth(&tok)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("send");
                    match r.status().as_u16() {
                        200 => break,
                        429 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                        s => panic!("status {s}"),
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("sender"));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    // Until the fold has caught up (no delta left): the rate ingest can keep up.
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM llm_rollup_delta) + (SELECT count(*) FROM llm_trace_delta)",
    )
    .fetch_one(pool)
    .await
    .expect("deltas");
    while pending().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caught_up = t0.elapsed().as_secs_f64();
    let _ = stop_fold.send(true);
    let _ = fold.await;
    lat.sort();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_usage")
        .fetch_one(pool)
        .await
        .expect("count");
    let stored = stored - 4 * 512;
    println!("\nOTLP/HTTP protobuf ingest (each batch acknowledged after its commit)");
    println!(
        "records {stored}, batches {batches} of 512 spans (~{body_bytes} bytes each), {senders} concurrent senders"
    );
    println!(
        "{:.0} records/s, {:.1} batches/s; ack latency p50 {:.1} ms, p99 {:.1} ms; process CPU {:.2} s over {:.2} s wall ({:.0}% of one core, server and client)",
        stored as f64 / wall,
        batches as f64 / wall,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        cpu,
        wall,
        cpu / wall * 100.0
    );
    println!(
        "the fold (running throughout) had {left} delta rows left at the last acknowledgement and caught up {:.2} s later: {:.0} records/s acknowledged and folded",
        caught_up - wall,
        stored as f64 / caught_up
    );
    assert_eq!(stored as usize, batches * 512, "every record stored once");
}

async fn review_part(pool: &sqlx::PgPool, base: &str) {
    let n = env_usize("LOOKOUT_BENCH_LLM_REVIEW_RECORDS", 1_000_000) as i64;
    let now = time::OffsetDateTime::now_utc();
    let today = now.date();
    let monday =
        today - time::Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let first = monday - time::Duration::days(7 * 12);
    // LOOKOUT_BENCH_LLM_REUSE: measure the views again over the records a previous run
    // seeded (same N, same week), without seeding them again.
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_usage")
        .fetch_one(pool)
        .await
        .expect("count");
    let t = Instant::now();
    if existing != n {
        sqlx::query(
            "TRUNCATE llm_usage, llm_usage_hourly, llm_usage_daily, llm_usage_daily_tenant,
                      llm_rollup_delta, llm_traces, llm_trace_delta, llm_chain_pending,
                      llm_fallback_chains",
        )
        .execute(pool)
        .await
        .expect("truncate");
        let mut conn = pool.acquire().await.expect("conn");
        let mut d = first;
        while d < monday + time::Duration::days(7) {
            domain::storage::llm::ensure_partition(&mut conn, d)
                .await
                .expect("partition");
            d = d.next_day().expect("day");
        }
        drop(conn);
        // A price row for every seeded model, so the rollups carry a price version.
        let price: i64 = sqlx::query_scalar(
            "INSERT INTO llm_prices (provider, model, effective_from, input, output, source)
             VALUES ('openai', 'model-*', '2020-01-01', 2, 8, 'bench') RETURNING id",
        )
        .fetch_one(pool)
        .await
        .expect("price");
        sqlx::query("UPDATE llm_usage SET price_id = $1")
            .bind(price)
            .execute(pool)
            .await
            .expect("price ids");
        // n records over the 13 weeks: 50 services, 200 features, 1,000 tenants, 30 models, four
        // calls per trace under one parent span (a failed call and its fallback share it), unique ids.
        let from = first.midnight().assume_utc();
        sqlx::query(
            "INSERT INTO llm_usage (started_at, record_id, trace_id, span_id, parent_span_id, provider, model, operation,
                 service, feature, tenant, service_tier, status, duration_ms, input, cache_read,
                 cache_write_5m, cache_write_1h, output, reasoning, raw_usage, price_id, cost)
             SELECT $1 + make_interval(secs => ((i - 1)::float8 / $2) * 91 * 86400),
                    'b' || i, lpad(to_hex(i / 4), 32, '0'), lpad(to_hex(i), 16, '0'),
                    lpad(to_hex(i / 4), 16, '0'), 'openai',
                    'model-' || (i % 30), 'chat', 'service-' || (i % 50), 'feature-' || (i % 200),
                    'tenant-' || (i % 1000), 'default', CASE WHEN i % 50 = 0 THEN 'error' ELSE 'ok' END,
                    900, 1000 + i % 500, (i % 4) * 200, 0, 0, 100 + i % 50, 0, '{}'::jsonb,
                    $3, ((1000 + i % 500) * 2 + (100 + i % 50) * 8)::numeric / 1000000
               FROM generate_series(1, $2) AS i",
        )
        .bind(from)
        .bind(n)
        .bind(price)
        .execute(pool)
        .await
        .expect("seed records");
        sqlx::query(
            "INSERT INTO llm_usage_hourly (hour, provider, model, service, feature, tenant, operation,
                 status, price_id, calls, input, cache_read, cache_write_5m, cache_write_1h, output,
                 reasoning, cost)
             SELECT date_trunc('hour', started_at, 'UTC'), provider, model, service, feature, tenant,
                    operation, status, price_id, count(*), sum(input), sum(cache_read),
                    sum(cache_write_5m), sum(cache_write_1h), sum(output), sum(reasoning), sum(cost)
               FROM llm_usage GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
        )
        .execute(pool)
        .await
        .expect("rollups");
        let mut conn = pool.acquire().await.expect("conn");
        domain::storage::llm::rebuild_daily(&mut conn, from, from + time::Duration::days(91), None)
            .await
            .expect("daily rollups");
        drop(conn);
        sqlx::query(
            "INSERT INTO llm_traces (trace_id, first_at, day, last_at, last_day, service, calls,
                 cost)
             SELECT trace_id, min(started_at), (min(started_at) AT TIME ZONE 'UTC')::date,
                    max(started_at), (max(started_at) AT TIME ZONE 'UTC')::date,
                    min(service), count(*), sum(cost)
               FROM llm_usage WHERE trace_id IS NOT NULL AND cost IS NOT NULL GROUP BY trace_id",
        )
        .execute(pool)
        .await
        .expect("trace costs");
        // The fallback chains, resolved from the failed calls as the llm-rollups job does.
        sqlx::query(
            "INSERT INTO llm_chain_pending (trace_id, parent_span_id, started_at)
             SELECT trace_id, parent_span_id, started_at FROM llm_usage
              WHERE status = 'error' AND trace_id IS NOT NULL AND parent_span_id IS NOT NULL",
        )
        .execute(pool)
        .await
        .expect("queue chains");
        domain::services::llm::resolve_chains(pool, Duration::ZERO, 20_000)
            .await
            .expect("chains");
        sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
    }
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_usage_hourly")
        .fetch_one(pool)
        .await
        .expect("count");
    println!(
        "\nweekly review over {n} records (13 weeks, 50 services, 200 features, 1,000 tenants, 30 models): ready in {:.1} s (seeded, or reused), {rollups} hourly rollup rows",
        t.elapsed().as_secs_f64()
    );
    let token = domain::services::accounts::create_token(
        pool,
        &admin(),
        &domain::RequestMeta::default(),
        "bench-review",
        domain::Role::Viewer,
    )
    .await
    .expect("token")
    .secret;
    let (y, w, _) = monday.to_iso_week_date();
    let week = format!("{y}-W{w:02}");
    let client = reqwest::Client::new();
    println!(
        "{:<58} {:>9} {:>9} {:>9}",
        "view (sequential, n=20)", "p50 ms", "p95 ms", "max ms"
    );
    for (name, q) in [
        ("by model", format!("week={week}&by=model")),
        ("by service", format!("week={week}&by=service")),
        ("by tenant", format!("week={week}&by=tenant")),
        (
            "drill-down service-7 by feature",
            format!("week={week}&by=feature&service=service-7"),
        ),
        (
            "drill-down service-7 → feature-57 by model",
            format!("week={week}&by=model&service=service-7&feature=feature-57"),
        ),
        (
            "model-7 by service",
            format!("week={week}&by=service&model=model-7"),
        ),
        (
            "operation chat (every call) by model",
            format!("week={week}&by=model&operation=chat"),
        ),
        ("CSV by feature", format!("week={week}&by=feature")),
    ] {
        let url = if name.starts_with("CSV") {
            format!("{base}/api/v1/llm/review/csv?{q}")
        } else {
            format!("{base}/api/v1/llm/review?{q}")
        };
        let mut times = Vec::new();
        for i in 0..22 {
            let t = Instant::now();
            let r = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("get");
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let _ = r.bytes().await;
            if i >= 2 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        println!(
            "{:<58} {:>9.1} {:>9.1} {:>9.1}",
            name,
            pct(&times, 0.5),
            pct(&times, 0.95),
            pct(&times, 1.0)
        );
    }
    // The peer: the same breakdown (cost and calls by model, this week and the previous one)
    // computed from the raw rows.
    let wk = monday.midnight().assume_utc();
    let mut times = Vec::new();
    for i in 0..7 {
        let t = Instant::now();
        let _: Vec<(String, i64, Option<rust_decimal::Decimal>)> = sqlx::query_as(
            "SELECT model, count(*), sum(cost) FROM llm_usage WHERE started_at >= $1 AND started_at < $2 GROUP BY model",
        )
        .bind(wk - time::Duration::days(7))
        .bind(wk + time::Duration::days(7))
        .fetch_all(pool)
        .await
        .expect("raw");
        if i >= 2 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    println!(
        "{:<58} {:>9.1} {:>9.1} {:>9.1}",
        "peer: by model from the raw rows (SQL only, n=5)",
        pct(&times, 0.5),
        pct(&times, 0.95),
        pct(&times, 1.0)
    );
}

#[tokio::main]
async fn main() {
    let reuse = std::env::var_os("LOOKOUT_BENCH_LLM_REUSE").is_some();
    let pool = if reuse {
        let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let mut u = url::Url::parse(&base).expect("url");
        u.set_path("/lookout_bench_llm");
        let pool = server::connect(u.as_str(), 10).await.expect("connect");
        server::migrate(&pool).await.expect("migrate");
        pool
    } else {
        fresh_database("lookout_bench_llm").await
    };
    domain::services::llm::seed_default_prices(&pool)
        .await
        .expect("prices");
    let site = site_dir();
    let mut config = server::config::Config::for_tests("postgres://unused");
    config.site_root = site.display().to_string();
    config.max_body_bytes = 8 << 20;
    let router = server::router(pool.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        server::serve_until_dropped(listener, router)
            .await
            .expect("serve")
    });
    if !reuse {
        ingest_part(&pool, &base).await;
    }
    review_part(&pool, &base).await;
}
