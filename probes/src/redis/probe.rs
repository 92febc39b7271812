//! The Redis probe: what an SRE does by hand with redis-cli, done safely.
//!
//! Read-only and cheap by construction: the commands it sends are PING, INFO, MEMORY
//! STATS / DOCTOR / USAGE, SLOWLOG GET, SCAN (bounded, COUNT batches), TYPE, PTTL and
//! PUBSUB. Never KEYS, FLUSH*, DEBUG, CONFIG SET or MONITOR. Every command is counted
//! against `max_commands_per_sec`, so a big keyspace is sampled at a known pace.

use super::classify;
use super::rules::{self, Facts, Limits, Sampled, key_pattern};
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, ParamKind, ParamSpec, Params, Probe, ProbeSpec, Severity,
    group,
};
use crate::{ProbeError, redact_url};
use std::collections::HashMap;
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
        let numsub: Vec<(String, i64)> = numsub
            .chunks(2)
            .filter_map(|pair| match pair {
                [name, n] => Some((
                    redis::from_redis_value(name).unwrap_or_default(),
                    redis::from_redis_value(n).unwrap_or(0),
                )),
                _ => None,
            })
            .collect();
        if let Some(f) = rules::pubsub_no_subscribers(&expected, &numsub, numpat, channels.len()) {
            ctx.finding(f);
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
    let facts = Facts {
        info1,
        info2,
        secs,
        sample: sampled,
        dbsize,
        db,
        doctor,
        channels: channels.len(),
        numpat,
    };
    for f in rules::judge(&facts, &Limits::from_params(params)) {
        ctx.finding(f);
    }
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
    let mut out = Sampled::default();
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
                out.add(k, ty, mem, ttl, big_key);
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
    if let Some(f) = rules::slow_commands(rows) {
        ctx.finding(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::rules::{kv_list, num};

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
