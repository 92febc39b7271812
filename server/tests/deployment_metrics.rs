//! Metric items of deployment checklists (issue 12) against a **real Prometheus** scraping a
//! real exporter: items pass, fail and go inconclusive (empty result, a PromQL error,
//! Prometheus down, Prometheus hanging) through the evaluation loop, every measurement kept
//! as evidence and in the record; a failed item blocks the deployment, a re-run after the
//! fix passes it; target bindings are checked before anything is written.

mod common;

use common::{Exporter, Prometheus, TestApp, dep_item as item};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant};

const TEMPLATE: &str = r#"id: api-release
name: API release
sections:
  pre:
    - id: error-rate
      kind: metric
      text: Error rate below 1%
      target: prometheus
      query: max(checkout_error_ratio{service="{{service}}"})
      success: result < 0.01
      interval: 1s
      count: 2
    - id: no-such-metric
      kind: metric
      text: A metric nobody exports
      target: prometheus
      query: absent_metric_for_lookout_tests{service="{{service}}"}
      success: result < 1
      interval: 1s
      required: false
    - id: bad-promql
      kind: metric
      text: A query Prometheus refuses
      target: prometheus
      query: sum(rate(
      success: result < 1
      interval: 1s
      required: false
  post:
    - id: latency
      kind: metric
      text: p99 below 500 ms on every instance
      target: prometheus
      query: checkout_latency_p99_ms
      success: all(result < 500)
      interval: 1s
"#;

fn metrics(error_ratio: f64) -> String {
    format!(
        "checkout_error_ratio{{service=\"checkout\"}} {error_ratio}\nchekout_other 1\ncheckout_latency_p99_ms{{instance=\"a\"}} 120\ncheckout_latency_p99_ms{{instance=\"b\"}} 180\n"
    )
}

struct World {
    app: TestApp,
    admin: String,
    approver: String,
    exporter: Exporter,
    prom: Prometheus,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn world(pool: PgPool) -> World {
    let exporter = Exporter::start(&metrics(0.001)).await;
    let prom = Prometheus::start(std::slice::from_ref(&exporter.addr)).await;
    let app = TestApp::spawn(pool.clone()).await;
    let stop = common::spawn_checks(pool, Duration::from_secs(3));
    let admin = app.create_token("admin", Role::Admin).await;
    let approver = app.create_token("tpl", Role::Approver).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(TEMPLATE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    prom.wait_for("checkout_error_ratio").await;
    World {
        app,
        admin,
        approver,
        exporter,
        prom,
        _stop: stop,
    }
}

async fn target(w: &World, name: &str, url: &str, labels: Value) {
    let (s, t) = w
        .app
        .post(
            &w.admin,
            "/api/v1/targets",
            json!({"name": name, "kind": "prometheus", "connection": url, "environment": "production", "labels": labels}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
}

async fn open(w: &World, binding: &str) -> (u16, Value) {
    w.app
        .post(
            &w.admin,
            "/api/v1/deployments",
            json!({"service": "checkout", "environment": "staging", "version": "2.0.0", "template": "api-release",
                   "targets": {"prometheus": binding}}),
        )
        .await
}

/// Polls until `id` leaves `running`.
async fn settled(w: &World, key: &str, id: &str, limit: Duration) -> Value {
    common::settled(&w.app, &w.admin, key, id, limit).await
}

#[sqlx::test(migrations = "../migrations")]
async fn metric_items_pass_fail_and_go_inconclusive_against_a_real_prometheus(pool: PgPool) {
    let w = world(pool).await;
    target(&w, "prom-main", &w.prom.url, json!({"service": "checkout"})).await;
    // "Test connection" on a Prometheus target: its version and what it scrapes.
    let (s, r) = w
        .app
        .post(&w.admin, "/api/v1/targets/1/test", json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert!(r.to_string().contains("2."), "the server version: {r}");
    assert!(r.to_string().contains("targets up"), "{r}");

    // A healthy service: the error-rate item passes after its two measurements.
    let (s, d) = open(&w, "service=checkout, environment=production").await;
    assert_eq!(s, 201, "{d}");
    let key = d["deployment"]["key"].as_str().unwrap().to_string();
    assert_eq!(
        item(&d, "error-rate")["state"],
        "running",
        "pre items start at creation"
    );
    assert_eq!(item(&d, "error-rate")["target"], "prom-main");
    assert_eq!(
        item(&d, "error-rate")["metric"]["query"],
        "max(checkout_error_ratio{service=\"checkout\"})",
        "the service is filled in"
    );
    assert_eq!(
        item(&d, "latency")["state"],
        "pending",
        "post items wait for their section"
    );
    let d = settled(&w, &key, "error-rate", Duration::from_secs(20)).await;
    let it = item(&d, "error-rate");
    assert_eq!(it["state"], "passed", "{it:#}");
    assert_eq!(it["set_by"], "lookout");
    let m = it["measurements"].as_array().unwrap();
    assert_eq!(m.len(), 2, "count: 2 → two measurements: {it:#}");
    assert!(
        m.iter()
            .all(|m| m["phase"] == "successful" && m["values"][0]["value"] == "0.001"),
        "{m:?}"
    );

    // No data is inconclusive, never a pass; a PromQL error is evidence, not a 500.
    let d = settled(&w, &key, "no-such-metric", Duration::from_secs(20)).await;
    let it = item(&d, "no-such-metric");
    assert_eq!(it["state"], "inconclusive", "{it:#}");
    assert!(
        it["measurements"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no series"),
        "{it:#}"
    );
    let d = settled(&w, &key, "bad-promql", Duration::from_secs(20)).await;
    let it = item(&d, "bad-promql");
    assert_eq!(it["state"], "inconclusive", "{it:#}");
    let msg = it["measurements"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("bad_data") && msg.contains("parse error"),
        "{msg}"
    );

    // The record keeps every measurement.
    let (_, events) = w
        .app
        .get(&w.admin, &format!("/api/v1/deployments/{key}/events"))
        .await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.iter().filter(|k| **k == "measurement").count() >= 4,
        "{kinds:?}"
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deployment_measurements")
            .fetch_one(&w.app.pool)
            .await
            .unwrap(),
        4
    );
    // … append-only, in the database.
    assert!(
        sqlx::query("UPDATE deployment_measurements SET phase = 'successful'")
            .execute(&w.app.pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM deployment_measurements")
            .execute(&w.app.pool)
            .await
            .is_err()
    );

    // A metric item is not checked by hand.
    let (s, e) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{key}/items/error-rate"),
            json!({"action": "check"}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("re-run"),
        "{e}"
    );

    // The service goes bad: a new deployment's error-rate item fails and blocks submission.
    w.exporter.set(&metrics(0.2));
    w.prom.wait_for("checkout_error_ratio > 0.1").await;
    let (s, d) = open(&w, "prom-main").await;
    assert_eq!(s, 201, "{d}");
    let bad = d["deployment"]["key"].as_str().unwrap().to_string();
    let d = settled(&w, &bad, "error-rate", Duration::from_secs(20)).await;
    let it = item(&d, "error-rate");
    assert_eq!(it["state"], "failed", "{it:#}");
    assert!(
        it["note"]
            .as_str()
            .unwrap()
            .contains("result < 0.01 does not hold"),
        "{it:#}"
    );
    assert_eq!(
        it["measurements"].as_array().unwrap().len(),
        1,
        "failure_limit 0: the first failure ends the run"
    );
    assert!(
        d["blocking"].to_string().contains("error-rate is failed"),
        "{d}"
    );
    let (s, e) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/transition"),
            json!({"to": "awaiting_approval"}),
        )
        .await;
    assert_eq!(s, 409, "{e}");

    // It went wrong: one click opens an incident with the failed item as a finding, linked
    // both ways; a second click answers with the same incident.
    let (s, r) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/incidents"),
            json!({"severity": "SEV1"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let inc = r["incident"].as_str().unwrap().to_string();
    let (s, r2) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/incidents"),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, r2["incident"].as_str().unwrap()),
        (200, inc.as_str()),
        "reused, not a second one"
    );
    let (_, i) = w
        .app
        .get(&w.admin, &format!("/api/v1/incidents/{inc}"))
        .await;
    assert_eq!(i["severity"], "SEV1");
    assert_eq!(i["services"], json!(["checkout"]));
    assert_eq!(i["environment"], "staging");
    assert!(
        i["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("/deployments/{bad}")),
        "{i:#}"
    );
    let findings = i["findings"].as_array().unwrap();
    let f = findings
        .iter()
        .find(|f| f["code"] == "DEPLOY_ITEM_FAILED")
        .expect("the failed item is a finding");
    assert_eq!(f["severity"], "critical");
    assert!(
        f["evidence"]["facts"]
            .to_string()
            .contains("max(checkout_error_ratio"),
        "{f:#}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f["title"].as_str().unwrap().contains(&bad)),
        "only this deployment's items"
    );
    assert!(
        i["timeline"]
            .to_string()
            .contains(&format!("Linked to deployment {bad}"))
    );
    let (_, linked) = w
        .app
        .get(&w.admin, &format!("/api/v1/deployments/{bad}/incidents"))
        .await;
    assert_eq!(linked[0]["key"], inc.as_str());
    let (_, ev) = w
        .app
        .get(&w.admin, &format!("/api/v1/deployments/{bad}/events"))
        .await;
    assert!(
        ev.to_string()
            .contains(&format!("opened {inc} for this deployment"))
    );
    // The incident's page lists its deployments: the linked one, and the other one of the
    // same service and environment around that time.
    let viewer = w.app.signed_in("vince", Role::Viewer).await;
    let html = common::page(&viewer, &w.app, &format!("/incidents/{inc}"))
        .await
        .1;
    assert!(html.contains("id=\"deployments-near\""), "the panel");
    assert!(
        html.contains(&format!("data-deployment=\"{bad}\""))
            && html.contains(&format!("data-deployment=\"{key}\"")),
        "both deployments"
    );
    assert_eq!(
        html.matches("<strong>linked</strong>").count(),
        1,
        "one of them linked"
    );
    let html = common::page(&viewer, &w.app, &format!("/deployments/{bad}"))
        .await
        .1;
    assert!(
        html.contains(&format!("href=\"/incidents/{inc}\"")),
        "linked back"
    );
    assert!(
        !html.contains("open-incident-form"),
        "a viewer cannot open one"
    );

    // Fixed, re-run: a new run passes (the failed run stays in the evidence).
    w.exporter.set(&metrics(0.0));
    w.prom.wait_for("checkout_error_ratio < 0.001").await;
    let (s, d) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/items/error-rate"),
            json!({"action": "rerun"}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(item(&d, "error-rate")["state"], "running");
    assert_eq!(item(&d, "error-rate")["run"], 2);
    let d = settled(&w, &bad, "error-rate", Duration::from_secs(20)).await;
    let it = item(&d, "error-rate");
    assert_eq!(it["state"], "passed", "{it:#}");
    let runs: Vec<i64> = it["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["run"].as_i64().unwrap())
        .collect();
    assert_eq!(runs, vec![1, 2, 2], "{it:#}");

    // Post items run at verifying, with all(…) over every instance.
    let (s, d) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/transition"),
            json!({"to": "awaiting_approval"}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d["deployment"]["status"], "awaiting_approval",
        "staging needs one approval"
    );
    let bob = w.app.signed_in("bob", Role::Approver).await;
    let (s, d) = common::json_req(
        &bob,
        &w.app,
        reqwest::Method::POST,
        &format!("/api/v1/deployments/{bad}/approvals"),
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    for step in ["started", "finished"] {
        let (s, d) = w
            .app
            .post(
                &w.admin,
                &format!("/api/v1/deployments/{bad}/events"),
                json!({"event": step}),
            )
            .await;
        assert_eq!(s, 200, "{step}: {d}");
    }
    let (_, d) = w
        .app
        .get(&w.admin, &format!("/api/v1/deployments/{bad}"))
        .await;
    assert_eq!(d["deployment"]["status"], "verifying", "{d}");
    assert_eq!(
        item(&d, "latency")["state"],
        "running",
        "post items start at verifying"
    );
    let d = settled(&w, &bad, "latency", Duration::from_secs(20)).await;
    let it = item(&d, "latency");
    assert_eq!(it["state"], "passed", "{it:#}");
    assert_eq!(it["measurements"][0]["series"], 2, "both instances: {it:#}");
    let (s, g) = w
        .app
        .get(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/gate?phase=post"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(g["allowed"], false, "verifying is not done yet: {g}");
    let (s, d) = w
        .app
        .post(
            &w.admin,
            &format!("/api/v1/deployments/{bad}/transition"),
            json!({"to": "done"}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    let (_, g) = w
        .app
        .get(
            &w.approver,
            &format!("/api/v1/deployments/{bad}/gate?phase=post"),
        )
        .await;
    assert_eq!(g["allowed"], true, "{g}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_prometheus_that_is_down_or_hangs_is_inconclusive_and_delays_nobody(pool: PgPool) {
    let w = world(pool).await;
    target(&w, "prom-main", &w.prom.url, json!({})).await;
    // Down: nothing listens there.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    target(&w, "prom-down", &dead, json!({})).await;
    // Hanging: accepts connections, never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}", hang.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    target(&w, "prom-hang", &hang_url, json!({})).await;

    let (s, d) = open(&w, "prom-down").await;
    assert_eq!(s, 201, "{d}");
    let down = d["deployment"]["key"].as_str().unwrap().to_string();
    let (s, d) = open(&w, "prom-hang").await;
    assert_eq!(s, 201, "{d}");
    let hung = d["deployment"]["key"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let (s, d) = open(&w, "prom-main").await;
    assert_eq!(s, 201, "{d}");
    let good = d["deployment"]["key"].as_str().unwrap().to_string();

    // The healthy Prometheus's item passes on schedule (two 1 s measurements), while the
    // hanging one's measurements wait out their limit.
    let d = settled(&w, &good, "error-rate", Duration::from_secs(20)).await;
    assert_eq!(item(&d, "error-rate")["state"], "passed", "{d:#}");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "a hanging Prometheus delayed another: {:?}",
        t0.elapsed()
    );

    let d = settled(&w, &down, "error-rate", Duration::from_secs(20)).await;
    let it = item(&d, "error-rate");
    assert_eq!(it["state"], "inconclusive", "{it:#}");
    assert!(
        it["note"].as_str().unwrap().contains("cannot connect"),
        "{it:#}"
    );
    assert_eq!(
        d["deployment"]["status"], "draft",
        "never approved by accident"
    );
    let (s, g) = w
        .app
        .get(
            &w.admin,
            &format!("/api/v1/deployments/{down}/gate?phase=pre"),
        )
        .await;
    assert_eq!((s, g["allowed"].clone()), (200, json!(false)), "{g}");

    let d = settled(&w, &hung, "error-rate", Duration::from_secs(20)).await;
    let it = item(&d, "error-rate");
    assert_eq!(it["state"], "inconclusive", "{it:#}");
    assert!(
        it["note"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{it:#}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn target_bindings_are_checked_before_anything_is_written(pool: PgPool) {
    let w = world(pool).await;
    target(&w, "prom-a", &w.prom.url, json!({"service": "checkout"})).await;
    target(
        &w,
        "prom-b",
        &w.prom.url,
        json!({"service": "checkout", "region": "eu"}),
    )
    .await;
    let (s, e) = w
        .app
        .post(
            &w.admin,
            "/api/v1/deployments",
            json!({"service": "checkout", "environment": "staging", "version": "1", "template": "api-release"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("targets.prometheus"),
        "{e}"
    );
    for (binding, want) in [
        ("nope", "no prometheus target is named \"nope\""),
        ("service=checkout", "matches 2 prometheus targets"),
        ("service=billing", "no prometheus target matches"),
    ] {
        let (s, e) = open(&w, binding).await;
        assert_eq!(s, 422, "{binding}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{binding}: {e}"
        );
    }
    let (s, e) = w
        .app
        .post(
            &w.admin,
            "/api/v1/deployments",
            json!({"service": "checkout", "environment": "staging", "version": "1", "template": "api-release",
                   "targets": {"prometheus": "prom-a", "kafka": "x"}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no binding \"kafka\""),
        "{e}"
    );
    // A Redis target is not a Prometheus one.
    let (s, _) = w
        .app
        .post(&w.admin, "/api/v1/targets", json!({"name": "cache", "kind": "redis", "connection": "redis://127.0.0.1:1/0", "environment": "production"}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(open(&w, "cache").await.0, 422);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deployments")
            .fetch_one(&w.app.pool)
            .await
            .unwrap(),
        0,
        "nothing written"
    );
    let (s, d) = open(&w, "service=checkout, region=eu").await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(item(&d, "error-rate")["target"], "prom-b");
}
