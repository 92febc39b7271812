//! Server-side state shared by SSR and server functions, and the helpers that read the
//! caller from the request (the auth layer in `server/` puts it there).

use crate::error::AppError;
use axum::extract::FromRef;
use domain::{DomainError, Principal, RequestMeta};
use leptos::prelude::*;
use sqlx::PgPool;

#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub pool: PgPool,
    pub stats_cache: std::sync::Arc<domain::services::incidents::StatsCache>,
    pub access: domain::reach::Access,
    pub runner: domain::services::probe_runs::Runner,
    /// Approvals a deployment needs, per environment (`LOOKOUT_APPROVALS`).
    pub approvals: domain::deployments::ApprovalPolicy,
    /// Days of LLM usage kept (`LOOKOUT_LLM_RETENTION_DAYS`): imports older are refused.
    pub llm_retention_days: i64,
    /// The zone the cost review's weeks start in (`LOOKOUT_LLM_WEEK_OFFSET`).
    pub llm_week_offset: time::UtcOffset,
}

/// Everything a server function needs about its call.
pub struct Call {
    pub pool: PgPool,
    pub access: domain::reach::Access,
    pub runner: domain::services::probe_runs::Runner,
    pub stats_cache: std::sync::Arc<domain::services::incidents::StatsCache>,
    pub approvals: domain::deployments::ApprovalPolicy,
    pub llm_retention_days: i64,
    pub llm_week_offset: time::UtcOffset,
    pub who: Principal,
    pub meta: RequestMeta,
}

/// The pool, the authenticated caller and the request's metadata. The auth layer has
/// already refused anonymous requests, so a missing principal is an internal fault.
pub fn call() -> Result<Call, AppError> {
    let state = use_context::<AppState>()
        .ok_or_else(|| AppError::from(DomainError::internal("AppState missing from context")))?;
    let parts = use_context::<http::request::Parts>()
        .ok_or_else(|| AppError::from(DomainError::internal("request parts missing")))?;
    let who = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| AppError::from(DomainError::Unauthenticated("sign in first".into())))?;
    let meta = parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default();
    Ok(Call {
        pool: state.pool,
        access: state.access,
        runner: state.runner,
        stats_cache: state.stats_cache,
        approvals: state.approvals,
        llm_retention_days: state.llm_retention_days,
        llm_week_offset: state.llm_week_offset,
        who,
        meta,
    })
}

fn session() -> Option<tower_sessions::Session> {
    use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<tower_sessions::Session>().cloned())
}

/// The id of the caller's session, if the request has one.
pub fn current_session_id() -> Option<String> {
    session().and_then(|s| s.id()).map(|id| id.to_string())
}
