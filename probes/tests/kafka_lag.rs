//! The Kafka lag probe against the real Apache Kafka broker the TEST command starts
//! (KAFKA_BROKERS). Every test makes its own topics and groups, produces and commits with
//! rdkafka, and checks what the probe reports — and that it never joins a group.

mod common;

use common::*;
use probes::framework::Severity;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS (the TEST command sets it)")
}

fn name(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

async fn topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for x in r {
        x.unwrap();
    }
}

fn produce(topic: &str, partition: i32, n: usize) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for i in 0..n {
        let v = format!("message {i}");
        p.send(
            BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(&v),
        )
        .unwrap();
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

/// Commits offsets for a group without joining it (the group stays Empty).
fn commit(group: &str, offsets: &[(&str, i32, i64)]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o)).unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

/// A member of `group` subscribed to `topics`, polled until it has an assignment.
fn member(group: &str, topics: &[&str], client_id: &str, strategy: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("client.id", client_id)
        .set("partition.assignment.strategy", strategy)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap();
    c.subscribe(topics).unwrap();
    c
}

/// Polls every member until the group is stable with `n` members.
fn settle(members: &[&BaseConsumer], group: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for m in members {
            let _ = m.poll(Duration::from_millis(50));
        }
        let gl = members[0]
            .fetch_group_list(Some(group), Duration::from_secs(5))
            .unwrap();
        if let Some(g) = gl.groups().first()
            && g.state() == "Stable"
            && g.members().len() == n
        {
            return;
        }
        assert!(Instant::now() < deadline, "group {group} did not settle");
    }
}

fn lag_rows(f: &probes::framework::Finding) -> &Vec<Vec<String>> {
    &f.tables[0].rows
}

#[tokio::test]
async fn lag_per_partition_no_commits_and_an_empty_group() {
    let t = name("orders");
    let g = name("billing");
    topic(&t, 3).await;
    for p in 0..3 {
        produce(&t, p, 100);
    }
    commit(&g, &[(&t, 0, 100), (&t, 1, 40)]);
    let o = run(
        "kafka-lag",
        &brokers(),
        &[("group", &g), ("sample_interval_s", "1")],
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    let f = finding(&o, "KAFKA_GROUP_LAG");
    // The partition without a commit has no lag to add: it is listed separately.
    assert!(f.title.contains("lag 60 on 3 partitions"), "{}", f.title);
    assert!(f.title.contains("not moving"), "{}", f.title);
    let rows = lag_rows(f);
    assert_eq!(rows[0][2..6], ["100", "0", "100", "0"]);
    assert_eq!(rows[1][2..6], ["40", "0", "100", "60"]);
    assert_eq!(
        rows[2][2], "none (no commit)",
        "no commit is shown as such, not as 0"
    );
    assert!(
        rows[1][6].ends_with("ago"),
        "oldest unread message age: {:?} {:?}",
        rows[1],
        o.evidence
    );
    let n = finding(&o, "KAFKA_NO_COMMITTED_OFFSET");
    assert_eq!(
        cells(n),
        vec![t.clone(), "2".into(), "0".into(), "100".into()]
    );
    let e = finding(&o, "KAFKA_GROUP_EMPTY_WITH_LAG");
    assert_eq!(e.severity, Severity::Critical);
    assert!(e.title.contains("60 unread messages"), "{}", e.title);
}

#[tokio::test]
async fn committed_below_the_log_start() {
    let t = name("events");
    let g = name("audit");
    topic(&t, 1).await;
    produce(&t, 0, 100);
    commit(&g, &[(&t, 0, 10)]);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&t, 0, Offset::Offset(50)).unwrap();
    admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .unwrap();
    let o = run(
        "kafka-lag",
        &brokers(),
        &[("group", &g), ("sample_interval_s", "1")],
    )
    .await;
    let f = finding(&o, "KAFKA_COMMITTED_BELOW_LOG_START");
    assert!(
        f.title.contains("40 messages were deleted by retention"),
        "{}",
        f.title
    );
    assert_eq!(
        cells(f),
        vec![t.clone(), "0".into(), "10".into(), "50".into(), "40".into()]
    );
}

#[tokio::test]
async fn more_members_than_partitions_and_the_probe_never_joins() {
    let t = name("single");
    let g = name("crowd");
    topic(&t, 1).await;
    produce(&t, 0, 10);
    let a = member(&g, &[&t], "worker-a", "range");
    let b = member(&g, &[&t], "worker-b", "range");
    let c = member(&g, &[&t], "worker-c", "range");
    settle(&[&a, &b, &c], &g, 3);
    let ids = |c: &BaseConsumer| -> Vec<String> {
        let gl = c
            .fetch_group_list(Some(&g), Duration::from_secs(5))
            .unwrap();
        let mut v: Vec<String> = gl.groups()[0]
            .members()
            .iter()
            .map(|m| format!("{}/{}", m.client_id(), m.id()))
            .collect();
        v.sort();
        v
    };
    let before = ids(&a);
    // Describe the group over and over while the probe runs.
    let url = brokers();
    let gg = g.clone();
    let job = tokio::spawn(async move {
        run(
            "kafka-lag",
            &url,
            &[("group", &gg), ("sample_interval_s", "2")],
        )
        .await
    });
    let mut seen = vec![];
    while !job.is_finished() {
        for m in [&a, &b, &c] {
            let _ = m.poll(Duration::from_millis(20));
        }
        seen.extend(ids(&a));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = job.await.unwrap();
    assert!(
        seen.iter().all(|m| !m.contains("lookout")),
        "Lookout showed up as a member: {seen:?}"
    );
    assert_eq!(ids(&a), before, "no rebalance: the same three members");
    let f = finding(&o, "KAFKA_MORE_MEMBERS_THAN_PARTITIONS");
    assert!(
        f.title.contains("3 members for 1 partitions: 2 sit idle"),
        "{}",
        f.title
    );
    let i = finding(&o, "KAFKA_IDLE_MEMBERS");
    assert_eq!(i.tables[0].rows.len(), 2);
    assert!(!codes(&o).contains(&"KAFKA_REBALANCING"));
}

#[tokio::test]
async fn uneven_assignment_with_the_range_assignor() {
    let (t1, t2) = (name("a"), name("b"));
    let g = name("skewed");
    topic(&t1, 3).await;
    topic(&t2, 3).await;
    let a = member(&g, &[&t1, &t2], "w1", "range");
    let b = member(&g, &[&t1, &t2], "w2", "range");
    settle(&[&a, &b], &g, 2);
    // The group can settle before the members' metadata has both new topics (an assignment
    // of the first topic only, then a rebalance): wait until all 6 partitions are assigned.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for m in [&a, &b] {
            let _ = m.poll(Duration::from_millis(50));
        }
        let assigned: usize = [&a, &b]
            .iter()
            .map(|m| m.assignment().map(|l| l.count()).unwrap_or(0))
            .sum();
        if assigned == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {assigned} of 6 partitions assigned"
        );
    }
    settle(&[&a, &b], &g, 2);
    let o = run(
        "kafka-lag",
        &brokers(),
        &[("group", &g), ("sample_interval_s", "1")],
    )
    .await;
    let f = finding(&o, "KAFKA_UNEVEN_ASSIGNMENT");
    assert!(
        f.title.contains("between 2 and 4 partitions"),
        "{}",
        f.title
    );
    drop((a, b));
}

#[tokio::test]
async fn a_growing_dead_letter_topic() {
    let t = name("payments");
    let dlq = format!("{t}.dlq");
    let g = name("payer");
    topic(&t, 1).await;
    topic(&dlq, 1).await;
    produce(&t, 0, 5);
    commit(&g, &[(&t, 0, 5)]);
    produce(&dlq, 0, 5);
    let url = brokers();
    let gg = g.clone();
    let job = tokio::spawn(async move {
        run(
            "kafka-lag",
            &url,
            &[("group", &gg), ("sample_interval_s", "3")],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    produce(&dlq, 0, 3);
    let o = job.await.unwrap();
    let f = finding(&o, "KAFKA_DLQ_MESSAGES");
    assert!(
        f.title
            .contains(&format!("{dlq} holds 8 messages (3 new during the probe)")),
        "{}",
        f.title
    );
    assert!(
        !codes(&o).contains(&"KAFKA_GROUP_EMPTY_WITH_LAG"),
        "caught up"
    );
}

#[tokio::test]
async fn a_member_joining_between_samples_is_a_rebalance() {
    let t = name("stream");
    let g = name("joiners");
    topic(&t, 2).await;
    let a = member(&g, &[&t], "first", "range");
    settle(&[&a], &g, 1);
    let url = brokers();
    let gg = g.clone();
    let job = tokio::spawn(async move {
        run(
            "kafka-lag",
            &url,
            &[("group", &gg), ("sample_interval_s", "4")],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = member(&g, &[&t], "second", "range");
    while !job.is_finished() {
        let _ = a.poll(Duration::from_millis(20));
        let _ = b.poll(Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = job.await.unwrap();
    let f = finding(&o, "KAFKA_REBALANCING");
    assert!(
        f.title.contains("members changed between the two samples")
            || f.title.contains("rebalancing"),
        "{}",
        f.title
    );
}

#[tokio::test]
async fn a_healthy_group_and_an_idle_exactly_once_consumer() {
    let t = name("ledger");
    let g = name("reader");
    topic(&t, 1).await;
    // A transactional producer: 10 messages and a commit marker (offset 10).
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", name("tx"))
        .create()
        .unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    p.begin_transaction().unwrap();
    for i in 0..10 {
        let v = format!("entry {i}");
        p.send(BaseRecord::<(), str>::to(&t).partition(0).payload(&v))
            .unwrap();
    }
    p.commit_transaction(Duration::from_secs(30)).unwrap();
    // The consumer read all ten and committed 10: the marker is the only "lag".
    commit(&g, &[(&t, 0, 10)]);
    let o = run(
        "kafka-lag",
        &brokers(),
        &[("group", &g), ("sample_interval_s", "1")],
    )
    .await;
    assert!(problems(&o).is_empty(), "{:?}", problems(&o));
    let f = finding(&o, "KAFKA_GROUP_LAG");
    assert_eq!(lag_rows(f)[0][4], "11", "log end after the commit marker");
    assert!(f.title.contains(": lag 0 on 1 partition"), "{}", f.title);
    assert!(f.title.contains("caught up"), "{}", f.title);
}

#[tokio::test]
async fn a_dead_broker_is_a_failed_run() {
    let port = free_port();
    let t = Instant::now();
    let o = run(
        "kafka-lag",
        &format!("127.0.0.1:{port}"),
        &[("step_timeout_s", "2")],
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(!o.is_ok());
    assert!(
        codes(&o)
            .iter()
            .any(|c| *c == "TARGET_UNREACHABLE" || *c == "TARGET_TIMEOUT"),
        "{:?}",
        codes(&o)
    );
}

/// The observation batches: on one broker a whole round is ApiVersions, Metadata,
/// ListGroups, FindCoordinator, DescribeGroups, OffsetFetch and two ListOffsets — eight
/// requests (nine with consumer-protocol groups), whether the cluster has a few groups or
/// forty more.
#[tokio::test]
async fn requests_grow_with_batches_not_with_groups() {
    let t = name("batch");
    topic(&t, 4).await;
    for p in 0..4 {
        produce(&t, p, 5);
    }
    commit(&name("batch-g"), &[(&t, 0, 1)]);
    let step = Duration::from_secs(10);
    let before = probes::kafka::lag::sample_cluster(&brokers(), step, 10_000, "", &[])
        .await
        .unwrap();
    for i in 0..40 {
        commit(
            &format!("{t}-group-{i}"),
            &[(&t, i % 4, 2), (&t, (i + 1) % 4, 3)],
        );
    }
    let after = probes::kafka::lag::sample_cluster(&brokers(), step, 10_000, "", &[])
        .await
        .unwrap();
    let ours = |s: &probes::kafka::lag::Snapshot| {
        s.groups
            .iter()
            .filter(|g| g.name.starts_with(&format!("{t}-group-")))
            .count()
    };
    assert_eq!(ours(&before), 0);
    assert_eq!(ours(&after), 40, "every new group is observed");
    assert!(after.groups.len() >= before.groups.len() + 40);
    // (One more when the broker has groups on the consumer protocol — another test may
    // have made one: they are described with one ConsumerGroupDescribe per batch.)
    let expected = |s: &probes::kafka::lag::Snapshot| {
        8 + u64::from(s.groups.iter().any(|g| g.generation.is_some()))
    };
    assert_eq!(
        before.requests,
        expected(&before),
        "one broker: 8 requests per observation"
    );
    assert_eq!(
        after.requests,
        expected(&after),
        "40 more groups, no more requests"
    );
    // And what was read is right: group i committed 2 and 3 on two partitions of 5 messages.
    let g = after
        .groups
        .iter()
        .find(|g| g.name == format!("{t}-group-7"))
        .unwrap();
    assert_eq!(g.committed.get(&(t.clone(), 3)), Some(&Some(2)));
    assert_eq!(g.committed.get(&(t.clone(), 0)), Some(&Some(3)));
    assert_eq!(
        g.committed.get(&(t.clone(), 1)),
        Some(&None),
        "no commit shown as such"
    );
    assert_eq!(after.offsets.get(&(t.clone(), 3)), Some(&(0, 5)));
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} (the TEST command's Kafka sets it)"))
}

/// The same broker behind SASL PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, TLS and SASL over TLS:
/// the whole probe (the wire client's observation and rdkafka's record reads) works through
/// each, with the same numbers as over plaintext; a wrong password is a TARGET_AUTH_FAILED
/// finding, a CA that did not sign the broker's certificate a clear TLS failure.
#[tokio::test]
async fn sasl_and_tls_listeners() {
    let t = name("secured");
    let g = name("secured-group");
    topic(&t, 2).await;
    produce(&t, 0, 30);
    produce(&t, 1, 10);
    commit(&g, &[(&t, 0, 12), (&t, 1, 10)]);
    let user = env("KAFKA_SASL_USER");
    let pw = env("KAFKA_SASL_PASSWORD");
    let ca = env("KAFKA_CA");
    let with =
        |stored: String| probes::kafka::config::KafkaConfig::with_credentials(&stored, &user, &pw);
    let cases = [
        with(format!(
            "{}?security.protocol=SASL_PLAINTEXT&sasl.mechanism=PLAIN",
            env("KAFKA_SASL_BROKERS")
        )),
        with(format!(
            "{}?security.protocol=SASL_PLAINTEXT&sasl.mechanism=SCRAM-SHA-256",
            env("KAFKA_SASL_BROKERS")
        )),
        with(format!(
            "{}?security.protocol=SASL_PLAINTEXT&sasl.mechanism=SCRAM-SHA-512",
            env("KAFKA_SASL_BROKERS")
        )),
        format!(
            "{}?security.protocol=SSL&ssl.ca.location={ca}",
            env("KAFKA_SSL_BROKERS")
        ),
        with(format!(
            "{}?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512&ssl.ca.location={ca}",
            env("KAFKA_SASL_SSL_BROKERS")
        )),
    ];
    for conn in &cases {
        let o = run(
            "kafka-lag",
            conn,
            &[("group", &g), ("sample_interval_s", "1")],
        )
        .await;
        assert!(o.is_ok(), "{conn}: {:?}", o.result);
        let rows = lag_rows(finding(&o, "KAFKA_GROUP_LAG"));
        assert_eq!(rows[0][2..6], ["12", "0", "30", "18"], "{conn}");
        assert_eq!(rows[1][2..6], ["10", "0", "10", "0"], "{conn}");
        assert!(
            rows[0][6].ends_with("ago"),
            "{conn}: the record at the committed offset was read (rdkafka over the same security): {:?}",
            rows[0]
        );
        assert!(
            !format!("{:?}", o).contains(&pw),
            "the password appears nowhere in the outcome"
        );
        let report = probes::kafka::check(conn, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{conn}: {e}"));
        assert!(report.facts.iter().any(|(k, _)| k == "security"));
    }
    // Wrong password, each mechanism: refused as credentials, not as "unreachable".
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let conn = probes::kafka::config::KafkaConfig::with_credentials(
            &format!(
                "{}?security.protocol=SASL_PLAINTEXT&sasl.mechanism={mech}",
                env("KAFKA_SASL_BROKERS")
            ),
            &user,
            "not-the-password",
        );
        let o = run("kafka-lag", &conn, &[("group", &g)]).await;
        assert!(o.failed(), "{mech}");
        assert!(
            codes(&o).contains(&"TARGET_AUTH_FAILED"),
            "{mech}: {:?}",
            codes(&o)
        );
        let e = probes::kafka::check(&conn, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(e, probes::ProbeError::AuthFailed { .. }),
            "{mech}: {e}"
        );
    }
    // TLS against a CA that did not sign the broker's certificate (the system's roots).
    let conn = format!("{}?security.protocol=SSL", env("KAFKA_SSL_BROKERS"));
    let e = probes::kafka::check(&conn, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("TLS") && e.to_string().contains("certificate"),
        "{e}"
    );
    // Plaintext spoken to the TLS port: a clear failure within the limit, not a hang.
    let started = Instant::now();
    let e = probes::kafka::check(&env("KAFKA_SSL_BROKERS"), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{e}");
}

/// A group on the consumer protocol of KIP-848 (`group.protocol=consumer`, Kafka 4):
/// DescribeGroups calls it Dead, so the observation asks ConsumerGroupDescribe — the group
/// shows with its state, assignor, members, assignment and epoch, and its lag.
#[tokio::test]
async fn a_group_on_the_consumer_protocol() {
    let t = name("next-gen");
    let g = name("next-gen-group");
    topic(&t, 2).await;
    produce(&t, 0, 15);
    produce(&t, 1, 5);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", &g)
        .set("group.protocol", "consumer")
        .set("client.id", "kip848-consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[&t]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().map(|a| a.count()).unwrap_or(0) < 2 {
        let _ = c.poll(Duration::from_millis(100));
        assert!(Instant::now() < deadline, "no assignment");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&t, 0, Offset::Offset(5)).unwrap();
    tpl.add_partition_offset(&t, 1, Offset::Offset(5)).unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
    let s =
        probes::kafka::lag::sample_cluster(&brokers(), Duration::from_secs(10), 10_000, "", &[])
            .await
            .unwrap();
    let grp = s
        .groups
        .iter()
        .find(|x| x.name == g)
        .expect("the consumer-protocol group is observed");
    assert_eq!(grp.state, "Stable");
    assert!(
        grp.generation.is_some_and(|e| e > 0),
        "{:?}",
        grp.generation
    );
    assert_eq!(grp.members.len(), 1);
    assert_eq!(grp.members[0].client_id, "kip848-consumer");
    assert_eq!(grp.members[0].parts.len(), 2);
    assert_eq!(grp.committed.get(&(t.clone(), 0)), Some(&Some(5)));
    // The probe reads it the same way: 10 behind on partition 0, caught up on 1.
    let o = run(
        "kafka-lag",
        &brokers(),
        &[("group", &g), ("sample_interval_s", "1")],
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    let f = finding(&o, "KAFKA_GROUP_LAG");
    assert!(f.title.contains("(Stable, 1 member)"), "{}", f.title);
    let rows = lag_rows(f);
    assert_eq!(rows[0][2..6], ["5", "0", "15", "10"]);
    assert_eq!(rows[1][2..6], ["5", "0", "5", "0"]);
    assert!(
        rows[0][7].starts_with("kip848-consumer"),
        "the owner column names the member: {:?}",
        rows[0]
    );
    let _ = c.poll(Duration::from_millis(10));
}
