//! Server functions: thin adapters from the UI to `domain::services`. Each one resolves the
//! caller from the request and lets the service enforce the role; nothing is checked only
//! in the browser. Endpoints are fixed (`/api/fn/...`) so the auth layer and tests can name them.

use crate::error::AppError;
use domain::{AuditPage, NewToken, Principal, Role, TokenView, UserView};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::services::accounts;

/// The signed-in caller (any role).
#[server(prefix = "/api/fn", endpoint = "whoami")]
pub async fn whoami() -> Result<Principal, AppError> {
    Ok(call()?.who)
}

#[server(prefix = "/api/fn", endpoint = "users/list")]
pub async fn list_users() -> Result<Vec<UserView>, AppError> {
    let c = call()?;
    Ok(accounts::list_users(&c.pool, &c.who).await?)
}

#[server(prefix = "/api/fn", endpoint = "users/create")]
pub async fn create_user(
    username: String,
    display_name: String,
    role: Role,
    password: String,
) -> Result<UserView, AppError> {
    let c = call()?;
    Ok(accounts::create_user(
        &c.pool,
        &c.who,
        &c.meta,
        accounts::NewUser {
            username,
            display_name,
            role,
            password,
        },
    )
    .await?)
}

#[server(prefix = "/api/fn", endpoint = "users/role")]
pub async fn set_user_role(user_id: i64, role: Role) -> Result<UserView, AppError> {
    let c = call()?;
    Ok(accounts::set_role(&c.pool, &c.who, &c.meta, user_id, role).await?)
}

#[server(prefix = "/api/fn", endpoint = "users/disabled")]
pub async fn set_user_disabled(user_id: i64, disabled: bool) -> Result<UserView, AppError> {
    let c = call()?;
    Ok(accounts::set_disabled(&c.pool, &c.who, &c.meta, user_id, disabled).await?)
}

#[server(prefix = "/api/fn", endpoint = "users/reset-password")]
pub async fn reset_user_password(user_id: i64, password: String) -> Result<(), AppError> {
    let c = call()?;
    Ok(accounts::reset_password(&c.pool, &c.who, &c.meta, user_id, password).await?)
}

#[server(prefix = "/api/fn", endpoint = "account/password")]
pub async fn change_password(
    current: String,
    new_password: String,
    confirm: String,
) -> Result<(), AppError> {
    let c = call()?;
    if new_password != confirm {
        return Err(domain::DomainError::invalid("the new passwords do not match").into());
    }
    Ok(accounts::change_own_password(&c.pool, &c.who, &c.meta, current, new_password).await?)
}

#[server(prefix = "/api/fn", endpoint = "tokens/list")]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    let c = call()?;
    Ok(accounts::list_tokens(&c.pool, &c.who).await?)
}

#[server(prefix = "/api/fn", endpoint = "tokens/create")]
pub async fn create_token(name: String, role: Role) -> Result<NewToken, AppError> {
    let c = call()?;
    let created = accounts::create_token(&c.pool, &c.who, &c.meta, &name, role).await?;
    crate::state::park_token_for_form_post(&created).await;
    Ok(created)
}

#[server(prefix = "/api/fn", endpoint = "tokens/revoke")]
pub async fn revoke_token(token_id: i64) -> Result<TokenView, AppError> {
    let c = call()?;
    Ok(accounts::revoke_token(&c.pool, &c.who, &c.meta, token_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "audit/list")]
pub async fn audit_log(
    actor: Option<String>,
    action: Option<String>,
    before_id: Option<i64>,
) -> Result<AuditPage, AppError> {
    let c = call()?;
    let filter = domain::AuditFilter {
        actor,
        action,
        before_id,
        limit: None,
    };
    Ok(accounts::audit_log(&c.pool, &c.who, &filter).await?)
}

/// A token created by a plain HTML form post (no wasm) cannot be shown from the action's
/// result, so its secret is parked in the caller's session and taken out on the next read
/// (once; within five minutes). With wasm loaded the secret comes back in the action result
/// and is never stored anywhere.
#[server(prefix = "/api/fn", endpoint = "tokens/take-new")]
pub async fn take_new_token() -> Result<Option<NewToken>, AppError> {
    let _ = call()?;
    Ok(crate::state::take_flash_token().await)
}
