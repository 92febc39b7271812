//! The `targets` table. `secret_ciphertext` is already sealed by `secrets::SecretBox`.

use crate::targets::{Target, TargetKind};
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

#[derive(Debug, Clone, FromRow)]
pub struct TargetRow {
    pub id: i64,
    pub name: String,
    pub kind: TargetKind,
    pub connection: String,
    pub username: String,
    pub secret_ciphertext: Option<Vec<u8>>,
    pub environment: String,
    pub labels: serde_json::Value,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl TargetRow {
    pub fn view(&self) -> Target {
        Target {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind.clone(),
            connection: self.connection.clone(),
            username: self.username.clone(),
            secret_set: self.secret_ciphertext.is_some(),
            environment: self.environment.clone(),
            labels: super::labels_from_json(&self.labels),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_run: None,
        }
    }
}

const COLS: &str = "id, name, kind, connection, username, secret_ciphertext, environment, labels,
    created_by, created_at, updated_at";

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TargetRow>> {
    sqlx::query_as::<_, TargetRow>(&format!("SELECT {COLS} FROM targets ORDER BY kind, name"))
        .fetch_all(db)
        .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<TargetRow>> {
    sqlx::query_as::<_, TargetRow>(&format!("SELECT {COLS} FROM targets WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn insert(db: impl PgExecutor<'_>, t: &TargetRow) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO targets (name, kind, connection, username, secret_ciphertext, environment, labels, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(&t.name)
    .bind(&t.kind)
    .bind(&t.connection)
    .bind(&t.username)
    .bind(&t.secret_ciphertext)
    .bind(&t.environment)
    .bind(&t.labels)
    .bind(&t.created_by)
    .fetch_one(db)
    .await
}

pub async fn save(db: impl PgExecutor<'_>, t: &TargetRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE targets SET name = $2, connection = $3, username = $4, secret_ciphertext = $5,
            environment = $6, labels = $7, updated_at = now() WHERE id = $1",
    )
    .bind(t.id)
    .bind(&t.name)
    .bind(&t.connection)
    .bind(&t.username)
    .bind(&t.secret_ciphertext)
    .bind(&t.environment)
    .bind(&t.labels)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM targets WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected())
}

/// How many targets hold a secret (the server refuses to start without a key when > 0).
pub async fn count_with_secret(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM targets WHERE secret_ciphertext IS NOT NULL")
        .fetch_one(db)
        .await
}
