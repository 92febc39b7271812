//! The Kafka lag tables: raw samples, rounds, group states, rollups, alert episodes. Every
//! statement the sampler and the Kafka pages run is here; the service
//! (`services::kafka_lag`) decides what to write and how to show it.

use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;

/// The Kafka targets (id, connection), for the sampler.
pub async fn kafka_targets(pool: &PgPool) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as("SELECT id, connection FROM targets WHERE kind = 'kafka' ORDER BY id")
        .fetch_all(pool)
        .await
}

/// Whether target `id` exists and is a Kafka target (`None`: no such target).
pub async fn is_kafka_target(pool: &PgPool, id: i64) -> sqlx::Result<Option<bool>> {
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM targets WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(kind.map(|k| k == "kafka"))
}

/// One round's samples, a column each (one row per group partition).
#[derive(Default)]
pub struct SampleRows {
    pub group: Vec<String>,
    pub topic: Vec<String>,
    pub partition: Vec<i32>,
    pub committed: Vec<Option<i64>>,
    pub end: Vec<i64>,
    pub start: Vec<i64>,
}

pub async fn insert_samples(
    db: &mut PgConnection,
    target_id: i64,
    at: OffsetDateTime,
    r: &SampleRows,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO kafka_samples (target_id, group_name, topic, partition, at, committed, end_offset, start_offset)
         SELECT $1, x.g, x.t, x.p, $2, x.c, x.e, x.s
         FROM UNNEST($3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[]) AS x(g, t, p, c, e, s)
         ON CONFLICT DO NOTHING",
    )
    .bind(target_id)
    .bind(at)
    .bind(&r.group)
    .bind(&r.topic)
    .bind(&r.partition)
    .bind(&r.committed)
    .bind(&r.end)
    .bind(&r.start)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// A round as recorded (ok or with its error).
pub struct RoundRow<'a> {
    pub ok: bool,
    pub error: Option<&'a str>,
    pub groups: i32,
    pub partitions: i32,
    pub requests: i32,
    pub duration_ms: i32,
    pub holder: &'a str,
    pub sampled_at: Option<OffsetDateTime>,
}

pub async fn insert_round(
    db: &mut PgConnection,
    target_id: i64,
    r: RoundRow<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO kafka_rounds (target_id, ok, error, groups, partitions, requests, duration_ms, holder, sampled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(target_id)
    .bind(r.ok)
    .bind(r.error)
    .bind(r.groups)
    .bind(r.partitions)
    .bind(r.requests)
    .bind(r.duration_ms)
    .bind(r.holder)
    .bind(r.sampled_at)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// (group, topic, partition, at, committed, end offset)
pub type WindowSample = (String, String, i32, OffsetDateTime, Option<i64>, i64);

/// The samples of the last `previous` recorded rounds before `now` and of the round at
/// `now` (already stored), oldest first.
pub async fn window(
    db: &mut PgConnection,
    target_id: i64,
    now: OffsetDateTime,
    previous: i64,
) -> sqlx::Result<Vec<WindowSample>> {
    let mut times: Vec<OffsetDateTime> = sqlx::query_scalar(
        "SELECT sampled_at FROM kafka_rounds WHERE target_id = $1 AND sampled_at IS NOT NULL
         ORDER BY sampled_at DESC LIMIT $2",
    )
    .bind(target_id)
    .bind(previous)
    .fetch_all(&mut *db)
    .await?;
    times.push(now);
    let oldest = times.iter().min().copied().unwrap_or(now);
    sqlx::query_as(
        "SELECT group_name, topic, partition, at, committed, end_offset FROM kafka_samples
         WHERE at >= $2 AND target_id = $1 AND at = ANY($3) ORDER BY at",
    )
    .bind(target_id)
    .bind(oldest)
    .bind(&times)
    .fetch_all(&mut *db)
    .await
}

/// Each group's previous state: its partition verdicts and its carried signs.
pub async fn previous_states<V, S>(
    db: &mut PgConnection,
    target_id: i64,
) -> sqlx::Result<Vec<(String, Json<V>, Json<S>)>>
where
    V: DeserializeOwned + Send + Unpin + 'static,
    S: DeserializeOwned + Send + Unpin + 'static,
{
    sqlx::query_as("SELECT group_name, verdicts, signs FROM kafka_groups WHERE target_id = $1")
        .bind(target_id)
        .fetch_all(&mut *db)
        .await
}

/// Partitions to look up in the history, a column each; `committed` -1 for none.
#[derive(Default)]
pub struct Lookups {
    pub group: Vec<String>,
    pub topic: Vec<String>,
    pub partition: Vec<i32>,
    pub committed: Vec<i64>,
}

impl Lookups {
    pub fn push(&mut self, group: &str, topic: &str, partition: i32, committed: i64) {
        self.group.push(group.to_string());
        self.topic.push(topic.to_string());
        self.partition.push(partition);
        self.committed.push(committed);
    }
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }
}

/// Since when a partition's committed offset has had its value.
#[derive(FromRow)]
pub struct SinceRow {
    pub group_name: String,
    pub topic: String,
    pub partition: i32,
    /// First time the current committed value was seen after a different one.
    pub since: Option<OffsetDateTime>,
}

pub async fn committed_since(
    db: &mut PgConnection,
    target_id: i64,
    l: &Lookups,
) -> sqlx::Result<Vec<SinceRow>> {
    sqlx::query_as(
        "SELECT x.group_name, x.topic, x.partition,
            (SELECT min(s.at) FROM kafka_samples s WHERE s.target_id = $1 AND s.group_name = x.group_name
               AND s.topic = x.topic AND s.partition = x.partition
               AND s.at > coalesce((SELECT max(d.at) FROM kafka_samples d WHERE d.target_id = $1
                   AND d.group_name = x.group_name AND d.topic = x.topic AND d.partition = x.partition
                   AND d.committed IS DISTINCT FROM x.c), '-infinity')) AS since
         FROM UNNEST($2::text[], $3::text[], $4::int[], $5::bigint[]) AS x(group_name, topic, partition, c)",
    )
    .bind(target_id)
    .bind(&l.group)
    .bind(&l.topic)
    .bind(&l.partition)
    .bind(&l.committed)
    .fetch_all(&mut *db)
    .await
}

/// Where the history brackets a committed offset (for an estimated time lag).
#[derive(FromRow, Debug, Clone, Default)]
pub struct HistRow {
    pub group_name: String,
    pub topic: String,
    pub partition: i32,
    /// The newest sample whose log end had not passed the committed offset.
    pub a_at: Option<OffsetDateTime>,
    pub a_end: Option<i64>,
    /// The oldest sample whose log end had passed it.
    pub b_at: Option<OffsetDateTime>,
    pub b_end: Option<i64>,
    /// The oldest sample of the partition.
    pub first_at: Option<OffsetDateTime>,
}

pub async fn offset_history(
    db: &mut PgConnection,
    target_id: i64,
    l: &Lookups,
) -> sqlx::Result<Vec<HistRow>> {
    sqlx::query_as(
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
    .bind(&l.group)
    .bind(&l.topic)
    .bind(&l.partition)
    .bind(&l.committed)
    .fetch_all(&mut *db)
    .await
}

/// The columns of `kafka_groups`, one array each, for one UNNEST upsert.
#[derive(Default, Debug)]
pub struct GroupRows {
    pub name: Vec<String>,
    pub state: Vec<String>,
    pub protocol: Vec<String>,
    pub members: Vec<serde_json::Value>,
    pub partitions: Vec<i32>,
    pub total: Vec<i64>,
    pub time_lag: Vec<Option<f64>>,
    pub time_kind: Vec<Option<String>>,
    pub status: Vec<String>,
    pub worst: Vec<String>,
    pub reason: Vec<String>,
    pub catch_up: Vec<String>,
    pub verdicts: Vec<serde_json::Value>,
    pub rank: Vec<i16>,
    pub member_count: Vec<i32>,
    pub signs: Vec<serde_json::Value>,
}

pub async fn upsert_groups(
    db: &mut PgConnection,
    target_id: i64,
    at: OffsetDateTime,
    rows: &GroupRows,
) -> sqlx::Result<()> {
    if rows.name.is_empty() {
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
    .bind(&rows.name)
    .bind(&rows.state)
    .bind(&rows.protocol)
    .bind(&rows.members)
    .bind(&rows.partitions)
    .bind(&rows.total)
    .bind(&rows.time_lag)
    .bind(&rows.time_kind)
    .bind(&rows.status)
    .bind(&rows.worst)
    .bind(&rows.reason)
    .bind(&rows.catch_up)
    .bind(&rows.verdicts)
    .bind(&rows.rank)
    .bind(&rows.member_count)
    .bind(&rows.signs)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// One round's contribution to the rollups, a column each (one row per group).
#[derive(Default)]
pub struct RollupRows {
    pub group: Vec<String>,
    pub lag: Vec<i64>,
    pub end: Vec<i64>,
    pub committed: Vec<i64>,
    /// "topic/partition" keys, comma-joined.
    pub keys: Vec<String>,
    /// The lag of each key, comma-joined.
    pub lags: Vec<String>,
    pub status: Vec<i16>,
}

/// Adds a round to the 1-minute, 10-minute and 1-hour buckets.
pub async fn add_to_rollups(
    db: &mut PgConnection,
    target_id: i64,
    at: OffsetDateTime,
    r: &RollupRows,
) -> sqlx::Result<()> {
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
    .bind(at)
    .bind(&r.group)
    .bind(&r.lag)
    .bind(&r.end)
    .bind(&r.committed)
    .bind(&r.keys)
    .bind(&r.lags)
    .bind(&r.status)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// An open alert episode: bad since, alerted at, incident.
pub type AlertRow = (OffsetDateTime, Option<OffsetDateTime>, Option<i64>);

pub async fn open_alerts(
    db: &mut PgConnection,
    target_id: i64,
) -> sqlx::Result<Vec<(String, AlertRow)>> {
    Ok(sqlx::query_as::<_, (String, OffsetDateTime, Option<OffsetDateTime>, Option<i64>)>(
        "SELECT group_name, bad_since, alerted_at, incident_id FROM kafka_alerts WHERE target_id = $1",
    )
    .bind(target_id)
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|(g, a, b, c)| (g, (a, b, c)))
    .collect())
}

pub async fn start_alerts(
    db: &mut PgConnection,
    target_id: i64,
    since: OffsetDateTime,
    groups: &[String],
) -> sqlx::Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO kafka_alerts (target_id, group_name, bad_since)
         SELECT $1, g, $2 FROM UNNEST($3::text[]) AS g ON CONFLICT DO NOTHING",
    )
    .bind(target_id)
    .bind(since)
    .bind(groups)
    .execute(&mut *db)
    .await?;
    Ok(())
}

pub async fn end_alert(db: &mut PgConnection, target_id: i64, group: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM kafka_alerts WHERE target_id = $1 AND group_name = $2")
        .bind(target_id)
        .bind(group)
        .execute(&mut *db)
        .await?;
    Ok(())
}

pub async fn mark_alerted(
    db: &mut PgConnection,
    target_id: i64,
    group: &str,
    at: OffsetDateTime,
    incident: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE kafka_alerts SET alerted_at = $3, incident_id = $4 WHERE target_id = $1 AND group_name = $2",
    )
    .bind(target_id)
    .bind(group)
    .bind(at)
    .bind(incident)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Serialises raising for one alert key (two replicas never open two incidents).
pub async fn lock_alert_key(db: &mut PgConnection, key: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lookout.alert_group'), hashtext($1))")
        .bind(key)
        .execute(&mut *db)
        .await?;
    Ok(())
}

// ---- The read side ----

/// A group's latest state as stored.
#[derive(FromRow)]
pub struct GroupRow {
    pub group_name: String,
    pub at: OffsetDateTime,
    pub state: String,
    pub protocol: String,
    pub members: serde_json::Value,
    pub member_count: i32,
    pub partitions: i32,
    pub total_lag: i64,
    pub time_lag_s: Option<f64>,
    pub time_lag_kind: Option<String>,
    pub status: String,
    pub worst: String,
    pub reason: String,
    pub catch_up: String,
    pub verdicts: serde_json::Value,
    pub trend: Vec<i64>,
    pub signs: serde_json::Value,
}

const GROUP_COLS: &str =
    "group_name, at, state, protocol, members, member_count, partitions, total_lag, time_lag_s,
    time_lag_kind, status, worst, reason, catch_up, verdicts, trend, signs";

/// Where a page of the overview starts: after this (sort value, group).
pub enum After<'a> {
    Start,
    Numeric(f64, &'a str),
    Text(&'a str, &'a str),
}

/// One page (`limit` rows) of the overview ordered by `key` (an expression matching one of
/// kafka_groups' indexes), then by group name.
pub async fn groups_page(
    pool: &PgPool,
    target_id: i64,
    key: &str,
    desc: bool,
    after: After<'_>,
    limit: i64,
) -> sqlx::Result<Vec<GroupRow>> {
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let order = format!("ORDER BY {key} {dir}, group_name {dir} LIMIT $2");
    match after {
        After::Start => {
            sqlx::query_as(&format!(
                "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1 {order}"
            ))
            .bind(target_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        After::Numeric(v, g) => {
            sqlx::query_as(&format!(
                "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1
                   AND ({key}, group_name) {cmp} ($3::float8, $4) {order}"
            ))
            .bind(target_id)
            .bind(limit)
            .bind(v)
            .bind(g)
            .fetch_all(pool)
            .await
        }
        After::Text(v, g) => {
            sqlx::query_as(&format!(
                "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1
                   AND ({key}, group_name) {cmp} ($3, $4) {order}"
            ))
            .bind(target_id)
            .bind(limit)
            .bind(v)
            .bind(g)
            .fetch_all(pool)
            .await
        }
    }
}

/// (at, ok, error, groups, partitions, requests, duration ms)
pub type RoundSummary = (OffsetDateTime, bool, Option<String>, i32, i32, i32, i32);

pub async fn last_round(pool: &PgPool, target_id: i64) -> sqlx::Result<Option<RoundSummary>> {
    sqlx::query_as(
        "SELECT at, ok, error, groups, partitions, requests, duration_ms FROM kafka_rounds
         WHERE target_id = $1 ORDER BY at DESC LIMIT 1",
    )
    .bind(target_id)
    .fetch_optional(pool)
    .await
}

/// The groups with offsets on `topic`, worst first.
pub async fn groups_of_topic(
    pool: &PgPool,
    target_id: i64,
    topic: &str,
) -> sqlx::Result<Vec<GroupRow>> {
    sqlx::query_as(&format!(
        "SELECT {GROUP_COLS} FROM kafka_groups
         WHERE target_id = $1 AND verdicts @> jsonb_build_array(jsonb_build_object('topic', $2::text))
         ORDER BY status_rank DESC, total_lag DESC, group_name LIMIT 1000"
    ))
    .bind(target_id)
    .bind(topic)
    .fetch_all(pool)
    .await
}

pub async fn group(pool: &PgPool, target_id: i64, group: &str) -> sqlx::Result<Option<GroupRow>> {
    sqlx::query_as(&format!(
        "SELECT {GROUP_COLS} FROM kafka_groups WHERE target_id = $1 AND group_name = $2"
    ))
    .bind(target_id)
    .bind(group)
    .fetch_optional(pool)
    .await
}

/// (at, topic, partition, committed, end offset)
pub type RawPoint = (OffsetDateTime, String, i32, Option<i64>, i64);

/// A group's raw samples in a range (at most 500,000).
pub async fn raw_series(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Vec<RawPoint>> {
    sqlx::query_as(
        "SELECT at, topic, partition, committed, end_offset FROM kafka_samples
         WHERE target_id = $1 AND group_name = $2 AND at >= $3 AND at <= $4
         ORDER BY at LIMIT 500000",
    )
    .bind(target_id)
    .bind(group)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// (bucket, lag, end, committed, partition keys, partition lags)
pub type RollupRow = (OffsetDateTime, i64, i64, i64, Vec<String>, Vec<i64>);

/// A group's buckets of one resolution in a range (at most 20,000).
pub async fn rollup_series(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    resolution: i32,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Vec<RollupRow>> {
    sqlx::query_as(
        "SELECT bucket, lag_max, end_max, committed_max, part_keys, part_lag FROM kafka_lag_rollups
         WHERE target_id = $1 AND group_name = $2 AND resolution = $5 AND bucket >= $3 AND bucket <= $4
         ORDER BY bucket LIMIT 20000",
    )
    .bind(target_id)
    .bind(group)
    .bind(from)
    .bind(to)
    .bind(resolution)
    .fetch_all(pool)
    .await
}

/// The worst verdict rank per bucket of one resolution, from one bucket before `from`.
pub async fn verdict_band(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    resolution: i32,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Vec<(OffsetDateTime, i16)>> {
    sqlx::query_as(
        "SELECT bucket, status_max FROM kafka_lag_rollups
         WHERE target_id = $1 AND group_name = $2 AND resolution = $3
           AND bucket >= $4 - make_interval(secs => $3) AND bucket <= $5
         ORDER BY bucket LIMIT 20000",
    )
    .bind(target_id)
    .bind(group)
    .bind(resolution)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// (number, title, detected at, resolved at) of the incidents overlapping a range that are
/// about the group (its lag alert) or its target (a probe run against it attached).
pub async fn incidents_about(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Vec<(i64, String, OffsetDateTime, Option<OffsetDateTime>)>> {
    sqlx::query_as(
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
    .await
}

/// Deployments drawn on a group's graphs: those with a `kafka_lag` item on this target and
/// group, and those of a service the group is named after (`checkout`, `checkout-worker`,
/// `checkout.events`) in the target's environment — open at some time in `[from, to]`.
pub async fn deployments_about(
    pool: &PgPool,
    target_id: i64,
    group: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<
    Vec<(
        i64,
        String,
        String,
        String,
        OffsetDateTime,
        Option<OffsetDateTime>,
    )>,
> {
    sqlx::query_as(
        "SELECT d.id, d.service, d.version, d.status, coalesce(d.started_at, d.created_at), d.finished_at
         FROM deployments d
         WHERE (d.id IN (SELECT i.deployment_id FROM deployment_items i
                         WHERE i.kind = 'kafka_lag' AND i.target_id = $1 AND i.spec->>'group' = $2)
                OR (d.environment = (SELECT environment FROM targets WHERE id = $1)
                    AND ($2 = d.service OR left($2, length(d.service) + 1) IN (d.service || '-', d.service || '.', d.service || '_'))))
           AND coalesce(d.started_at, d.created_at) <= $4 AND coalesce(d.finished_at, 'infinity') >= $3
         ORDER BY d.id LIMIT 50",
    )
    .bind(target_id)
    .bind(group)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

// ---- Retention ----

/// Deletes rollups of one resolution older than `days`.
pub async fn prune_rollups(pool: &PgPool, resolution: i32, days: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM kafka_lag_rollups WHERE resolution = $1 AND bucket < now() - make_interval(days => $2)",
    )
    .bind(resolution)
    .bind(days as i32)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes raw samples and round records older than `hours`.
pub async fn prune_raw(pool: &PgPool, hours: i64) -> sqlx::Result<u64> {
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
