//! The trace breakdown probe (issue 16) against a **real Jaeger** (v2, in-memory storage)
//! fed by the **OpenTelemetry SDK** (Python, OTLP/HTTP) with traces of known shape
//! (`scripts/lib/trace_shapes.py`): the breakdown's percentages equal the constructed ones;
//! the N+1 queries, the retry, the sequential calls, the orphan span and the request id
//! that crossed into a second trace are each found. Also: a trace id Jaeger does not have,
//! bad parameters refused before anything runs, Jaeger down and hanging.

mod common;

use common::jaeger::Jaeger;
use common::{TestApp, fact, free_port, run_findings as findings};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant};

async fn target(app: &TestApp, admin: &str, name: &str, url: &str) -> i64 {
    let (s, t) = app
        .post(
            admin,
            "/api/v1/targets",
            json!({"name": name, "kind": "traces", "connection": format!("jaeger+{url}"), "environment": "test"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_i64().unwrap()
}

/// The category table of a breakdown: category → share.
fn shares(f: &Value) -> Vec<(String, String)> {
    let t = f["evidence"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == "critical path by category")
        .unwrap();
    t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn run(app: &TestApp, token: &str, t: i64, params: Value) -> Value {
    common::probe_run(app, token, t, "traces", params, None).await
}

#[sqlx::test(migrations = "../migrations")]
async fn the_breakdown_of_real_traces_equals_their_construction(pool: PgPool) {
    let jaeger = Jaeger::start().await;
    let ids = jaeger.send_shapes().await;
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "jaeger", &jaeger.query).await;
    let (s, check) = app
        .post(&admin, &format!("/api/v1/targets/{t}/test"), json!({}))
        .await;
    assert_eq!(s, 200, "{check}");
    assert!(check.to_string().contains("checkout"), "{check}");

    // The checkout trace: 1,000 ms — database 20 %, LLM 40 %, outbound 20 %, own code 20 %.
    let d = run(&app, &responder, t, json!({"trace_id": ids["checkout"]})).await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    let b = findings(&d, "TRACE_BREAKDOWN");
    assert_eq!(b.len(), 1, "{d}");
    assert_eq!(fact(b[0], "duration"), "1000 ms");
    assert_eq!(fact(b[0], "spans"), "15");
    assert_eq!(
        shares(b[0]),
        vec![
            ("LLM".to_string(), "40.0 %".to_string()),
            ("database".to_string(), "20.0 %".to_string()),
            ("outbound HTTP/gRPC".to_string(), "20.0 %".to_string()),
            ("own code".to_string(), "20.0 %".to_string()),
        ],
        "{}",
        b[0]
    );
    let n1 = findings(&d, "TRACE_N_PLUS_ONE");
    assert_eq!(n1.len(), 1, "{d}");
    assert_eq!(fact(n1[0], "times"), "10");
    assert_eq!(
        fact(n1[0], "query shape"),
        "SELECT * FROM items WHERE id = ?"
    );
    assert!(fact(n1[0], "span").ends_with("load cart"));
    let r = findings(&d, "TRACE_RETRIES");
    assert_eq!(r.len(), 1, "{d}");
    assert_eq!(fact(r[0], "attempts"), "2");
    assert!(
        fact(r[0], "failed attempts' time").starts_with("100 ms (10.0 %"),
        "{}",
        r[0]
    );
    let e = findings(&d, "TRACE_ERRORS");
    assert_eq!(e.len(), 1);
    assert!(e[0].to_string().contains("payment gateway answered 503"));
    assert!(findings(&d, "TRACE_BROKEN_CONTEXT").is_empty(), "{d}");

    // Three independent calls in a row: 900 ms that could be about 400.
    let d = run(&app, &responder, t, json!({"trace_id": ids["sequential"]})).await;
    let s = findings(&d, "TRACE_SEQUENTIAL_CALLS");
    assert_eq!(s.len(), 1, "{d}");
    assert_eq!(fact(s[0], "their time in sequence"), "900 ms");
    assert_eq!(fact(s[0], "in parallel, about"), "400 ms");

    // A span whose parent never arrived.
    let d = run(&app, &responder, t, json!({"trace_id": ids["orphan"]})).await;
    let o = findings(&d, "TRACE_BROKEN_CONTEXT");
    assert_eq!(o.len(), 1, "{d}");
    assert_eq!(fact(o[0], "orphan spans"), "1");

    // req-42 in checkout's trace and in the mailer's new one: the hop that broke the chain.
    let d = run(&app, &responder, t, json!({"correlation_id": "req-42"})).await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    let bc = findings(&d, "TRACE_BROKEN_CONTEXT");
    assert_eq!(bc.len(), 1, "{d}");
    assert_eq!(fact(bc[0], "traces"), "2");
    let starts: Vec<&str> = bc[0]["evidence"]["tables"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_str().unwrap())
        .collect();
    assert!(
        starts.contains(&"checkout") && starts.contains(&"mailer"),
        "{starts:?}"
    );
    assert_eq!(
        findings(&d, "TRACE_BREAKDOWN").len(),
        2,
        "both traces broken down"
    );

    // The slowest traces of a service lately.
    let d = run(
        &app,
        &responder,
        t,
        json!({"service": "checkout", "slowest": "2", "lookback_m": "10"}),
    )
    .await;
    let b = findings(&d, "TRACE_BREAKDOWN");
    assert_eq!(b.len(), 2, "{d}");
    assert_eq!(fact(b[0], "duration"), "1000 ms", "the slowest first");

    // A trace Jaeger does not have.
    let d = run(
        &app,
        &responder,
        t,
        json!({"trace_id": "0123456789abcdef0123456789abcdef"}),
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    assert_eq!(findings(&d, "TRACE_NOT_FOUND").len(), 1, "{d}");
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_parameters_refused_dead_and_hanging_jaeger_are_findings(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(
        &app,
        &admin,
        "jaeger-dead",
        &format!("http://127.0.0.1:{}", free_port()),
    )
    .await;
    let before = app.count("probe_runs").await;
    for (params, needle) in [
        (json!({}), "trace_id"),
        (json!({"trace_id": "xyz"}), "hexadecimal"),
        (json!({"trace_id": "../../api/services"}), "hexadecimal"),
        (json!({"service": "a\u{7}b"}), "control"),
    ] {
        let (s, e) = app
            .post(
                &responder,
                &format!("/api/v1/targets/{t}/probe-runs"),
                json!({"probe": "traces", "params": params}),
            )
            .await;
        assert_eq!(s, 422, "{params}: {e}");
        assert!(e.to_string().contains(needle), "{params}: {e}");
    }
    assert_eq!(app.count("probe_runs").await, before);
    // Tempo is said to be unsupported, not silently accepted.
    let (s, e) = app
        .post(
            &admin,
            "/api/v1/targets",
            json!({"name": "tempo", "kind": "traces", "connection": "tempo+http://127.0.0.1:3200", "environment": "test"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("not supported yet"));

    let d = run(&app, &responder, t, json!({"service": "checkout"})).await;
    assert_eq!(d["run"]["status"], "failed", "{d}");
    assert_eq!(findings(&d, "TARGET_UNREACHABLE").len(), 1, "{d}");

    let addr = common::hanging_listener().await;
    let t = target(&app, &admin, "jaeger-hang", &format!("http://{addr}")).await;
    let started = Instant::now();
    let d = run(
        &app,
        &responder,
        t,
        json!({"service": "checkout", "step_timeout_s": "2"}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(d["run"]["status"], "timed_out", "{d}");
    assert_eq!(findings(&d, "TARGET_TIMEOUT").len(), 1, "{d}");
}
