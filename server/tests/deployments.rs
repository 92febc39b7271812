//! Deployments of manual checklist items (issue 12): the whole path a release takes — items
//! checked (notes where required), submit, sign-off with separation of duties and counts per
//! environment, approvals voided by a later change, start, verify, done — and the CI gate's
//! answers at every step, including its long poll. Real PostgreSQL, real HTTP.

mod common;

use common::{TestApp, json_req};
use domain::Role;
use reqwest::Method as M;
use serde_json::{Value, json};
use sqlx::PgPool;

const TEMPLATE: &str = "id: web-release
name: Web release
sections:
  pre:
    - {id: tests-green, kind: manual, text: All tests pass, requires_note: true}
    - {id: nice-to-have, kind: manual, text: Changelog, required: false}
  during:
    - {id: watch, kind: manual, text: Watch the error rate}
  post:
    - {id: smoke, kind: manual, text: Smoke test}
";

async fn setup(app: &TestApp) -> String {
    let token = app.create_token("tpl", Role::Approver).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(TEMPLATE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    token
}

async fn open(app: &TestApp, c: &reqwest::Client, env: &str) -> String {
    let (s, d) = json_req(
        c,
        app,
        M::POST,
        "/api/v1/deployments",
        Some(json!({"service": "checkout", "environment": env, "version": "1.4.2", "template": "web-release",
            "commit": "9f2c1ab", "pipeline_url": "https://ci.example/pipelines/7"})),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["deployment"]["status"], "draft");
    d["deployment"]["key"].as_str().unwrap().to_string()
}

async fn gate(app: &TestApp, c: &reqwest::Client, key: &str, phase: &str) -> Value {
    let (s, g) = json_req(
        c,
        app,
        M::GET,
        &format!("/api/v1/deployments/{key}/gate?phase={phase}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{g}");
    g
}

async fn post(app: &TestApp, c: &reqwest::Client, path: String, body: Value) -> (u16, Value) {
    json_req(c, app, M::POST, &path, Some(body)).await
}

#[sqlx::test(migrations = "../migrations")]
async fn a_production_release_from_checklist_to_done(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = setup(&app).await;
    let alice = app.signed_in("alice", Role::Approver).await; // the requester
    let bob = app.signed_in("bob", Role::Approver).await;
    let carol = app.signed_in("carol", Role::Approver).await;
    let key = open(&app, &alice, "production").await;
    let k = |p: &str| format!("/api/v1/deployments/{key}{p}");

    let g = gate(&app, &alice, &key, "pre").await;
    assert_eq!(g["allowed"], false);
    assert_eq!(
        g["blocking"],
        json!(["pre item tests-green is pending", "0 of 2 approvals"])
    );

    // Not yet: a required pre item is pending (the optional one never blocks).
    let (s, e) = post(
        &app,
        &alice,
        k("/transition"),
        json!({"to": "awaiting_approval"}),
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pre item tests-green is pending")
    );
    // The item needs a note; without one nothing is written.
    let events_before = app.count("deployment_events").await;
    let (s, _) = post(
        &app,
        &alice,
        k("/items/tests-green"),
        json!({"action": "check"}),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(app.count("deployment_events").await, events_before);
    let (s, d) = post(
        &app,
        &alice,
        k("/items/tests-green"),
        json!({"action": "check", "note": "build 812 green"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["items"][0]["state"], "checked");
    assert_eq!(d["items"][0]["set_by"], "alice");
    // Only the open section's items change.
    let (s, e) = post(&app, &alice, k("/items/smoke"), json!({"action": "check"})).await;
    assert_eq!(s, 409, "{e}");
    let (s, d) = post(
        &app,
        &alice,
        k("/transition"),
        json!({"to": "awaiting_approval"}),
    )
    .await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("awaiting_approval")),
        "{d}"
    );

    // Separation of duties: not the requester; a token cannot sign; one person counts once.
    let (s, e) = post(
        &app,
        &alice,
        k("/approvals"),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("separation of duties")
    );
    let (s, e) = app
        .post(&token, &k("/approvals"), json!({"decision": "approve"}))
        .await;
    assert_eq!(s, 403, "{e}");
    let (s, d) = post(&app, &bob, k("/approvals"), json!({"decision": "approve"})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (
            d["approvals_given"].clone(),
            d["deployment"]["status"].clone()
        ),
        (json!(1), json!("awaiting_approval"))
    );
    let (s, _) = post(&app, &bob, k("/approvals"), json!({"decision": "approve"})).await;
    assert_eq!(s, 409);
    let snap = d["approvals"][0]["snapshot"].as_str().unwrap();
    assert!(
        snap.contains("\"item\":\"tests-green\"") && snap.contains("\"state\":\"checked\""),
        "{snap}"
    );
    assert_eq!(
        d["approvals"][0]["snapshot_sha256"].as_str().unwrap().len(),
        64
    );

    // A change to a pre item after sign-off voids it.
    let (s, d) = post(
        &app,
        &alice,
        k("/items/tests-green"),
        json!({"action": "uncheck"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(d["approvals_given"], 0);
    assert!(d["approvals"][0]["voided_at"].is_string());
    assert!(
        d["approvals"][0]["voided_reason"]
            .as_str()
            .unwrap()
            .contains("tests-green")
    );
    let (s, _) = post(
        &app,
        &alice,
        k("/items/tests-green"),
        json!({"action": "check", "note": "build 813 green"}),
    )
    .await;
    assert_eq!(s, 200);
    // Bob signs again (his voided approval does not count), then Carol: approved.
    let (s, _) = post(&app, &bob, k("/approvals"), json!({"decision": "approve"})).await;
    assert_eq!(s, 200);
    assert_eq!(
        gate(&app, &bob, &key, "pre").await["blocking"],
        json!(["1 of 2 approvals"])
    );
    // The gate's long poll answers as soon as it turns.
    let waiting = {
        let (c, url) = (bob.clone(), app.url(&k("/gate?phase=pre&wait=20")));
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let g: Value = c.get(url).send().await.unwrap().json().await.unwrap();
            (g, t.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (s, d) = post(
        &app,
        &carol,
        k("/approvals"),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("approved")),
        "{d}"
    );
    let (g, took) = waiting.await.unwrap();
    assert_eq!(g["allowed"], true, "{g}");
    assert!(
        took.as_secs_f64() < 5.0,
        "the long poll answered when it turned: {took:?}"
    );
    assert_eq!(gate(&app, &alice, &key, "post").await["allowed"], false);

    // Start, verify (blocked by the during item), done.
    let (s, d) = post(&app, &alice, k("/transition"), json!({"to": "in_progress"})).await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("in_progress"))
    );
    assert!(d["deployment"]["started_at"].is_string());
    let (s, _) = post(&app, &alice, k("/transition"), json!({"to": "verifying"})).await;
    assert_eq!(s, 409);
    let (s, _) = post(&app, &alice, k("/items/watch"), json!({"action": "check"})).await;
    assert_eq!(s, 200);
    let (s, _) = post(&app, &alice, k("/transition"), json!({"to": "verifying"})).await;
    assert_eq!(s, 200);
    // Waiving: approvers only, with a reason; shown as waived.
    let resp = app.create_token("resp", Role::Responder).await;
    let (s, _) = app
        .post(
            &resp,
            &k("/items/smoke"),
            json!({"action": "waive", "reason": "no traffic"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = post(
        &app,
        &bob,
        k("/items/smoke"),
        json!({"action": "waive", "reason": " "}),
    )
    .await;
    assert_eq!(s, 422);
    let (s, d) = post(
        &app,
        &bob,
        k("/items/smoke"),
        json!({"action": "waive", "reason": "synthetic checks cover it"}),
    )
    .await;
    assert_eq!((s, d["items"][3]["state"].clone()), (200, json!("waived")));
    let (s, d) = post(&app, &alice, k("/transition"), json!({"to": "done"})).await;
    assert_eq!((s, d["deployment"]["status"].clone()), (200, json!("done")));
    assert!(d["deployment"]["finished_at"].is_string());
    assert_eq!(
        gate(&app, &alice, &key, "post").await,
        json!({"allowed": true, "status": "done", "blocking": []})
    );
    let (s, e) = post(
        &app,
        &alice,
        k("/transition"),
        json!({"to": "rolled_back", "reason": "x"}),
    )
    .await;
    assert_eq!(s, 409, "{e}");

    // The export: everything, as Markdown and JSON, audited; stored text stays text.
    let res = alice.post(app.url(&k("/export.md"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("{key}.md"))
    );
    let md = res.text().await.unwrap();
    for part in [
        "# Deployment ",
        "## pre items",
        "| tests-green — All tests pass | checked | yes | alice | build 813 green |",
        "| smoke — Smoke test | waived |",
        "## Sign-off (2 of 2 approvals)",
        "(voided: pre item tests-green changed",
        "## Record",
    ] {
        assert!(md.contains(part), "{part:?} in\n{md}");
    }
    let res = alice
        .post(app.url(&k("/export.json")))
        .send()
        .await
        .unwrap();
    let j: Value = res.json().await.unwrap();
    assert_eq!(j["deployment"]["deployment"]["status"], "done");
    assert!(j["events"].as_array().unwrap().len() > 10);
    assert_eq!(
        app.audit_actions()
            .await
            .iter()
            .filter(|a| *a == "deployment.export")
            .count(),
        2
    );

    // Its page (server-rendered, read-only): items, sign-off, the record.
    let res = alice
        .get(app.url(&format!("/deployments/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    for part in [
        "tests-green",
        "build 813 green",
        "istate-waived",
        "Sign-off: 2 of 2 approvals",
        "voided: pre item tests-green",
        "Record (",
    ] {
        assert!(html.contains(part), "{part:?} on the page");
    }
    let res = alice
        .get(app.url("/deployments/DEP-424242"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // The record: every step, append-only in the database.
    let (_, ev) = json_req(&alice, &app, M::GET, &k("/events"), None).await;
    let kinds: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"created"));
    assert!(
        kinds.contains(&"approvals_voided")
            && kinds.iter().filter(|k| **k == "approved").count() == 3,
        "{kinds:?}"
    );
    for sql in [
        "UPDATE deployment_events SET body = 'x'",
        "DELETE FROM deployment_events",
        "TRUNCATE deployment_events CASCADE",
    ] {
        let e = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn approvals_per_environment_rejection_and_kept_template_versions(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = setup(&app).await;
    let rita = app.signed_in("rita", Role::Responder).await;
    let bob = app.signed_in("bob", Role::Approver).await;

    // Staging needs one approval; a rejection needs a reason and ends the deployment.
    let key = open(&app, &rita, "staging").await;
    let k = |p: &str| format!("/api/v1/deployments/{key}{p}");
    post(
        &app,
        &rita,
        k("/items/tests-green"),
        json!({"action": "check", "note": "ok"}),
    )
    .await;
    let (_, d) = post(
        &app,
        &rita,
        k("/transition"),
        json!({"to": "awaiting_approval"}),
    )
    .await;
    assert_eq!(d["approvals_needed"], 1);
    let (s, _) = post(&app, &bob, k("/approvals"), json!({"decision": "reject"})).await;
    assert_eq!(s, 422);
    let (s, d) = post(
        &app,
        &bob,
        k("/approvals"),
        json!({"decision": "reject", "reason": "freeze week"}),
    )
    .await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("rejected"))
    );
    let g = gate(&app, &rita, &key, "pre").await;
    assert_eq!(g["allowed"], false);
    assert_eq!(g["blocking"][0], "the deployment is rejected");
    let (s, e) = post(&app, &rita, k("/transition"), json!({"to": "in_progress"})).await;
    assert_eq!(s, 409, "{e}");

    // Elsewhere no approval is needed: submitting approves.
    let dev = open(&app, &rita, "dev").await;
    post(
        &app,
        &rita,
        format!("/api/v1/deployments/{dev}/items/tests-green"),
        json!({"action": "check", "note": "ok"}),
    )
    .await;
    let (s, d) = post(
        &app,
        &rita,
        format!("/api/v1/deployments/{dev}/transition"),
        json!({"to": "awaiting_approval"}),
    )
    .await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("approved")),
        "{d}"
    );
    assert_eq!(gate(&app, &rita, &dev, "pre").await["allowed"], true);
    // The pipeline reports: started, progress, finished, rolled back.
    let ev = |e: Value| post(&app, &rita, format!("/api/v1/deployments/{dev}/events"), e);
    let (s, _) = ev(json!({"event": "progress", "percent": 10})).await;
    assert_eq!(s, 409, "progress before start");
    let (s, d) = ev(json!({"event": "started"})).await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("in_progress"))
    );
    let (s, _) = ev(json!({"event": "progress", "percent": 150})).await;
    assert!(s == 400 || s == 422, "{s}");
    let (s, _) = ev(json!({"event": "progress", "percent": 40, "message": "4 of 10 pods"})).await;
    assert_eq!(s, 200);
    let (s, e) = ev(json!({"event": "finished"})).await;
    assert_eq!(s, 409, "the during item is pending: {e}");
    let (s, _) = ev(json!({"event": "rolled_back"})).await;
    assert_eq!(s, 400, "a reason is required");
    let (s, d) = ev(json!({"event": "rolled_back", "reason": "error rate 4%"})).await;
    assert_eq!(
        (s, d["deployment"]["status"].clone()),
        (200, json!("rolled_back"))
    );
    let (_, events) = json_req(
        &rita,
        &app,
        M::GET,
        &format!("/api/v1/deployments/{dev}/events"),
        None,
    )
    .await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["body"] == "40%: 4 of 10 pods"),
        "{events}"
    );
    let dev = open(&app, &rita, "dev").await;
    post(
        &app,
        &rita,
        format!("/api/v1/deployments/{dev}/items/tests-green"),
        json!({"action": "check", "note": "ok"}),
    )
    .await;
    post(
        &app,
        &rita,
        format!("/api/v1/deployments/{dev}/transition"),
        json!({"to": "awaiting_approval"}),
    )
    .await;
    // Cancelling needs a reason.
    let (s, _) = post(
        &app,
        &rita,
        format!("/api/v1/deployments/{dev}/transition"),
        json!({"to": "cancelled"}),
    )
    .await;
    assert_eq!(s, 422);

    // A deployment keeps its template version; a new one takes the newest.
    let v2 = TEMPLATE.replace(
        "  post:\n",
        "    - {id: flags, kind: manual, text: Flags off}\n  post:\n",
    );
    let res = app
        .plain()
        .put(app.url("/api/v1/deployment-templates/web-release"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(v2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, old) = json_req(&rita, &app, M::GET, &k(""), None).await;
    assert_eq!(
        (
            old["deployment"]["template_version"].clone(),
            old["items"].as_array().unwrap().len()
        ),
        (json!(1), 4)
    );
    let newer = open(&app, &rita, "dev").await;
    let (_, d) = json_req(
        &rita,
        &app,
        M::GET,
        &format!("/api/v1/deployments/{newer}"),
        None,
    )
    .await;
    assert_eq!(
        (
            d["deployment"]["template_version"].clone(),
            d["items"].as_array().unwrap().len()
        ),
        (json!(2), 5)
    );
    // The database refuses to drop a version a deployment uses, like any version.
    assert!(
        sqlx::query("DELETE FROM deployment_templates")
            .execute(&app.pool)
            .await
            .is_err()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_requests_are_refused_and_write_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    setup(&app).await;
    let rita = app.signed_in("rita", Role::Responder).await;
    let viewer = app.create_token("v", Role::Viewer).await;
    let before = app.count("deployments").await;
    for (body, want) in [
        (
            json!({"service": "checkout", "environment": "production", "version": "1", "template": "nope"}),
            404,
        ),
        (
            json!({"service": "checkout", "environment": "production", "version": "1", "template": "web-release", "template_version": 9}),
            404,
        ),
        (
            json!({"service": "bad service!", "environment": "production", "version": "1", "template": "web-release"}),
            422,
        ),
        (
            json!({"service": "checkout", "environment": "production", "version": "1\u{0007}", "template": "web-release"}),
            422,
        ),
        (
            json!({"service": "checkout", "environment": "production", "version": "", "template": "web-release"}),
            422,
        ),
        (
            json!({"service": "checkout", "environment": "production", "version": "1", "template": "web-release", "pipeline_url": "javascript:alert(1)"}),
            422,
        ),
        (
            json!({"service": "checkout", "environment": "production", "version": "1", "template": "web-release", "commit": "abc; rm -rf /"}),
            422,
        ),
        (
            json!({"service": "checkout", "environment": "production", "version": "1", "template": "web-release", "extra": 1}),
            400,
        ),
    ] {
        let (s, e) = post(&app, &rita, "/api/v1/deployments".into(), body.clone()).await;
        assert_eq!(s, want, "{body}: {e}");
    }
    let (s, _) = app.post(&viewer, "/api/v1/deployments", json!({"service": "checkout", "environment": "production", "version": "1", "template": "web-release"})).await;
    assert_eq!(s, 403);
    assert_eq!(app.count("deployments").await, before);
    let key = open(&app, &rita, "production").await;
    for (path, body, want) in [
        (
            format!("/api/v1/deployments/{key}/items/nope"),
            json!({"action": "check"}),
            404,
        ),
        (
            format!("/api/v1/deployments/{key}/items/tests-green"),
            json!({"action": "explode"}),
            400,
        ),
        (
            format!("/api/v1/deployments/{key}/transition"),
            json!({"to": "approved"}),
            409,
        ),
        (
            format!("/api/v1/deployments/{key}/transition"),
            json!({"to": "launched"}),
            400,
        ),
        (
            "/api/v1/deployments/DEP-abc/transition".to_string(),
            json!({"to": "cancelled", "reason": "x"}),
            404,
        ),
        (
            "/api/v1/deployments/INC-1/items/x".to_string(),
            json!({"action": "uncheck"}),
            404,
        ),
    ] {
        let (s, e) = post(&app, &rita, path.clone(), body).await;
        assert_eq!(s, want, "{path}: {e}");
    }
    let (s, _) = json_req(
        &rita,
        &app,
        M::GET,
        &format!("/api/v1/deployments/{key}/gate?phase=sideways"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    // Markup in stored text does not become markup in the Markdown export.
    let (s, d) = post(&app, &rita, "/api/v1/deployments".into(), json!({"service": "checkout", "environment": "dev", "version": "1 | <img src=x onerror=alert(1)>",
        "template": "web-release", "description": "# Not a heading\n[link](javascript:alert(2)) </textarea>"})).await;
    assert_eq!(s, 201, "{d}");
    let k2 = d["deployment"]["key"].as_str().unwrap().to_string();
    let page = common::page(&rita, &app, &format!("/deployments/{k2}"))
        .await
        .1;
    assert!(
        page.contains("&lt;img src=x") && !page.contains("<img src=x"),
        "escaped on its page"
    );
    let md = rita
        .post(app.url(&format!("/api/v1/deployments/{k2}/export.md")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !md.contains(" <img") && !md.contains("[link](javascript") && !md.contains("\n# Not"),
        "{md}"
    );
    assert!(
        md.contains("\\<img") && md.contains("\\# Not a heading") && md.contains("\\[link\\]"),
        "{md}"
    );
    let (s, list) = json_req(
        &rita,
        &app,
        M::GET,
        "/api/v1/deployments?service=checkout",
        None,
    )
    .await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 2));
    let (s, _) = json_req(
        &rita,
        &app,
        M::GET,
        "/api/v1/deployments?status=exploded",
        None,
    )
    .await;
    assert_eq!(s, 422);
}

#[sqlx::test(migrations = "../migrations")]
async fn ci_tokens_scoped_to_services_deploy_those_and_nothing_else(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    setup(&app).await;
    let admin = app.create_token("admin", Role::Admin).await;
    // Scoped tokens: responder or no role, 1–50 well-formed services.
    for (body, want) in [
        (
            json!({"name": "ci-x", "role": "approver", "deploy_services": ["checkout"]}),
            422,
        ),
        (json!({"name": "ci-x", "deploy_services": []}), 422),
        (
            json!({"name": "ci-x", "deploy_services": ["bad service!"]}),
            422,
        ),
        (
            json!({"name": "ci-x", "deploy_services": (0..51).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
            422,
        ),
        (json!({"name": "ci-x"}), 422),
    ] {
        let (s, e) = app.post(&admin, "/api/v1/tokens", body.clone()).await;
        assert_eq!(s, want, "{body}: {e}");
    }
    assert_eq!(app.count("api_tokens").await, 2, "nothing written");
    let (s, t) = app
        .post(
            &admin,
            "/api/v1/tokens",
            json!({"name": "ci-checkout", "deploy_services": ["checkout", "checkout-worker"]}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["token"]["role"], "responder");
    assert_eq!(
        t["token"]["deploy_services"],
        json!(["checkout", "checkout-worker"])
    );
    let ci = t["secret"].as_str().unwrap().to_string();
    // The database holds the rule too.
    assert!(
        sqlx::query("UPDATE api_tokens SET role = 'approver' WHERE deploy_services IS NOT NULL")
            .execute(&app.pool)
            .await
            .is_err()
    );

    // Its own services: open, work, report, ask the gate.
    let (s, d) = app
        .post(&ci, "/api/v1/deployments", json!({"service": "checkout", "environment": "staging", "version": "7", "template": "web-release"}))
        .await;
    assert_eq!(s, 201, "{d}");
    let key = d["deployment"]["key"].as_str().unwrap().to_string();
    let k = |p: &str| format!("/api/v1/deployments/{key}{p}");
    let (s, _) = app
        .post(
            &ci,
            &k("/items/tests-green"),
            json!({"action": "check", "note": "green"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, d) = app
        .post(&ci, &k("/transition"), json!({"to": "awaiting_approval"}))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(app.get(&ci, &k("")).await.0, 200);
    assert_eq!(app.get(&ci, &k("/events")).await.0, 200);
    let (s, g) = app.get(&ci, &k("/gate?phase=pre")).await;
    assert_eq!((s, g["allowed"].clone()), (200, json!(false)));
    assert_eq!(
        app.get(&ci, "/api/v1/deployments?service=checkout").await.0,
        200
    );
    assert_eq!(app.get(&ci, "/api/v1/deployment-templates").await.0, 200);

    // … but it never signs or waives.
    let (s, _) = app
        .post(&ci, &k("/approvals"), json!({"decision": "approve"}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .post(
            &ci,
            &k("/items/nice-to-have"),
            json!({"action": "waive", "reason": "ci says so"}),
        )
        .await;
    assert_eq!(s, 403);

    // Another service's deployments are out of reach, whoever opened them.
    let (s, e) = app
        .post(&ci, "/api/v1/deployments", json!({"service": "billing", "environment": "staging", "version": "7", "template": "web-release"}))
        .await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limited to deployments of checkout, checkout-worker"),
        "{e}"
    );
    let (s, d) = app
        .post(&admin, "/api/v1/deployments", json!({"service": "billing", "environment": "staging", "version": "1", "template": "web-release"}))
        .await;
    assert_eq!(s, 201);
    let other = d["deployment"]["key"].as_str().unwrap().to_string();
    for (m, path, body) in [
        ("GET", format!("/api/v1/deployments/{other}"), None),
        ("GET", format!("/api/v1/deployments/{other}/events"), None),
        (
            "GET",
            format!("/api/v1/deployments/{other}/gate?phase=pre"),
            None,
        ),
        (
            "POST",
            format!("/api/v1/deployments/{other}/items/tests-green"),
            Some(json!({"action": "check", "note": "x"})),
        ),
        (
            "POST",
            format!("/api/v1/deployments/{other}/transition"),
            Some(json!({"to": "cancelled", "reason": "x"})),
        ),
        (
            "POST",
            format!("/api/v1/deployments/{other}/events"),
            Some(json!({"event": "started"})),
        ),
        (
            "POST",
            format!("/api/v1/deployments/{other}/export.md"),
            None,
        ),
        ("GET", "/api/v1/deployments".to_string(), None),
        (
            "GET",
            "/api/v1/deployments?service=billing".to_string(),
            None,
        ),
    ] {
        let method = if m == "GET" { M::GET } else { M::POST };
        let (s, e) = app.api(&ci, method, &path, body).await;
        assert_eq!(s, 403, "{m} {path}: {e}");
    }
    let (_, d) = app
        .get(&admin, &format!("/api/v1/deployments/{other}"))
        .await;
    assert_eq!(d["deployment"]["status"], "draft", "untouched");
    assert_eq!(
        app.count("deployment_events").await,
        4,
        "created ×2, checked, submitted — nothing from the refusals"
    );

    // Outside the deployments API it is refused outright, reads included.
    for (m, path) in [
        (M::GET, "/api/v1/incidents"),
        (M::GET, "/api/v1/targets"),
        (M::POST, "/api/v1/incidents"),
        (M::POST, "/api/v1/deployment-templates"),
        (M::GET, "/metrics"),
        (M::POST, "/api/fn/deployments/list"),
    ] {
        let (s, _) = app.api(&ci, m.clone(), path, Some(json!({}))).await;
        assert_eq!(s, 403, "{m} {path}");
    }
    assert_eq!(
        app.get(&ci, "/api/v1/whoami").await.0,
        200,
        "who it is, for CI logs"
    );
    // Unscoped tokens are unaffected.
    assert_eq!(app.get(&admin, "/api/v1/incidents").await.0, 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn approval_items_are_signed_by_another_approver_in_person(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = app.create_token("tpl", Role::Approver).await;
    let yaml = "id: with-sign-off
name: With sign-off
sections:
  pre:
    - {id: notes, kind: approval, text: Product owner confirms the release notes, requires_note: true}
";
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let alice = app.signed_in("alice", Role::Approver).await;
    let bob = app.signed_in("bob", Role::Approver).await;
    let rita = app.signed_in("rita", Role::Responder).await;
    let (s, d) = json_req(
        &alice,
        &app,
        M::POST,
        "/api/v1/deployments",
        Some(json!({"service": "web", "environment": "dev", "version": "1", "template": "with-sign-off"})),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["items"][0]["kind"], "approval");
    let key = d["deployment"]["key"].as_str().unwrap().to_string();
    let path = format!("/api/v1/deployments/{key}/items/notes");
    let check = json!({"action": "check", "note": "read them"});
    // Not the requester, not a responder, not a token — even an approver's.
    let (s, e) = post(&app, &alice, path.clone(), check.clone()).await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot sign it off"),
        "{e}"
    );
    assert_eq!(post(&app, &rita, path.clone(), check.clone()).await.0, 403);
    assert_eq!(app.post(&token, &path, check.clone()).await.0, 403);
    let (_, d) = json_req(
        &bob,
        &app,
        M::GET,
        &format!("/api/v1/deployments/{key}"),
        None,
    )
    .await;
    assert_eq!(d["items"][0]["state"], "pending", "nothing changed");
    // Its page offers the check to bob, not to alice.
    let html = |c: &reqwest::Client| {
        let c = c.clone();
        let url = app.url(&format!("/deployments/{key}"));
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(!html(&alice).await.contains("value=\"check\""));
    assert!(html(&bob).await.contains("value=\"check\""));
    // Another approver, in person, with the note it needs.
    let (s, _) = post(&app, &bob, path.clone(), json!({"action": "check"})).await;
    assert_eq!(s, 422, "the note");
    let (s, d) = post(&app, &bob, path, check).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["items"][0]["state"], "checked");
    assert_eq!(d["items"][0]["set_by"], "bob");
}
