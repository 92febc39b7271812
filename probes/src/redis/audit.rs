//! The Redis probe's key audit: every key of a database visited once (or a bounded sample
//! of them), its memory (`MEMORY USAGE … SAMPLES n`), type and TTL read with deep
//! pipelining, at a pace that is a parameter and that backs off when the target slows down.
//!
//! Three connections per node. Unpaced (a maintenance window): one walks the keyspace
//! with SCAN, one carries the `MEMORY USAGE` / `TYPE` / `PTTL` pipelines of
//! [`Plan::pipeline_keys`] keys, up to [`Plan::in_flight`] of them outstanding, so neither
//! side waits for a round trip. Paced: one blocking connection on a thread of its own does
//! both, as `redis-cli --memkeys` does, in pipelines of a few keys, each waited for,
//! pausing a millisecond or more whenever it is that far ahead of its pace (see
//! `paced_walk`). The third PINGs the target every 100 ms — the latency
//! any other client sees while the audit runs. When the median of the last three PINGs is
//! above the limit the audit halves its pace (from what it achieves when unpaced); after a
//! healthy second it raises it again by a quarter, up to the configured pace. The run keeps
//! the pace used, the PING latency before and during, the target's
//! `instantaneous_ops_per_sec` before and during, and every back-off.
//!
//! SCAN may return a key twice (while the table is being resized): keys are de-duplicated
//! by a 64-bit hash of their name. A key deleted between SCAN and its measurement is
//! counted as vanished; DBSIZE before and after, and vanished keys, say whether the
//! audit was taken while the keyspace changed.

use super::classify;
use super::rules::Sampled;
use crate::ProbeError;
use crate::framework::{Ctx, group};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Conn = redis::aio::MultiplexedConnection;

/// What to audit and how hard.
#[derive(Debug, Clone)]
pub struct Plan {
    /// A node with at most this many keys has every key audited (0: always sample).
    pub full_up_to: u64,
    /// Keys read when sampling.
    pub sample_keys: u64,
    pub scan_count: u64,
    /// `MEMORY USAGE … SAMPLES n` (0: every element, exact).
    pub memory_samples: u64,
    /// The configured pace in commands per second (0: unpaced, a maintenance window).
    pub pace: u32,
    /// PING latency above which the audit backs off.
    pub latency_limit: Duration,
    pub big_key: u64,
    /// Keys per pipeline (three commands each).
    pub pipeline_keys: usize,
    /// Pipelines outstanding at once.
    pub in_flight: usize,
}

/// What the audit did to the target, as the target's own numbers show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    /// The configured pace (0: unpaced).
    pub pace: u32,
    /// The lowest pace a back-off set (0: none did).
    pub slowest_pace: u32,
    pub backoffs: u32,
    /// Median PING before the audit, and PINGs during it (ms).
    pub baseline_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub pings: u64,
    /// `instantaneous_ops_per_sec` before, and the highest seen during.
    pub ops_before: f64,
    pub ops_during: f64,
    pub commands: u64,
    pub secs: f64,
    /// The latency was watched (a connection for it could be opened).
    pub watched: bool,
}

/// One node's (or, merged, a cluster's) audit.
#[derive(Debug, Default)]
pub struct Audit {
    pub keys: Sampled,
    pub meta: Meta,
}

/// What the audit says about itself, beside the keys.
#[derive(Debug, Default, Clone)]
pub struct Meta {
    /// Every key was visited (else a sample).
    pub full: bool,
    /// Type → (keys, bytes).
    pub types: BTreeMap<String, (u64, u64)>,
    /// The encoding of each of the biggest keys (OBJECT ENCODING).
    pub encodings: BTreeMap<String, String>,
    pub dbsize_before: u64,
    pub dbsize_after: u64,
    /// Keys SCAN returned that were gone when measured.
    pub vanished: u64,
    /// Keys SCAN returned twice (counted once).
    pub duplicates: u64,
    /// The nodes audited (`host:port`), one for a standalone server.
    pub nodes: Vec<String>,
    /// Per node, its load.
    pub load: Vec<(String, Load)>,
}

impl Audit {
    /// Adds another node's audit (a cluster's shards).
    pub fn merge(&mut self, o: Audit) {
        self.keys.merge(o.keys);
        self.meta.merge(o.meta);
    }
}

impl Meta {
    /// The keyspace changed while it was audited (keys came or went).
    pub fn under_change(&self) -> bool {
        self.dbsize_before != self.dbsize_after || self.vanished > 0
    }

    fn merge(&mut self, o: Meta) {
        self.full &= o.full;
        for (t, (k, b)) in o.types {
            let e = self.types.entry(t).or_default();
            e.0 += k;
            e.1 += b;
        }
        self.encodings.extend(o.encodings);
        self.dbsize_before += o.dbsize_before;
        self.dbsize_after += o.dbsize_after;
        self.vanished += o.vanished;
        self.duplicates += o.duplicates;
        self.nodes.extend(o.nodes);
        self.load.extend(o.load);
    }
}

/// The PINGs of the watcher: every one (for the figures) and the last three (for the
/// decision).
#[derive(Default)]
struct Watch {
    all: Vec<f64>,
    recent: VecDeque<f64>,
    ops_max: f64,
}

impl Watch {
    fn push(&mut self, ms: f64) {
        if self.all.len() < 100_000 {
            self.all.push(ms);
        }
        self.recent.push_back(ms);
        if self.recent.len() > 3 {
            self.recent.pop_front();
        }
    }
    fn recent_median(&self) -> Option<f64> {
        if self.recent.len() < 3 {
            return None;
        }
        let mut v: Vec<f64> = self.recent.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        Some(v[1])
    }
}

/// The `q` quantile of `v` (nearest rank).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

/// The pace after a reading of the target's latency: halve it when the target is slow
/// (from what the audit achieved when unpaced, never below 500/s), raise it by a quarter
/// after a healthy second (back to unpaced once it passes twice what was achieved), else
/// keep it. Pure, for the table test.
pub fn next_pace(
    current: u32,
    configured: u32,
    achieved: f64,
    slow: bool,
    since_change: Duration,
) -> u32 {
    const FLOOR: u32 = 500;
    if slow {
        if since_change < Duration::from_millis(300) {
            return current;
        }
        let from = if current == 0 {
            achieved.max(FLOOR as f64) as u32
        } else {
            current
        };
        return (from / 2).max(FLOOR);
    }
    if current == 0 || current == configured || since_change < Duration::from_secs(1) {
        return current;
    }
    let up = current.saturating_add(current / 4).max(current + 1);
    if configured == 0 {
        if up as f64 > 2.0 * achieved.max(FLOOR as f64) {
            0
        } else {
            up
        }
    } else {
        up.min(configured)
    }
}

fn info_num(info: &str, key: &str) -> f64 {
    info.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Stops the watcher when the audit ends, however it ends.
struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Row = (String, Option<u64>, String, i64);

/// Audits database `db` of the node `client` points at. `label` names the node in progress
/// lines and results.
pub async fn audit_node(
    ctx: &Ctx,
    client: &redis::Client,
    main: Option<Conn>,
    label: &str,
    target: &str,
    plan: &Plan,
) -> Result<Audit, ProbeError> {
    // The audit's own pace (lifted in a maintenance window, lowered by back-offs); the
    // run's is restored at the end.
    let run_pace = ctx.pace_now();
    ctx.set_pace_now(plan.pace);
    let start = Instant::now();
    let limit = ctx.step_timeout();
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(limit)
        .set_response_timeout(limit);
    let connect = || async {
        ctx.net(
            target,
            client.get_multiplexed_async_connection_with_config(&cfg),
            |e| classify(target, &e, start.elapsed()),
        )
        .await
    };
    // SCAN on the run's connection (or a new one for another node); the batches and the
    // PINGs on their own, when the server has room for them (near maxclients it may not:
    // then the batches share the SCAN connection and the latency is not watched).
    let mut scan: Conn = match main {
        Some(c) => c,
        None => connect().await?,
    };
    // Paced, the walk has a blocking connection of its own (see `paced_walk`); unpaced, or
    // if that cannot be opened, the pipelines go on an async one.
    let walker = if plan.pace > 0 {
        blocking_connection(client, limit).await
    } else {
        None
    };
    let data: Conn = if walker.is_some() {
        scan.clone()
    } else {
        match connect().await {
            Ok(c) => c,
            Err(_) => scan.clone(),
        }
    };
    let ping: Option<Conn> = connect().await.ok();

    // Before: the target's latency and load.
    let mut base = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        ctx.pace(1).await?;
        let mut c = ping.clone().unwrap_or_else(|| scan.clone());
        let _: String = ctx
            .net(target, redis::cmd("PING").query_async(&mut c), |e| {
                classify(target, &e, start.elapsed())
            })
            .await?;
        base.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ctx.pace(2).await?;
    let stats: String = ctx
        .net(
            target,
            redis::cmd("INFO").arg("stats").query_async(&mut scan),
            |e| classify(target, &e, start.elapsed()),
        )
        .await?;
    let dbsize_before: u64 = ctx
        .net(target, redis::cmd("DBSIZE").query_async(&mut scan), |e| {
            classify(target, &e, start.elapsed())
        })
        .await?;
    let mut load = Load {
        pace: plan.pace,
        baseline_ms: quantile(&base, 0.5),
        ops_before: info_num(&stats, "instantaneous_ops_per_sec"),
        ..Default::default()
    };

    // The watcher: a PING every 100 ms, INFO stats every second, on its own connection.
    let watch = Arc::new(Mutex::new(Watch::default()));
    let _watcher = ping.map(|mut conn| {
        let watch = watch.clone();
        Abort(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let t = Instant::now();
                let ok = tokio::time::timeout(
                    limit,
                    redis::cmd("PING").query_async::<String>(&mut conn),
                )
                .await;
                // No answer within the step limit counts as that long.
                let ms = match ok {
                    Ok(Ok(_)) => t.elapsed().as_secs_f64() * 1000.0,
                    _ => limit.as_secs_f64() * 1000.0,
                };
                let ops = if n % 10 == 9 {
                    tokio::time::timeout(
                        limit,
                        redis::cmd("INFO")
                            .arg("stats")
                            .query_async::<String>(&mut conn),
                    )
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|s| info_num(&s, "instantaneous_ops_per_sec"))
                } else {
                    None
                };
                n += 1;
                let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
                w.push(ms);
                if let Some(o) = ops {
                    w.ops_max = w.ops_max.max(o);
                }
            }
        }))
    });
    load.watched = _watcher.is_some();

    let full = plan.full_up_to > 0 && dbsize_before <= plan.full_up_to;
    let max_keys = if full { u64::MAX } else { plan.sample_keys };
    let mut out = Audit {
        keys: Sampled::default(),
        meta: Meta {
            full,
            dbsize_before,
            nodes: vec![label.to_string()],
            ..Default::default()
        },
    };
    let commands_at_start = ctx.commands();
    let audit_start = Instant::now();
    let samples = plan.memory_samples.to_string();
    let mut steer = Steer {
        last_change: Instant::now(),
        last_detail: Instant::now(),
        audit_start,
    };
    let of = max_keys.min(dbsize_before);
    if let Some(conn) = walker {
        // Paced: the walk on a thread of its own (see `paced_walk`); this task steers its
        // pace from the watcher, reports progress and passes a cancellation on.
        let shared = Arc::new(Shared::default());
        shared.pace.store(ctx.pace_now(), Ordering::Relaxed);
        // Dropped (the run cancelled or out of time), the thread stops at its next batch.
        let _stop = StopOnDrop(shared.clone());
        let job = {
            let shared = shared.clone();
            let plan = plan.clone();
            tokio::task::spawn_blocking(move || {
                paced_walk(conn, &plan, max_keys, out, &samples, &shared)
            })
        };
        tokio::pin!(job);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            tokio::select! {
                r = &mut job => break r,
                _ = tick.tick() => {
                    if ctx.cancelled() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    let dispatched = shared.dispatched.load(Ordering::Relaxed);
                    let visited = shared.visited.load(Ordering::Relaxed);
                    steer.pace(ctx, plan, &watch, dispatched, &mut load);
                    shared.pace.store(ctx.pace_now(), Ordering::Relaxed);
                    steer.report(ctx, label, &watch, &load, visited, of);
                }
            }
        };
        let sent = shared.sent.load(Ordering::Relaxed);
        ctx.count_commands(sent);
        out = match end {
            Ok(Walked::Done(o)) => o,
            Ok(Walked::Stopped) => return Err(ProbeError::Cancelled),
            Ok(Walked::Failed(e)) => return Err(classify(target, &e, start.elapsed())),
            Err(e) => {
                return Err(ProbeError::Server {
                    target: target.into(),
                    reason: format!("the key walk stopped: {e}"),
                });
            }
        };
    } else {
        // Unpaced (a maintenance window; or paced when no connection of its own could be
        // opened): SCAN on one connection, pipelines on another, many in flight.
        let pace_at_start = ctx.pace_now();
        let count = if pace_at_start > 0 {
            plan.scan_count.min((pace_at_start as u64 / 10_000).max(10))
        } else {
            plan.scan_count
        };
        let in_flight = if pace_at_start > 0 {
            1
        } else {
            plan.in_flight.max(1)
        };
        let chunk_keys = plan.pipeline_keys.max(1);
        let mut seen = Seen::for_keys(max_keys.min(dbsize_before));
        let mut inflight: tokio::task::JoinSet<Result<Vec<Row>, String>> =
            tokio::task::JoinSet::new();
        let mut visited: u64 = 0;
        let mut dispatched: u64 = 0;
        // One walk over the keyspace. (Walking it once per type with `SCAN … TYPE t` would
        // save the TYPE per key, but Redis 7.0 builds every key of a batch before filtering:
        // six walks cost more than the TYPE commands they save — measured.)
        let mut cursor: u64 = 0;
        loop {
            // The target's latency decides the pace.
            steer.pace(ctx, plan, &watch, dispatched, &mut load);
            ctx.pace(1).await?;
            let mut q = redis::cmd("SCAN");
            q.arg(cursor).arg("COUNT").arg(count);
            let (next_cursor, batch): (u64, Vec<String>) = ctx
                .net(target, q.query_async(&mut scan), |e| {
                    classify(target, &e, start.elapsed())
                })
                .await?;
            let fresh = fresh_keys(batch, &mut seen, &mut visited, max_keys, &mut out.meta);
            // Pipelines many in flight: the pace is kept batch by batch, and no round trip
            // is waited for.
            let mut fresh = fresh.into_iter().peekable();
            while fresh.peek().is_some() {
                let chunk: Vec<String> = fresh.by_ref().take(chunk_keys).collect();
                ctx.pace(3 * chunk.len() as u64).await?;
                dispatched += 3 * chunk.len() as u64;
                let conn = data.clone();
                let samples = samples.clone();
                inflight.spawn(measure(conn, chunk, samples, limit));
                while inflight.len() >= in_flight {
                    let rows = join_one(ctx, &mut inflight, target).await?;
                    absorb(&mut out, rows, plan.big_key);
                }
            }
            steer.report(ctx, label, &watch, &load, visited, of);
            cursor = next_cursor;
            if cursor == 0 || visited >= max_keys {
                break;
            }
        }
        while !inflight.is_empty() {
            let rows = join_one(ctx, &mut inflight, target).await?;
            absorb(&mut out, rows, plan.big_key);
        }
    }
    load.secs = audit_start.elapsed().as_secs_f64();
    // The biggest keys' encodings.
    let top: Vec<String> = out
        .keys
        .biggest
        .iter()
        .map(|std::cmp::Reverse((_, std::cmp::Reverse(k), _, _))| k.clone())
        .collect();
    if !top.is_empty() {
        let mut pipe = redis::pipe();
        for k in &top {
            pipe.cmd("OBJECT").arg("ENCODING").arg(k);
        }
        ctx.pace(top.len() as u64).await?;
        let enc: Vec<redis::Value> = ctx
            .net(target, pipe.query_async(&mut scan), |e| {
                classify(target, &e, start.elapsed())
            })
            .await?;
        for (k, e) in top.into_iter().zip(enc) {
            if let Ok(e) = redis::from_redis_value::<String>(&e) {
                out.meta.encodings.insert(k, e);
            }
        }
    }
    ctx.pace(1).await?;
    out.meta.dbsize_after = ctx
        .net(target, redis::cmd("DBSIZE").query_async(&mut scan), |e| {
            classify(target, &e, start.elapsed())
        })
        .await?;
    {
        let w = watch.lock().unwrap_or_else(|e| e.into_inner());
        load.p50_ms = quantile(&w.all, 0.5);
        load.p99_ms = quantile(&w.all, 0.99);
        load.max_ms = w.all.iter().copied().fold(0.0, f64::max);
        load.pings = w.all.len() as u64;
        load.ops_during = w.ops_max;
    }
    load.commands = ctx.commands() - commands_at_start;
    ctx.set_pace_now(run_pace);
    out.meta.load.push((label.to_string(), load));
    Ok(out)
}

/// Keys per pipeline on the paced walk: fifteen commands, a few microseconds of the
/// target's time — about the batches `redis-cli --memkeys` sends (ten), so another
/// client's command never waits behind much more.
const PACED_PIPELINE_KEYS: usize = 5;

/// Keys per pipeline while round trips, not the pace, hold the walk back (a high pace on a
/// busy machine).
const PACED_LATE_PIPELINE_KEYS: usize = 8;

/// The most keys a SCAN on the paced walk asks for (a SCAN's reply is the walk's largest
/// single piece of work on the target).
const PACED_SCAN_COUNT: u64 = 20;

/// What the run's task and the paced walk's thread share while it goes.
#[derive(Default)]
struct Shared {
    /// Commands per second now (set by the run's task from the watcher).
    pace: AtomicU32,
    /// Stop at the next batch (the run was cancelled).
    stop: AtomicBool,
    /// Keys read so far.
    visited: AtomicU64,
    /// `MEMORY USAGE` / `TYPE` / `PTTL` commands sent (what the pace is steered by).
    dispatched: AtomicU64,
    /// Every command sent, SCANs included (added to the run's count at the end).
    sent: AtomicU64,
}

/// Tells the paced walk to stop when the run's task lets go of it.
struct StopOnDrop(Arc<Shared>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// How the paced walk ended.
enum Walked {
    Done(Audit),
    Stopped,
    Failed(redis::RedisError),
}

/// A blocking connection for the paced walk (connect and every read and write within the
/// step limit), or none if the target would not take one more connection.
async fn blocking_connection(client: &redis::Client, limit: Duration) -> Option<redis::Connection> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || {
        let c = client.get_connection_with_timeout(limit).ok()?;
        c.set_read_timeout(Some(limit)).ok()?;
        c.set_write_timeout(Some(limit)).ok()?;
        Some(c)
    })
    .await
    .ok()
    .flatten()
}

/// The paced walk over the keyspace, on a thread of its own with blocking I/O, as
/// `redis-cli --memkeys` does it: SCAN, then the keys in pipelines of
/// [`PACED_PIPELINE_KEYS`], each waited for, so the target never holds more than one small
/// batch of the audit's at a time; the pace is kept by pausing the thread whenever the
/// walk is a millisecond ahead ([`FinePacer`]).
///
/// Measured against `redis-cli --memkeys` at the same keys per second (BENCHMARKS.md): the
/// async walk with millisecond pacing put ~50 commands ahead of other clients at a time;
/// this one disturbs a PINGing client and an application's steady traffic no more than
/// redis-cli does.
fn paced_walk(
    mut conn: redis::Connection,
    plan: &Plan,
    max_keys: u64,
    mut out: Audit,
    samples: &str,
    shared: &Shared,
) -> Walked {
    let mut seen = Seen::for_keys(max_keys.min(out.meta.dbsize_before));
    let mut visited: u64 = 0;
    let mut pacer = FinePacer::default();
    let count = plan.scan_count.clamp(1, PACED_SCAN_COUNT);
    let mut cursor: u64 = 0;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Walked::Stopped;
        }
        pacer.pay(1, shared.pace.load(Ordering::Relaxed));
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query(&mut conn);
        let (next_cursor, batch) = match scanned {
            Ok(v) => v,
            Err(e) => return Walked::Failed(e),
        };
        let fresh = fresh_keys(batch, &mut seen, &mut visited, max_keys, &mut out.meta);
        let mut rest = &fresh[..];
        while !rest.is_empty() {
            if shared.stop.load(Ordering::Relaxed) {
                return Walked::Stopped;
            }
            let keys = if pacer.late {
                PACED_LATE_PIPELINE_KEYS
            } else {
                PACED_PIPELINE_KEYS
            };
            let (chunk, more) = rest.split_at(keys.min(rest.len()));
            rest = more;
            let n = 3 * chunk.len() as u64;
            pacer.pay(n, shared.pace.load(Ordering::Relaxed));
            shared.dispatched.fetch_add(n, Ordering::Relaxed);
            shared.sent.fetch_add(n, Ordering::Relaxed);
            let vals: Vec<redis::Value> = match measure_pipe(chunk, samples).query(&mut conn) {
                Ok(v) => v,
                Err(e) => return Walked::Failed(e),
            };
            absorb(&mut out, rows_of(chunk.to_vec(), &vals), plan.big_key);
        }
        shared.visited.store(visited, Ordering::Relaxed);
        cursor = next_cursor;
        if cursor == 0 || visited >= max_keys {
            return Walked::Done(out);
        }
    }
}

/// How far ahead of its pace the paced walk may run before it pauses (see [`FinePacer`]).
const PACE_QUANTUM: Duration = Duration::from_millis(1);

/// A pace kept by sleeping the thread, in pauses of at least [`PACE_QUANTUM`]: between
/// them the batches go one after another, each waited for — as `redis-cli --memkeys` sends
/// them — until the walk is a quantum ahead of its pace. The first batch's cost is paid
/// before it goes (no free first burst); a sleep that overran is made up for, up to 1 ms
/// of it, so the pace is kept rather than undershot.
///
/// (Pausing for every batch — ~100 µs at redis-cli's key rate — meant 25,000–35,000
/// sleeps in a 20 s audit of a million keys, each overrunning by ~70 µs of timer slack and
/// wake-up, and an application's p99 beside it 0.27 ms against redis-cli's 0.23; pausing a
/// millisecond at a time, ~1,000 sleeps, and 0.234 against 0.234, medians of twelve pairs —
/// BENCHMARKS.md.)
#[derive(Default)]
struct FinePacer {
    next: Option<Instant>,
    /// The last batch went out more than 0.2 ms after its time (the walk is behind its pace).
    late: bool,
    /// Pauses taken so far.
    pauses: u64,
}

impl FinePacer {
    fn pay(&mut self, n: u64, per_sec: u32) {
        if per_sec == 0 {
            self.next = None;
            self.late = true;
            return;
        }
        let now = Instant::now();
        let first = self.next.is_none();
        self.late = self
            .next
            .is_some_and(|n| now.saturating_duration_since(n) > Duration::from_micros(200));
        let floor = now.checked_sub(Duration::from_millis(1)).unwrap_or(now);
        let next = self.next.unwrap_or(now).max(floor)
            + Duration::from_secs_f64(n as f64 / per_sec as f64);
        self.next = Some(next);
        if next > now && (first || next - now >= PACE_QUANTUM) {
            self.pauses += 1;
            std::thread::sleep(next - now);
        }
    }
}

/// The 64-bit hashes of the key names seen so far. They already are hashes, so the set
/// takes them as they are, and it is sized for the keyspace up front (a million keys:
/// no rehash on the way, ~16 MB).
struct Seen(HashSet<u64, std::hash::BuildHasherDefault<AsIs>>);

impl Seen {
    fn for_keys(n: u64) -> Seen {
        let n = usize::try_from(n.min(8_000_000)).unwrap_or(0);
        Seen(HashSet::with_capacity_and_hasher(n, Default::default()))
    }
}

/// A hasher that passes a `u64` through (see [`Seen`]).
#[derive(Default)]
struct AsIs(u64);

impl std::hash::Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The keys of a SCAN batch not seen before (SCAN may return a key twice while the table
/// resizes: de-duplicated by a 64-bit hash of the name), up to `max_keys` in all.
fn fresh_keys(
    batch: Vec<String>,
    seen: &mut Seen,
    visited: &mut u64,
    max_keys: u64,
    meta: &mut Meta,
) -> Vec<String> {
    let mut fresh = Vec::with_capacity(batch.len());
    for k in batch {
        if *visited >= max_keys {
            break;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        k.hash(&mut h);
        if seen.0.insert(h.finish()) {
            *visited += 1;
            fresh.push(k);
        } else {
            meta.duplicates += 1;
        }
    }
    fresh
}

/// Adds measured keys to the audit (a key gone meanwhile counts as vanished).
fn absorb(out: &mut Audit, rows: Vec<Row>, big_key: u64) {
    for (k, mem, ty, ttl) in rows {
        match mem {
            Some(mem) if ttl != -2 && ty != "none" => {
                match out.meta.types.get_mut(&ty) {
                    Some(e) => *e = (e.0 + 1, e.1 + mem),
                    None => {
                        out.meta.types.insert(ty.clone(), (1, mem));
                    }
                }
                out.keys.add(k, ty, mem, ttl, big_key);
            }
            _ => out.meta.vanished += 1,
        }
    }
}

/// The pace steered by the target's latency, and the progress shown, for both walks.
struct Steer {
    last_change: Instant,
    last_detail: Instant,
    audit_start: Instant,
}

impl Steer {
    /// Sets the run's pace from the watcher's latest PINGs (see [`next_pace`]).
    fn pace(
        &mut self,
        ctx: &Ctx,
        plan: &Plan,
        watch: &Mutex<Watch>,
        dispatched: u64,
        load: &mut Load,
    ) {
        let slow = {
            let w = watch.lock().unwrap_or_else(|e| e.into_inner());
            w.recent_median()
                .is_some_and(|m| m > plan.latency_limit.as_secs_f64() * 1000.0)
        };
        let achieved = dispatched as f64 / self.audit_start.elapsed().as_secs_f64().max(0.001);
        let current = ctx.pace_now();
        let next = next_pace(
            current,
            plan.pace,
            achieved,
            slow,
            self.last_change.elapsed(),
        );
        if next != current {
            if slow {
                load.backoffs += 1;
                load.slowest_pace = if load.slowest_pace == 0 {
                    next
                } else {
                    load.slowest_pace.min(next)
                };
            }
            ctx.set_pace_now(next);
            self.last_change = Instant::now();
        }
    }

    /// Every 250 ms: keys visited of how many, keys per second, the pace, the target's PING.
    fn report(
        &mut self,
        ctx: &Ctx,
        label: &str,
        watch: &Mutex<Watch>,
        load: &Load,
        visited: u64,
        of: u64,
    ) {
        if self.last_detail.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last_detail = Instant::now();
        let rate = visited as f64 / self.audit_start.elapsed().as_secs_f64().max(0.001);
        let ping = watch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recent_median()
            .unwrap_or(load.baseline_ms);
        let pace = ctx.pace_now();
        ctx.detail(format!(
            "{label}: visited {} of {} keys ({:.0}%) · {} keys/s · pace {} · target PING {ping:.1} ms",
            group(visited),
            group(of),
            visited as f64 * 100.0 / of.max(1) as f64,
            group(rate as u64),
            if pace == 0 {
                "unpaced".to_string()
            } else {
                format!("{}/s", group(pace as u64))
            },
        ));
    }
}

/// One pipeline reading memory, type and TTL of `chunk`: three commands per key.
fn measure_pipe(chunk: &[String], samples: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for k in chunk {
        pipe.cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(samples);
        pipe.cmd("TYPE").arg(k);
        pipe.cmd("PTTL").arg(k);
    }
    pipe
}

/// The rows of a measured chunk (a key gone meanwhile answers nil, "none", -2).
fn rows_of(chunk: Vec<String>, vals: &[redis::Value]) -> Vec<Row> {
    chunk
        .into_iter()
        .zip(vals.chunks(3))
        .map(|(k, v)| match v {
            [mem, ty, ttl] => (
                k,
                redis::from_redis_value(mem).ok(),
                redis::from_redis_value(ty).unwrap_or_default(),
                redis::from_redis_value(ttl).unwrap_or(-2),
            ),
            _ => (k, None, String::new(), -2),
        })
        .collect()
}

/// Reads memory, type and TTL of a batch of keys: one pipeline, three commands per key
/// (a key gone meanwhile answers nil, "none", -2).
async fn measure(
    mut conn: Conn,
    chunk: Vec<String>,
    samples: String,
    limit: Duration,
) -> Result<Vec<Row>, String> {
    let pipe = measure_pipe(&chunk, &samples);
    let vals: Vec<redis::Value> =
        match tokio::time::timeout(limit, pipe.query_async(&mut conn)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {limit:?}")),
        };
    Ok(rows_of(chunk, &vals))
}

async fn join_one(
    ctx: &Ctx,
    set: &mut tokio::task::JoinSet<Result<Vec<Row>, String>>,
    target: &str,
) -> Result<Vec<Row>, ProbeError> {
    let next = ctx
        .net(
            target,
            async { set.join_next().await.ok_or("no batch in flight") },
            |e: &str| ProbeError::Server {
                target: target.into(),
                reason: e.into(),
            },
        )
        .await?;
    match next {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => Err(ProbeError::Server {
            target: target.into(),
            reason: format!("a pipelined batch failed: {e}"),
        }),
        Err(e) => Err(ProbeError::Server {
            target: target.into(),
            reason: format!("a pipelined batch stopped: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_backs_off_and_recovers() {
        let ms = Duration::from_millis;
        // (current, configured, achieved, slow, since last change) → next
        let cases: &[(u32, u32, f64, bool, Duration, u32)] = &[
            // Healthy at the configured pace: unchanged.
            (50_000, 50_000, 48_000.0, false, ms(5000), 50_000),
            // Slow: halve.
            (50_000, 50_000, 48_000.0, true, ms(5000), 25_000),
            // Slow again right after a change: wait for the change to show.
            (25_000, 50_000, 48_000.0, true, ms(100), 25_000),
            // Never below the floor.
            (800, 50_000, 48_000.0, true, ms(5000), 500),
            (500, 50_000, 48_000.0, true, ms(5000), 500),
            // Unpaced and slow: half of what it achieved.
            (0, 0, 900_000.0, true, ms(5000), 450_000),
            // Healthy for a second: up by a quarter, capped at the configured pace.
            (25_000, 50_000, 20_000.0, false, ms(1500), 31_250),
            (45_000, 50_000, 20_000.0, false, ms(1500), 50_000),
            // …but not before a second has passed.
            (25_000, 50_000, 20_000.0, false, ms(500), 25_000),
            // Unpaced configured: climbs, then lets go once past twice the achieved rate.
            (450_000, 0, 400_000.0, false, ms(1500), 562_500),
            (700_000, 0, 400_000.0, false, ms(1500), 0),
            // Unpaced and healthy: stays unpaced.
            (0, 0, 900_000.0, false, ms(5000), 0),
        ];
        for &(cur, conf, ach, slow, since, want) in cases {
            assert_eq!(
                next_pace(cur, conf, ach, slow, since),
                want,
                "{cur} {conf} {ach} {slow} {since:?}"
            );
        }
    }

    #[test]
    fn the_fine_pacer_keeps_the_pace_without_a_first_burst() {
        // 1,500 commands in batches of 15 at 30,000/s: 50 ms. The first batch's cost is
        // paid before it goes; then the batches run up to a millisecond ahead and the walk
        // pauses a millisecond or more at a time — one pause per two or three batches here,
        // not one per batch.
        let mut p = FinePacer::default();
        let t = Instant::now();
        p.pay(15, 30_000);
        assert!(
            t.elapsed() >= Duration::from_micros(500),
            "{:?}",
            t.elapsed()
        );
        for _ in 1..100 {
            p.pay(15, 30_000);
        }
        let took = t.elapsed();
        // At most a quantum of the last batches' cost not yet slept off.
        assert!(took >= Duration::from_millis(49), "{took:?}");
        // (A millisecond timer would take 100 ms: one batch per tick.)
        assert!(took < Duration::from_millis(95), "{took:?}");
        assert!(!p.late);
        assert!((20..=60).contains(&p.pauses), "{} pauses", p.pauses);
        // Far ahead (a batch of 3 ms): it pauses for all of it at once.
        let t = Instant::now();
        p.pay(90, 30_000);
        assert!(t.elapsed() >= Duration::from_millis(2), "{:?}", t.elapsed());
        // Unpaced: no wait, and the walk takes its larger pipelines.
        let t = Instant::now();
        p.pay(1_000_000, 0);
        assert!(t.elapsed() < Duration::from_millis(5));
        assert!(p.late);
    }

    #[test]
    fn quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
    }
}
