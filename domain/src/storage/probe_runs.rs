//! The `probe_runs` table.

use crate::incidents::incident_key;
use crate::probe_runs::{ProbeRun, RunStatus, StepInfo};
use crate::targets::TargetKind;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub id: i64,
    pub target_id: Option<i64>,
    pub target_name: String,
    pub target_kind: TargetKind,
    pub probe: String,
    pub params: serde_json::Value,
    pub incident_id: Option<i64>,
    pub incident_number: Option<i64>,
    pub started_by: String,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub duration_ms: Option<i64>,
    pub status: RunStatus,
    pub error: Option<String>,
    pub steps: serde_json::Value,
    pub commands: i64,
    pub finding_count: i32,
    pub cancel_requested: bool,
    pub now: OffsetDateTime,
}

impl RunRow {
    pub fn view(&self) -> ProbeRun {
        ProbeRun {
            id: self.id,
            target_id: self.target_id,
            target_name: self.target_name.clone(),
            target_kind: self.target_kind.clone(),
            probe: self.probe.clone(),
            params: super::labels_from_json(&self.params),
            incident_key: self.incident_number.map(incident_key),
            started_by: self.started_by.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            elapsed_ms: self.duration_ms.unwrap_or_else(|| {
                ((self.now - self.started_at).whole_milliseconds() as i64).max(0)
            }),
            status: self.status,
            error: self.error.clone(),
            steps: serde_json::from_value::<Vec<StepInfo>>(self.steps.clone()).unwrap_or_default(),
            commands: self.commands,
            finding_count: self.finding_count,
            cancel_requested: self.cancel_requested,
        }
    }
}

const SELECT: &str = "SELECT r.id, r.target_id, r.target_name, r.target_kind, r.probe, r.params,
    r.incident_id, i.number AS incident_number, r.started_by, r.started_at, r.finished_at,
    r.duration_ms, r.status, r.error, r.steps, r.commands, r.finding_count,
    r.cancel_requested_at IS NOT NULL AS cancel_requested, now() AS now
    FROM probe_runs r LEFT JOIN incidents i ON i.id = r.incident_id";

pub struct NewRun<'a> {
    pub target_id: i64,
    pub target_name: &'a str,
    pub target_kind: TargetKind,
    pub probe: &'a str,
    pub params: serde_json::Value,
    pub incident_id: Option<i64>,
    pub started_by: &'a str,
    pub steps: serde_json::Value,
}

pub async fn insert(db: impl PgExecutor<'_>, r: NewRun<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO probe_runs (target_id, target_name, target_kind, probe, params, incident_id, started_by, steps)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(r.target_id)
    .bind(r.target_name)
    .bind(r.target_kind)
    .bind(r.probe)
    .bind(r.params)
    .bind(r.incident_id)
    .bind(r.started_by)
    .bind(r.steps)
    .fetch_one(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!("{SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn for_target(
    db: impl PgExecutor<'_>,
    target_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!(
        "{SELECT} WHERE r.target_id = $1 ORDER BY r.id DESC LIMIT $2"
    ))
    .bind(target_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn for_incident(
    db: impl PgExecutor<'_>,
    incident_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!(
        "{SELECT} WHERE r.incident_id = $1 ORDER BY r.id DESC LIMIT $2"
    ))
    .bind(incident_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The newest run of every target (DISTINCT ON over the (target_id, id DESC) index).
pub async fn latest_per_target(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as::<_, RunRow>(&format!(
        "{SELECT} WHERE r.id IN (SELECT DISTINCT ON (target_id) id FROM probe_runs
                                 WHERE target_id IS NOT NULL ORDER BY target_id, id DESC)"
    ))
    .fetch_all(db)
    .await
}

/// Runs still going on a target (whose runner is alive).
pub async fn running_on(db: impl PgExecutor<'_>, target_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM probe_runs WHERE target_id = $1 AND status = 'running'
           AND heartbeat_at > now() - interval '30 seconds'",
    )
    .bind(target_id)
    .fetch_one(db)
    .await
}

/// Writes progress and refreshes the heartbeat; returns whether a cancel was requested.
pub async fn progress(
    db: impl PgExecutor<'_>,
    id: i64,
    steps: &serde_json::Value,
    commands: i64,
) -> sqlx::Result<bool> {
    let r: Option<bool> = sqlx::query_scalar(
        "UPDATE probe_runs SET steps = $2, commands = $3, heartbeat_at = now()
         WHERE id = $1 AND status = 'running' RETURNING cancel_requested_at IS NOT NULL",
    )
    .bind(id)
    .bind(steps)
    .bind(commands)
    .fetch_optional(db)
    .await?;
    Ok(r.unwrap_or(true))
}

pub struct Finish<'a> {
    pub status: RunStatus,
    pub error: Option<&'a str>,
    pub steps: serde_json::Value,
    pub commands: i64,
    pub finding_count: i32,
    pub evidence: serde_json::Value,
    pub duration_ms: i64,
}

pub async fn finish(db: impl PgExecutor<'_>, id: i64, f: Finish<'_>) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE probe_runs SET status = $2, error = $3, steps = $4, commands = $5, finding_count = $6,
            evidence = $7, duration_ms = $8, finished_at = now(), heartbeat_at = now()
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .bind(f.status)
    .bind(f.error)
    .bind(f.steps)
    .bind(f.commands)
    .bind(f.finding_count)
    .bind(f.evidence)
    .bind(f.duration_ms)
    .execute(db)
    .await?
    .rows_affected())
}

pub async fn request_cancel(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE probe_runs SET cancel_requested_at = coalesce(cancel_requested_at, now())
         WHERE id = $1 AND status = 'running'",
    )
    .bind(id)
    .execute(db)
    .await?
    .rows_affected())
}

pub async fn evidence(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<serde_json::Value> {
    sqlx::query_scalar("SELECT evidence FROM probe_runs WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
}

pub async fn attach(db: impl PgExecutor<'_>, id: i64, incident_id: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE probe_runs SET incident_id = $2 WHERE id = $1 AND incident_id IS NULL")
            .bind(id)
            .bind(incident_id)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

pub async fn attach_findings(
    db: impl PgExecutor<'_>,
    id: i64,
    incident_id: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE findings SET incident_id = $2 WHERE probe_run_id = $1 AND incident_id IS NULL",
    )
    .bind(id)
    .bind(incident_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// Marks runs whose runner stopped refreshing the heartbeat (a replica that died) as failed.
pub async fn reap_orphans(db: impl PgExecutor<'_>, stale_secs: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE probe_runs SET status = 'failed', finished_at = now(),
            duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint,
            error = 'the server running this probe stopped before it finished'
         WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(stale_secs as f64)
    .execute(db)
    .await?
    .rows_affected())
}
