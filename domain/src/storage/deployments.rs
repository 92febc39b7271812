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
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

const DEP_COLS: &str = "id, service, environment, version, description, requester, requester_id,
    template_id, template_version, status, commit_sha, pipeline_url, created_at, started_at, finished_at";

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
}

pub async fn insert_deployment(db: impl PgExecutor<'_>, d: NewDeployment<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO deployments (service, environment, version, description, requester, requester_id,
           template_id, template_version, commit_sha, pipeline_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
}

pub async fn insert_item(
    db: impl PgExecutor<'_>,
    deployment_id: i64,
    i: NewItem<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO deployment_items (deployment_id, item_id, section, position, kind, text, help, required, requires_note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    .execute(db)
    .await
    .map(|_| ())
}

/// In template order: pre, during, post, each by position.
pub async fn items(db: impl PgExecutor<'_>, deployment_id: i64) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as::<_, ItemRow>(
        "SELECT item_id, section, kind, text, help, required, requires_note, state, set_by, set_at, note
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
