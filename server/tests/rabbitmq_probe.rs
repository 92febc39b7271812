//! The RabbitMQ probe (issue 16) against a **real RabbitMQ** (Debian's `rabbitmq-server`
//! with the management plugin) put into each state by **real producers and consumers**
//! (`end2end/fixtures/rabbit.js`, amqplib): a queue nobody consumes, a backlog its consumer
//! cannot keep up with, a consumer that never acknowledges, a queue near its x-max-length,
//! dead letters piling up behind a dead-letter exchange, unroutable messages, a client that
//! connects per message, and a memory alarm raised with `rabbitmqctl`. Also: the target's
//! connection check, wrong credentials, a dead and a hanging management API.

mod common;

use common::rabbit::Rabbit;
use common::{TestApp, fact, free_port, run_findings as findings};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Fixture(Child);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture(amqp: &str) -> Fixture {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/fixtures/rabbit.js");
    let mut child = Command::new("node")
        .arg(script)
        .env("AMQP_URL", amqp)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("node {script}: {e} (npm ci in end2end/)"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the fixture did not start");
    Fixture(child)
}

async fn target(app: &TestApp, admin: &str, name: &str, url: &str, password: &str) -> i64 {
    let (s, t) = app
        .post(
            admin,
            "/api/v1/targets",
            json!({"name": name, "kind": "rabbitmq", "connection": url, "environment": "test",
                   "username": "guest", "secret": password}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_i64().unwrap()
}

fn of_queue<'a>(d: &'a Value, code: &str, queue: &str) -> &'a Value {
    findings(d, code)
        .into_iter()
        .find(|f| fact(f, "queue") == queue)
        .unwrap_or_else(|| panic!("no {code} for queue {queue}: {d}"))
}

fn num(s: &str) -> f64 {
    s.split(['/', ' '])
        .next()
        .unwrap()
        .replace(',', "")
        .trim_start_matches('+')
        .parse()
        .unwrap()
}

async fn run(app: &TestApp, token: &str, t: i64, params: Value) -> Value {
    common::probe_run(app, token, t, "rabbitmq", params, None).await
}

#[sqlx::test(migrations = "../migrations")]
async fn the_probe_names_each_queue_state_producers_and_consumers_made(pool: PgPool) {
    let rabbit = Rabbit::start().await;
    let _clients = fixture(&rabbit.amqp);
    // Rates need a few statistics rounds (collected every second here).
    tokio::time::sleep(Duration::from_secs(6)).await;

    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    let t = target(&app, &admin, "mq", &rabbit.api, "guest").await;
    let (s, check) = app
        .post(&admin, &format!("/api/v1/targets/{t}/test"), json!({}))
        .await;
    assert_eq!(s, 200, "{check}");
    assert!(check.to_string().contains("RabbitMQ 3."), "{check}");

    let d = run(
        &app,
        &responder,
        t,
        json!({"sample_s": "3", "backlog_messages": "20"}),
    )
    .await;
    assert_eq!(d["run"]["status"], "ok", "{d}");

    // Nobody consumes `orders`, and 20/s keep coming.
    let f = of_queue(&d, "RMQ_NO_CONSUMERS", "orders");
    assert_eq!(f["severity"], "critical", "{f}");
    assert!(num(&fact(f, "ready growth")) > 10.0, "{f}");
    assert!(num(&fact(f, "publish/s")) > 10.0, "{f}");
    let chart = &f["evidence"]["charts"][0];
    assert_eq!(chart["series"][0]["name"], "ready");
    assert!(
        chart["series"][0]["points"].as_array().unwrap().len() >= 2,
        "{chart}"
    );

    // `emails` gets 20/s and its one consumer acknowledges 4/s.
    let f = of_queue(&d, "RMQ_BACKLOG_GROWING", "emails");
    assert_eq!(fact(f, "consumers"), "1");
    let growth = num(&fact(f, "ready growth"));
    assert!((8.0..=22.0).contains(&growth), "growth {growth}: {f}");
    let ack = num(&fact(f, "ack/s"));
    assert!((2.0..=6.0).contains(&ack), "ack/s {ack}");

    // `stuck`: 30 delivered, none acknowledged.
    let f = of_queue(&d, "RMQ_UNACKED_STUCK", "stuck");
    assert_eq!(fact(f, "unacknowledged"), "30");

    // `capped`: 95 of 100 with reject-publish.
    let f = of_queue(&d, "RMQ_NEAR_MAX_LENGTH", "capped");
    assert_eq!(f["severity"], "warning");
    assert_eq!(fact(f, "overflow"), "reject-publish");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("publishes are refused")
    );

    // `work` rejects everything into `work.dlx` → `work.failed` (found through the binding,
    // not the name).
    let f = of_queue(&d, "RMQ_DEAD_LETTERS", "work.failed");
    assert_eq!(f["severity"], "critical", "{f}");
    assert_eq!(fact(f, "dead letters from"), "work");
    assert!(
        findings(&d, "RMQ_NO_CONSUMERS")
            .iter()
            .all(|f| fact(f, "queue") != "work.failed")
    );

    // Unroutable: dropped and returned.
    let f = findings(&d, "RMQ_UNROUTABLE");
    assert_eq!(f.len(), 1, "{d}");
    assert!(num(&fact(f[0], "dropped/s")) > 2.0, "{}", f[0]);
    assert!(num(&fact(f[0], "returned/s")) > 0.5, "{}", f[0]);

    // A connection per message, 10/s.
    let f = findings(&d, "RMQ_CONNECTION_CHURN");
    assert_eq!(f.len(), 1, "{d}");
    assert!(num(&fact(f[0], "opened/s")) >= 5.0, "{}", f[0]);

    let s = findings(&d, "RMQ_SUMMARY");
    assert_eq!(s.len(), 1);
    assert!(findings(&d, "RMQ_ALARM").is_empty());
    let requests: u64 = fact(s[0], "requests").parse().unwrap();
    assert!(requests <= 20, "{requests} requests");

    // A memory alarm, raised for real: publishers are blocked.
    rabbit.ctl(&["set_vm_memory_high_watermark", "absolute", "1MB"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = run(&app, &responder, t, json!({"sample_s": "1"})).await;
    rabbit.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    let f = findings(&d, "RMQ_ALARM");
    assert_eq!(f.len(), 1, "{d}");
    assert_eq!(fact(f[0], "alarm"), "memory");
    assert_eq!(f[0]["severity"], "critical");

    // One vhost only: a vhost with no queue has nothing to say about queues.
    let d = run(
        &app,
        &responder,
        t,
        json!({"sample_s": "1", "vhost": "nope"}),
    )
    .await;
    assert_eq!(d["run"]["status"], "failed", "{d}");
    assert_eq!(
        findings(&d, "TARGET_ERROR").len(),
        1,
        "an unknown vhost is named: {d}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn wrong_credentials_dead_and_hanging_apis_are_findings(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let responder = app.create_token("r", Role::Responder).await;
    // A RabbitMQ target needs a user and its password: refused, nothing written.
    let before = app.count("targets").await;
    let (s, e) = app
        .post(
            &admin,
            "/api/v1/targets",
            json!({"name": "mq-x", "kind": "rabbitmq", "connection": "http://127.0.0.1:1", "environment": "test"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("monitoring tag"), "{e}");
    assert_eq!(app.count("targets").await, before);

    let rabbit = Rabbit::start().await;
    let t = target(&app, &admin, "mq-wrong", &rabbit.api, "not-the-password").await;
    let d = run(&app, &responder, t, json!({"sample_s": "1"})).await;
    assert_eq!(d["run"]["status"], "failed", "{d}");
    assert_eq!(findings(&d, "TARGET_AUTH_FAILED").len(), 1, "{d}");
    assert!(!d.to_string().contains("not-the-password"));
    drop(rabbit);

    let dead = format!("http://127.0.0.1:{}", free_port());
    let t = target(&app, &admin, "mq-dead", &dead, "guest").await;
    let d = run(&app, &responder, t, json!({"sample_s": "1"})).await;
    assert_eq!(findings(&d, "TARGET_UNREACHABLE").len(), 1, "{d}");

    let addr = common::hanging_listener().await;
    let t = target(&app, &admin, "mq-hang", &format!("http://{addr}"), "guest").await;
    let started = Instant::now();
    let d = run(
        &app,
        &responder,
        t,
        json!({"sample_s": "1", "step_timeout_s": "2"}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(d["run"]["status"], "timed_out", "{d}");
    assert_eq!(findings(&d, "TARGET_TIMEOUT").len(), 1, "{d}");
}
