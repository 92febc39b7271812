//! The Redis probe: what an SRE does by hand with redis-cli, done safely.
//!
//! Read-only and bounded by construction: the commands it sends are PING, INFO, DBSIZE,
//! MEMORY STATS / DOCTOR / USAGE, SLOWLOG GET, SCAN (COUNT batches), TYPE, PTTL, OBJECT
//! ENCODING, CLUSTER NODES and PUBSUB. Never KEYS, FLUSH*, DEBUG, CONFIG SET or MONITOR.
//! Every command is counted against the pace (`max_commands_per_sec`, lifted by
//! `maintenance_window`), and the key audit (`audit.rs`) backs off when the target's own
//! latency rises. A database of at most `full_audit_max_keys` keys is audited in full —
//! every key once, the top keys and pattern totals exact; a bigger one is sampled, and the
//! finding says what a sample cannot promise. A cluster's primaries are each audited and
//! the results merged.

use super::rules::{self, Facts, Limits, key_pattern};
use super::{audit, classify};
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, ParamKind, ParamSpec, Params, Probe, ProbeSpec, Severity,
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
    "Audit keys",
    "Pub/Sub",
    "Second INFO sample",
    "Analyse",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "full_audit_max_keys",
        label: "Full audit up to (keys)",
        help: "A database (a cluster primary) with at most this many keys has every key audited: the top keys, pattern totals and TTL coverage are exact. Above it, the keys below are sampled. 0 always samples.",
        kind: ParamKind::Int {
            min: 0,
            max: 100_000_000,
        },
        default: "5000000",
    },
    ParamSpec {
        name: "sample_keys",
        label: "Keys to sample",
        help: "Keys read when the database is bigger than the full-audit bound (0 skips the key audit then).",
        kind: ParamKind::Int {
            min: 0,
            max: 2_000_000,
        },
        default: "10000",
    },
    ParamSpec {
        name: "memory_samples",
        label: "MEMORY USAGE samples",
        help: "Elements MEMORY USAGE samples in an aggregate (hash, list, set, zset, stream): 0 counts every element (exact; costs more on huge keys), 5 is Redis's own default estimate (what redis-cli --memkeys uses unless given --memkeys-samples) and can misorder big aggregates.",
        kind: ParamKind::Int {
            min: 0,
            max: 10_000,
        },
        default: "0",
    },
    ParamSpec {
        name: "top_keys",
        label: "Top keys listed",
        help: "How many of the biggest keys the audit lists.",
        kind: ParamKind::Int { min: 1, max: 50 },
        default: "20",
    },
    ParamSpec {
        name: "maintenance_window",
        label: "Maintenance window (unpaced)",
        help: "Lifts the pace for the key audit: as fast as the target answers. It still backs off when the target's latency rises above the limit below.",
        kind: ParamKind::Bool,
        default: "false",
    },
    ParamSpec {
        name: "latency_limit_ms",
        label: "Target latency limit (ms)",
        help: "While the audit runs, a separate connection PINGs the target every 100 ms; when the median of the last three is above this, the audit halves its pace, and raises it again once the target is fast.",
        kind: ParamKind::Int { min: 1, max: 1000 },
        default: "10",
    },
    ParamSpec {
        name: "scan_count",
        label: "SCAN COUNT",
        help: "Keys asked for per SCAN call in a maintenance window (their MEMORY USAGE / TYPE / PTTL go in pipelines, many in flight). Paced, a SCAN asks for at most 20 and a pipeline carries 5 keys (8 while the walk is behind its pace), one at a time, each waited for, with a pause whenever the walk is a millisecond ahead of its pace: no other client waits behind a big batch.",
        kind: ParamKind::Int { min: 10, max: 5000 },
        default: "1000",
    },
    ParamSpec {
        name: "max_commands_per_sec",
        label: "Pace (commands/s)",
        help: "The most commands per second the probe sends to Redis (a full audit sends three per key); safe for a production instance by default.",
        kind: ParamKind::Int {
            min: 100,
            max: 1_000_000,
        },
        default: "50000",
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
        meaning: "The key audit: top keys by memory, key patterns by memory, count and TTL share, the type mix — exact when every key was read (the default up to 5M keys), estimated from a bounded sample above — with the pace used and the target's latency during the audit.",
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
    description: "Memory and eviction policy, eviction/expiry rates, fragmentation, clients, slow log, a key audit (every key up to 5M keys, a sample above; cluster primaries merged) with the biggest keys, key patterns, TTL coverage and type mix, paced and backing off when the target slows, Pub/Sub, replication and persistence.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    // A full audit of 5M keys at the default pace takes five minutes.
    run_timeout_s: 900,
    check: None,
};

/// INFO as a map (all sections). Lines are trimmed before a `#` section header is told
/// apart (a hostile server's `\t#x:y` is no key).
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
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

    ctx.phase("Audit keys");
    let plan = audit::Plan {
        full_up_to: params.int("full_audit_max_keys").max(0) as u64,
        sample_keys: params.int("sample_keys").max(0) as u64,
        scan_count: params.int("scan_count").max(1) as u64,
        memory_samples: params.int("memory_samples").max(0) as u64,
        pace: if params.flag("maintenance_window") {
            0
        } else {
            ctx.pace_now()
        },
        latency_limit: Duration::from_millis(params.int("latency_limit_ms").max(1) as u64),
        big_key: params.int("big_key_bytes") as u64,
        pipeline_keys: 100,
        in_flight: 64,
    };
    let cluster = info1.get("redis_mode").map(String::as_str) == Some("cluster");
    let mut dbsize = db_keys(&info1, db);
    let audited = if plan.full_up_to == 0 && plan.sample_keys == 0 {
        None
    } else if cluster {
        let nodes: String = cmd(
            ctx,
            &mut c,
            &target,
            start,
            redis::cmd("CLUSTER").arg("NODES"),
        )
        .await?;
        let primaries = cluster_primaries(&nodes);
        if primaries.is_empty() {
            return Err(ProbeError::Server {
                target,
                reason: "CLUSTER NODES lists no primary with slots".into(),
            });
        }
        let mut all: Option<audit::Audit> = None;
        for (host, port) in primaries.iter().take(64) {
            let url = node_url(&conn.url, host, *port)?;
            let node = redis::Client::open(url.as_str())
                .map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
            let label = format!("{host}:{port}");
            let a = audit::audit_node(ctx, &node, None, &label, &target, &plan).await?;
            match &mut all {
                None => all = Some(a),
                Some(x) => x.merge(a),
            }
        }
        all
    } else {
        let label = redact_url(&conn.display);
        Some(audit::audit_node(ctx, &client, Some(c.clone()), &label, &target, &plan).await?)
    };
    let (sampled, audit_meta) = match audited {
        Some(a) => {
            dbsize = a.meta.dbsize_before;
            (a.keys, a.meta)
        }
        None => Default::default(),
    };

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
        audit: audit_meta,
        channels: channels.len(),
        numpat,
    };
    for f in rules::judge(&facts, &Limits::from_params(params)) {
        ctx.finding(f);
    }
    Ok(())
}

/// The primaries of a cluster with slots, from `CLUSTER NODES` (`host:port` of each;
/// failed or address-less nodes left out).
pub fn cluster_primaries(nodes: &str) -> Vec<(String, u16)> {
    let mut out = vec![];
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 {
            continue;
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if !flags.contains(&"master")
            || flags
                .iter()
                .any(|x| matches!(*x, "fail" | "noaddr" | "handshake"))
        {
            continue;
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if host.is_empty() || port == 0 {
            continue;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        out.push((host, port));
    }
    out.sort();
    out.dedup();
    out
}

/// The target's URL pointed at another node of its cluster (same scheme, credentials,
/// TLS and database).
fn node_url(url: &str, host: &str, port: u16) -> Result<String, ProbeError> {
    let mut u = url::Url::parse(url).map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    u.set_host(Some(&host))
        .map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
    u.set_port(Some(port))
        .map_err(|_| ProbeError::InvalidTarget("the target URL cannot carry a port".into()))?;
    Ok(u.to_string())
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
    fn cluster_primaries_from_cluster_nodes() {
        let nodes = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003,redis-3.example master - 0 1426238318243 3 connected 10923-16383
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
aaaa 10.0.0.9:30009@40009 master,fail - 0 0 9 disconnected 1-2
bbbb :0@0 master,noaddr - 0 0 9 disconnected
cccc [::1]:30007@40007 master - 0 0 7 connected 3-4
";
        assert_eq!(
            cluster_primaries(nodes),
            vec![
                ("127.0.0.1".to_string(), 30001),
                ("127.0.0.1".to_string(), 30002),
                ("127.0.0.1".to_string(), 30003),
                ("::1".to_string(), 30007),
            ]
        );
        assert_eq!(
            node_url("rediss://u:p%40ss@cache.example:6380/0", "10.0.0.2", 7001).unwrap(),
            "rediss://u:p%40ss@10.0.0.2:7001/0"
        );
        assert_eq!(
            node_url("redis://h:1/0", "::1", 7001).unwrap(),
            "redis://[::1]:7001/0"
        );
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
