//! Benchmark for the Kafka lag figures of the issue:
//! 1. one sampler round over 1,000 groups × 10 partitions on one local broker (< 2 s), the
//!    number of Kafka requests it made, and the same lag numbers computed the way most
//!    scripts do it (confluent-kafka Python: describe + offsets per group, watermarks per
//!    partition), with the ratio;
//! 2. the Kafka overview sorted by lag over 50,000 groups (p99 < 100 ms);
//! 3. a 30-day lag graph of a 100-partition group, rendered by the server from the rollups
//!    (< 100 ms).
//!
//! Run with `scripts/bench-kafka` (throwaway PostgreSQL and Kafka, the Python peer in a
//! venv), or by hand with DATABASE_URL, KAFKA_BROKERS and PEER_PYTHON set:
//!   cargo run --release -p server --example bench_kafka
//! It creates its own database `lookout_bench_kafka` and its own topics and groups
//! (prefixed `bench-<time>`), serves the real router on a loopback port and measures
//! sequential requests over HTTP (client and server share the machine's two cores).

#[path = "support/bench.rs"]
#[allow(dead_code)]
mod bench;

use bench::{fresh_database, header, measure, pct, row, serve, site_dir};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SAMPLES: usize = 200;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Topics, messages and committed offsets for `groups` groups of `parts` partitions each
/// (group i reads topic i % topics; its commits leave a lag that differs per partition).
async fn seed_kafka(brokers: &str, prefix: &str, groups: usize, topics: usize, parts: i32) {
    let t = Instant::now();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let names: Vec<String> = (0..topics).map(|i| format!("{prefix}-t{i}")).collect();
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, parts, TopicReplication::Fixed(1)))
        .collect();
    for chunk in new.chunks(50) {
        for r in admin
            .create_topics(
                chunk,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
            )
            .await
            .expect("create topics")
        {
            r.expect("topic");
        }
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    for n in &names {
        for p in 0..parts {
            for i in 0..200 {
                let v = format!("bench message {i}");
                loop {
                    match producer.send(BaseRecord::<(), str>::to(n).partition(p).payload(&v)) {
                        Ok(()) => break,
                        Err(_) => {
                            producer.poll(Duration::from_millis(10));
                        }
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    // Commits: one client per group (the group id is per client), eight at a time.
    let jobs: Vec<(String, String)> = (0..groups)
        .map(|g| (format!("{prefix}-g{g:05}"), names[g % topics].clone()))
        .collect();
    let mut handles = vec![];
    for chunk in jobs.chunks(groups.div_ceil(8).max(1)) {
        let chunk = chunk.to_vec();
        let brokers = brokers.to_string();
        handles.push(tokio::task::spawn_blocking(move || {
            for (i, (g, topic)) in chunk.iter().enumerate() {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("group.id", g)
                    .create()
                    .expect("consumer");
                let mut tpl = TopicPartitionList::new();
                for p in 0..parts {
                    let off = ((i as i64 * 7 + p as i64 * 13) % 190) + 1;
                    tpl.add_partition_offset(topic, p, Offset::Offset(off))
                        .expect("tpl");
                }
                c.commit(&tpl, CommitMode::Sync).expect("commit");
            }
        }));
    }
    for h in handles {
        h.await.expect("commit task");
    }
    println!(
        "  Kafka seeded in {:.1} s: {topics} topics × {parts} partitions × 200 messages, {groups} groups with commits",
        t.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let brokers = std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS");
    let groups = env_usize("BENCH_GROUPS", 1000);
    let topics = env_usize("BENCH_TOPICS", 100);
    let parts = env_usize("BENCH_PARTITIONS", 10) as i32;
    let overview_groups = env_usize("BENCH_OVERVIEW_GROUPS", 50_000);

    let pool = fresh_database("lookout_bench_kafka").await;

    // 1. Sampler round vs the Python peer.
    let prefix = format!(
        "bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    println!("seeding Kafka ({brokers}) …");
    seed_kafka(&brokers, &prefix, groups, topics, parts).await;
    let target: i64 = sqlx::query_scalar(
        "INSERT INTO targets (name, kind, connection, environment, created_by)
         VALUES ('bench-kafka', 'kafka', $1, 'bench', 'bench') RETURNING id",
    )
    .bind(&brokers)
    .fetch_one(&pool)
    .await
    .expect("target");
    println!(
        "\nsampler rounds (sample_round: observe, store samples and rollups, evaluate, upsert states, alert policy)"
    );
    println!(
        "{:>5} {:>9} {:>7} {:>10} {:>9}",
        "round", "ms", "groups", "partitions", "requests"
    );
    let mut durations = vec![];
    let mut requests = 0;
    for i in 0..20 {
        let r = domain::services::kafka_lag::sample_round(
            &pool,
            &domain::reach::Access::default(),
            target,
            "bench",
            Duration::from_secs(10),
            Some(Duration::from_secs(600)),
        )
        .await
        .expect("round");
        assert!(r.ok, "round {i}: {:?}", r.error);
        println!(
            "{:>5} {:>9.0} {:>7} {:>10} {:>9}",
            i,
            r.duration.as_secs_f64() * 1000.0,
            r.groups,
            r.partitions,
            r.requests
        );
        // Steady state: the evaluation window (10 rounds) is full.
        if i >= 10 {
            durations.push(r.duration);
        }
        requests = r.requests;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    durations.sort();
    let ours_ms = pct(&durations, 0.5);
    println!(
        "steady rounds (11–20, window full): p50 {:.0} ms, max {:.0} ms, {requests} Kafka requests per round",
        ours_ms,
        pct(&durations, 1.0)
    );
    // Lookout's numbers, for the comparison.
    let ours: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT group_name, total_lag FROM kafka_groups WHERE target_id = $1 AND group_name LIKE $2",
    )
    .bind(target)
    .bind(format!("{prefix}-%"))
    .fetch_all(&pool)
    .await
    .expect("lags")
    .into_iter()
    .collect();
    assert_eq!(ours.len(), groups, "every seeded group was sampled");
    // Observation only (no PostgreSQL): the Kafka side of a round.
    let mut obs = vec![];
    for _ in 0..10 {
        let t = Instant::now();
        let s =
            probes::kafka::lag::sample_cluster(&brokers, Duration::from_secs(10), 100_000, "", &[])
                .await
                .expect("observe");
        obs.push(t.elapsed());
        assert!(s.groups.len() >= groups);
    }
    obs.sort();
    println!(
        "observation alone (ListGroups … ListOffsets, no storage): p50 {:.0} ms, max {:.0} ms",
        pct(&obs, 0.5),
        pct(&obs, 1.0)
    );
    match std::env::var("PEER_PYTHON") {
        Err(_) => println!("PEER_PYTHON not set: the confluent-kafka peer is skipped"),
        Ok(py) => {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/bench/kafka_lag_peer.py"
            );
            let out = std::process::Command::new(py)
                .arg(script)
                .arg(&brokers)
                .arg(format!("{prefix}-"))
                .output()
                .expect("run the peer");
            assert!(
                out.status.success(),
                "peer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("peer output");
            let peer_s = v["elapsed_s"].as_f64().unwrap_or(0.0);
            let peer_lags = v["lags"].as_object().cloned().unwrap_or_default();
            let same = peer_lags
                .iter()
                .filter(|(g, l)| ours.get(*g).copied() == l.as_i64())
                .count();
            println!(
                "confluent-kafka peer (Python, per group): {:.0} ms for {} groups, {} Kafka requests",
                peer_s * 1000.0,
                v["groups"],
                v["requests"]
            );
            println!(
                "same lag per group: {same} of {} (Lookout total {}, peer total {})",
                peer_lags.len(),
                ours.values().sum::<i64>(),
                peer_lags.values().filter_map(|l| l.as_i64()).sum::<i64>()
            );
            println!(
                "ratio peer / Lookout round: {:.1}x (Lookout's round includes storing and evaluating)",
                peer_s * 1000.0 / ours_ms
            );
        }
    }

    // 2. Overview over 50,000 groups (a second, synthetic target: the states the sampler
    // writes, seeded in SQL).
    println!("\nseeding {overview_groups} group states …");
    let t = Instant::now();
    let big: i64 = sqlx::query_scalar(
        "INSERT INTO targets (name, kind, connection, environment, created_by)
         VALUES ('bench-big', 'kafka', '127.0.0.1:9', 'bench', 'bench') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("target");
    bench::seed_group_states(&pool, big, overview_groups as i32).await;
    sqlx::query("ANALYZE kafka_groups")
        .execute(&pool)
        .await
        .expect("analyze");
    println!("  seeded in {:.1} s", t.elapsed().as_secs_f64());

    let (base, token) = serve(&pool, &site_dir()).await;
    let c = reqwest::Client::new();
    header(SAMPLES);
    let api = format!("{base}/api/v1/kafka/{big}/groups");
    row(
        "overview API, sort=lag desc, first page (50)",
        measure(&c, &format!("{api}?sort=lag&limit=50"), &token, SAMPLES).await,
    );
    // A deep page: follow the cursor 500 pages down.
    let mut cursor = String::new();
    for _ in 0..500 {
        let v: serde_json::Value = c
            .get(format!(
                "{api}?sort=lag&limit=50&cursor={}",
                probes::kafka::config::encode(&cursor)
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        match v["next_cursor"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    row(
        "overview API, sort=lag desc, page 501 (keyset cursor)",
        measure(
            &c,
            &format!(
                "{api}?sort=lag&limit=50&cursor={}",
                probes::kafka::config::encode(&cursor)
            ),
            &token,
            SAMPLES,
        )
        .await,
    );
    for sort in ["time_lag", "status", "members", "group", "state"] {
        row(
            &format!("overview API, sort={sort}, first page"),
            measure(&c, &format!("{api}?sort={sort}&limit=50"), &token, SAMPLES).await,
        );
    }
    row(
        "overview page SSR (/kafka/{target}, sorted by lag)",
        measure(&c, &format!("{base}/kafka/{big}"), &token, SAMPLES).await,
    );

    // 3. A 30-day graph of a 100-partition group: 720 hourly buckets with the group's totals
    // and each partition's peak (what 30 days of rounds leave in the 1-hour rollups), plus
    // an incident in the range.
    let t = Instant::now();
    sqlx::query(
        "INSERT INTO kafka_lag_rollups (target_id, group_name, resolution, bucket, lag_max, lag_sum, samples,
             end_max, committed_max, part_keys, part_lag)
         SELECT $1, 'graph-100', 3600, date_trunc('hour', now()) - make_interval(hours => h),
             (SELECT sum((h * 37 + p * 101) % 5000) FROM generate_series(0, 99) p), 0, 120,
             1000000 + (720 - h) * 3600, 990000 + (720 - h) * 3600,
             ARRAY(SELECT 'orders/' || p FROM generate_series(0, 99) p),
             ARRAY(SELECT ((h * 37 + p * 101) % 5000)::bigint FROM generate_series(0, 99) p)
         FROM generate_series(0, 719) h",
    )
    .bind(big)
    .execute(&pool)
    .await
    .expect("seed rollups");
    sqlx::query(
        "INSERT INTO kafka_groups (target_id, group_name, at, state, protocol, members, partitions, total_lag,
             time_lag_s, time_lag_kind, status, worst, reason, catch_up, verdicts, trend, status_rank, member_count)
         SELECT $1, 'graph-100', now(), 'Stable', 'range', '[]', 100, 250000, 42.0, 'exact', 'WARN', 'WARN',
             'partition 3 lag never decreased across 10 samples', 'falling behind by 120 msg/s',
             (SELECT jsonb_agg(jsonb_build_object('topic', 'orders', 'partition', p, 'status', 'WARN',
                 'reason', 'lag never decreased', 'committed', 990000, 'end', 992500, 'start', 0, 'lag', 2500,
                 'time_lag_s', 42.0, 'time_lag_kind', 'exact')) FROM generate_series(0, 99) p),
             '{}', 2, 0",
    )
    .bind(big)
    .execute(&pool)
    .await
    .expect("seed group");
    sqlx::query(
        "INSERT INTO incidents (title, summary, severity, status, services, environment, labels, created_by,
             detected_at, alert_group_key)
         VALUES ('orders consumers lagging', '', 'SEV2', 'investigating', '{orders}', 'bench', '{}', 'bench',
             now() - interval '5 days', $1)",
    )
    .bind(format!("kafka:{big}:graph-100"))
    .execute(&pool)
    .await
    .expect("seed incident");
    println!(
        "\n30-day graph: 720 hourly buckets × 100 partitions seeded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let from = (time::OffsetDateTime::now_utc() - time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    let series: serde_json::Value = c
        .get(format!(
            "{base}/api/v1/kafka/{big}/groups/graph-100/lag?from={}",
            probes::kafka::config::encode(&from)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("series")
        .json()
        .await
        .expect("json");
    assert_eq!(series["rollup"], "1h");
    assert_eq!(series["partitions"].as_array().map(Vec::len), Some(100));
    assert!(series["points"].as_array().map(Vec::len).unwrap_or(0) >= 719);
    assert_eq!(series["annotations"].as_array().map(Vec::len), Some(1));
    row(
        "lag series API, 30 days, 100 partitions (1h rollups)",
        measure(
            &c,
            &format!(
                "{base}/api/v1/kafka/{big}/groups/graph-100/lag?from={}",
                probes::kafka::config::encode(&from)
            ),
            &token,
            SAMPLES,
        )
        .await,
    );
    let page = c
        .get(format!("{base}/kafka/{big}/groups/graph-100?range=30d"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert_eq!(
        page.matches(" · orders</span>").count(),
        100,
        "100 small multiples on the page"
    );
    assert!(page.contains("mark-span"), "the incident is drawn");
    row(
        "group page SSR, range=30d (2 charts + 100 small multiples)",
        measure(
            &c,
            &format!("{base}/kafka/{big}/groups/graph-100?range=30d"),
            &token,
            SAMPLES,
        )
        .await,
    );
}
