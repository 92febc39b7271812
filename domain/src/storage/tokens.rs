//! The `api_tokens` table. Only SHA-256 hashes of tokens are stored.

use crate::accounts::{Role, TokenView};
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub deploy_services: Option<Vec<String>>,
    pub scope: Option<String>,
}

impl From<TokenRow> for TokenView {
    fn from(r: TokenRow) -> Self {
        TokenView {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            role: r.role,
            created_by: r.created_by,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            deploy_services: r.deploy_services,
            scope: r.scope,
        }
    }
}

const SELECT: &str = "SELECT t.id, t.name, t.prefix, t.role, u.username AS created_by,
    t.created_at, t.last_used_at, t.revoked_at, t.deploy_services, t.scope
    FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by";

/// What a token is limited to: deployments of some services, or a scope (`ingest`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits<'a> {
    pub deploy_services: Option<&'a [String]>,
    pub scope: Option<&'a str>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    hash: &[u8],
    prefix: &str,
    role: Role,
    created_by: Option<i64>,
    limits: Limits<'_>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO api_tokens (name, token_hash, prefix, role, created_by, deploy_services, scope)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(hash)
    .bind(prefix)
    .bind(role)
    .bind(created_by)
    .bind(limits.deploy_services)
    .bind(limits.scope)
    .fetch_one(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as::<_, TokenRow>(&format!("{SELECT} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as::<_, TokenRow>(&format!(
        "{SELECT} ORDER BY t.revoked_at IS NOT NULL, t.created_at DESC"
    ))
    .fetch_all(db)
    .await
}

/// Looks up a live (not revoked) token by hash.
pub async fn live_by_hash(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as::<_, TokenRow>(&format!(
        "{SELECT} WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
    ))
    .bind(hash)
    .fetch_optional(db)
    .await
}

/// Records use, at most once a minute per token so that busy CI jobs don't write on every call.
pub async fn touch(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn revoke(db: impl PgExecutor<'_>, id: i64, by: Option<i64>) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE api_tokens SET revoked_at = now(), revoked_by = $2
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .execute(db)
    .await?
    .rows_affected())
}
