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
}

/// Everything a server function needs about its call.
pub struct Call {
    pub pool: PgPool,
    pub access: domain::reach::Access,
    pub runner: domain::services::probe_runs::Runner,
    pub stats_cache: std::sync::Arc<domain::services::incidents::StatsCache>,
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
        who,
        meta,
    })
}

/// Sets the response status of the current page or server-function call. Plain HTML form
/// posts (no wasm) are left alone: they are answered with a redirect back to the form,
/// carrying the error in the URL, and a non-3xx status would break that redirect.
pub fn set_error_status(status: u16) {
    let Some(opts) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    if is_plain_form_post() {
        return;
    }
    if let Ok(code) = http::StatusCode::from_u16(status) {
        opts.set_status(code);
    }
}

fn is_plain_form_post() -> bool {
    use_context::<http::request::Parts>().is_some_and(|p| {
        p.method == http::Method::POST
            && p.headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    })
}

fn session() -> Option<tower_sessions::Session> {
    use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<tower_sessions::Session>().cloned())
}

/// The Content-Security-Policy of a rendered page: scripts only from this origin or with this
/// response's nonce (Leptos puts it on the hydration script and on every resource chunk it
/// streams), wasm compilation allowed for the bundle, no plugins, no framing, forms only to
/// this origin. Inline `style` attributes (the SVG charts) are allowed; inline script is not.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Puts [`page_csp`] with this render's nonce on the response (called from the shell).
pub fn set_page_csp() {
    let Some(opts) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let Some(nonce) = leptos::nonce::use_nonce() else {
        return;
    };
    if let Ok(v) = http::HeaderValue::from_str(&page_csp(&nonce)) {
        opts.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// The id of the caller's session, if the request has one.
pub fn current_session_id() -> Option<String> {
    session().and_then(|s| s.id()).map(|id| id.to_string())
}
