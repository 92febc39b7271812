//! The Kafka lag sampler against the real broker: a stalled consumer becomes STALL, a
//! stopped one STOP, a caught-up one OK, offsets reset backwards REWIND; time lag is
//! estimated from the stored log-end history within one sample interval of the truth; a
//! round against a dead broker is recorded and skipped; leases keep replicas apart.

mod common;

use common::{TestApp, env};
use domain::Role;
use domain::reach::Access;
use domain::services::kafka_lag as svc;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

async fn topic(name: &str) {
    topic_with(name, 1).await
}

async fn topic_with(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

fn produce(p: &BaseProducer, topic: &str, n: usize) {
    for i in 0..n {
        let v = format!("m{i}");
        p.send(BaseRecord::<(), str>::to(topic).partition(0).payload(&v))
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

fn producer() -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .create()
        .unwrap()
}

/// A client with the group's id that never subscribes: it only commits for the group.
fn group_client(group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .set("group.id", group)
        .create()
        .unwrap()
}

fn commit_as(c: &BaseConsumer, topic: &str, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

/// A plain Kafka target on the TEST broker, created through the API; its id.
async fn kafka_target(app: &TestApp, admin: &str, name: &str) -> i64 {
    let res = app
        .plain()
        .post(app.url("/api/v1/targets"))
        .bearer_auth(admin)
        .json(
            &json!({"name": name, "kind": "kafka", "connection": common::kafka_brokers(), "environment": "test"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// One sampling round of `target` that must work (no key, no reach limits).
async fn ok_round(pool: &PgPool, target: i64) {
    let r = svc::sample_round(
        pool,
        &Access::default(),
        target,
        "test",
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert!(r.ok, "{:?}", r.error);
}

#[sqlx::test(migrations = "../migrations")]
async fn stall_stop_ok_and_rewind_with_a_real_consumer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let viewer = app.create_token("v", Role::Viewer).await;
    let target = kafka_target(&app, &admin, "events").await;
    let t = common::unique("enrich");
    let g = common::unique("enricher");
    topic(&t).await;
    let producer = producer();
    produce(&producer, &t, 50);
    // A live member that read and committed 50, then hangs (keeps its session, commits no more).
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .set("group.id", &g)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    member.subscribe(&[&t]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        let _ = member.poll(Duration::from_millis(100));
        assert!(Instant::now() < deadline, "no assignment");
    }
    commit_as(&member, &t, 50);
    let step = Duration::from_secs(5);
    let round = |i: usize| {
        let pool = app.pool.clone();
        async move {
            let r = svc::sample_round(
                &pool,
                &Access::default(),
                target,
                "test-holder",
                step,
                Some(Duration::from_secs(1)),
            )
            .await
            .unwrap();
            assert!(r.ok, "round {i}: {:?}", r.error);
            r
        }
    };
    let status = |app: &TestApp| {
        let pool = app.pool.clone();
        let g = g.clone();
        async move {
            svc::get_group(&pool, &common::admin_principal(), target, &g)
                .await
                .unwrap()
        }
    };

    round(0).await;
    // The next message is produced now: its write time is what time lag must find.
    let produced_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut gap_ms = 0i64;
    for i in 1..=10 {
        produce(&producer, &t, 20);
        let _ = member.poll(Duration::from_millis(10));
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(250)).await;
        round(i).await;
        gap_ms = gap_ms.max(t0.elapsed().as_millis() as i64 + 250);
    }
    let s = status(&app).await;
    assert_eq!(s.status, "ERR", "{s:?}");
    assert_eq!(s.worst, "STALL", "{}", s.reason);
    assert!(
        s.reason
            .contains("committed offset 50 unchanged for 10 samples"),
        "{}",
        s.reason
    );
    assert!(
        s.reason.contains("while the log end grew by 180"),
        "{}",
        s.reason
    );
    assert_eq!(s.total_lag, 200);
    assert_eq!(s.members.len(), 1);
    // Time lag: exact — the record at the committed offset says when it was written; it
    // matches the known produce time (up to the last sample's age and the producer's latency).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let truth = (now - produced_at) as f64 / 1000.0;
    let got = s.time_lag_s.expect("time lag");
    assert_eq!(s.time_lag_kind.as_deref(), Some("exact"));
    assert!(
        got <= truth + 0.2 && got >= truth - gap_ms as f64 / 1000.0 - 1.0,
        "exact {got} s, truth {truth} s, interval {gap_ms} ms"
    );
    let p0 = &s.verdicts[0];
    assert_eq!(p0.time_lag_kind.as_deref(), Some("exact"));
    // Where the record cannot be read, the estimate from the log-end history is used
    // (probes::kafka::rules::time_lag, table-tested); it is marked as such.

    // The consumer stops: the group empties, the offset stays → STOP.
    member.unsubscribe();
    drop(member);
    let mut stopped = false;
    // States written before the sampler carried "committed since" are completed from the
    // history once: strip the carry, and STOP must still be reached.
    sqlx::query(
        "UPDATE kafka_groups SET verdicts = coalesce((SELECT jsonb_agg(v - 'tracked' - 'committed_since_ms')
             FROM jsonb_array_elements(verdicts) v), '[]') WHERE target_id = $1",
    )
    .bind(target)
    .execute(&app.pool)
    .await
    .unwrap();
    for i in 11..=24 {
        produce(&producer, &t, 5);
        tokio::time::sleep(Duration::from_millis(250)).await;
        round(i).await;
        let s = status(&app).await;
        if s.worst == "STOP" {
            assert!(s.reason.contains("no consumer owns it"), "{}", s.reason);
            stopped = true;
            break;
        }
        assert_eq!(s.worst, "STALL", "STALL until STOP: {}", s.reason);
    }
    assert!(stopped, "never reached STOP");

    // ERR for longer than the alert time: one incident with one finding, however many
    // more bad samples follow.
    let key = format!("kafka:{target}:{g}");
    let mut found = None;
    for i in 40..48 {
        found = sqlx::query_as::<_, (i64, i64)>(
            "SELECT id, number FROM incidents WHERE alert_group_key = $1",
        )
        .bind(&key)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        if found.is_some() {
            break;
        }
        // Still bad, but not for the whole alert time (1 s) yet.
        tokio::time::sleep(Duration::from_millis(400)).await;
        round(i).await;
    }
    let (inc_id, number) = found.expect("an incident for the group");
    let alerts = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM findings WHERE incident_id = $1 AND code = 'KAFKA_LAG_ALERT'",
        )
        .bind(inc_id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(alerts(app.pool.clone()).await, 1);
    round(25).await;
    round(26).await;
    assert_eq!(
        alerts(app.pool.clone()).await,
        1,
        "once per episode, no storm"
    );
    let (code, inc) = app
        .get(&admin, &format!("/api/v1/incidents/INC-{number}"))
        .await;
    assert_eq!(code, 200);
    assert!(
        inc["title"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Kafka consumer group {g} is ")),
        "{inc}"
    );

    // It catches up (offsets committed to the end): OK, caught up.
    let committer = group_client(&g);
    let (_, high) = committer
        .fetch_watermarks(&t, 0, Duration::from_secs(5))
        .unwrap();
    commit_as(&committer, &t, high);
    round(30).await;
    let s = status(&app).await;
    assert_eq!(s.status, "OK", "{}", s.reason);
    assert_eq!(s.total_lag, 0);
    assert_eq!(s.catch_up, "caught up");
    // Recovery is on the incident's timeline.
    let (_, inc) = app
        .get(&admin, &format!("/api/v1/incidents/INC-{number}"))
        .await;
    assert!(
        inc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "alert_resolved"
                && e["body"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("Consumer group {g} recovered"))),
        "{inc}"
    );

    // Offsets reset backwards: REWIND at once.
    commit_as(&committer, &t, 10);
    round(31).await;
    let s = status(&app).await;
    assert_eq!(s.worst, "REWIND", "{}", s.reason);
    assert_eq!(s.status, "ERR");

    // The API serves the same state, the list, and the series behind the graph.
    let (code, list) = app
        .get(&viewer, &format!("/api/v1/kafka/{target}/groups?sort=lag"))
        .await;
    assert_eq!(code, 200, "{list}");
    assert!(
        list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["group"] == g.as_str())
    );
    assert_eq!(list["last_round"]["ok"], true);
    let (code, one) = app
        .get(&viewer, &format!("/api/v1/kafka/{target}/groups/{g}"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(one["worst"], "REWIND");
    assert_eq!(one["verdicts"][0]["status"], "REWIND");
    let (code, series) = app
        .get(&viewer, &format!("/api/v1/kafka/{target}/groups/{g}/lag"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(series["rollup"], "raw");
    let points = series["points"].as_array().unwrap();
    assert!(points.len() >= 13, "{series}");
    // Per partition, aligned with the points (the small multiples): the last value of
    // partition 0 is the REWIND lag, and the partitions add up to the total at every point.
    let parts = series["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{series}");
    assert_eq!(parts[0]["topic"], t.as_str());
    let p0: Vec<i64> = parts[0]["lag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(p0.len(), points.len());
    assert_eq!(*p0.last().unwrap(), high - 10);
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p["lag"].as_i64().unwrap(), p0[i], "point {i}");
    }
    // The verdict band under the graph: the group was ERR (STALL, STOP, REWIND) in the
    // minute buckets of this run, and never worse than its worst.
    let band: Vec<&str> = series["band"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert!(band.contains(&"ERR"), "{series}");
    assert!(series["band"][0]["seconds"] == 60, "{series}");
    // The group's incident is drawn on the graph.
    assert!(
        series["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == format!("INC-{number}").as_str()),
        "{series}"
    );
    // A longer range is served from the 1-minute rollups, kept by every round.
    let from = (time::OffsetDateTime::now_utc() - time::Duration::hours(6))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, long) = app
        .get(
            &viewer,
            &format!("/api/v1/kafka/{target}/groups/{g}/lag?from={from}"),
        )
        .await;
    assert_eq!(code, 200, "{long}");
    assert_eq!(long["rollup"], "1m");
    let max = long["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(max >= 200, "{long}");
    // The 1-minute buckets keep each partition's highest lag too.
    let part_max = long["partitions"][0]["lag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(part_max, max, "one partition: its peak is the group's peak");
    let (code, _) = app
        .get(
            &viewer,
            &format!("/api/v1/kafka/{target}/groups?sort=bogus"),
        )
        .await;
    assert_eq!(code, 422);
    let (code, _) = app
        .get(
            &viewer,
            &format!("/api/v1/kafka/{target}/groups/{g}/lag?from=yesterday"),
        )
        .await;
    assert_eq!(code, 400);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dead_broker_round_is_recorded_and_skipped(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let res = app.plain().post(app.url("/api/v1/targets")).bearer_auth(&admin)
        .json(&json!({"name": "gone", "kind": "kafka", "connection": format!("127.0.0.1:{port}"), "environment": "test"}))
        .send().await.unwrap();
    let target = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let t0 = Instant::now();
    let r = svc::sample_round(
        &app.pool,
        &Access::default(),
        target,
        "h",
        Duration::from_secs(2),
        None,
    )
    .await
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(!r.ok);
    let (code, page) = app
        .get(&admin, &format!("/api/v1/kafka/{target}/groups"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(page["last_round"]["ok"], false);
    assert!(
        page["last_round"]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{page}"
    );
    assert_eq!(page["groups"].as_array().unwrap().len(), 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn leases_keep_two_replicas_off_the_same_target(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let target = kafka_target(&app, &admin, "events").await;
    let ttl = Duration::from_millis(800);
    assert!(
        svc::try_lease(&app.pool, target, "replica-a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !svc::try_lease(&app.pool, target, "replica-b", ttl)
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        svc::try_lease(&app.pool, target, "replica-a", ttl)
            .await
            .unwrap(),
        "a renews"
    );
    // a dies (stops renewing): b takes over once the lease expires.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        svc::try_lease(&app.pool, target, "replica-b", ttl)
            .await
            .unwrap()
    );
    assert!(
        !svc::try_lease(&app.pool, target, "replica-a", ttl)
            .await
            .unwrap()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn retention_prunes_raw_samples_and_each_rollup(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let target = kafka_target(&app, &admin, "events").await;
    sqlx::raw_sql(&format!(
        "INSERT INTO kafka_samples VALUES ({target}, 'g', 't', 0, now() - interval '3 days', 1, 2, 0),
                                          ({target}, 'g', 't', 0, now() - interval '1 hour', 1, 2, 0);
         INSERT INTO kafka_lag_rollups VALUES
            ({target}, 'g', 60, now() - interval '15 days', 1, 1, 1, 2, 1),
            ({target}, 'g', 60, now() - interval '13 days', 1, 1, 1, 2, 1),
            ({target}, 'g', 3600, now() - interval '399 days', 1, 1, 1, 2, 1),
            ({target}, 'g', 3600, now() - interval '401 days', 1, 1, 1, 2, 1);"
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    let r = svc::Retention {
        raw_hours: 48,
        minute_days: 14,
        ten_minute_days: 60,
        hour_days: 400,
    };
    svc::prune(&app.pool, r).await.unwrap();
    let left: Vec<(i32, i64)> =
        sqlx::query_as("SELECT resolution, count(*) FROM kafka_lag_rollups GROUP BY 1 ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(left, vec![(60, 1), (3600, 1)]);
    let raw: i64 = sqlx::query_scalar("SELECT count(*) FROM kafka_samples")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(raw, 1);
    assert_eq!(svc::resolution_for(time::Duration::minutes(15)), None);
    assert_eq!(svc::resolution_for(time::Duration::hours(24)), Some(60));
    assert_eq!(svc::resolution_for(time::Duration::days(7)), Some(600));
    assert_eq!(svc::resolution_for(time::Duration::days(30)), Some(3600));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_overview_sorts_by_every_column_and_pages_by_keyset(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let target = kafka_target(&app, &admin, "events").await;
    // name, lag, status, rank, time lag, members, state — with ties, to exercise the keyset.
    let rows = [
        ("a", 50, "OK", 0, Some(1.0), 2, "Stable"),
        ("b", 900, "ERR", 3, Some(600.0), 0, "Empty"),
        ("c", 50, "WARN", 2, None, 1, "Stable"),
        ("d", 0, "OK", 0, Some(0.0), 3, "Stable"),
        ("e", 7000, "ERR", 3, Some(3600.0), 1, "PreparingRebalance"),
        ("f", 120, "INCOMPLETE", 1, None, 0, "Empty"),
        ("g", 50, "OK", 0, Some(2.5), 2, "Stable"),
    ];
    for (name, lag, status, rank, tl, members, state) in rows {
        sqlx::query(
            "INSERT INTO kafka_groups (target_id, group_name, at, state, members, total_lag, time_lag_s, status, worst, reason, status_rank, member_count)
             VALUES ($1, $2, now(), $3, '[]', $4, $5, $6, $6, 'r', $7, $8)",
        )
        .bind(target).bind(name).bind(state).bind(lag as i64).bind(tl).bind(status).bind(rank as i16).bind(members)
        .execute(&app.pool).await.unwrap();
    }
    let walk = |sort: &'static str, order: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let mut names = vec![];
            let mut cursor: Option<String> = None;
            loop {
                let mut url =
                    format!("/api/v1/kafka/{target}/groups?sort={sort}&order={order}&limit=3");
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={}", probes::kafka::config::encode(c)));
                }
                let (code, page) = app.get(&admin, &url).await;
                assert_eq!(code, 200, "{page}");
                names.extend(
                    page["groups"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|g| g["group"].as_str().unwrap().to_string()),
                );
                assert!(
                    names.len() <= 7,
                    "paging does not advance: {names:?} ({sort} {order}) {page}"
                );
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            names.join("")
        }
    };
    assert_eq!(walk("lag", "desc").await, "ebfgcad");
    assert_eq!(walk("lag", "asc").await, "dacgfbe");
    assert_eq!(walk("group", "asc").await, "abcdefg");
    assert_eq!(walk("status", "desc").await, "ebcfgda");
    assert_eq!(walk("time_lag", "desc").await, "ebgadfc");
    assert_eq!(walk("members", "asc").await, "bfceagd");
    assert_eq!(walk("state", "asc").await, "bfeacdg");
    // The topic view: only the groups with partitions on the topic, worst first.
    sqlx::query("UPDATE kafka_groups SET verdicts = jsonb_build_array(jsonb_build_object('topic', 'orders', 'partition', 0, 'lag', 1)) WHERE group_name IN ('a', 'e')")
        .execute(&app.pool).await.unwrap();
    let on: Vec<String> =
        svc::groups_of_topic(&app.pool, &common::admin_principal(), target, "orders")
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.group)
            .collect();
    assert_eq!(on, vec!["e".to_string(), "a".to_string()]);
    let page = app
        .plain()
        .get(app.url(&format!("/kafka/{target}/topics/orders")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("data-group=\"e\"")
            && html.contains("data-group=\"a\"")
            && !html.contains("data-group=\"b\""),
        "{html}"
    );
}

/// Each rollup bucket keeps every partition's own peak (the small multiples beyond the raw
/// retention), position by position — not the last sample's values.
#[sqlx::test(migrations = "../migrations")]
async fn rollups_keep_each_partitions_peak(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let target = kafka_target(&app, &admin, "peaks").await;
    let t = common::unique("peaks");
    let g = common::unique("peaks-group");
    topic_with(&t, 3).await;
    let producer = producer();
    for (p, n) in [(0, 10), (1, 20), (2, 30)] {
        for i in 0..n {
            let v = format!("m{i}");
            producer
                .send(BaseRecord::<(), str>::to(&t).partition(p).payload(&v))
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let committer = group_client(&g);
    let commit = |offsets: [i64; 3]| {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets.iter().enumerate() {
            tpl.add_partition_offset(&t, p as i32, Offset::Offset(*o))
                .unwrap();
        }
        committer.commit(&tpl, CommitMode::Sync).unwrap();
    };
    let round = || ok_round(&app.pool, target);
    // Two rounds in the same hour bucket: lags 10/20/30, then 0/15/0.
    loop {
        commit([0, 0, 0]);
        round().await;
        commit([10, 5, 30]);
        round().await;
        let hours: Vec<f64> = sqlx::query_scalar(
            "SELECT DISTINCT floor(extract(epoch FROM sampled_at) / 3600)::float8 FROM kafka_rounds
             WHERE target_id = $1 AND sampled_at > now() - interval '1 minute'",
        )
        .bind(target)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if hours.len() == 1 {
            break;
        }
        sqlx::query("DELETE FROM kafka_lag_rollups WHERE target_id = $1")
            .bind(target)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let from = (time::OffsetDateTime::now_utc() - time::Duration::days(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, s) = app
        .get(
            &admin,
            &format!("/api/v1/kafka/{target}/groups/{g}/lag?from={from}"),
        )
        .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["rollup"], "1h");
    let last: Vec<i64> = s["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["lag"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        last,
        vec![10, 20, 30],
        "each partition's peak in the bucket: {s}"
    );
    assert_eq!(
        s["points"].as_array().unwrap().last().unwrap()["lag"],
        60,
        "the group's peak total"
    );
}

/// A Kafka target behind SASL_SSL with SCRAM-SHA-512: stored with its password sealed,
/// tested, and sampled by the background sampler's round; a wrong password makes the
/// round a recorded, skipped one that says why.
#[sqlx::test(migrations = "../migrations")]
async fn a_sasl_ssl_target_is_tested_and_sampled(pool: PgPool) {
    // The CA file is read from the directory the configuration allows.
    let ca_dir = std::path::Path::new(&env("KAFKA_CA"))
        .parent()
        .unwrap()
        .to_path_buf();
    let app = TestApp::spawn_with(pool, |c| c.target_files_dir = Some(ca_dir.clone())).await;
    let admin = app.create_token("a", Role::Admin).await;
    let password = env("KAFKA_SASL_PASSWORD");
    let conn = format!(
        "{}?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512&ssl.ca.location={}",
        env("KAFKA_SASL_SSL_BROKERS"),
        env("KAFKA_CA")
    );
    // A CA path outside that directory is refused, nothing written.
    let outside = conn.replace(&env("KAFKA_CA"), "/etc/passwd");
    let res = app.plain().post(app.url("/api/v1/targets")).bearer_auth(&admin)
        .json(&json!({"name": "secure-events", "kind": "kafka", "connection": outside, "environment": "test",
                      "username": env("KAFKA_SASL_USER"), "secret": password}))
        .send().await.unwrap();
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("LOOKOUT_TARGET_FILES_DIR")
    );
    assert_eq!(app.count("targets").await, 0);
    // SASL without its credentials is refused, nothing written.
    let res = app.plain().post(app.url("/api/v1/targets")).bearer_auth(&admin)
        .json(&json!({"name": "secure-events", "kind": "kafka", "connection": conn, "environment": "test"}))
        .send().await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("targets").await, 0);
    let res = app.plain().post(app.url("/api/v1/targets")).bearer_auth(&admin)
        .json(&json!({"name": "secure-events", "kind": "kafka", "connection": conn, "environment": "test",
                      "username": env("KAFKA_SASL_USER"), "secret": password}))
        .send().await.unwrap();
    assert_eq!(res.status(), 201);
    let body = res.text().await.unwrap();
    assert!(!body.contains(&password), "{body}");
    let target = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let res = app
        .plain()
        .post(app.url(&format!("/api/v1/targets/{target}/test")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert!(!report.to_string().contains(&password));

    let t = common::unique("secure");
    let g = common::unique("secure-group");
    topic(&t).await;
    let producer = producer();
    produce(&producer, &t, 25);
    let c = group_client(&g);
    commit_as(&c, &t, 5);
    let key = domain::secrets::SecretBox::from_config(common::TEST_SECRET_KEY).unwrap();
    let r = svc::sample_round(
        &app.pool,
        &Access {
            key: Some(key.clone()),
            reach: domain::reach::Reach {
                files_dir: Some(ca_dir.clone()),
                ..Default::default()
            },
        },
        target,
        "h",
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert!(r.ok, "{:?}", r.error);
    assert!(
        r.requests >= 11,
        "SCRAM adds its round trips: {}",
        r.requests
    );
    let s = svc::get_group(&app.pool, &common::admin_principal(), target, &g)
        .await
        .unwrap();
    assert_eq!(s.total_lag, 20);
    assert!(
        svc::sampled_targets(&app.pool)
            .await
            .unwrap()
            .iter()
            .any(|(id, _)| *id == target)
    );
    // A wrong password: the round is recorded as skipped, with the reason.
    let res = app
        .plain()
        .patch(app.url(&format!("/api/v1/targets/{target}")))
        .bearer_auth(&admin)
        .json(&json!({"secret": "not-the-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r = svc::sample_round(
        &app.pool,
        &Access {
            key: Some(key.clone()),
            reach: domain::reach::Reach {
                files_dir: Some(ca_dir.clone()),
                ..Default::default()
            },
        },
        target,
        "h",
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert!(!r.ok);
    let err = r.error.unwrap_or_default();
    assert!(err.contains("SASL SCRAM-SHA-512"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

/// The sampler's rebalance and dead-letter signs: a member joining and leaving between
/// rounds is a rebalance each time; the DLQ topics next to the topic read (the target's
/// `kafka-dlq-patterns` label) are counted every round with their growth.
#[sqlx::test(migrations = "../migrations")]
async fn rebalances_and_dead_letters_between_rounds(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let res = app.plain().post(app.url("/api/v1/targets")).bearer_auth(&admin)
        .json(&json!({"name": "signs", "kind": "kafka", "connection": common::kafka_brokers(), "environment": "test",
                      "labels": {"kafka-dlq-patterns": "{topic}.dlq,{topic}.errors"}}))
        .send().await.unwrap();
    assert_eq!(res.status(), 201);
    let target = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let t = common::unique("payments");
    let g = common::unique("payments-worker");
    for name in [
        t.clone(),
        format!("{t}.dlq"),
        format!("{t}.errors"),
        format!("{t}-dlq"),
    ] {
        topic(&name).await;
    }
    let producer = producer();
    produce(&producer, &t, 10);
    let committer = group_client(&g);
    commit_as(&committer, &t, 10);
    let round = || ok_round(&app.pool, target);
    let state = || {
        let pool = app.pool.clone();
        let g = g.clone();
        async move {
            svc::get_group(&pool, &common::admin_principal(), target, &g)
                .await
                .unwrap()
        }
    };
    round().await;
    let s = state().await;
    assert_eq!(s.rebalances_last_hour, 0);
    let dlqs: Vec<(&str, i64, Option<i64>)> = s
        .dlq
        .iter()
        .map(|d| (d.topic.as_str(), d.messages, d.growth))
        .collect();
    assert_eq!(
        dlqs,
        vec![
            (format!("{t}.dlq").as_str(), 0, None),
            (format!("{t}.errors").as_str(), 0, None)
        ],
        "the label's patterns, not the default '-dlq'"
    );
    produce(&producer, &format!("{t}.errors"), 7);
    round().await;
    let s = state().await;
    let errors = s.dlq.iter().find(|d| d.topic.ends_with(".errors")).unwrap();
    assert_eq!((errors.messages, errors.growth), (7, Some(7)));
    assert_eq!(errors.source, t);

    // A member joins: a new member set is a rebalance; it leaves: another.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .set("group.id", &g)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    member.subscribe(&[&t]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        let _ = member.poll(Duration::from_millis(100));
        assert!(Instant::now() < deadline, "no assignment");
    }
    round().await;
    let s = state().await;
    assert_eq!(s.members.len(), 1);
    assert_eq!(s.rebalances_last_hour, 1, "{s:?}");
    assert!(s.last_rebalance.is_some());
    round().await;
    assert_eq!(
        state().await.rebalances_last_hour,
        1,
        "no change, no rebalance"
    );
    member.unsubscribe();
    drop(member);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        round().await;
        let s = state().await;
        if s.members.is_empty() {
            assert_eq!(s.rebalances_last_hour, 2);
            break;
        }
        assert!(Instant::now() < deadline, "the member never left");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let errors = state()
        .await
        .dlq
        .into_iter()
        .find(|d| d.topic.ends_with(".errors"))
        .unwrap();
    assert_eq!(errors.growth, Some(0));
}

/// A group that reads three partitions but has committed on one only: its total lag is the
/// committed partition's, and the two others are shown as unknown — never as 0.
#[sqlx::test(migrations = "../migrations")]
async fn never_committed_partitions_are_shown_as_unknown_not_as_zero(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = app.create_token("a", Role::Admin).await;
    let target = kafka_target(&app, &admin, "events").await;
    let t = common::unique("three");
    let g = common::unique("partial");
    topic_with(&t, 3).await;
    let p = producer();
    for part in 0..3 {
        for i in 0..(10 + 50 * part) {
            let v = format!("m{i}");
            p.send(BaseRecord::<(), str>::to(&t).partition(part).payload(&v))
                .unwrap();
        }
    }
    p.flush(Duration::from_secs(10)).unwrap();
    // A live member owns all three partitions and commits partition 0 only (at 4 of 10).
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .set("group.id", &g)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    member.subscribe(&[&t]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().map(|a| a.count()).unwrap_or(0) < 3 {
        let _ = member.poll(Duration::from_millis(100));
        assert!(Instant::now() < deadline, "no assignment");
    }
    commit_as(&member, &t, 4);
    ok_round(&pool, target).await;
    let viewer = app.create_token("v", Role::Viewer).await;
    let (s, page) = app
        .get(&viewer, &format!("/api/v1/kafka/{target}/groups?limit=500"))
        .await;
    assert_eq!(s, 200, "{page}");
    let grp = page["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["group"] == g.as_str())
        .unwrap_or_else(|| panic!("{g} in {page}"));
    assert_eq!(grp["total_lag"], 6, "{grp}");
    assert_eq!(grp["lag_unknown_partitions"], 2, "{grp}");
    assert_eq!(grp["lag_unknown_messages"], 60 + 110, "{grp}");
    assert_eq!(grp["lag_upper_bound"], 6 + 170, "{grp}");
    let (_, one) = app
        .get(&viewer, &format!("/api/v1/kafka/{target}/groups/{g}"))
        .await;
    assert_eq!(one["lag_unknown_partitions"], 2, "{one}");
    // The pages say it in words, where the total is shown.
    let browser = app.signed_in("reader", Role::Viewer).await;
    let html = browser
        .get(app.url(&format!("/kafka/{target}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("6 + 2 partitions never committed (170 messages)"),
        "the overview says what is unknown: {}",
        html.find(&g)
            .map(|i| &html[i.saturating_sub(300)..(i + 700).min(html.len())])
            .unwrap_or("(group not on the page)")
    );
    let html = browser
        .get(app.url(&format!("/kafka/{target}/groups/{g}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("6 + 2 partitions never committed (170 messages)")
            && html.contains("at most 176 if the consumer starts from the earliest offset"),
        "the group page says what is unknown"
    );
    drop(member);
}

/// Two replicas share a healthy cluster and one that hangs (accepts connections, never
/// answers). The healthy target is sampled every interval, always by the same replica: the
/// hanging target's rounds neither delay it nor let any lease lapse, and the hanging target
/// itself stays with one replica while its rounds run over the lease's length.
#[sqlx::test(migrations = "../migrations")]
async fn a_hanging_cluster_delays_nobody_and_leases_hold(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = app.create_token("a", Role::Admin).await;
    let healthy = kafka_target(&app, &admin, "events").await;
    // A "broker" that accepts and then says nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let res = app
        .plain()
        .post(app.url("/api/v1/targets"))
        .bearer_auth(&admin)
        .json(&json!({"name": "stuck", "kind": "kafka", "connection": format!("127.0.0.1:{port}"), "environment": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let stuck = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let retention = svc::Retention {
        raw_hours: 48,
        minute_days: 14,
        ten_minute_days: 60,
        hour_days: 400,
    };
    let mut handles = vec![];
    for holder in ["replica-a", "replica-b"] {
        let mut s = server::workers::SamplerSettings::new(Duration::from_secs(1), retention, None);
        s.holder = holder.into();
        handles.push(
            server::workers::spawn_kafka_sampler(
                pool.clone(),
                Access::default(),
                s,
                stop_rx.clone(),
            )
            .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop_tx.send(true).unwrap();
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
    let rounds = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, i64)>(
                "SELECT count(*), count(*) FILTER (WHERE ok), count(DISTINCT holder) FROM kafka_rounds WHERE target_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (n, ok, holders) = rounds(healthy).await;
    assert!(
        ok >= 5,
        "the healthy cluster was sampled {ok} times in 7 s ({n} rounds)"
    );
    assert_eq!(holders, 1, "the healthy target stayed with one replica");
    let (n, ok, holders) = rounds(stuck).await;
    assert_eq!(ok, 0);
    assert!(
        n >= 1,
        "the hanging cluster's rounds are recorded as skipped"
    );
    assert_eq!(
        holders, 1,
        "the hanging target's lease was renewed while its rounds ran"
    );
    let stats = server::workers::stats();
    assert!(stats["kafka_sampler"].runs >= 6, "{stats:?}");
    assert!(stats["kafka_sampler"].failures >= 1, "{stats:?}");
}

/// A round writes in one transaction: one cancelled before it ends (here while its last
/// insert waits on a lock) leaves no samples, verdicts or rollups behind.
#[sqlx::test(migrations = "../migrations")]
async fn a_cancelled_round_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = app.create_token("a", Role::Admin).await;
    let target = kafka_target(&app, &admin, "events").await;
    let t = common::unique("atomic");
    let g = common::unique("atomic-group");
    topic(&t).await;
    produce(&producer(), &t, 20);
    commit_as(&group_client(&g), &t, 5);
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!(
                "SELECT count(*) FROM {table} WHERE target_id = $1"
            ))
            .bind(target)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Another session holds kafka_rounds: reads go on, the round's closing insert waits.
    use sqlx::{ConnectOptions, Connection};
    let mut blocker = pool.connect_options().connect().await.unwrap();
    let mut tx = blocker.begin().await.unwrap();
    sqlx::query("LOCK TABLE kafka_rounds IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(8),
        svc::sample_round(
            &pool,
            &Access::default(),
            target,
            "h",
            Duration::from_secs(5),
            None,
        ),
    )
    .await;
    assert!(
        r.is_err(),
        "the round was still waiting when it was cancelled"
    );
    tx.rollback().await.unwrap();
    for table in [
        "kafka_samples",
        "kafka_groups",
        "kafka_lag_rollups",
        "kafka_rounds",
    ] {
        assert_eq!(
            count(table).await,
            0,
            "{table} holds rows of a cancelled round"
        );
    }
    // The same round, not cancelled, writes them all.
    ok_round(&pool, target).await;
    for table in [
        "kafka_samples",
        "kafka_groups",
        "kafka_lag_rollups",
        "kafka_rounds",
    ] {
        assert!(count(table).await > 0, "{table} is empty after a round");
    }
}

/// A cluster reached at an allowed address that advertises its brokers at a disallowed one:
/// the sampler does not follow it there. A forwarder on 127.0.0.2 stands in front of the
/// test broker, which advertises 127.0.0.1.
#[sqlx::test(migrations = "../migrations")]
async fn advertised_brokers_outside_the_allowed_networks_are_not_contacted(pool: PgPool) {
    let broker: std::net::SocketAddr = common::kafka_brokers()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let front = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = front.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(broker).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let app = TestApp::spawn(pool.clone()).await;
    let admin = app.create_token("a", Role::Admin).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/targets"))
        .bearer_auth(&admin)
        .json(&json!({"name": "fronted", "kind": "kafka", "connection": front_addr.to_string(), "environment": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let target = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let reach = |nets: &str| Access {
        key: None,
        reach: domain::reach::Reach {
            networks: domain::reach::parse_networks(nets).unwrap(),
            ..Default::default()
        },
    };
    // Only the front door is allowed: the advertised broker is refused, by name.
    let r = svc::sample_round(
        &pool,
        &reach("127.0.0.2/32"),
        target,
        "h",
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert!(!r.ok);
    let e = r.error.unwrap_or_default();
    assert!(
        e.contains("127.0.0.1") && e.contains("outside the networks Lookout may reach"),
        "{e}"
    );
    // The same cluster with the broker's network allowed too is sampled (the forwarder works).
    let r = svc::sample_round(
        &pool,
        &reach("127.0.0.2/32, 127.0.0.1/32"),
        target,
        "h",
        Duration::from_secs(5),
        None,
    )
    .await
    .unwrap();
    assert!(r.ok, "{:?}", r.error);
}
