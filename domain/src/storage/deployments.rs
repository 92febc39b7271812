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
