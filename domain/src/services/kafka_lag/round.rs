//! One sampling round of one target: read the cluster, store the samples, evaluate
//! (`evaluate`, pure) between the reads and writes it needs, add to the rollups, step the
//! alerts, record the round — in one transaction.

use super::alerts::AlertPolicy;
use super::evaluate::{self, Evaluated, Exact, Previous};
use super::ts;
use crate::error::{DomainError, DomainResult};
use crate::storage::kafka_lag::{self as store, RollupRows, SampleRows};
use crate::targets::TargetKind;
use probes::kafka::lag::Snapshot;
use probes::kafka::rules;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

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
    let target = crate::services::resolve::row(pool, target_id).await?;
    if target.kind != TargetKind::KAFKA {
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
    let bootstrap = match crate::services::resolve::open_secret(access.key.as_ref(), &target) {
        Ok(secret) => {
            crate::services::resolve::connect_address(access, &target, secret.as_deref()).await
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
    store::insert_round(
        &mut tx,
        target_id,
        store::RoundRow {
            ok: out.ok,
            error: out.error.as_deref(),
            groups: out.groups as i32,
            partitions: out.partitions as i32,
            requests: out.requests as i32,
            duration_ms: out.duration.as_millis() as i32,
            holder,
            sampled_at,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

async fn store_samples(db: &mut PgConnection, target_id: i64, s: &Snapshot) -> DomainResult<usize> {
    let mut r = SampleRows::default();
    for grp in &s.groups {
        for ((topic, part), committed) in &grp.committed {
            let (start, end) = s
                .offsets
                .get(&(topic.clone(), *part))
                .copied()
                .unwrap_or((0, 0));
            r.group.push(grp.name.clone());
            r.topic.push(topic.clone());
            r.partition.push(*part);
            r.committed.push(*committed);
            r.end.push(end);
            r.start.push(start);
        }
    }
    store::insert_samples(db, target_id, ts(s.at_ms), &r).await?;
    Ok(r.group.len())
}

/// Evaluates every group of the round and stores their states, in a fixed number of
/// statements whatever the number of groups: the window (this round and the previous
/// nine recorded ones) in one read, the previous states in one read (they carry since when
/// each committed offset has had its value), the history only for partitions that need it
/// (an estimated time lag; states written before the carry existed), and one upsert. The
/// judging between them is pure (`evaluate`).
async fn evaluate_groups(
    db: &mut PgConnection,
    target_id: i64,
    s: &Snapshot,
    exact: &Exact,
) -> DomainResult<Vec<Evaluated>> {
    let now = ts(s.at_ms);
    let windows =
        evaluate::windows(store::window(&mut *db, target_id, now, rules::WINDOW as i64 - 1).await?);
    let mut prev = Previous::default();
    for (g, states, signs) in store::previous_states(&mut *db, target_id).await? {
        prev.states.insert(g.clone(), states.0);
        prev.signs.insert(g, signs.0);
    }
    let (mut since, lookups) = evaluate::carry_since(s, &prev);
    if !lookups.is_empty() {
        for r in store::committed_since(&mut *db, target_id, &lookups).await? {
            since.insert((r.group_name, r.topic, r.partition), r.since.map(super::ms));
        }
    }
    let (judged, lookups) = evaluate::judge(s, windows, &since, exact);
    let mut hist = HashMap::new();
    if !lookups.is_empty() {
        for h in store::offset_history(&mut *db, target_id, &lookups).await? {
            hist.insert((h.group_name.clone(), h.topic.clone(), h.partition), h);
        }
    }
    let (rows, out) = evaluate::states(s, judged, &hist, &prev, exact)?;
    store::upsert_groups(&mut *db, target_id, now, &rows).await?;
    Ok(out)
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
    let mut r = RollupRows::default();
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
        r.group.push(grp.name.clone());
        r.lag.push(l);
        r.end.push(e);
        r.committed.push(c);
        r.keys.push(k.join(","));
        r.lags.push(pl.join(","));
        r.status
            .push(ranks.get(grp.name.as_str()).copied().unwrap_or(0));
    }
    store::add_to_rollups(db, target_id, ts(s.at_ms), &r).await?;
    Ok(())
}
