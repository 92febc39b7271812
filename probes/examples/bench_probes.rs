//! Benchmarks of the Redis and PostgreSQL probes (figures recorded in BENCHMARKS.md).
//!
//! Redis: starts its own redis-server on a random loopback port, loads 1,000,000 keys
//! (patterns of different sizes and TTLs, 20 big keys among them), then runs the probe with
//! its defaults three times and `redis-cli --memkeys` once on the same data, and compares.
//! PostgreSQL: creates a `lookout_bench_probe` database with 1,000 tables (each with an
//! index and rows, stats analysed) and runs the probe five times.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres \
//!       cargo run --release -p probes --example bench_probes`

use probes::framework::{self, Connection, RunOutcome};
use sqlx::{Connection as _, Executor, PgConnection};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn run(probe: &str, url: &str, raw: &[(&str, &str)]) -> (RunOutcome, Duration) {
    let p = probes::registry::find(probe).expect("probe");
    let params: BTreeMap<String, String> = raw
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let prm = framework::validate_params(p.spec(), &params).expect("params");
    let conn = Connection {
        allowed: vec![],
        url: url.into(),
        display: url.into(),
    };
    let t = Instant::now();
    let o = framework::run(p, &conn, &prm, CancellationToken::new(), Arc::new(())).await;
    (o, t.elapsed())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

#[tokio::main]
async fn main() {
    redis_bench().await;
    postgres_bench().await;
}

async fn redis_bench() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("lookout-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--maxmemory", "4gb", "--maxmemory-policy", "allkeys-lru"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let url = format!("redis://127.0.0.1:{port}/0");
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut c = loop {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t = Instant::now();
    // 1,000,000 keys: sessions (TTL), cache entries (TTL), users (no TTL), counters,
    // hashes; plus 20 big keys (100 KB – 2 MB strings and hashes).
    let mut n = 0u64;
    let patterns: [(&str, usize, Option<u64>); 5] = [
        ("session:", 200, Some(86_400)),
        ("cache:product:", 400, Some(3_600)),
        ("user:", 120, None),
        ("counter:", 8, None),
        ("feed:", 60, None),
    ];
    let mut i = 0u64;
    while n < 1_000_000 - 20 {
        let mut p = redis::pipe();
        for _ in 0..2000 {
            let (prefix, size, ttl) = patterns[(i % 5) as usize];
            let key = format!("{prefix}{i}");
            let value = "v".repeat(size + (i % 37) as usize);
            match ttl {
                Some(t) => p.cmd("SET").arg(&key).arg(value).arg("EX").arg(t).ignore(),
                None => p.cmd("SET").arg(&key).arg(value).ignore(),
            };
            i += 1;
            n += 1;
        }
        let _: () = p.query_async(&mut c).await.expect("load");
    }
    for b in 0..20u64 {
        let size = 100_000 + b as usize * 100_000;
        let _: () = redis::cmd("SET")
            .arg(format!("blob:report:{b}"))
            .arg("x".repeat(size))
            .query_async(&mut c)
            .await
            .expect("big");
    }
    println!(
        "redis: loaded 1,000,000 keys in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    println!(
        "\nRedis probe, default parameters (sample 10,000 keys, pace 20,000 commands/s, 3 s rate window)"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>14} {:>12}",
        "run", "wall s", "commands", "commands/s", "sample s"
    );
    let mut last = None;
    for r in 1..=3 {
        let (o, took) = run("redis", &url, &[]).await;
        assert!(o.is_ok(), "{:?}", o.result);
        let sample_ms = o
            .steps
            .iter()
            .find(|s| s.name == "Sample keys")
            .map(|s| s.elapsed_ms)
            .unwrap_or(0);
        println!(
            "{:<8} {:>10.2} {:>10} {:>14.0} {:>12.2}",
            r,
            took.as_secs_f64(),
            o.commands,
            o.commands as f64 / took.as_secs_f64(),
            sample_ms as f64 / 1000.0
        );
        last = Some(o);
    }
    let o = last.expect("a run");
    let top: Vec<String> = o
        .findings
        .iter()
        .find(|f| f.code == "REDIS_KEYSPACE_SAMPLE")
        .map(|f| f.tables[0].rows.iter().map(|r| r[0].clone()).collect())
        .unwrap_or_default();
    let pats: Vec<String> = o
        .findings
        .iter()
        .find(|f| f.code == "REDIS_KEYSPACE_SAMPLE")
        .map(|f| {
            f.tables[1]
                .rows
                .iter()
                .map(|r| {
                    format!(
                        "{} est. {} keys, {}, {} without TTL",
                        r[0], r[3], r[4], r[5]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("probe: top patterns:");
    for p in &pats {
        println!("  {p}");
    }

    // The same data through redis-cli --memkeys (a full SCAN with MEMORY USAGE per key).
    let t = Instant::now();
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--memkeys"])
        .output()
        .expect("redis-cli");
    let cli_took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    // "Biggest string found 'blob:report:19' has 2000056 bytes"
    let cli_biggest: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("Biggest"))
        .filter_map(|l| {
            l.split('\'')
                .nth(1)
                .map(|k| k.trim_matches('"').to_string())
        })
        .collect();
    let also = cli_biggest.iter().filter(|k| top.contains(k)).count();
    let big_in_probe = top.iter().filter(|k| k.starts_with("blob:report:")).count();
    println!("\n{:<40} {:>10}", "tool", "wall s");
    println!(
        "{:<40} {:>10.2}",
        "Lookout Redis probe (default sample)",
        o.duration.as_secs_f64()
    );
    println!(
        "{:<40} {:>10.2}",
        "redis-cli --memkeys (full scan)",
        cli_took.as_secs_f64()
    );
    println!(
        "redis-cli 7.0 --memkeys reports the biggest key per type: {:?}; the probe's top-20 lists {also} of them",
        cli_biggest
    );
    println!(
        "of the 20 planted big keys (the true top 20), the probe's top-20 lists {big_in_probe} (sample covers 1% of the keyspace)"
    );
    let (o100, took100) = run(
        "redis",
        &url,
        &[
            ("sample_keys", "1000000"),
            ("max_commands_per_sec", "200000"),
        ],
    )
    .await;
    let top100: Vec<String> = o100
        .findings
        .iter()
        .find(|f| f.code == "REDIS_KEYSPACE_SAMPLE")
        .map(|f| f.tables[0].rows.iter().map(|r| r[0].clone()).collect())
        .unwrap_or_default();
    println!(
        "full audit, sample_keys=1000000 and pace 200,000/s: {:.2} s, {} of the 20 big keys listed, {} commands",
        took100.as_secs_f64(),
        top100
            .iter()
            .filter(|k| k.starts_with("blob:report:"))
            .count(),
        o100.commands
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn postgres_bench() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        println!("\n(DATABASE_URL unset: PostgreSQL benchmark skipped)");
        return;
    };
    let mut admin = PgConnection::connect(&base).await.expect("connect");
    admin
        .execute("DROP DATABASE IF EXISTS lookout_bench_probe WITH (FORCE)")
        .await
        .expect("drop");
    admin
        .execute("CREATE DATABASE lookout_bench_probe")
        .await
        .expect("create");
    let mut u = url::Url::parse(&base).expect("url");
    u.set_path("lookout_bench_probe");
    let mut c = PgConnection::connect(u.as_str())
        .await
        .expect("connect bench db");
    let t = Instant::now();
    for i in 0..1000 {
        c.execute(
            format!(
                "CREATE TABLE t{i} (id bigint PRIMARY KEY, account int, body text, at timestamptz DEFAULT now());
                 CREATE INDEX t{i}_account ON t{i} (account);
                 INSERT INTO t{i} (id, account, body) SELECT g, g % 50, 'row ' || g FROM generate_series(1, 100) g;"
            )
            .as_str(),
        )
        .await
        .expect("table");
    }
    c.execute("ANALYZE").await.expect("analyze");
    println!(
        "\npostgres: 1,000 tables (with indexes and rows) created in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!("PostgreSQL probe on a database with 1,000 tables, default parameters");
    let mut times = vec![];
    for r in 1..=5 {
        let (o, took) = run("postgres", u.as_str(), &[]).await;
        assert!(o.is_ok(), "{:?}", o.result);
        times.push(took.as_secs_f64());
        println!(
            "run {r}: {:.3} s, {} queries, {} findings",
            took.as_secs_f64(),
            o.commands,
            o.findings.len()
        );
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.3} s, max {:.3} s", times[2], times[4]);
    drop(c);
    let _ = admin
        .execute("DROP DATABASE IF EXISTS lookout_bench_probe WITH (FORCE)")
        .await;
}
