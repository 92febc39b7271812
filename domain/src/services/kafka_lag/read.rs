//! The read side: the overview (sorted by any column, keyset-paged), a group, the groups
//! of a topic, and a group's lag series with its verdict band and incident annotations.

use super::{evaluate::Signs, ms, ts};
use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::incidents::incident_key;
use crate::kafka::{
    KafkaGroup, KafkaGroupPage, KafkaRound, LagAnnotation, LagPoint, LagSeries, PartitionSeries,
    VerdictBand,
};
use crate::storage::kafka_lag::{self as store, After, GroupRow};
use sqlx::PgPool;
use std::collections::HashMap;
use time::OffsetDateTime;

/// The verdict of a status rank (0 OK, 1 INCOMPLETE, 2 WARN, 3 ERR).
pub(super) fn status_of_rank(rank: i16) -> &'static str {
    match rank {
        3 => "ERR",
        2 => "WARN",
        1 => "INCOMPLETE",
        _ => "OK",
    }
}

/// The rank of a verdict (see [`status_of_rank`]).
pub(super) fn rank_of_status(status: &str) -> i16 {
    match status {
        "ERR" => 3,
        "WARN" => 2,
        "INCOMPLETE" => 1,
        _ => 0,
    }
}

async fn kafka_target(pool: &PgPool, id: i64) -> DomainResult<()> {
    match store::is_kafka_target(pool, id).await? {
        Some(true) => Ok(()),
        Some(false) => Err(DomainError::not_found(format!(
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
            GroupSort::Status => rank_of_status(&g.status).to_string(),
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
    let bad_cursor = || DomainError::invalid("cursor: not one this API returned");
    let cursor: Option<(String, String)> = match cursor {
        Some(c) if !c.is_empty() => {
            Some(serde_json::from_str::<(String, String)>(c).map_err(|_| bad_cursor())?)
        }
        _ => None,
    };
    let after = match &cursor {
        None => After::Start,
        Some((v, g)) if numeric => After::Numeric(v.parse().map_err(|_| bad_cursor())?, g),
        Some((v, g)) => After::Text(v, g),
    };
    let rows = store::groups_page(pool, target_id, key, desc, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let groups: Vec<KafkaGroup> = rows.into_iter().take(limit as usize).map(view).collect();
    let next_cursor = if more {
        groups
            .last()
            .and_then(|g| serde_json::to_string(&(sort.value(g), g.group.clone())).ok())
    } else {
        None
    };
    let last_round = store::last_round(pool, target_id)
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
    Ok(store::groups_of_topic(pool, target_id, topic)
        .await?
        .into_iter()
        .map(view)
        .collect())
}

pub async fn get_group(
    pool: &PgPool,
    who: &Principal,
    target_id: i64,
    group: &str,
) -> DomainResult<KafkaGroup> {
    who.require(Role::Viewer)?;
    kafka_target(pool, target_id).await?;
    store::group(pool, target_id, group)
        .await?
        .map(view)
        .ok_or_else(|| {
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
            let rows = store::raw_series(pool, target_id, group, from, to).await?;
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
            let rows = store::rollup_series(pool, target_id, group, r, from, to).await?;
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
    let band: Vec<VerdictBand> = store::verdict_band(pool, target_id, group, band_res, from, to)
        .await?
        .into_iter()
        .map(|(at, rank)| VerdictBand {
            at,
            seconds: band_res,
            status: status_of_rank(rank).to_string(),
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

/// Incidents that overlap the range and are about this group (its lag alert) or its
/// target (a probe run against it attached to the incident).
async fn annotations(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> DomainResult<Vec<LagAnnotation>> {
    let mut out: Vec<LagAnnotation> = store::incidents_about(pool, target_id, group, from, to)
        .await?
        .into_iter()
        .map(|(n, title, from, to)| LagAnnotation {
            key: incident_key(n),
            kind: "incident".into(),
            title,
            from,
            to,
        })
        .collect();
    out.extend(
        store::deployments_about(pool, target_id, group, from, to)
            .await?
            .into_iter()
            .map(|(id, service, version, status, from, to)| LagAnnotation {
                key: crate::deployments::deployment_key(id),
                kind: "deployment".into(),
                title: format!("deployment of {service} {version} ({status})"),
                from,
                to,
            }),
    );
    out.sort_by_key(|a| a.from);
    Ok(out)
}

/// A stored group state as the pages show it.
fn view(row: GroupRow) -> KafkaGroup {
    let mut g = KafkaGroup {
        group: row.group_name,
        at: row.at,
        state: row.state,
        protocol: row.protocol,
        members: serde_json::from_value(row.members).unwrap_or_default(),
        member_count: row.member_count,
        partitions: row.partitions,
        total_lag: row.total_lag,
        time_lag_s: row.time_lag_s,
        time_lag_kind: row.time_lag_kind,
        status: row.status,
        worst: row.worst,
        reason: row.reason,
        catch_up: row.catch_up,
        verdicts: serde_json::from_value(row.verdicts).unwrap_or_default(),
        trend: row.trend,
        rebalances_last_hour: 0,
        last_rebalance: None,
        dlq: vec![],
        lag_unknown_partitions: 0,
        lag_unknown_messages: 0,
        lag_upper_bound: 0,
    }
    .with_unknown_lag();
    let signs: Signs = serde_json::from_value(row.signs).unwrap_or_default();
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
