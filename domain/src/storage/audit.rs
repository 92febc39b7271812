//! The append-only `audit_log` table (the database rejects UPDATE, DELETE and TRUNCATE).

use crate::accounts::{AuditEntry, AuditFilter, AuditPage, RequestMeta};
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// One entry to append.
pub struct NewEntry<'a> {
    pub actor_id: Option<i64>,
    pub actor_name: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub details: serde_json::Value,
    pub meta: &'a RequestMeta,
}

pub async fn append(db: impl PgExecutor<'_>, e: NewEntry<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor_id, actor_name, action, target, details, client_ip, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.actor_id)
    .bind(e.actor_name)
    .bind(e.action)
    .bind(e.target)
    .bind(e.details)
    .bind(&e.meta.client_ip)
    .bind(&e.meta.request_id)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct Row {
    id: i64,
    at: OffsetDateTime,
    actor_name: String,
    action: String,
    target: String,
    details: serde_json::Value,
    client_ip: String,
    request_id: String,
}

/// Newest first, keyset-paginated on id.
pub async fn list(db: impl PgExecutor<'_>, f: &AuditFilter) -> sqlx::Result<AuditPage> {
    let limit = f.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as i64;
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, at, actor_name, action, target, details, client_ip, request_id
         FROM audit_log
         WHERE ($1::text IS NULL OR actor_name = $1)
           AND ($2::text IS NULL OR action LIKE $2 || '%')
           AND ($3::bigint IS NULL OR id < $3)
         ORDER BY id DESC
         LIMIT $4",
    )
    .bind(f.actor.as_deref().filter(|s| !s.is_empty()))
    .bind(f.action.as_deref().filter(|s| !s.is_empty()))
    .bind(f.before_id)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    let entries: Vec<AuditEntry> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| AuditEntry {
            id: r.id,
            at: r.at,
            actor_name: r.actor_name,
            action: r.action,
            target: r.target,
            details: if r.details == serde_json::json!({}) {
                String::new()
            } else {
                r.details.to_string()
            },
            client_ip: r.client_ip,
            request_id: r.request_id,
        })
        .collect();
    let next_before_id = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_before_id,
    })
}
