//! Plain HTML form posts that Leptos server functions cannot answer well. A server function
//! posted by a form without wasm answers with a redirect, so whatever it returned is lost;
//! for a new API token that meant parking the secret somewhere until the next page. Here the
//! post is handled directly and answered with the rendered page itself, the outcome in its
//! context, so the secret is shown once and stored nowhere — and the manifest checks' result
//! is shown without the manifests ever travelling in a URL.

use app::account_fns::TokenFormPost;
use app::state::AppState;
use app::{NoHydrate, shell};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use domain::services::accounts;
use domain::{DomainError, Principal, RequestMeta, Role};
use leptos::prelude::provide_context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    role: Option<String>,
    /// Services, comma-separated: a CI token limited to their deployments.
    #[serde(default)]
    deploy_services: String,
    /// Checked: an ingest token (it only sends OTLP traces).
    #[serde(default)]
    ingest: Option<String>,
}

/// `POST /settings/tokens` (no wasm): creates the token and renders the tokens page with its
/// secret, once. Admins only, like the server function; errors show on the same page.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    parts: axum::http::request::Parts,
    form: Result<axum::Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let outcome = match form {
        Err(_) => Err(DomainError::invalid("the form could not be read")),
        Ok(axum::Form(f)) => {
            let services: Vec<String> = f
                .deploy_services
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            match f.role.as_deref().unwrap_or("viewer").parse::<Role>() {
                Err(e) => Err(DomainError::Invalid(e)),
                Ok(_) if f.ingest.is_some() && !services.is_empty() => Err(DomainError::invalid(
                    "an ingest token only sends traces: leave the deployment services empty",
                )),
                Ok(_) if f.ingest.is_some() => {
                    accounts::create_ingest_token(&state.pool, &who, &meta, &f.name).await
                }
                Ok(_) if !services.is_empty() => {
                    accounts::create_deploy_token(&state.pool, &who, &meta, &f.name, &services)
                        .await
                }
                Ok(role) => accounts::create_token(&state.pool, &who, &meta, &f.name, role).await,
            }
        }
    };
    let status = outcome.as_ref().err().map(|e| e.status_code());
    // The secret is in this response: no cache may keep it (`page_with`).
    page_with(
        state,
        parts,
        TokenFormPost(outcome.map_err(Into::into)),
        status,
    )
    .await
}

/// The page at the posted address, rendered with `posted` in its context (the page reads
/// it), answered with `status` when the post failed, and never cached: the answer holds
/// what was posted (a token's secret, manifests that may hold a Secret).
async fn page_with<T: Clone + Send + Sync + 'static>(
    state: AppState,
    parts: axum::http::request::Parts,
    posted: T,
    status: Option<u16>,
) -> Response {
    let opts = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        {
            let state = state.clone();
            move || {
                provide_context(state.clone());
                provide_context(NoHydrate);
                provide_context(posted.clone());
                crate::headers::provide_page_nonce();
            }
        },
        move || shell(opts.clone()),
    );
    let mut res = render(Request::from_parts(parts, Body::empty())).await;
    if let Some(code) = status.and_then(|s| axum::http::StatusCode::from_u16(s).ok()) {
        *res.status_mut() = code;
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Debug, Deserialize)]
pub struct ManifestForm {
    #[serde(default)]
    yaml: String,
}

/// `POST /kubernetes/manifests`: checks the pasted manifests and answers with the page and
/// the findings by line (nothing stored; the YAML is never put in a URL, it may hold a
/// Secret). Anyone signed in, like the API.
pub async fn check_manifests(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    parts: axum::http::request::Parts,
    form: Result<axum::Form<ManifestForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (text, outcome) = match form {
        Err(_) => (
            String::new(),
            Err(DomainError::invalid("the form could not be read")),
        ),
        Ok(axum::Form(f)) => {
            let r = domain::services::manifests::check(&who, &f.yaml);
            (f.yaml, r)
        }
    };
    let status = outcome.as_ref().err().map(|e| e.status_code());
    let posted = app::pages::manifests::ManifestFormPost(text, outcome.map_err(Into::into));
    page_with(state, parts, posted, status).await
}
