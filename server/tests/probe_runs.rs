//! Probe runs through the API against the real Redis and PostgreSQL of the TEST command:
//! start (202 at once), progress, findings stored with their source, incident events,
//! attach, cancel, the per-target limit, bad input that writes nothing, failed targets
//! that become findings (never a 500), secrets that never come back, orphaned runs.

mod common;

use common::{TestApp, env};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant};

async fn target(
    app: &TestApp,
    admin: &str,
    name: &str,
    kind: &str,
    connection: &str,
    secret: Option<&str>,
) -> i64 {
    let mut body =
        json!({"name": name, "kind": kind, "connection": connection, "environment": "test"});
    if let Some(s) = secret {
        body["secret"] = json!(s);
    }
    let (s, t) = app.post(admin, "/api/v1/targets", body).await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_i64().unwrap()
}

/// Polls a run until it ends.
async fn wait(app: &TestApp, token: &str, id: i64, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (s, d) = app.get(token, &format!("/api/v1/probe-runs/{id}")).await;
        assert_eq!(s, 200, "{d}");
        if d["run"]["status"] != "running" {
            return d;
        }
        assert!(Instant::now() < deadline, "run {id} still running: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn codes(d: &Value) -> Vec<String> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn the_catalogue_lists_probes_params_and_codes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let viewer = app.create_token("v", Role::Viewer).await;
    let (s, c) = app.get(&viewer, "/api/v1/probes").await;
    assert_eq!(s, 200);
    let redis = c
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "redis")
        .unwrap();
    assert_eq!(redis["kind"], "redis");
    let sample = redis["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sample_keys")
        .unwrap();
    assert_eq!(sample["default"], "10000");
    assert_eq!(sample["kind"], "int");
    assert!(
        redis["params"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "step_timeout_s")
    );
    assert!(
        redis["codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "REDIS_NOEVICTION_NEAR_LIMIT")
    );
    assert!(
        redis["codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "TARGET_UNREACHABLE")
    );
    assert_eq!(redis["steps"][0], "Connect");
    assert!(
        c.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "postgres")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_from_an_incident_lands_on_its_timeline(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "cache", "redis", &env("REDIS_URL"), None).await;
    let (s, inc) = app.post(&responder, "/api/v1/incidents", json!({"title": "cache slow", "severity": "SEV2", "services": ["api"], "environment": "test"})).await;
    assert_eq!(s, 201, "{inc}");
    let key = inc["key"].as_str().unwrap().to_string();

    let started = Instant::now();
    let res = app.plain().post(app.url(&format!("/api/v1/targets/{t}/probe-runs")))
        .bearer_auth(&responder)
        .json(&json!({"probe": "redis", "params": {"rate_interval_s": 1, "sample_keys": "500"}, "incident_key": key}))
        .send().await.unwrap();
    assert_eq!(res.status().as_u16(), 202);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start returns at once"
    );
    let loc = res.headers()["location"].to_str().unwrap().to_string();
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "running");
    assert_eq!(run["incident_key"], key.as_str());
    assert_eq!(run["params"]["sample_keys"], "500");
    assert_eq!(
        run["params"]["step_timeout_s"], "10",
        "defaults are filled in and recorded"
    );
    let id = run["id"].as_i64().unwrap();
    assert_eq!(loc, format!("/api/v1/probe-runs/{id}"));

    let d = wait(&app, &responder, id, Duration::from_secs(30)).await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    assert!(d["run"]["elapsed_ms"].as_i64().unwrap() >= 1000);
    assert!(d["run"]["commands"].as_i64().unwrap() > 5);
    assert!(
        d["run"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "done"),
        "{d}"
    );
    assert!(codes(&d).contains(&"REDIS_SUMMARY".to_string()));
    let summary = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "REDIS_SUMMARY")
        .unwrap();
    assert_eq!(summary["source"]["probe"], "redis");
    assert_eq!(summary["source"]["target"], "cache");
    assert_eq!(summary["incident_key"], key.as_str());
    assert!(
        d["evidence"]["INFO"]
            .as_str()
            .unwrap()
            .contains("redis_version")
    );
    assert_eq!(
        d["run"]["finding_count"].as_i64().unwrap() as usize,
        codes(&d).len()
    );

    // The incident shows the run's start and end and the findings.
    let (_, detail) = app
        .get(&responder, &format!("/api/v1/incidents/{key}"))
        .await;
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"probe_run_started") && kinds.contains(&"probe_run_finished"),
        "{kinds:?}"
    );
    let finished = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "probe_run_finished")
        .unwrap();
    assert!(
        finished["body"]
            .as_str()
            .unwrap()
            .starts_with("redis probe on cache ok in"),
        "{finished}"
    );
    assert!(
        detail["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "REDIS_SUMMARY")
    );
    let (_, runs) = app
        .get(&responder, &format!("/api/v1/incidents/{key}/probe-runs"))
        .await;
    assert_eq!(runs[0]["id"], id);
    let (_, hist) = app
        .get(&responder, &format!("/api/v1/targets/{t}/probe-runs"))
        .await;
    assert_eq!(hist[0]["id"], id);
    // The targets list shows the last run.
    let (_, list) = app.get(&responder, "/api/v1/targets").await;
    assert_eq!(list[0]["last_run"]["id"], id, "{list}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_standalone_run_is_attached_later(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "db", "postgres", &env("DATABASE_URL"), None).await;
    let (s, run) = app
        .post(
            &responder,
            &format!("/api/v1/targets/{t}/probe-runs"),
            json!({"probe": "postgres"}),
        )
        .await;
    assert_eq!(s, 202, "{run}");
    let id = run["id"].as_i64().unwrap();
    let d = wait(&app, &responder, id, Duration::from_secs(30)).await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    assert!(d["findings"][0]["incident_key"].is_null());
    let (_, inc) = app
        .post(
            &responder,
            "/api/v1/incidents",
            json!({"title": "db", "severity": "SEV3", "services": ["db"], "environment": "test"}),
        )
        .await;
    let key = inc["key"].as_str().unwrap();
    let (s, r) = app
        .post(
            &responder,
            &format!("/api/v1/probe-runs/{id}/attach"),
            json!({"incident_key": key}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["incident_key"], key);
    let (_, detail) = app
        .get(&responder, &format!("/api/v1/incidents/{key}"))
        .await;
    assert!(
        detail["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "PG_SUMMARY")
    );
    assert!(detail["timeline"].as_array().unwrap().iter().any(|e| {
        e["body"]
            .as_str()
            .unwrap()
            .starts_with(&format!("attached postgres probe run {id}"))
    }));
    let (s, _) = app
        .post(
            &responder,
            &format!("/api/v1/probe-runs/{id}/attach"),
            json!({"incident_key": key}),
        )
        .await;
    assert_eq!(s, 409, "attached once");

    // Three attaches of one run to three incidents at the same moment: one wins, and only
    // its incident gets the timeline event.
    let (s, run) = app
        .post(
            &responder,
            &format!("/api/v1/targets/{t}/probe-runs"),
            json!({"probe": "postgres"}),
        )
        .await;
    assert_eq!(s, 202, "{run}");
    let id = run["id"].as_i64().unwrap();
    wait(&app, &responder, id, Duration::from_secs(30)).await;
    let mut keys = vec![];
    for i in 0..3 {
        let (_, inc) = app.post(&responder, "/api/v1/incidents", json!({"title": format!("race {i}"), "severity": "SEV4", "services": ["db"], "environment": "test"}))
        .await;
        keys.push(inc["key"].as_str().unwrap().to_string());
    }
    // Hold the run's row so that every attach reads it unattached and then waits to update
    // it: the race, made certain.
    // (Own connections: the test pool's five are for the server.)
    use sqlx::{ConnectOptions, Connection};
    let opts = app.pool.connect_options();
    let mut watch = opts.connect().await.unwrap();
    let mut blocker_conn = opts.connect().await.unwrap();
    let mut blocker = blocker_conn.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM probe_runs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut attaches = tokio::task::JoinSet::new();
    for k in &keys {
        let req = app
            .plain()
            .post(app.url(&format!("/api/v1/probe-runs/{id}/attach")))
            .bearer_auth(&responder)
            .json(&json!({"incident_key": k}));
        attaches.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE probe_runs SET incident_id%'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} attaches waiting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocker.commit().await.unwrap();
    let mut statuses: Vec<u16> = attaches.join_all().await;
    statuses.sort();
    assert_eq!(statuses, vec![200, 409, 409]);
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timeline_events WHERE details->>'run_id' = $1 AND details->>'attached' = 'true'",
    )
    .bind(id.to_string())
    .fetch_one(&mut watch)
    .await
    .unwrap();
    assert_eq!(events, 1, "one attach, one event");
}

#[sqlx::test(migrations = "../migrations")]
async fn cancel_and_the_per_target_limit(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "cache", "redis", &env("REDIS_URL"), None).await;
    let slow = json!({"probe": "redis", "params": {"rate_interval_s": 30, "sample_keys": 0}});
    let path = format!("/api/v1/targets/{t}/probe-runs");
    let (s1, a) = app.post(&responder, &path, slow.clone()).await;
    let (s2, b) = app.post(&responder, &path, slow.clone()).await;
    assert_eq!((s1, s2), (202, 202));
    let before = app.count("probe_runs").await;
    let (s3, e) = app.post(&responder, &path, slow.clone()).await;
    assert_eq!(s3, 429, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 2"),
        "{e}"
    );
    assert_eq!(app.count("probe_runs").await, before, "nothing written");

    let viewer = app.create_token("v", Role::Viewer).await;
    let ida = a["id"].as_i64().unwrap();
    let (s, _) = app
        .api(
            &viewer,
            reqwest::Method::POST,
            &format!("/api/v1/probe-runs/{ida}/cancel"),
            None,
        )
        .await;
    assert_eq!(s, 403);
    // Let the run reach its wait between the two samples, then cancel it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let t0 = Instant::now();
    let (s, c) = app
        .api(
            &responder,
            reqwest::Method::POST,
            &format!("/api/v1/probe-runs/{ida}/cancel"),
            None,
        )
        .await;
    assert_eq!(s, 202, "{c}");
    assert_eq!(c["cancel_requested"], true);
    let d = wait(&app, &responder, ida, Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(d["run"]["status"], "cancelled");
    assert!(!codes(&d).contains(&"TARGET_TIMEOUT".to_string()));
    let (s, _) = app
        .api(
            &responder,
            reqwest::Method::POST,
            &format!("/api/v1/probe-runs/{ida}/cancel"),
            None,
        )
        .await;
    assert_eq!(s, 409, "already ended");
    // A slot is free again.
    let (s, c2) = app.post(&responder, &path, slow).await;
    assert_eq!(s, 202, "{c2}");
    for id in [b["id"].as_i64().unwrap(), c2["id"].as_i64().unwrap()] {
        app.api(
            &responder,
            reqwest::Method::POST,
            &format!("/api/v1/probe-runs/{id}/cancel"),
            None,
        )
        .await;
        wait(&app, &responder, id, Duration::from_secs(5)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_requests_write_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let viewer = app.create_token("v", Role::Viewer).await;
    let t = target(&app, &admin, "cache", "redis", &env("REDIS_URL"), None).await;
    let (_, inc) = app
        .post(
            &responder,
            "/api/v1/incidents",
            json!({"title": "x", "severity": "SEV3", "services": ["x"], "environment": "test"}),
        )
        .await;
    let key = inc["key"].as_str().unwrap().to_string();
    let path = format!("/api/v1/targets/{t}/probe-runs");
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (&viewer, json!({"probe": "redis"}), 403, ""),
        (&responder, json!({"probe": "nope"}), 422, "unknown probe"),
        (
            &responder,
            json!({"probe": "postgres"}),
            422,
            "runs against postgres targets",
        ),
        (
            &responder,
            json!({"probe": "redis", "params": {"sample_keys": -1}}),
            422,
            "between 0 and 2000000",
        ),
        (
            &responder,
            json!({"probe": "redis", "params": {"sample_keys": "lots"}}),
            422,
            "whole number",
        ),
        (
            &responder,
            json!({"probe": "redis", "params": {"bogus": 1}}),
            422,
            "unknown parameter",
        ),
        (
            &responder,
            json!({"probe": "redis", "params": {"step_timeout_s": 0}}),
            422,
            "between 1 and 60",
        ),
        (
            &responder,
            json!({"probe": "redis", "incident_key": "INC-999999"}),
            404,
            "no incident",
        ),
        (
            &responder,
            json!({"probe": "redis", "surprise": true}),
            400,
            "unknown field",
        ),
        (
            &responder,
            json!({"probe": "redis", "params": {"sample_keys": [1]}}),
            400,
            "",
        ),
    ];
    for (tok, body, want, needle) in cases {
        let (s, e) = app.post(tok, &path, body.clone()).await;
        assert_eq!(s, want, "{body} → {e}");
        assert!(e.to_string().contains(needle), "{body} → {e}");
    }
    let (s, _) = app
        .post(
            &responder,
            "/api/v1/targets/999999/probe-runs",
            json!({"probe": "redis"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .post(
            &responder,
            "/api/v1/targets/abc/probe-runs",
            json!({"probe": "redis"}),
        )
        .await;
    assert_eq!(s, 400);
    // A closed incident takes no runs.
    for status in ["mitigated", "resolved", "closed"] {
        app.patch(
            &responder,
            &format!("/api/v1/incidents/{key}"),
            json!({"status": status}),
        )
        .await;
    }
    let (s, e) = app
        .post(
            &responder,
            &path,
            json!({"probe": "redis", "incident_key": key}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(app.count("probe_runs").await, 0, "nothing written");
    let (s, _) = app.get(&responder, "/api/v1/probe-runs/999999").await;
    assert_eq!(s, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dead_target_is_a_failed_run_with_a_finding(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = target(
        &app,
        &admin,
        "gone",
        "redis",
        &format!("redis://127.0.0.1:{port}/0"),
        None,
    )
    .await;
    let (s, run) = app
        .post(
            &responder,
            &format!("/api/v1/targets/{t}/probe-runs"),
            json!({"probe": "redis"}),
        )
        .await;
    assert_eq!(s, 202);
    let d = wait(
        &app,
        &responder,
        run["id"].as_i64().unwrap(),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(d["run"]["status"], "failed");
    assert!(
        d["run"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect to redis://127.0.0.1"),
        "{d}"
    );
    assert_eq!(codes(&d), vec!["TARGET_UNREACHABLE"]);
    assert_eq!(d["run"]["steps"][0]["status"], "failed");
    assert_eq!(d["run"]["steps"][1]["status"], "skipped");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_password_is_used_but_never_shown_or_stored_in_clear(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    // The TEST command's PostgreSQL asks the role lookout_pw for its password.
    let password = "pw-Z9q-never-shown";
    sqlx::raw_sql(&format!(
        "DROP ROLE IF EXISTS lookout_pw; CREATE ROLE lookout_pw LOGIN PASSWORD '{password}'"
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    let mut u = url::Url::parse(&env("DATABASE_URL")).unwrap();
    u.set_username("lookout_pw").unwrap();
    let t = target(
        &app,
        &admin,
        "secured",
        "postgres",
        u.as_str(),
        Some(password),
    )
    .await;
    let (_, run) = app
        .post(
            &responder,
            &format!("/api/v1/targets/{t}/probe-runs"),
            json!({"probe": "postgres"}),
        )
        .await;
    let id = run["id"].as_i64().unwrap();
    let d = wait(&app, &responder, id, Duration::from_secs(30)).await;
    assert_eq!(d["run"]["status"], "ok", "the stored password works: {d}");
    assert!(!d.to_string().contains(password));
    let dump: String = sqlx::query_scalar(
        "SELECT concat((SELECT string_agg(t::text, '|') FROM targets t), (SELECT string_agg(r::text, '|') FROM probe_runs r),
                       (SELECT string_agg(f::text, '|') FROM findings f))")
        .fetch_one(&app.pool).await.unwrap();
    assert!(
        !dump.contains(password),
        "the password is in the database in clear"
    );
    for path in [
        format!("/api/v1/targets/{t}"),
        "/api/v1/targets".into(),
        format!("/api/v1/targets/{t}/probe-runs"),
        format!("/targets/{t}"),
        format!("/probe-runs/{id}"),
    ] {
        let body = app
            .plain()
            .get(app.url(&path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains(password), "{path} shows the password");
    }
    // A wrong stored password: a clear finding, and still never echoed.
    let (s, _) = app
        .patch(
            &admin,
            &format!("/api/v1/targets/{t}"),
            json!({"secret": "wrong-pw-Q1"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, run) = app
        .post(
            &responder,
            &format!("/api/v1/targets/{t}/probe-runs"),
            json!({"probe": "postgres"}),
        )
        .await;
    let d = wait(
        &app,
        &responder,
        run["id"].as_i64().unwrap(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(d["run"]["status"], "failed");
    assert_eq!(codes(&d), vec!["TARGET_AUTH_FAILED"]);
    assert!(!d.to_string().contains("wrong-pw-Q1"));
    sqlx::query("DROP ROLE IF EXISTS lookout_pw")
        .execute(&app.pool)
        .await
        .ok();
}

#[sqlx::test(migrations = "../migrations")]
async fn runs_orphaned_by_a_dead_replica_are_failed_by_housekeeping(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let t = target(&app, &admin, "cache", "redis", &env("REDIS_URL"), None).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO probe_runs (target_id, target_name, target_kind, probe, started_by, heartbeat_at)
         VALUES ($1, 'cache', 'redis', 'redis', 'someone', now() - interval '2 minutes') RETURNING id")
        .bind(t).fetch_one(&app.pool).await.unwrap();
    server::workers::housekeeping_round(&app.pool, 900)
        .await
        .unwrap();
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status::text, error FROM probe_runs WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.contains("stopped before it finished"));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_kafka_lag_probe_runs_through_the_same_api(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "events", "kafka", &env("KAFKA_BROKERS"), None).await;
    let (s, run) = app
        .post(
            &responder,
            &format!("/api/v1/targets/{t}/probe-runs"),
            json!({"probe": "kafka-lag", "params": {"sample_interval_s": 1}}),
        )
        .await;
    assert_eq!(s, 202, "{run}");
    let d = wait(
        &app,
        &responder,
        run["id"].as_i64().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");
    assert_eq!(d["run"]["steps"].as_array().unwrap().len(), 7);
    // Credentials on a Kafka target without a SASL protocol cannot be used: the target
    // itself is refused, nothing written.
    let before = app.count("targets").await;
    let (s, e) = app
        .post(
            &admin,
            "/api/v1/targets",
            json!({"name": "secured-events", "kind": "kafka", "connection": env("KAFKA_BROKERS"),
                    "environment": "test", "secret": "pw"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(
        e.to_string()
            .contains("security.protocol=SASL_PLAINTEXT or SASL_SSL"),
        "{e}"
    );
    assert_eq!(app.count("targets").await, before);
}
