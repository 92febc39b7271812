//! Benchmarks of the Redis and PostgreSQL probes (figures recorded in BENCHMARKS.md).
//!
//! Redis: starts its own redis-server on a random loopback port, loads 1,000,000 keys
//! (patterns of different sizes and TTLs) and 20 big keys of every type, then runs
//! `redis-cli --memkeys` and the probe's full key audit (unpaced, at redis-cli's key rate,
//! at the default pace) on the same data, each with a client beside it PINGing the server
//! every 10 ms, and compares time, the top 20 and the latency the other client saw; then
//! redis-cli and the audit at the key rate redis-cli reached just before it, alternated
//! three times, beside an application's steady traffic (10 connections × 1,000 GET/s), with
//! its latency and each tool's own CPU time — twice:
//! as the machine's CPUs idle by default (halting), and with idle CPUs polling (held through
//! /dev/cpu_dma_latency when the benchmark may write it), so that the comparison measures
//! what each tool does to the server rather than how it keeps the cores awake.
//! PostgreSQL: creates a `lookout_bench_probe` database with 1,000 tables (each with an
//! index and rows, stats analysed) and runs the probe five times.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres \
//!       cargo run --release -p probes --example bench_probes`
//! (`LOOKOUT_BENCH_REDIS_APP_ONLY=1`: only the comparison beside the application's traffic.)

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

/// How long the run's "Audit keys" step took (s).
fn audit_secs(o: &RunOutcome) -> f64 {
    o.steps
        .iter()
        .find(|s| s.name == "Audit keys")
        .map_or(0.0, |s| s.elapsed_ms as f64 / 1000.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Blocks until stdin closes (the benchmark's signal to a sidecar process to stop).
fn wait_for_stdin_to_close() {
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}

/// Prints round trips (ms) on one line, for the benchmark to read.
fn print_samples(v: &[f64]) {
    let text: Vec<String> = v.iter().map(|v| format!("{v:.4}")).collect();
    println!("{}", text.join(" "));
}

/// `--pinger URL [EVERY_US]`: PINGs the server every 10 ms (or EVERY_US µs) until stdin
/// closes, then prints each round trip (ms).
fn pinger_main(url: &str, every: Duration) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        wait_for_stdin_to_close();
        s2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut c = redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("pinger");
    let mut out = vec![];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        let _: String = redis::cmd("PING").query(&mut c).expect("ping");
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(every);
    }
    print_samples(&out);
}

/// `--app URL THREADS EVERY_US`: an application's steady traffic — THREADS connections,
/// each sending a GET of a random `user:*` key every EVERY_US µs — until stdin closes, then
/// prints each round trip (ms).
fn app_main(url: &str, threads: usize, every: Duration) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let stop = stop.clone();
            let url = url.to_string();
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url.as_str())
                    .expect("client")
                    .get_connection()
                    .expect("app");
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut out = vec![];
                let mut next = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("user:{}", (x % 200_000) * 5 + 2);
                    let t = Instant::now();
                    let _: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut c).expect("get");
                    out.push(t.elapsed().as_secs_f64() * 1000.0);
                    next += every;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                out
            })
        })
        .collect();
    wait_for_stdin_to_close();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let all: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    print_samples(&all);
}

struct Pinger(std::process::Child);
fn sidecar(args: &[&str]) -> Pinger {
    let exe = std::env::current_exe().expect("exe");
    Pinger(
        Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("pinger"),
    )
}
fn pinger(url: &str) -> Pinger {
    sidecar(&["--pinger", url])
}
// An application's steady traffic: 10 connections, each a GET every millisecond.
fn app(url: &str) -> Pinger {
    sidecar(&["--app", url, "10", "1000"])
}
impl Pinger {
    fn stop(mut self) -> Vec<f64> {
        drop(self.0.stdin.take());
        let out = self.0.wait_with_output().expect("pinger output");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--app" {
        let threads = args[3].parse().unwrap_or(10);
        let every_us = args[4].parse().unwrap_or(1000);
        return app_main(&args[2], threads, Duration::from_micros(every_us));
    }
    if args.len() >= 3 && args[1] == "--pinger" {
        let every_us = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10_000);
        return pinger_main(&args[2], Duration::from_micros(every_us));
    }
    // LOOKOUT_BENCH_CURRENT_THREAD=1: the whole benchmark (and the probe) on one thread,
    // to see what the probe's own CPU use does to the latency beside it on a small machine.
    let rt = if std::env::var_os("LOOKOUT_BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    rt.expect("runtime").block_on(async_main());
}

async fn async_main() {
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
    // 20 big keys of every type, 100 KB – 2 MB each (the true top 20: every other key is
    // under 1 KB).
    let types = ["string", "hash", "list", "set", "zset", "stream"];
    for b in 0..20u64 {
        let size = 100_000 + b as usize * 100_000;
        let key = format!("blob:{}:{b}", types[b as usize % 6]);
        let elems = size / 100;
        let mut p = redis::pipe();
        match types[b as usize % 6] {
            "string" => {
                p.cmd("SET").arg(&key).arg("x".repeat(size)).ignore();
            }
            "hash" => {
                for e in 0..elems {
                    p.cmd("HSET")
                        .arg(&key)
                        .arg(format!("f{e}"))
                        .arg("y".repeat(80))
                        .ignore();
                }
            }
            "list" => {
                for _ in 0..elems {
                    p.cmd("RPUSH").arg(&key).arg("z".repeat(90)).ignore();
                }
            }
            "set" => {
                for e in 0..elems {
                    p.cmd("SADD").arg(&key).arg(format!("{e:0>90}")).ignore();
                }
            }
            "zset" => {
                for e in 0..elems {
                    p.cmd("ZADD")
                        .arg(&key)
                        .arg(e)
                        .arg(format!("{e:0>80}"))
                        .ignore();
                }
            }
            _ => {
                for _ in 0..elems {
                    p.cmd("XADD")
                        .arg(&key)
                        .arg("*")
                        .arg("v")
                        .arg("w".repeat(80))
                        .ignore();
                }
            }
        }
        let _: () = p.query_async(&mut c).await.expect("big");
    }
    println!(
        "redis: loaded 1,000,000 keys in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The truth: the 20 planted keys by MEMORY USAGE SAMPLES 0, biggest first.
    let mut truth: Vec<(u64, String)> = vec![];
    for b in 0..20u64 {
        let key = format!("blob:{}:{b}", types[b as usize % 6]);
        let m: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut c)
            .await
            .expect("usage");
        truth.push((m, key));
    }
    truth.sort_by(|a, b| b.cmp(a));

    // LOOKOUT_BENCH_REDIS_APP_ONLY=1: only the comparison beside an application's traffic.
    if std::env::var_os("LOOKOUT_BENCH_REDIS_APP_ONLY").is_none() {
        full_audits_beside_pings(&url, port, &mut c, &truth).await;
    }
    // Beside an application's traffic (10 connections, 1,000 GETs a second each — a server
    // in production is rarely idle): its latency with nothing else, beside
    // `redis-cli --memkeys`, and beside Lookout's audit at redis-cli's key rate, alternated
    // three times (the spread between runs is as large as the differences). Twice: as the
    // machine idles by default, then with its idle CPUs polling instead of halting.
    beside_app(&url, port, "the CPUs' default idle (halt)").await;
    match NoIdleHalt::hold() {
        Some(hold) => {
            beside_app(&url, port, "idle CPUs polling (/dev/cpu_dma_latency = 0)").await;
            drop(hold);
        }
        None => println!("\n(/dev/cpu_dma_latency not writable: the polling-idle run skipped)"),
    }

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// redis-cli --memkeys and Lookout's full audit (unpaced, at redis-cli's key and command
/// rates, at the default pace) on the same data, each with a client PINGing the server beside
/// it: time, the top 20 against the truth, the PING p99, the server's CPU.
async fn full_audits_beside_pings(
    url: &str,
    port: u16,
    c: &mut redis::aio::MultiplexedConnection,
    truth: &[(u64, String)],
) {
    let truth_keys: Vec<String> = truth.iter().map(|t| t.1.clone()).collect();
    // Every run below has a client beside it PINGing the server every 10 ms: the latency
    // any other client of the server sees while it runs.
    // (A process of its own — this program run with `--pinger URL` — so the probe's work
    // in this process does not delay its measurements, as redis-cli's does not.)
    fn p99(v: &[f64]) -> f64 {
        probes::redis::audit::quantile(v, 0.99)
    }
    // The server's CPU seconds (user + sys) so far.
    async fn server_cpu(c: &mut redis::aio::MultiplexedConnection) -> f64 {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(c)
            .await
            .expect("info");
        let i = probes::redis::probe::parse_info(&info);
        ["used_cpu_user", "used_cpu_sys"]
            .iter()
            .filter_map(|k| i.get(*k).and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
    let top_of = |o: &RunOutcome| -> Vec<String> {
        o.findings
            .iter()
            .find(|f| f.code == "REDIS_KEYSPACE_SAMPLE")
            .map(|f| f.tables[0].rows.iter().map(|r| r[0].clone()).collect())
            .unwrap_or_default()
    };

    // redis-cli --memkeys (a full SCAN with TYPE and MEMORY USAGE per key).
    let ping = pinger(url);
    let cpu0 = server_cpu(c).await;
    let t = Instant::now();
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--memkeys"])
        .output()
        .expect("redis-cli");
    let cli_took = t.elapsed();
    let cli_cpu = server_cpu(c).await - cpu0;
    let cli_pings = ping.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    // "Biggest string found 'blob:string:18' has 2000056 bytes"
    let cli_biggest: Vec<(String, u64)> = text
        .lines()
        .filter(|l| l.starts_with("Biggest"))
        .filter_map(|l| {
            let k = l.split('\'').nth(1)?.trim_matches('"').to_string();
            let n = l.split(" has ").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((k, n))
        })
        .collect();

    // The server idle, with only the PINGs: what they measure without any audit.
    let ping = pinger(url);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_pings = ping.stop();

    let mut rows = vec![
        (
            "nothing (the server idle, 10 s)".to_string(),
            0.0,
            p99(&idle_pings),
            String::new(),
            None,
        ),
        (
            "redis-cli --memkeys".to_string(),
            cli_took.as_secs_f64(),
            p99(&cli_pings),
            format!("server CPU {cli_cpu:.2} s"),
            None,
        ),
    ];
    let runs: [(&str, Vec<(&str, String)>); 4] = [
        (
            "Lookout full audit, unpaced (maintenance window)",
            vec![("maintenance_window", "true".into())],
        ),
        (
            "Lookout full audit, at redis-cli's key rate",
            // The same keys per second: redis-cli sends two commands per key (TYPE,
            // MEMORY USAGE), Lookout three (and PTTL).
            vec![(
                "max_commands_per_sec",
                ((1_000_020.0 / cli_took.as_secs_f64()) * 3.0)
                    .round()
                    .to_string(),
            )],
        ),
        (
            "Lookout full audit, at redis-cli's command rate",
            vec![(
                "max_commands_per_sec",
                ((1_000_020.0 / cli_took.as_secs_f64()) * 2.0)
                    .round()
                    .to_string(),
            )],
        ),
        (
            "Lookout full audit, default pace (50,000 commands/s)",
            vec![],
        ),
    ];
    // More runs to compare, e.g. LOOKOUT_BENCH_REDIS="memory_samples=5;scan_count=100".
    let extra: Vec<(String, Vec<(String, String)>)> = std::env::var("LOOKOUT_BENCH_REDIS")
        .unwrap_or_default()
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|set| {
            let kv = set
                .split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            (format!("Lookout full audit, {set}"), kv)
        })
        .collect();
    let runs: Vec<(String, Vec<(String, String)>)> = runs
        .into_iter()
        .map(|(n, p)| {
            (
                n.to_string(),
                p.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            )
        })
        .chain(extra)
        .collect();
    for (name, params) in runs {
        let mut raw: Vec<(&str, &str)> = vec![("rate_interval_s", "1")];
        raw.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let ping = pinger(url);
        let cpu0 = server_cpu(c).await;
        let (o, _) = run("redis", url, &raw).await;
        let cpu = server_cpu(c).await - cpu0;
        let pings = ping.stop();
        assert!(o.is_ok(), "{:?}", o.result);
        let top = top_of(&o);
        rows.push((
        name.clone(),
        audit_secs(&o),
        p99(&pings),
        format!(
            "server CPU {cpu:.2} s; {} commands; top 20 = the planted 20 in order: {}; redis-cli's biggest per type all listed: {}",
            o.commands,
            top == truth_keys,
            cli_biggest.iter().all(|(k, _)| top.contains(k))
        ),
        Some(o),
    ));
    }
    println!(
        "\nFull key audit of 1,000,020 keys (20 planted big keys: string, hash, list, set, zset, stream)"
    );
    println!(
        "{:<52} {:>10} {:>22}  notes",
        "tool", "audit s", "PING p99 beside it ms"
    );
    for (name, secs, p, notes, _) in &rows {
        println!("{name:<52} {secs:>10.2} {p:>22.2}  {notes}");
    }
    println!(
        "unpaced Lookout vs redis-cli --memkeys: {:.1}× faster",
        rows[1].1 / rows[2].1
    );
    println!("redis-cli's biggest per type: {cli_biggest:?}");
    println!("the truth (MEMORY USAGE SAMPLES 0): {truth:?}");
    if let Some(o) = &rows[2].4
        && let Some(f) = o
            .findings
            .iter()
            .find(|f| f.code == "REDIS_KEYSPACE_SAMPLE")
    {
        println!("{}", f.title);
        for t in &f.tables {
            println!("-- {}", t.title);
            for r in t.rows.iter().take(20) {
                println!("   {}", r.join(" | "));
            }
        }
    }
}

/// Keeps the machine's idle CPUs polling rather than halting while it lives (a PM QoS
/// request of 0 µs wake-up latency on /dev/cpu_dma_latency, as tuned's latency-performance
/// profile makes), if this process may. On a VM whose vCPUs halt when idle, a client that
/// sleeps between requests pays the wake-up in its latency — and an audit that keeps the
/// cores busy *lowers* that latency: this takes the machine's idling out of the comparison.
struct NoIdleHalt {
    _held: std::fs::File,
}

impl NoIdleHalt {
    fn hold() -> Option<NoIdleHalt> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .ok()?;
        f.write_all(&0i32.to_ne_bytes()).ok()?;
        Some(NoIdleHalt { _held: f })
    }
}

/// CPU seconds of this process and of its waited-for children so far (/proc/self/stat:
/// utime + stime, cutime + cstime; clock ticks of 10 ms).
fn cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let tick = |i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    // utime is field 14 of the line, the 12th after the name.
    (tick(11) + tick(12), tick(13) + tick(14))
}

/// The application's traffic alone, beside `redis-cli --memkeys` and beside Lookout's
/// audit at the key rate redis-cli reached just before it (alternated three times): its
/// GET latency.
async fn beside_app(url: &str, port: u16, idle: &str) {
    let q = |v: &[f64], x: f64| probes::redis::audit::quantile(v, x);
    println!(
        "\nBeside an application's traffic (10 connections × 1,000 GET/s), alternated three times; {idle}"
    );
    println!(
        "{:<52} {:>8} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "beside", "audit s", "GETs", "p50 ms", "p99 ms", "p99.9 ms", "its CPU s"
    );
    let show = |name: &str, secs: f64, v: &[f64], cpu: f64| {
        println!(
            "{name:<52} {secs:>8.2} {:>9} {:>9.3} {:>9.3} {:>11.3} {cpu:>11.2}",
            v.len(),
            q(v, 0.5),
            q(v, 0.99),
            q(v, 0.999)
        );
    };
    let traffic = app(url);
    tokio::time::sleep(Duration::from_secs(10)).await;
    show("nothing (10 s)", 0.0, &traffic.stop(), 0.0);
    let (mut cli_p99, mut lookout_p99) = (vec![], vec![]);
    for _ in 0..3 {
        let traffic = app(url);
        let t = Instant::now();
        let (_, children) = cpu_secs();
        let _ = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--memkeys"])
            .output()
            .expect("redis-cli");
        let took = t.elapsed().as_secs_f64();
        let cpu = cpu_secs().1 - children;
        let v = traffic.stop();
        // The same keys per second: redis-cli sends two commands per key (TYPE, MEMORY
        // USAGE), Lookout three (and PTTL).
        let key_rate = ((1_000_020.0 / took) * 3.0).round().to_string();
        cli_p99.push(q(&v, 0.99));
        show("redis-cli --memkeys", took, &v, cpu);

        let traffic = app(url);
        let (own, _) = cpu_secs();
        let (o, _) = run(
            "redis",
            url,
            &[
                ("rate_interval_s", "1"),
                ("max_commands_per_sec", &key_rate),
            ],
        )
        .await;
        let cpu = cpu_secs().0 - own;
        let v = traffic.stop();
        assert!(o.is_ok(), "{:?}", o.result);
        lookout_p99.push(q(&v, 0.99));
        show(
            "Lookout full audit, at redis-cli's key rate",
            audit_secs(&o),
            &v,
            cpu,
        );
    }
    println!(
        "median p99: redis-cli {:.3} ms, Lookout {:.3} ms",
        q(&cli_p99, 0.5),
        q(&lookout_p99, 0.5)
    );
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
