//! PostgreSQL crashed (`pg_ctl stop -m immediate`, down for 3 s, started again) in the middle of OTLP
//! ingest: every batch Lookout acknowledged is stored, the batches it refused meanwhile (503
//! with Retry-After) are retried by the exporter and stored once, and nothing is counted
//! twice (issue 13). Runs its own throwaway cluster from `LOOKOUT_PG_BIN` (or Debian's newest
//! server), so restarting it disturbs no other test.

mod common;

use common::TestApp;
use common::llm::{ingest_token, kv};
use common::own_pg::OwnPg;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::{Duration, Instant};

/// Batch `b`: 50 chat spans with unique ids.
fn batch(b: u32) -> Vec<u8> {
    let start = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    let spans = (0..50u32)
        .map(|i| {
            let mut trace_id = vec![0u8; 16];
            trace_id[..4].copy_from_slice(&b.to_be_bytes());
            trace_id[4..8].copy_from_slice(&i.to_be_bytes());
            trace_id[15] = 1;
            Span {
                trace_id,
                span_id: vec![7; 8],
                name: "chat".into(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                    kv("gen_ai.provider.name", Value::StringValue("openai".into())),
                    kv(
                        "gen_ai.request.model",
                        Value::StringValue("gpt-4.1-mini".into()),
                    ),
                    kv("gen_ai.usage.input_tokens", Value::IntValue(1000)),
                    kv("gen_ai.usage.output_tokens", Value::IntValue(100)),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("svc".into()))],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_ingest_loses_no_acknowledged_record() {
    let cluster = OwnPg::start("llm-restart", None);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&cluster.url("postgres"))
        .await
        .unwrap();
    server::migrate(&pool).await.unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;

    // The exporter keeps sending until the database has been restarted and ten more
    // batches went through, so the crash always falls in the middle of the stream
    // (a fixed number of batches could all be sent before the restart on a fast machine).
    let restarted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = restarted.clone();
    let client = app.plain();
    let url = app.url("/v1/traces");
    // Each batch until it is acknowledged, retrying 429/503 and connection errors after
    // a pause, as the OTLP exporters do.
    let exporter = tokio::spawn(async move {
        let (mut refused, mut acked, mut after) = (0u32, 0u32, 0u32);
        for b in 0..2_000u32 {
            if after >= 10 {
                break;
            }
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                after += 1;
            }
            let body = batch(b);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                assert!(Instant::now() < deadline, "batch {b} never acknowledged");
                let res = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-protobuf")
                    .body(body.clone())
                    .send()
                    .await;
                match res.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        acked += 1;
                        break;
                    }
                    Ok(429 | 503) | Err(_) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(other) => panic!("batch {b}: unexpected {other}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (acked, refused, after)
    });
    // Crash and restart the database while the exporter is sending.
    let counted = pool.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_usage")
            .fetch_one(&counted)
            .await
            .unwrap_or(0);
        if n >= 500 {
            break;
        }
        assert!(Instant::now() < deadline, "ingest did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = std::sync::Arc::new(cluster);
    let c2 = c.clone();
    // An immediate stop (a crash: in-flight transactions die), then three seconds down,
    // longer than the pool's acquire timeout, so the server must refuse batches meanwhile.
    tokio::task::spawn_blocking(move || {
        c2.pg_ctl_stop("immediate");
        std::thread::sleep(Duration::from_secs(3));
        c2.pg_ctl_start();
    })
    .await
    .unwrap();
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, refused, after) = exporter.await.unwrap();
    assert_eq!(after, 10, "the exporter went on after the restart");
    assert!(
        refused > 0,
        "the restart happened while batches were being sent"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_usage")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rolled: i64 = sqlx::query_scalar("SELECT sum(calls)::int8 FROM llm_usage_hourly")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        i64::from(acked) * 50,
        "every acknowledged span once"
    );
    assert_eq!(rolled, stored, "the rollups agree with the records");
    domain::services::llm::fold_rollups(&pool, 1_000)
        .await
        .unwrap();
    for table in ["llm_usage_daily", "llm_usage_daily_tenant"] {
        let daily: i64 = sqlx::query_scalar(&format!("SELECT sum(calls)::int8 FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(daily, stored, "{table} agrees with the records");
    }
    drop(pool);
    drop(c);
}
