//! `/api/v1` adapters for identity: whoami, users, tokens, audit.

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::services::accounts;
use domain::{
    AuditFilter, AuditPage, DomainError, NewToken, Principal, RequestMeta, Role, TokenView,
    UserView,
};
use serde::Deserialize;
use std::sync::Arc;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/whoami", get(whoami));
    let r = route!(r, "/api/v1/users", get(list_users).post(create_user));
    let r = route!(r, "/api/v1/users/{id}", patch(update_user));
    let r = route!(r, "/api/v1/tokens", get(list_tokens).post(create_token));
    let r = route!(r, "/api/v1/tokens/{id}", delete(revoke_token));
    route!(r, "/api/v1/audit", get(audit))
}

type Ctx = (
    Extension<Arc<Shared>>,
    Extension<Principal>,
    Extension<RequestMeta>,
);

pub async fn whoami(Extension(who): Extension<Principal>) -> Json<Principal> {
    Json(who)
}

pub async fn list_users(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(accounts::list_users(&shared.pool, &who).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    #[serde(default)]
    display_name: String,
    role: Role,
    password: String,
}

pub async fn create_user(
    (Extension(shared), Extension(who), Extension(meta)): Ctx,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<Response> {
    let user = accounts::create_user(
        &shared.pool,
        &who,
        &meta,
        accounts::NewUser {
            username: body.username,
            display_name: body.display_name,
            role: body.role,
            password: body.password,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, deserialize_with = "domain::not_null")]
    role: Option<Role>,
    #[serde(default, deserialize_with = "domain::not_null")]
    disabled: Option<bool>,
    #[serde(default, deserialize_with = "domain::not_null")]
    password: Option<String>,
}

/// Applies the given changes in order — role, disabled, password — each audited. Input is
/// validated before anything is written; a refused role change (the last admin) stops the
/// request before the later changes.
pub async fn update_user(
    (Extension(shared), Extension(who), Extension(meta)): Ctx,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Json<UserView>> {
    who.require(Role::Admin)?;
    if body.role.is_none() && body.disabled.is_none() && body.password.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give role, disabled or password",
        ));
    }
    if let Some(pw) = &body.password {
        // Validate everything before writing anything.
        domain::rules::check_password(pw).map_err(ApiError::bad_request)?;
    }
    let mut latest = None;
    if let Some(role) = body.role {
        latest = Some(accounts::set_role(&shared.pool, &who, &meta, id, role).await?);
    }
    if let Some(disabled) = body.disabled {
        latest = Some(accounts::set_disabled(&shared.pool, &who, &meta, id, disabled).await?);
    }
    if let Some(pw) = body.password {
        accounts::reset_password(&shared.pool, &who, &meta, id, pw).await?;
    }
    let user = match latest {
        Some(u) => u,
        None => accounts::list_users(&shared.pool, &who)
            .await?
            .into_iter()
            .find(|u| u.id == id)
            .ok_or_else(|| {
                ApiError(domain::DomainError::not_found(format!(
                    "no user with id {id}"
                )))
            })?,
    };
    Ok(Json(user))
}

pub async fn list_tokens(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(accounts::list_tokens(&shared.pool, &who).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    /// Required unless `deploy_services` is given (then responder, or left out).
    #[serde(default)]
    role: Option<Role>,
    /// A CI token limited to deployments of these services.
    #[serde(default)]
    deploy_services: Option<Vec<String>>,
    /// `ingest`: a token that only sends OTLP traces (no role, no deploy_services).
    #[serde(default)]
    scope: Option<String>,
}

pub async fn create_token(
    (Extension(shared), Extension(who), Extension(meta)): Ctx,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    if let Some(scope) = body.scope.as_deref() {
        if scope != "ingest" {
            return Err(DomainError::invalid("scope: ingest (or leave it out)").into());
        }
        if body.role.is_some() || body.deploy_services.is_some() {
            return Err(DomainError::invalid(
                "an ingest token has no role and no deploy_services: it only sends traces",
            )
            .into());
        }
        let t = accounts::create_ingest_token(&shared.pool, &who, &meta, &body.name).await?;
        return Ok((StatusCode::CREATED, Json(t)));
    }
    let t = match (body.role, body.deploy_services) {
        (Some(role), None) => {
            accounts::create_token(&shared.pool, &who, &meta, &body.name, role).await?
        }
        (None | Some(Role::Responder), Some(services)) => {
            accounts::create_deploy_token(&shared.pool, &who, &meta, &body.name, &services).await?
        }
        (Some(role), Some(_)) => {
            return Err(DomainError::invalid(format!(
                "a token limited to deployments has the responder role (it never approves), not {role}"
            ))
            .into());
        }
        (None, None) => {
            return Err(DomainError::invalid("role: viewer, responder, approver or admin").into());
        }
    };
    Ok((StatusCode::CREATED, Json(t)))
}

pub async fn revoke_token(
    (Extension(shared), Extension(who), Extension(meta)): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(
        accounts::revoke_token(&shared.pool, &who, &meta, id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    before_id: Option<i64>,
    limit: Option<u32>,
}

pub async fn audit(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        before_id: q.before_id,
        limit: q.limit,
    };
    Ok(Json(
        accounts::audit_log(&shared.pool, &who, &filter).await?,
    ))
}
