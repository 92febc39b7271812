//! Incidents against a real PostgreSQL: lifecycle rules, timeline immutability, notes,
//! findings and their statuses, action items, the postmortem, the list, permissions per
//! role, the webhook's parsing, and live updates.

mod common;

use common::{TestApp, json_req};
use domain::Role;
use reqwest::Client;
use serde_json::{Value, json};
use sqlx::PgPool;

struct Api<'a> {
    app: &'a TestApp,
    token: String,
    c: Client,
}

impl<'a> Api<'a> {
    async fn new(app: &'a TestApp, user: &str, role: Role) -> Api<'a> {
        // A user (so they can be commander) acting through a session-less token is not
        // possible; use a signed-in browser client for user-bound actions instead.
        let _ = user;
        Api {
            app,
            token: app.create_token(&format!("t-{user}"), role).await,
            c: app.plain(),
        }
    }
    async fn send(&self, m: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .c
            .request(m, self.app.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, b: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(b)).await
    }
    async fn patch(&self, path: &str, b: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(b)).await
    }
}

/// A signed-in user's browser client with JSON helpers (their own Origin).
async fn user(app: &TestApp, name: &str, role: Role) -> Client {
    app.signed_in(name, role).await
}

fn new_incident(title: &str, sev: &str) -> Value {
    json!({"title": title, "severity": sev, "services": ["checkout", "payments"], "environment": "production",
           "summary": "Customers see **500s**.", "labels": {"team": "payments"}})
}

fn kinds(d: &Value) -> Vec<String> {
    d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn lifecycle_rules_and_stage_times(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ana = user(&app, "ana", Role::Responder).await;
    let bob = user(&app, "bob", Role::Responder).await;
    let (s, d) = json_req(
        &ana,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(new_incident("Checkout 500s", "SEV2")),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let key = d["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("INC-"));
    assert_eq!(d["status"], "triage");
    assert_eq!(d["commander"], "ana", "the creator commands by default");
    assert_eq!(kinds(&d), vec!["created"]);
    let path = format!("/api/v1/incidents/{key}");

    // triage → investigating sets acknowledged_at.
    let (s, d) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "investigating"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert!(d["acknowledged_at"].is_string());
    assert!(d["mitigated_at"].is_null());
    // An impossible step: 409 with the reason, nothing written.
    let events_before = d["timeline"].as_array().unwrap().len();
    let (s, e) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "triage"})),
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(
        e["error"]["message"],
        "an incident cannot go from investigating to triage"
    );
    // Responders (not commander) cannot change severity or close.
    let (s, _) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"severity": "SEV1"})),
    )
    .await;
    assert_eq!(s, 403);
    // Skipping mitigated: both stamps set.
    let (s, d) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "resolved"})),
    )
    .await;
    assert_eq!(s, 200);
    assert!(d["mitigated_at"].is_string() && d["resolved_at"].is_string());
    let (s, _) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "closed"})),
    )
    .await;
    assert_eq!(s, 403, "only the commander, approvers and admins close");
    // The commander changes severity and closes.
    let (s, d) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"severity": "SEV1", "status": "closed", "reason": "fixed by rollback"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["severity"], "SEV1");
    assert!(d["closed_at"].is_string());
    let k = kinds(&d);
    assert_eq!(k.len(), events_before + 3, "{k:?}");
    assert!(
        k.ends_with(&[
            "status_change".into(),
            "severity_change".into(),
            "status_change".into()
        ]) || k.contains(&"severity_change".to_string())
    );
    // Nothing leaves closed except an admin's re-open, which is logged.
    let (s, _) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "investigating"})),
    )
    .await;
    assert_eq!(s, 403);
    let appr = user(&app, "cy", Role::Approver).await;
    let (s, _) = json_req(
        &appr,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "investigating"})),
    )
    .await;
    assert_eq!(s, 403);
    let admin = user(&app, "root", Role::Admin).await;
    let (s, d) = json_req(
        &admin,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"status": "investigating", "reason": "it came back"})),
    )
    .await;
    assert_eq!(s, 200);
    let last = d["timeline"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["body"]
            .as_str()
            .unwrap()
            .starts_with("Re-opened: closed → investigating — it came back"),
        "{last}"
    );
    assert!(d["closed_at"].is_null() && d["resolved_at"].is_null());

    // Time corrections: by the commander, monotonic, recorded.
    let detected = d["detected_at"].as_str().unwrap().to_string();
    let (s, e) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"corrections": {"acknowledged_at": "2001-01-01T00:00:00Z"}})),
    )
    .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be earlier than detected_at")
    );
    let (s, _) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"corrections": {"detected_at": detected}})),
    )
    .await;
    assert_eq!(s, 403, "only the commander corrects times");
    let earlier = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let earlier = earlier
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (s, d) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"corrections": {"detected_at": earlier}, "reason": "first alert was earlier"})),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    let last = d["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "timestamp_corrected");
    assert!(
        last["details"]
            .as_str()
            .unwrap()
            .contains("first alert was earlier")
    );
    // The database itself refuses non-monotonic times.
    let err = sqlx::query("UPDATE incidents SET acknowledged_at = detected_at - interval '1 day'")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("incidents_times_monotonic"),
        "{err}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn timeline_is_append_only_and_notes_keep_their_history(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ana = user(&app, "ana", Role::Responder).await;
    let bob = user(&app, "bob", Role::Responder).await;
    let (_, d) = json_req(
        &ana,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(new_incident("Redis full", "SEV3")),
    )
    .await;
    let key = d["key"].as_str().unwrap();
    let (s, ev) = json_req(&ana, &app, reqwest::Method::POST, &format!("/api/v1/incidents/{key}/notes"),
        Some(json!({"body": "Redis at **98%**. <script>alert(1)</script><img src=x onerror=alert(2)> [x](javascript:alert(3))"}))).await;
    assert_eq!(s, 201, "{ev}");
    let html = ev["body_html"].as_str().unwrap();
    assert!(html.contains("<strong>98%</strong>"));
    for bad in ["<script", "onerror", "javascript:"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    let id = ev["id"].as_i64().unwrap();
    // Only the author edits; the history is kept.
    let (s, _) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/timeline/{id}"),
        Some(json!({"body": "hijacked"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, ev) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/timeline/{id}"),
        Some(json!({"body": "Redis at 99%"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(ev["body"], "Redis at 99%");
    assert_eq!(ev["history"].as_array().unwrap().len(), 1);
    assert!(
        ev["history"][0]["body"]
            .as_str()
            .unwrap()
            .starts_with("Redis at **98%**")
    );
    let (_, ev) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/timeline/{id}"),
        Some(json!({"body": "Redis at 100%"})),
    )
    .await;
    assert_eq!(ev["history"].as_array().unwrap().len(), 2);
    // Non-notes cannot be edited.
    let created_id: i64 =
        sqlx::query_scalar("SELECT id FROM timeline_events WHERE kind = 'created'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let (s, _) = json_req(
        &ana,
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/timeline/{created_id}"),
        Some(json!({"body": "rewritten"})),
    )
    .await;
    assert_eq!(s, 409);
    // Pinning is the one allowed change.
    let (s, ev) = json_req(
        &bob,
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/timeline/{id}"),
        Some(json!({"pinned": true})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(ev["pinned"], true);
    // The database enforces it.
    for sql in [
        "UPDATE timeline_events SET body = 'forged'",
        "UPDATE timeline_events SET at = now() - interval '1 day'",
        "DELETE FROM timeline_events",
        "TRUNCATE timeline_events CASCADE",
        "UPDATE note_revisions SET body = 'forged'",
        "DELETE FROM note_revisions",
    ] {
        let err = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // Oversized notes are refused with a clear message; nothing written.
    let n: i64 = app.count("timeline_events").await;
    let (s, e) = json_req(
        &ana,
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{key}/notes"),
        Some(json!({"body": "x".repeat(20_001)})),
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the limit is 20000"),
        "{e}"
    );
    let (s, _) = json_req(
        &ana,
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{key}/notes"),
        Some(json!({"body": "   "})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(app.count("timeline_events").await, n);
    // Unknown keys: 404.
    let (s, _) = json_req(
        &ana,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents/INC-999/notes",
        Some(json!({"body": "x"})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = json_req(
        &ana,
        &app,
        reqwest::Method::GET,
        "/api/v1/incidents/nonsense",
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn findings_statuses_action_items_and_the_postmortem(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let api = Api::new(&app, "resp", Role::Responder).await;
    let (_, d) = api
        .post(
            "/api/v1/incidents",
            new_incident("Lag on enrichment", "SEV2"),
        )
        .await;
    let key = d["key"].as_str().unwrap().to_string();
    let finding = json!({
        "code": "REDIS_NOEVICTION_NEAR_LIMIT", "severity": "critical",
        "title": "Redis uses 98% of maxmemory with noeviction",
        "evidence": {"facts": [{"name": "used_memory", "value": "1.96 GB"}, {"name": "maxmemory", "value": "2 GB"}],
                     "command": "redis-cli INFO memory", "excerpt": "y".repeat(40_000)},
        "remediation": "Switch the policy:\n\n```sh\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n",
        "doc_link": "https://redis.io/docs/latest/develop/reference/eviction/"
    });
    let (s, f) = api
        .post(
            &format!("/api/v1/incidents/{key}/findings"),
            finding.clone(),
        )
        .await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(
        f["commands"][0],
        "redis-cli CONFIG SET maxmemory-policy allkeys-lru"
    );
    assert!(
        f["evidence"]["excerpt"].as_str().unwrap().len() < 17_000,
        "excerpt capped"
    );
    assert_eq!(f["source"]["kind"], "manual");
    let fid = f["id"].as_i64().unwrap();
    for (bad, why) in [
        (
            json!({"code": "lower_case", "severity": "info", "title": "x"}),
            "code",
        ),
        (
            json!({"code": "OK_CODE", "severity": "fatal", "title": "x"}),
            "severity",
        ),
        (
            json!({"code": "OK_CODE", "severity": "info", "title": ""}),
            "title",
        ),
        (
            json!({"code": "OK_CODE", "severity": "info", "title": "x", "doc_link": "javascript:alert(1)"}),
            "doc link",
        ),
    ] {
        let (s, _) = api
            .post(&format!("/api/v1/incidents/{key}/findings"), bad)
            .await;
        assert!(s == 422 || s == 400, "{why}: {s}");
    }
    // A false positive needs a reason.
    let (s, e) = api
        .patch(
            &format!("/api/v1/findings/{fid}"),
            json!({"status": "false_positive"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, f) = api
        .patch(
            &format!("/api/v1/findings/{fid}"),
            json!({"status": "false_positive", "reason": "maxmemory was raised an hour ago"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(f["status"], "false_positive");
    assert_eq!(f["status_reason"], "maxmemory was raised an hour ago");
    assert_eq!(f["updated_by"], "token:t-resp");
    let (s, f) = api
        .patch(
            &format!("/api/v1/findings/{fid}"),
            json!({"status": "confirmed"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(f["status"], "confirmed");
    let (s, _) = api
        .patch("/api/v1/findings/999999", json!({"status": "confirmed"}))
        .await;
    assert_eq!(s, 404);

    app.create_user("owner1", Role::Responder).await;
    let (s, a) = api.post(&format!("/api/v1/incidents/{key}/action-items"), json!({"title": "Alert on Redis memory at 80%", "owner": "owner1", "due_date": "2026-12-01"})).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(a["owner"], "owner1");
    assert_eq!(a["due_date"], "2026-12-01");
    let (s, _) = api
        .post(
            &format!("/api/v1/incidents/{key}/action-items"),
            json!({"title": "x", "owner": "ghost"}),
        )
        .await;
    assert_eq!(s, 422);
    let aid = a["id"].as_i64().unwrap();
    let (s, items) = api
        .patch(
            &format!("/api/v1/incidents/{key}/action-items/{aid}"),
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(items[0]["status"], "in_progress");

    let (s, d) = api.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(s, 200);
    let k = kinds(&d);
    for want in ["created", "finding_added", "finding_updated", "action_item"] {
        assert!(k.contains(&want.to_string()), "{want} in {k:?}");
    }

    // Reading the postmortem (GET) records nothing.
    let (_, before) = api.get(&format!("/api/v1/incidents/{key}")).await;
    let res = app
        .plain()
        .get(app.url(&format!("/api/v1/incidents/{key}/postmortem.md")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("## Timeline"));
    let (_, after) = api.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(kinds(&before), kinds(&after), "a GET is read-only");

    // Exporting (POST): the same download, and the export is recorded.
    let res = app
        .plain()
        .post(app.url(&format!("/api/v1/incidents/{key}/postmortem.md")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("postmortem-{key}.md"))
    );
    let md = res.text().await.unwrap();
    for part in [
        &format!("# Postmortem: {key} — Lag on enrichment"),
        "## Summary",
        "Customers see **500s**.",
        "## Impact",
        "- **Severity:** SEV2",
        "## Roles",
        "## Timeline",
        "## Findings",
        "### [critical] REDIS_NOEVICTION_NEAR_LIMIT",
        "| used_memory | 1.96 GB |",
        "redis-cli INFO memory",
        "**Remediation**",
        "redis-cli CONFIG SET maxmemory-policy allkeys-lru",
        "- **Status:** confirmed",
        "## Action items",
        "| Alert on Redis memory at 80% | owner1 | 2026-12-01 | in_progress |",
    ] {
        assert!(md.contains(part), "postmortem lacks {part:?}:\n{md}");
    }
    let (_, d) = api.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(kinds(&d).last().unwrap(), "postmortem_exported");
}

#[sqlx::test(migrations = "../migrations")]
async fn list_filters_order_and_keyset_pages(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let api = Api::new(&app, "lister", Role::Approver).await;
    let specs = [
        ("a sev3 open", "SEV3", None),
        ("b sev1 open", "SEV1", None),
        ("c sev2 resolved", "SEV2", Some("resolved")),
        ("d sev4 open", "SEV4", None),
        ("e sev1 cancelled", "SEV1", Some("cancelled")),
        ("f sev2 open", "SEV2", None),
        ("g sev1 open", "SEV1", None),
    ];
    let mut keys = std::collections::HashMap::new();
    for (title, sev, status) in specs {
        let mut body = new_incident(title, sev);
        if title.starts_with('d') {
            body["services"] = json!(["search"]);
            body["environment"] = json!("staging");
            body["labels"] = json!({"team": "discovery"});
        }
        let (s, d) = api.post("/api/v1/incidents", body).await;
        assert_eq!(s, 201, "{d}");
        let key = d["key"].as_str().unwrap().to_string();
        if let Some(st) = status {
            let (s, e) = api
                .patch(&format!("/api/v1/incidents/{key}"), json!({"status": st}))
                .await;
            assert_eq!(s, 200, "{e}");
        }
        keys.insert(title, key);
    }
    // Open first by severity (newest first within), then the rest newest first.
    let want = [
        "g sev1 open",
        "b sev1 open",
        "f sev2 open",
        "a sev3 open",
        "d sev4 open",
        "e sev1 cancelled",
        "c sev2 resolved",
    ];
    let mut got = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/incidents?limit=3&cursor={c}"),
            None => "/api/v1/incidents?limit=3".into(),
        };
        let (s, p) = api.get(&path).await;
        assert_eq!(s, 200, "{p}");
        pages += 1;
        got.extend(
            p["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["title"].as_str().unwrap().to_string()),
        );
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(got, want);
    assert_eq!(pages, 3);
    let titles = |p: &Value| {
        p["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, p) = api.get("/api/v1/incidents?severity=SEV1").await;
    assert_eq!(
        titles(&p),
        vec!["g sev1 open", "b sev1 open", "e sev1 cancelled"]
    );
    let (_, p) = api.get("/api/v1/incidents?status=resolved").await;
    assert_eq!(titles(&p), vec!["c sev2 resolved"]);
    let (_, p) = api.get("/api/v1/incidents?open=true&severity=SEV1").await;
    assert_eq!(titles(&p), vec!["g sev1 open", "b sev1 open"]);
    let (_, p) = api.get("/api/v1/incidents?service=search").await;
    assert_eq!(titles(&p), vec!["d sev4 open"]);
    let (_, p) = api.get("/api/v1/incidents?environment=staging").await;
    assert_eq!(titles(&p), vec!["d sev4 open"]);
    let (_, p) = api.get("/api/v1/incidents?label=team%3Ddiscovery").await;
    assert_eq!(titles(&p), vec!["d sev4 open"]);
    let (_, p) = api
        .get(&format!(
            "/api/v1/incidents?q={}",
            keys["f sev2 open"].to_lowercase()
        ))
        .await;
    assert_eq!(titles(&p), vec!["f sev2 open"]);
    let (_, p) = api.get("/api/v1/incidents?q=SEV2").await;
    assert_eq!(titles(&p), vec!["f sev2 open", "c sev2 resolved"]);
    let (_, p) = api.get("/api/v1/incidents?q=100%25").await;
    assert_eq!(titles(&p).len(), 0, "LIKE wildcards are escaped");
    for bad in [
        "cursor=nope",
        "limit=0",
        "limit=1000",
        "label=noequals",
        "severity=SEV9",
        "status=sleeping",
        "bogus=1",
    ] {
        let (s, _) = api.get(&format!("/api/v1/incidents?{bad}")).await;
        assert!(s == 400 || s == 422, "{bad}: {s}");
    }
    let (s, st) = api.get("/api/v1/incidents/stats").await;
    assert_eq!(s, 200);
    let sev1 = st
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["severity"] == "SEV1")
        .unwrap();
    assert_eq!(sev1["open"], 2);
    let sev2 = st
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["severity"] == "SEV2")
        .unwrap();
    assert!(
        sev2["mttr_30d"].as_f64().unwrap() >= 0.0,
        "the resolved SEV2 has a time to resolve"
    );
    assert!(sev1["mttr_30d"].is_null(), "no SEV1 resolved");
}

#[sqlx::test(migrations = "../migrations")]
async fn permissions_per_role(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let viewer = Api::new(&app, "v", Role::Viewer).await;
    let responder = Api::new(&app, "r", Role::Responder).await;
    let approver = Api::new(&app, "a", Role::Approver).await;
    let (s, _) = viewer
        .post("/api/v1/incidents", new_incident("x", "SEV3"))
        .await;
    assert_eq!(s, 403);
    let (s, d) = responder
        .post("/api/v1/incidents", new_incident("perm", "SEV3"))
        .await;
    assert_eq!(s, 201);
    assert!(d["commander"].is_null(), "a token has no user to command");
    let key = d["key"].as_str().unwrap().to_string();
    let p = format!("/api/v1/incidents/{key}");
    app.create_user("ic", Role::Responder).await;
    let finding = json!({"code": "X_Y_Z", "severity": "info", "title": "t"});
    use reqwest::Method as M;
    // (who, method, path, body, expected status) — in order; later rows see earlier changes.
    let table: Vec<(&Api, M, String, Option<Value>, u16)> = vec![
        (&viewer, M::GET, p.clone(), None, 200),
        (&viewer, M::GET, "/api/v1/incidents".into(), None, 200),
        (
            &viewer,
            M::POST,
            format!("{p}/notes"),
            Some(json!({"body": "hi"})),
            403,
        ),
        (
            &viewer,
            M::POST,
            format!("{p}/findings"),
            Some(finding.clone()),
            403,
        ),
        (
            &viewer,
            M::POST,
            format!("{p}/action-items"),
            Some(json!({"title": "t"})),
            403,
        ),
        (
            &viewer,
            M::PATCH,
            p.clone(),
            Some(json!({"status": "investigating"})),
            403,
        ),
        (
            &responder,
            M::POST,
            format!("{p}/notes"),
            Some(json!({"body": "hi"})),
            201,
        ),
        (
            &responder,
            M::POST,
            format!("{p}/findings"),
            Some(finding),
            201,
        ),
        (
            &responder,
            M::POST,
            format!("{p}/action-items"),
            Some(json!({"title": "t"})),
            201,
        ),
        (
            &responder,
            M::PATCH,
            p.clone(),
            Some(json!({"severity": "SEV1"})),
            403,
        ),
        (
            &responder,
            M::PATCH,
            p.clone(),
            Some(json!({"responders": []})),
            403,
        ),
        (
            &responder,
            M::PATCH,
            p.clone(),
            Some(json!({"status": "cancelled"})),
            403,
        ),
        (
            &approver,
            M::PATCH,
            p.clone(),
            Some(json!({"severity": "SEV1", "commander": "ic", "responders": ["ic"]})),
            200,
        ),
        (
            &approver,
            M::PATCH,
            p.clone(),
            Some(json!({"commander": "nobody"})),
            422,
        ),
        (
            &approver,
            M::PATCH,
            p.clone(),
            Some(json!({"status": "cancelled"})),
            200,
        ),
        (&approver, M::PATCH, p.clone(), Some(json!({})), 422),
        (
            &approver,
            M::PATCH,
            p.clone(),
            Some(json!({"colour": "red"})),
            400,
        ),
    ];
    for (who, m, path, body, want) in table {
        let (got, b) = who.send(m.clone(), &path, body).await;
        assert_eq!(got, want, "{m} {path}: {b}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn webhook_payloads_are_validated_and_grouped(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let am = Api::new(&app, "alertmanager", Role::Responder).await;
    let payload = |status: &str, alerts: Value| {
        json!({
            "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": status, "receiver": "lookout",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {"alertname": "HighErrorRate", "severity": "critical", "service": "api", "env": "prod"},
            "commonAnnotations": {"summary": "API error rate above 5%"},
            "externalURL": "http://alertmanager", "alerts": alerts, "truncatedAlerts": 0
        })
    };
    let alert = |status: &str, instance: &str| {
        json!({"status": status, "labels": {"alertname": "HighErrorRate", "severity": "critical", "service": "api", "instance": instance},
        "annotations": {"summary": "API error rate above 5%"}, "startsAt": "2026-11-23T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": format!("fp-{instance}")})
    };
    let before = app.count("incidents").await;
    for (body, want) in [
        ("{not json".to_string(), 400),
        (json!({"version": "4"}).to_string(), 400),
        (payload("firing", json!([])).to_string(), 422),
        (
            {
                let mut p = payload("firing", json!([alert("firing", "a")]));
                p["version"] = json!("3");
                p.to_string()
            },
            422,
        ),
        (
            {
                let mut p = payload("firing", json!([alert("firing", "a")]));
                p["status"] = json!("weird");
                p.to_string()
            },
            422,
        ),
        (
            format!("{{\"version\":\"4\",\"pad\":\"{}\"}}", "x".repeat(100_000)),
            413,
        ),
    ] {
        let res = app
            .plain()
            .post(app.url("/api/v1/webhooks/alertmanager"))
            .bearer_auth(&am.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), want);
    }
    assert_eq!(
        app.count("incidents").await,
        before,
        "bad payloads write nothing"
    );
    let res = app
        .plain()
        .post(app.url("/api/v1/webhooks/alertmanager"))
        .json(&payload("firing", json!([alert("firing", "a")])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a token is required");

    let (s, o) = am
        .post(
            "/api/v1/webhooks/alertmanager",
            payload("firing", json!([alert("firing", "a")])),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["created"], true);
    let key = o["incident"].as_str().unwrap().to_string();
    let (_, d) = am.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(d["severity"], "SEV2", "critical → SEV2");
    assert_eq!(d["title"], "API error rate above 5%");
    assert_eq!(d["services"], json!(["api"]));
    assert_eq!(d["environment"], "prod");
    assert_eq!(d["detected_at"], "2026-11-23T10:00:00Z");
    // Same group, still firing: an event on the same incident.
    let (_, o) = am
        .post(
            "/api/v1/webhooks/alertmanager",
            payload(
                "firing",
                json!([alert("firing", "a"), alert("firing", "b")]),
            ),
        )
        .await;
    assert_eq!(o["created"], false);
    assert_eq!(o["incident"], key.as_str());
    let (_, o) = am
        .post(
            "/api/v1/webhooks/alertmanager",
            payload(
                "resolved",
                json!([alert("resolved", "a"), alert("resolved", "b")]),
            ),
        )
        .await;
    assert_eq!(o["incident"], key.as_str());
    let (_, d) = am.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(
        kinds(&d),
        vec![
            "created",
            "alert_received",
            "alert_received",
            "alert_resolved"
        ]
    );
    assert!(
        d["timeline"][2]["body"]
            .as_str()
            .unwrap()
            .starts_with("2 alerts firing: HighErrorRate (api)")
    );
    assert_eq!(app.count("incidents").await, before + 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn live_stream_announces_new_events(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let api = Api::new(&app, "live", Role::Responder).await;
    let (_, d) = api
        .post("/api/v1/incidents", new_incident("live", "SEV3"))
        .await;
    let key = d["key"].as_str().unwrap().to_string();
    let mut res = app
        .plain()
        .get(app.url(&format!("/api/v1/incidents/{key}/stream")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let first = res.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: ready"));
    let start = std::time::Instant::now();
    let (s, _) = api
        .post(
            &format!("/api/v1/incidents/{key}/notes"),
            json!({"body": "from another user"}),
        )
        .await;
    assert_eq!(s, 201);
    let next = tokio::time::timeout(std::time::Duration::from_secs(2), res.chunk())
        .await
        .expect("an update within 2 s")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&next).contains("event: changed"),
        "{next:?}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    let (s, _) = api.get("/api/v1/incidents/INC-404/stream").await;
    assert_eq!(s, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn incident_pages_render_and_unknown_keys_are_404(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = user(&app, "pages", Role::Responder).await;
    let (_, d) = json_req(
        &c,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(new_incident("Page render <b>check</b>", "SEV1")),
    )
    .await;
    let key = d["key"].as_str().unwrap().to_string();
    json_req(
        &c,
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{key}/notes"),
        Some(json!({"body": "first *note*"})),
    )
    .await;
    let res = c
        .get(app.url(&format!("/incidents/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Page render &lt;b&gt;check&lt;/b&gt;"),
        "titles are escaped"
    );
    assert!(html.contains("first <em>note</em>"));
    assert!(html.contains(&format!("/api/v1/incidents/{key}/postmortem.md")));
    let res = c
        .get(app.url("/incidents?severity=SEV1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains(&format!("data-key=\"{key}\""))
    );
    let res = c.get(app.url("/incidents/INC-9999")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("no incident INC-9999"));
    let res = c
        .get(app.url("/incidents?severity=SEV9"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

#[sqlx::test(migrations = "../migrations")]
async fn long_timelines_show_a_window_with_a_way_to_see_everything(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = user(&app, "win", Role::Responder).await;
    let (_, d) = json_req(
        &c,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(new_incident("long", "SEV3")),
    )
    .await;
    let key = d["key"].as_str().unwrap().to_string();
    let who = common::admin_principal();
    for i in 0..520 {
        domain::services::incidents::add_note(
            &app.pool,
            &who,
            &key,
            &format!("note number {i:04}"),
        )
        .await
        .unwrap();
    }
    // Pin an old one: pinned events are always shown.
    let old: i64 =
        sqlx::query_scalar("SELECT id FROM timeline_events WHERE body = 'note number 0003'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    domain::services::incidents::set_pinned(&app.pool, &who, old, true)
        .await
        .unwrap();
    let html = c
        .get(app.url(&format!("/incidents/{key}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Showing 201 of 521 events: the newest 200 and every pinned one."),
        "window note"
    );
    assert!(html.contains("note number 0519"));
    assert!(html.contains("note number 0003"), "pinned stays visible");
    assert!(
        !html.contains("note number 0002"),
        "older events are behind the link"
    );
    let html = c
        .get(app.url(&format!("/incidents/{key}?all=1")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("note number 0002") && html.contains("note number 0000"));
    assert!(!html.contains("Showing 201"));
    let html = c
        .get(app.url(&format!("/incidents/{key}?kind=created")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Opened") && !html.contains("note number 0519"),
        "kind filter on the server"
    );
}

/// A long incident's page lists findings as summaries (no evidence, no remediation, a link);
/// the finding's own page shows it whole; the API keeps returning it whole.
#[sqlx::test(migrations = "../migrations")]
async fn findings_are_summaries_on_the_incident_page_and_whole_on_their_own(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = user(&app, "fsum", Role::Responder).await;
    let (_, d) = json_req(
        &c,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(new_incident("Memory", "SEV2")),
    )
    .await;
    let key = d["key"].as_str().unwrap().to_string();
    let (_, other) = json_req(
        &c,
        &app,
        reqwest::Method::POST,
        "/api/v1/incidents",
        Some(new_incident("Other", "SEV3")),
    )
    .await;
    let other = other["key"].as_str().unwrap().to_string();
    let (s, f) = json_req(
        &c,
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/incidents/{key}/findings"),
        Some(json!({"code": "REDIS_EVICTING", "severity": "warning", "title": "Evicting 40 keys/s",
            "evidence": {"facts": [{"name": "evicted_keys", "value": "EVIDENCE-VALUE-4711"}], "excerpt": "z".repeat(10_000)},
            "remediation": "Raise it:\n\n```sh\nredis-cli CONFIG SET maxmemory 8gb\n```\n"})),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let id = f["id"].as_i64().unwrap();
    let page = |path: String| {
        let c = c.clone();
        let url = app.url(&path);
        async move {
            let res = c.get(url).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (s, html) = page(format!("/incidents/{key}")).await;
    assert_eq!(s, 200);
    assert!(html.contains("Evicting 40 keys/s") && html.contains("REDIS_EVICTING"));
    assert!(
        html.contains(&format!("/incidents/{key}/findings/{id}")),
        "a link to the finding"
    );
    // Islands: the page's data is in the HTML once — not again as hydration data (a
    // hydrated page repeated every resource as JSON) — and the page carries its one island.
    // The title: in the findings list and in the timeline's "finding added" event, and
    // nowhere else.
    assert_eq!(html.matches("Evicting 40 keys/s").count(), 2, "sent once");
    assert!(
        !html.contains("__RESOLVED_RESOURCES["),
        "no serialised resources"
    );
    assert!(html.contains("<leptos-island"), "the Enhance island");
    // No evidence or remediation on the incident page.
    for leak in ["EVIDENCE-VALUE-4711", "zzzzzzzzzz", "maxmemory 8gb"] {
        if let Some(i) = html.find(leak) {
            panic!(
                "{leak} on the incident page: …{}…",
                &html[i.saturating_sub(200)..(i + 50).min(html.len())]
            );
        }
    }
    let (s, html) = page(format!("/incidents/{key}/findings/{id}")).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("EVIDENCE-VALUE-4711") && html.contains("redis-cli CONFIG SET maxmemory 8gb")
    );
    assert!(
        html.contains("<h5>Remediation</h5>") && html.contains("Raise it"),
        "the remediation is shown"
    );
    // Another incident's finding, or none: 404.
    let (s, _) = page(format!("/incidents/{other}/findings/{id}")).await;
    assert_eq!(s, 404);
    for bad in ["999999", "abc", "-1", "99999999999999999999999", "1%0d%0a"] {
        let (s, _) = page(format!("/incidents/{key}/findings/{bad}")).await;
        assert_eq!(s, 404, "{bad}");
    }
    // The API returns findings whole.
    let (_, d) = json_req(
        &c,
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/incidents/{key}"),
        None,
    )
    .await;
    assert_eq!(
        d["findings"][0]["evidence"]["facts"][0]["value"],
        "EVIDENCE-VALUE-4711"
    );
    assert!(d["findings"][0].get("detail_omitted").is_none());
}
