//! Signing in (with throttling), resolving API tokens, and creating the first admin.

use super::passwords;
use crate::accounts::{AuthMethod, Principal, RequestMeta, Role};
use crate::error::{DomainError, DomainResult};
use crate::storage::{audit, login_throttle, tokens, users};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// Sign-in throttling: at most `max_per_user` failures per account and `max_per_ip` per client
/// address within `window_secs`; then sign-in is refused until the oldest failure ages out.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_per_user: i64,
    pub max_per_ip: i64,
    pub window_secs: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_per_user: 5,
            max_per_ip: 20,
            window_secs: 15 * 60,
        }
    }
}

/// Which limit an attempt ran into, and for how many more seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Account(i64),
    Address(i64),
}

impl Limit {
    /// Who is limited (for the message) and the wait in seconds (at least 1).
    pub(crate) fn describe(self) -> (&'static str, i64) {
        match self {
            Limit::Account(w) => ("this account", w.max(1)),
            Limit::Address(w) => ("your address", w.max(1)),
        }
    }
}

/// Throttling for anything that checks a password: under per-key and per-address locks, the
/// failures within the window are counted and, unless a limit is reached, this attempt is
/// recorded as a failure *before* the password is checked — so parallel attempts cannot all
/// pass the count. Returns the attempt's id (`login_throttle::forget` takes it back when
/// it was never checked; a success clears the key's failures) or the limit reached.
pub(crate) async fn reserve_attempt(
    pool: &PgPool,
    policy: ThrottlePolicy,
    key: &str,
    client_ip: &str,
) -> DomainResult<Result<i64, Limit>> {
    let mut tx = pool.begin().await?;
    login_throttle::lock(&mut tx, key, client_ip).await?;
    let c = login_throttle::counts(&mut *tx, key, client_ip, policy.window_secs).await?;
    if c.by_user >= policy.max_per_user {
        return Ok(Err(Limit::Account(
            policy.window_secs - c.oldest_user_age_secs,
        )));
    }
    if c.by_ip >= policy.max_per_ip {
        return Ok(Err(Limit::Address(
            policy.window_secs - c.oldest_ip_age_secs,
        )));
    }
    let id = login_throttle::record(&mut *tx, key, client_ip).await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// The prefix that marks Lookout API tokens (helps secret scanners and humans).
pub const TOKEN_PREFIX: &str = "lko_";

pub fn token_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn minutes(secs: i64) -> String {
    let m = (secs + 59) / 60;
    if m <= 1 {
        "a minute".into()
    } else {
        format!("{m} minutes")
    }
}

/// Checks a username and password. On success returns the user's principal; every outcome
/// is written to the audit log. Wrong username and wrong password give the same answer.
///
/// Parallel attempts cannot slip past the throttle: under per-account and per-address
/// locks, the failures are counted and *this attempt is recorded as a failure before the
/// password is checked*; a correct password then clears the account's failures. So of any
/// number of simultaneous attempts at most the throttle's allowance reach argon2, and argon2
/// itself runs in a bounded number of slots (see `passwords`).
pub async fn sign_in(
    pool: &PgPool,
    policy: ThrottlePolicy,
    username: &str,
    password: &str,
    meta: &RequestMeta,
) -> DomainResult<Principal> {
    let username = username.trim().to_ascii_lowercase();
    if username.is_empty() || password.is_empty() || username.len() > 100 || password.len() > 1024 {
        return Err(DomainError::Unauthenticated(
            "Enter your username and password.".into(),
        ));
    }

    let attempt = match reserve_attempt(pool, policy, &username, &meta.client_ip).await? {
        Ok(id) => id,
        Err(limit) => {
            let (what, wait) = limit.describe();
            audit::append(
                pool,
                audit::NewEntry {
                    actor_id: None,
                    actor_name: &username,
                    action: "auth.login_throttled",
                    target: &username,
                    details: serde_json::json!({ "retry_after_secs": wait }),
                    meta,
                },
            )
            .await?;
            return Err(DomainError::RateLimited {
                message: format!(
                    "Too many failed sign-in attempts for {what}. Try again in {}.",
                    minutes(wait)
                ),
                retry_after_secs: wait as u64,
            });
        }
    };

    let user = users::by_username(pool, &username).await?;
    let checked = async {
        let phc = match &user {
            Some(u) => u.password_hash.clone(),
            None => passwords::decoy_hash().await?,
        };
        passwords::verify(password.to_string(), phc).await
    }
    .await;
    // No hashing slot (the password was not checked): the attempt does not count.
    let matches = match checked {
        Ok(m) => m,
        Err(e) => {
            login_throttle::forget(pool, attempt).await?;
            return Err(e);
        }
    };
    match user {
        Some(u) if matches && !u.disabled => {
            let mut tx = pool.begin().await?;
            login_throttle::clear_user(&mut *tx, &username).await?;
            users::touch_login(&mut *tx, u.id).await?;
            audit::append(
                &mut *tx,
                audit::NewEntry {
                    actor_id: Some(u.id),
                    actor_name: &u.username,
                    action: "auth.login",
                    target: &u.username,
                    details: serde_json::json!({}),
                    meta,
                },
            )
            .await?;
            tx.commit().await?;
            Ok(Principal {
                user_id: Some(u.id),
                name: u.username,
                role: u.role,
                method: AuthMethod::Session,
                token_id: None,
                deploy_services: None,
                ingest: false,
            })
        }
        other => {
            let reason = match &other {
                None => "unknown user",
                Some(u) if u.disabled => "account disabled",
                Some(_) => "wrong password",
            };
            let mut tx = pool.begin().await?;
            audit::append(
                &mut *tx,
                audit::NewEntry {
                    actor_id: None,
                    actor_name: &username,
                    action: "auth.login_failed",
                    target: &username,
                    details: serde_json::json!({ "reason": reason }),
                    meta,
                },
            )
            .await?;
            tx.commit().await?;
            Err(DomainError::Unauthenticated(
                "Wrong username or password.".into(),
            ))
        }
    }
}

/// The principal behind a session's user id, or `None` if the user is gone or disabled.
pub async fn session_principal(pool: &PgPool, user_id: i64) -> DomainResult<Option<Principal>> {
    Ok(users::by_id(pool, user_id)
        .await?
        .filter(|u| !u.disabled)
        .map(|u| Principal {
            user_id: Some(u.id),
            name: u.username,
            role: u.role,
            method: AuthMethod::Session,
            token_id: None,
            deploy_services: None,
            ingest: false,
        }))
}

/// Resolves a bearer token; records its use. `None` for unknown or revoked tokens.
pub async fn token_principal(pool: &PgPool, secret: &str) -> DomainResult<Option<Principal>> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    let Some(row) = tokens::live_by_hash(pool, &token_hash(secret)).await? else {
        return Ok(None);
    };
    // Record use at most once a minute, and skip the write entirely when it is recent.
    let stale = row
        .last_used_at
        .is_none_or(|t| time::OffsetDateTime::now_utc() - t > time::Duration::minutes(1));
    if stale {
        tokens::touch(pool, row.id).await?;
    }
    Ok(Some(Principal {
        user_id: None,
        name: format!("token:{}", row.name),
        role: row.role,
        method: AuthMethod::Token,
        token_id: Some(row.id),
        ingest: row.scope.as_deref() == Some("ingest"),
        deploy_services: row.deploy_services,
    }))
}

/// Records a sign-out in the audit log.
pub async fn record_sign_out(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
) -> DomainResult<()> {
    audit::append(
        pool,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "auth.logout",
            target: &who.name,
            details: serde_json::json!({}),
            meta,
        },
    )
    .await?;
    Ok(())
}

/// What [`ensure_first_admin`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Users already existed; nothing was done.
    AlreadyInitialised,
    /// Created `admin` with the password from the environment.
    CreatedWithGivenPassword,
    /// Created `admin` with this generated password (to be printed once).
    CreatedWithGeneratedPassword(String),
}

/// On first start (no users at all) creates the `admin` user. Safe with several replicas
/// starting at once: a transaction-scoped advisory lock serialises the check.
pub async fn ensure_first_admin(pool: &PgPool, given: Option<&str>) -> DomainResult<Bootstrap> {
    if let Some(pw) = given {
        crate::accounts::rules::check_password(pw)
            .map_err(|m| DomainError::invalid(format!("LOOKOUT_ADMIN_PASSWORD: {m}")))?;
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lookout.first_admin'))")
        .execute(&mut *tx)
        .await?;
    if users::count(&mut *tx).await? > 0 {
        return Ok(Bootstrap::AlreadyInitialised);
    }
    let (password, generated) = match given {
        Some(p) => (p.to_string(), false),
        None => (passwords::random_secret(12), true),
    };
    let hash = passwords::hash(password.clone()).await?;
    let user = users::insert(&mut *tx, "admin", "Administrator", &hash, Role::Admin).await?;
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: None,
            actor_name: "system",
            action: "user.create",
            target: &user.username,
            details: serde_json::json!({ "role": "admin", "reason": "first start" }),
            meta: &RequestMeta::default(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(if generated {
        Bootstrap::CreatedWithGeneratedPassword(password)
    } else {
        Bootstrap::CreatedWithGivenPassword
    })
}
