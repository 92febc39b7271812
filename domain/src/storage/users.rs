//! The `users` table.

use crate::accounts::{Role, UserView};
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

/// A user row including the password hash (never leaves the server).
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
}

impl UserRow {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            disabled: self.disabled,
            created_at: self.created_at,
            last_login_at: self.last_login_at,
        }
    }
}

const COLS: &str =
    "id, username, display_name, password_hash, role, disabled, created_at, last_login_at";

pub async fn by_username(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLS} FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(db)
        .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {COLS} FROM users ORDER BY username"))
        .fetch_all(db)
        .await
}

pub async fn count(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(db)
        .await
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    username: &str,
    display_name: &str,
    password_hash: &str,
    role: Role,
) -> sqlx::Result<UserRow> {
    sqlx::query_as::<_, UserRow>(&format!(
        "INSERT INTO users (username, display_name, password_hash, role)
         VALUES ($1, $2, $3, $4) RETURNING {COLS}"
    ))
    .bind(username)
    .bind(display_name)
    .bind(password_hash)
    .bind(role)
    .fetch_one(db)
    .await
}

pub async fn set_role(db: impl PgExecutor<'_>, id: i64, role: Role) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE users SET role = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(role)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

pub async fn set_disabled(db: impl PgExecutor<'_>, id: i64, disabled: bool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE users SET disabled = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(disabled)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

pub async fn set_password_hash(db: impl PgExecutor<'_>, id: i64, hash: &str) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(hash)
    .execute(db)
    .await?
    .rows_affected())
}

pub async fn touch_login(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Number of enabled admins other than `except`; guards against locking everyone out.
pub async fn other_active_admins(db: impl PgExecutor<'_>, except: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1",
    )
    .bind(except)
    .fetch_one(db)
    .await
}
