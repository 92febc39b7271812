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

#[derive(Debug, Deserialize, Default)]
pub struct ManifestForm {
    #[serde(default)]
    yaml: String,
    /// A Kubernetes target's id, or empty: no cluster.
    #[serde(default)]
    target: String,
}

/// The manifest form as posted: url-encoded (the text box), or multipart when a file can be
/// chosen — the file's text, when one was chosen, replaces the box's.
async fn read_manifest_form(state: &AppState, req: Request) -> Result<ManifestForm, DomainError> {
    use axum::extract::{FromRequest, Multipart};
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let unreadable = || DomainError::invalid("the form could not be read");
    if !multipart {
        let axum::Form(f) = axum::Form::<ManifestForm>::from_request(req, state)
            .await
            .map_err(|_| unreadable())?;
        return Ok(f);
    }
    let mut m = Multipart::from_request(req, state)
        .await
        .map_err(|_| unreadable())?;
    let mut form = ManifestForm::default();
    let mut file: Option<String> = None;
    while let Some(field) = m.next_field().await.map_err(|_| unreadable())? {
        let name = field.name().unwrap_or_default().to_string();
        let chosen = field.file_name().is_some_and(|n| !n.is_empty());
        let bytes = field.bytes().await.map_err(|_| unreadable())?;
        match name.as_str() {
            "yaml" => form.yaml = String::from_utf8(bytes.to_vec()).map_err(|_| unreadable())?,
            "target" => form.target = String::from_utf8_lossy(&bytes).into_owned(),
            "file" if chosen || !bytes.is_empty() => {
                if bytes.len() > domain::services::manifests::MAX_BYTES {
                    return Err(DomainError::invalid(format!(
                        "the file is {} KiB; at most {} KiB are checked at once",
                        bytes.len() / 1024,
                        domain::services::manifests::MAX_BYTES / 1024
                    )));
                }
                file = Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    DomainError::invalid(
                        "the file is not UTF-8 text: choose a YAML or JSON manifest",
                    )
                })?);
            }
            _ => {}
        }
    }
    if let Some(f) = file {
        form.yaml = f;
    }
    Ok(form)
}

/// `POST /kubernetes/manifests`: checks the pasted or uploaded manifests (against a
/// Kubernetes target's nodes when one is chosen) and answers with the page and the findings
/// by line (nothing stored; the YAML is never put in a URL, it may hold a Secret). Anyone
/// signed in, like the API; using a target's credentials takes a responder.
pub async fn check_manifests(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    parts: axum::http::request::Parts,
    req: Request,
) -> Response {
    let (text, target, outcome) = match read_manifest_form(&state, req).await {
        Err(e) => (String::new(), None, Err(e)),
        Ok(f) => {
            let target = match f.target.trim() {
                "" => Ok(None),
                t => t.parse::<i64>().map(Some).map_err(|_| {
                    DomainError::invalid("the cluster is not a target id: choose one from the list")
                }),
            };
            let r = match (&target, f.yaml.trim().is_empty()) {
                (_, true) => Err(DomainError::invalid(
                    "paste manifests or choose a file to check",
                )),
                (Err(e), _) => Err(e.clone()),
                (Ok(None), _) => domain::services::manifests::check(&who, &f.yaml),
                (Ok(Some(id)), _) => {
                    domain::services::manifests::check_against_cluster(
                        &state.pool,
                        &who,
                        &state.access,
                        &f.yaml,
                        *id,
                        std::time::Duration::from_secs(10),
                    )
                    .await
                }
            };
            (f.yaml, target.ok().flatten(), r)
        }
    };
    let status = outcome.as_ref().err().map(|e| e.status_code());
    let posted = app::pages::manifests::ManifestFormPost(text, outcome.map_err(Into::into), target);
    page_with(state, parts, posted, status).await
}
