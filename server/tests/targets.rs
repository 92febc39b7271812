//! Targets against real PostgreSQL, Redis and Kafka: permissions, encrypted credentials
//! that never come back, connection tests that succeed or fail clearly, and bad input.

mod common;

use common::{TestApp, call_fn, env};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

#[sqlx::test(migrations = "../migrations")]
async fn admins_manage_targets_and_secrets_never_come_back(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("ta", Role::Admin).await;
    let responder = app.create_token("tr", Role::Responder).await;
    let viewer = app.create_token("tv", Role::Viewer).await;
    let secret = "s3cret-redis-password-XYZ";
    let body = json!({"name": "orders-cache", "kind": "redis", "connection": "redis://cache:6379/0",
                      "secret": secret, "environment": "production", "labels": {"team": "orders"}});
    assert_eq!(
        app.post(&responder, "/api/v1/targets", body.clone())
            .await
            .0,
        403
    );
    let (s, t) = app.post(&admin, "/api/v1/targets", body.clone()).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["secret_set"], true);
    assert!(!t.to_string().contains(secret));
    let id = t["id"].as_i64().unwrap();
    assert_eq!(
        app.post(&admin, "/api/v1/targets", body).await.0,
        409,
        "unique names"
    );

    // Encrypted at rest: neither the row nor anything else in the database holds the plaintext.
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, '|') FROM targets t")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(secret) && !dump.contains("s3cret"), "{dump}");
    let audit: String =
        sqlx::query_scalar("SELECT string_agg(details::text || target, '|') FROM audit_log")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!audit.contains(secret));
    let ct: Vec<u8> = sqlx::query_scalar("SELECT secret_ciphertext FROM targets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let key = domain::secrets::SecretBox::from_config(common::TEST_SECRET_KEY).unwrap();
    assert_eq!(key.open(&ct).unwrap(), secret, "it is the sealed secret");

    // Never in a response or a page.
    for (tok, path) in [
        (&viewer, "/api/v1/targets".to_string()),
        (&viewer, format!("/api/v1/targets/{id}")),
        (&admin, "/targets".to_string()),
    ] {
        let res = app
            .plain()
            .get(app.url(&path))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let text = res.text().await.unwrap();
        assert!(!text.contains(secret), "{path} leaks the secret");
        assert!(text.contains("orders-cache"));
    }
    let res = app
        .plain()
        .patch(app.url(&format!("/api/v1/targets/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"secret": "another-one-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct2: Vec<u8> = sqlx::query_scalar("SELECT secret_ciphertext FROM targets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(key.open(&ct2).unwrap(), "another-one-123");
    let res = app
        .plain()
        .patch(app.url(&format!("/api/v1/targets/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"clear_secret": true}))
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["secret_set"], false);
    let res = app
        .plain()
        .delete(app.url(&format!("/api/v1/targets/{id}")))
        .bearer_auth(&responder)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .plain()
        .delete(app.url(&format!("/api/v1/targets/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let actions = app.audit_actions().await;
    for a in ["target.create", "target.update", "target.delete"] {
        assert!(actions.contains(&a.to_string()), "{a}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_target_input_is_refused_and_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("tb", Role::Admin).await;
    for (body, want) in [
        (
            json!({"name": "x", "kind": "redis", "connection": "redis://:pw@cache:6379", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "Bad Name", "kind": "redis", "connection": "redis://cache", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "mysql", "connection": "mysql://db", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "kubernetes", "connection": "https://k8s:6443", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "prometheus", "connection": "http://ops:pw@prom:9090", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "prometheus", "connection": "http://prom:9090", "username": "ops", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "prometheus", "connection": "prom:9090", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "red is", "connection": "redis://cache", "environment": "prod"}),
            400,
        ),
        (
            json!({"name": "x", "kind": "kafka", "connection": "broker-without-port", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "postgres", "connection": "redis://db", "environment": "prod"}),
            422,
        ),
        (
            json!({"name": "x", "kind": "redis", "connection": "redis://cache", "environment": "prod", "extra": 1}),
            400,
        ),
        (
            json!({"name": "x", "kind": "redis", "connection": "redis://cache", "environment": "bad env!"}),
            422,
        ),
    ] {
        let (s, e) = app.post(&admin, "/api/v1/targets", body.clone()).await;
        assert_eq!(s, want, "{body}: {e}");
        // An unsupported kind is named, with what is supported.
        if body["kind"] == "mysql" {
            let m = e["error"]["message"].as_str().unwrap_or_default();
            assert!(
                m.contains("\"mysql\" is not supported") && m.contains("redis, postgres, kafka"),
                "{e}"
            );
        }
    }
    assert_eq!(app.count("targets").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn without_a_key_no_secret_can_be_stored(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| c.secret_key = None).await;
    let admin = app.create_token("tk", Role::Admin).await;
    let (s, e) = app.post(&admin, "/api/v1/targets", json!({"name": "pg", "kind": "postgres", "connection": "postgres://db/app", "secret": "pw", "environment": "prod"})).await;
    assert_eq!(s, 409);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LOOKOUT_SECRET_KEY")
    );
    let (s, _) = app.post(&admin, "/api/v1/targets", json!({"name": "pg", "kind": "postgres", "connection": "postgres://db/app", "environment": "prod"})).await;
    assert_eq!(s, 201, "a target without a secret needs no key");
}

#[sqlx::test(migrations = "../migrations")]
async fn test_connection_against_the_real_services(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("tc", Role::Admin).await;
    let responder = app.signed_in("tc-resp", Role::Responder).await;
    let viewer = app.create_token("tcv", Role::Viewer).await;
    // The test PostgreSQL trusts loopback; the stored secret is still sealed and sent.
    let pg = url::Url::parse(&env("DATABASE_URL")).unwrap();
    let pg_conn = format!(
        "postgres://{}:{}/postgres",
        pg.host_str().unwrap(),
        pg.port().unwrap()
    );
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        ("redis-ok", "redis", env("REDIS_URL"), "", true, "redis "),
        ("pg-ok", "postgres", pg_conn, "postgres", true, "postgres "),
        (
            "kafka-ok",
            "kafka",
            env("KAFKA_BROKERS"),
            "",
            true,
            "kafka answered by",
        ),
        (
            "redis-dead",
            "redis",
            format!("redis://127.0.0.1:{dead}"),
            "",
            false,
            "cannot connect to redis://127.0.0.1:",
        ),
    ];
    for (name, kind, conn, user, ok, want) in cases {
        let (s, t) = app.post(&admin, "/api/v1/targets", json!({"name": name, "kind": kind, "connection": conn, "username": user,
            "secret": if kind == "postgres" { "sealed-pg-secret" } else { "" }, "environment": "test"})).await;
        assert_eq!(s, 201, "{name}: {t}");
        let id = t["id"].as_i64().unwrap();
        let res = app
            .plain()
            .post(app.url(&format!("/api/v1/targets/{id}/test")))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "viewers do not run checks");
        // Responders test from the page's server function.
        let res = call_fn(
            &responder,
            &app,
            "targets/test",
            &[("target_id", &id.to_string())],
        )
        .await;
        assert_eq!(res.status(), 200);
        let (_, r): (i64, Value) = res.json().await.unwrap();
        assert_eq!(r["ok"], ok, "{name}: {r}");
        let summary = r["summary"].as_str().unwrap();
        assert!(summary.contains(want), "{name}: {summary}");
        assert!(!summary.contains("sealed-pg-secret"));
    }
    let res = app
        .plain()
        .post(app.url("/api/v1/targets/424242/test"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stored_secret_does_not_follow_the_target_to_another_host(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("ta", Role::Admin).await;
    let (s, t) = app.post(&admin,
        "/api/v1/targets",
        json!({"name": "orders-db", "kind": "postgres", "connection": "postgres://app@db:5432/orders",
               "secret": "orders-db-password", "environment": "production"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let path = format!("/api/v1/targets/{}", t["id"]);
    let stored = || async {
        sqlx::query_as::<_, (String, Option<Vec<u8>>)>(
            "SELECT connection, secret_ciphertext FROM targets WHERE name = 'orders-db'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let before = stored().await;
    // Another host, another port, another scheme: refused while the old secret would go along.
    for conn in [
        "postgres://app@evil.example:5432/orders",
        "postgres://app@db:6543/orders",
        "postgres://app@DB.evil.example/orders",
    ] {
        let (s, e) = app.patch(&admin, &path, json!({"connection": conn})).await;
        assert_eq!(s, 422, "{conn}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("secret again"),
            "{e}"
        );
        assert_eq!(stored().await, before, "nothing written for {conn}");
    }
    // The same host (another database, user or option) keeps the secret.
    let (s, e) = app
        .patch(
            &admin,
            &path,
            json!({"connection": "postgres://reporting@db/orders?sslmode=require"}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    // With the secret given again, or cleared, the host may change.
    let (s, e) = app
        .patch(
            &admin,
            &path,
            json!({"connection": "postgres://app@db2:5432/orders", "secret": "new-password"}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = app
        .patch(
            &admin,
            &path,
            json!({"connection": "postgres://app@db3:5432/orders", "clear_secret": true}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["secret_set"], false);
    // Credentials in the URL's query are refused like credentials in its userinfo.
    let n = app.count("targets").await;
    for conn in [
        "postgres://app@db/orders?password=hunter2",
        "postgres://app@db/orders?sslmode=require&sslpassword=hunter2",
        "redis://cache:6379/0?password=hunter2",
    ] {
        let kind = if conn.starts_with("redis") {
            "redis"
        } else {
            "postgres"
        };
        let (s, e) = app
            .post(
                &admin,
                "/api/v1/targets",
                json!({"name": "leaky", "kind": kind, "connection": conn, "environment": "t"}),
            )
            .await;
        assert_eq!(s, 422, "{conn}: {e}");
        let (s, _) = app.patch(&admin, &path, json!({"connection": conn})).await;
        assert_eq!(s, 422, "{conn}");
    }
    assert_eq!(app.count("targets").await, n);
    let dump: String = sqlx::query_scalar("SELECT string_agg(connection, '|') FROM targets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains("hunter2"));
}

#[sqlx::test(migrations = "../migrations")]
async fn targets_outside_the_allowed_networks_are_not_contacted(pool: PgPool) {
    // Only 10.0.0.0/8 may be reached; the test Redis listens on 127.0.0.1.
    let app = TestApp::spawn_with(pool, |c| {
        c.target_networks = Some(server::config::Networks(
            domain::reach::parse_networks("10.0.0.0/8").unwrap(),
        ))
    })
    .await;
    let admin = app.create_token("ta", Role::Admin).await;
    let (s, t) = app.post(&admin,
        "/api/v1/targets",
        json!({"name": "cache", "kind": "redis", "connection": env("REDIS_URL"), "environment": "t"}),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_i64().unwrap();
    let (s, r) = app
        .post(&admin, &format!("/api/v1/targets/{id}/test"), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["ok"], false);
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .contains("outside LOOKOUT_TARGET_NETWORKS"),
        "{r}"
    );
    let runs = app.count("probe_runs").await;
    let (s, r) = app
        .post(
            &admin,
            &format!("/api/v1/targets/{id}/probe-runs"),
            json!({"probe": "redis"}),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{r}"
    );
    assert_eq!(app.count("probe_runs").await, runs, "no run was started");
}
