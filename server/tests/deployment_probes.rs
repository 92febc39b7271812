//! Probe items of deployment checklists (issue 12) against the real PostgreSQL and Redis of
//! the TEST setup: a seeded bad state (an invalid index left by a failed CREATE
//! UNIQUE INDEX CONCURRENTLY over duplicate keys; a 64 KB value in the cache) fails the item
//! with the finding as evidence and the probe run linked; the fix and a re-run pass it; a
//! target that cannot be examined is inconclusive, never a pass.

mod common;

use common::{TestApp, dep_item as item, env, settled};
use domain::Role;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

const TEMPLATE: &str = "id: db-release
name: DB release
sections:
  pre:
    - id: indexes-valid
      kind: probe
      text: Indexes built CONCURRENTLY are valid
      target: db
      probe: postgres
      codes: [PG_INVALID_INDEX, PG_INDEX_BUILD_IN_PROGRESS]
      max_severity: warning
  post:
    - {id: smoke, kind: manual, text: Smoke test}
";

#[sqlx::test(migrations = "../migrations")]
async fn probe_items_fail_on_a_seeded_bad_state_and_pass_after_the_fix(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let _checks = common::spawn_checks(pool.clone(), Duration::from_secs(10));
    let admin = app.create_token("admin", Role::Admin).await;
    let approver = app.create_token("tpl", Role::Approver).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(TEMPLATE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    // The bad state, in this test's own database: duplicate keys broke a unique index build.
    sqlx::query("CREATE TABLE orders_dup (k int)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO orders_dup VALUES (1), (1), (2)")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        sqlx::query("CREATE UNIQUE INDEX CONCURRENTLY orders_dup_k ON orders_dup (k)")
            .execute(&pool)
            .await
            .is_err()
    );
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&env("DATABASE_URL")).unwrap();
    url.set_path(&format!("/{db}"));
    let (s, t) = app
        .post(&admin, "/api/v1/targets", json!({"name": "orders-db", "kind": "postgres", "connection": url.as_str(), "environment": "staging", "labels": {"service": "orders"}}))
        .await;
    assert_eq!(s, 201, "{t}");
    // A binding of the wrong kind is refused before anything is written.
    let (s, _) = app
        .post(&admin, "/api/v1/targets", json!({"name": "prom", "kind": "prometheus", "connection": "http://127.0.0.1:9", "environment": "staging"}))
        .await;
    assert_eq!(s, 201);
    let (s, e) = app
        .post(&admin, "/api/v1/deployments", json!({"service": "orders", "environment": "staging", "version": "5", "template": "db-release", "targets": {"db": "prom"}}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no postgres target is named \"prom\""),
        "{e}"
    );

    let (s, d) = app
        .post(&admin, "/api/v1/deployments", json!({"service": "orders", "environment": "staging", "version": "5", "template": "db-release", "targets": {"db": "service=orders"}}))
        .await;
    assert_eq!(s, 201, "{d}");
    let key = d["deployment"]["key"].as_str().unwrap().to_string();
    assert_eq!(item(&d, "indexes-valid")["state"], "running");
    let d = settled(&app, &admin, &key, "indexes-valid", Duration::from_secs(60)).await;
    let it = item(&d, "indexes-valid");
    assert_eq!(it["state"], "failed", "{it:#}");
    assert!(
        it["note"]
            .as_str()
            .unwrap()
            .contains("PG_INVALID_INDEX (warning)"),
        "{it:#}"
    );
    let run = it["probe_run"].as_i64().expect("the run is linked");
    let (s, r) = app.get(&admin, &format!("/api/v1/probe-runs/{run}")).await;
    assert_eq!(s, 200);
    assert_eq!(r["run"]["started_by"], "lookout");
    assert!(
        r["findings"].to_string().contains("orders_dup_k"),
        "the run's finding names the index"
    );
    assert!(
        it["measurements"][0]["values"]
            .to_string()
            .contains("PG_INVALID_INDEX"),
        "{it:#}"
    );
    assert!(
        d["blocking"]
            .to_string()
            .contains("indexes-valid is failed")
    );
    // Its page links the run.
    let viewer = app.signed_in("vera", Role::Viewer).await;
    let html = common::page(&viewer, &app, &format!("/deployments/{key}"))
        .await
        .1;
    assert!(
        html.contains(&format!("href=\"/probe-runs/{run}\"")),
        "the evidence is one click away"
    );

    // The fix the finding names (duplicates first, then the rebuild), and a re-run: passed.
    sqlx::query(
        "DELETE FROM orders_dup WHERE ctid NOT IN (SELECT min(ctid) FROM orders_dup GROUP BY k)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DROP INDEX CONCURRENTLY orders_dup_k")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE UNIQUE INDEX CONCURRENTLY orders_dup_k ON orders_dup (k)")
        .execute(&pool)
        .await
        .unwrap();
    let (s, d) = app
        .post(
            &admin,
            &format!("/api/v1/deployments/{key}/items/indexes-valid"),
            json!({"action": "rerun"}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    let d = settled(&app, &admin, &key, "indexes-valid", Duration::from_secs(60)).await;
    let it = item(&d, "indexes-valid");
    assert_eq!(it["state"], "passed", "{it:#}");
    assert_ne!(it["probe_run"].as_i64().unwrap(), run, "a new run");
    assert_eq!(it["run"], 2);

    // A target that cannot be examined is inconclusive, not passed — even though the item
    // counts only index codes.
    let (s, _) = app
        .post(&admin, "/api/v1/targets", json!({"name": "dead-db", "kind": "postgres", "connection": format!("postgres://nobody@127.0.0.1:{}/x", common::free_port()), "environment": "staging"}))
        .await;
    assert_eq!(s, 201);
    let (s, d) = app
        .post(&admin, "/api/v1/deployments", json!({"service": "orders", "environment": "staging", "version": "6", "template": "db-release", "targets": {"db": "dead-db"}}))
        .await;
    assert_eq!(s, 201, "{d}");
    let dead = d["deployment"]["key"].as_str().unwrap().to_string();
    let d = settled(
        &app,
        &admin,
        &dead,
        "indexes-valid",
        Duration::from_secs(60),
    )
    .await;
    let it = item(&d, "indexes-valid");
    assert_eq!(it["state"], "inconclusive", "{it:#}");
    assert!(
        it["note"].as_str().unwrap().contains("ended failed"),
        "{it:#}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_redis_probe_item_fails_on_a_big_key_and_passes_once_it_is_gone(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let _checks = common::spawn_checks(pool.clone(), Duration::from_secs(10));
    let admin = app.create_token("admin", Role::Admin).await;
    let approver = app.create_token("tpl", Role::Approver).await;
    let yaml = "id: cache-release
name: Cache release
sections:
  pre:
    - id: no-big-keys
      kind: probe
      text: No big keys in the cache
      target: cache
      probe: redis
      params: {big_key_bytes: 4096, sample_keys: 1000}
      codes: [REDIS_BIG_KEYS]
";
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    // The seeded bad state, in a database of its own on the TEST Redis: a 64 KB value.
    let mut url = url::Url::parse(&env("REDIS_URL")).unwrap();
    url.set_path("/14");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .arg("-u")
            .arg(url.as_str())
            .args(args)
            .output()
            .expect("redis-cli (Debian's redis-tools, installed with redis-server)");
        assert!(out.status.success(), "{out:?}");
    };
    let key = format!("cart:blob:{}", std::process::id());
    cli(&["SET", &key, &"x".repeat(65_536)]);
    let (s, t) = app
        .post(&admin, "/api/v1/targets", json!({"name": "cart-cache", "kind": "redis", "connection": url.as_str(), "environment": "staging"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, d) = app
        .post(&admin, "/api/v1/deployments", json!({"service": "cart", "environment": "staging", "version": "3", "template": "cache-release", "targets": {"cache": "cart-cache"}}))
        .await;
    assert_eq!(s, 201, "{d}");
    let dep = d["deployment"]["key"].as_str().unwrap().to_string();
    let d = settled(&app, &admin, &dep, "no-big-keys", Duration::from_secs(60)).await;
    let it = item(&d, "no-big-keys");
    assert_eq!(it["state"], "failed", "{it:#}");
    assert!(
        it["note"]
            .as_str()
            .unwrap()
            .contains("REDIS_BIG_KEYS (warning)"),
        "{it:#}"
    );
    // The finding's remedy (UNLINK), then a re-run: passed.
    cli(&["UNLINK", &key]);
    let (s, _) = app
        .post(
            &admin,
            &format!("/api/v1/deployments/{dep}/items/no-big-keys"),
            json!({"action": "rerun"}),
        )
        .await;
    assert_eq!(s, 200);
    let d = settled(&app, &admin, &dep, "no-big-keys", Duration::from_secs(60)).await;
    assert_eq!(item(&d, "no-big-keys")["state"], "passed", "{d:#}");
}
