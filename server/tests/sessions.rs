//! Signing in and out, session cookies, throttling, and what happens to bad sessions.

mod common;

use common::{PASSWORD, TestApp, call_fn};
use domain::Role;
use sqlx::PgPool;

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("lookout_session="))
        .map(str::to_string)
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_password_gives_an_error_and_no_session(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.create_user("alice", Role::Responder).await;
    let c = app.browser();
    let res = c
        .post(app.url("/auth/login"))
        .form(&[
            ("username", "alice"),
            ("password", "wrong-password"),
            ("next", "/kafka"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/login?error=invalid&next=%2Fkafka"
    );
    assert!(
        session_cookie(&res).is_none(),
        "no session cookie for a failed sign-in"
    );
    assert_eq!(app.count("sessions").await, 0);
    // The login page shows the error (with a 401 status).
    let res = c
        .get(app.url("/login?error=invalid&next=%2Fkafka"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Wrong username or password.")
    );
    // And protected pages still redirect.
    let res = c.get(app.url("/kafka")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    // Unknown user: same answer.
    let res = c
        .post(app.url("/auth/login"))
        .form(&[("username", "nobody"), ("password", "wrong-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/login?error=invalid&next=%2F");
    let actions = app.audit_actions().await;
    assert_eq!(
        actions.iter().filter(|a| *a == "auth.login_failed").count(),
        2
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn login_lands_on_next_with_a_safe_cookie_and_rotates_the_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.create_user("bob", Role::Viewer).await;
    let c = app.browser();
    let res = c
        .post(app.url("/auth/login"))
        .form(&[
            ("username", "bob"),
            ("password", PASSWORD),
            ("next", "/kafka?x=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/kafka?x=1");
    let cookie = session_cookie(&res).expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http by default: {cookie}"
    );
    let first_id = cookie.split(';').next().unwrap().to_string();

    let res = c.get(app.url("/kafka")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");

    // Signing in again (same browser) issues a new id and the old one stops working.
    let res = c
        .post(app.url("/auth/login"))
        .form(&[("username", "bob"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let second_id = session_cookie(&res)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(first_id, second_id, "session id rotated at sign-in");
    let stale = app.plain();
    let res = stale
        .get(app.url("/kafka"))
        .header("cookie", &first_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "the pre-rotation id is dead");

    // Open redirects are refused.
    let res = c
        .post(app.url("/auth/login"))
        .form(&[
            ("username", "bob"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/");
}

#[sqlx::test(migrations = "../migrations")]
async fn secure_cookie_when_configured(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| {
        c.cookie_secure = server::config::CookieSecure::Always
    })
    .await;
    app.create_user("carol", Role::Viewer).await;
    let res = app
        .browser()
        .post(app.url("/auth/login"))
        .form(&[("username", "carol"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(session_cookie(&res).unwrap().contains("Secure"));
}

#[sqlx::test(migrations = "../migrations")]
async fn sessions_survive_a_new_server_over_the_same_database(pool: PgPool) {
    // Two app instances over one database stand for a restart or a second replica.
    let one = TestApp::spawn(pool.clone()).await;
    let c = one.signed_in("dave", Role::Viewer).await;
    let res = c.get(one.url("/api/v1/whoami")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie: String = sqlx::query_scalar("SELECT id FROM sessions LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let two = TestApp::spawn(pool).await;
    let res = two
        .plain()
        .get(two.url("/api/v1/whoami"))
        .header("cookie", format!("lookout_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["name"], "dave");
}

#[sqlx::test(migrations = "../migrations")]
async fn logout_ends_the_session(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.signed_in("erin", Role::Viewer).await;
    let id: String = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = c.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?signed_out=1");
    assert_eq!(
        app.count("sessions").await,
        0,
        "the session is deleted from the store"
    );
    let res = c.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let res = app
        .plain()
        .get(app.url("/api/v1/whoami"))
        .header("cookie", format!("lookout_session={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a replayed cookie is worthless");
    assert!(
        app.audit_actions()
            .await
            .contains(&"auth.logout".to_string())
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn tampered_and_expired_cookies_are_signed_out_not_errors(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.signed_in("frank", Role::Viewer).await;
    let id: String = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for bad in [
        "garbage",
        "%%%",
        "AAAAAAAAAAAAAAAAAAAAAA",
        &format!("{id}x"),
        "",
    ] {
        let res = app
            .plain()
            .get(app.url("/settings"))
            .header("cookie", format!("lookout_session={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "cookie {bad:?}");
    }
    sqlx::query("UPDATE sessions SET expiry_date = now() - interval '1 minute'")
        .execute(&app.pool)
        .await
        .unwrap();
    let res = c.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(res.status(), 303, "an expired session is no session");
    drop(c);
}

#[sqlx::test(migrations = "../migrations")]
async fn disabling_a_user_ends_their_sessions(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in("admin1", Role::Admin).await;
    let victim = app.signed_in("gina", Role::Responder).await;
    assert_eq!(
        victim
            .get(app.url("/api/v1/whoami"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let gina: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'gina'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = admin
        .patch(app.url(&format!("/api/v1/users/{gina}")))
        .json(&serde_json::json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        victim
            .get(app.url("/api/v1/whoami"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // And a disabled user cannot sign in.
    let res = app
        .browser()
        .post(app.url("/auth/login"))
        .form(&[("username", "gina"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/login?error=invalid&next=%2F");
}

#[sqlx::test(migrations = "../migrations")]
async fn failed_logins_are_throttled_per_account(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.create_user("henry", Role::Viewer).await;
    let c = app.browser();
    for _ in 0..5 {
        let res = c
            .post(app.url("/auth/login"))
            .form(&[("username", "henry"), ("password", "not-the-password")])
            .send()
            .await
            .unwrap();
        assert!(
            res.headers()["location"]
                .to_str()
                .unwrap()
                .contains("error=invalid")
        );
    }
    // Now even the right password is refused, with a clear message.
    let res = c
        .post(app.url("/auth/login"))
        .form(&[("username", "henry"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let loc = res.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/login?error=throttled&retry="), "{loc}");
    assert!(session_cookie(&res).is_none());
    let page = c
        .get(app.url(&loc))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Too many failed sign-in attempts. Try again in 15 minutes."),
        "{page}"
    );
    assert!(
        app.audit_actions()
            .await
            .contains(&"auth.login_throttled".to_string())
    );
    // Another account from the same address is not locked by henry's failures.
    app.create_user("iris", Role::Viewer).await;
    assert_eq!(
        app.login(&app.browser(), "iris", PASSWORD).await,
        "/settings"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn failed_logins_are_throttled_per_address(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| c.login_max_failures_per_ip = 3).await;
    app.create_user("jack", Role::Viewer).await;
    let c = app.browser();
    for name in ["u1", "u2", "u3"] {
        c.post(app.url("/auth/login"))
            .form(&[("username", name), ("password", "whatever-password")])
            .send()
            .await
            .unwrap();
    }
    let res = c
        .post(app.url("/auth/login"))
        .form(&[("username", "jack"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=throttled")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn anonymous_requests_are_redirected_or_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.plain();
    let res = c
        .get(app.url("/settings/users?sort=role"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Fsettings%2Fusers%3Fsort%3Drole"
    );
    let res = c.get(app.url("/api/v1/whoami")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    // Public routes.
    assert_eq!(
        c.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let res = c.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("action=\"/auth/login\""));
}

#[sqlx::test(migrations = "../migrations")]
async fn changing_ones_password_ends_the_other_sessions_and_is_throttled(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let here = app.signed_in("mallory", Role::Responder).await;
    let elsewhere = app.browser();
    assert_eq!(
        app.login(&elsewhere, "mallory", PASSWORD).await,
        "/settings"
    );
    let whoami = |c: &reqwest::Client| {
        let url = app.url("/api/v1/whoami");
        let c = c.clone();
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(whoami(&elsewhere).await, 200);

    let new_pw = "a-brand-new-password";
    let res = call_fn(
        &here,
        &app,
        "account/password",
        &[
            ("current", PASSWORD),
            ("new_password", new_pw),
            ("confirm", new_pw),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        whoami(&here).await,
        200,
        "the session that changed it stays"
    );
    assert_eq!(whoami(&elsewhere).await, 401, "every other session ended");
    let ended: serde_json::Value =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'user.password_change'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(ended["other_sessions_ended"], 1);

    // Guessing the current password from a stolen session is throttled.
    let mut statuses = vec![];
    for i in 0..7 {
        let guess = format!("guess-number-{i}");
        let res = call_fn(
            &here,
            &app,
            "account/password",
            &[
                ("current", guess.as_str()),
                ("new_password", "another-new-password"),
                ("confirm", "another-new-password"),
            ],
        )
        .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(
        statuses,
        vec![422, 422, 422, 422, 422, 429, 429],
        "{statuses:?}"
    );
    // The right password is refused too while throttled; the sign-in throttle is separate.
    let res = call_fn(
        &here,
        &app,
        "account/password",
        &[
            ("current", new_pw),
            ("new_password", "another-new-password"),
            ("confirm", "another-new-password"),
        ],
    )
    .await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        app.login(&app.browser(), "mallory", new_pw).await,
        "/settings"
    );
}

/// Puts a session `ago_mins` minutes into its life: its last refresh that long ago and its
/// expiry one TTL (1 h) after that.
async fn age_session(app: &TestApp, user: &str, ago_mins: i64) {
    sqlx::query(
        "UPDATE sessions SET
           data = jsonb_set(data, '{refreshed_at}', to_jsonb(extract(epoch FROM now())::bigint - $2 * 60)),
           expiry_date = now() + make_interval(mins => 60 - $2::int)
         WHERE user_id = (SELECT id FROM users WHERE username = $1)",
    )
    .bind(user)
    .bind(ago_mins)
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn minutes_left(app: &TestApp, user: &str) -> f64 {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM expiry_date - now())::float8 / 60 FROM sessions
         WHERE user_id = (SELECT id FROM users WHERE username = $1)",
    )
    .bind(user)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn sessions_slide_with_activity_and_end_without_it(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| c.session_ttl_hours = 1).await;
    let c = app.signed_in("nina", Role::Viewer).await;
    let whoami = || c.get(app.url("/api/v1/whoami")).send();
    assert!((minutes_left(&app, "nina").await - 60.0).abs() < 1.0);

    // 10 minutes in: more than half the lifetime left, so a request writes nothing.
    age_session(&app, "nina", 10).await;
    assert_eq!(whoami().await.unwrap().status(), 200);
    let left = minutes_left(&app, "nina").await;
    assert!(
        (left - 50.0).abs() < 1.0,
        "no write before half-life: {left} min left"
    );

    // 40 minutes in: less than half left, so activity pushes the expiry a full TTL out.
    age_session(&app, "nina", 40).await;
    assert_eq!(whoami().await.unwrap().status(), 200);
    let left = minutes_left(&app, "nina").await;
    assert!(left > 59.0, "the session slid: {left} min left");

    // An hour without activity: the session is over.
    sqlx::query("UPDATE sessions SET expiry_date = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(whoami().await.unwrap().status(), 401);
}
