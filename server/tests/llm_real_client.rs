//! Real GenAI clients (issue 13): the official `openai` Python client, instrumented by
//! OpenTelemetry's GenAI instrumentation (`opentelemetry-instrumentation-openai-v2`) or by
//! OpenLLMetry's (`opentelemetry-instrumentation-openai`), calling a small OpenAI-compatible
//! stub that answers with chosen usage (cached and reasoning tokens, and a 429 that makes the
//! app fall back to another model), exporting with the OpenTelemetry SDK's OTLP/HTTP exporter
//! to Lookout with an ingest token (`scripts/lib/genai_client.py`). The records, buckets and
//! costs must come out exactly as the usage the stub answered says, given what each
//! instrumentation reports.
//!
//! Needs `LOOKOUT_GENAI_PYTHON`: a Python with those packages (TEST installs it under
//! `$HOME/.cache/lookout/genai-venv`, `scripts/lib/common.sh` `ensure_genai_venv`).

mod common;

use common::TestApp;
use common::llm::ingest_token;
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::str::FromStr;

fn python() -> String {
    std::env::var("LOOKOUT_GENAI_PYTHON").expect(
        "LOOKOUT_GENAI_PYTHON: a Python with openai and the OpenTelemetry GenAI instrumentations \
         (scripts/test installs it; or run `source scripts/lib/common.sh; ensure_genai_venv`)",
    )
}

async fn run_client(endpoint: &str, token: &str, transport: &str, instrumentation: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/lib/genai_client.py"
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(python())
            .arg(script)
            .arg(endpoint)
            .arg(token)
            .arg(transport)
            .arg(instrumentation)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finished")
    .unwrap();
    assert!(
        out.status.success(),
        "genai_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

type Row = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<Decimal>,
    String,
    String,
);

async fn rows(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT model, status, service, input, cache_read, output, reasoning, cost, feature, tenant
           FROM llm_usage ORDER BY started_at, span_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn dec(s: &str) -> Option<Decimal> {
    Some(Decimal::from_str(s).unwrap())
}

#[sqlx::test(migrations = "../migrations")]
async fn opentelemetry_openai_v2_over_otlp_http(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn_with(pool.clone(), |c| c.max_body_bytes = 4 << 20).await;
    let token = ingest_token(&app).await;
    run_client(&app.base, &token, "http", "v2").await;
    let r = rows(&pool).await;
    // The 429'd attempt (no tokens billed) and the fallback; this instrumentation reports
    // neither cached nor reasoning tokens for chat completions, nor the Responses API at all,
    // so the 2006 prompt tokens are all uncached as far as anyone downstream can tell.
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].0.as_str(), r[0].1.as_str()), ("gpt-4.1", "error"));
    assert_eq!((r[0].3, r[0].5), (0, 0));
    assert_eq!(r[0].7, dec("0"), "a refused attempt bills nothing");
    assert_eq!((r[1].0.as_str(), r[1].1.as_str()), ("gpt-4.1-mini", "ok"));
    assert_eq!((r[1].3, r[1].4, r[1].5, r[1].6), (2006, 0, 300, 0));
    // gpt-4.1-mini: $0.40 in, $1.60 out per million.
    assert_eq!(r[1].7, dec("0.0012824"));
    for x in &r {
        assert_eq!(
            (x.2.as_str(), x.8.as_str(), x.9.as_str()),
            ("checkout-assistant", "search", "acme")
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn openllmetry_openai_over_otlp_http(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn_with(pool.clone(), |c| c.max_body_bytes = 4 << 20).await;
    let token = ingest_token(&app).await;
    run_client(&app.base, &token, "http", "openllmetry").await;
    openllmetry_records(&pool).await;
}

/// The same client over the SDK's OTLP/gRPC exporter, to Lookout's gRPC port.
#[sqlx::test(migrations = "../migrations")]
async fn openllmetry_openai_over_otlp_grpc(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let (app, grpc) = TestApp::spawn_with_grpc(pool.clone(), |_| {}).await;
    let token = ingest_token(&app).await;
    run_client(&grpc, &token, "grpc", "openllmetry").await;
    openllmetry_records(&pool).await;
}

async fn openllmetry_records(pool: &PgPool) {
    let r = rows(pool).await;
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!((r[0].0.as_str(), r[0].1.as_str()), ("gpt-4.1", "error"));
    // Chat completions: prompt 2006 with 1920 cached, 300 out (reasoning 0):
    // 86 × $0.40 + 1920 × $0.10 + 300 × $1.60 per million.
    assert_eq!(
        (r[1].0.as_str(), r[1].3, r[1].4, r[1].5, r[1].6),
        ("gpt-4.1-mini", 86, 1920, 300, 0)
    );
    assert_eq!(r[1].7, dec("0.0007064"));
    // Responses API: input 75 with 64 cached, output 1186 of which 1024 reasoning:
    // 11 × $1.10 + 64 × $0.275 + 162 × $4.40 + 1024 × $4.40 per million.
    assert_eq!(
        (r[2].0.as_str(), r[2].3, r[2].4, r[2].5, r[2].6),
        ("o4-mini", 11, 64, 162, 1024)
    );
    assert_eq!(r[2].7, dec("0.0052481"));
    let billed: i64 = r.iter().map(|x| x.3 + x.4 + x.5 + x.6).sum();
    assert_eq!(billed, 2306 + 1261, "every billed token, none twice");
}
