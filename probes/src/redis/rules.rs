//! The Redis probe's judging: pure functions from the facts the probe gathered (two INFO
//! samples, the key sample, the slow log, Pub/Sub counts) to findings, one per finding code
//! (or a closely related pair), with a table test per code at its threshold edges. The
//! network side is `probe.rs`.

use crate::framework::{Finding, Params, Severity, Table, bytes, group};
use std::collections::{BTreeMap, HashMap};

/// The thresholds, from the probe's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_high_pct: f64,
    pub fragmentation_pct: f64,
    pub fragmentation_min_bytes: u64,
    pub clients_high_pct: f64,
    pub replica_lag_bytes: u64,
    pub big_key_bytes: u64,
    /// Keys in the top-keys table.
    pub top_keys: usize,
}

impl Limits {
    pub fn from_params(p: &Params) -> Limits {
        Limits {
            memory_high_pct: p.int("memory_high_pct") as f64,
            fragmentation_pct: p.int("fragmentation_pct") as f64,
            fragmentation_min_bytes: p.int("fragmentation_min_bytes").max(0) as u64,
            clients_high_pct: p.int("clients_high_pct") as f64,
            replica_lag_bytes: p.int("replica_lag_bytes").max(0) as u64,
            big_key_bytes: p.int("big_key_bytes").max(0) as u64,
            top_keys: p.int("top_keys").max(1) as usize,
        }
    }
}

#[derive(Default, Clone, Debug)]
pub struct PatternStat {
    pub keys: u64,
    pub bytes: u64,
    pub no_ttl: u64,
}

/// A sampled key: name, type, memory, PTTL (ms; -1 none).
pub type KeyStat = (String, String, u64, i64);

/// A key in the running top: (memory, name — reversed, so ties keep the smaller name —,
/// type, PTTL).
pub type Ranked = (u64, std::cmp::Reverse<String>, String, i64);

/// How many of the biggest sampled keys are kept (the rest only count).
pub const KEEP_BIGGEST: usize = 50;

/// What the key sample found.
#[derive(Default, Debug)]
pub struct Sampled {
    /// Keys sampled.
    pub n: u64,
    /// The biggest keys, at most [`KEEP_BIGGEST`] (a min-heap on memory).
    /// Ordered by memory, then by name *descending*, so of keys of equal size the one
    /// with the greater name leaves first: the kept set is the top by (memory, then name
    /// ascending), the order the tables show.
    pub biggest: std::collections::BinaryHeap<std::cmp::Reverse<Ranked>>,
    /// Sampled keys at or above the big-key threshold.
    pub big: u64,
    pub patterns: HashMap<String, PatternStat>,
    pub no_ttl: u64,
}

impl Sampled {
    /// Adds another node's keys (a cluster's shards).
    pub fn merge(&mut self, o: Sampled) {
        self.n += o.n;
        self.big += o.big;
        self.no_ttl += o.no_ttl;
        for (p, st) in o.patterns {
            let e = self.patterns.entry(p).or_default();
            e.keys += st.keys;
            e.bytes += st.bytes;
            e.no_ttl += st.no_ttl;
        }
        for k in o.biggest {
            self.biggest.push(k);
            if self.biggest.len() > KEEP_BIGGEST {
                self.biggest.pop();
            }
        }
    }

    /// Counts one key (`ttl` in ms, -1 for none). (Called once per key of a full audit:
    /// no allocation for a pattern already seen, and a key too small for the top is not
    /// pushed only to be popped.)
    pub fn add(&mut self, key: String, ty: String, mem: u64, ttl: i64, big_key: u64) {
        with_key_pattern(&key, |pattern| {
            if !self.patterns.contains_key(pattern) {
                self.patterns
                    .insert(pattern.to_string(), PatternStat::default());
            }
            if let Some(p) = self.patterns.get_mut(pattern) {
                p.keys += 1;
                p.bytes += mem;
                if ttl == -1 {
                    p.no_ttl += 1;
                }
            }
        });
        if ttl == -1 {
            self.no_ttl += 1;
        }
        self.n += 1;
        if mem >= big_key {
            self.big += 1;
        }
        if self.biggest.len() >= KEEP_BIGGEST
            && self.biggest.peek().is_some_and(|std::cmp::Reverse(least)| {
                (mem, std::cmp::Reverse(key.as_str()))
                    < (least.0, std::cmp::Reverse(least.1.0.as_str()))
            })
        {
            return;
        }
        self.biggest
            .push(std::cmp::Reverse((mem, std::cmp::Reverse(key), ty, ttl)));
        if self.biggest.len() > KEEP_BIGGEST {
            self.biggest.pop();
        }
    }
}

/// The pattern a key belongs to: its prefix up to the first separator, then `*`
/// (`session:9f2c` → `session:*`); keys without a separator lose their digits
/// (`job1234` → `job*`).
pub fn key_pattern(key: &str) -> String {
    with_key_pattern(key, str::to_string)
}

/// Calls `f` with [`key_pattern`]`(key)`, built on the stack when it is short.
fn with_key_pattern<R>(key: &str, f: impl FnOnce(&str) -> R) -> R {
    let stem = match key.find([':', '/', '|', '.', '#']) {
        Some(i) => &key[..=i],
        None => {
            let stripped = key.trim_end_matches(|c: char| c.is_ascii_digit());
            if stripped.len() == key.len() {
                return f(key);
            }
            stripped
        }
    };
    let mut buf = [0u8; 64];
    if let Some(room) = buf.get_mut(..=stem.len()) {
        let (head, star) = room.split_at_mut(stem.len());
        head.copy_from_slice(stem.as_bytes());
        star.fill(b'*');
        if let Ok(p) = std::str::from_utf8(room) {
            return f(p);
        }
    }
    f(&format!("{stem}*"))
}

/// Everything the probe gathered, for judging.
#[derive(Default, Debug)]
pub struct Facts {
    /// INFO all, first and second sample.
    pub info1: HashMap<String, String>,
    pub info2: HashMap<String, String>,
    /// Seconds between the two samples.
    pub secs: f64,
    pub sample: Sampled,
    /// Keys in the probed database (INFO keyspace).
    pub dbsize: u64,
    pub db: i64,
    pub doctor: String,
    /// What the key audit says about itself (mode, keyspace changes, load, types).
    pub audit: super::audit::Meta,
    pub channels: usize,
    pub numpat: i64,
}

pub(crate) fn num(info: &HashMap<String, String>, k: &str) -> f64 {
    info.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// Parses a `key=value` list as INFO prints for replicas (`slave0:ip=…,port=…,offset=…`).
pub fn kv_list(line: &str) -> BTreeMap<String, String> {
    line.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Values several rules read, derived once from the facts.
struct Derived {
    used: u64,
    maxmem: u64,
    system: u64,
    policy: String,
    high_pct: f64,
    evicted: f64,
    ev_rate: f64,
    ex_rate: f64,
    clients: u64,
    maxclients: u64,
    role: String,
    sampled: u64,
    no_ttl_share: f64,
    coverage: f64,
    secs: f64,
}

impl Facts {
    fn derived(&self, l: &Limits) -> Derived {
        let (i1, i2, s) = (&self.info1, &self.info2, &self.sample);
        let secs = self.secs.max(0.001);
        let evicted = (num(i2, "evicted_keys") - num(i1, "evicted_keys")).max(0.0);
        let expired = (num(i2, "expired_keys") - num(i1, "expired_keys")).max(0.0);
        Derived {
            used: num(i2, "used_memory") as u64,
            maxmem: num(i2, "maxmemory") as u64,
            system: num(i2, "total_system_memory") as u64,
            policy: i2.get("maxmemory_policy").cloned().unwrap_or_default(),
            high_pct: l.memory_high_pct,
            evicted,
            ev_rate: evicted / secs,
            ex_rate: expired / secs,
            clients: num(i2, "connected_clients") as u64,
            maxclients: num(i2, "maxclients") as u64,
            role: i2.get("role").cloned().unwrap_or_default(),
            sampled: s.n,
            no_ttl_share: if s.n > 0 {
                s.no_ttl as f64 / s.n as f64
            } else {
                0.0
            },
            coverage: if self.dbsize > 0 {
                s.n as f64 / self.dbsize as f64 * 100.0
            } else {
                0.0
            },
            secs,
        }
    }
}

/// Every finding the facts support, in report order.
pub fn judge(f: &Facts, l: &Limits) -> Vec<Finding> {
    let mut out = vec![];
    let d = f.derived(l);
    for rule in [
        summary,
        noeviction_near_limit,
        no_maxmemory,
        volatile_policy_no_ttl,
        evicting,
        fragmentation,
        rejected_connections,
        clients_near_max,
        blocked_clients,
        replication,
        persistence,
        keyspace,
    ] {
        rule(f, &d, l, &mut out);
    }
    out
}

/// One slow-log entry: duration (µs), when (unix s), the redacted command, client name.
pub type SlowEntry = (u64, i64, String, String);

/// `REDIS_SLOW_COMMANDS`: any entry in the slow log, slowest first (arguments already
/// redacted by the gatherer).
pub fn slow_commands(mut rows: Vec<SlowEntry>) -> Option<Finding> {
    if rows.is_empty() {
        return None;
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
    Some(
        Finding::new(
            "REDIS_SLOW_COMMANDS",
            Severity::Warning,
            format!("{} slow commands in the slow log; slowest {:.1} ms ({top_cmd})", rows.len(), *top_us as f64 / 1000.0),
        )
        .command("SLOWLOG GET 20")
        .table(t)
        .remediation("Slow commands block every other client (Redis runs commands one at a time). Replace O(N) commands on big keys: `SCAN`/`HSCAN`/`SSCAN` instead of `KEYS`/`HGETALL`/`SMEMBERS`, `UNLINK` instead of `DEL` on big keys. When the cause is fixed, clear the log:\n\n```\nredis-cli SLOWLOG RESET\n```"),
    )
}

/// `REDIS_PUBSUB_NO_SUBSCRIBERS`: expected channels (`PUBSUB NUMSUB` answers) without a
/// subscriber.
pub fn pubsub_no_subscribers(
    expected: &[&str],
    numsub: &[(String, i64)],
    numpat: i64,
    channels: usize,
) -> Option<Finding> {
    let mut dead = Table::new(
        "Expected channels without subscribers",
        &["channel", "subscribers"],
    );
    for (name, n) in numsub {
        if *n == 0 {
            dead.row(vec![name.clone(), "0".into()]);
        }
    }
    if dead.rows.is_empty() {
        return None;
    }
    let names: Vec<String> = dead.rows.iter().map(|r| r[0].clone()).collect();
    Some(
        Finding::new(
            "REDIS_PUBSUB_NO_SUBSCRIBERS",
            Severity::Warning,
            format!("{} expected Pub/Sub channel(s) have no subscribers: {}", names.len(), names.join(", ")),
        )
        .fact("pattern subscriptions (PUBSUB NUMPAT)", numpat)
        .fact("active channels", channels)
        .command(format!("PUBSUB NUMSUB {}", expected.join(" ")))
        .table(dead)
        .remediation(format!(
            "Messages published to these channels are dropped: Pub/Sub keeps nothing for absent subscribers. Restart or fix the service that subscribes to `{}`{}.",
            names.join("`, `"),
            if numpat > 0 { " (some pattern subscriptions exist: check whether one of them is meant to cover it)" } else { "" }
        )),
    )
}

/// `REDIS_SUMMARY`: the context every other finding is read in.
fn summary(f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        used,
        maxmem,
        ref policy,
        ev_rate,
        ex_rate,
        clients,
        maxclients,
        ref role,
        secs,
        ..
    } = d;
    let i2 = &f.info2;
    let dbsize = f.dbsize;
    let db = f.db;
    let doctor = f.doctor.as_str();
    let channels = f.channels;
    let numpat = f.numpat;
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
    .fact("role", role)
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
    .fact("maxmemory_policy", policy)
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
    out.push(summary);
}

/// `REDIS_NOEVICTION_NEAR_LIMIT`: noeviction and memory at or above `memory_high_pct` of maxmemory (critical from 95%).
fn noeviction_near_limit(f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        used,
        maxmem,
        ref policy,
        high_pct,
        sampled,
        ..
    } = d;
    let s = &f.sample;
    if maxmem > 0 && policy == "noeviction" {
        let pct = used as f64 / maxmem as f64 * 100.0;
        if pct >= high_pct {
            out.push(
                Finding::new(
                    "REDIS_NOEVICTION_NEAR_LIMIT",
                    if pct >= 95.0 { Severity::Critical } else { Severity::Warning },
                    format!("maxmemory-policy is noeviction and memory is {pct:.0}% of maxmemory: writes will fail with OOM"),
                )
                .fact("used_memory", bytes(used))
                .fact("maxmemory", bytes(maxmem))
                .fact("maxmemory_policy", policy)
                .command("INFO memory")
                .remediation(format!(
                    "When memory reaches maxmemory, every write fails with `OOM command not allowed`. If this Redis is a cache, let it evict:\n\n```\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n\nIf it is a store, raise the limit (and the container's) or delete data; the biggest patterns in the sample are the place to start.{}",
                    if s.no_ttl > 0 { format!(" {} of {} sampled keys have no TTL.", group(s.no_ttl), group(sampled)) } else { String::new() }
                )),
            );
        }
    }
}

/// `REDIS_NO_MAXMEMORY`: no limit at all (a warning once memory is `memory_high_pct` of the machine's).
fn no_maxmemory(_f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        used,
        maxmem,
        system,
        ref policy,
        high_pct,
        ..
    } = d;
    if maxmem == 0 {
        let pct = if system > 0 {
            used as f64 / system as f64 * 100.0
        } else {
            0.0
        };
        out.push(
            Finding::new(
                "REDIS_NO_MAXMEMORY",
                if pct >= high_pct { Severity::Warning } else { Severity::Info },
                format!("No maxmemory set: Redis uses {} ({pct:.1}% of the machine's {}) and will grow until killed", bytes(used), bytes(system)),
            )
            .fact("used_memory", bytes(used))
            .fact("total_system_memory", bytes(system))
            .fact("maxmemory_policy", policy)
            .command("INFO memory")
            .remediation("Set a limit below the container's memory limit (leave room for fork on BGSAVE), then persist it in redis.conf:\n\n```\nredis-cli CONFIG SET maxmemory 4gb\n```"),
        );
    }
}

/// `REDIS_VOLATILE_POLICY_NO_TTL`: a volatile-* policy while half or more of the sampled keys have no TTL.
fn volatile_policy_no_ttl(f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        ref policy,
        sampled,
        no_ttl_share,
        ..
    } = d;
    let s = &f.sample;
    if policy.starts_with("volatile-") && sampled > 0 && no_ttl_share >= 0.5 {
        out.push(
            Finding::new(
                "REDIS_VOLATILE_POLICY_NO_TTL",
                Severity::Warning,
                format!("maxmemory-policy {policy} can only evict keys with a TTL, but {:.0}% of sampled keys have none", no_ttl_share * 100.0),
            )
            .fact("maxmemory_policy", policy)
            .fact("sampled keys", sampled)
            .fact("sampled keys without TTL", s.no_ttl)
            .command("INFO memory; SCAN + PTTL sample")
            .remediation("Eviction cannot free keys without a TTL, so memory fills up and writes fail. Either evict any key:\n\n```\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n\nor set a TTL on writes (`SET key value EX 3600`) of the patterns listed in the TTL audit."),
        );
    }
}

/// `REDIS_EVICTING`: keys evicted between the two INFO samples.
fn evicting(_f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        used,
        maxmem,
        ref policy,
        evicted,
        ev_rate,
        secs,
        ..
    } = d;
    if evicted > 0.0 {
        out.push(
            Finding::new(
                "REDIS_EVICTING",
                Severity::Warning,
                format!("Evicting {ev_rate:.1} keys/s ({} keys in {secs:.1} s)", group(evicted as u64)),
            )
            .fact("evicted_keys (window)", evicted)
            .fact("evictions per second", format!("{ev_rate:.1}"))
            .fact("used_memory", bytes(used))
            .fact("maxmemory", bytes(maxmem))
            .fact("maxmemory_policy", policy)
            .command(format!("INFO stats, twice {secs:.1} s apart"))
            .remediation("The working set does not fit: hot keys are being thrown out, so hit rate and latency suffer. Raise maxmemory, shorten TTLs on the biggest patterns, or shrink big keys:\n\n```\nredis-cli CONFIG SET maxmemory 8gb\n```"),
        );
    }
}

/// `REDIS_FRAGMENTATION`: the ratio at or above `fragmentation_pct` and at least `fragmentation_min_bytes` wasted.
fn fragmentation(f: &Facts, d: &Derived, l: &Limits, out: &mut Vec<Finding>) {
    let &Derived { used, .. } = d;
    let i2 = &f.info2;
    let frag = num(i2, "mem_fragmentation_ratio");
    let rss = num(i2, "used_memory_rss") as u64;
    let waste = rss.saturating_sub(used);
    if frag * 100.0 >= l.fragmentation_pct && waste >= l.fragmentation_min_bytes {
        out.push(
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
}

/// `REDIS_REJECTED_CONNECTIONS`: any connection rejected since the stats were reset.
fn rejected_connections(f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        clients,
        maxclients,
        ..
    } = d;
    let i1 = &f.info1;
    let i2 = &f.info2;
    let rejected = num(i2, "rejected_connections") as u64;
    if rejected > 0 {
        let new =
            (num(i2, "rejected_connections") - num(i1, "rejected_connections")).max(0.0) as u64;
        out.push(
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
}

/// `REDIS_CLIENTS_NEAR_MAX`: connections at or above `clients_high_pct` of maxclients (critical from 95%).
fn clients_near_max(_f: &Facts, d: &Derived, l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        clients,
        maxclients,
        ..
    } = d;
    if maxclients > 0 {
        let pct = clients as f64 / maxclients as f64 * 100.0;
        if pct >= l.clients_high_pct {
            out.push(
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
}

/// `REDIS_BLOCKED_CLIENTS`: clients waiting in a blocking command.
fn blocked_clients(f: &Facts, d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let &Derived { clients, .. } = d;
    let i2 = &f.info2;
    let blocked = num(i2, "blocked_clients") as u64;
    if blocked > 0 {
        out.push(
            Finding::new("REDIS_BLOCKED_CLIENTS", Severity::Info, format!("{blocked} clients blocked in a blocking command (BLPOP, XREAD, WAIT, …)"))
                .fact("blocked_clients", blocked)
                .fact("connected_clients", clients)
                .command("INFO clients")
                .remediation("Normal for queue workers waiting on empty lists. If the workers should be busy, check the producers; list them with:\n\n```\nredis-cli CLIENT LIST\n```\n\n(`flags=b` marks a blocked client)."),
        );
    }
}

/// `REDIS_REPLICA_LAG` (a primary's replica `replica_lag_bytes` or 10 s behind) and `REDIS_REPLICA_LINK_DOWN` (a replica whose link is not up).
fn replication(f: &Facts, d: &Derived, l: &Limits, out: &mut Vec<Finding>) {
    let Derived { role, .. } = d;
    let i2 = &f.info2;
    // Replication.
    if role == "master" {
        let master_off = num(i2, "master_repl_offset") as u64;
        let mut t = Table::new(
            "Replicas",
            &["replica", "state", "offset", "behind", "last ack (s)"],
        );
        let mut lagging = 0;
        let limit = l.replica_lag_bytes;
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
            out.push(
                Finding::new("REDIS_REPLICA_LAG", Severity::Warning, format!("{lagging} replica(s) behind the primary (offset {})", group(master_off)))
                    .fact("master_repl_offset", master_off)
                    .fact("connected_slaves", num(i2, "connected_slaves"))
                    .command("INFO replication")
                    .table(t)
                    .remediation("A lagging replica serves stale reads and loses data on failover. On the replica check CPU, network and disk, and the output buffer limit for replicas on the primary:\n\n```\nredis-cli -h <replica> INFO replication\nredis-cli CONFIG GET client-output-buffer-limit\n```"),
            );
        }
    } else if role == "slave" && i2.get("master_link_status").map(String::as_str) != Some("up") {
        out.push(
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
}

/// `REDIS_PERSISTENCE_ERROR`: the last RDB save or (with AOF on) AOF write failed.
fn persistence(f: &Facts, _d: &Derived, _l: &Limits, out: &mut Vec<Finding>) {
    let i2 = &f.info2;
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
        out.push(
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
}

/// `REDIS_KEYSPACE_SAMPLE` (the audit: every key, or a sample that says what it cannot
/// promise), `REDIS_BIG_KEYS` (keys of `big_key_bytes` or more) and `REDIS_NO_TTL_MAJORITY`
/// (patterns with ≥ 1% of the keys read, half or more without TTL).
fn keyspace(f: &Facts, d: &Derived, l: &Limits, out: &mut Vec<Finding>) {
    let &Derived {
        sampled,
        no_ttl_share,
        coverage,
        ..
    } = d;
    let s = &f.sample;
    let a = &f.audit;
    let dbsize = f.dbsize;
    let db = f.db;
    if sampled == 0 {
        return;
    }
    let full = a.full;
    // A sample's counts are scaled to the keyspace; a full audit's are the counts.
    let scale = if !full && dbsize > sampled {
        dbsize as f64 / sampled as f64
    } else {
        1.0
    };
    let what = if full { "keys" } else { "sampled keys" };
    let mut keys: Vec<KeyStat> = s
        .biggest
        .iter()
        .map(|std::cmp::Reverse((m, std::cmp::Reverse(k), t, ttl))| {
            (k.clone(), t.clone(), *m, *ttl)
        })
        .collect();
    keys.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(&y.0)));
    let n_top = l.top_keys.clamp(1, KEEP_BIGGEST);
    let mut top = Table::new(
        &if full {
            format!("Top {n_top} keys by memory (every key read: exact)")
        } else {
            format!("Top {n_top} keys by memory (in the sample)")
        },
        &["key", "type", "encoding", "memory", "TTL"],
    );
    for (k, ty, mem, ttl) in keys.iter().take(n_top) {
        top.row(vec![
            k.clone(),
            ty.clone(),
            a.encodings.get(k).cloned().unwrap_or_default(),
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
    let total: u64 = s.patterns.values().map(|p| p.bytes).sum();
    let mut pt = if full {
        Table::new(
            "Key patterns by memory (every key: exact totals)",
            &[
                "pattern",
                "keys",
                "memory",
                "share of memory",
                "without TTL",
            ],
        )
    } else {
        Table::new(
            "Top key patterns by estimated memory",
            &[
                "pattern",
                "sampled keys",
                "sampled memory",
                "est. keys",
                "est. memory",
                "without TTL",
            ],
        )
    };
    for (p, st) in pats.iter().take(20) {
        let no_ttl = format!("{:.0}%", st.no_ttl as f64 / st.keys as f64 * 100.0);
        pt.row(if full {
            vec![
                (*p).clone(),
                group(st.keys),
                bytes(st.bytes),
                format!("{:.1}%", st.bytes as f64 * 100.0 / total.max(1) as f64),
                no_ttl,
            ]
        } else {
            vec![
                (*p).clone(),
                group(st.keys),
                bytes(st.bytes),
                group((st.keys as f64 * scale) as u64),
                bytes((st.bytes as f64 * scale) as u64),
                no_ttl,
            ]
        });
    }
    let mut types = Table::new(
        if full {
            "Types (every key)"
        } else {
            "Types (in the sample)"
        },
        &["type", "keys", "memory"],
    );
    let mut tl: Vec<(&String, &(u64, u64))> = a.types.iter().collect();
    tl.sort_by(|x, y| y.1.1.cmp(&x.1.1).then(x.0.cmp(y.0)));
    for (t, (k, b)) in tl {
        types.row(vec![t.clone(), group(*k), bytes(*b)]);
    }
    let biggest = keys.first();
    let head = if full {
        format!(
            "Audited every key: {} keys in {}{}; biggest: {} ({})",
            group(sampled),
            if a.nodes.len() > 1 {
                format!("{} primaries", a.nodes.len())
            } else {
                format!("db{db}")
            },
            if a.under_change() {
                " (taken while the keyspace changed)"
            } else {
                ""
            },
            biggest.map(|k| k.0.as_str()).unwrap_or("-"),
            bytes(biggest.map(|k| k.2).unwrap_or(0))
        )
    } else {
        format!(
            "Sampled {} of {} keys ({coverage:.1}% of db{db}); biggest in the sample: {} ({}) — a single big key is in a sample this size with probability ≈ {coverage:.1}%",
            group(sampled),
            group(dbsize),
            biggest.map(|k| k.0.as_str()).unwrap_or("-"),
            bytes(biggest.map(|k| k.2).unwrap_or(0))
        )
    };
    let mut finding = Finding::new("REDIS_KEYSPACE_SAMPLE", Severity::Info, head)
        .fact("mode", if full { "every key" } else { "sample" })
        .fact("keys read", sampled)
        .fact("keys in db", dbsize)
        .fact("share of the keyspace read", format!("{coverage:.1}%"))
        .fact(
            &format!("{what} without TTL"),
            format!("{} ({:.0}%)", s.no_ttl, no_ttl_share * 100.0),
        );
    if a.dbsize_before > 0 || a.dbsize_after > 0 {
        finding = finding.fact(
            "keyspace during the audit",
            format!(
                "DBSIZE {} before, {} after; {} key(s) gone before they were measured; {} returned twice by SCAN (counted once)",
                group(a.dbsize_before),
                group(a.dbsize_after),
                group(a.vanished),
                group(a.duplicates)
            ),
        );
    }
    if a.nodes.len() > 1 {
        finding = finding.fact("primaries audited", a.nodes.join(", "));
    }
    let mut load = Table::new(
        "Load on the target during the audit",
        &[
            "node",
            "pace",
            "back-offs",
            "PING before",
            "PING p50 / p99 / max during",
            "ops/s before → during",
            "commands",
            "seconds",
        ],
    );
    for (node, ld) in &a.load {
        load.row(vec![
            node.clone(),
            if ld.pace == 0 {
                "unpaced (maintenance window)".into()
            } else {
                format!("{}/s", group(ld.pace as u64))
            },
            if ld.backoffs == 0 {
                "0".into()
            } else {
                format!(
                    "{} (down to {}/s)",
                    ld.backoffs,
                    group(ld.slowest_pace as u64)
                )
            },
            format!("{:.2} ms", ld.baseline_ms),
            if ld.watched {
                format!("{:.2} / {:.2} / {:.2} ms", ld.p50_ms, ld.p99_ms, ld.max_ms)
            } else {
                "not watched (no connection to spare)".into()
            },
            format!(
                "{} → {}",
                group(ld.ops_before as u64),
                group(ld.ops_during as u64)
            ),
            group(ld.commands),
            format!("{:.1}", ld.secs),
        ]);
    }
    finding = finding
        .command(if full {
            "SCAN cursor COUNT n over every key; MEMORY USAGE key SAMPLES n / TYPE / PTTL per key, deeply pipelined; OBJECT ENCODING on the biggest"
        } else {
            "SCAN cursor COUNT n (a bounded sample); MEMORY USAGE / TYPE / PTTL per key, pipelined"
        })
        .table(top)
        .table(pt)
        .table(types);
    if !a.load.is_empty() {
        finding = finding.table(load);
    }
    out.push(finding.remediation(if full {
        "Every key was read once; the sizes are MEMORY USAGE's (with SAMPLES 0, the default, every element of an aggregate is counted; `redis-cli --memkeys` estimates aggregates from 5 samples).".to_string()
    } else {
        format!(
            "A sample of {coverage:.1}% of the keys: the estimates scale it to the whole keyspace, and a single big key outside it is not seen (it is in a sample this size with probability ≈ {coverage:.1}%). For certainty, run a full audit: raise full_audit_max_keys above the key count (at the pace you choose, or in a maintenance window)."
        )
    }));
    let big: Vec<&KeyStat> = keys.iter().filter(|k| k.2 >= l.big_key_bytes).collect();
    if !big.is_empty() {
        let mut t = Table::new(
            &format!("Big keys ({what}; the biggest 50)"),
            &["key", "type", "memory"],
        );
        for (k, ty, mem, _) in big.iter().copied() {
            t.row(vec![k.clone(), ty.clone(), bytes(*mem)]);
        }
        out.push(
            Finding::new(
                "REDIS_BIG_KEYS",
                Severity::Warning,
                format!("{} {what} of {} or more; biggest {} ({})", s.big, bytes(l.big_key_bytes), big[0].0, bytes(big[0].2)),
            )
            .fact("threshold", bytes(l.big_key_bytes))
            .command("MEMORY USAGE <key>")
            .table(t)
            .remediation(format!(
                "Big keys are slow to read whole and block Redis when deleted. Split them (e.g. hash buckets), read them with HSCAN/SSCAN/ZSCAN, and delete without blocking:\n\n```\nredis-cli UNLINK {}\n```",
                big[0].0
            )),
        );
    }
    let mut audit = Table::new(
        if full {
            "Patterns mostly without TTL (every key)"
        } else {
            "Patterns mostly without TTL (estimated from the sample)"
        },
        &["pattern", "keys", "without TTL"],
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
        out.push(
            Finding::new(
                "REDIS_NO_TTL_MAJORITY",
                Severity::Info,
                format!("Most {what} of {} pattern(s) have no TTL: {}", names.len(), names.iter().take(5).cloned().collect::<Vec<_>>().join(", ")),
            )
            .fact("keys read", sampled)
            .fact("share of the keyspace read", format!("{coverage:.1}%"))
            .command("SCAN + PTTL per key")
            .table(audit)
            .remediation(format!(
                "If these are caches or sessions, they live forever and fill memory. Add `EX` on writes of `{}` (e.g. `SET {}<id> <value> EX 86400`){}.",
                names[0],
                names[0].trim_end_matches('*'),
                if full { "" } else { "; shares are estimated from the sample" }
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::*;

    const LIMITS: Limits = Limits {
        memory_high_pct: 80.0,
        fragmentation_pct: 150.0,
        fragmentation_min_bytes: 100 << 20,
        clients_high_pct: 80.0,
        replica_lag_bytes: 1 << 20,
        big_key_bytes: 10 << 20,
        top_keys: 20,
    };

    #[test]
    fn key_patterns() {
        let long = format!("{}:1", "x".repeat(70));
        let cases: &[(&str, String)] = &[
            ("session:9f2c", "session:*".into()),
            ("cache/product/7", "cache/*".into()),
            ("a|b", "a|*".into()),
            ("v1.2", "v1.*".into()),
            ("job1234", "job*".into()),
            ("1234", "*".into()),
            ("plain", "plain".into()),
            ("ключ:1", "ключ:*".into()),
            // A prefix too long for the stack buffer takes the allocating way.
            (&long, format!("{}:*", "x".repeat(70))),
        ];
        for (key, want) in cases {
            assert_eq!(&key_pattern(key), want, "{key}");
        }
    }

    #[test]
    fn the_kept_top_is_the_true_top_whatever_the_order() {
        // 2,000 keys, many of equal size, in a scrambled order: the kept top is the first
        // KEEP_BIGGEST by (memory descending, name ascending), and the pattern totals
        // count every key.
        let mut s = Sampled::default();
        let mut all = vec![];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..2_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("{}:{}", ["a", "b", "c"][(i % 3) as usize], x % 10_000);
            let mem = (x >> 20) % 300;
            if all.iter().any(|(_, k)| k == &key) {
                continue;
            }
            all.push((mem, key.clone()));
            s.add(
                key,
                "string".into(),
                mem,
                if i % 2 == 0 { -1 } else { 5 },
                250,
            );
        }
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<(u64, String)> = all.iter().take(KEEP_BIGGEST).cloned().collect();
        let mut got: Vec<(u64, String)> = s
            .biggest
            .iter()
            .map(|std::cmp::Reverse((m, std::cmp::Reverse(k), _, _))| (*m, k.clone()))
            .collect();
        got.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(got, want);
        assert_eq!(s.n, all.len() as u64);
        let total: u64 = s.patterns.values().map(|p| p.keys).sum();
        assert_eq!(total, all.len() as u64);
        let bytes: u64 = s.patterns.values().map(|p| p.bytes).sum();
        assert_eq!(bytes, all.iter().map(|(m, _)| m).sum::<u64>());
        assert_eq!(s.patterns.len(), 3);
    }

    fn info(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A healthy primary: 1 GB of 8 GB maxmemory (allkeys-lru), 10 of 10,000 clients.
    const HEALTHY: &[(&str, &str)] = &[
        ("redis_version", "7.2.4"),
        ("role", "master"),
        ("used_memory", "1000000000"),
        ("used_memory_rss", "1100000000"),
        ("maxmemory", "8000000000"),
        ("maxmemory_policy", "allkeys-lru"),
        ("total_system_memory", "16000000000"),
        ("mem_fragmentation_ratio", "1.10"),
        ("connected_clients", "10"),
        ("maxclients", "10000"),
        ("blocked_clients", "0"),
        ("rejected_connections", "0"),
        ("evicted_keys", "0"),
        ("master_repl_offset", "5000"),
        ("rdb_last_bgsave_status", "ok"),
        ("aof_enabled", "0"),
    ];

    /// The healthy facts with `changes` applied to the second INFO sample.
    fn facts(changes: &[(&str, &str)]) -> Facts {
        let mut i2 = info(HEALTHY);
        i2.extend(info(changes));
        Facts {
            info1: info(HEALTHY),
            info2: i2,
            secs: 2.0,
            dbsize: 1000,
            ..Facts::default()
        }
    }

    /// The severity `code` is raised with, if it is.
    fn raised(f: &Facts, code: &str) -> Option<Severity> {
        judge(f, &LIMITS)
            .into_iter()
            .find(|x| x.code == code)
            .map(|x| x.severity)
    }

    #[test]
    fn a_healthy_primary_gets_only_its_summary() {
        let all: Vec<String> = judge(&facts(&[]), &LIMITS)
            .into_iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(all, ["REDIS_SUMMARY"]);
    }

    #[test]
    fn each_info_rule_at_its_edges() {
        let gb = |n: f64| format!("{}", (n * 1e9) as u64);
        for (code, changes, want) in [
            // noeviction: below 80% nothing, 80% warning, 95% critical; another policy never.
            (
                "REDIS_NOEVICTION_NEAR_LIMIT",
                vec![
                    ("maxmemory_policy", "noeviction".into()),
                    ("used_memory", gb(6.39)),
                ],
                None,
            ),
            (
                "REDIS_NOEVICTION_NEAR_LIMIT",
                vec![
                    ("maxmemory_policy", "noeviction".into()),
                    ("used_memory", gb(6.4)),
                ],
                Some(Warning),
            ),
            (
                "REDIS_NOEVICTION_NEAR_LIMIT",
                vec![
                    ("maxmemory_policy", "noeviction".into()),
                    ("used_memory", gb(7.6)),
                ],
                Some(Critical),
            ),
            (
                "REDIS_NOEVICTION_NEAR_LIMIT",
                vec![("used_memory", gb(7.9))],
                None,
            ),
            // No maxmemory: info, a warning from 80% of the machine.
            (
                "REDIS_NO_MAXMEMORY",
                vec![("maxmemory", "0".into())],
                Some(Info),
            ),
            (
                "REDIS_NO_MAXMEMORY",
                vec![("maxmemory", "0".into()), ("used_memory", gb(12.8))],
                Some(Warning),
            ),
            // Evictions between the two samples (the counter moved).
            (
                "REDIS_EVICTING",
                vec![("evicted_keys", "1".into())],
                Some(Warning),
            ),
            // Fragmentation needs both the ratio and the waste.
            (
                "REDIS_FRAGMENTATION",
                vec![
                    ("mem_fragmentation_ratio", "1.49".into()),
                    ("used_memory_rss", gb(1.49)),
                ],
                None,
            ),
            (
                "REDIS_FRAGMENTATION",
                vec![
                    ("mem_fragmentation_ratio", "1.5".into()),
                    ("used_memory_rss", gb(1.5)),
                ],
                Some(Warning),
            ),
            (
                "REDIS_FRAGMENTATION",
                vec![
                    ("mem_fragmentation_ratio", "3.0".into()),
                    ("used_memory", "10000000".into()),
                    ("used_memory_rss", "30000000".into()),
                ],
                None,
            ),
            (
                "REDIS_REJECTED_CONNECTIONS",
                vec![("rejected_connections", "1".into())],
                Some(Warning),
            ),
            // Clients: 79% nothing, 80% warning, 95% critical.
            (
                "REDIS_CLIENTS_NEAR_MAX",
                vec![("connected_clients", "7999".into())],
                None,
            ),
            (
                "REDIS_CLIENTS_NEAR_MAX",
                vec![("connected_clients", "8000".into())],
                Some(Warning),
            ),
            (
                "REDIS_CLIENTS_NEAR_MAX",
                vec![("connected_clients", "9500".into())],
                Some(Critical),
            ),
            (
                "REDIS_BLOCKED_CLIENTS",
                vec![("blocked_clients", "3".into())],
                Some(Info),
            ),
            // A replica 1 MiB behind (or 10 s since its last ack) lags; just under does not.
            (
                "REDIS_REPLICA_LAG",
                vec![
                    ("master_repl_offset", format!("{}", 5000 + (1 << 20) - 1)),
                    (
                        "slave0",
                        "ip=10.0.0.2,port=6379,state=online,offset=5000,lag=0".into(),
                    ),
                ],
                None,
            ),
            (
                "REDIS_REPLICA_LAG",
                vec![
                    ("master_repl_offset", format!("{}", 5000 + (1 << 20))),
                    (
                        "slave0",
                        "ip=10.0.0.2,port=6379,state=online,offset=5000,lag=0".into(),
                    ),
                ],
                Some(Warning),
            ),
            (
                "REDIS_REPLICA_LAG",
                vec![(
                    "slave0",
                    "ip=10.0.0.2,port=6379,state=online,offset=5000,lag=9".into(),
                )],
                None,
            ),
            (
                "REDIS_REPLICA_LAG",
                vec![(
                    "slave0",
                    "ip=10.0.0.2,port=6379,state=online,offset=5000,lag=10".into(),
                )],
                Some(Warning),
            ),
            (
                "REDIS_REPLICA_LINK_DOWN",
                vec![
                    ("role", "slave".into()),
                    ("master_link_status", "up".into()),
                ],
                None,
            ),
            (
                "REDIS_REPLICA_LINK_DOWN",
                vec![
                    ("role", "slave".into()),
                    ("master_link_status", "down".into()),
                ],
                Some(Critical),
            ),
            // Persistence: RDB failing; AOF failing counts only when AOF is on.
            (
                "REDIS_PERSISTENCE_ERROR",
                vec![("rdb_last_bgsave_status", "err".into())],
                Some(Critical),
            ),
            (
                "REDIS_PERSISTENCE_ERROR",
                vec![("aof_last_write_status", "err".into())],
                None,
            ),
            (
                "REDIS_PERSISTENCE_ERROR",
                vec![
                    ("aof_enabled", "1".into()),
                    ("aof_last_write_status", "err".into()),
                ],
                Some(Critical),
            ),
        ] {
            let changes: Vec<(&str, &str)> =
                changes.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(raised(&facts(&changes), code), want, "{code} {changes:?}");
        }
    }

    /// Facts with a key sample: (key, memory, ttl ms or -1) per key.
    fn sampled(keys: &[(&str, u64, i64)], policy: &str) -> Facts {
        let mut f = facts(&[("maxmemory_policy", policy)]);
        for (k, mem, ttl) in keys {
            f.sample.add(
                k.to_string(),
                "string".into(),
                *mem,
                *ttl,
                LIMITS.big_key_bytes,
            );
        }
        f
    }

    #[test]
    fn each_sample_rule_at_its_edges() {
        let mb = 1 << 20;
        // No sample: none of the sample's findings.
        let none = sampled(&[], "volatile-lru");
        for code in [
            "REDIS_KEYSPACE_SAMPLE",
            "REDIS_BIG_KEYS",
            "REDIS_VOLATILE_POLICY_NO_TTL",
            "REDIS_NO_TTL_MAJORITY",
        ] {
            assert_eq!(raised(&none, code), None, "{code}");
        }
        // Big keys: just under the threshold is not big, at it is.
        let under = sampled(&[("blob:1", 10 * mb - 1, 60_000)], "allkeys-lru");
        assert_eq!(raised(&under, "REDIS_KEYSPACE_SAMPLE"), Some(Info));
        assert_eq!(raised(&under, "REDIS_BIG_KEYS"), None);
        let at = sampled(
            &[("blob:1", 10 * mb, 60_000), ("blob:2", 1, 60_000)],
            "allkeys-lru",
        );
        assert_eq!(raised(&at, "REDIS_BIG_KEYS"), Some(Warning));
        let big = judge(&at, &LIMITS)
            .into_iter()
            .find(|f| f.code == "REDIS_BIG_KEYS")
            .unwrap();
        assert!(
            big.remediation.contains("UNLINK blob:1"),
            "{}",
            big.remediation
        );
        // volatile-*: half the keys without TTL is enough, less is not; allkeys-* never.
        let half = [("s:1", 10, -1), ("s:2", 10, 5_000)];
        assert_eq!(
            raised(
                &sampled(&half, "volatile-lru"),
                "REDIS_VOLATILE_POLICY_NO_TTL"
            ),
            Some(Warning)
        );
        assert_eq!(
            raised(
                &sampled(&half, "allkeys-lru"),
                "REDIS_VOLATILE_POLICY_NO_TTL"
            ),
            None
        );
        let third = [("s:1", 10, -1), ("s:2", 10, 5_000), ("s:3", 10, 5_000)];
        assert_eq!(
            raised(
                &sampled(&third, "volatile-ttl"),
                "REDIS_VOLATILE_POLICY_NO_TTL"
            ),
            None
        );
        // No-TTL majority per pattern: half of a pattern's keys; patterns under 1% of the
        // sample are ignored.
        assert_eq!(
            raised(&sampled(&half, "allkeys-lru"), "REDIS_NO_TTL_MAJORITY"),
            Some(Info)
        );
        assert_eq!(
            raised(&sampled(&third, "allkeys-lru"), "REDIS_NO_TTL_MAJORITY"),
            None
        );
        let mut many: Vec<(String, u64, i64)> =
            (0..200).map(|i| (format!("c:{i}"), 10, 1_000)).collect();
        many.push(("rare".into(), 10, -1));
        let many: Vec<(&str, u64, i64)> =
            many.iter().map(|(k, m, t)| (k.as_str(), *m, *t)).collect();
        assert_eq!(
            raised(&sampled(&many, "allkeys-lru"), "REDIS_NO_TTL_MAJORITY"),
            None,
            "0.5% of the sample"
        );
    }

    #[test]
    fn slow_log_and_pubsub() {
        assert!(slow_commands(vec![]).is_none());
        let f = slow_commands(vec![
            (2_000, 1, "GET k:*".into(), "a".into()),
            (50_000, 2, "KEYS *".into(), "b".into()),
        ])
        .unwrap();
        assert_eq!(
            (f.code.as_str(), f.severity),
            ("REDIS_SLOW_COMMANDS", Warning)
        );
        assert!(
            f.title.contains("50.0 ms (KEYS *)"),
            "the slowest first: {}",
            f.title
        );
        assert!(pubsub_no_subscribers(&["orders"], &[("orders".into(), 1)], 0, 1).is_none());
        let f = pubsub_no_subscribers(
            &["orders", "audit"],
            &[("orders".into(), 2), ("audit".into(), 0)],
            1,
            3,
        )
        .unwrap();
        assert_eq!(
            (f.code.as_str(), f.severity),
            ("REDIS_PUBSUB_NO_SUBSCRIBERS", Warning)
        );
        assert!(
            f.title.ends_with(": audit") && f.remediation.contains("pattern subscriptions"),
            "{f:?}"
        );
    }
}
