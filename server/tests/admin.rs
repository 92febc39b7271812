//! Settings through the API and server functions: users, tokens, the audit log — and the
//! rules that keep them honest (hashing, append-only audit, no lock-out).

mod common;

use common::{PASSWORD, TestApp, call_fn};
use domain::Role;
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn admin_creates_a_user_and_a_token_that_works_once_shown(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in("root1", Role::Admin).await;
    let res = call_fn(
        &admin,
        &app,
        "users/create",
        &[
            ("username", "Kate"),
            ("display_name", "Kate K"),
            ("role", "responder"),
            ("password", "kates-long-password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let user: serde_json::Value = res.json().await.unwrap();
    assert_eq!(user["username"], "kate", "usernames are lower-cased");
    assert_eq!(user["role"], "responder");
    // The password is stored as an argon2id hash.
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'kate'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(!hash.contains("kates-long-password"));

    let res = call_fn(
        &admin,
        &app,
        "tokens/create",
        &[("name", "ci gate"), ("role", "approver")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let t: serde_json::Value = res.json().await.unwrap();
    let secret = t["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("lko_") && secret.len() > 60);

    // Stored hashed: the secret appears nowhere in the database.
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(t::text, '|') FROM (SELECT * FROM api_tokens) t")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!dump.contains(&secret));
    let audit: String = sqlx::query_scalar("SELECT string_agg(details::text, '|') FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!audit.contains(&secret));
    // Never listed again.
    let list = call_fn(&admin, &app, "tokens/list", &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret));
    assert!(list.contains("ci gate"));

    // The token works on /api/v1/whoami, carries its role, and records its last use.
    let res = app
        .plain()
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["name"], "token:ci gate");
    assert_eq!(me["role"], "approver");
    assert_eq!(me["method"], "token");
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens WHERE name = 'ci gate'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(used.is_some(), "last use recorded");

    let actions = app.audit_actions().await;
    for a in ["user.create", "token.create", "auth.login"] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn audit_log_is_append_only_filterable_and_paged(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in("root2", Role::Admin).await;
    for i in 0..7 {
        app.create_token(&format!("tok{i}"), Role::Viewer).await;
    }
    let err = sqlx::query("UPDATE audit_log SET action = 'forged'")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("TRUNCATE audit_log")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");

    let res = admin
        .get(app.url("/api/v1/audit?action=token.&limit=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page: serde_json::Value = res.json().await.unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e["action"] == "token.create"));
    let mut seen: Vec<String> = entries
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen[0], "tok6", "newest first");
    let mut before = page["next_before_id"].as_i64().unwrap();
    loop {
        let p: serde_json::Value = admin
            .get(app.url(&format!(
                "/api/v1/audit?action=token.&limit=3&before_id={before}"
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            p["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["target"].as_str().unwrap().to_string()),
        );
        match p["next_before_id"].as_i64() {
            Some(b) => before = b,
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).rev().map(|i| format!("tok{i}")).collect::<Vec<_>>()
    );
    let page: serde_json::Value = admin
        .get(app.url("/api/v1/audit?actor=root2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_name"] == "root2")
    );
    // The page renders it.
    let html = admin
        .get(app.url("/settings/audit?action=token."))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("token.create") && html.contains("tok6"));
}

#[sqlx::test(migrations = "../migrations")]
async fn role_changes_resets_and_the_last_admin(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in("root3", Role::Admin).await;
    let me: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'root3'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // The only admin cannot demote or disable themselves.
    let res = call_fn(
        &admin,
        &app,
        "users/role",
        &[("user_id", &me.to_string()), ("role", "viewer")],
    )
    .await;
    assert_eq!(res.status(), 409);
    let res = admin
        .patch(app.url(&format!("/api/v1/users/{me}")))
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

    let lee = app.create_user("lee", Role::Viewer).await;
    let res = call_fn(
        &admin,
        &app,
        "users/role",
        &[("user_id", &lee.to_string()), ("role", "approver")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let role: Role = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(lee)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(role, Role::Approver);

    // A reset password ends lee's sessions; the new one works.
    let lee_client = app.browser();
    app.login(&lee_client, "lee", PASSWORD).await;
    let res = call_fn(
        &admin,
        &app,
        "users/reset-password",
        &[
            ("user_id", &lee.to_string()),
            ("password", "brand-new-password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        lee_client
            .get(app.url("/api/v1/whoami"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.login(&app.browser(), "lee", "brand-new-password").await,
        "/settings"
    );

    // Users change their own password.
    let c = app.browser();
    app.login(&c, "lee", "brand-new-password").await;
    let res = call_fn(
        &c,
        &app,
        "account/password",
        &[
            ("current", "brand-new-password"),
            ("new_password", "short"),
            ("confirm", "short"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = call_fn(
        &c,
        &app,
        "account/password",
        &[
            ("current", "brand-new-password"),
            ("new_password", "lees-own-password"),
            ("confirm", "lees-own-passwort"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422, "confirmation must match");
    let res = call_fn(
        &c,
        &app,
        "account/password",
        &[
            ("current", "brand-new-password"),
            ("new_password", "lees-own-password"),
            ("confirm", "lees-own-password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.login(&app.browser(), "lee", "lees-own-password").await,
        "/settings"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn first_admin_is_created_once(pool: PgPool) {
    use domain::services::auth::{Bootstrap, ensure_first_admin};
    let r = ensure_first_admin(&pool, None).await.unwrap();
    let Bootstrap::CreatedWithGeneratedPassword(pw) = r else {
        panic!("expected a generated password, got {r:?}")
    };
    assert!(pw.len() >= 16);
    assert_eq!(
        ensure_first_admin(&pool, Some("another-password"))
            .await
            .unwrap(),
        Bootstrap::AlreadyInitialised
    );
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.login(&app.browser(), "admin", &pw).await, "/settings");
    // A too-short configured password is refused with the variable's name.
    let err = ensure_first_admin(&app.pool, Some("short"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("LOOKOUT_ADMIN_PASSWORD"));
}

/// Every text column of the tables that could hold a secret by mistake.
async fn database_text(app: &TestApp) -> String {
    let mut all = String::new();
    for table in ["sessions", "api_tokens", "audit_log"] {
        let dump: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, '|') FROM (SELECT * FROM {table}) t"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        all.push_str(&dump.unwrap_or_default());
    }
    all
}

#[sqlx::test(migrations = "../migrations")]
async fn a_token_made_without_javascript_is_shown_once_and_stored_nowhere(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in("root9", Role::Admin).await;
    // The form as a browser without wasm posts it.
    let res = admin
        .post(app.url("/settings/tokens"))
        .header("accept", "text/html")
        .form(&[("name", "nojs gate"), ("role", "responder")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    let start = html.find("lko_").expect("the secret is on the page");
    let secret: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(secret.len() > 60, "{secret}");
    assert!(html.contains("id=\"new-token-secret\""));
    assert!(
        !html.contains("type=\"module\""),
        "the answer to a form post is not hydrated"
    );
    // It works, and it is in no table: not the session store, not the tokens, not the audit log.
    let who = app
        .plain()
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    assert!(!database_text(&app).await.contains(&secret));
    // The next visit does not show it.
    let again = admin.get(app.url("/settings/tokens")).send().await.unwrap();
    let html = again.text().await.unwrap();
    assert!(!html.contains(&secret) && !html.contains("new-token-secret"));
    assert!(html.contains("nojs gate"));

    // A CI token limited to deployments, from the same form: responder, its services listed.
    let res = admin
        .post(app.url("/settings/tokens"))
        .header("accept", "text/html")
        .form(&[
            ("name", "ci checkout"),
            ("role", "viewer"),
            ("deploy_services", "checkout, payments"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("deployments of checkout, payments only"),
        "the list shows the scope"
    );
    let scoped: (String, Vec<String>) = sqlx::query_as(
        "SELECT role::text, deploy_services FROM api_tokens WHERE name = 'ci checkout'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        scoped,
        (
            "responder".to_string(),
            vec!["checkout".to_string(), "payments".to_string()]
        )
    );

    // A viewer posting the same form gets 403 and nothing is created.
    let viewer = app.signed_in("peek", Role::Viewer).await;
    let before = app.count("api_tokens").await;
    let res = viewer
        .post(app.url("/settings/tokens"))
        .header("accept", "text/html")
        .form(&[("name", "sneaky"), ("role", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!res.text().await.unwrap().contains("lko_"));
    assert_eq!(app.count("api_tokens").await, before);
    // A bad role is a 422 on the page, nothing created.
    let res = admin
        .post(app.url("/settings/tokens"))
        .form(&[("name", "x"), ("role", "overlord")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("api_tokens").await, before);
}
