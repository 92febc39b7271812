//! Bad input gets a clear 4xx and nothing is written; nothing panics.

mod common;

use common::{TestApp, call_fn};
use domain::Role;
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn malformed_json_and_forms_are_4xx_and_write_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = app.create_token("bad-input", Role::Admin).await;
    let users = app.count("users").await;
    let c = app.plain();
    let cases: Vec<(&str, &str, u16)> = vec![
        ("application/json", "{not json", 400),
        (
            "application/json",
            r#"{"username":"x1","role":"admin"}"#,
            400,
        ),
        (
            "application/json",
            r#"{"username":"ok-name","role":"root","password":"a-long-enough-password"}"#,
            400,
        ),
        (
            "application/json",
            r#"{"username":"ok-name","role":"viewer","password":"a-long-enough-password","extra":1}"#,
            400,
        ),
        (
            "application/json",
            r#"{"username":5,"role":"viewer","password":"a-long-enough-password"}"#,
            400,
        ),
        (
            "text/plain",
            r#"{"username":"ok-name","role":"viewer","password":"a-long-enough-password"}"#,
            415,
        ),
        (
            "application/json",
            r#"{"username":"Bad Name!","role":"viewer","password":"a-long-enough-password"}"#,
            422,
        ),
        (
            "application/json",
            r#"{"username":"shorty","role":"viewer","password":"short"}"#,
            422,
        ),
    ];
    for (ct, body, want) in cases {
        let res = c
            .post(app.url("/api/v1/users"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), want, "{ct} {body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}: {err}"
        );
    }
    // Duplicate: 409.
    for want in [201, 409] {
        let res = c.post(app.url("/api/v1/users")).bearer_auth(&token)
            .json(&serde_json::json!({"username":"dupe","role":"viewer","password":"a-long-enough-password"}))
            .send().await.unwrap();
        assert_eq!(res.status().as_u16(), want);
    }
    assert_eq!(
        app.count("users").await,
        users + 1,
        "only the one valid user was written"
    );

    // Bad query strings and path parameters.
    let res = c
        .get(app.url("/api/v1/audit?limit=abc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c
        .get(app.url("/api/v1/audit?limit=0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = c
        .get(app.url("/api/v1/audit?bogus=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c
        .delete(app.url("/api/v1/tokens/not-a-number"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c
        .patch(app.url("/api/v1/users/1"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "an empty patch changes nothing");
    let res = c
        .get(app.url("/api/v1/no-such-thing"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Server functions with missing or mistyped arguments.
    let admin = app.signed_in("bi-admin", Role::Admin).await;
    let res = call_fn(&admin, &app, "users/create", &[("username", "noval")]).await;
    assert_eq!(res.status(), 400);
    let res = call_fn(
        &admin,
        &app,
        "users/role",
        &[("user_id", "x"), ("role", "viewer")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = call_fn(
        &admin,
        &app,
        "tokens/create",
        &[("name", ""), ("role", "viewer")],
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("users").await, users + 2, "bi-admin only");
}

#[sqlx::test(migrations = "../migrations")]
async fn oversized_bodies_get_413(pool: PgPool) {
    let app = TestApp::spawn(pool).await; // 64 KiB limit in tests
    let token = app.create_token("big", Role::Admin).await;
    let before = app.count("users").await;
    let huge = format!(
        r#"{{"username":"big","role":"viewer","password":"{}"}}"#,
        "p".repeat(200_000)
    );
    let res = app
        .plain()
        .post(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // The API's JSON error, not the limit layer's plain text.
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the limit of 65536 bytes"),
        "{body}"
    );
    // Without a Content-Length (chunked), the limit hits while the body is read: the same.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..50).map(|_| Ok(vec![b' '; 4096])).collect();
    let res = app
        .plain()
        .post(app.url("/api/v1/incidents"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    let admin = app.signed_in("big-admin", Role::Admin).await;
    let big_form = "x".repeat(200_000);
    let res = call_fn(
        &admin,
        &app,
        "tokens/create",
        &[("name", &big_form), ("role", "viewer")],
    )
    .await;
    assert_eq!(res.status(), 413);
    let res = admin
        .post(app.url("/auth/login"))
        .form(&[("username", "a"), ("password", big_form.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(app.count("users").await, before + 1);
    assert_eq!(app.count("api_tokens").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_routes_get_a_404_page(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.signed_in("nf", Role::Viewer).await;
    let res = c.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(html.contains("404 — page not found"), "{html}");
    // Malformed login forms send you back to the form.
    let res = app
        .browser()
        .post(app.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("%%%&&&=")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

/// What Schemathesis found (docs/testing.md): each was a 500 or an accepted bad value.
#[sqlx::test(migrations = "../migrations")]
async fn what_the_api_fuzzer_found_is_refused_and_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = app.create_token("fuzz-cases", Role::Admin).await;
    let c = app.plain();
    let tables = ["incidents", "timeline_events", "users", "audit_log"];
    let mut before = vec![];
    for t in tables {
        before.push(app.count(t).await);
    }
    let incident = |title: &str, services: serde_json::Value| serde_json::json!({ "title": title, "severity": "SEV3", "services": services, "environment": "production" });
    // A NUL character in text PostgreSQL would store: 422 with a clear message, not a 500.
    let (s, b) = app
        .post(
            &token,
            "/api/v1/incidents",
            incident("a\u{0}b", serde_json::json!(["checkout"])),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("NUL"),
        "{b}"
    );
    let (s, b) = app.get(&token, "/api/v1/llm/review?operation=a%00b").await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = app.get(&token, "/api/v1/incidents?q=a%00b").await;
    assert!(s == 422 || s == 200, "{s} {b}");
    // Services: each entry checked, the limit on what was sent (21 entries, mostly blank or
    // repeated, used to pass as one).
    let mut many = vec![serde_json::json!("checkout")];
    many.extend((0..20).map(|i| serde_json::json!(if i % 2 == 0 { "" } else { "checkout" })));
    let (s, b) = app
        .post(
            &token,
            "/api/v1/incidents",
            incident("many", serde_json::json!(many)),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = app
        .post(
            &token,
            "/api/v1/incidents",
            incident("blank", serde_json::json!(["checkout", ""])),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    // An explicit null in a PATCH is refused, not read as "leave it".
    let admin_id: i64 = sqlx::query_scalar("SELECT id FROM users ORDER BY id LIMIT 1")
        .fetch_optional(&app.pool)
        .await
        .unwrap()
        .unwrap_or(1);
    let (s, b) = app
        .patch(
            &token,
            &format!("/api/v1/users/{admin_id}"),
            serde_json::json!({ "role": null, "disabled": false }),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // A display name with a control character.
    let (s, b) = app
        .post(
            &token,
            "/api/v1/users",
            serde_json::json!({ "username": "ctl-name", "display_name": "Bell\u{7}", "role": "viewer", "password": "a-long-enough-password" }),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    // A body that is not UTF-8 to a file import: the API's JSON error.
    for path in [
        "/api/v1/llm/prices/litellm?effective_from=2026-01-01",
        "/api/v1/llm/usage/import?format=jsonl",
    ] {
        let res = c
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body(vec![0xffu8, 0xfe, 0x00, 0x80])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let b: serde_json::Value = res.json().await.expect("a JSON error");
        assert_eq!(b["error"]["code"], "bad_request", "{path}: {b}");
    }
    for (t, n) in tables.iter().zip(before) {
        assert_eq!(app.count(t).await, n, "{t}: nothing written");
    }
}
