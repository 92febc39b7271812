//! Connection checks against the real Redis, PostgreSQL and Kafka started by the TEST
//! command, and against dead targets: every failure is bounded and says why.

use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/test"))
}

/// A loopback port with nothing listening.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn redis_answers_with_its_version() {
    let r = probes::redis::check(&env("REDIS_URL"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.kind, "redis");
    assert!(
        r.server_version.chars().next().unwrap().is_ascii_digit(),
        "{r:?}"
    );
    assert!(
        r.facts.iter().any(|(k, v)| k == "role" && v == "master"),
        "{r:?}"
    );
}

#[tokio::test]
async fn redis_dead_port_and_wrong_password_fail_fast_and_clearly() {
    let start = Instant::now();
    let err = probes::redis::check(
        &format!("redis://127.0.0.1:{}", dead_port()),
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(4));
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot connect to redis://127.0.0.1:"),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");

    // The test Redis has no password; sending one is refused by AUTH.
    let url = env("REDIS_URL").replace("redis://", "redis://:wrong-password@");
    let err = probes::redis::check(&url, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("wrong-password"),
        "never echo the secret: {err}"
    );
    assert!(
        matches!(
            err,
            probes::ProbeError::AuthFailed { .. } | probes::ProbeError::Server { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn redis_that_stops_answering_times_out_within_the_limit() {
    // A listener that accepts and never answers stands for a hung Redis.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let start = Instant::now();
    let err = probes::redis::check(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(2))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        err.to_string().contains("did not answer within 2.0 s")
            || err.to_string().contains("timed out"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_answers_read_only_and_refuses_bad_credentials() {
    let r = probes::postgres::check(&env("DATABASE_URL"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.kind, "postgres");
    assert!(r.facts.contains(&("role".into(), "primary".into())));
    let err = probes::postgres::check(
        &format!("postgres://u:secret@127.0.0.1:{}/x", dead_port()),
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot connect to postgres://u:***@127.0.0.1:"),
        "{msg}"
    );
    assert!(!msg.contains("secret"));
}

#[tokio::test]
async fn kafka_answers_with_its_brokers() {
    let r = probes::kafka::check(&env("KAFKA_BROKERS"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r.kind, "kafka");
    let brokers = &r.facts.iter().find(|(k, _)| k == "brokers").unwrap().1;
    assert!(brokers.starts_with("1@127.0.0.1:"), "{brokers}");
}

#[tokio::test]
async fn kafka_dead_broker_is_a_bounded_failure() {
    let start = Instant::now();
    let err = probes::kafka::check(
        &format!("127.0.0.1:{}", dead_port()),
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("127.0.0.1:"), "{err}");
}
