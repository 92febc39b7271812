//! The account server functions (who am I, users, tokens, audit, own password): thin adapters from the UI to `domain::services`. Each one resolves the
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
    // This browser's own session stays; every other session of the user ends.
    let keep = crate::state::current_session_id();
    Ok(accounts::change_own_password(
        &c.pool,
        &c.who,
        &c.meta,
        current,
        new_password,
        keep.as_deref(),
    )
    .await?)
}

#[server(prefix = "/api/fn", endpoint = "tokens/list")]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    let c = call()?;
    Ok(accounts::list_tokens(&c.pool, &c.who).await?)
}

#[server(prefix = "/api/fn", endpoint = "tokens/create")]
pub async fn create_token(
    name: String,
    role: Role,
    deploy_services: Option<String>,
    #[server(default)] ingest: Option<String>,
) -> Result<NewToken, AppError> {
    let c = call()?;
    if ingest.is_some_and(|v| !v.is_empty()) {
        return Ok(accounts::create_ingest_token(&c.pool, &c.who, &c.meta, &name).await?);
    }
    let services: Vec<String> = deploy_services
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if services.is_empty() {
        Ok(accounts::create_token(&c.pool, &c.who, &c.meta, &name, role).await?)
    } else {
        Ok(accounts::create_deploy_token(&c.pool, &c.who, &c.meta, &name, &services).await?)
    }
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

/// The outcome of creating a token with a plain HTML form post (no wasm). The server crate
/// handles that post itself (`POST /settings/tokens`): it creates the token and renders the
/// tokens page with this in context, so the secret is shown once, in the response that
/// created it, and never stored anywhere. With wasm the form calls [`create_token`] and the
/// secret comes back in the action's result.
#[derive(Clone, Debug)]
pub struct TokenFormPost(pub Result<NewToken, AppError>);
