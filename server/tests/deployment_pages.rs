//! The deployment pages in a browser without JavaScript (the forms post to the server
//! functions; the pages are server-rendered): templates written, edited and diffed in the
//! editor with line-precise errors; a deployment opened from the form after the template's
//! preview; items checked; submitted; the requester cannot sign, a second approver can; list
//! filters and keyset paging; stored markup stays text.

mod common;

use common::{TestApp, call_fn, json_req};
use domain::Role;
use reqwest::Method as M;
use serde_json::json;
use sqlx::PgPool;

const V1: &str = "id: web
name: Web release
description: 'The web tier </textarea><svg onload=alert(1)>'
sections:
  pre:
    - {id: tests-green, kind: manual, text: All tests pass, requires_note: true, help: 'CI must be **green**, not skipped. <script>alert(9)</script>'}
  post:
    - {id: smoke, kind: manual, text: Smoke test}
";

#[sqlx::test(migrations = "../migrations")]
async fn a_release_worked_through_the_pages(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = app.signed_in("alice", Role::Approver).await;
    let bob = app.signed_in("bob", Role::Approver).await;

    // The editor: a mistake names its line and column, and nothing is saved.
    let bad = V1.replace("text: Smoke test", "txt: Smoke test");
    let res = call_fn(
        &alice,
        &app,
        "deployments/template-save",
        &[("edit_of", ""), ("yaml", &bad)],
    )
    .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("line 8, column") && body.contains("unknown field `txt`"),
        "{body}"
    );
    assert_eq!(app.count("deployment_templates").await, 0);
    let res = call_fn(
        &alice,
        &app,
        "deployments/template-save",
        &[("edit_of", ""), ("yaml", V1)],
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let v2 = V1.replace("Smoke test", "Smoke test the checkout");
    let res = call_fn(
        &alice,
        &app,
        "deployments/template-save",
        &[("edit_of", "web"), ("yaml", &v2)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let (s, html) = common::page(
        &alice,
        &app,
        "/deployments/templates/web?version=2&against=1",
    )
    .await;
    assert_eq!(s, 200);
    assert!(html.contains("Changes from v1 to v2"), "the diff");
    assert!(
        html.contains(r#"<span class="del">-     - {id: smoke, kind: manual, text: Smoke test}"#),
        "{html}"
    );
    assert!(html.contains(
        r#"<span class="add">+     - {id: smoke, kind: manual, text: Smoke test the checkout}"#
    ));
    assert!(
        html.contains("Save a new version"),
        "approvers get the editor"
    );
    assert!(
        !html.contains("</textarea><svg"),
        "the YAML stays text inside the editor"
    );
    assert!(html.contains("&lt;/textarea&gt;&lt;svg onload=alert(1)&gt;"));
    let (_, html) = common::page(&alice, &app, "/deployments/templates/web?version=1").await;
    assert!(
        html.contains("an old version: the newest is"),
        "old versions say so"
    );

    // The form: the template's preview, then the deployment.
    let (s, html) = common::page(&alice, &app, "/deployments/new?template=web").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("tests-green") && html.contains("new-deployment-form"),
        "preview and form"
    );
    let res = call_fn(
        &alice,
        &app,
        "deployments/create",
        &[
            ("template", "web"),
            ("service", "checkout"),
            ("environment", "staging"),
            ("version", "2.1.0"),
            ("description", "new cart"),
            ("commit", "abc123"),
            ("pipeline_url", ""),
            ("targets", ""),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let key: String = res.json().await.unwrap();
    // The form's parameter fields (`parameters[name]`) reach the check: this template has
    // none, so a value for one is refused, naming it.
    let res = call_fn(
        &alice,
        &app,
        "deployments/create",
        &[
            ("template", "web"),
            ("service", "checkout"),
            ("environment", "staging"),
            ("version", "2.1.1"),
            ("description", ""),
            ("commit", ""),
            ("pipeline_url", ""),
            ("targets", ""),
            ("parameters[max_error_percent]", "1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("parameters.max_error_percent: the template has no parameter"),
        "{body}"
    );
    let (_, d) = json_req(
        &alice,
        &app,
        M::GET,
        &format!("/api/v1/deployments/{key}"),
        None,
    )
    .await;
    assert_eq!(d["deployment"]["template_version"], 2, "the newest version");

    let (s, html) = common::page(&alice, &app, &format!("/deployments/{key}")).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("CI must be <strong>green</strong>"),
        "the help, rendered"
    );
    assert!(!html.contains("<script>alert(9)"), "and sanitised");
    for part in [
        "Submit for approval",
        "name=\"action\" value=\"check\"",
        "note (required)",
        "Cancel…",
        "Smoke test the checkout",
    ] {
        assert!(html.contains(part), "{part:?} on the page");
    }
    // Checking needs the note the item asks for.
    let item = |action: &'static str, note: &'static str| {
        let key = key.clone();
        let alice = alice.clone();
        let app = &app;
        async move {
            call_fn(
                &alice,
                app,
                "deployments/item",
                &[
                    ("key", &key),
                    ("item", "tests-green"),
                    ("action", action),
                    ("note", note),
                ],
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(item("check", "").await, 422);
    assert_eq!(
        item("check", "</td><script>alert(1)</script> build 9 green").await,
        200
    );
    let res = call_fn(
        &alice,
        &app,
        "deployments/transition",
        &[("key", &key), ("to", "awaiting_approval"), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), 200);

    // The requester cannot sign; the page says so and offers no Approve.
    let (_, html) = common::page(&alice, &app, &format!("/deployments/{key}")).await;
    assert!(html.contains("You requested this deployment"));
    assert!(!html.contains(">Approve<"));
    assert!(
        !html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;"),
        "notes stay text"
    );
    assert!(
        html.contains("1 more approval(s) needed, from approvers other than alice"),
        "{html}"
    );
    let res = call_fn(
        &alice,
        &app,
        "deployments/decide",
        &[("key", &key), ("decision", "approve"), ("reason", "")],
    )
    .await;
    assert!(
        matches!(res.status().as_u16(), 403 | 409),
        "{}",
        res.status()
    );
    // Bob can.
    let (_, html) = common::page(&bob, &app, &format!("/deployments/{key}")).await;
    assert!(html.contains(">Approve<") && html.contains("Reject…"));
    let res = call_fn(
        &bob,
        &app,
        "deployments/decide",
        &[("key", &key), ("decision", "reject"), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), 422, "rejecting needs a reason");
    let res = call_fn(
        &bob,
        &app,
        "deployments/decide",
        &[("key", &key), ("decision", "approve"), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let (_, html) = common::page(&bob, &app, &format!("/deployments/{key}")).await;
    assert!(
        html.contains("dstatus-approved") && html.contains("Start the deployment"),
        "approved"
    );
    assert!(html.contains("Sign-off is complete."));
    // A viewer sees the page without controls.
    let carol = app.signed_in("carol", Role::Viewer).await;
    let (_, html) = common::page(&carol, &app, &format!("/deployments/{key}")).await;
    assert!(!html.contains("Start the deployment") && !html.contains("value=\"check\""));
    let res = call_fn(
        &carol,
        &app,
        "deployments/transition",
        &[("key", &key), ("to", "in_progress"), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = call_fn(
        &alice,
        &app,
        "deployments/transition",
        &[("key", &key), ("to", "done"), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), 409, "approved → done is not a move");
    let res = call_fn(
        &alice,
        &app,
        "deployments/transition",
        &[("key", &key), ("to", "nonsense"), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), 422);

    // A long record: the newest 200 events, and the rest one click away.
    let id: i64 = key[4..].parse().unwrap();
    sqlx::query("INSERT INTO deployment_events (deployment_id, actor, kind, body) SELECT $1, 'ci', 'progress', 'step ' || g FROM generate_series(1, 250) g")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployment_events WHERE deployment_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let (_, html) = common::page(&carol, &app, &format!("/deployments/{key}")).await;
    assert!(html.contains(&format!("Record ({total})")));
    assert!(
        html.contains(&format!(
            "The newest 200 events; {} older ones are not shown.",
            total - 200
        )),
        "the window"
    );
    assert_eq!(html.matches("class=\"ev ev-").count(), 200);
    let (_, html) = common::page(&carol, &app, &format!("/deployments/{key}?all=1")).await;
    assert_eq!(html.matches("class=\"ev ev-").count() as i64, total);
    assert!(!html.contains("id=\"record-window\""));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_list_filters_and_pages(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = app.create_token("ci", Role::Approver).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(V1)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for i in 0..55 {
        let service = if i % 5 == 0 { "billing" } else { "checkout" };
        let (s, d) = app
            .post(&token, "/api/v1/deployments", json!({"service": service, "environment": "staging", "version": format!("1.{i}"), "template": "web"}))
            .await;
        assert_eq!(s, 201, "{d}");
    }
    let viewer = app.signed_in("vic", Role::Viewer).await;
    let (s, html) = common::page(&viewer, &app, "/deployments").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("DEP-55") && !html.contains(">DEP-5<"),
        "newest 50 first"
    );
    assert!(
        html.contains("/deployments?before=6"),
        "{}",
        "a link to the older page"
    );
    let (_, html) = common::page(&viewer, &app, "/deployments?before=6").await;
    assert!(html.contains(">DEP-5<") && html.contains(">DEP-1<") && !html.contains(">DEP-6<"));
    let (_, html) = common::page(&viewer, &app, "/deployments?service=billing").await;
    assert_eq!(html.matches("<td>billing</td>").count(), 11);
    assert!(!html.contains("<td>checkout</td>"));
    let (_, html) = common::page(&viewer, &app, "/deployments?status=done").await;
    assert!(html.contains("No deployments match"));
    let (s, _) = common::page(&viewer, &app, "/deployments?status=bogus").await;
    assert_eq!(s, 422, "an unknown status is refused, not ignored");
}
