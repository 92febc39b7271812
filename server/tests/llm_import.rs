//! Usage records imported from JSON Lines and CSV (issue 13): priced and rolled up like
//! ingested spans, idempotent by record id, a bad line refused by number with nothing written,
//! only approvers and admins.

mod common;

use common::TestApp;
use domain::Role;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

#[sqlx::test(migrations = "../migrations")]
async fn files_import_once_and_bad_lines_write_nothing(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let approver = app.create_token("import-approver", Role::Approver).await;
    let responder = app.create_token("import-responder", Role::Responder).await;
    let at = (OffsetDateTime::now_utc() - Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let send = |t: &str, format: &str, body: String| {
        let req = app
            .plain()
            .post(app.url(&format!("/api/v1/llm/usage/import?format={format}")))
            .bearer_auth(t)
            .header("content-type", "text/plain")
            .body(body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let jsonl = format!(
        "{{\"id\": \"a1\", \"started_at\": \"{at}\", \"provider\": \"openai\", \"model\": \"gpt-4.1\", \"input_tokens\": 2006, \"cache_read_tokens\": 1920, \"output_tokens\": 300, \"service\": \"checkout\", \"feature\": \"search\", \"tenant\": \"acme\"}}\n\
         {{\"id\": \"a2\", \"started_at\": \"{at}\", \"provider\": \"anthropic\", \"model\": \"claude-sonnet-4-5\", \"input_tokens\": 48, \"cache_read_tokens\": 1800, \"cache_write_tokens\": 200, \"output_tokens\": 10, \"usage_convention\": \"provider\"}}\n"
    );
    let (status, r) = send(&responder, "jsonl", jsonl.clone()).await;
    assert_eq!(status, 403, "{r}");
    let (status, r) = send(&approver, "jsonl", jsonl.clone()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r, serde_json::json!({ "stored": 2, "duplicates": 0 }));
    let (_, r) = send(&approver, "jsonl", jsonl).await;
    assert_eq!(
        r,
        serde_json::json!({ "stored": 0, "duplicates": 2 }),
        "the same file twice adds nothing"
    );
    let costs: Vec<(String, String)> =
        sqlx::query_as("SELECT record_id, cost::text FROM llm_usage ORDER BY record_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    // gpt-4.1: 86 × $2 + 1920 × $0.50 + 300 × $8; Claude (its own counting: cache beside
    // input): 48 × $3 + 1800 × $0.30 + 200 × $3.75 + 10 × $15, per million.
    assert_eq!(costs[0], ("import:a1".to_string(), "0.003532".to_string()));
    assert_eq!(costs[1], ("import:a2".to_string(), "0.001584".to_string()));

    // CSV, a header line then records; one bad line refuses the whole file.
    let csv = format!(
        "id,started_at,provider,model,input_tokens,output_tokens,feature\n\
         c1,{at},openai,gpt-4.1-mini,1000,100,\"search, beta\"\n\
         c2,{at},openai,gpt-4.1-mini,lots,100,search\n\
         c3,{at},openai,gpt-4.1-mini,1000,-1,search\n"
    );
    let (status, e) = send(&approver, "csv", csv).await;
    assert_eq!(status, 422, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("line 3: input_tokens: a whole number"),
        "{msg}"
    );
    assert!(msg.contains("line 4: output tokens is negative"), "{msg}");
    assert_eq!(
        app.count("llm_usage").await,
        2,
        "nothing of the bad file was written"
    );
    let csv = format!(
        "id,started_at,provider,model,input_tokens,output_tokens,feature\nc1,{at},openai,gpt-4.1-mini,1000,100,\"search, beta\"\n"
    );
    let (status, r) = send(&approver, "csv", csv).await;
    assert_eq!(status, 200, "{r}");
    let feature: String =
        sqlx::query_scalar("SELECT feature FROM llm_usage WHERE record_id = 'import:c1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(feature, "search, beta");
    // Too old for the retention window: refused, nothing written.
    let old = r#"{"id": "o1", "started_at": "2019-01-01T00:00:00Z", "provider": "openai", "model": "gpt-4.1", "input_tokens": 1}"#.to_string();
    let (status, e) = send(&approver, "jsonl", old).await;
    assert_eq!(status, 422, "{e}");
    let calls: i64 = sqlx::query_scalar("SELECT sum(calls)::int8 FROM llm_usage_hourly")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(calls, 3);
}
