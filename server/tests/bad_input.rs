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
