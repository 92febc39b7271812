//! Faults (issue 17, point 3; docs/testing.md): Lookout's own PostgreSQL restarted under
//! load, paused with SIGSTOP, and out of disk space. Each test runs its own PostgreSQL
//! cluster (Debian's, `LOOKOUT_PG_BIN`) on a fixed loopback port, so it can be stopped,
//! paused and started again under a Lookout that keeps running, and checks what a client
//! sees (a fast 503 with `Retry-After`, never a 500 or a hang), that Lookout recovers
//! without a restart, and that nothing is half-written or acknowledged and lost.

mod common;

use common::TestApp;
use common::own_pg::{OwnPg, is_root};
use domain::Role;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// One test at a time: each loads both cores, and their timing assertions should not
/// measure each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The pool's acquire timeout in these tests (production: 10 s).
const ACQUIRE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Outcome {
    status: u16,
    took: Duration,
    retry_after: bool,
    code: String,
}

async fn send(req: reqwest::RequestBuilder) -> (Outcome, serde_json::Value) {
    let t = Instant::now();
    let res = req
        .send()
        .await
        .expect("Lookout answers (it does not hang or drop the connection)");
    let status = res.status().as_u16();
    let retry_after = res.headers().contains_key("retry-after");
    let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (
        Outcome {
            status,
            took: t.elapsed(),
            retry_after,
            code,
        },
        body,
    )
}

fn new_incident(title: &str) -> serde_json::Value {
    json!({ "title": title, "severity": "SEV3", "services": ["checkout"], "environment": "production" })
}

/// Incidents without their `created` timeline event, or with a title no acknowledged request
/// carried: a half-written or phantom write.
async fn half_written(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM incidents i
          WHERE NOT EXISTS (SELECT 1 FROM timeline_events e WHERE e.incident_id = i.id AND e.kind = 'created')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_restarted_under_load_fails_fast_and_recovers() {
    let _serial = SERIAL.lock().await;
    let pg = OwnPg::start("restart", None);
    let pool = pg.lookout_pool(ACQUIRE).await;
    let app = TestApp::spawn_with(pool.clone(), |c| c.request_timeout_secs = 5).await;
    let token = app.create_token("load", Role::Responder).await;
    // A real Redis probe run that finishes while the database is down: its result must be
    // saved once the database is back, not lost with the run left "running".
    let admin = app.create_token("admin", Role::Admin).await;
    let (s, target) = app
        .post(
            &admin,
            "/api/v1/targets",
            json!({ "name": "cache", "kind": "redis", "connection": common::env("REDIS_URL"), "environment": "test" }),
        )
        .await;
    assert_eq!(s, 201, "{target}");
    let target_id = target["id"].as_i64().unwrap();

    // Eight clients open incidents and add a note to each, without pause, while the
    // database is stopped (fast shutdown: open sessions are cut) and started again.
    let acked_incidents = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_notes = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let stop_at = Instant::now() + Duration::from_secs(20);
    let mut clients = vec![];
    for c in 0..8 {
        let (app_base, token) = (app.base.clone(), token.clone());
        let (inc, notes, outs) = (
            acked_incidents.clone(),
            acked_notes.clone(),
            outcomes.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut i = 0;
            while Instant::now() < stop_at {
                i += 1;
                let title = format!("load {c}-{i}");
                let (o, body) = send(
                    http.post(format!("{app_base}/api/v1/incidents"))
                        .bearer_auth(&token)
                        .json(&new_incident(&title)),
                )
                .await;
                outs.lock().await.push(o.clone());
                if o.status != 201 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let key = body["key"].as_str().unwrap().to_string();
                inc.lock().await.push(title.clone());
                let note = format!("note {c}-{i}");
                let (o, _) = send(
                    http.post(format!("{app_base}/api/v1/incidents/{key}/notes"))
                        .bearer_auth(&token)
                        .json(&json!({ "body": note })),
                )
                .await;
                outs.lock().await.push(o.clone());
                if o.status == 201 {
                    notes.lock().await.push((key, note));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Its rate window keeps it busy for 4 s: it ends during the outage.
    let (s, run) = app
        .post(
            &admin,
            &format!("/api/v1/targets/{target_id}/probe-runs"),
            json!({ "probe": "redis", "params": { "rate_interval_s": 4 } }),
        )
        .await;
    assert_eq!(s, 202, "{run}");
    let run_id = run["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_stop = outcomes.lock().await.len();
    pg.pg_ctl_stop("fast");
    let stopped = Instant::now();
    // Down long enough that the probe run's first attempt to save its result fails: the
    // run waits for its progress writer's last write, then for a connection, each up to
    // the pool's acquire timeout (3 s), and a shorter outage hides inside those waits.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = outcomes.lock().await.len();
    pg.pg_ctl_start();
    let restarted = stopped.elapsed();
    for c in clients {
        c.await.unwrap();
    }
    let outs = outcomes.lock().await.clone();

    // Before the stop everything succeeded.
    assert!(before_stop > 10, "{before_stop} requests before the stop");
    assert!(
        outs[..before_stop].iter().all(|o| o.status == 201),
        "{:?}",
        &outs[..before_stop]
    );
    // While the database was down: 503 with Retry-After and a clear code, fast — never a 500.
    let refused: Vec<&Outcome> = outs.iter().filter(|o| o.status != 201).collect();
    assert!(
        !refused.is_empty(),
        "some requests met the stopped database"
    );
    for o in &refused {
        assert_eq!(o.status, 503, "{o:?}");
        assert!(o.retry_after, "{o:?}");
        assert!(o.code == "unavailable" || o.code == "timeout", "{o:?}");
        assert!(
            o.took < ACQUIRE + Duration::from_secs(3),
            "answered in {:?}: {o:?}",
            o.took
        );
    }
    assert!(
        during > before_stop + 8,
        "requests kept being answered while it was down: {}",
        during - before_stop
    );
    // After the restart Lookout recovered by itself: the last requests all succeeded.
    let tail: Vec<&Outcome> = outs.iter().rev().take(16).collect();
    assert!(
        tail.iter().all(|o| o.status == 201),
        "after the restart ({restarted:?}): {tail:?}"
    );

    // The probe run's result, computed while the database was down, was saved after.
    let t = Instant::now();
    let (status, findings, stored): (String, i32, i64) = loop {
        let row: (String, i32, i64) = sqlx::query_as(
            "SELECT status::text, finding_count, (SELECT count(*) FROM findings WHERE probe_run_id = $1)
               FROM probe_runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        if row.0 != "running" || t.elapsed() > Duration::from_secs(40) {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        status, "ok",
        "the run's own result, not an orphan's failure"
    );
    assert_eq!(
        i64::from(findings),
        stored,
        "its findings are stored with it"
    );

    // Nothing half-written, nothing acknowledged and lost.
    assert_eq!(half_written(&pool).await, 0);
    let stored: Vec<String> = sqlx::query_scalar("SELECT title FROM incidents")
        .fetch_all(&pool)
        .await
        .unwrap();
    for t in acked_incidents.lock().await.iter() {
        assert!(stored.contains(t), "acknowledged incident {t:?} is stored");
    }
    let stored_notes: Vec<String> =
        sqlx::query_scalar("SELECT body FROM timeline_events WHERE kind = 'note'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (_, n) in acked_notes.lock().await.iter() {
        assert!(
            stored_notes.contains(n),
            "acknowledged note {n:?} is stored"
        );
    }
    eprintln!(
        "restart under load: {} requests, {} refused with 503 (slowest {:?}), {} incidents and {} notes acknowledged and stored",
        outs.len(),
        refused.len(),
        refused.iter().map(|o| o.took).max().unwrap_or_default(),
        acked_incidents.lock().await.len(),
        acked_notes.lock().await.len()
    );
}

#[tokio::test]
async fn a_paused_postgres_times_out_with_a_clear_error_and_writes_nothing() {
    let _serial = SERIAL.lock().await;
    let pg = OwnPg::start("paused", None);
    let pool = pg.lookout_pool(ACQUIRE).await;
    let app = TestApp::spawn_with(pool.clone(), |c| c.request_timeout_secs = 3).await;
    let token = app.create_token("pause", Role::Responder).await;
    let (_, first) = app
        .post(
            &token,
            "/api/v1/incidents",
            new_incident("before the pause"),
        )
        .await;
    let key = first["key"].as_str().unwrap().to_string();

    pg.signal_all("STOP");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut jobs = vec![];
    for i in 0..6 {
        let req = match i % 3 {
            0 => http.get(app.url("/api/v1/incidents")),
            1 => http
                .post(app.url("/api/v1/incidents"))
                .json(&new_incident(&format!("during the pause {i}"))),
            _ => http
                .post(app.url(&format!("/api/v1/incidents/{key}/notes")))
                .json(&json!({ "body": format!("paused note {i}") })),
        };
        jobs.push(tokio::spawn(send(req.bearer_auth(token.clone()))));
    }
    for j in jobs {
        let (o, body) = j.await.unwrap();
        assert_eq!(o.status, 503, "{o:?} {body}");
        assert!(o.retry_after, "{o:?}");
        assert!(o.code == "timeout" || o.code == "unavailable", "{o:?}");
        // Within the request deadline (3 s) or the pool's acquire timeout (3 s), not later.
        assert!(o.took < Duration::from_secs(6), "{o:?}");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        let m = msg.to_lowercase();
        assert!(m.contains("retry") || m.contains("try again"), "{msg}");
    }

    pg.signal_all("CONT");
    // Recovers without a restart of Lookout.
    let t = Instant::now();
    loop {
        let (s, _) = app.get(&token, "/api/v1/incidents").await;
        if s == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "still {s} after resuming"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The abandoned writes were rolled back: only the first incident, no paused note.
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM incidents")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(titles, vec!["before the pause".to_string()]);
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM timeline_events WHERE kind = 'note'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(notes, 0);
    let (s, _) = app
        .post(&token, "/api/v1/incidents", new_incident("after the pause"))
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn a_full_database_disk_is_a_clear_error_and_nothing_is_acknowledged() {
    let _serial = SERIAL.lock().await;
    if !is_root() {
        // A small disk needs a tmpfs mount; CI runs the TEST command as root.
        eprintln!("SKIPPED: mounting a small tmpfs for the data directory needs root");
        return;
    }
    let disk = std::env::temp_dir().join(format!("lookout-faults-disk-{}", std::process::id()));
    std::fs::create_dir_all(&disk).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(ok.success(), "mount a 96 MB tmpfs on {}", disk.display());
    let pg = OwnPg::start("disk", Some(&disk));
    let pool = pg.lookout_pool(ACQUIRE).await;
    let app = TestApp::spawn_with(pool.clone(), |c| c.request_timeout_secs = 10).await;
    let token = app.create_token("disk", Role::Responder).await;
    let (s, _) = app
        .post(
            &token,
            "/api/v1/incidents",
            new_incident("before the disk filled"),
        )
        .await;
    assert_eq!(s, 201);
    // Fill the data disk (an unlogged table: no WAL, only data files).
    let filler = PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url("postgres"))
        .await
        .unwrap();
    sqlx::query("CREATE UNLOGGED TABLE filler (b text)")
        .execute(&filler)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE filler ALTER COLUMN b SET STORAGE PLAIN")
        .execute(&filler)
        .await
        .unwrap();
    let full =
        sqlx::query("INSERT INTO filler SELECT repeat('x', 2000) FROM generate_series(1, 100000)")
            .execute(&filler)
            .await
            .unwrap_err();
    assert!(
        full.to_string().contains("No space left on device"),
        "{full}"
    );

    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Incidents with a 19 KB summary that does not compress (each needs new pages). Pages
    // with room left may take the first few; every one acknowledged must be stored.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let summary: String = (0..19_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let (mut refused, mut acked) = (0, 0);
    for i in 0..300 {
        let mut body = new_incident(&format!("on a full disk {i}"));
        body["summary"] = json!(summary);
        let (s, body) = app.post(&token, "/api/v1/incidents", body).await;
        if s == 201 {
            let key = body["key"].as_str().unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents WHERE number = $1")
                .bind(key.trim_start_matches("INC-").parse::<i64>().unwrap())
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(n, 1, "{key} acknowledged and stored");
            acked += 1;
            continue;
        }
        assert_eq!(s, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("out of disk space"),
            "{body}"
        );
        refused += 1;
        if refused == 10 {
            break;
        }
    }
    assert_eq!(
        refused, 10,
        "{acked} acknowledged before the disk refused writes"
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        after - before,
        acked,
        "only the acknowledged incidents were written"
    );
    assert_eq!(half_written(&pool).await, 0);

    // Space freed: Lookout works again, without a restart.
    sqlx::query("DROP TABLE filler")
        .execute(&filler)
        .await
        .unwrap();
    let t = Instant::now();
    loop {
        let (s, _) = app
            .post(
                &token,
                "/api/v1/incidents",
                new_incident("after freeing space"),
            )
            .await;
        if s == 201 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "still {s} after freeing space"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(filler);
    drop(pool);
    drop(pg);
}

/// Under concurrent load, pages whose title follows the route's parameters answered 500 now
/// and then: the server read the title after the route's reactive owner was disposed, and
/// the disposed parameters panicked (found by the load bench, `bench_load`; 61 of 12,081
/// requests). Many concurrent renders of those pages must all succeed.
#[sqlx::test(migrations = "../migrations")]
async fn pages_titled_from_their_parameters_never_fail_under_concurrency(pool: PgPool) {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn(pool).await;
    let token = app.create_token("titles", Role::Responder).await;
    let (s, _) = app
        .post(&token, "/api/v1/incidents", new_incident("titled"))
        .await;
    assert_eq!(s, 201);
    let browser = app.signed_in("titles", Role::Viewer).await;
    let paths = [
        "/incidents/INC-1",
        "/incidents/INC-1/findings/1",
        "/probe-runs/1",
        "/kafka/1/groups/orders",
        "/kafka/1/topics/orders",
        "/deployments/DEP-1",
        "/deployments/templates/1",
    ];
    let mut failures = vec![];
    for round in 0..8 {
        let mut jobs = vec![];
        for i in 0..96 {
            let (c, url) = (browser.clone(), app.url(paths[(round + i) % paths.len()]));
            jobs.push(tokio::spawn(async move {
                let res = c.get(&url).send().await.expect("an answer");
                let status = res.status().as_u16();
                let _ = res.bytes().await;
                (status, url)
            }));
        }
        for j in jobs {
            let (status, url) = j.await.unwrap();
            // 503 is back-pressure (the pool's acquire timeout on a loaded machine), a
            // documented answer; a 500 is the bug.
            if status >= 500 && status != 503 {
                failures.push(format!("{status} {url}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 768 failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
