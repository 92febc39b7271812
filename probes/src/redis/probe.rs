//! The Redis probe: what an SRE does by hand with redis-cli, done safely.
//!
//! Read-only and cheap by construction: the commands it sends are PING, INFO, MEMORY
//! STATS / DOCTOR / USAGE, SLOWLOG GET, SCAN (bounded, COUNT batches), TYPE, PTTL and
//! PUBSUB. Never KEYS, FLUSH*, DEBUG, CONFIG SET or MONITOR. Every command is counted
//! against `max_commands_per_sec`, so a big keyspace is sampled at a known pace.

use super::classify;
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, Finding, ParamKind, ParamSpec, Params, Probe, ProbeSpec,
    Severity, Table, bytes, group,
};
use crate::{ProbeError, redact_url};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub struct RedisProbe;

const STEPS: &[&str] = &[
    "Connect",
    "Read INFO",
    "Memory report",
    "Slow log",
    "Sample keys",
    "Pub/Sub",
    "Second INFO sample",
    "Analyse",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "sample_keys",
        label: "Keys to sample",
        help: "How many keys SCAN reads for the big-key, pattern and TTL audit (0 skips it; at least the key count audits every key, at the pace below).",
        kind: ParamKind::Int {
            min: 0,
            max: 2_000_000,
        },
        default: "10000",
    },
    ParamSpec {
        name: "scan_count",
        label: "SCAN COUNT",
        help: "Keys asked for per SCAN call.",
        kind: ParamKind::Int { min: 10, max: 5000 },
        default: "500",
    },
    ParamSpec {
        name: "max_commands_per_sec",
        label: "Pace (commands/s)",
        help: "The most commands per second the probe sends to Redis.",
        kind: ParamKind::Int {
            min: 100,
            max: 200_000,
        },
        default: "20000",
    },
    ParamSpec {
        name: "rate_interval_s",
        label: "Rate window (s)",
        help: "Seconds between the two INFO samples that give evictions and expirations per second.",
        kind: ParamKind::Int { min: 1, max: 30 },
        default: "3",
    },
    ParamSpec {
        name: "memory_high_pct",
        label: "High memory (%)",
        help: "Used memory at or above this share of maxmemory (or of the machine, with no maxmemory) is high.",
        kind: ParamKind::Int { min: 1, max: 100 },
        default: "80",
    },
    ParamSpec {
        name: "clients_high_pct",
        label: "High clients (%)",
        help: "Connected clients at or above this share of maxclients are flagged.",
        kind: ParamKind::Int { min: 1, max: 100 },
        default: "80",
    },
    ParamSpec {
        name: "big_key_bytes",
        label: "Big key (bytes)",
        help: "A sampled key using at least this much memory is a big key.",
        kind: ParamKind::Int {
            min: 1024,
            max: 1 << 34,
        },
        default: "1048576",
    },
    ParamSpec {
        name: "fragmentation_pct",
        label: "Fragmentation ratio (%)",
        help: "mem_fragmentation_ratio × 100 at or above which fragmentation is flagged (with the byte floor below).",
        kind: ParamKind::Int {
            min: 100,
            max: 1000,
        },
        default: "150",
    },
    ParamSpec {
        name: "fragmentation_min_bytes",
        label: "Fragmentation floor (bytes)",
        help: "RSS minus used memory must also exceed this (a small instance always has a high ratio).",
        kind: ParamKind::Int {
            min: 0,
            max: 1 << 40,
        },
        default: "33554432",
    },
    ParamSpec {
        name: "replica_lag_bytes",
        label: "Replica lag (bytes)",
        help: "A replica this many bytes behind the primary's replication offset is lagging.",
        kind: ParamKind::Int {
            min: 1,
            max: 1 << 40,
        },
        default: "10485760",
    },
    ParamSpec {
        name: "expected_channels",
        label: "Expected Pub/Sub channels",
        help: "Comma-separated channels that should have subscribers (PUBSUB CHANNELS only lists channels that have one).",
        kind: ParamKind::Text { max_len: 2000 },
        default: "",
    },
];

const CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "REDIS_SUMMARY",
        severity: Severity::Info,
        meaning: "The instance at a glance: version, role, memory, policy, clients, rates, keyspace, MEMORY DOCTOR.",
        remediation: "None; context for the other findings.",
    },
    CodeDoc {
        code: "REDIS_NOEVICTION_NEAR_LIMIT",
        severity: Severity::Critical,
        meaning: "maxmemory-policy is noeviction and used memory is near maxmemory: writes will fail with OOM errors.",
        remediation: "`CONFIG SET maxmemory-policy allkeys-lru` for a cache, or raise maxmemory / delete data for a store.",
    },
    CodeDoc {
        code: "REDIS_NO_MAXMEMORY",
        severity: Severity::Warning,
        meaning: "No maxmemory is set: Redis grows until the machine (or the container limit) kills it.",
        remediation: "`CONFIG SET maxmemory <bytes>` below the container limit, and persist it in redis.conf.",
    },
    CodeDoc {
        code: "REDIS_VOLATILE_POLICY_NO_TTL",
        severity: Severity::Warning,
        meaning: "A volatile-* eviction policy while most sampled keys have no TTL: eviction cannot free them.",
        remediation: "Set TTLs on writes (`SET key value EX 3600`) or `CONFIG SET maxmemory-policy allkeys-lru`.",
    },
    CodeDoc {
        code: "REDIS_EVICTING",
        severity: Severity::Warning,
        meaning: "Keys were evicted between the two INFO samples: the working set does not fit in maxmemory.",
        remediation: "Raise maxmemory, shorten TTLs, or shrink the big keys and patterns the sample shows.",
    },
    CodeDoc {
        code: "REDIS_FRAGMENTATION",
        severity: Severity::Warning,
        meaning: "mem_fragmentation_ratio is high and RSS exceeds used memory by a lot.",
        remediation: "`CONFIG SET activedefrag yes` (jemalloc builds), or restart the replica then fail over.",
    },
    CodeDoc {
        code: "REDIS_REJECTED_CONNECTIONS",
        severity: Severity::Warning,
        meaning: "Redis refused connections because maxclients was reached.",
        remediation: "Find the client leaking connections (`CLIENT LIST`), use pooling, or raise maxclients.",
    },
    CodeDoc {
        code: "REDIS_CLIENTS_NEAR_MAX",
        severity: Severity::Critical,
        meaning: "Connected clients are close to maxclients.",
        remediation: "`CLIENT LIST` to find who holds them; pool connections; raise maxclients (and the fd limit).",
    },
    CodeDoc {
        code: "REDIS_BLOCKED_CLIENTS",
        severity: Severity::Info,
        meaning: "Clients are blocked in BLPOP/BRPOP/XREAD/WAIT: normal for queue workers, suspicious otherwise.",
        remediation: "`CLIENT LIST` and look for `flags=b`; check the producers of the lists they wait on.",
    },
    CodeDoc {
        code: "REDIS_SLOW_COMMANDS",
        severity: Severity::Warning,
        meaning: "The slow log holds commands slower than slowlog-log-slower-than (arguments redacted).",
        remediation: "Replace O(N) commands (KEYS, HGETALL/SMEMBERS on big keys, big DEL) with SCAN/HSCAN/UNLINK.",
    },
    CodeDoc {
        code: "REDIS_BIG_KEYS",
        severity: Severity::Warning,
        meaning: "Sampled keys use more memory than the big-key threshold: slow to read, block on delete.",
        remediation: "Split big hashes/sets/lists; delete them with `UNLINK` (non-blocking).",
    },
    CodeDoc {
        code: "REDIS_KEYSPACE_SAMPLE",
        severity: Severity::Info,
        meaning: "Top keys by memory and top key patterns by estimated memory, count and TTL share, from a bounded SCAN sample.",
        remediation: "None; the evidence behind the big-key and TTL findings.",
    },
    CodeDoc {
        code: "REDIS_NO_TTL_MAJORITY",
        severity: Severity::Info,
        meaning: "Most sampled keys of some patterns have no TTL (estimated from the sample).",
        remediation: "Add `EX` on writes of those patterns if they are caches or sessions.",
    },
    CodeDoc {
        code: "REDIS_PUBSUB_NO_SUBSCRIBERS",
        severity: Severity::Warning,
        meaning: "An expected Pub/Sub channel has no subscribers: messages published to it are dropped.",
        remediation: "Restart or fix the subscribing service; Pub/Sub does not queue messages for absent subscribers.",
    },
    CodeDoc {
        code: "REDIS_REPLICA_LAG",
        severity: Severity::Warning,
        meaning: "A replica is far behind the primary's replication offset or has not acknowledged recently.",
        remediation: "Check the replica's CPU, network and `INFO replication`; large writes or a slow disk on the replica.",
    },
    CodeDoc {
        code: "REDIS_REPLICA_LINK_DOWN",
        severity: Severity::Critical,
        meaning: "This replica's link to its primary is down: it serves stale data.",
        remediation: "Check the primary is reachable from the replica and `masterauth`; read `INFO replication` there.",
    },
    CodeDoc {
        code: "REDIS_PERSISTENCE_ERROR",
        severity: Severity::Critical,
        meaning: "The last RDB save or AOF write failed: a restart loses data, and with stop-writes-on-bgsave-error writes fail.",
        remediation: "Check the data directory's free space and permissions, then `BGSAVE` and watch `rdb_last_bgsave_status`.",
    },
];

pub static SPEC: ProbeSpec = ProbeSpec {
    name: "redis",
    kind: "redis",
    title: "Redis health",
    description: "Memory and eviction policy, eviction/expiry rates, fragmentation, clients, slow log, big keys and key patterns from a bounded SCAN sample, TTL audit, Pub/Sub, replication and persistence.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    run_timeout_s: 120,
};

/// INFO as a map (all sections).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn num(info: &HashMap<String, String>, k: &str) -> f64 {
    info.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// `db0:keys=12,expires=3,avg_ttl=0` → keys.
fn db_keys(info: &HashMap<String, String>, db: i64) -> u64 {
    info.get(&format!("db{db}"))
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("keys="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The pattern a key belongs to: its prefix up to the first separator, then `*`
/// (`session:9f2c` → `session:*`); keys without a separator lose their digits
/// (`job1234` → `job*`).
pub fn key_pattern(key: &str) -> String {
    if let Some(i) = key.find([':', '/', '|', '.', '#']) {
        return format!("{}*", &key[..=i]);
    }
    let stripped = key.trim_end_matches(|c: char| c.is_ascii_digit());
    if stripped.len() < key.len() {
        format!("{stripped}*")
    } else {
        key.to_string()
    }
}

/// A slow-log command with its argument values removed: the command name, the key's
/// pattern, and how many further arguments there were.
pub fn redact_command(args: &[String]) -> String {
    let Some(name) = args.first() else {
        return "(empty)".into();
    };
    let mut out = name.to_ascii_uppercase();
    if let Some(key) = args.get(1) {
        out.push(' ');
        out.push_str(&key_pattern(key));
    }
    if args.len() > 2 {
        out.push_str(&format!(" ‹{} args redacted›", args.len() - 2));
    }
    out
}

#[derive(Default, Clone)]
struct PatternStat {
    keys: u64,
    bytes: u64,
    no_ttl: u64,
}

/// A sampled key: name, type, memory, PTTL (ms; -1 none).
type KeyStat = (String, String, u64, i64);

/// How many of the biggest sampled keys are kept (the rest only count).
const KEEP_BIGGEST: usize = 50;

struct Sampled {
    /// Keys sampled so far.
    n: u64,
    /// The biggest keys, at most [`KEEP_BIGGEST`] (a min-heap on memory).
    biggest: std::collections::BinaryHeap<std::cmp::Reverse<(u64, String, String, i64)>>,
    /// Sampled keys at or above the big-key threshold.
    big: u64,
    patterns: HashMap<String, PatternStat>,
    no_ttl: u64,
}

impl Probe for RedisProbe {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }

    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(run(ctx, conn, params))
    }
}

type Conn = redis::aio::MultiplexedConnection;

async fn cmd<T: redis::FromRedisValue>(
    ctx: &Ctx,
    c: &mut Conn,
    target: &str,
    start: Instant,
    command: &redis::Cmd,
) -> Result<T, ProbeError> {
    ctx.pace(1).await?;
    ctx.net(target, command.query_async::<T>(c), |e| {
        classify(target, &e, start.elapsed())
    })
    .await
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let target = redact_url(&conn.display);
    let start = Instant::now();
    ctx.phase("Connect");
    let client = redis::Client::open(conn.url.as_str())
        .map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
    let db = client.get_connection_info().redis.db;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(ctx.step_timeout())
        .set_response_timeout(ctx.step_timeout());
    let mut c: Conn = ctx
        .net(
            &target,
            client.get_multiplexed_async_connection_with_config(&cfg),
            |e| classify(&target, &e, start.elapsed()),
        )
        .await?;
    let _: String = cmd(ctx, &mut c, &target, start, &redis::cmd("PING")).await?;

    ctx.phase("Read INFO");
    let info1_text: String =
        cmd(ctx, &mut c, &target, start, redis::cmd("INFO").arg("all")).await?;
    let t1 = Instant::now();
    ctx.evidence("INFO", &info1_text);
    let info1 = parse_info(&info1_text);

    ctx.phase("Memory report");
    let doctor: String = cmd(
        ctx,
        &mut c,
        &target,
        start,
        redis::cmd("MEMORY").arg("DOCTOR"),
    )
    .await
    .unwrap_or_else(|e| format!("(MEMORY DOCTOR unavailable: {e})"));
    let stats: redis::Value = cmd(
        ctx,
        &mut c,
        &target,
        start,
        redis::cmd("MEMORY").arg("STATS"),
    )
    .await
    .unwrap_or(redis::Value::Nil);
    ctx.evidence("MEMORY STATS", &format!("{stats:?}"));

    ctx.phase("Slow log");
    let slowlog: Vec<redis::Value> = cmd(
        ctx,
        &mut c,
        &target,
        start,
        redis::cmd("SLOWLOG").arg("GET").arg(20),
    )
    .await?;
    slow_commands(ctx, &slowlog);

    ctx.phase("Sample keys");
    let want = params.int("sample_keys").max(0) as usize;
    let dbsize = db_keys(&info1, db);
    let sampled = sample_keys(
        ctx,
        &mut c,
        &target,
        start,
        want,
        params.int("scan_count"),
        params.int("big_key_bytes") as u64,
    )
    .await?;

    ctx.phase("Pub/Sub");
    let channels: Vec<String> = cmd(
        ctx,
        &mut c,
        &target,
        start,
        redis::cmd("PUBSUB").arg("CHANNELS"),
    )
    .await?;
    let numpat: i64 = cmd(
        ctx,
        &mut c,
        &target,
        start,
        redis::cmd("PUBSUB").arg("NUMPAT"),
    )
    .await?;
    let expected: Vec<&str> = params
        .text("expected_channels")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(200)
        .collect();
    if !expected.is_empty() {
        let mut q = redis::cmd("PUBSUB");
        q.arg("NUMSUB");
        for ch in &expected {
            q.arg(*ch);
        }
        let numsub: Vec<redis::Value> = cmd(ctx, &mut c, &target, start, &q).await?;
        let mut dead = Table::new(
            "Expected channels without subscribers",
            &["channel", "subscribers"],
        );
        for pair in numsub.chunks(2) {
            if let [name, n] = pair {
                let name: String = redis::from_redis_value(name).unwrap_or_default();
                let n: i64 = redis::from_redis_value(n).unwrap_or(0);
                if n == 0 {
                    dead.row(vec![name, "0".into()]);
                }
            }
        }
        if !dead.rows.is_empty() {
            let names: Vec<String> = dead.rows.iter().map(|r| r[0].clone()).collect();
            ctx.finding(
                Finding::new(
                    "REDIS_PUBSUB_NO_SUBSCRIBERS",
                    Severity::Warning,
                    format!("{} expected Pub/Sub channel(s) have no subscribers: {}", names.len(), names.join(", ")),
                )
                .fact("pattern subscriptions (PUBSUB NUMPAT)", numpat)
                .fact("active channels", channels.len())
                .command(format!("PUBSUB NUMSUB {}", expected.join(" ")))
                .table(dead)
                .remediation(format!(
                    "Messages published to these channels are dropped: Pub/Sub keeps nothing for absent subscribers. Restart or fix the service that subscribes to `{}`{}.",
                    names.join("`, `"),
                    if numpat > 0 { " (some pattern subscriptions exist: check whether one of them is meant to cover it)" } else { "" }
                )),
            );
        }
    }

    ctx.phase("Second INFO sample");
    let window = Duration::from_secs(params.int("rate_interval_s").max(1) as u64);
    let waited = t1.elapsed();
    if waited < window {
        ctx.sleep(window - waited).await?;
    }
    let info2_text: String =
        cmd(ctx, &mut c, &target, start, redis::cmd("INFO").arg("all")).await?;
    let secs = t1.elapsed().as_secs_f64().max(0.001);
    let info2 = parse_info(&info2_text);

    ctx.phase("Analyse");
    analyse(
        ctx,
        params,
        &info1,
        &info2,
        secs,
        &sampled,
        dbsize,
        db,
        &doctor,
        channels.len(),
        numpat,
    );
    Ok(())
}

async fn sample_keys(
    ctx: &Ctx,
    c: &mut Conn,
    target: &str,
    start: Instant,
    want: usize,
    count: i64,
    big_key: u64,
) -> Result<Sampled, ProbeError> {
    let mut out = Sampled {
        n: 0,
        biggest: std::collections::BinaryHeap::with_capacity(KEEP_BIGGEST + 1),
        big: 0,
        patterns: HashMap::new(),
        no_ttl: 0,
    };
    if want == 0 {
        return Ok(out);
    }
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = cmd(
            ctx,
            c,
            target,
            start,
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(count),
        )
        .await?;
        let room = want - out.n as usize;
        let batch: Vec<String> = batch.into_iter().take(room).collect();
        if !batch.is_empty() {
            let mut pipe = redis::pipe();
            for k in &batch {
                pipe.cmd("MEMORY").arg("USAGE").arg(k);
                pipe.cmd("TYPE").arg(k);
                pipe.cmd("PTTL").arg(k);
            }
            ctx.pace(3 * batch.len() as u64).await?;
            let vals: Vec<redis::Value> = ctx
                .net(target, pipe.query_async(c), |e| {
                    classify(target, &e, start.elapsed())
                })
                .await?;
            for (k, v) in batch.into_iter().zip(vals.chunks(3)) {
                let [mem, ty, ttl] = v else { continue };
                let mem: Option<u64> = redis::from_redis_value(mem).ok();
                let ty: String = redis::from_redis_value(ty).unwrap_or_default();
                let ttl: i64 = redis::from_redis_value(ttl).unwrap_or(-2);
                // Gone between SCAN and the pipeline.
                let (Some(mem), false) = (mem, ttl == -2 || ty == "none") else {
                    continue;
                };
                let p = out.patterns.entry(key_pattern(&k)).or_default();
                p.keys += 1;
                p.bytes += mem;
                if ttl == -1 {
                    p.no_ttl += 1;
                    out.no_ttl += 1;
                }
                out.n += 1;
                if mem >= big_key {
                    out.big += 1;
                }
                out.biggest.push(std::cmp::Reverse((mem, k, ty, ttl)));
                if out.biggest.len() > KEEP_BIGGEST {
                    out.biggest.pop();
                }
            }
            ctx.detail(format!(
                "sampled {} of {} keys",
                group(out.n),
                group(want as u64)
            ));
        }
        cursor = next;
        if cursor == 0 || out.n as usize >= want {
            break;
        }
    }
    Ok(out)
}

fn slow_commands(ctx: &Ctx, entries: &[redis::Value]) {
    let mut rows: Vec<(u64, i64, String, String)> = vec![];
    for e in entries {
        let redis::Value::Array(parts) = e else {
            continue;
        };
        let ts: i64 = parts
            .get(1)
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(0);
        let us: u64 = parts
            .get(2)
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(0);
        let args: Vec<String> = parts
            .get(3)
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or_default();
        let client: String = parts
            .get(5)
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or_default();
        rows.push((us, ts, redact_command(&args), client));
    }
    if rows.is_empty() {
        return;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut t = Table::new(
        "Slowest commands (arguments redacted)",
        &["duration", "when (unix)", "command", "client name"],
    );
    for (us, ts, c, client) in &rows {
        t.row(vec![
            format!("{:.1} ms", *us as f64 / 1000.0),
            ts.to_string(),
            c.clone(),
            client.clone(),
        ]);
    }
    let (top_us, _, top_cmd, _) = &rows[0];
    ctx.finding(
        Finding::new(
            "REDIS_SLOW_COMMANDS",
            Severity::Warning,
            format!("{} slow commands in the slow log; slowest {:.1} ms ({top_cmd})", rows.len(), *top_us as f64 / 1000.0),
        )
        .command("SLOWLOG GET 20")
        .table(t)
        .remediation("Slow commands block every other client (Redis runs commands one at a time). Replace O(N) commands on big keys: `SCAN`/`HSCAN`/`SSCAN` instead of `KEYS`/`HGETALL`/`SMEMBERS`, `UNLINK` instead of `DEL` on big keys. When the cause is fixed, clear the log:\n\n```\nredis-cli SLOWLOG RESET\n```"),
    );
}

#[allow(clippy::too_many_arguments)]
fn analyse(
    ctx: &Ctx,
    params: &Params,
    i1: &HashMap<String, String>,
    i2: &HashMap<String, String>,
    secs: f64,
    s: &Sampled,
    dbsize: u64,
    db: i64,
    doctor: &str,
    channels: usize,
    numpat: i64,
) {
    let used = num(i2, "used_memory") as u64;
    let maxmem = num(i2, "maxmemory") as u64;
    let system = num(i2, "total_system_memory") as u64;
    let policy = i2.get("maxmemory_policy").cloned().unwrap_or_default();
    let high_pct = params.int("memory_high_pct") as f64;
    let evicted = (num(i2, "evicted_keys") - num(i1, "evicted_keys")).max(0.0);
    let expired = (num(i2, "expired_keys") - num(i1, "expired_keys")).max(0.0);
    let ev_rate = evicted / secs;
    let ex_rate = expired / secs;
    let clients = num(i2, "connected_clients") as u64;
    let maxclients = num(i2, "maxclients") as u64;
    let role = i2.get("role").cloned().unwrap_or_default();
    let sampled = s.n;
    let no_ttl_share = if sampled > 0 {
        s.no_ttl as f64 / sampled as f64
    } else {
        0.0
    };
    let coverage = if dbsize > 0 {
        sampled as f64 / dbsize as f64 * 100.0
    } else {
        0.0
    };

    let mut summary = Finding::new(
        "REDIS_SUMMARY",
        Severity::Info,
        format!(
            "Redis {} ({role}), {} used{}, {} clients, {} keys in db{db}",
            i2.get("redis_version").map(String::as_str).unwrap_or("?"),
            bytes(used),
            if maxmem > 0 {
                format!(" of {} maxmemory ({policy})", bytes(maxmem))
            } else {
                " (no maxmemory)".into()
            },
            group(clients),
            group(dbsize),
        ),
    )
    .fact(
        "redis_version",
        i2.get("redis_version").map(String::as_str).unwrap_or("?"),
    )
    .fact("role", &role)
    .fact("used_memory", bytes(used))
    .fact("used_memory_rss", bytes(num(i2, "used_memory_rss") as u64))
    .fact(
        "maxmemory",
        if maxmem > 0 {
            bytes(maxmem)
        } else {
            "0 (none)".into()
        },
    )
    .fact("maxmemory_policy", &policy)
    .fact(
        "mem_fragmentation_ratio",
        i2.get("mem_fragmentation_ratio")
            .map(String::as_str)
            .unwrap_or("?"),
    )
    .fact(
        "connected_clients / maxclients",
        format!("{clients} / {maxclients}"),
    )
    .fact("blocked_clients", num(i2, "blocked_clients"))
    .fact(
        "ops per second",
        i2.get("instantaneous_ops_per_sec")
            .map(String::as_str)
            .unwrap_or("?"),
    )
    .fact(
        "evictions per second",
        format!("{ev_rate:.1} (over {secs:.1} s)"),
    )
    .fact(
        "expirations per second",
        format!("{ex_rate:.1} (over {secs:.1} s)"),
    )
    .fact(
        "keyspace hits / misses",
        format!(
            "{} / {}",
            group(num(i2, "keyspace_hits") as u64),
            group(num(i2, "keyspace_misses") as u64)
        ),
    )
    .fact("rejected_connections", num(i2, "rejected_connections"))
    .fact(
        "Pub/Sub channels / patterns",
        format!("{channels} / {numpat}"),
    )
    .fact(
        "rdb_last_bgsave_status",
        i2.get("rdb_last_bgsave_status")
            .map(String::as_str)
            .unwrap_or("?"),
    )
    .fact(
        "aof_enabled",
        i2.get("aof_enabled").map(String::as_str).unwrap_or("?"),
    )
    .command("INFO all; MEMORY DOCTOR")
    .excerpt(format!("MEMORY DOCTOR:\n{doctor}"));
    summary.remediation = "None; context for the other findings.".into();
    ctx.finding(summary);

    // maxmemory and policy.
    if maxmem > 0 && policy == "noeviction" {
        let pct = used as f64 / maxmem as f64 * 100.0;
        if pct >= high_pct {
            ctx.finding(
                Finding::new(
                    "REDIS_NOEVICTION_NEAR_LIMIT",
                    if pct >= 95.0 { Severity::Critical } else { Severity::Warning },
                    format!("maxmemory-policy is noeviction and memory is {pct:.0}% of maxmemory: writes will fail with OOM"),
                )
                .fact("used_memory", bytes(used))
                .fact("maxmemory", bytes(maxmem))
                .fact("maxmemory_policy", &policy)
                .command("INFO memory")
                .remediation(format!(
                    "When memory reaches maxmemory, every write fails with `OOM command not allowed`. If this Redis is a cache, let it evict:\n\n```\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n\nIf it is a store, raise the limit (and the container's) or delete data; the biggest patterns in the sample are the place to start.{}",
                    if s.no_ttl > 0 { format!(" {} of {} sampled keys have no TTL.", group(s.no_ttl), group(sampled)) } else { String::new() }
                )),
            );
        }
    }
    if maxmem == 0 {
        let pct = if system > 0 {
            used as f64 / system as f64 * 100.0
        } else {
            0.0
        };
        ctx.finding(
            Finding::new(
                "REDIS_NO_MAXMEMORY",
                if pct >= high_pct { Severity::Warning } else { Severity::Info },
                format!("No maxmemory set: Redis uses {} ({pct:.1}% of the machine's {}) and will grow until killed", bytes(used), bytes(system)),
            )
            .fact("used_memory", bytes(used))
            .fact("total_system_memory", bytes(system))
            .fact("maxmemory_policy", &policy)
            .command("INFO memory")
            .remediation("Set a limit below the container's memory limit (leave room for fork on BGSAVE), then persist it in redis.conf:\n\n```\nredis-cli CONFIG SET maxmemory 4gb\n```"),
        );
    }
    if policy.starts_with("volatile-") && sampled > 0 && no_ttl_share >= 0.5 {
        ctx.finding(
            Finding::new(
                "REDIS_VOLATILE_POLICY_NO_TTL",
                Severity::Warning,
                format!("maxmemory-policy {policy} can only evict keys with a TTL, but {:.0}% of sampled keys have none", no_ttl_share * 100.0),
            )
            .fact("maxmemory_policy", &policy)
            .fact("sampled keys", sampled)
            .fact("sampled keys without TTL", s.no_ttl)
            .command("INFO memory; SCAN + PTTL sample")
            .remediation("Eviction cannot free keys without a TTL, so memory fills up and writes fail. Either evict any key:\n\n```\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n\nor set a TTL on writes (`SET key value EX 3600`) of the patterns listed in the TTL audit."),
        );
    }
    if evicted > 0.0 {
        ctx.finding(
            Finding::new(
                "REDIS_EVICTING",
                Severity::Warning,
                format!("Evicting {ev_rate:.1} keys/s ({} keys in {secs:.1} s)", group(evicted as u64)),
            )
            .fact("evicted_keys (window)", evicted)
            .fact("evictions per second", format!("{ev_rate:.1}"))
            .fact("used_memory", bytes(used))
            .fact("maxmemory", bytes(maxmem))
            .fact("maxmemory_policy", &policy)
            .command(format!("INFO stats, twice {secs:.1} s apart"))
            .remediation("The working set does not fit: hot keys are being thrown out, so hit rate and latency suffer. Raise maxmemory, shorten TTLs on the biggest patterns, or shrink big keys:\n\n```\nredis-cli CONFIG SET maxmemory 8gb\n```"),
        );
    }
    let frag = num(i2, "mem_fragmentation_ratio");
    let rss = num(i2, "used_memory_rss") as u64;
    let waste = rss.saturating_sub(used);
    if frag * 100.0 >= params.int("fragmentation_pct") as f64
        && waste >= params.int("fragmentation_min_bytes") as u64
    {
        ctx.finding(
            Finding::new(
                "REDIS_FRAGMENTATION",
                Severity::Warning,
                format!("Memory fragmentation ratio {frag:.2}: RSS {} for {} of data ({} wasted)", bytes(rss), bytes(used), bytes(waste)),
            )
            .fact("mem_fragmentation_ratio", format!("{frag:.2}"))
            .fact("used_memory_rss", bytes(rss))
            .fact("used_memory", bytes(used))
            .fact("allocator", i2.get("mem_allocator").map(String::as_str).unwrap_or("?"))
            .command("INFO memory")
            .remediation("Let jemalloc defragment in the background (costs some CPU):\n\n```\nredis-cli CONFIG SET activedefrag yes\n```\n\nor restart a replica and fail over to it."),
        );
    }
    let rejected = num(i2, "rejected_connections") as u64;
    if rejected > 0 {
        let new =
            (num(i2, "rejected_connections") - num(i1, "rejected_connections")).max(0.0) as u64;
        ctx.finding(
            Finding::new(
                "REDIS_REJECTED_CONNECTIONS",
                Severity::Warning,
                format!("{} connections rejected since the stats were reset ({new} during the probe)", group(rejected)),
            )
            .fact("rejected_connections", rejected)
            .fact("connected_clients / maxclients", format!("{clients} / {maxclients}"))
            .command("INFO stats; INFO clients")
            .remediation("Clients hit maxclients. Find who holds the connections and pool them, or raise the limit (and the process's file-descriptor limit):\n\n```\nredis-cli CLIENT LIST\nredis-cli CONFIG SET maxclients 20000\n```"),
        );
    }
    if maxclients > 0 {
        let pct = clients as f64 / maxclients as f64 * 100.0;
        if pct >= params.int("clients_high_pct") as f64 {
            ctx.finding(
                Finding::new(
                    "REDIS_CLIENTS_NEAR_MAX",
                    if pct >= 95.0 { Severity::Critical } else { Severity::Warning },
                    format!("{clients} of {maxclients} client connections in use ({pct:.0}%)"),
                )
                .fact("connected_clients", clients)
                .fact("maxclients", maxclients)
                .command("INFO clients")
                .remediation("New connections will be refused soon. Group `CLIENT LIST` by `addr`/`name` to find who holds them, use a connection pool, or raise maxclients:\n\n```\nredis-cli CLIENT LIST\n```"),
            );
        }
    }
    let blocked = num(i2, "blocked_clients") as u64;
    if blocked > 0 {
        ctx.finding(
            Finding::new("REDIS_BLOCKED_CLIENTS", Severity::Info, format!("{blocked} clients blocked in a blocking command (BLPOP, XREAD, WAIT, …)"))
                .fact("blocked_clients", blocked)
                .fact("connected_clients", clients)
                .command("INFO clients")
                .remediation("Normal for queue workers waiting on empty lists. If the workers should be busy, check the producers; list them with:\n\n```\nredis-cli CLIENT LIST\n```\n\n(`flags=b` marks a blocked client)."),
        );
    }
    // Replication.
    if role == "master" {
        let master_off = num(i2, "master_repl_offset") as u64;
        let mut t = Table::new(
            "Replicas",
            &["replica", "state", "offset", "behind", "last ack (s)"],
        );
        let mut lagging = 0;
        let limit = params.int("replica_lag_bytes") as u64;
        for n in 0..64 {
            let Some(line) = i2.get(&format!("slave{n}")) else {
                break;
            };
            let f = kv_list(line);
            let field = |k: &str| f.get(k).map(String::as_str).unwrap_or("?");
            let off: u64 = f.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
            let lag_s: u64 = f.get("lag").and_then(|v| v.parse().ok()).unwrap_or(0);
            let behind = master_off.saturating_sub(off);
            if behind >= limit || lag_s >= 10 {
                lagging += 1;
            }
            t.row(vec![
                format!("{}:{}", field("ip"), field("port")),
                field("state").to_string(),
                group(off),
                bytes(behind),
                lag_s.to_string(),
            ]);
        }
        if lagging > 0 {
            ctx.finding(
                Finding::new("REDIS_REPLICA_LAG", Severity::Warning, format!("{lagging} replica(s) behind the primary (offset {})", group(master_off)))
                    .fact("master_repl_offset", master_off)
                    .fact("connected_slaves", num(i2, "connected_slaves"))
                    .command("INFO replication")
                    .table(t)
                    .remediation("A lagging replica serves stale reads and loses data on failover. On the replica check CPU, network and disk, and the output buffer limit for replicas on the primary:\n\n```\nredis-cli -h <replica> INFO replication\nredis-cli CONFIG GET client-output-buffer-limit\n```"),
            );
        }
    } else if role == "slave" && i2.get("master_link_status").map(String::as_str) != Some("up") {
        ctx.finding(
            Finding::new(
                "REDIS_REPLICA_LINK_DOWN",
                Severity::Critical,
                format!(
                    "This replica's link to its primary {}:{} is down (for {} s)",
                    i2.get("master_host").map(String::as_str).unwrap_or("?"),
                    i2.get("master_port").map(String::as_str).unwrap_or("?"),
                    i2.get("master_link_down_since_seconds").map(String::as_str).unwrap_or("?"),
                ),
            )
            .fact("master_link_status", i2.get("master_link_status").map(String::as_str).unwrap_or("?"))
            .fact("master_last_io_seconds_ago", i2.get("master_last_io_seconds_ago").map(String::as_str).unwrap_or("?"))
            .command("INFO replication")
            .remediation("The replica serves stale data. Check the primary is up and reachable from the replica, and `masterauth`; the replica's log says why the sync failed."),
        );
    }
    // Persistence.
    let rdb = i2
        .get("rdb_last_bgsave_status")
        .map(String::as_str)
        .unwrap_or("ok");
    let aof_on = i2.get("aof_enabled").map(String::as_str) == Some("1");
    let aof = i2
        .get("aof_last_write_status")
        .map(String::as_str)
        .unwrap_or("ok");
    if rdb != "ok" || (aof_on && aof != "ok") {
        ctx.finding(
            Finding::new(
                "REDIS_PERSISTENCE_ERROR",
                Severity::Critical,
                format!("Persistence is failing: last RDB save {rdb}{}", if aof_on { format!(", last AOF write {aof}") } else { String::new() }),
            )
            .fact("rdb_last_bgsave_status", rdb)
            .fact("rdb_changes_since_last_save", num(i2, "rdb_changes_since_last_save"))
            .fact("rdb_last_save_time (unix)", num(i2, "rdb_last_save_time"))
            .fact("aof_last_write_status", aof)
            .command("INFO persistence")
            .remediation("A restart now loses the changes since the last good save, and with `stop-writes-on-bgsave-error yes` writes are refused. Check the data directory (free space, permissions, it still exists) in the Redis log, fix it, then:\n\n```\nredis-cli CONFIG GET dir\nredis-cli BGSAVE\n```"),
        );
    }
    // Keyspace sample.
    if sampled > 0 {
        let scale = if sampled > 0 && dbsize > sampled {
            dbsize as f64 / sampled as f64
        } else {
            1.0
        };
        let mut keys: Vec<KeyStat> = s
            .biggest
            .iter()
            .map(|std::cmp::Reverse((m, k, t, ttl))| (k.clone(), t.clone(), *m, *ttl))
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.2));
        let mut top = Table::new(
            "Top 20 keys by memory (sampled)",
            &["key", "type", "memory", "TTL"],
        );
        for (k, ty, mem, ttl) in keys.iter().take(20) {
            top.row(vec![
                k.clone(),
                ty.clone(),
                bytes(*mem),
                if *ttl < 0 {
                    "none".into()
                } else {
                    format!("{:.0} s", *ttl as f64 / 1000.0)
                },
            ]);
        }
        let mut pats: Vec<(&String, &PatternStat)> = s.patterns.iter().collect();
        pats.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
        let mut pt = Table::new(
            "Top key patterns by estimated memory",
            &[
                "pattern",
                "sampled keys",
                "sampled memory",
                "est. keys",
                "est. memory",
                "without TTL",
            ],
        );
        for (p, st) in pats.iter().take(20) {
            pt.row(vec![
                (*p).clone(),
                group(st.keys),
                bytes(st.bytes),
                group((st.keys as f64 * scale) as u64),
                bytes((st.bytes as f64 * scale) as u64),
                format!("{:.0}%", st.no_ttl as f64 / st.keys as f64 * 100.0),
            ]);
        }
        ctx.finding(
            Finding::new(
                "REDIS_KEYSPACE_SAMPLE",
                Severity::Info,
                format!(
                    "Sampled {} of {} keys ({coverage:.1}% of db{db}); biggest: {} ({})",
                    group(sampled),
                    group(dbsize),
                    keys.first().map(|k| k.0.as_str()).unwrap_or("-"),
                    bytes(keys.first().map(|k| k.2).unwrap_or(0))
                ),
            )
            .fact("sampled keys", sampled)
            .fact("keys in db", dbsize)
            .fact("share of the keyspace sampled", format!("{coverage:.1}%"))
            .fact(
                "sampled keys without TTL",
                format!("{} ({:.0}%)", s.no_ttl, no_ttl_share * 100.0),
            )
            .command("SCAN cursor COUNT n; MEMORY USAGE / TYPE / PTTL per key, pipelined")
            .table(top)
            .table(pt)
            .remediation("Estimates scale the sample to the whole keyspace; they are estimates."),
        );
        let big: Vec<&KeyStat> = keys
            .iter()
            .filter(|k| k.2 >= params.int("big_key_bytes") as u64)
            .collect();
        if !big.is_empty() {
            let mut t = Table::new(
                "Big keys (sampled; the biggest 50)",
                &["key", "type", "memory"],
            );
            for (k, ty, mem, _) in big.iter().copied() {
                t.row(vec![k.clone(), ty.clone(), bytes(*mem)]);
            }
            ctx.finding(
                Finding::new(
                    "REDIS_BIG_KEYS",
                    Severity::Warning,
                    format!("{} sampled keys of {} or more; biggest {} ({})", s.big, bytes(params.int("big_key_bytes") as u64), big[0].0, bytes(big[0].2)),
                )
                .fact("threshold", bytes(params.int("big_key_bytes") as u64))
                .command("MEMORY USAGE <key>")
                .table(t)
                .remediation(format!(
                    "Big keys are slow to read whole and block Redis when deleted. Split them (e.g. hash buckets), read them with HSCAN/SSCAN/ZSCAN, and delete without blocking:\n\n```\nredis-cli UNLINK {}\n```",
                    big[0].0
                )),
            );
        }
        let mut audit = Table::new(
            "Patterns mostly without TTL (estimated from the sample)",
            &["pattern", "sampled keys", "without TTL"],
        );
        let mut names = vec![];
        for (p, st) in &pats {
            let share = st.no_ttl as f64 / st.keys as f64;
            if share >= 0.5 && st.keys * 100 >= sampled {
                audit.row(vec![
                    (*p).clone(),
                    group(st.keys),
                    format!("{:.0}%", share * 100.0),
                ]);
                names.push((*p).clone());
            }
        }
        if !names.is_empty() {
            ctx.finding(
                Finding::new(
                    "REDIS_NO_TTL_MAJORITY",
                    Severity::Info,
                    format!("Most sampled keys of {} pattern(s) have no TTL: {}", names.len(), names.iter().take(5).cloned().collect::<Vec<_>>().join(", ")),
                )
                .fact("sampled keys", sampled)
                .fact("share of the keyspace sampled", format!("{coverage:.1}%"))
                .command("SCAN + PTTL sample")
                .table(audit)
                .remediation(format!(
                    "If these are caches or sessions, they live forever and fill memory. Add `EX` on writes of `{}` (e.g. `SET {}<id> <value> EX 86400`); shares are estimated from the sample.",
                    names[0],
                    names[0].trim_end_matches('*')
                )),
            );
        }
    }
}

/// Parses a `key=value` list as INFO prints for replicas (`slave0:ip=…,port=…,offset=…`).
pub fn kv_list(line: &str) -> BTreeMap<String, String> {
    line.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(key_pattern("session:9f2c"), "session:*");
        assert_eq!(key_pattern("a/b/c"), "a/*");
        assert_eq!(key_pattern("job1234"), "job*");
        assert_eq!(key_pattern("config"), "config");
    }

    #[test]
    fn slowlog_arguments_are_redacted() {
        let args: Vec<String> = ["set", "session:42", "hunter2", "EX", "60"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = redact_command(&args);
        assert_eq!(r, "SET session:* ‹3 args redacted›");
        assert!(!r.contains("hunter2") && !r.contains("42"));
    }

    #[test]
    fn info_and_keyspace() {
        let i = parse_info("# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\nused_memory:100\r\n");
        assert_eq!(db_keys(&i, 0), 12);
        assert_eq!(db_keys(&i, 1), 0);
        assert_eq!(num(&i, "used_memory"), 100.0);
        assert_eq!(kv_list("ip=1,port=2")["port"], "2");
    }
}
