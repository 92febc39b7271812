//! The price book (issue 13): an unpriced call is priced by a later price (and the dry run
//! says exactly what applying does), a new version applies from its date only, overlapping
//! and malformed prices are refused naming the model and field, only admins change prices,
//! and LiteLLM's file goes in and comes out.

mod common;

use common::TestApp;
use common::llm::{chat, export, ingest_token, request};
use domain::Role;
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::str::FromStr;
use time::{Duration, OffsetDateTime};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn costs(pool: &PgPool) -> Vec<(String, Option<i64>, Option<Decimal>)> {
    sqlx::query_as("SELECT span_id, price_id, cost FROM llm_usage ORDER BY started_at, span_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Calls, cost and unpriced calls in the hourly rollups, checked equal to the daily ones
/// (with and without the tenant) plus the deltas not folded yet, then again after folding
/// them, and, by price version and day, to the records.
async fn rollup_cost(pool: &PgPool) -> (i64, Decimal, i64) {
    let sums = |fold: bool| async move {
        if fold {
            domain::services::llm::fold_rollups(pool, 3).await.unwrap();
            assert_eq!(
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM llm_rollup_delta")
                    .fetch_one(pool)
                    .await
                    .unwrap(),
                0,
                "every delta folded"
            );
        }
        let mut out = vec![];
        for table in [
            "llm_usage_hourly",
            "(SELECT price_id, calls, cost FROM llm_usage_daily
              UNION ALL SELECT price_id, calls, cost FROM llm_rollup_delta) d",
            "(SELECT price_id, calls, cost FROM llm_usage_daily_tenant
              UNION ALL SELECT price_id, calls, cost FROM llm_rollup_delta) d",
        ] {
            let s: (i64, Decimal, i64) = sqlx::query_as(&format!(
                "SELECT coalesce(sum(calls), 0)::int8, coalesce(sum(cost), 0),
                        coalesce(sum(calls) FILTER (WHERE price_id IS NULL), 0)::int8
                   FROM {table}"
            ))
            .fetch_one(pool)
            .await
            .unwrap();
            out.push(s);
        }
        assert_eq!(
            out[0], out[1],
            "daily rollups agree with the hourly ones (fold {fold})"
        );
        assert_eq!(
            out[0], out[2],
            "daily tenant rollups agree with the hourly ones (fold {fold})"
        );
        out[0]
    };
    let traces = |when: &'static str| async move {
        let disagree: i64 = sqlx::query_scalar(
            "WITH r AS (SELECT trace_id, count(*)::int8 AS calls, sum(cost) AS cost FROM llm_usage
                         WHERE trace_id IS NOT NULL AND cost IS NOT NULL GROUP BY trace_id),
                  t AS (SELECT trace_id, sum(calls)::int8 AS calls, sum(cost) AS cost
                          FROM (SELECT trace_id, calls, cost FROM llm_traces
                                UNION ALL SELECT trace_id, calls, cost FROM llm_trace_delta) x
                         GROUP BY trace_id)
             SELECT (SELECT count(*) FROM (SELECT * FROM r EXCEPT SELECT * FROM t) a)
                  + (SELECT count(*) FROM (SELECT * FROM t EXCEPT SELECT * FROM r) b)",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(disagree, 0, "trace costs = the records ({when})");
    };
    traces("before folding").await;
    let before = sums(false).await;
    assert_eq!(sums(true).await, before);
    traces("after folding").await;
    let disagree: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
           SELECT (started_at AT TIME ZONE 'UTC')::date AS day, price_id, count(*)::int8 AS calls,
                  coalesce(sum(cost), 0) AS cost
             FROM llm_usage GROUP BY 1, 2
           EXCEPT
           SELECT day, price_id, sum(calls)::int8, sum(cost) FROM llm_usage_daily GROUP BY 1, 2) x",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        disagree, 0,
        "daily rollups by day and price version = the records"
    );
    before
}

#[sqlx::test(migrations = "../migrations")]
async fn prices_apply_from_their_date_and_reprice_what_is_stored(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let admin = app.create_token("prices-admin", Role::Admin).await;
    let approver = app.create_token("prices-approver", Role::Approver).await;
    let t0 = (OffsetDateTime::now_utc() - Duration::days(3))
        .replace_nanosecond(0)
        .unwrap();
    // Three calls of a model nobody priced yet: day 0, day 1, day 2.
    let spans = (0..3u8)
        .map(|d| {
            chat(
                1,
                d + 1,
                t0 + Duration::days(i64::from(d)),
                "acme-llm-7b",
                (1000, 0, 100),
                "f",
            )
        })
        .collect();
    assert_eq!(export(&app, &token, &request("svc", spans)).await, 200);
    assert!(
        costs(&pool)
            .await
            .iter()
            .all(|c| c.1.is_none() && c.2.is_none())
    );
    assert_eq!(
        rollup_cost(&pool).await,
        (3, Decimal::ZERO, 3),
        "unpriced, never $0 of cost"
    );

    let post = |path: &str, token: &str, body: serde_json::Value| {
        let req = app
            .plain()
            .post(app.url(path))
            .bearer_auth(token)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let price = |from: String, input: &str| {
        serde_json::json!({ "add": [{ "provider": "openai", "model": "acme-llm-*", "effective_from": from,
            "input": input, "output": "4", "source": "our contract" }] })
    };
    // Dry run: all three would be priced at $1/M in, $4/M out: 1000 + 400 = $0.0014 each.
    let (status, dry) = post(
        "/api/v1/llm/prices?dry_run=true",
        &admin,
        price(t0.date().to_string(), "1"),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["applied"], false);
    assert_eq!(dry["diff"]["records"], 3);
    assert_eq!(dry["diff"]["newly_priced"], 3);
    assert_eq!(dry["diff"]["cost_after"], "$0.0042");
    assert!(
        costs(&pool).await.iter().all(|c| c.1.is_none()),
        "a dry run writes nothing"
    );
    assert_eq!(app.count("llm_prices").await, 0);
    // Only admins change prices.
    let (status, _) = post(
        "/api/v1/llm/prices",
        &approver,
        price(t0.date().to_string(), "1"),
    )
    .await;
    assert_eq!(status, 403);
    // Applied: exactly what the dry run said.
    let (status, applied) = post(
        "/api/v1/llm/prices",
        &admin,
        price(t0.date().to_string(), "1"),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], true);
    assert_eq!(
        applied["diff"], dry["diff"],
        "the dry run is what applying does"
    );
    let first = applied["added"][0].as_i64().unwrap();
    let c = costs(&pool).await;
    assert!(
        c.iter()
            .all(|x| x.1 == Some(first) && x.2 == Some(dec("0.0014"))),
        "{c:?}"
    );
    assert_eq!(
        rollup_cost(&pool).await,
        (3, dec("0.0042"), 0),
        "the rollups follow"
    );

    // The same key again without retiring the first: 409, nothing written.
    let (status, e) = post(
        "/api/v1/llm/prices",
        &admin,
        price(t0.date().to_string(), "2"),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acme-llm-*"),
        "{e}"
    );
    // A new version from day 1 (noon: the day-1 call at t0's time of day falls after it only
    // if t0 is past noon, so take the exact instant of the day-1 call).
    let day1 = t0 + Duration::days(1);
    let from = day1
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut body = price(from.clone(), "2");
    body["retire"] = serde_json::json!([first]);
    // The old price is retired and must still hold from t0: re-add it in the same change.
    body["add"].as_array_mut().unwrap().push(serde_json::json!({ "provider": "openai", "model": "acme-llm-*",
        "effective_from": t0.date().to_string(), "input": "1", "output": "4", "source": "our contract" }));
    let (status, r) = post("/api/v1/llm/prices", &admin, body).await;
    assert_eq!(status, 200, "{r}");
    // Day 0 keeps $1 (re-priced to the re-added row at the same cost); days 1 and 2 (at the
    // boundary instant and after) cost 2000 + 400 = $0.0024.
    let c = costs(&pool).await;
    assert_eq!(
        c[0].2,
        Some(dec("0.0014")),
        "before the new date: the old rate"
    );
    assert_eq!(
        c[1].2,
        Some(dec("0.0024")),
        "at the new date's first instant: the new rate"
    );
    assert_eq!(c[2].2, Some(dec("0.0024")));
    assert_eq!(r["diff"]["cost_before"], "$0.0042");
    assert_eq!(r["diff"]["cost_after"], "$0.0062");
    assert_eq!(rollup_cost(&pool).await, (3, dec("0.0062"), 0));
    // Every version stays visible, the retired one with the records it priced.
    let list: serde_json::Value = app
        .plain()
        .get(app.url("/api/v1/llm/prices"))
        .bearer_auth(&approver)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .any(|p| p["id"] == first && !p["retired_at"].is_null())
    );
    assert_eq!(
        rows.iter()
            .map(|p| p["records"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );

    // Bad input: a clear 422 naming the model and field; unknown fields refused.
    for (body, want) in [
        (
            serde_json::json!({ "add": [{ "provider": "openai", "model": "m1", "effective_from": "2026-01-01", "input": "-1", "output": "1" }] }),
            "m1: input: not negative",
        ),
        (
            serde_json::json!({ "add": [{ "provider": "openai", "model": "m2", "effective_from": "soon", "input": "1", "output": "1" }] }),
            "m2: effective_from",
        ),
        (
            serde_json::json!({ "add": [{ "provider": "openai", "model": "m3", "effective_from": "2026-01-01", "input": "1", "output": "1", "colour": "red" }] }),
            "colour",
        ),
        (
            serde_json::json!({ "add": [{ "provider": "openai", "model": "m4", "effective_from": "2026-01-01", "input": "abc", "output": "1" }] }),
            "input",
        ),
        (serde_json::json!({}), "nothing to change"),
    ] {
        let (status, e) = post("/api/v1/llm/prices", &admin, body).await;
        assert!(status == 422 || status == 400, "{status} {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{e} / {want}"
        );
    }
    let (status, _) = post(
        "/api/v1/llm/prices",
        &admin,
        serde_json::json!({ "retire": [999999] }),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.count("llm_prices").await,
        3,
        "nothing written by the refused changes"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn litellm_prices_in_and_out(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let admin = app.create_token("litellm-admin", Role::Admin).await;
    let at = OffsetDateTime::now_utc() - Duration::hours(1);
    // 2006 prompt tokens of which 1920 cached, 300 out.
    assert_eq!(
        export(
            &app,
            &token,
            &request(
                "svc",
                vec![chat(3, 1, at, "gpt-4.1", (2006, 1920, 300), "f")]
            )
        )
        .await,
        200
    );
    let file = r#"{
      "gpt-4.1": {"litellm_provider": "openai", "mode": "chat", "max_input_tokens": 1047576,
                  "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
                  "cache_read_input_token_cost": 5e-07, "input_cost_per_audio_token": 4e-05},
      "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "mode": "chat",
                  "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
                  "input_cost_per_token_above_200k_tokens": 2.5e-06,
                  "output_cost_per_token_above_200k_tokens": 1.5e-05}
    }"#;
    let day = (at - Duration::days(1)).date().to_string();
    let send = |q: String| {
        let req = app
            .plain()
            .post(app.url(&format!("/api/v1/llm/prices/litellm?{q}")))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(file);
        async move {
            let res = req.send().await.unwrap();
            (
                res.status().as_u16(),
                res.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, dry) = send(format!("effective_from={day}&dry_run=true")).await;
    assert_eq!(status, 200, "{dry}");
    // 86 × $2 + 1920 × $0.50 + 300 × $8 per million.
    assert_eq!(dry["diff"]["newly_priced"], 1);
    assert_eq!(dry["diff"]["cost_after"], "$0.0035");
    assert!(
        dry["diff"]["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "gpt-4.1: input_cost_per_audio_token")
    );
    let (status, _) = send("dry_run=true".into()).await;
    assert_eq!(status, 422, "effective_from is required");
    let (status, done) = send(format!("effective_from={day}")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["added"].as_array().unwrap().len(),
        3,
        "gpt-4.1, gemini base and above 200k"
    );
    let cost: Option<Decimal> = sqlx::query_scalar("SELECT cost FROM llm_usage")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cost, Some(dec("0.003532")));
    // Out again, in LiteLLM's shape.
    let out: serde_json::Value = app
        .plain()
        .get(app.url("/api/v1/llm/prices/litellm"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["gpt-4.1"]["litellm_provider"], "openai");
    assert_eq!(out["gpt-4.1"]["input_cost_per_token"].as_f64(), Some(2e-06));
    assert_eq!(
        out["gpt-4.1"]["cache_read_input_token_cost"].as_f64(),
        Some(5e-07)
    );
    assert_eq!(
        out["gemini/gemini-2.5-pro"]["input_cost_per_token_above_200k_tokens"].as_f64(),
        Some(2.5e-06)
    );
}

/// The price book page: a change is previewed first (a GET that writes nothing, shown without
/// JavaScript), then applied by the form's second step; only admins may do either; what was
/// typed is shown back as text, never as markup.
#[sqlx::test(migrations = "../migrations")]
async fn the_price_book_page_previews_then_applies(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let t0 = (OffsetDateTime::now_utc() - Duration::days(1))
        .replace_nanosecond(0)
        .unwrap();
    let spans = (0..2u8)
        .map(|i| chat(1, i + 1, t0, "acme-llm-9b", (1_000_000, 0, 0), "f"))
        .collect();
    assert_eq!(export(&app, &token, &request("svc", spans)).await, 200);
    let prices_before = app.count("llm_prices").await;
    let from = (t0 - Duration::days(1)).date().to_string();
    let fields = [
        ("provider", "openai"),
        ("model", "acme-llm-9b"),
        ("effective_from", from.as_str()),
        ("input", "1.5"),
        ("output", "2"),
        ("source", "\"><svg onload=alert(1)>"),
    ];
    let query: String = fields
        .iter()
        .map(|(k, v)| format!("&{k}={}", urlencoding(v)))
        .collect();

    let admin = app.signed_in("pb-admin", Role::Admin).await;
    let (status, html) =
        common::page(&admin, &app, &format!("/costs/prices?preview=1{query}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("2 stored records change price"), "{html}");
    assert!(html.contains("2 become priced"), "{html}");
    assert!(html.contains("Apply this change"));
    assert!(
        !html.contains("<svg onload"),
        "the source broke out of its attribute"
    );
    assert_eq!(
        app.count("llm_prices").await,
        prices_before,
        "a preview writes nothing"
    );
    assert_eq!(rollup_cost(&pool).await, (2, dec("0"), 2));

    // A viewer sees the book but may not preview or apply a change.
    let viewer = app.signed_in("pb-viewer", Role::Viewer).await;
    let (status, html) = common::page(&viewer, &app, "/costs/prices").await;
    assert_eq!(status, 200);
    assert!(html.contains("gpt-4.1"), "the default prices are listed");
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("apply", "1"));
    let res = common::call_fn(&viewer, &app, "costs/prices/change", &form).await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.count("llm_prices").await, prices_before);

    // The admin applies it: the browser without JavaScript is sent back to the book.
    let res = admin
        .post(app.url("/api/fn/costs/prices/change"))
        .header("accept", "text/html")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(
        res.headers()["location"],
        "/costs/prices?applied=1&added=1&retired=0"
    );
    assert_eq!(app.count("llm_prices").await, prices_before + 1);
    // 1M input tokens at $1.5/M, twice.
    assert_eq!(rollup_cost(&pool).await, (2, dec("3"), 0));
    let (_, html) = common::page(&admin, &app, "/costs/prices?applied=1&added=1&retired=0").await;
    assert!(html.contains("Applied: 1 added, 0 retired"));
    assert!(html.contains("acme-llm-9b"));
    let at = html
        .find("svg onload")
        .map(|i| html[i.saturating_sub(40)..i + 30].to_string());
    assert!(
        !html.contains("<svg onload") && html.contains("&lt;svg onload=alert(1)&gt;"),
        "the source as text: {at:?}"
    );
    let id: i64 = sqlx::query_scalar("SELECT id FROM llm_prices WHERE model = 'acme-llm-9b'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "retire={id}&amp;provider=openai&amp;model=acme-llm-9b"
        )),
        "an Edit link replacing the row"
    );

    // A typo is named before anything is written.
    let res = common::call_fn(
        &admin,
        &app,
        "costs/prices/change",
        &[
            ("model", "m"),
            ("provider", "openai"),
            ("input", "1,5"),
            ("output", "2"),
            ("apply", "1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("input"));
    assert_eq!(app.count("llm_prices").await, prices_before + 1);
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
