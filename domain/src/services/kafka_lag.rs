//! The Kafka lag sampler and its read side.
//!
//! A round samples every consumer group of one Kafka target (the lag probe's own reading
//! code, so the never-join guarantee is the same), stores one row per partition, evaluates
//! every partition over its window of the last [`rules::WINDOW`] samples with the pure
//! Burrow-style rules, estimates time lag from the stored log-end history, and writes the
//! group's latest state to `kafka_groups` (one row per group: the overview reads only those).
//! A round that fails (broker down, timeout) is recorded with its error and skipped.
//!
//! Replicas share the work with a lease per target in PostgreSQL: a replica samples a
//! target only while it holds the lease, which it takes when the lease has expired and
//! renews each round; a replica that dies stops renewing, so another takes over within one
//! interval.

use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::incidents::{FindingSeverity, Severity, TimelineKind, incident_key};
use crate::kafka::{
    KafkaGroup, KafkaGroupPage, KafkaMember, KafkaRound, LagAnnotation, LagPoint, LagSeries,
    PartitionSeries, PartitionState, VerdictBand,
};
use crate::storage::incidents as istore;
use crate::targets::TargetKind;
use probes::kafka::lag::{GroupSnap, Snapshot};
use probes::kafka::rules::{self, Context, Sample, TimeLag};
use sqlx::{Acquire, FromRow, PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Takes or renews the sampling lease on a target for `ttl`; false when another holder's
/// lease is still valid.
pub async fn try_lease(
    pool: &PgPool,
    target_id: i64,
    holder: &str,
    ttl: Duration,
) -> DomainResult<bool> {
    Ok(crate::storage::leases::take(pool, &lease_job(target_id), holder, ttl).await?)
}

/// The worker lease that says which replica samples a Kafka target.
pub fn lease_job(target_id: i64) -> String {
    format!("kafka-sampler:{target_id}")
}

/// The Kafka targets to sample.
pub async fn sampled_targets(pool: &PgPool) -> DomainResult<Vec<(i64, String)>> {
    Ok(
        sqlx::query_as("SELECT id, connection FROM targets WHERE kind = 'kafka' ORDER BY id")
            .fetch_all(pool)
            .await?,
    )
}

#[derive(Debug, Clone)]
pub struct RoundOutcome {
    pub ok: bool,
    pub error: Option<String>,
    pub groups: usize,
    pub partitions: usize,
    pub requests: u64,
    pub duration: Duration,
}

/// One sampling round of one target.
/// `alert_after`: how long a group must stay in WARN or ERR before it alerts (`None`: never);
/// the target's labels `kafka-alert-after-secs` and `kafka-alert-after-secs:<group>`
/// override it.
/// `access` opens the target's secret (SASL password) and holds the reach limits.
pub async fn sample_round(
    pool: &PgPool,
    access: &crate::reach::Access,
    target_id: i64,
    holder: &str,
    step: Duration,
    alert_after: Option<Duration>,
) -> DomainResult<RoundOutcome> {
    let target = crate::services::targets::row(pool, target_id).await?;
    if target.kind != TargetKind::Kafka {
        return Err(DomainError::invalid("not a Kafka target"));
    }
    let policy = AlertPolicy {
        target_id,
        target_name: target.name.clone(),
        environment: target.environment.clone(),
        labels: crate::storage::labels_from_json(&target.labels),
        default_after: alert_after,
    };
    let started = Instant::now();
    let mut sampled_at = None;
    // The connection with the credentials put in, in memory only.
    let bootstrap = match crate::services::targets::open_secret(access.key.as_ref(), &target) {
        Ok(secret) => {
            crate::services::targets::connect_address(access, &target, secret.as_deref()).await
        }
        Err(e) => Err(e.to_string()),
    };
    let snap = match &bootstrap {
        Ok(b) => {
            probes::kafka::lag::sample_cluster(
                b,
                step,
                probes::kafka::lag::MAX_GROUPS,
                policy
                    .labels
                    .get("kafka-dlq-patterns")
                    .map(String::as_str)
                    .unwrap_or(""),
                &access.reach.networks,
            )
            .await
        }
        Err(e) => Err(probes::ProbeError::InvalidTarget(e.clone())),
    };
    let bootstrap = bootstrap.unwrap_or_default();
    let mut tx = pool.begin().await?;
    let out = match snap {
        Err(e) => RoundOutcome {
            ok: false,
            error: Some(e.to_string()),
            groups: 0,
            partitions: 0,
            requests: 0,
            duration: started.elapsed(),
        },
        Ok(s) => {
            // Storing and reading the records at the committed offsets (exact time lag)
            // overlap: one waits on PostgreSQL, the other on Kafka.
            //
            // Everything the round writes — samples, verdicts, rollups, alert episodes and
            // incidents, the round's own row — commits together or not at all (below).
            let (stored, exact) = tokio::join!(
                store_samples(&mut tx, target_id, &s),
                record_times(target_id, &bootstrap, step, &s, &access.reach.networks)
            );
            let partitions = stored?;
            let evaluated = evaluate_groups(&mut tx, target_id, &s, &exact).await?;
            let ranks: HashMap<&str, i16> = evaluated
                .iter()
                .map(|e| (e.name.as_str(), e.rank))
                .collect();
            store_rollups(&mut tx, target_id, &s, &ranks).await?;
            policy.step_all(&mut tx, &evaluated, ts(s.at_ms)).await?;
            sampled_at = Some(ts(s.at_ms));
            RoundOutcome {
                ok: true,
                error: None,
                groups: s.groups.len(),
                partitions,
                requests: s.requests,
                duration: started.elapsed(),
            }
        }
    };
    sqlx::query(
        "INSERT INTO kafka_rounds (target_id, ok, error, groups, partitions, requests, duration_ms, holder, sampled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(target_id)
    .bind(out.ok)
    .bind(&out.error)
    .bind(out.groups as i32)
    .bind(out.partitions as i32)
    .bind(out.requests as i32)
    .bind(out.duration.as_millis() as i32)
    .bind(holder)
    .bind(sampled_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(out)
}

async fn store_samples(db: &mut PgConnection, target_id: i64, s: &Snapshot) -> DomainResult<usize> {
    let (mut g, mut t, mut p, mut c, mut e, mut st) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for grp in &s.groups {
        for ((topic, part), committed) in &grp.committed {
            let (start, end) = s
                .offsets
                .get(&(topic.clone(), *part))
                .copied()
                .unwrap_or((0, 0));
            g.push(grp.name.clone());
            t.push(topic.clone());
            p.push(*part);
            c.push(*committed);
            e.push(end);
            st.push(start);
        }
    }
    let n = g.len();
    sqlx::query(
        "INSERT INTO kafka_samples (target_id, group_name, topic, partition, at, committed, end_offset, start_offset)
         SELECT $1, x.g, x.t, x.p, $2, x.c, x.e, x.s
         FROM UNNEST($3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[]) AS x(g, t, p, c, e, s)
         ON CONFLICT DO NOTHING",
    )
    .bind(target_id)
    .bind(ts(s.at_ms))
    .bind(&g)
    .bind(&t)
    .bind(&p)
    .bind(&c)
    .bind(&e)
    .bind(&st)
    .execute(&mut *db)
    .await?;
    Ok(n)
}

/// Record timestamps already read, by (target, topic, partition, offset): a record's time
/// never changes, so each is read once.
type TimeCache = std::sync::Mutex<HashMap<(i64, String, i32, i64), i64>>;
static RECORD_TIMES: std::sync::OnceLock<TimeCache> = std::sync::OnceLock::new();
const MAX_EXACT_PER_ROUND: usize = 500;

/// The write time of the first unread record of every lagging partition (exact time lag),
/// from the cache or read in one bounded pass; what cannot be read stays estimated.
async fn record_times(
    target_id: i64,
    bootstrap: &str,
    step: Duration,
    s: &Snapshot,
    allowed: &[probes::net::Network],
) -> HashMap<((String, i32), i64), i64> {
    let cache = RECORD_TIMES.get_or_init(Default::default);
    let mut want: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for g in &s.groups {
        for (tp, c) in &g.committed {
            let (Some(c), Some((start, end))) = (c, s.offsets.get(tp)) else {
                continue;
            };
            if end - c > rules::MARKER_TOLERANCE && c >= start {
                want.entry(tp.clone()).or_insert(*c);
            }
        }
    }
    let mut out = HashMap::new();
    let mut missing = vec![];
    {
        let c = cache.lock().unwrap_or_else(|e| e.into_inner());
        for (tp, off) in &want {
            match c.get(&(target_id, tp.0.clone(), tp.1, *off)) {
                Some(ts) => {
                    out.insert((tp.clone(), *off), *ts);
                }
                None => missing.push((tp.clone(), *off)),
            }
        }
    }
    missing.truncate(MAX_EXACT_PER_ROUND);
    if missing.is_empty() {
        return out;
    }
    let offsets: HashMap<(String, i32), i64> = missing.iter().cloned().collect();
    if let Ok(got) = probes::kafka::lag::record_times(
        bootstrap,
        step.min(Duration::from_secs(3)),
        missing,
        allowed,
    )
    .await
    {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() > 200_000 {
            c.clear();
        }
        for (tp, ts) in got {
            if let Some(off) = offsets.get(&tp) {
                c.insert((target_id, tp.0.clone(), tp.1, *off), ts);
                out.insert((tp, *off), ts);
            }
        }
    }
    out
}

/// Adds this round's group totals, each partition's lag, and each group's verdict to the
/// 1-minute, 10-minute and 1-hour buckets.
async fn store_rollups(
    db: &mut PgConnection,
    target_id: i64,
    s: &Snapshot,
    ranks: &HashMap<&str, i16>,
) -> DomainResult<()> {
    let (mut g, mut lag, mut end, mut com) = (vec![], vec![], vec![], vec![]);
    let mut status = vec![];
    let (mut keys, mut lags) = (vec![], vec![]);
    for grp in &s.groups {
        let (mut l, mut e, mut c) = (0i64, 0i64, 0i64);
        let (mut k, mut pl) = (vec![], vec![]);
        for (tp, committed) in &grp.committed {
            let (_, log_end) = s.offsets.get(tp).copied().unwrap_or((0, 0));
            let part_lag = committed.map(|cm| (log_end - cm).max(0)).unwrap_or(0);
            if let Some(cm) = committed {
                l += part_lag;
                c += cm;
            }
            e += log_end;
            // Topic names cannot hold '/' or ',' (Kafka allows [a-zA-Z0-9._-]).
            k.push(format!("{}/{}", tp.0, tp.1));
            pl.push(part_lag.to_string());
        }
        g.push(grp.name.clone());
        lag.push(l);
        end.push(e);
        com.push(c);
        keys.push(k.join(","));
        lags.push(pl.join(","));
        status.push(ranks.get(grp.name.as_str()).copied().unwrap_or(0));
    }
    sqlx::query(
        "INSERT INTO kafka_lag_rollups (target_id, group_name, resolution, bucket, lag_max, lag_sum, samples,
             end_max, committed_max, part_keys, part_lag, status_max)
         SELECT $1, x.g, r.res, to_timestamp(floor(extract(epoch FROM $2::timestamptz) / r.res) * r.res),
             x.l, x.l, 1, x.e, x.c,
             coalesce(string_to_array(nullif(x.k, ''), ','), '{}'),
             coalesce(string_to_array(nullif(x.pl, ''), ',')::bigint[], '{}'),
             x.st
         FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::int2[])
             AS x(g, l, e, c, k, pl, st)
         CROSS JOIN (VALUES (60), (600), (3600)) AS r(res)
         ON CONFLICT (target_id, group_name, resolution, bucket) DO UPDATE SET
             lag_max = greatest(kafka_lag_rollups.lag_max, EXCLUDED.lag_max),
             lag_sum = kafka_lag_rollups.lag_sum + EXCLUDED.lag_sum,
             samples = kafka_lag_rollups.samples + 1,
             end_max = greatest(kafka_lag_rollups.end_max, EXCLUDED.end_max),
             committed_max = greatest(kafka_lag_rollups.committed_max, EXCLUDED.committed_max),
             status_max = greatest(kafka_lag_rollups.status_max, EXCLUDED.status_max),
             part_keys = EXCLUDED.part_keys,
             part_lag = CASE WHEN kafka_lag_rollups.part_keys = EXCLUDED.part_keys
                 THEN ARRAY(SELECT greatest(u.a, u.b) FROM unnest(kafka_lag_rollups.part_lag, EXCLUDED.part_lag)
                            WITH ORDINALITY AS u(a, b, i) ORDER BY u.i)
                 ELSE EXCLUDED.part_lag END",
    )
    .bind(target_id)
    .bind(ts(s.at_ms))
    .bind(&g)
    .bind(&lag)
    .bind(&end)
    .bind(&com)
    .bind(&keys)
    .bind(&lags)
    .bind(&status)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Which resolution serves a range: raw up to 2 h (about 240 points at 30 s), 1-minute up
/// to a day, 10-minute up to a week, 1-hour beyond (720 points for 30 days).
pub fn resolution_for(range: time::Duration) -> Option<i32> {
    let h = range.whole_hours();
    if range <= time::Duration::hours(2) {
        None
    } else if h <= 24 {
        Some(60)
    } else if h <= 24 * 7 {
        Some(600)
    } else {
        Some(3600)
    }
}

/// Where the history must be searched for one partition (the lookups of [`HistRow`]).
#[derive(FromRow)]
struct SinceRow {
    group_name: String,
    topic: String,
    partition: i32,
    /// First time the current committed value was seen after a different one.
    since: Option<OffsetDateTime>,
}

#[derive(FromRow)]
struct HistRow {
    group_name: String,
    topic: String,
    partition: i32,
    /// The newest sample whose log end had not passed the committed offset.
    a_at: Option<OffsetDateTime>,
    a_end: Option<i64>,
    /// The oldest sample whose log end had passed it.
    b_at: Option<OffsetDateTime>,
    b_end: Option<i64>,
    /// The oldest sample of the partition.
    first_at: Option<OffsetDateTime>,
}

/// What the sampler carries per group from round to round besides the verdicts.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Signs {
    /// The member ids at the last round, sorted.
    #[serde(default)]
    member_ids: Vec<String>,
    /// The group epoch at the last round (consumer protocol).
    #[serde(default)]
    generation: Option<i32>,
    /// When a rebalance was seen (ms), the last 20.
    #[serde(default)]
    rebalances: Vec<i64>,
    /// The group was rebalancing at the last round (one rebalance is counted once however
    /// many rounds catch it).
    #[serde(default)]
    rebalancing: bool,
    /// Messages per dead-letter topic at the last round.
    #[serde(default)]
    dlq: BTreeMap<String, i64>,
    /// The same, as the pages show it.
    #[serde(default)]
    dlq_view: Vec<crate::kafka::DlqState>,
}

impl Signs {
    /// This round's signs from the previous ones: a rebalance when the member set changed
    /// (members joined, left or were replaced — a new generation) or the group is caught
    /// rebalancing; each DLQ's size and growth since the previous round.
    fn next(prev: Option<&Signs>, g: &GroupSnap, s: &Snapshot) -> Signs {
        let mut ids: Vec<String> = g.members.iter().map(|m| m.id.clone()).collect();
        ids.sort();
        let mut rebalances = prev.map(|p| p.rebalances.clone()).unwrap_or_default();
        // A new generation: other members, or (consumer protocol) another group epoch.
        let changed = prev.is_some_and(|p| {
            p.member_ids != ids || (g.generation.is_some() && p.generation != g.generation)
        });
        let rebalancing = g.is_rebalancing();
        let new_rebalance = rebalancing && !prev.is_some_and(|p| p.rebalancing);
        if changed || new_rebalance {
            rebalances.push(s.at_ms);
            let n = rebalances.len();
            if n > 20 {
                rebalances.drain(..n - 20);
            }
        }
        let read: std::collections::BTreeSet<&String> =
            g.committed.keys().map(|(t, _)| t).collect();
        let mut dlq = BTreeMap::new();
        let mut dlq_view = vec![];
        for source in read {
            for d in s.dlq.get(source).into_iter().flatten() {
                let parts = s.topics.get(d).copied().unwrap_or(0);
                let messages: i64 = (0..parts)
                    .filter_map(|p| s.offsets.get(&(d.clone(), p)))
                    .map(|(start, end)| (end - start).max(0))
                    .sum();
                let growth = prev
                    .and_then(|p| p.dlq.get(d))
                    .map(|before| messages - before);
                dlq.insert(d.clone(), messages);
                dlq_view.push(crate::kafka::DlqState {
                    topic: d.clone(),
                    source: source.clone(),
                    messages,
                    growth,
                });
            }
        }
        Signs {
            member_ids: ids,
            generation: g.generation,
            rebalances,
            rebalancing,
            dlq,
            dlq_view,
        }
    }
}

/// A group's evaluation, for the alert policy.
struct Evaluated {
    name: String,
    label: &'static str,
    /// 0 OK, 1 INCOMPLETE, 2 WARN, 3 ERR.
    rank: i16,
    worst: String,
    reason: String,
    total: i64,
}

/// Key of one partition of one group.
type GroupTp = (String, String, i32);

/// Evaluates every group of the round and stores their states, in a fixed number of
/// statements whatever the number of groups: the window (this round and the previous
/// nine recorded ones) in one read, the previous states in one read (they carry since when
/// each committed offset has had its value), the history only for partitions that need it
/// (an estimated time lag; states written before the carry existed), and one upsert.
async fn evaluate_groups(
    db: &mut PgConnection,
    target_id: i64,
    s: &Snapshot,
    exact: &HashMap<((String, i32), i64), i64>,
) -> DomainResult<Vec<Evaluated>> {
    let now = s.at_ms;
    let mut times: Vec<OffsetDateTime> = sqlx::query_scalar(
        "SELECT sampled_at FROM kafka_rounds WHERE target_id = $1 AND sampled_at IS NOT NULL
         ORDER BY sampled_at DESC LIMIT $2",
    )
    .bind(target_id)
    .bind(rules::WINDOW as i64 - 1)
    .fetch_all(&mut *db)
    .await?;
    times.push(ts(now));
    let oldest = times.iter().min().copied().unwrap_or(ts(now));
    let rows: Vec<(String, String, i32, OffsetDateTime, Option<i64>, i64)> = sqlx::query_as(
        "SELECT group_name, topic, partition, at, committed, end_offset FROM kafka_samples
         WHERE at >= $2 AND target_id = $1 AND at = ANY($3) ORDER BY at",
    )
    .bind(target_id)
    .bind(oldest)
    .bind(&times)
    .fetch_all(&mut *db)
    .await?;
    let mut windows: HashMap<GroupTp, Vec<Sample>> = HashMap::new();
    for (g, t, p, at, committed, end) in rows {
        windows.entry((g, t, p)).or_default().push(Sample {
            at_ms: ms(at),
            committed,
            end,
        });
    }
    let mut prev: HashMap<String, Vec<PartitionState>> = HashMap::new();
    let mut prev_signs: HashMap<String, Signs> = HashMap::new();
    for (g, v, signs) in
        sqlx::query_as::<
            _,
            (
                String,
                sqlx::types::Json<Vec<PartitionState>>,
                sqlx::types::Json<Signs>,
            ),
        >("SELECT group_name, verdicts, signs FROM kafka_groups WHERE target_id = $1")
        .bind(target_id)
        .fetch_all(&mut *db)
        .await?
    {
        prev.insert(g.clone(), v.0);
        prev_signs.insert(g, signs.0);
    }

    // Since when each committed offset has had its value: carried from the previous state;
    // searched in the history only where the previous state did not carry it.
    let mut since: HashMap<GroupTp, Option<i64>> = HashMap::new();
    let (mut lg, mut lt, mut lp, mut lc) = (vec![], vec![], vec![], vec![]);
    for g in &s.groups {
        let before: HashMap<(&str, i32), &PartitionState> = prev
            .get(&g.name)
            .map(|v| {
                v.iter()
                    .map(|p| ((p.topic.as_str(), p.partition), p))
                    .collect()
            })
            .unwrap_or_default();
        let carried = prev
            .get(&g.name)
            .is_none_or(|v| v.iter().any(|p| p.tracked));
        for ((topic, part), committed) in &g.committed {
            let key = (g.name.clone(), topic.clone(), *part);
            match before.get(&(topic.as_str(), *part)) {
                Some(p) if p.tracked => {
                    let v = if p.committed == *committed {
                        p.committed_since_ms
                    } else {
                        Some(now)
                    };
                    since.insert(key, v);
                }
                // A new group or partition: its history begins now (the first sample is
                // the first time its committed value was seen).
                None if carried => {
                    since.insert(key, Some(now));
                }
                _ => {
                    lg.push(g.name.clone());
                    lt.push(topic.clone());
                    lp.push(*part);
                    lc.push(committed.unwrap_or(-1));
                }
            }
        }
    }
    if !lg.is_empty() {
        let found: Vec<SinceRow> = sqlx::query_as(
            "SELECT x.group_name, x.topic, x.partition,
                (SELECT min(s.at) FROM kafka_samples s WHERE s.target_id = $1 AND s.group_name = x.group_name
                   AND s.topic = x.topic AND s.partition = x.partition
                   AND s.at > coalesce((SELECT max(d.at) FROM kafka_samples d WHERE d.target_id = $1
                       AND d.group_name = x.group_name AND d.topic = x.topic AND d.partition = x.partition
                       AND d.committed IS DISTINCT FROM x.c), '-infinity')) AS since
             FROM UNNEST($2::text[], $3::text[], $4::int[], $5::bigint[]) AS x(group_name, topic, partition, c)",
        )
        .bind(target_id)
        .bind(&lg)
        .bind(&lt)
        .bind(&lp)
        .bind(&lc)
        .fetch_all(&mut *db)
        .await?;
        for r in found {
            since.insert((r.group_name, r.topic, r.partition), r.since.map(ms));
        }
    }

    // Verdicts.
    struct Part<'a> {
        tp: &'a (String, i32),
        committed: Option<i64>,
        since: Option<i64>,
        v: rules::Verdict,
        window: Vec<Sample>,
    }
    let mut evaluated: Vec<Vec<Part>> = Vec::with_capacity(s.groups.len());
    let (mut hg, mut ht, mut hp, mut hc) = (vec![], vec![], vec![], vec![]);
    for g in &s.groups {
        let owned: std::collections::BTreeSet<&(String, i32)> = if g.state == "Stable" {
            g.members.iter().flat_map(|m| m.parts.iter()).collect()
        } else {
            Default::default()
        };
        let mut parts = Vec::with_capacity(g.committed.len());
        for (tp, committed) in &g.committed {
            let key = (g.name.clone(), tp.0.clone(), tp.1);
            let window = windows.remove(&key).unwrap_or_default();
            let last_change = since.get(&key).copied().flatten();
            let v = rules::evaluate(
                tp.1,
                &window,
                Context {
                    owned: owned.contains(tp),
                    last_change_ms: last_change,
                    now_ms: now,
                },
            );
            if let Some(c) = committed
                && v.lag.unwrap_or(0) > 0
                && !exact.contains_key(&(tp.clone(), *c))
            {
                hg.push(g.name.clone());
                ht.push(tp.0.clone());
                hp.push(tp.1);
                hc.push(*c);
            }
            parts.push(Part {
                tp,
                committed: *committed,
                since: last_change,
                v,
                window,
            });
        }
        evaluated.push(parts);
    }
    // The offset-to-time lookups, only for lagging partitions without an exact time.
    let mut hist: HashMap<GroupTp, HistRow> = HashMap::new();
    if !hg.is_empty() {
        let found: Vec<HistRow> = sqlx::query_as(
            "SELECT x.group_name, x.topic, x.partition,
                a.at AS a_at, a.end_offset AS a_end, b.at AS b_at, b.end_offset AS b_end, f.at AS first_at
             FROM UNNEST($2::text[], $3::text[], $4::int[], $5::bigint[]) AS x(group_name, topic, partition, c)
             LEFT JOIN LATERAL (SELECT at, end_offset FROM kafka_samples s WHERE s.target_id = $1 AND s.group_name = x.group_name
                 AND s.topic = x.topic AND s.partition = x.partition AND s.end_offset <= x.c
                 ORDER BY at DESC LIMIT 1) a ON true
             LEFT JOIN LATERAL (SELECT at, end_offset FROM kafka_samples s WHERE s.target_id = $1 AND s.group_name = x.group_name
                 AND s.topic = x.topic AND s.partition = x.partition AND s.end_offset > x.c
                 ORDER BY at ASC LIMIT 1) b ON true
             LEFT JOIN LATERAL (SELECT min(at) AS at FROM kafka_samples s WHERE s.target_id = $1 AND s.group_name = x.group_name
                 AND s.topic = x.topic AND s.partition = x.partition) f ON true",
        )
        .bind(target_id)
        .bind(&hg)
        .bind(&ht)
        .bind(&hp)
        .bind(&hc)
        .fetch_all(&mut *db)
        .await?;
        for h in found {
            hist.insert((h.group_name.clone(), h.topic.clone(), h.partition), h);
        }
    }

    // States, written in one statement.
    let mut out = Vec::with_capacity(s.groups.len());
    let mut rows = GroupRows::default();
    for (g, parts) in s.groups.iter().zip(evaluated) {
        let mut verdicts = vec![];
        let mut states = vec![];
        let (mut total, mut first_sum, mut last_sum) =
            (0i64, (0i64, 0i64, 0i64), (0i64, 0i64, 0i64));
        let mut worst_time: Option<(f64, &'static str)> = None;
        for p in parts {
            let tp = p.tp;
            let v = p.v;
            let (start, end) = s.offsets.get(tp).copied().unwrap_or((0, 0));
            if let Some(l) = v.lag {
                total += l;
            }
            if let (Some(f), Some(l)) = (p.window.first(), p.window.last())
                && let (Some(fc), Some(lc)) = (f.committed, l.committed)
            {
                first_sum = (f.at_ms, first_sum.1 + fc, first_sum.2 + f.end);
                last_sum = (l.at_ms, last_sum.1 + lc, last_sum.2 + l.end);
            }
            let h = hist.get(&(g.name.clone(), tp.0.clone(), tp.1));
            let tl = match p.committed {
                None => TimeLag::Unknown,
                // Caught up (commit markers discounted).
                Some(_) if v.lag.unwrap_or(0) == 0 => TimeLag::CaughtUp,
                Some(c) => match h {
                    None => TimeLag::Unknown,
                    // Older than the history: never extrapolate, cap at its start.
                    Some(h) if h.a_at.is_none() && h.b_at.is_some() => TimeLag::AtLeast(
                        h.first_at
                            .map(|f| (now - ms(f)) as f64 / 1000.0)
                            .unwrap_or(0.0),
                    ),
                    Some(h) => {
                        let mut history = vec![];
                        if let (Some(at), Some(e)) = (h.a_at, h.a_end) {
                            history.push((ms(at), e));
                        }
                        if let (Some(at), Some(e)) = (h.b_at, h.b_end) {
                            history.push((ms(at), e));
                        }
                        rules::time_lag(&history, c, now)
                    }
                },
            };
            let exact_ts = p.committed.and_then(|c| exact.get(&(tp.clone(), c)));
            let (tls, tlk) = match (exact_ts, tl) {
                // The record at the committed offset says when it was written: exact.
                (Some(t), _) if v.lag.unwrap_or(0) > 0 => {
                    (Some(((now - t) as f64 / 1000.0).max(0.0)), Some("exact"))
                }
                (_, tl) => match tl {
                    TimeLag::Estimated(x) => (Some(x), Some("estimated")),
                    TimeLag::AtLeast(x) => (Some(x), Some("at_least")),
                    TimeLag::CaughtUp => (Some(0.0), Some("estimated")),
                    TimeLag::Unknown => (None, None),
                },
            };
            if let (Some(x), Some(k)) = (tls, tlk)
                && worst_time.is_none_or(|(w, _)| x > w)
            {
                worst_time = Some((x, k));
            }
            states.push(PartitionState {
                topic: tp.0.clone(),
                partition: tp.1,
                status: v.status.as_str().to_string(),
                reason: v.reason.clone(),
                committed: p.committed,
                end,
                start,
                lag: v.lag,
                time_lag_s: tls,
                time_lag_kind: tlk.map(str::to_string),
                committed_since_ms: p.since,
                tracked: true,
            });
            verdicts.push(v);
        }
        let (worst, label) = rules::group_status(&verdicts);
        let reason = verdicts
            .iter()
            .find(|v| v.status == worst)
            .map(|v| v.reason.clone())
            .unwrap_or_else(|| "no partitions".into());
        let members: Vec<KafkaMember> = g
            .members
            .iter()
            .map(|m| KafkaMember {
                id: m.id.clone(),
                client_id: m.client_id.clone(),
                host: m.host.clone(),
                parts: m.parts.clone(),
            })
            .collect();
        rows.name.push(g.name.clone());
        rows.state.push(g.state.clone());
        rows.protocol.push(g.protocol.clone());
        rows.members
            .push(serde_json::to_value(&members).map_err(DomainError::internal)?);
        rows.partitions.push(g.committed.len() as i32);
        rows.total.push(total);
        rows.time_lag.push(worst_time.map(|w| w.0));
        rows.time_kind.push(worst_time.map(|w| w.1.to_string()));
        rows.status.push(label.to_string());
        rows.worst.push(worst.as_str().to_string());
        rows.reason.push(reason.clone());
        rows.catch_up
            .push(rules::catch_up(first_sum, last_sum).sentence());
        rows.verdicts
            .push(serde_json::to_value(&states).map_err(DomainError::internal)?);
        let rank = match label {
            "ERR" => 3i16,
            "WARN" => 2,
            "INCOMPLETE" => 1,
            _ => 0,
        };
        rows.rank.push(rank);
        rows.member_count.push(g.members.len() as i32);
        rows.signs.push(
            serde_json::to_value(Signs::next(prev_signs.get(&g.name), g, s))
                .map_err(DomainError::internal)?,
        );
        out.push(Evaluated {
            name: g.name.clone(),
            label,
            rank,
            worst: worst.as_str().to_string(),
            reason,
            total,
        });
    }
    rows.store(&mut *db, target_id, ts(now)).await?;
    Ok(out)
}

/// The columns of `kafka_groups`, one array each, for one UNNEST upsert.
#[derive(Default)]
struct GroupRows {
    name: Vec<String>,
    state: Vec<String>,
    protocol: Vec<String>,
    members: Vec<serde_json::Value>,
    partitions: Vec<i32>,
    total: Vec<i64>,
    time_lag: Vec<Option<f64>>,
    time_kind: Vec<Option<String>>,
    status: Vec<String>,
    worst: Vec<String>,
    reason: Vec<String>,
    catch_up: Vec<String>,
    verdicts: Vec<serde_json::Value>,
    rank: Vec<i16>,
    member_count: Vec<i32>,
    signs: Vec<serde_json::Value>,
}

impl GroupRows {
    async fn store(
        &self,
        db: &mut PgConnection,
        target_id: i64,
        at: OffsetDateTime,
    ) -> DomainResult<()> {
        if self.name.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO kafka_groups (target_id, group_name, at, state, protocol, members, partitions, total_lag,
                 time_lag_s, time_lag_kind, status, worst, reason, catch_up, verdicts, trend,
                 status_rank, member_count, signs)
             SELECT $1, x.name, $2, x.state, x.protocol, x.members, x.partitions, x.total, x.tl, x.tk,
                 x.status, x.worst, x.reason, x.catch_up, x.verdicts, ARRAY[x.total], x.rank, x.mc, x.signs
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::jsonb[], $7::int[], $8::bigint[],
                 $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                 $15::jsonb[], $16::int2[], $17::int[], $18::jsonb[])
                 AS x(name, state, protocol, members, partitions, total, tl, tk, status, worst, reason,
                      catch_up, verdicts, rank, mc, signs)
             ON CONFLICT (target_id, group_name) DO UPDATE SET at = EXCLUDED.at, state = EXCLUDED.state,
                 protocol = EXCLUDED.protocol, members = EXCLUDED.members, partitions = EXCLUDED.partitions,
                 total_lag = EXCLUDED.total_lag, time_lag_s = EXCLUDED.time_lag_s, time_lag_kind = EXCLUDED.time_lag_kind,
                 status = EXCLUDED.status, worst = EXCLUDED.worst, reason = EXCLUDED.reason,
                 catch_up = EXCLUDED.catch_up, verdicts = EXCLUDED.verdicts,
                 status_rank = EXCLUDED.status_rank, member_count = EXCLUDED.member_count,
                 signs = EXCLUDED.signs,
                 trend = (kafka_groups.trend || EXCLUDED.total_lag)[greatest(1, cardinality(kafka_groups.trend) - 18):]",
        )
        .bind(target_id)
        .bind(at)
        .bind(&self.name)
        .bind(&self.state)
        .bind(&self.protocol)
        .bind(&self.members)
        .bind(&self.partitions)
        .bind(&self.total)
        .bind(&self.time_lag)
        .bind(&self.time_kind)
        .bind(&self.status)
        .bind(&self.worst)
        .bind(&self.reason)
        .bind(&self.catch_up)
        .bind(&self.verdicts)
        .bind(&self.rank)
        .bind(&self.member_count)
        .bind(&self.signs)
        .execute(&mut *db)
        .await?;
        Ok(())
    }
}

/// Lag alerts: a group in WARN or ERR for longer than the configured time opens an incident
/// (or adds a finding to the group's open one) once per episode; its recovery adds an event.
/// A group that flaps back to OK before the time is up never alerts.
/// An open episode: (bad since, alerted at, incident).
type AlertRow = (OffsetDateTime, Option<OffsetDateTime>, Option<i64>);

struct AlertPolicy {
    target_id: i64,
    target_name: String,
    environment: String,
    labels: BTreeMap<String, String>,
    default_after: Option<Duration>,
}

fn system() -> Principal {
    Principal {
        user_id: None,
        name: "lookout:kafka-sampler".into(),
        role: Role::Admin,
        method: crate::accounts::AuthMethod::Cli,
        token_id: None,
    }
}

fn fact(name: &str, value: impl ToString) -> crate::incidents::EvidenceFact {
    crate::incidents::EvidenceFact {
        name: name.into(),
        value: value.to_string(),
    }
}

impl AlertPolicy {
    fn after(&self, group: &str) -> Option<Duration> {
        let label = self
            .labels
            .get(&format!("kafka-alert-after-secs:{group}"))
            .or_else(|| self.labels.get("kafka-alert-after-secs"));
        match label.and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None => self.default_after,
        }
    }

    /// One round's alert steps: the open episodes are read in one query, new episodes
    /// written in one; only raising and recovering touch a group on its own.
    async fn step_all(
        &self,
        db: &mut PgConnection,
        groups: &[Evaluated],
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        let rows: HashMap<String, AlertRow> = sqlx::query_as::<_, (String, OffsetDateTime, Option<OffsetDateTime>, Option<i64>)>(
            "SELECT group_name, bad_since, alerted_at, incident_id FROM kafka_alerts WHERE target_id = $1",
        )
        .bind(self.target_id)
        .fetch_all(&mut *db)
        .await?
        .into_iter()
        .map(|(g, a, b, c)| (g, (a, b, c)))
        .collect();
        let mut new_bad = vec![];
        for g in groups {
            self.step(&mut *db, g, now, rows.get(&g.name).copied(), &mut new_bad)
                .await?;
        }
        if !new_bad.is_empty() {
            sqlx::query(
                "INSERT INTO kafka_alerts (target_id, group_name, bad_since)
                 SELECT $1, g, $2 FROM UNNEST($3::text[]) AS g ON CONFLICT DO NOTHING",
            )
            .bind(self.target_id)
            .bind(now)
            .bind(&new_bad)
            .execute(&mut *db)
            .await?;
        }
        Ok(())
    }

    async fn step(
        &self,
        db: &mut PgConnection,
        g: &Evaluated,
        now: OffsetDateTime,
        row: Option<AlertRow>,
        new_bad: &mut Vec<String>,
    ) -> DomainResult<()> {
        let (group, label, lag) = (g.name.as_str(), g.label, g.total);
        match label {
            "WARN" | "ERR" => {
                let Some(after) = self.after(group) else {
                    return Ok(());
                };
                let bad_since = match row {
                    Some((since, _, _)) => since,
                    None => {
                        new_bad.push(group.to_string());
                        now
                    }
                };
                let alerted = row.as_ref().is_some_and(|r| r.1.is_some());
                if alerted || (now - bad_since).whole_milliseconds() < after.as_millis() as i128 {
                    return Ok(());
                }
                self.raise(&mut *db, g, bad_since, now).await
            }
            "OK" => {
                let Some((since, alerted, incident)) = row else {
                    return Ok(());
                };
                let mut tx = db.begin().await?;
                if let (Some(_), Some(iid)) = (alerted, incident)
                    && istore::by_id(&mut *tx, iid)
                        .await?
                        .is_some_and(|i| i.status.is_open())
                {
                    istore::insert_event(
                        &mut *tx,
                        istore::NewEvent {
                            incident_id: iid,
                            actor: &system().name,
                            actor_id: None,
                            kind: TimelineKind::AlertResolved,
                            body: &format!(
                                "Consumer group {group} recovered: OK again (lag {lag}); it had been unhealthy since {since}"
                            ),
                            details: serde_json::json!({ "group": group, "target": self.target_name }),
                        },
                    )
                    .await?;
                }
                sqlx::query("DELETE FROM kafka_alerts WHERE target_id = $1 AND group_name = $2")
                    .bind(self.target_id)
                    .bind(group)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn raise(
        &self,
        db: &mut PgConnection,
        g: &Evaluated,
        bad_since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        let (group, label, worst, reason, lag) = (
            g.name.as_str(),
            g.label,
            g.worst.as_str(),
            g.reason.as_str(),
            g.total,
        );
        let who = system();
        let key = format!("kafka:{}:{group}", self.target_id);
        let mut tx = db.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lookout.alert_group'), hashtext($1))")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        let incident = match istore::open_by_group_key(&mut *tx, &key).await? {
            Some(i) => i.id,
            None => {
                let severity = if label == "ERR" {
                    Severity::Sev3
                } else {
                    Severity::Sev4
                };
                let service =
                    crate::alertmanager::sanitize_name(group).unwrap_or_else(|| "kafka".into());
                let environment = crate::alertmanager::sanitize_name(&self.environment)
                    .unwrap_or_else(|| "unknown".into());
                let title: String = format!(
                    "Kafka consumer group {group} is {worst} on {}",
                    self.target_name
                )
                .chars()
                .take(200)
                .collect();
                let (id, number) = istore::insert(
                    &mut *tx,
                    istore::NewIncidentRow {
                        title: &title,
                        summary: reason,
                        severity,
                        services: &[service],
                        environment: &environment,
                        labels: serde_json::json!({ "kafka-target": self.target_name, "kafka-group": group }),
                        commander_id: None,
                        created_by: &who.name,
                        created_by_id: None,
                        alert_group_key: Some(&key),
                        detected_at: Some(bad_since),
                    },
                )
                .await?;
                istore::insert_event(
                    &mut *tx,
                    istore::NewEvent {
                        incident_id: id,
                        actor: &who.name,
                        actor_id: None,
                        kind: TimelineKind::Created,
                        body: &format!(
                            "Opened {} as {severity}: consumer group {group} has been {label} since {bad_since}",
                            incident_key(number)
                        ),
                        details: serde_json::json!({ "group_key": key }),
                    },
                )
                .await?;
                id
            }
        };
        let evidence = crate::incidents::Evidence {
            facts: vec![
                fact("target", &self.target_name),
                fact("group", group),
                fact("verdict", format!("{label} ({worst})")),
                fact("lag", lag),
                fact("unhealthy since", bad_since),
            ],
            command: Some(format!(
                "GET /api/v1/kafka/{}/groups/{group}",
                self.target_id
            )),
            excerpt: None,
            tables: vec![],
        };
        let title: String = format!("{group}: {reason}").chars().take(300).collect();
        let fid = istore::insert_finding(
            &mut *tx,
            istore::NewFindingRow {
                incident_id: Some(incident),
                code: rules::ALERT_CODE.code,
                source_kind: "probe",
                source_probe: Some("kafka-sampler"),
                source_target: Some(&self.target_name),
                severity: if label == "ERR" {
                    FindingSeverity::Critical
                } else {
                    FindingSeverity::Warning
                },
                title: &title,
                evidence: serde_json::to_value(&evidence).map_err(DomainError::internal)?,
                remediation: rules::ALERT_CODE.remediation,
                doc_link: None,
                created_by: &who.name,
                probe_run_id: None,
            },
        )
        .await?;
        istore::insert_event(
            &mut *tx,
            istore::NewEvent {
                incident_id: incident,
                actor: &who.name,
                actor_id: None,
                kind: TimelineKind::FindingAdded,
                body: &format!("{} [{label}] consumer group {group}: {reason}", rules::ALERT_CODE.code),
                details: serde_json::json!({ "finding_id": fid, "group": group, "target": self.target_name }),
            },
        )
        .await?;
        sqlx::query(
            "UPDATE kafka_alerts SET alerted_at = $3, incident_id = $4 WHERE target_id = $1 AND group_name = $2",
        )
        .bind(self.target_id)
        .bind(group)
        .bind(now)
        .bind(incident)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[derive(FromRow)]
struct GroupRow {
    group_name: String,
    at: OffsetDateTime,
    state: String,
    protocol: String,
    members: serde_json::Value,
    member_count: i32,
    partitions: i32,
    total_lag: i64,
    time_lag_s: Option<f64>,
    time_lag_kind: Option<String>,
    status: String,
    worst: String,
    reason: String,
    catch_up: String,
    verdicts: serde_json::Value,
    trend: Vec<i64>,
    signs: serde_json::Value,
}

impl GroupRow {
    fn view(self) -> KafkaGroup {
        let mut g = KafkaGroup {
            group: self.group_name,
            at: self.at,
            state: self.state,
            protocol: self.protocol,
            members: serde_json::from_value(self.members).unwrap_or_default(),
            member_count: self.member_count,
            partitions: self.partitions,
            total_lag: self.total_lag,
            time_lag_s: self.time_lag_s,
            time_lag_kind: self.time_lag_kind,
            status: self.status,
            worst: self.worst,
            reason: self.reason,
            catch_up: self.catch_up,
            verdicts: serde_json::from_value(self.verdicts).unwrap_or_default(),
            trend: self.trend,
            rebalances_last_hour: 0,
            last_rebalance: None,
            dlq: vec![],
            lag_unknown_partitions: 0,
            lag_unknown_messages: 0,
            lag_upper_bound: 0,
        }
        .with_unknown_lag();
        let signs: Signs = serde_json::from_value(self.signs).unwrap_or_default();
        let at = ms(g.at);
        g.rebalances_last_hour = signs
            .rebalances
            .iter()
            .filter(|t| at - **t <= 3_600_000)
            .count() as i32;
        g.last_rebalance = signs.rebalances.last().map(|t| ts(*t));
        g.dlq = signs.dlq_view;
        g
    }
}

const GROUP_COLS: &str =
    "group_name, at, state, protocol, members, member_count, partitions, total_lag, time_lag_s,
    time_lag_kind, status, worst, reason, catch_up, verdicts, trend, signs";

async fn kafka_target(pool: &PgPool, id: i64) -> DomainResult<()> {
    let kind: Option<TargetKind> = sqlx::query_scalar("SELECT kind FROM targets WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    match kind {
        Some(TargetKind::Kafka) => Ok(()),
        Some(_) => Err(DomainError::not_found(format!(
            "target {id} is not a Kafka target"
        ))),
        None => Err(DomainError::not_found(format!("no target {id}"))),
    }
}

/// How the overview is sorted: by any of its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSort {
    Lag,
    Group,
    Status,
    TimeLag,
    Members,
    State,
}

impl GroupSort {
    /// The ORDER BY key (matching one of kafka_groups' indexes) and whether it is numeric.
    fn key(self) -> (&'static str, bool) {
        match self {
            GroupSort::Lag => ("total_lag::float8", true),
            GroupSort::Status => ("status_rank::float8", true),
            GroupSort::TimeLag => ("coalesce(time_lag_s, -1)", true),
            GroupSort::Members => ("member_count::float8", true),
            GroupSort::State => ("state", false),
            GroupSort::Group => ("group_name", false),
        }
    }
    /// The cursor value of a row for this sort.
    fn value(self, g: &KafkaGroup) -> String {
        match self {
            GroupSort::Lag => (g.total_lag as f64).to_string(),
            GroupSort::Status => match g.status.as_str() {
                "ERR" => "3",
                "WARN" => "2",
                "INCOMPLETE" => "1",
                _ => "0",
            }
            .into(),
            GroupSort::TimeLag => g.time_lag_s.unwrap_or(-1.0).to_string(),
            GroupSort::Members => (g.member_count as f64).to_string(),
            GroupSort::State => g.state.clone(),
            GroupSort::Group => g.group.clone(),
        }
    }
}

impl std::str::FromStr for GroupSort {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "lag" | "" => GroupSort::Lag,
            "group" | "name" => GroupSort::Group,
            "status" | "verdict" => GroupSort::Status,
            "time_lag" => GroupSort::TimeLag,
            "members" => GroupSort::Members,
            "state" => GroupSort::State,
            other => {
                return Err(DomainError::invalid(format!(
                    "sort must be lag, group, status, time_lag, members or state, not {other:?}"
                )));
            }
        })
    }
}

/// The overview: every group's latest state, sorted by any column and keyset-paged (a page
/// is one index range, whatever the number of groups).
pub async fn list_groups(
    pool: &PgPool,
    who: &Principal,
    target_id: i64,
    sort: GroupSort,
    desc: bool,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<KafkaGroupPage> {
    who.require(Role::Viewer)?;
    kafka_target(pool, target_id).await?;
    let limit = limit.clamp(1, 500);
    let (key, numeric) = sort.key();
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let bad_cursor = || DomainError::invalid("cursor: not one this API returned");
    let after: Option<(String, String)> = match cursor {
        Some(c) if !c.is_empty() => {
            Some(serde_json::from_str::<(String, String)>(c).map_err(|_| bad_cursor())?)
        }
        _ => None,
    };
    let order = format!("ORDER BY {key} {dir}, group_name {dir} LIMIT $2");
    let rows: Vec<GroupRow> = match (&after, numeric) {
        (None, _) => {
            sqlx::query_as(&format!(
                "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1 {order}"
            ))
            .bind(target_id)
            .bind(limit + 1)
            .fetch_all(pool)
            .await?
        }
        (Some((v, g)), true) => {
            let v: f64 = v.parse().map_err(|_| bad_cursor())?;
            sqlx::query_as(&format!(
                "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1
                   AND ({key}, group_name) {cmp} ($3::float8, $4) {order}"
            ))
            .bind(target_id)
            .bind(limit + 1)
            .bind(v)
            .bind(g)
            .fetch_all(pool)
            .await?
        }
        (Some((v, g)), false) => {
            sqlx::query_as(&format!(
                "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1
                   AND ({key}, group_name) {cmp} ($3, $4) {order}"
            ))
            .bind(target_id)
            .bind(limit + 1)
            .bind(v)
            .bind(g)
            .fetch_all(pool)
            .await?
        }
    };
    let more = rows.len() as i64 > limit;
    let groups: Vec<KafkaGroup> = rows
        .into_iter()
        .take(limit as usize)
        .map(GroupRow::view)
        .collect();
    let next_cursor = if more {
        groups
            .last()
            .and_then(|g| serde_json::to_string(&(sort.value(g), g.group.clone())).ok())
    } else {
        None
    };
    let last_round: Option<KafkaRound> =
        sqlx::query_as::<_, (OffsetDateTime, bool, Option<String>, i32, i32, i32, i32)>(
            "SELECT at, ok, error, groups, partitions, requests, duration_ms FROM kafka_rounds
         WHERE target_id = $1 ORDER BY at DESC LIMIT 1",
        )
        .bind(target_id)
        .fetch_optional(pool)
        .await?
        .map(|r| KafkaRound {
            at: r.0,
            ok: r.1,
            error: r.2,
            groups: r.3,
            partitions: r.4,
            requests: r.5,
            duration_ms: r.6,
        });
    Ok(KafkaGroupPage {
        groups,
        next_cursor,
        last_round,
    })
}

/// The groups reading a topic (those with offsets on it), worst first.
pub async fn groups_of_topic(
    pool: &PgPool,
    who: &Principal,
    target_id: i64,
    topic: &str,
) -> DomainResult<Vec<KafkaGroup>> {
    who.require(Role::Viewer)?;
    kafka_target(pool, target_id).await?;
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLS} FROM kafka_groups
         WHERE target_id = $1 AND verdicts @> jsonb_build_array(jsonb_build_object('topic', $2::text))
         ORDER BY status_rank DESC, total_lag DESC, group_name LIMIT 1000"
    ))
    .bind(target_id)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(GroupRow::view).collect())
}

pub async fn get_group(
    pool: &PgPool,
    who: &Principal,
    target_id: i64,
    group: &str,
) -> DomainResult<KafkaGroup> {
    who.require(Role::Viewer)?;
    kafka_target(pool, target_id).await?;
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1 AND group_name = $2"
    ))
    .bind(target_id)
    .bind(group)
    .fetch_optional(pool)
    .await?;
    row.map(GroupRow::view).ok_or_else(|| {
        DomainError::not_found(format!("no sampled group {group:?} on target {target_id}"))
    })
}

/// The group's total lag over time (summed over its partitions per round), from the raw
/// samples.
pub async fn lag_series(
    pool: &PgPool,
    who: &Principal,
    target_id: i64,
    group: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> DomainResult<LagSeries> {
    who.require(Role::Viewer)?;
    kafka_target(pool, target_id).await?;
    if to <= from {
        return Err(DomainError::invalid("`to` must be after `from`"));
    }
    if to - from > time::Duration::days(400) {
        return Err(DomainError::invalid("at most 400 days at once"));
    }
    let res = resolution_for(to - from);
    let mut points: Vec<SeriesPoint> = vec![];
    let mut keys: Vec<(String, i32)> = vec![];
    let mut key_index: HashMap<(String, i32), usize> = HashMap::new();
    let mut index_of = |t: String, p: i32| -> usize {
        *key_index.entry((t.clone(), p)).or_insert_with(|| {
            keys.push((t, p));
            keys.len() - 1
        })
    };
    match res {
        None => {
            let rows: Vec<(OffsetDateTime, String, i32, Option<i64>, i64)> = sqlx::query_as(
                "SELECT at, topic, partition, committed, end_offset FROM kafka_samples
                 WHERE target_id = $1 AND group_name = $2 AND at >= $3 AND at <= $4
                 ORDER BY at LIMIT 500000",
            )
            .bind(target_id)
            .bind(group)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            for (at, topic, part, committed, end) in rows {
                if points.last().is_none_or(|p| p.0 != at) {
                    points.push((at, 0, 0, 0, vec![]));
                }
                let i = index_of(topic, part);
                if let Some(p) = points.last_mut() {
                    let lag = (end - committed.unwrap_or(end)).max(0);
                    p.1 += lag;
                    p.2 += end;
                    p.3 += committed.unwrap_or(0);
                    p.4.push((i, lag));
                }
            }
        }
        Some(r) => {
            let rows: Vec<RollupRow> = sqlx::query_as(
                "SELECT bucket, lag_max, end_max, committed_max, part_keys, part_lag FROM kafka_lag_rollups
                 WHERE target_id = $1 AND group_name = $2 AND resolution = $5 AND bucket >= $3 AND bucket <= $4
                 ORDER BY bucket LIMIT 20000",
            )
            .bind(target_id)
            .bind(group)
            .bind(from)
            .bind(to)
            .bind(r)
            .fetch_all(pool)
            .await?;
            for (at, lag, end, committed, pk, pl) in rows {
                let parts = pk
                    .into_iter()
                    .zip(pl)
                    .filter_map(|(k, l)| {
                        let (t, p) = k.rsplit_once('/')?;
                        Some((index_of(t.to_string(), p.parse().ok()?), l))
                    })
                    .collect();
                points.push((at, lag, end, committed, parts));
            }
        }
    }
    let mut partitions: Vec<PartitionSeries> = keys
        .iter()
        .map(|(t, p)| PartitionSeries {
            topic: t.clone(),
            partition: *p,
            lag: vec![0; points.len()],
        })
        .collect();
    for (n, p) in points.iter().enumerate() {
        for (i, l) in &p.4 {
            if let Some(s) = partitions.get_mut(*i) {
                s.lag[n] = *l;
            }
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let annotations = annotations(pool, target_id, group, from, to).await?;
    // The verdict band: the worst verdict per bucket (1-minute buckets for raw ranges).
    let band_res = res.unwrap_or(60);
    let band: Vec<VerdictBand> = sqlx::query_as::<_, (OffsetDateTime, i16)>(
        "SELECT bucket, status_max FROM kafka_lag_rollups
         WHERE target_id = $1 AND group_name = $2 AND resolution = $3
           AND bucket >= $4 - make_interval(secs => $3) AND bucket <= $5
         ORDER BY bucket LIMIT 20000",
    )
    .bind(target_id)
    .bind(group)
    .bind(band_res)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(at, rank)| VerdictBand {
        at,
        seconds: band_res,
        status: match rank {
            3 => "ERR",
            2 => "WARN",
            1 => "INCOMPLETE",
            _ => "OK",
        }
        .to_string(),
    })
    .collect();
    Ok(LagSeries {
        rollup: match res {
            None => "raw".into(),
            Some(60) => "1m".into(),
            Some(600) => "10m".into(),
            Some(_) => "1h".into(),
        },
        points: points
            .into_iter()
            .map(|(at, lag, end, committed, _)| LagPoint {
                at,
                lag,
                end,
                committed,
            })
            .collect(),
        partitions,
        annotations,
        band,
    })
}

/// (time, total lag, total end, total committed, lag per partition by key index)
type SeriesPoint = (OffsetDateTime, i64, i64, i64, Vec<(usize, i64)>);
/// (bucket, lag, end, committed, partition keys, partition lags)
type RollupRow = (OffsetDateTime, i64, i64, i64, Vec<String>, Vec<i64>);

/// Incidents that overlap the range and are about this group (its lag alert) or its
/// target (a probe run against it attached to the incident).
async fn annotations(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> DomainResult<Vec<LagAnnotation>> {
    let rows: Vec<(i64, String, OffsetDateTime, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT i.number, i.title, i.detected_at, i.resolved_at FROM incidents i
         WHERE (i.alert_group_key = $2
                OR i.id IN (SELECT r.incident_id FROM probe_runs r
                            WHERE r.target_id = $1 AND r.incident_id IS NOT NULL))
           AND i.detected_at <= $4 AND coalesce(i.resolved_at, 'infinity') >= $3
         ORDER BY i.detected_at LIMIT 50",
    )
    .bind(target_id)
    .bind(format!("kafka:{target_id}:{group}"))
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(n, title, from, to)| LagAnnotation {
            key: incident_key(n),
            title,
            from,
            to,
        })
        .collect())
}

/// Retention of the history.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_hours: i64,
    pub minute_days: i64,
    pub ten_minute_days: i64,
    pub hour_days: i64,
}

/// Deletes history past its retention.
pub async fn prune(pool: &PgPool, r: Retention) -> DomainResult<u64> {
    let mut n = prune_raw(pool, r.raw_hours).await?;
    for (res, days) in [
        (60, r.minute_days),
        (600, r.ten_minute_days),
        (3600, r.hour_days),
    ] {
        n += sqlx::query(
            "DELETE FROM kafka_lag_rollups WHERE resolution = $1 AND bucket < now() - make_interval(days => $2)",
        )
        .bind(res)
        .bind(days as i32)
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(n)
}

/// Deletes raw samples (and round records) older than `hours`.
async fn prune_raw(pool: &PgPool, hours: i64) -> DomainResult<u64> {
    Ok(
        sqlx::query("DELETE FROM kafka_samples WHERE at < now() - make_interval(hours => $1)")
            .bind(hours as i32)
            .execute(pool)
            .await?
            .rows_affected()
            + sqlx::query("DELETE FROM kafka_rounds WHERE at < now() - make_interval(hours => $1)")
                .bind(hours as i32)
                .execute(pool)
                .await?
                .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::kafka::lag::Member;

    fn group(state: &str, members: &[&str]) -> GroupSnap {
        GroupSnap {
            name: "g".into(),
            state: state.into(),
            protocol: "range".into(),
            members: members
                .iter()
                .map(|id| Member {
                    id: id.to_string(),
                    client_id: "c".into(),
                    host: "/h".into(),
                    parts: vec![],
                })
                .collect(),
            committed: [(("orders".to_string(), 0), Some(5))].into_iter().collect(),
            generation: None,
        }
    }

    fn snap(at_ms: i64, dlq_end: i64) -> Snapshot {
        Snapshot {
            at_ms,
            groups: vec![],
            offsets: [
                (("orders".to_string(), 0), (0, 10)),
                (("orders.dlq".to_string(), 0), (2, dlq_end)),
            ]
            .into_iter()
            .collect(),
            topics: [("orders".to_string(), 1), ("orders.dlq".to_string(), 1)]
                .into_iter()
                .collect(),
            dlq: [("orders".to_string(), vec!["orders.dlq".to_string()])]
                .into_iter()
                .collect(),
            requests: 0,
        }
    }

    #[test]
    fn rebalances_count_once_and_dead_letters_grow() {
        let s1 = Signs::next(None, &group("Stable", &["a"]), &snap(1_000, 2));
        assert!(
            s1.rebalances.is_empty(),
            "the first round has nothing to compare"
        );
        assert_eq!(s1.dlq_view[0].messages, 0);
        assert_eq!(s1.dlq_view[0].growth, None);
        // Caught rebalancing in two rounds in a row: one rebalance.
        let s2 = Signs::next(
            Some(&s1),
            &group("PreparingRebalance", &["a"]),
            &snap(2_000, 7),
        );
        let s3 = Signs::next(
            Some(&s2),
            &group("CompletingRebalance", &["a"]),
            &snap(3_000, 9),
        );
        assert_eq!(s3.rebalances, vec![2_000]);
        assert_eq!(
            (s2.dlq_view[0].messages, s2.dlq_view[0].growth),
            (5, Some(5))
        );
        assert_eq!(s3.dlq_view[0].growth, Some(2));
        // A member replaced (same count, new id): a new generation.
        let s4 = Signs::next(Some(&s3), &group("Stable", &["b"]), &snap(4_000, 9));
        assert_eq!(s4.rebalances, vec![2_000, 4_000]);
        let s5 = Signs::next(Some(&s4), &group("Stable", &["b"]), &snap(5_000, 9));
        assert_eq!(s5.rebalances.len(), 2, "unchanged members: no rebalance");
        // Consumer protocol: another group epoch with the same members is a new generation.
        let mut e1 = group("Stable", &["b"]);
        e1.generation = Some(3);
        let s6 = Signs::next(Some(&s5), &e1, &snap(6_000, 9));
        assert_eq!(s6.rebalances.len(), 3, "the first epoch seen after none");
        let s7 = Signs::next(Some(&s6), &e1, &snap(7_000, 9));
        assert_eq!(s7.rebalances.len(), 3, "same epoch: nothing");
        let mut e2 = group("Stable", &["b"]);
        e2.generation = Some(4);
        let s8 = Signs::next(Some(&s7), &e2, &snap(8_000, 9));
        assert_eq!(s8.rebalances.last(), Some(&8_000));
        // Only the last 20 are kept.
        let mut s = s8;
        for i in 0..30 {
            let id = format!("m{i}");
            s = Signs::next(Some(&s), &group("Stable", &[&id]), &snap(10_000 + i, 9));
        }
        assert_eq!(s.rebalances.len(), 20);
        assert_eq!(s.rebalances.last(), Some(&10_029));
    }
}
