//! Users, API tokens and the audit log: the admin's Settings, and a user's own password.
//! Every change writes its audit entry in the same transaction as the change.

use super::auth::{TOKEN_PREFIX, token_hash};
use super::passwords;
use crate::accounts::{
    AuditFilter, AuditPage, NewToken, Principal, RequestMeta, Role, TokenView, UserView, rules,
};
use crate::error::{DomainError, DomainResult};
use crate::storage::{audit, is_unique_violation, login_throttle, sessions, tokens, users};
use sqlx::PgPool;

fn entry<'a>(
    who: &'a Principal,
    action: &'a str,
    target: &'a str,
    details: serde_json::Value,
    meta: &'a RequestMeta,
) -> audit::NewEntry<'a> {
    audit::NewEntry {
        actor_id: who.user_id,
        actor_name: &who.name,
        action,
        target,
        details,
        meta,
    }
}

pub async fn list_users(pool: &PgPool, who: &Principal) -> DomainResult<Vec<UserView>> {
    who.require(Role::Admin)?;
    Ok(users::list(pool).await?.iter().map(|u| u.view()).collect())
}

pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
}

pub async fn create_user(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    new: NewUser,
) -> DomainResult<UserView> {
    who.require(Role::Admin)?;
    let username = new.username.trim().to_ascii_lowercase();
    rules::check_username(&username).map_err(DomainError::Invalid)?;
    rules::check_password(&new.password).map_err(DomainError::Invalid)?;
    rules::check_display_name(&new.display_name).map_err(DomainError::Invalid)?;
    let display = new.display_name.trim();
    let hash = passwords::hash(new.password).await?;
    let mut tx = pool.begin().await?;
    let user = match users::insert(&mut *tx, &username, display, &hash, new.role).await {
        Ok(u) => u,
        Err(e) if is_unique_violation(&e) => {
            return Err(DomainError::conflict(format!(
                "a user named {username:?} already exists"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    audit::append(
        &mut *tx,
        entry(
            who,
            "user.create",
            &username,
            serde_json::json!({ "role": new.role }),
            meta,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(user.view())
}

async fn target_user(tx: &mut sqlx::PgConnection, id: i64) -> DomainResult<users::UserRow> {
    users::by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no user with id {id}")))
}

/// Refuses a change that would leave no enabled admin.
async fn keep_an_admin(tx: &mut sqlx::PgConnection, user: &users::UserRow) -> DomainResult<()> {
    if user.role == Role::Admin
        && !user.disabled
        && users::other_active_admins(&mut *tx, user.id).await? == 0
    {
        return Err(DomainError::conflict(
            "this is the last enabled admin; make someone else admin first",
        ));
    }
    Ok(())
}

pub async fn set_role(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    user_id: i64,
    role: Role,
) -> DomainResult<UserView> {
    who.require(Role::Admin)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lookout.admins'))")
        .execute(&mut *tx)
        .await?;
    let user = target_user(&mut tx, user_id).await?;
    if role != Role::Admin {
        keep_an_admin(&mut tx, &user).await?;
    }
    users::set_role(&mut *tx, user_id, role).await?;
    audit::append(
        &mut *tx,
        entry(
            who,
            "user.role",
            &user.username,
            serde_json::json!({ "from": user.role, "to": role }),
            meta,
        ),
    )
    .await?;
    let updated = target_user(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(updated.view())
}

pub async fn set_disabled(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    user_id: i64,
    disabled: bool,
) -> DomainResult<UserView> {
    who.require(Role::Admin)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lookout.admins'))")
        .execute(&mut *tx)
        .await?;
    let user = target_user(&mut tx, user_id).await?;
    if disabled {
        keep_an_admin(&mut tx, &user).await?;
        sessions::delete_for_user(&mut *tx, user_id).await?;
    }
    users::set_disabled(&mut *tx, user_id, disabled).await?;
    audit::append(
        &mut *tx,
        entry(
            who,
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            &user.username,
            serde_json::json!({}),
            meta,
        ),
    )
    .await?;
    let updated = target_user(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(updated.view())
}

/// An admin sets a new password for someone; all their sessions end.
pub async fn reset_password(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    user_id: i64,
    new_password: String,
) -> DomainResult<()> {
    who.require(Role::Admin)?;
    rules::check_password(&new_password).map_err(DomainError::Invalid)?;
    let hash = passwords::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    let user = target_user(&mut tx, user_id).await?;
    users::set_password_hash(&mut *tx, user_id, &hash).await?;
    sessions::delete_for_user(&mut *tx, user_id).await?;
    audit::append(
        &mut *tx,
        entry(
            who,
            "user.password_reset",
            &user.username,
            serde_json::json!({}),
            meta,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Wrong current passwords allowed per account on the change-password form within the
/// window, before it refuses for a while: a stolen session must not become a way to guess
/// the password at argon2's pace.
pub const PASSWORD_CHANGE_POLICY: super::auth::ThrottlePolicy = super::auth::ThrottlePolicy {
    max_per_user: 5,
    max_per_ip: 20,
    window_secs: 15 * 60,
};

/// A signed-in user changes their own password (needs the current one). Every other session
/// of the user ends; `keep_session` (the caller's own session id) stays signed in. Wrong
/// current passwords are throttled like sign-ins ([`PASSWORD_CHANGE_POLICY`]).
pub async fn change_own_password(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    current: String,
    new_password: String,
    keep_session: Option<&str>,
) -> DomainResult<()> {
    let Some(user_id) = who.user_id else {
        return Err(DomainError::forbidden(
            "API tokens have no password; sign in as a user to change yours",
        ));
    };
    rules::check_password(&new_password).map_err(DomainError::Invalid)?;
    let user = users::by_id(pool, user_id)
        .await?
        .ok_or_else(|| DomainError::not_found("your account no longer exists"))?;
    // Throttled under its own key, so failures here and at sign-in do not mix.
    let key = format!("password-change:{}", user.username);
    let attempt =
        match super::auth::reserve_attempt(pool, PASSWORD_CHANGE_POLICY, &key, &meta.client_ip)
            .await?
        {
            Ok(id) => id,
            Err(limit) => {
                let (_, wait) = limit.describe();
                return Err(DomainError::RateLimited {
                    message: format!(
                        "Too many wrong current passwords. Try again in {} minutes.",
                        (wait + 59) / 60
                    ),
                    retry_after_secs: wait as u64,
                });
            }
        };
    let ok = match passwords::verify(current, user.password_hash.clone()).await {
        Ok(ok) => ok,
        Err(e) => {
            login_throttle::forget(pool, attempt).await?;
            return Err(e);
        }
    };
    if !ok {
        return Err(DomainError::invalid("the current password is wrong"));
    }
    let hash = match passwords::hash(new_password).await {
        Ok(h) => h,
        Err(e) => {
            login_throttle::forget(pool, attempt).await?;
            return Err(e);
        }
    };
    let mut tx = pool.begin().await?;
    login_throttle::clear_user(&mut *tx, &key).await?;
    users::set_password_hash(&mut *tx, user_id, &hash).await?;
    let ended = sessions::delete_for_user_except(&mut *tx, user_id, keep_session).await?;
    audit::append(
        &mut *tx,
        entry(
            who,
            "user.password_change",
            &user.username,
            serde_json::json!({ "other_sessions_ended": ended }),
            meta,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_tokens(pool: &PgPool, who: &Principal) -> DomainResult<Vec<TokenView>> {
    who.require(Role::Admin)?;
    Ok(tokens::list(pool)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Creates a token. The secret is in the result and nowhere else, ever.
pub async fn create_token(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    name: &str,
    role: Role,
) -> DomainResult<NewToken> {
    insert_token(pool, who, meta, name, role, None, None).await
}

/// The most services one CI token may deploy.
pub const DEPLOY_SERVICES_MAX: usize = 50;

/// A CI token limited to deployments of `services`: it opens deployments of those services
/// and works on them (items, moves, pipeline events, the gate) with the responder role —
/// never approves, never waives — and is refused everywhere outside the deployments API.
pub async fn create_deploy_token(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    name: &str,
    services: &[String],
) -> DomainResult<NewToken> {
    let mut list: Vec<String> = services
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    list.sort();
    list.dedup();
    if list.is_empty() || list.len() > DEPLOY_SERVICES_MAX {
        return Err(DomainError::invalid(format!(
            "deploy_services: 1 to {DEPLOY_SERVICES_MAX} services"
        )));
    }
    for s in &list {
        crate::incidents::check_name("service", s).map_err(DomainError::Invalid)?;
    }
    insert_token(pool, who, meta, name, Role::Responder, Some(list), None).await
}

/// An ingest token: it sends OTLP traces (`/v1/traces`, the OTLP/gRPC port) and nothing else;
/// no other token may send them. It has the viewer role.
pub async fn create_ingest_token(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    name: &str,
) -> DomainResult<NewToken> {
    insert_token(pool, who, meta, name, Role::Viewer, None, Some("ingest")).await
}

async fn insert_token(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    name: &str,
    role: Role,
    deploy_services: Option<Vec<String>>,
    scope: Option<&str>,
) -> DomainResult<NewToken> {
    who.require(Role::Admin)?;
    rules::check_token_name(name).map_err(DomainError::Invalid)?;
    let name = name.trim();
    let secret = format!("{TOKEN_PREFIX}{}", passwords::random_secret(32));
    let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let mut tx = pool.begin().await?;
    let id = tokens::insert(
        &mut *tx,
        name,
        &token_hash(&secret),
        &prefix,
        role,
        who.user_id,
        tokens::Limits {
            deploy_services: deploy_services.as_deref(),
            scope,
        },
    )
    .await?;
    audit::append(
        &mut *tx,
        entry(
            who,
            "token.create",
            name,
            serde_json::json!({ "token_id": id, "role": role, "prefix": prefix, "deploy_services": deploy_services, "scope": scope }),
            meta,
        ),
    )
    .await?;
    let row = tokens::by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| DomainError::internal("token vanished after insert"))?;
    tx.commit().await?;
    Ok(NewToken {
        token: row.into(),
        secret,
    })
}

pub async fn revoke_token(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    token_id: i64,
) -> DomainResult<TokenView> {
    who.require(Role::Admin)?;
    let mut tx = pool.begin().await?;
    let row = tokens::by_id(&mut *tx, token_id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no token with id {token_id}")))?;
    if tokens::revoke(&mut *tx, token_id, who.user_id).await? == 0 {
        return Err(DomainError::conflict(format!(
            "token {:?} is already revoked",
            row.name
        )));
    }
    audit::append(
        &mut *tx,
        entry(
            who,
            "token.revoke",
            &row.name,
            serde_json::json!({ "token_id": token_id }),
            meta,
        ),
    )
    .await?;
    let row = tokens::by_id(&mut *tx, token_id)
        .await?
        .ok_or_else(|| DomainError::internal("token vanished after revoke"))?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn audit_log(
    pool: &PgPool,
    who: &Principal,
    filter: &AuditFilter,
) -> DomainResult<AuditPage> {
    who.require(Role::Admin)?;
    if filter.limit.is_some_and(|l| l == 0 || l > audit::MAX_PAGE) {
        return Err(DomainError::invalid(format!(
            "limit must be between 1 and {}",
            audit::MAX_PAGE
        )));
    }
    Ok(audit::list(pool, filter).await?)
}
