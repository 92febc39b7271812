//! Deployment checklist templates (issue 12, the part built so far): YAML in, errors with
//! line and column, nothing saved on any error, every edit a new version, old versions kept
//! forever (enforced by the database), approvers only, audited.

mod common;

use common::{TestApp, json_answer};
use domain::Role;
use serde_json::json;
use sqlx::PgPool;

const V1: &str = "id: web-release
name: Web release
description: The web tier.
sections:
  pre:
    - id: tests-green
      kind: manual
      text: All tests pass on the release commit
      requires_note: true
  post:
    - id: smoke
      kind: manual
      text: Smoke test the checkout
";

fn v2() -> String {
    V1.replace(
        "  post:\n",
        "    - id: changelog\n      kind: manual\n      text: The changelog names the change\n      required: false\n  post:\n",
    )
}

async fn send_yaml(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    content_type: &str,
    body: String,
) -> (u16, serde_json::Value) {
    json_answer(
        app.plain()
            .request(method, app.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn templates_are_versioned_and_old_versions_never_change(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let approver = app.create_token("rel", Role::Approver).await;
    let responder = app.create_token("resp", Role::Responder).await;
    let viewer = app.create_token("view", Role::Viewer).await;
    use reqwest::Method as M;

    // Below approver: refused, nothing saved.
    let (s, _) = send_yaml(
        &app,
        &responder,
        M::POST,
        "/api/v1/deployment-templates",
        "application/yaml",
        V1.into(),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(app.count("deployment_templates").await, 0);

    // Created from the YAML body as `curl --data-binary` sends it.
    let (s, t) = send_yaml(
        &app,
        &approver,
        M::POST,
        "/api/v1/deployment-templates",
        "application/yaml",
        V1.into(),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["version"], 1);
    assert_eq!(t["yaml"], V1, "kept as written");
    assert_eq!(t["spec"]["sections"]["pre"][0]["requires_note"], true);
    assert_eq!(
        t["spec"]["sections"]["post"][0]["required"], true,
        "required by default"
    );
    // The same id again is a conflict: templates are edited, not re-created.
    let (s, e) = send_yaml(
        &app,
        &approver,
        M::POST,
        "/api/v1/deployment-templates",
        "text/plain",
        V1.into(),
    )
    .await;
    assert_eq!(s, 409, "{e}");

    // An edit is version 2 (JSON body this time); version 1 stays as it was.
    let (s, t2) = app
        .api(
            &approver,
            M::PUT,
            "/api/v1/deployment-templates/web-release",
            Some(json!({ "yaml": v2() })),
        )
        .await;
    assert_eq!(s, 200, "{t2}");
    assert_eq!(t2["version"], 2);
    assert_eq!(t2["spec"]["sections"]["pre"][1]["required"], false);
    let (s, latest) = app
        .get(&viewer, "/api/v1/deployment-templates/web-release")
        .await;
    assert_eq!((s, latest["version"].clone()), (200, json!(2)));
    let (s, old) = app
        .get(
            &viewer,
            "/api/v1/deployment-templates/web-release?version=1",
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(old["yaml"], V1);
    assert_eq!(old["spec"]["sections"]["pre"].as_array().unwrap().len(), 1);
    let (s, _) = app
        .get(
            &viewer,
            "/api/v1/deployment-templates/web-release?version=3",
        )
        .await;
    assert_eq!(s, 404);
    let (s, vs) = app
        .get(&viewer, "/api/v1/deployment-templates/web-release/versions")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        vs.as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    let (s, list) = app.get(&viewer, "/api/v1/deployment-templates").await;
    assert_eq!(s, 200);
    assert_eq!(list[0]["latest_version"], 2);
    assert_eq!(list[0]["items"], 3);

    // Stale and pointless saves are refused, and nothing is written.
    let stale = format!(
        "version: 2\n{}",
        v2().replace("The web tier.", "The web tier, again.")
    );
    let (s, e) = send_yaml(
        &app,
        &approver,
        M::PUT,
        "/api/v1/deployment-templates/web-release",
        "application/yaml",
        stale,
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("would create version 3"),
        "{e}"
    );
    let (s, e) = send_yaml(
        &app,
        &approver,
        M::PUT,
        "/api/v1/deployment-templates/web-release",
        "application/yaml",
        v2(),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing changed")
    );
    let (s, e) = send_yaml(
        &app,
        &approver,
        M::PUT,
        "/api/v1/deployment-templates/web-release",
        "application/yaml",
        V1.replace("id: web-release", "id: other"),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    let (s, _) = send_yaml(
        &app,
        &approver,
        M::PUT,
        "/api/v1/deployment-templates/nope",
        "application/yaml",
        V1.replace("id: web-release", "id: nope"),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(app.count("deployment_templates").await, 2);
    let current = format!(
        "version: 3\n{}",
        v2().replace("The web tier.", "The web tier, again.")
    );
    let (s, t3) = send_yaml(
        &app,
        &approver,
        M::PUT,
        "/api/v1/deployment-templates/web-release",
        "application/yaml",
        current,
    )
    .await;
    assert_eq!((s, t3["version"].clone()), (200, json!(3)), "{t3}");

    // Audited.
    let actions = app.audit_actions().await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("template."))
            .collect::<Vec<_>>(),
        ["template.create", "template.update", "template.update"]
    );

    // The database itself keeps versions as they were.
    for sql in [
        "UPDATE deployment_templates SET yaml = 'x' WHERE version = 1",
        "DELETE FROM deployment_templates WHERE version = 1",
        "TRUNCATE deployment_templates CASCADE",
    ] {
        let e = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(e.to_string().contains("immutable"), "{sql}: {e}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_templates_say_where_and_save_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let approver = app.create_token("rel", Role::Approver).await;
    use reqwest::Method as M;
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            V1.replace("      text: Smoke", "      txt: Smoke"),
            "application/yaml",
            422,
            "line 13, column 7: sections.post[0]: unknown field `txt`",
        ),
        (
            V1.replace("name: Web release", "name: [Web"),
            "application/yaml",
            422,
            "line ",
        ),
        (
            V1.replace(
                "kind: manual\n      text: Smoke",
                "kind: shell\n      text: Smoke",
            ),
            "application/yaml",
            422,
            "sections.post[0] (smoke): unknown kind `shell`: one of manual, approval, metric, probe, kafka_lag",
        ),
        (
            format!("{V1}description: twice\n"),
            "application/yaml",
            422,
            "duplicate",
        ),
        (
            format!(
                "id: a\nname: A\ndescription: {}{}\n",
                "[".repeat(5_000),
                "]".repeat(5_000)
            ),
            "application/yaml",
            422,
            "line 3, column 14: description: invalid type",
        ),
        (
            format!("id: a\nname: A\ndescription: {}\n", "x".repeat(70_000)),
            "application/yaml",
            413,
            "over the limit of 65536 bytes",
        ),
        (V1.into(), "application/xml", 415, "YAML"),
        (
            json!({ "yaml": V1, "extra": 1 }).to_string(),
            "application/json",
            400,
            "unknown field",
        ),
        ("{not json".into(), "application/json", 400, ""),
    ];
    for (body, ct, want, msg) in cases {
        let t = std::time::Instant::now();
        let (s, e) = send_yaml(
            &app,
            &approver,
            M::POST,
            "/api/v1/deployment-templates",
            ct,
            body.clone(),
        )
        .await;
        assert_eq!(s, want, "{}: {e}", &body[..body.len().min(80)]);
        let text = e["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(msg), "{msg:?} in {e}");
        assert!(t.elapsed().as_secs() < 2, "answered quickly");
    }
    // Billion laughs.
    let mut bomb = String::from("id: a\nname: A\nx0: &x0 [l, l, l, l, l, l, l, l, l, l]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    let (s, e) = send_yaml(
        &app,
        &approver,
        M::POST,
        "/api/v1/deployment-templates",
        "application/yaml",
        bomb,
    )
    .await;
    assert!((400..500).contains(&s), "{s} {e}");
    assert_eq!(app.count("deployment_templates").await, 0);
    assert!(
        !app.audit_actions()
            .await
            .iter()
            .any(|a| a.starts_with("template."))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn two_editors_of_one_version_do_not_both_win(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let approver = app.create_token("rel", Role::Approver).await;
    use reqwest::Method as M;
    let (s, _) = send_yaml(
        &app,
        &approver,
        M::POST,
        "/api/v1/deployment-templates",
        "application/yaml",
        V1.into(),
    )
    .await;
    assert_eq!(s, 201);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (c, url, token) = (
            app.plain(),
            app.url("/api/v1/deployment-templates/web-release"),
            approver.clone(),
        );
        let body = V1.replace("The web tier.", &format!("Edit {i}."));
        set.spawn(async move {
            c.put(url)
                .bearer_auth(token)
                .header("content-type", "application/yaml")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = set.join_all().await;
    statuses.sort();
    // Each edit is a version of its own (6 + 1), or a clear 409 when it raced — never a 500
    // and never two rows for one version.
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert_eq!(app.count("deployment_templates").await, 1 + ok);
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM deployment_templates ORDER BY version")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(versions, (1..=(1 + ok as i32)).collect::<Vec<_>>());
}

#[sqlx::test(migrations = "../migrations")]
async fn built_in_templates_from_seed_000_install_once_and_yield_to_edits(pool: PgPool) {
    use domain::services::deployments::{BUILT_IN_TEMPLATES, install_built_in_templates};
    let app = TestApp::spawn(pool.clone()).await;
    assert_eq!(
        install_built_in_templates(&pool).await.unwrap(),
        BUILT_IN_TEMPLATES.len()
    );
    assert_eq!(
        install_built_in_templates(&pool).await.unwrap(),
        0,
        "idempotent"
    );
    let token = app.create_token("t", Role::Viewer).await;
    let (s, list) = app.get(&token, "/api/v1/deployment-templates").await;
    assert_eq!(s, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), BUILT_IN_TEMPLATES.len());
    assert!(list.iter().all(|t| t["built_in"] == true));
    // Seed 000's Deployment Checklist Template, every line, machine-checked where Lookout can.
    let (_, t) = app
        .get(&token, "/api/v1/deployment-templates/deployment-checklist")
        .await;
    let items = |s: &str| t["spec"]["sections"][s].as_array().unwrap().clone();
    assert_eq!(
        (
            items("pre").len(),
            items("during").len(),
            items("post").len()
        ),
        (7, 5, 5),
        "{t:#}"
    );
    let kind = |s: &str, id: &str| {
        items(s)
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["kind"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(kind("during", "error-rate"), "metric");
    assert_eq!(kind("during", "latency-p99"), "metric");
    assert_eq!(kind("during", "consumer-lag"), "kafka_lag");
    assert_eq!(kind("pre", "indexes-and-migrations"), "probe");
    assert_eq!(kind("post", "rollback-plan"), "manual");
    let (_, m) = app
        .get(
            &token,
            "/api/v1/deployment-templates/database-migration-safety",
        )
        .await;
    assert!(
        m["yaml"].as_str().unwrap().contains("PG_INVALID_INDEX"),
        "\"Index created CONCURRENTLY\" → the PostgreSQL probe"
    );

    // A deployment from it needs Prometheus (its required metric items) but not the optional
    // PostgreSQL and Kafka bindings: those items stay pending and do not block.
    let admin = app.create_token("a", Role::Admin).await;
    let (s, e) = app
        .post(&admin, "/api/v1/deployments", serde_json::json!({"service": "web", "environment": "dev", "version": "1", "template": "deployment-checklist"}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("targets.prometheus"),
        "{e}"
    );
    let (s, _) = app
        .post(&admin, "/api/v1/targets", serde_json::json!({"name": "prom", "kind": "prometheus", "connection": "http://127.0.0.1:9", "environment": "dev"}))
        .await;
    assert_eq!(s, 201);
    let (s, d) = app
        .post(&admin, "/api/v1/deployments", serde_json::json!({"service": "web", "environment": "dev", "version": "1", "template": "deployment-checklist", "targets": {"prometheus": "prom"}}))
        .await;
    assert_eq!(s, 201, "{d}");
    let it = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item_id"] == "indexes-and-migrations")
        .unwrap();
    assert_eq!(it["state"], "pending", "not bound: not run");
    assert!(it.get("target").is_none());
    assert!(
        !d["blocking"].to_string().contains("indexes-and-migrations"),
        "optional"
    );
    let key = d["deployment"]["key"].as_str().unwrap();
    let (s, e) = app
        .post(
            &admin,
            &format!("/api/v1/deployments/{key}/items/indexes-and-migrations"),
            serde_json::json!({"action": "rerun"}),
        )
        .await;
    assert_eq!(s, 409, "{e}");

    // Once people save their own version, the shipped one never replaces it.
    let approver = app.create_token("ap", Role::Approver).await;
    let yaml = BUILT_IN_TEMPLATES
        .iter()
        .find(|(id, _)| *id == "tracing-implementation")
        .unwrap()
        .1;
    let res = app
        .plain()
        .put(app.url("/api/v1/deployment-templates/tracing-implementation"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(yaml.replace("end-to-end", "end to end"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(install_built_in_templates(&pool).await.unwrap(), 0);
    let (_, t) = app
        .get(
            &token,
            "/api/v1/deployment-templates/tracing-implementation",
        )
        .await;
    assert_eq!(
        (t["version"].clone(), t["built_in"].clone()),
        (serde_json::json!(2), serde_json::json!(false))
    );
}
