//! The Redis probe's key audit (issue 15) against real redis-server processes: the top keys
//! and pattern totals of a full audit are exact (checked against MEMORY USAGE of every key
//! read independently), a keyspace changing during the audit does not break it and the
//! result says so, the audit backs off when another client makes the server slow, and a
//! cluster of three primaries is audited node by node and merged.

mod common;

use common::*;
use probes::framework::{Finding, bytes, group};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

type Conn = redis::aio::MultiplexedConnection;

/// Every key's (MEMORY USAGE SAMPLES 0, PTTL), read independently of the probe.
async fn truth(c: &mut Conn) -> BTreeMap<String, (u64, i64)> {
    let mut out = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(c)
            .await
            .unwrap();
        for k in keys {
            let m: u64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&k)
                .arg("SAMPLES")
                .arg(0)
                .query_async(c)
                .await
                .unwrap();
            let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(c).await.unwrap();
            out.insert(k, (m, ttl));
        }
        cursor = next;
        if cursor == 0 {
            return out;
        }
    }
}

fn table<'a>(f: &'a Finding, starts: &str) -> &'a probes::framework::Table {
    f.tables
        .iter()
        .find(|t| t.title.starts_with(starts))
        .unwrap_or_else(|| {
            panic!(
                "no table {starts:?} in {:?}",
                f.tables.iter().map(|t| &t.title).collect::<Vec<_>>()
            )
        })
}

/// A mixed keyspace: 3,000 small strings in three patterns (one with TTLs), and one big key
/// of every type, of different sizes.
async fn mixed(c: &mut Conn) {
    let mut p = redis::pipe();
    for i in 0..3000 {
        match i % 3 {
            0 => p
                .cmd("SET")
                .arg(format!("session:{i}"))
                .arg("s".repeat(40 + i % 50))
                .arg("EX")
                .arg(3600)
                .ignore(),
            1 => p
                .cmd("SET")
                .arg(format!("user:{i}"))
                .arg("u".repeat(20 + i % 30))
                .ignore(),
            _ => p.cmd("SET").arg(format!("counter:{i}")).arg(i).ignore(),
        };
    }
    for e in 0..3000 {
        p.cmd("HSET")
            .arg("big:hash")
            .arg(format!("f{e}"))
            .arg("h".repeat(30))
            .ignore();
        if e < 2500 {
            p.cmd("ZADD")
                .arg("big:zset")
                .arg(e)
                .arg(format!("m{e:0>20}"))
                .ignore();
        }
        if e < 2000 {
            p.cmd("SADD")
                .arg("big:set")
                .arg(format!("{e:0>30}"))
                .ignore();
        }
        if e < 1500 {
            p.cmd("RPUSH").arg("big:list").arg("l".repeat(60)).ignore();
        }
        if e < 1000 {
            p.cmd("XADD")
                .arg("big:stream")
                .arg("*")
                .arg("v")
                .arg("x".repeat(40))
                .ignore();
        }
    }
    p.cmd("SET")
        .arg("big:string")
        .arg("b".repeat(150_000))
        .ignore();
    let _: () = p.query_async(c).await.unwrap();
}

/// `n` small keys `k:0` … (one pipeline).
async fn keys(c: &mut Conn, n: u32) {
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("k:{i}")).arg("v").ignore();
    }
    let _: () = p.query_async(c).await.unwrap();
}

#[tokio::test]
async fn a_full_audit_is_exact() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    mixed(&mut c).await;
    let want = truth(&mut c).await;
    let o = run("redis", &r.url(), &[("rate_interval_s", "1")]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(fact(k, "mode"), "every key");
    assert_eq!(fact(k, "keys read"), want.len().to_string());
    let biggest = want.iter().max_by_key(|(_, v)| v.0).unwrap().0;
    assert!(
        k.title.starts_with(&format!(
            "Audited every key: 3,006 keys in db0; biggest: {biggest} ("
        )),
        "{}",
        k.title
    );

    // The top 20, in order, with their sizes: exactly the truth's.
    let mut by_size: Vec<(&String, &(u64, i64))> = want.iter().collect();
    by_size.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let top = table(k, "Top 20 keys by memory (every key read: exact)");
    let got: Vec<(String, String)> = top
        .rows
        .iter()
        .map(|r| (r[0].clone(), r[3].clone()))
        .collect();
    let expected: Vec<(String, String)> = by_size
        .iter()
        .take(20)
        .map(|(k, (m, _))| ((*k).clone(), bytes(*m)))
        .collect();
    assert_eq!(got, expected);
    // The six big keys lead, each with its type and encoding.
    let types: Vec<&str> = top.rows.iter().take(6).map(|r| r[1].as_str()).collect();
    for t in ["string", "hash", "list", "set", "zset", "stream"] {
        assert!(types.contains(&t), "{types:?}");
    }
    assert!(
        top.rows.iter().take(6).all(|r| !r[2].is_empty()),
        "encodings: {:?}",
        top.rows
    );

    // Pattern totals and TTL coverage: the sums of MEMORY USAGE over the pattern's keys.
    let pats = table(k, "Key patterns by memory (every key: exact totals)");
    for (pattern, prefix) in [
        ("session:*", "session:"),
        ("user:*", "user:"),
        ("counter:*", "counter:"),
        ("big:*", "big:"),
    ] {
        let keys: Vec<&(u64, i64)> = want
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .collect();
        let sum: u64 = keys.iter().map(|v| v.0).sum();
        let no_ttl = keys.iter().filter(|v| v.1 == -1).count();
        let row = pats
            .rows
            .iter()
            .find(|r| r[0] == pattern)
            .unwrap_or_else(|| panic!("{pattern}: {:?}", pats.rows));
        assert_eq!(row[1], group(keys.len() as u64), "{pattern}");
        assert_eq!(row[2], bytes(sum), "{pattern}");
        assert_eq!(
            row[4],
            format!("{:.0}%", no_ttl as f64 * 100.0 / keys.len() as f64),
            "{pattern}"
        );
    }
    // The type mix, every key counted once.
    let t = table(k, "Types (every key)");
    let strings = t.rows.iter().find(|r| r[0] == "string").unwrap();
    assert_eq!(strings[1], "3,001");
    // What the audit did to the server is on the record.
    let load = table(k, "Load on the target during the audit");
    assert_eq!(load.rows.len(), 1);
    assert_eq!(load.rows[0][1], "50,000/s", "the default pace");
    assert!(
        fact(k, "keyspace during the audit")
            .starts_with("DBSIZE 3,006 before, 3,006 after; 0 key(s) gone")
    );
}

#[tokio::test]
async fn a_keyspace_changing_during_the_audit() {
    let r = TestRedis::start();
    keys(&mut r.conn().await, 40_000).await;
    // Another client adds, deletes and expires keys the whole time.
    let mut w = r.conn().await;
    let churn = tokio::spawn(async move {
        let mut i = 0u64;
        loop {
            let mut p = redis::pipe();
            for j in 0..50 {
                let n = i * 50 + j;
                p.cmd("SET").arg(format!("new:{n}")).arg("x").ignore();
                p.cmd("DEL")
                    .arg(format!("k:{}", (n * 7919) % 40_000))
                    .ignore();
                p.cmd("SET")
                    .arg(format!("short:{n}"))
                    .arg("y")
                    .arg("PX")
                    .arg(5)
                    .ignore();
            }
            let _: Result<(), _> = p.query_async(&mut w).await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let o = run(
        "redis",
        &r.url(),
        &[("rate_interval_s", "1"), ("max_commands_per_sec", "40000")],
    )
    .await;
    churn.abort();
    assert!(o.is_ok(), "{:?}", o.result);
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(fact(k, "mode"), "every key");
    assert!(
        k.title.contains("(taken while the keyspace changed)"),
        "{}",
        k.title
    );
    let during = fact(k, "keyspace during the audit");
    assert!(
        !during.contains("; 0 key(s) gone"),
        "keys deleted or expired under it: {during}"
    );
    let keys_read: u64 = fact(k, "keys read").parse().unwrap();
    assert!(keys_read > 30_000, "{keys_read}");
}

/// The Redis probe, a connection to `url` and its parameters at `pace` commands/s, for a
/// test that runs it with a progress sink or a cancel of its own.
fn paced_probe(
    url: &str,
    pace: &str,
) -> (
    &'static dyn probes::framework::Probe,
    probes::framework::Connection,
    probes::framework::Params,
) {
    let spec = probes::registry::find("redis").unwrap();
    let prm = probes::framework::validate_params(
        spec.spec(),
        &params(&[("rate_interval_s", "1"), ("max_commands_per_sec", pace)]),
    )
    .unwrap();
    let conn = probes::framework::Connection {
        allowed: vec![],
        url: url.into(),
        display: url.into(),
    };
    (spec, conn, prm)
}

/// Keeps every progress line the run published for the "Audit keys" step.
#[derive(Default)]
struct Lines(std::sync::Mutex<Vec<String>>);
impl probes::framework::ProgressSink for Lines {
    fn progress(&self, p: &probes::framework::Progress) {
        if let Some(d) = p
            .steps
            .iter()
            .find(|s| s.name == "Audit keys")
            .and_then(|s| s.detail.clone())
        {
            let mut v = self.0.lock().unwrap();
            if v.last() != Some(&d) {
                v.push(d);
            }
        }
    }
}

#[tokio::test]
async fn the_audit_shows_its_progress_live() {
    let r = TestRedis::start();
    keys(&mut r.conn().await, 20_000).await;
    let (spec, conn, prm) = paced_probe(&r.url(), "30000");
    let lines = std::sync::Arc::new(Lines::default());
    let o = probes::framework::run(
        spec,
        &conn,
        &prm,
        tokio_util::sync::CancellationToken::new(),
        lines.clone(),
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    let lines = lines.0.lock().unwrap().clone();
    // 60,000 commands at 30,000/s: about two seconds, a line every quarter of one.
    assert!(lines.len() >= 4, "{lines:?}");
    let first = &lines[0];
    assert!(
        first.contains("visited ")
            && first.contains(" of 20,000 keys (")
            && first.contains(" keys/s · pace 30,000/s · target PING "),
        "{first}"
    );
    let pct = |l: &str| -> u64 {
        l.split(" keys (")
            .nth(1)
            .unwrap()
            .split('%')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(pct(first) < pct(lines.last().unwrap()), "{lines:?}");
}

/// The server's connected clients and commands processed so far.
async fn clients_and_commands(c: &mut Conn) -> (u64, u64) {
    let info: String = redis::cmd("INFO").query_async(c).await.unwrap();
    let info = probes::redis::probe::parse_info(&info);
    let num = |k: &str| -> u64 { info[k].parse().unwrap() };
    (num("connected_clients"), num("total_commands_processed"))
}

#[tokio::test]
async fn a_cancelled_audit_stops_sending_at_once() {
    let r = TestRedis::start();
    let mut c = r.conn().await;
    keys(&mut c, 20_000).await;
    // 60,000 commands at 3,000/s: twenty seconds if it were not cancelled.
    let (spec, conn, prm) = paced_probe(&r.url(), "3000");
    let cancel = tokio_util::sync::CancellationToken::new();
    let lines = std::sync::Arc::new(Lines::default());
    let run = tokio::spawn({
        let cancel = cancel.clone();
        let lines = lines.clone();
        async move { probes::framework::run(spec, &conn, &prm, cancel, lines).await }
    });
    // Wait until the walk is under way, then cancel.
    let t = Instant::now();
    while lines.0.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (during, _) = clients_and_commands(&mut c).await;
    assert!(during >= 3, "the audit's connections: {during}");
    cancel.cancel();
    let t = Instant::now();
    let o = run.await.unwrap();
    assert!(o.cancelled(), "{:?}", o.result);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Its connections close and no command of it reaches the server afterwards.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after, n1) = clients_and_commands(&mut c).await;
    assert_eq!(after, 1, "only this test's connection is left");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, n2) = clients_and_commands(&mut c).await;
    assert_eq!(n2, n1 + 1, "only this test's INFO in half a second");
}

#[tokio::test]
async fn the_audit_backs_off_when_the_server_slows_down() {
    let r = TestRedis::start();
    keys(&mut r.conn().await, 20_000).await;
    // For four seconds, another client keeps the server busy with Lua loops of ~50 ms.
    let mut busy = r.conn().await;
    let hog = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            let _: Result<i64, _> = redis::cmd("EVAL")
                .arg("local i = 0 while i < 10000000 do i = i + 1 end return i")
                .arg(0)
                .query_async(&mut busy)
                .await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let t = Instant::now();
    let o = run(
        "redis",
        &r.url(),
        &[
            ("rate_interval_s", "1"),
            ("max_commands_per_sec", "100000"),
            ("step_timeout_s", "20"),
        ],
    )
    .await;
    hog.abort();
    assert!(o.is_ok(), "{:?}", o.result);
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(
        fact(k, "keys read"),
        "20000",
        "the audit still reads every key"
    );
    let load = &table(k, "Load on the target during the audit").rows[0];
    assert!(load[2].contains("(down to "), "it backed off: {load:?}");
    // It slowed itself down: 60,000 commands at 100,000/s would take under a second.
    assert!(t.elapsed() > Duration::from_secs(2), "{:?}", t.elapsed());
    let p99: f64 = load[4]
        .split(" / ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!(p99 > 10.0, "the slowness it saw: {load:?}");
}

/// The cluster slot of a key (CRC16/XMODEM of the key or its hash tag, mod 16384).
fn slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let b = match (
        key.find('{'),
        key.find('{')
            .and_then(|s| key[s + 1..].find('}').map(|e| s + 1 + e)),
    ) {
        (Some(s), Some(e)) if e > s + 1 => &b[s + 1..e],
        _ => b,
    };
    let mut crc: u16 = 0;
    for &x in b {
        crc ^= (x as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[tokio::test]
async fn a_cluster_of_three_primaries_is_audited_and_merged() {
    let nodes: Vec<TestRedis> = (0..3)
        .map(|_| {
            TestRedis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli (Debian package redis-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut conns = vec![];
    for n in &nodes {
        conns.push(n.conn().await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for c in conns.iter_mut() {
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(c)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form: {info}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Which node owns which slot.
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conns[0])
        .await
        .unwrap();
    let mut owner = vec![usize::MAX; 16384];
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port: u16 = f[1]
            .split(['@', ','])
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let node = nodes.iter().position(|n| n.port == port).unwrap();
        for range in &f[8..] {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            owner[a..=b].fill(node);
        }
    }
    // 900 small keys spread over the nodes, and a big key of a different size on each.
    let mut per_node = [0u64; 3];
    for i in 0..900 {
        let k = format!("item:{i}");
        let n = owner[slot(&k) as usize];
        per_node[n] += 1;
        let _: () = redis::cmd("SET")
            .arg(&k)
            .arg("v".repeat(20))
            .query_async(&mut conns[n])
            .await
            .unwrap();
    }
    let mut big: Vec<(String, usize, usize)> = vec![];
    for t in 0.. {
        let key = format!("big:{{t{t}}}");
        let n = owner[slot(&key) as usize];
        if big.iter().any(|(_, o, _)| *o == n) {
            continue;
        }
        let size = 50_000 * (big.len() + 1);
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("b".repeat(size))
            .query_async(&mut conns[n])
            .await
            .unwrap();
        big.push((key, n, size));
        if big.len() == 3 {
            break;
        }
    }
    assert!(per_node.iter().all(|n| *n > 200), "{per_node:?}");

    let o = run("redis", &nodes[0].url(), &[("rate_interval_s", "1")]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    let k = finding(&o, "REDIS_KEYSPACE_SAMPLE");
    assert_eq!(fact(k, "mode"), "every key");
    assert_eq!(fact(k, "keys read"), "903");
    assert!(k.title.contains("903 keys in 3 primaries"), "{}", k.title);
    let primaries = fact(k, "primaries audited");
    for a in &addrs {
        assert!(primaries.contains(a.as_str()), "{primaries}");
    }
    // The top keys merged across the shards, biggest first.
    let top = table(k, "Top 20 keys by memory");
    let first3: Vec<&str> = top.rows.iter().take(3).map(|r| r[0].as_str()).collect();
    let mut want: Vec<&(String, usize, usize)> = big.iter().collect();
    want.sort_by_key(|b| std::cmp::Reverse(b.2));
    assert_eq!(
        first3,
        want.iter().map(|b| b.0.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(
        table(k, "Load on the target").rows.len(),
        3,
        "each primary's load"
    );
    let item = table(k, "Key patterns")
        .rows
        .iter()
        .find(|r| r[0] == "item:*")
        .cloned()
        .unwrap();
    assert_eq!(item[1], "900");
}
