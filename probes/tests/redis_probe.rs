//! The Redis probe against real redis-server processes: for every finding code, the bad
//! state is made on a throwaway instance and the probe must report it with its evidence;
//! the healthy baseline must not. Faults end as bounded, failed runs with a clear finding.

mod common;

use common::*;
use probes::framework::Severity;
use redis::AsyncCommands;
use std::time::{Duration, Instant};

const FAST: &[(&str, &str)] = &[("rate_interval_s", "1")];

async fn cfg(c: &mut redis::aio::MultiplexedConnection, k: &str, v: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(k)
        .arg(v)
        .query_async(c)
        .await
        .unwrap();
}

async fn fill(
    c: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    n: usize,
    size: usize,
    ttl: Option<u64>,
) {
    let value = "x".repeat(size);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            match ttl {
                Some(t) => p
                    .cmd("SET")
                    .arg(format!("{prefix}{i}"))
                    .arg(&value)
                    .arg("EX")
                    .arg(t)
                    .ignore(),
                None => p
                    .cmd("SET")
                    .arg(format!("{prefix}{i}"))
                    .arg(&value)
                    .ignore(),
            };
        }
        let _: () = p.query_async(c).await.unwrap();
    }
}

async fn info_field(c: &mut redis::aio::MultiplexedConnection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("all").query_async(c).await.unwrap();
    probes::redis::probe::parse_info(&info)
        .get(field)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn healthy_baseline_has_no_problems() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    fill(&mut c, "cache:", 500, 100, Some(3600)).await;
    let o = run("redis", &r.url(), FAST).await;
    assert!(o.is_ok(), "{:?}", o.result);
    assert!(
        problems(&o).is_empty(),
        "baseline reported {:?}",
        problems(&o)
    );
    let s = finding(&o, "REDIS_SUMMARY");
    assert_eq!(fact(s, "maxmemory_policy"), "allkeys-lru");
    assert_eq!(fact(s, "role"), "master");
    assert!(s.excerpt.as_deref().unwrap().contains("MEMORY DOCTOR"));
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(fact(k, "mode"), "every key");
    assert_eq!(fact(k, "keys read"), "500");
    assert_eq!(fact(k, "keys in db"), "500");
    assert_eq!(fact(k, "share of the keyspace read"), "100.0%");
    assert!(cells(k).contains(&"cache:*".to_string()));
    assert!(!codes(&o).contains(&"REDIS_NO_TTL_MAJORITY"));
    // Every step ran, in order.
    assert!(
        o.steps
            .iter()
            .all(|s| s.status == probes::framework::StepStatus::Done),
        "{:?}",
        o.steps
    );
}

#[tokio::test]
async fn noeviction_near_the_limit() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    fill(&mut c, "session:", 2000, 1000, None).await;
    let used: f64 = info_field(&mut c, "used_memory").await.parse().unwrap();
    cfg(&mut c, "maxmemory-policy", "noeviction").await;
    cfg(&mut c, "maxmemory", &((used / 0.9) as u64).to_string()).await;
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_NOEVICTION_NEAR_LIMIT");
    assert_eq!(fact(f, "maxmemory_policy"), "noeviction");
    assert!(f.title.contains("% of maxmemory"), "{}", f.title);
    assert!(
        f.remediation
            .contains("CONFIG SET maxmemory-policy allkeys-lru")
    );
}

#[tokio::test]
async fn no_maxmemory() {
    let r = TestRedis::start_with(&[]);
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_NO_MAXMEMORY");
    assert!(fact(f, "total_system_memory").contains("iB"));
    assert!(f.remediation.contains("CONFIG SET maxmemory"));
}

#[tokio::test]
async fn volatile_policy_with_keys_without_ttl() {
    let r = TestRedis::start_with(&["--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru"]);
    let mut c = r.conn().await;
    fill(&mut c, "session:", 300, 50, None).await;
    fill(&mut c, "cache:", 50, 50, Some(600)).await;
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_VOLATILE_POLICY_NO_TTL");
    assert_eq!(fact(f, "sampled keys"), "350");
    assert_eq!(fact(f, "sampled keys without TTL"), "300");
    // The TTL audit names the pattern and says what to change on writes.
    let t = finding(&o, "REDIS_NO_TTL_MAJORITY");
    assert!(cells(t).contains(&"session:*".to_string()));
    assert!(!cells(t).contains(&"cache:*".to_string()));
    assert!(
        t.remediation.contains("`EX` on writes of `session:*`"),
        "{}",
        t.remediation
    );
}

#[tokio::test]
async fn evicting_between_the_two_samples() {
    let r = TestRedis::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut c = r.conn().await;
    fill(&mut c, "warm:", 2000, 1000, None).await;
    // Keep writing while the probe measures.
    let mut w = r.conn().await;
    let writer = tokio::spawn(async move {
        for round in 0..40 {
            fill(&mut w, &format!("hot{round}:"), 500, 1000, None).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let o = run("redis", &r.url(), &[("rate_interval_s", "2")]).await;
    writer.abort();
    let f = finding(&o, "REDIS_EVICTING");
    let rate: f64 = fact(f, "evictions per second").parse().unwrap();
    assert!(rate > 0.0);
    assert_eq!(fact(f, "maxmemory_policy"), "allkeys-lru");
}

#[tokio::test]
async fn fragmentation() {
    let r = TestRedis::start_with(&["--maxmemory", "1gb", "--maxmemory-policy", "allkeys-lru"]);
    let mut c = r.conn().await;
    fill(&mut c, "frag:", 200_000, 400, None).await;
    // Delete nine keys in ten: the allocator's pages stay mostly in use, RSS stays up.
    for chunk in (0..200_000)
        .filter(|i| i % 10 != 0)
        .collect::<Vec<_>>()
        .chunks(2000)
    {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("DEL").arg(format!("frag:{i}")).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
    }
    let o = run(
        "redis",
        &r.url(),
        &[("rate_interval_s", "1"), ("sample_keys", "1000")],
    )
    .await;
    let f = finding(&o, "REDIS_FRAGMENTATION");
    let ratio: f64 = fact(f, "mem_fragmentation_ratio").parse().unwrap();
    assert!(ratio >= 1.5, "{ratio}");
    assert!(f.remediation.contains("activedefrag"));
}

#[tokio::test]
async fn rejected_connections_and_clients_near_max() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    cfg(&mut c, "maxclients", "4").await;
    let mut extra = vec![];
    for _ in 0..6 {
        // Redis accepts, answers "max number of clients reached" and closes.
        if let Ok(x) = redis::Client::open(r.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
        {
            extra.push(x);
        }
    }
    drop(extra);
    tokio::time::sleep(Duration::from_millis(200)).await;
    cfg(&mut c, "maxclients", "10").await;
    let mut idle = vec![];
    // With this connection and the probe's own: 8 of 10 (the key audit's two extra
    // connections take it to 10 while it runs).
    for _ in 0..6 {
        idle.push(r.conn().await);
    }
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_REJECTED_CONNECTIONS");
    assert!(fact(f, "rejected_connections").parse::<u64>().unwrap() >= 1);
    let n = finding(&o, "REDIS_CLIENTS_NEAR_MAX");
    assert_eq!(fact(n, "maxclients"), "10");
    assert!(fact(n, "connected_clients").parse::<u64>().unwrap() >= 8);
    drop(idle);
}

#[tokio::test]
async fn blocked_clients() {
    let r = TestRedis::start();
    let mut b = r.conn().await;
    let blocker = tokio::spawn(async move {
        let _: Option<(String, String)> = b.blpop("jobs:empty", 0.0).await.unwrap_or(None);
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_BLOCKED_CLIENTS");
    assert_eq!(fact(f, "blocked_clients"), "1");
    blocker.abort();
}

#[tokio::test]
async fn slow_commands_are_listed_with_arguments_redacted() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    cfg(&mut c, "slowlog-log-slower-than", "0").await;
    let _: () = c.set("session:4242", "hunter2-secret").await.unwrap();
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_SLOW_COMMANDS");
    let all = format!("{:?}", f);
    assert!(!all.contains("hunter2"), "a value leaked: {all}");
    assert!(!all.contains("4242"), "a key id leaked: {all}");
    assert!(
        cells(f)
            .iter()
            .any(|c| c == "SET session:* ‹1 args redacted›"),
        "{:?}",
        cells(f)
    );
}

#[tokio::test]
async fn big_keys_and_the_top_keys_table() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    fill(&mut c, "small:", 200, 10, Some(600)).await;
    let big = "y".repeat(2 * 1024 * 1024);
    let _: () = c.set("blob:report", &big).await.unwrap();
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_BIG_KEYS");
    assert!(f.title.contains("blob:report"));
    assert!(f.remediation.contains("UNLINK blob:report"));
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(k.tables[0].rows[0][0], "blob:report", "biggest key first");
    assert!(k.tables[0].rows.len() <= 20);
}

#[tokio::test]
async fn sample_is_bounded_and_says_how_much_it_covers() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    fill(&mut c, "user:", 5000, 20, Some(600)).await;
    let o = run(
        "redis",
        &r.url(),
        &[
            ("rate_interval_s", "1"),
            ("sample_keys", "1000"),
            ("full_audit_max_keys", "4999"),
        ],
    )
    .await;
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(fact(k, "mode"), "sample");
    assert_eq!(fact(k, "keys read"), "1000");
    assert_eq!(fact(k, "share of the keyspace read"), "20.0%");
    assert!(
        k.title
            .contains("a single big key is in a sample this size with probability ≈ 20.0%"),
        "{}",
        k.title
    );
    // Estimates are scaled to the keyspace.
    let row = k.tables[1].rows.iter().find(|r| r[0] == "user:*").unwrap();
    assert_eq!(row[3], "5,000");
}

#[tokio::test]
async fn expected_channels_without_subscribers() {
    let r = TestRedis::start();
    let client = redis::Client::open(r.url()).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe("payments").await.unwrap();
    let o = run(
        "redis",
        &r.url(),
        &[
            ("rate_interval_s", "1"),
            ("expected_channels", "orders, payments"),
        ],
    )
    .await;
    let f = finding(&o, "REDIS_PUBSUB_NO_SUBSCRIBERS");
    assert_eq!(cells(f), vec!["orders".to_string(), "0".to_string()]);
    assert!(fact(f, "active channels") == "1");
    // With a subscriber on every expected channel, no finding.
    sub.subscribe("orders").await.unwrap();
    let o = run(
        "redis",
        &r.url(),
        &[
            ("rate_interval_s", "1"),
            ("expected_channels", "orders,payments"),
        ],
    )
    .await;
    assert!(!codes(&o).contains(&"REDIS_PUBSUB_NO_SUBSCRIBERS"));
}

#[tokio::test]
async fn replica_lag_seen_from_the_primary() {
    let primary = TestRedis::start();
    let replica = TestRedis::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let mut rc = replica.conn().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while info_field(&mut rc, "master_link_status").await != "up" {
        assert!(Instant::now() < deadline, "replica did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Freeze the replica: it stops acknowledging while the primary keeps writing.
    let pid = replica.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut pc = primary.conn().await;
    fill(&mut pc, "orders:", 3000, 1000, None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = run(
        "redis",
        &primary.url(),
        &[("rate_interval_s", "1"), ("replica_lag_bytes", "1048576")],
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    let f = finding(&o, "REDIS_REPLICA_LAG");
    assert!(
        cells(f)
            .iter()
            .any(|c| c == &format!("127.0.0.1:{}", replica.port)),
        "{:?}",
        cells(f)
    );
}

#[tokio::test]
async fn replica_whose_link_is_down() {
    let dead = free_port();
    let r = TestRedis::start_with(&["--replicaof", "127.0.0.1", &dead.to_string()]);
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_REPLICA_LINK_DOWN");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.title.contains(&dead.to_string()));
    assert_eq!(fact(f, "master_link_status"), "down");
}

#[tokio::test]
async fn failing_persistence() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    fill(&mut c, "k:", 10, 10, None).await;
    // The data directory disappears under the running server (a full or lost volume).
    std::fs::remove_dir_all(&r.dir).unwrap();
    let _: () = redis::cmd("BGSAVE").query_async(&mut c).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "rdb_last_bgsave_status").await != "err" {
        assert!(Instant::now() < deadline, "BGSAVE did not fail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = run("redis", &r.url(), FAST).await;
    let f = finding(&o, "REDIS_PERSISTENCE_ERROR");
    assert_eq!(fact(f, "rdb_last_bgsave_status"), "err");
    assert!(f.remediation.contains("BGSAVE"));
}

#[tokio::test]
async fn only_read_only_commands_reach_redis_and_at_the_pace() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    fill(&mut c, "p:", 3000, 10, Some(600)).await;
    // Watch everything the probe sends.
    let mon = redis::Client::open(r.url())
        .unwrap()
        .get_async_monitor()
        .await
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let watcher = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = mon.into_on_message::<String>();
        while let Some(line) = stream.next().await {
            s2.lock().unwrap().push(line);
        }
    });
    let t = Instant::now();
    let o = run(
        "redis",
        &r.url(),
        &[("rate_interval_s", "1"), ("max_commands_per_sec", "2000")],
    )
    .await;
    let took = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.abort();
    assert!(o.is_ok());
    let lines = seen.lock().unwrap().clone();
    let allowed = [
        "PING", "INFO", "MEMORY", "SLOWLOG", "SCAN", "TYPE", "PTTL", "PUBSUB", "CLIENT", "DBSIZE",
        "OBJECT",
    ];
    let mut names = std::collections::BTreeSet::new();
    for l in &lines {
        // 1700000000.123456 [0 127.0.0.1:5555] "SCAN" "0" …
        let Some(cmd) = l.split('"').nth(1) else {
            continue;
        };
        let cmd = cmd.to_ascii_uppercase();
        assert!(allowed.contains(&cmd.as_str()), "the probe sent {cmd}: {l}");
        names.insert(cmd);
    }
    assert!(
        names.contains("SCAN") && names.contains("MEMORY"),
        "{names:?}"
    );
    // ~9,000 commands at 2,000/s cannot finish in under 4.5 s.
    assert!(o.commands >= 9000, "{}", o.commands);
    assert!(
        took >= o.commands as f64 / 2000.0,
        "{took} s for {} commands",
        o.commands
    );
}

#[tokio::test]
async fn unreachable_port_is_a_failed_run_with_a_finding() {
    let port = free_port();
    let t = Instant::now();
    let o = run("redis", &format!("redis://127.0.0.1:{port}/0"), FAST).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(o.failed());
    let f = finding(&o, "TARGET_UNREACHABLE");
    assert!(
        f.title.contains("cannot connect to redis://127.0.0.1"),
        "{}",
        f.title
    );
}

#[tokio::test]
async fn wrong_password_is_a_failed_run_and_never_shows_the_password() {
    let r = TestRedis::start_with(&["--requirepass", "right-one"]);
    let o = run(
        "redis",
        &format!("redis://:wrong-one@127.0.0.1:{}/0", r.port),
        FAST,
    )
    .await;
    assert!(o.failed());
    let f = finding(&o, "TARGET_AUTH_FAILED");
    assert!(!format!("{:?}", o.findings).contains("wrong-one"));
    assert!(f.title.contains("refused the credentials"), "{}", f.title);
}

#[tokio::test]
async fn a_paused_redis_times_out_within_the_step_limit() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(30_000)
        .arg("ALL")
        .query_async(&mut c)
        .await
        .unwrap();
    let t = Instant::now();
    let o = run(
        "redis",
        &r.url(),
        &[("rate_interval_s", "1"), ("step_timeout_s", "2")],
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(o.timed_out());
    let f = finding(&o, "TARGET_TIMEOUT");
    assert!(
        f.title.contains("did not answer within 2.0 s"),
        "{}",
        f.title
    );
}

#[tokio::test]
async fn the_target_stopping_mid_run_fails_the_run_fast() {
    let mut r = TestRedis::start();
    let url = r.url();
    let job = tokio::spawn(async move { run("redis", &url, &[("rate_interval_s", "5")]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.kill();
    let t = Instant::now();
    let o = job.await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(o.failed(), "{:?}", o.result);
    assert!(codes(&o).contains(&"TARGET_UNREACHABLE"), "{:?}", codes(&o));
    // What was learned before the stop is kept.
    let done = o
        .steps
        .iter()
        .filter(|s| s.status == probes::framework::StepStatus::Done)
        .count();
    assert!(done >= 4, "{:?}", o.steps);
    assert!(
        o.steps
            .iter()
            .any(|s| s.status == probes::framework::StepStatus::Failed)
    );
}

#[tokio::test]
async fn tls_to_a_plain_port_fails_clearly() {
    let r = TestRedis::start();
    let t = Instant::now();
    let o = run(
        "redis",
        &format!("rediss://127.0.0.1:{}/0", r.port),
        &[("step_timeout_s", "3")],
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(o.failed() || o.timed_out(), "{:?}", o.result);
    let f = &o.findings[0];
    assert!(f.code.starts_with("TARGET_"), "{}", f.code);
    assert!(f.title.contains("rediss://127.0.0.1"), "{}", f.title);
}
