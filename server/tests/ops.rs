//! Operations endpoints, request ids and metrics.

mod common;

use common::TestApp;
use domain::Role;
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn health_readiness_and_a_missing_migration(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.plain();
    let res = c.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    sqlx::query("UPDATE _sqlx_migrations SET success = false")
        .execute(&app.pool)
        .await
        .unwrap();
    let res = c.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["reason"], "a database migration is not applied",
        "{body}"
    );
    assert!(
        body.get("detail").is_none(),
        "anonymous callers get no detail: {body}"
    );
    // A signed-in caller (a token) also gets the detail.
    let t = app.create_token("ops", Role::Viewer).await;
    let res = c
        .get(app.url("/readyz"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("is not applied"),
        "{body}"
    );
    assert_eq!(
        c.get(app.url("/healthz")).send().await.unwrap().status(),
        200,
        "liveness is not readiness"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn request_ids_are_echoed_or_generated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.plain();
    let res = c
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = c.get(app.url("/api/v1/whoami")).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(
        uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()),
        Ok(4),
        "{id}"
    );
    // The request id is recorded with audited actions.
    app.create_user("rid", Role::Viewer).await;
    app.browser()
        .post(app.url("/auth/login"))
        .header("x-request-id", "login-req-1")
        .form(&[("username", "rid"), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    let rid: String =
        sqlx::query_scalar("SELECT request_id FROM audit_log WHERE action = 'auth.login'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rid, "login-req-1");
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_count_requests_by_route_template(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let t = app.create_token("prom", Role::Viewer).await;
    let c = app.plain();
    for _ in 0..3 {
        c.get(app.url("/api/v1/whoami"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
    }
    c.get(app.url("/api/v1/users/12345"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    c.get(app.url("/random/scanner/path"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    // Made-up methods: each would be a new series if the method were a free label.
    for m in ["PROPFIND", "SCANME1", "SCANME2"] {
        c.request(
            reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
            app.url("/api/v1/whoami"),
        )
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    }
    let res = c
        .get(app.url("/metrics"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"lookout_http_requests_total{method="GET",route="/api/v1/whoami",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/users/{id}",status="405"}"#)
            || text.contains(r#"route="/api/v1/users/{id}""#),
        "templated: {text}"
    );
    assert!(!text.contains("12345"), "ids never become labels");
    assert!(
        !text.contains("/random/scanner/path"),
        "unknown paths are not labels"
    );
    assert!(text.contains(r#"lookout_http_request_duration_seconds_bucket{method="GET",route="/api/v1/whoami",le="+Inf"} 3"#));
    assert!(
        !text.contains("SCANME") && !text.contains("PROPFIND"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"lookout_http_requests_total{method="other",route="/api/v1/whoami",status="405"} 3"#
        ),
        "unknown methods are one label: {text}"
    );
    assert!(text.contains("lookout_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("lookout_build_info{version="));
}

#[sqlx::test(migrations = "../migrations")]
async fn openapi_lists_every_api_route(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let t = app.create_token("doc", Role::Viewer).await;
    let doc: serde_json::Value = app
        .plain()
        .get(app.url("/api/v1/openapi.json"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every route and method under /api/v1 that the router registers is documented…
    let table = server::route_table();
    let mut undocumented = vec![];
    let mut served = std::collections::BTreeSet::new();
    for r in table
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/") && r.path != "/api/v1/{*rest}")
    {
        for m in &r.methods {
            served.insert((r.path.to_string(), m.to_string()));
            if doc["paths"][r.path].get(*m).is_none() {
                undocumented.push(format!("{} {}", m.to_uppercase(), r.path));
            }
        }
    }
    assert!(
        served.len() > 40,
        "the route table was not read: {served:?}"
    );
    assert!(
        undocumented.is_empty(),
        "not in the OpenAPI document: {undocumented:?}"
    );
    // …and the document describes nothing that is not served.
    let mut stale = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        let methods = ["get", "post", "put", "patch", "delete", "head", "options"];
        for m in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| methods.contains(&k.as_str()))
        {
            if !served.contains(&(path.clone(), m.clone())) {
                stale.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn housekeeping_removes_expired_sessions_and_old_failures(pool: PgPool) {
    sqlx::query("INSERT INTO sessions (id, data, expiry_date) VALUES ('old', '{}', now() - interval '1 hour'), ('live', '{}', now() + interval '1 hour')")
        .execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO login_failures (username, client_ip, at) VALUES ('a', '1.2.3.4', now() - interval '2 hours'), ('b', '1.2.3.4', now())")
        .execute(&pool).await.unwrap();
    server::workers::housekeeping_round(&pool, 900)
        .await
        .unwrap();
    let sessions: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, vec!["live"]);
    let failures: Vec<String> = sqlx::query_scalar("SELECT username FROM login_failures")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(failures, vec!["b"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn security_headers_on_pages_api_and_redirects(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.plain();
    // A page: its CSP carries a nonce, and every script on the page has that nonce.
    let res = c.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(
        !csp.contains("'unsafe-inline' 'nonce")
            && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a nonce in the CSP")
        .to_string();
    assert!(nonce.len() >= 16, "{nonce}");
    let body = res.text().await.unwrap();
    let scripts = body.matches("<script").count();
    assert!(scripts > 0, "the page has its hydration script");
    assert_eq!(
        body.matches(&format!("<script nonce=\"{nonce}\"")).count()
            + body
                .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                .count(),
        scripts,
        "every script carries this response's nonce: {body}"
    );
    // An unknown path (the fallback renders the not-found page), a page and the sign-in page
    // alike: the policy's nonce is the one on the page's scripts (both chosen by the server,
    // `headers::PageNonce`).
    let signed_in = app.signed_in("csp-viewer", domain::Role::Viewer).await;
    for path in ["/no-such-page", "/incidents", "/login?next=/incidents"] {
        let r = signed_in.get(app.url(path)).send().await.unwrap();
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        let n = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or_else(|| panic!("{path}: a page policy: {csp}"))
            .to_string();
        let body = r.text().await.unwrap();
        assert!(
            body.contains(&format!("nonce=\"{n}\"")),
            "{path}: the scripts carry {n}"
        );
        assert!(
            !body.contains("nonce=\"")
                || body.matches("nonce=\"").count()
                    == body.matches(&format!("nonce=\"{n}\"")).count(),
            "{path}: one nonce"
        );
    }
    // A second response gets another nonce.
    let again = c.get(app.url("/login")).send().await.unwrap();
    assert!(
        !again.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(&nonce)
    );
    for (name, want) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(h[name], want, "{name}");
    }
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
    // JSON and redirects: a policy that allows nothing, and the same headers.
    for path in ["/api/v1/whoami", "/incidents", "/healthz"] {
        let r = c.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()["content-security-policy"],
            server::headers::DEFAULT_CSP,
            "{path}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn hsts_when_the_public_url_is_https(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| {
        c.public_url = Some("https://lookout.example".parse().unwrap());
    })
    .await;
    let r = app.plain().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn readyz_does_not_show_database_errors_to_anonymous_callers() {
    // A pool whose database does not exist: every query fails with a driver error that
    // names the host, the user and the database.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy("postgres://leaky_user:leaky-pw@127.0.0.1:1/leaky_db")
        .unwrap();
    let app = TestApp::spawn(pool).await;
    let res = app.plain().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let text = res.text().await.unwrap();
    assert!(text.contains("the database cannot be reached"), "{text}");
    for leak in ["leaky", "127.0.0.1", "refused", "error"] {
        assert!(!text.to_lowercase().contains(leak), "{leak} in {text}");
    }
}
