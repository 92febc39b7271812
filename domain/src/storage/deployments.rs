//! Deployment checklists: the `deployment_templates` table (versions are immutable; the
//! database refuses UPDATE, DELETE and TRUNCATE).

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    pub template_id: String,
    pub version: i32,
    pub name: String,
    pub description: String,
    pub yaml: String,
    pub spec: serde_json::Value,
    pub built_in: bool,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

const COLS: &str =
    "template_id, version, name, description, yaml, spec, built_in, created_by, created_at";

pub struct NewTemplate<'a> {
    pub template_id: &'a str,
    pub version: i32,
    pub name: &'a str,
    pub description: &'a str,
    pub yaml: &'a str,
    pub spec: serde_json::Value,
    pub built_in: bool,
    pub created_by: &'a str,
    pub created_by_id: Option<i64>,
}

/// Inserts a version; a unique violation means that version exists already.
pub async fn insert(db: impl PgExecutor<'_>, t: NewTemplate<'_>) -> sqlx::Result<TemplateRow> {
    sqlx::query_as::<_, TemplateRow>(&format!(
        "INSERT INTO deployment_templates
           (template_id, version, name, description, yaml, spec, built_in, created_by, created_by_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLS}"
    ))
    .bind(t.template_id)
    .bind(t.version)
    .bind(t.name)
    .bind(t.description)
    .bind(t.yaml)
    .bind(t.spec)
    .bind(t.built_in)
    .bind(t.created_by)
    .bind(t.created_by_id)
    .fetch_one(db)
    .await
}

/// The newest version of a template.
pub async fn latest(
    db: impl PgExecutor<'_>,
    template_id: &str,
) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as::<_, TemplateRow>(&format!(
        "SELECT {COLS} FROM deployment_templates WHERE template_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(template_id)
    .fetch_optional(db)
    .await
}

pub async fn version(
    db: impl PgExecutor<'_>,
    template_id: &str,
    version: i32,
) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as::<_, TemplateRow>(&format!(
        "SELECT {COLS} FROM deployment_templates WHERE template_id = $1 AND version = $2"
    ))
    .bind(template_id)
    .bind(version)
    .fetch_optional(db)
    .await
}

/// The newest version of every template, by id.
pub async fn list_latest(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TemplateRow>> {
    sqlx::query_as::<_, TemplateRow>(&format!(
        "SELECT DISTINCT ON (template_id) {COLS} FROM deployment_templates
         ORDER BY template_id, version DESC"
    ))
    .fetch_all(db)
    .await
}

/// Every version of a template, newest first (without their YAML).
pub async fn versions(
    db: impl PgExecutor<'_>,
    template_id: &str,
) -> sqlx::Result<Vec<(i32, String, OffsetDateTime)>> {
    sqlx::query_as(
        "SELECT version, created_by, created_at FROM deployment_templates
         WHERE template_id = $1 ORDER BY version DESC",
    )
    .bind(template_id)
    .fetch_all(db)
    .await
}

// ---- deployments ------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct DeploymentRow {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub description: String,
    pub requester: String,
    pub requester_id: Option<i64>,
    pub template_id: String,
    pub template_version: i32,
    pub status: String,
    pub commit_sha: Option<String>,
    pub pipeline_url: Option<String>,
    pub parameters: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

const DEP_COLS: &str = "id, service, environment, version, description, requester, requester_id,
    template_id, template_version, status, commit_sha, pipeline_url, parameters, created_at, started_at, finished_at";

pub struct NewDeployment<'a> {
    pub service: &'a str,
    pub environment: &'a str,
    pub version: &'a str,
    pub description: &'a str,
    pub requester: &'a str,
    pub requester_id: Option<i64>,
    pub template_id: &'a str,
    pub template_version: i32,
    pub commit_sha: Option<&'a str>,
    pub pipeline_url: Option<&'a str>,
    pub parameters: serde_json::Value,
}

pub async fn insert_deployment(db: impl PgExecutor<'_>, d: NewDeployment<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO deployments (service, environment, version, description, requester, requester_id,
           template_id, template_version, commit_sha, pipeline_url, parameters)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(d.service)
    .bind(d.environment)
    .bind(d.version)
    .bind(d.description)
    .bind(d.requester)
    .bind(d.requester_id)
    .bind(d.template_id)
    .bind(d.template_version)
    .bind(d.commit_sha)
    .bind(d.pipeline_url)
    .bind(d.parameters)
    .fetch_one(db)
    .await
}

/// A deployment; `lock` takes its row lock (every change to a deployment holds it, so
/// changes to one deployment are serialised).
pub async fn deployment(
    db: impl PgExecutor<'_>,
    id: i64,
    lock: bool,
) -> sqlx::Result<Option<DeploymentRow>> {
    sqlx::query_as::<_, DeploymentRow>(&format!(
        "SELECT {DEP_COLS} FROM deployments WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Newest first, at most `limit`, optionally below `before` (keyset) and filtered.
pub async fn list_deployments(
    db: impl PgExecutor<'_>,
    service: Option<&str>,
    environment: Option<&str>,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<DeploymentRow>> {
    sqlx::query_as::<_, DeploymentRow>(&format!(
        "SELECT {DEP_COLS} FROM deployments
         WHERE ($1::text IS NULL OR service = $1) AND ($2::text IS NULL OR environment = $2)
           AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(service)
    .bind(environment)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn set_status(db: impl PgExecutor<'_>, id: i64, status: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deployments SET status = $2,
           started_at = CASE WHEN $2 = 'in_progress' THEN now() ELSE started_at END,
           finished_at = CASE WHEN $2 IN ('done', 'rejected', 'rolled_back', 'cancelled') THEN now() ELSE finished_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub item_id: String,
    pub section: String,
    pub kind: String,
    pub text: String,
    pub help: String,
    pub required: bool,
    pub requires_note: bool,
    pub state: String,
    pub set_by: Option<String>,
    pub set_at: Option<OffsetDateTime>,
    pub note: Option<String>,
    pub spec: Option<serde_json::Value>,
    pub target_name: Option<String>,
    pub run: i32,
    pub probe_run_id: Option<i64>,
}

pub struct NewItem<'a> {
    pub item_id: &'a str,
    pub section: &'a str,
    pub position: i32,
    pub kind: &'a str,
    pub text: &'a str,
    pub help: &'a str,
    pub required: bool,
    pub requires_note: bool,
    /// An automated item's check, its target.
    pub spec: Option<serde_json::Value>,
    pub target_id: Option<i64>,
    pub target_name: Option<&'a str>,
}

pub async fn insert_item(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    i: NewItem<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deployment_items (deployment_id, item_id, section, position, kind, text, help, required, requires_note, spec, target_id, target_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(deployment_id)
    .bind(i.item_id)
    .bind(i.section)
    .bind(i.position)
    .bind(i.kind)
    .bind(i.text)
    .bind(i.help)
    .bind(i.required)
    .bind(i.requires_note)
    .bind(i.spec)
    .bind(i.target_id)
    .bind(i.target_name)
    .execute(db)
    .await
    .map(|_| ())
}

/// In template order: pre, during, post, each by position.
pub async fn items(db: impl PgExecutor<'_>, deployment_id: i64) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as::<_, ItemRow>(
        "SELECT item_id, section, kind, text, help, required, requires_note, state, set_by, set_at, note, spec, target_name, run, probe_run_id
         FROM deployment_items WHERE deployment_id = $1
         ORDER BY array_position(ARRAY['pre', 'during', 'post'], section), position",
    )
    .bind(deployment_id)
    .fetch_all(db)
    .await
}

pub async fn set_item_state(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    item_id: &str,
    state: &str,
    set_by: Option<&str>,
    note: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deployment_items SET state = $3, set_by = $4, set_at = CASE WHEN $4 IS NULL THEN NULL ELSE now() END, note = $5
         WHERE deployment_id = $1 AND item_id = $2",
    )
    .bind(deployment_id)
    .bind(item_id)
    .bind(state)
    .bind(set_by)
    .bind(note)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct ApprovalRow {
    pub approver: String,
    pub approver_id: i64,
    pub decision: String,
    pub reason: Option<String>,
    pub at: OffsetDateTime,
    pub snapshot: String,
    pub snapshot_sha256: String,
    pub voided_at: Option<OffsetDateTime>,
    pub voided_reason: Option<String>,
}

pub async fn approvals(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
) -> sqlx::Result<Vec<ApprovalRow>> {
    sqlx::query_as::<_, ApprovalRow>(
        "SELECT approver, approver_id, decision, reason, at, snapshot, snapshot_sha256, voided_at, voided_reason
         FROM deployment_approvals WHERE deployment_id = $1 ORDER BY id",
    )
    .bind(deployment_id)
    .fetch_all(db)
    .await
}

pub struct NewApproval<'a> {
    pub approver: &'a str,
    pub approver_id: i64,
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    pub snapshot: &'a str,
    pub snapshot_sha256: &'a str,
}

/// A unique violation means this person's decision stands already.
pub async fn insert_approval(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    a: NewApproval<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deployment_approvals (deployment_id, approver, approver_id, decision, reason, snapshot, snapshot_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(deployment_id)
    .bind(a.approver)
    .bind(a.approver_id)
    .bind(a.decision)
    .bind(a.reason)
    .bind(a.snapshot)
    .bind(a.snapshot_sha256)
    .execute(db)
    .await
    .map(|_| ())
}

/// Voids every standing approval (not rejections); how many.
pub async fn void_approvals(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    reason: &str,
) -> sqlx::Result<u64> {
    sqlx::query(
        "UPDATE deployment_approvals SET voided_at = now(), voided_reason = $2
         WHERE deployment_id = $1 AND voided_at IS NULL AND decision = 'approved'",
    )
    .bind(deployment_id)
    .bind(reason)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

pub async fn insert_event(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    actor: &str,
    kind: &str,
    body: &str,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deployment_events (deployment_id, actor, kind, body, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(deployment_id)
    .bind(actor)
    .bind(kind)
    .bind(body)
    .bind(details)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct EventRow {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub kind: String,
    pub body: String,
    pub details: serde_json::Value,
}

pub async fn events(db: impl PgExecutor<'_>, deployment_id: i64) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as::<_, EventRow>(
        "SELECT at, actor, kind, body, details FROM deployment_events WHERE deployment_id = $1 ORDER BY id",
    )
    .bind(deployment_id)
    .fetch_all(db)
    .await
}

// ---- automated items -------------------------------------------------------------------

/// Starts (or restarts) the automated items of a section: running, a new run, due now.
/// Returns the items started and the state each had.
pub async fn start_automated(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    section: &str,
    only_item: Option<&str>,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "UPDATE deployment_items d SET state = 'running', run = d.run + 1, next_at = now(),
                set_by = 'lookout', set_at = now(), note = NULL, probe_run_id = NULL
         FROM (SELECT item_id, state FROM deployment_items
               WHERE deployment_id = $1 AND section = $2 AND kind <> 'manual'
                 AND target_name IS NOT NULL
                 AND ($3::text IS NULL OR item_id = $3) FOR UPDATE) old
         WHERE d.deployment_id = $1 AND d.item_id = old.item_id
         RETURNING d.item_id, old.state",
    )
    .bind(deployment_id)
    .bind(section)
    .bind(only_item)
    .fetch_all(db)
    .await
}

/// A measurement that is due, claimed: its next one is pushed an interval away.
#[derive(Debug, Clone, FromRow)]
pub struct DueRow {
    pub deployment_id: i64,
    pub item_id: String,
    pub run: i32,
    pub spec: Option<serde_json::Value>,
    pub target_id: Option<i64>,
    pub kind: String,
    pub probe_run_id: Option<i64>,
    /// How late the claim is behind the schedule, in milliseconds.
    pub lag_ms: f64,
}

/// Claims up to `limit` running items whose measurement is due, in their section's time
/// (pre while the deployment is not yet started, during while in progress, post while
/// verifying). Replicas claim different rows (SKIP LOCKED); a claim moves the item's next
/// measurement one interval on, so an answer that never comes is not asked again before
/// then.
pub async fn claim_due(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<DueRow>> {
    sqlx::query_as::<_, DueRow>(
        "WITH due AS (
            SELECT i.deployment_id, i.item_id, i.next_at
            FROM deployment_items i JOIN deployments d ON d.id = i.deployment_id
            WHERE i.state = 'running' AND i.next_at <= now() AND i.kind <> 'manual'
              AND ((i.section = 'pre' AND d.status IN ('draft', 'awaiting_approval', 'approved'))
                OR (i.section = 'during' AND d.status = 'in_progress')
                OR (i.section = 'post' AND d.status = 'verifying'))
            ORDER BY i.next_at
            LIMIT $1
            FOR UPDATE OF i SKIP LOCKED)
         UPDATE deployment_items i
         SET next_at = now() + make_interval(secs => CASE WHEN i.kind = 'probe' THEN 2
                                                       ELSE COALESCE((i.spec->>'interval_secs')::int, 10) END)
         FROM due
         WHERE i.deployment_id = due.deployment_id AND i.item_id = due.item_id
         RETURNING i.deployment_id, i.item_id, i.run, i.spec, i.target_id, i.kind, i.probe_run_id,
                   (EXTRACT(EPOCH FROM (now() - due.next_at)) * 1000)::float8 AS lag_ms",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// An item's state and run, locked (to record a measurement against the run it was for).
pub async fn lock_item(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    item_id: &str,
) -> sqlx::Result<Option<(String, i32, String)>> {
    sqlx::query_as(
        "SELECT i.state, i.run, d.status FROM deployment_items i JOIN deployments d ON d.id = i.deployment_id
         WHERE i.deployment_id = $1 AND i.item_id = $2 FOR UPDATE OF i",
    )
    .bind(deployment_id)
    .bind(item_id)
    .fetch_optional(db)
    .await
}

pub struct NewMeasurement<'a> {
    pub deployment_id: i64,
    pub item_id: &'a str,
    pub run: i32,
    pub phase: &'a str,
    pub value: serde_json::Value,
    pub series: i32,
    pub message: &'a str,
    pub lag_ms: i32,
}

/// Records a measurement; returns the run's successful, failed and inconclusive counts
/// with it.
pub async fn insert_measurement(
    db: &mut sqlx::PgConnection,
    m: NewMeasurement<'_>,
) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query(
        "INSERT INTO deployment_measurements (deployment_id, item_id, run, phase, value, series, message, lag_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(m.deployment_id)
    .bind(m.item_id)
    .bind(m.run)
    .bind(m.phase)
    .bind(&m.value)
    .bind(m.series)
    .bind(m.message)
    .bind(m.lag_ms)
    .execute(&mut *db)
    .await?;
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE phase = 'successful'), count(*) FILTER (WHERE phase = 'failed'),
                count(*) FILTER (WHERE phase = 'inconclusive')
         FROM deployment_measurements WHERE deployment_id = $1 AND item_id = $2 AND run = $3",
    )
    .bind(m.deployment_id)
    .bind(m.item_id)
    .bind(m.run)
    .fetch_one(&mut *db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct MeasurementRow {
    pub item_id: String,
    pub run: i32,
    pub at: OffsetDateTime,
    pub phase: String,
    pub value: serde_json::Value,
    pub series: i32,
    pub message: String,
}

/// The newest `per_item` measurements of each item, oldest first.
pub async fn measurements(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    per_item: i64,
) -> sqlx::Result<Vec<MeasurementRow>> {
    sqlx::query_as::<_, MeasurementRow>(
        "SELECT item_id, run, at, phase, value, series, message FROM (
            SELECT *, row_number() OVER (PARTITION BY item_id ORDER BY id DESC) AS n
            FROM deployment_measurements WHERE deployment_id = $1) m
         WHERE n <= $2 ORDER BY item_id, id",
    )
    .bind(deployment_id)
    .bind(per_item)
    .fetch_all(db)
    .await
}

/// Records the probe run started for an item's run.
pub async fn set_probe_run(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    item_id: &str,
    probe_run_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deployment_items SET probe_run_id = $3 WHERE deployment_id = $1 AND item_id = $2",
    )
    .bind(deployment_id)
    .bind(item_id)
    .bind(probe_run_id)
    .execute(db)
    .await
    .map(|_| ())
}
