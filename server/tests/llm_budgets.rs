//! LLM budgets (issue 13): a weekly budget for a service whose calls cross 80% and 100% opens
//! one incident with a finding per threshold, once per period; approvers manage budgets, the
//! list shows spend, forecast and what was raised; bad budgets are refused.

mod common;

use common::TestApp;
use common::llm::{chat, export, ingest_token, request};
use domain::Role;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

#[sqlx::test(migrations = "../migrations")]
async fn a_budget_crossed_raises_once_per_threshold_and_period(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let approver = app.create_token("budget-approver", Role::Approver).await;
    let responder = app.create_token("budget-responder", Role::Responder).await;
    let post = |t: &str, body: serde_json::Value| {
        let req = app
            .plain()
            .post(app.url("/api/v1/llm/budgets"))
            .bearer_auth(t)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (
                status,
                res.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    // $0.01 a week for checkout; $50 a month for the search feature.
    let (status, b) = post(&approver, serde_json::json!({ "scope": "service", "name": "checkout", "period": "week", "amount": "0.01" })).await;
    assert_eq!(status, 201, "{b}");
    let (status, _) = post(&approver, serde_json::json!({ "scope": "feature", "name": "search", "period": "month", "amount": 50 })).await;
    assert_eq!(status, 201);
    for (t, body, want) in [
        (
            &responder,
            serde_json::json!({ "scope": "service", "name": "x", "period": "week", "amount": 1 }),
            403,
        ),
        (
            &approver,
            serde_json::json!({ "scope": "service", "name": "checkout", "period": "week", "amount": 5 }),
            409,
        ),
        (
            &approver,
            serde_json::json!({ "scope": "model", "name": "x", "period": "week", "amount": 1 }),
            422,
        ),
        (
            &approver,
            serde_json::json!({ "scope": "service", "name": "x", "period": "day", "amount": 1 }),
            422,
        ),
        (
            &approver,
            serde_json::json!({ "scope": "service", "name": "x", "period": "week", "amount": 0 }),
            422,
        ),
        (
            &approver,
            serde_json::json!({ "scope": "service", "name": "", "period": "week", "amount": 1 }),
            422,
        ),
    ] {
        let (status, e) = post(t, body).await;
        assert_eq!(status, want, "{e}");
    }
    assert_eq!(app.count("llm_budgets").await, 2);

    // Two calls: $0.007064 (70.6%): nothing yet. The budgets are evaluated at the end of
    // the calls' week, where the forecast is the spend: what a forecast raises, and when in
    // the period it may, is the table test of `crossings` (evaluated at the calls' own time,
    // this test would depend on the day: 70.6% spent in the first 70% of a week forecasts
    // over 100%).
    let at = OffsetDateTime::now_utc() - Duration::seconds(2);
    let now = domain::services::llm_budgets::period_bounds("week", at).1 - Duration::minutes(1);
    let call = |id: u8| chat(9, id, at, "gpt-4.1", (2006, 1920, 300), "search");
    assert_eq!(
        export(&app, &token, &request("checkout", vec![call(1), call(2)])).await,
        200
    );
    let raised = domain::services::llm_budgets::evaluate(&pool, now)
        .await
        .unwrap();
    assert_eq!(raised, 0);
    // A third: $0.010596 — over 100%: both thresholds, on the actual spend.
    assert_eq!(
        export(&app, &token, &request("checkout", vec![call(3)])).await,
        200
    );
    let raised_now = domain::services::llm_budgets::evaluate(&pool, now)
        .await
        .unwrap();
    assert_eq!(raised_now, 2);
    assert_eq!(
        domain::services::llm_budgets::evaluate(&pool, now)
            .await
            .unwrap(),
        0,
        "once per period"
    );
    let incidents: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, alert_group_key, severity::text FROM incidents")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].1, "llm-budget:service:checkout");
    let codes: Vec<String> =
        sqlx::query_scalar("SELECT code FROM findings WHERE incident_id = $1 ORDER BY code")
            .bind(incidents[0].0)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(codes, vec!["LLM_BUDGET_100", "LLM_BUDGET_80"]);

    let list: serde_json::Value = app
        .plain()
        .get(app.url("/api/v1/llm/budgets"))
        .bearer_auth(&responder)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let checkout = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "checkout")
        .unwrap();
    assert_eq!(checkout["spent"], "$0.0106");
    assert_eq!(checkout["raised"], serde_json::json!([80, 100]));
    assert!(checkout["spent_percent"].as_f64().unwrap() > 100.0);
    let search = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "search")
        .unwrap();
    assert_eq!(search["raised"], serde_json::json!([]));

    let id = checkout["id"].as_i64().unwrap();
    let del = |t: &str| {
        app.plain()
            .delete(app.url(&format!("/api/v1/llm/budgets/{id}")))
            .bearer_auth(t)
            .send()
    };
    assert_eq!(del(&responder).await.unwrap().status(), 403);
    assert_eq!(del(&approver).await.unwrap().status(), 204);
    assert_eq!(del(&approver).await.unwrap().status(), 404);
    assert_eq!(
        app.count("llm_budget_alerts").await,
        0,
        "its alerts went with it"
    );
}
