//! Who is calling, and may they: the authentication layer in front of every route, the
//! CSRF check for browser requests, and the sign-in / sign-out handlers.
//!
//! Rules (see README "Security"):
//! - Public without credentials: `/healthz`, `/readyz`, `/login`, `POST /auth/login`,
//!   static assets (`/pkg/*`, `/static/*`, `/favicon.ico`). Everything else needs a session
//!   cookie or `Authorization: Bearer <token>`.
//! - Anonymous browsers are redirected (303) to `/login?next=<path>`; anonymous calls to
//!   `/api/*` and `/metrics` get 401 JSON.
//! - CSRF: every state-changing request (anything but GET/HEAD/OPTIONS) that relies on the
//!   session cookie must carry an `Origin` equal to LOOKOUT_PUBLIC_URL's origin (or, when
//!   that is unset, to the request's own Host). Without `Origin`, `Sec-Fetch-Site:
//!   same-origin` is accepted; otherwise the request is refused with 403. We chose the strict
//!   Origin check over synchronizer tokens because Leptos server functions are posted both by
//!   plain forms and by wasm `fetch`, and every browser we support sends `Origin` on both.
//!   Bearer-token requests carry no ambient credential and are not subject to it. Cookies are
//!   also `SameSite=Lax` and `HttpOnly`.

use crate::client_addr::{TrustedProxies, client_ip};
use crate::error::json_error;
use crate::state::Shared;
use app::pages::login::safe_next;
use axum::Form;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use domain::services::auth;
use domain::storage::sessions::USER_ID_KEY;
use domain::{DomainError, Principal, RequestMeta};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_sessions::Session;

pub fn is_public(path: &str, method: &Method) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/login" | "/favicon.ico")
        || (path == "/auth/login" && method == Method::POST)
        || path.starts_with("/pkg/")
        || path.starts_with("/static/")
}

/// What a CI token scoped to deployments may reach: the deployments API, and the
/// templates and who it is for reading.
pub fn deploy_scope_allows(path: &str, method: &Method) -> bool {
    path == "/api/v1/deployments"
        || path.starts_with("/api/v1/deployments/")
        || (is_safe_method(method) && path == "/api/v1/whoami")
        || (is_safe_method(method)
            && (path == "/api/v1/deployment-templates"
                || path.starts_with("/api/v1/deployment-templates/")))
}

/// What an ingest token may reach.
pub fn ingest_scope_allows(path: &str, method: &Method) -> bool {
    (path == "/v1/traces" && method == Method::POST)
        || (is_safe_method(method) && path == "/api/v1/whoami")
}

fn wants_json(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics" || path.starts_with("/v1/")
}

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF rule described in the module docs.
pub fn same_origin(headers: &HeaderMap, expected_origin: Option<&str>) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => match expected_origin {
            Some(expected) => origin.eq_ignore_ascii_case(expected),
            None => {
                let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
                    return false;
                };
                match url::Url::parse(origin) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {
                        let origin_host = match (u.host_str(), u.port()) {
                            (Some(h), Some(p)) => format!("{h}:{p}"),
                            (Some(h), None) => h.to_string(),
                            _ => return false,
                        };
                        origin_host.eq_ignore_ascii_case(host)
                    }
                    _ => false,
                }
            }
        },
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "same-origin"),
    }
}

fn request_meta(req: &Request, trusted: &TrustedProxies) -> RequestMeta {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    RequestMeta {
        client_ip: client_ip(req.headers(), peer, trusted),
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    }
}

fn login_redirect(req: &Request) -> Response {
    let pq = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let next: String = url::form_urlencoded::byte_serialize(pq.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// The session key holding when the session's expiry was last pushed forward (Unix seconds).
pub const REFRESHED_AT_KEY: &str = "refreshed_at";

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Sessions end after `LOOKOUT_SESSION_TTL_HOURS` without activity. The store only writes a
/// session that changed, so activity must change it: once less than half the lifetime is
/// left (the last refresh is over half a lifetime ago), the refresh time is rewritten, which
/// saves the session with a new expiry and a new cookie lifetime. At most one write per half
/// lifetime per session, not one per request.
async fn slide(session: &Session, ttl_hours: u32) {
    let half = i64::from(ttl_hours) * 3600 / 2;
    let now = unix_now();
    let last = session.get::<i64>(REFRESHED_AT_KEY).await.ok().flatten();
    if last.is_none_or(|t| now - t >= half)
        && let Err(e) = session.insert(REFRESHED_AT_KEY, now).await
    {
        tracing::warn!(error = %e, "could not refresh the session's expiry");
    }
}

/// The credentials could not be looked up (the database is away or failing): a 503 with
/// `Retry-After`, so clients that retry — OTLP exporters among them, which drop a batch
/// answered 500 — try again instead of losing what they sent.
fn internal(e: DomainError) -> Response {
    tracing::error!(error = %e, cause = ?e, "authentication lookup failed");
    let mut res = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Lookout could not check your credentials just now; retry shortly.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// The authentication middleware. Runs inside the session layer.
pub async fn authenticate(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let meta = request_meta(&req, &shared.trusted_proxies);
    let public = is_public(&path, &method);

    // 1. Bearer token.
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|s| s.trim().to_string());
    let mut principal: Option<Principal> = None;
    if let Some(secret) = bearer {
        match auth::token_principal(&shared.pool, &secret).await {
            // A CI token scoped to deployments reaches the deployments API and nothing else
            // (which deployments, and that it never signs, the services check).
            // An ingest token sends traces and nothing else.
            Ok(Some(p)) if p.ingest && !ingest_scope_allows(&path, &method) => {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "This token is an ingest token: it may send OTLP traces to /v1/traces (and read /api/v1/whoami) only.",
                );
            }
            Ok(Some(p)) if p.deploy_services.is_some() && !deploy_scope_allows(&path, &method) => {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "This token is limited to deployments: it may use /api/v1/deployments (and read /api/v1/deployment-templates and /api/v1/whoami) only.",
                );
            }
            Ok(Some(p)) => principal = Some(p),
            Ok(None) if public => {}
            Ok(None) => {
                let mut res = json_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "The API token is unknown or revoked.",
                );
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return res;
            }
            Err(e) => return internal(e),
        }
    }

    // 2. Session cookie.
    if principal.is_none() {
        match session.get::<i64>(USER_ID_KEY).await {
            Ok(Some(uid)) => match auth::session_principal(&shared.pool, uid).await {
                Ok(Some(p)) => {
                    slide(&session, shared.config.session_ttl_hours).await;
                    principal = Some(p)
                }
                Ok(None) => {
                    // The user was disabled or deleted: end this session.
                    let _ = session.flush().await;
                }
                Err(e) => return internal(e),
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "unreadable session; treating the caller as signed out");
            }
        }
    }

    // 3. Anonymous callers only reach public routes.
    if principal.is_none() && !public {
        if wants_json(&path) {
            let mut res = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Sign in or send an API token (Authorization: Bearer …).",
            );
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return res;
        }
        return login_redirect(&req);
    }

    // 4. CSRF: state-changing requests riding on the cookie (and the sign-in form itself)
    //    must come from our own origin.
    let via_cookie = principal.as_ref().map_or(path == "/auth/login", |p| {
        p.method == domain::AuthMethod::Session
    });
    if !is_safe_method(&method)
        && via_cookie
        && !same_origin(req.headers(), shared.config.public_origin().as_deref())
    {
        tracing::warn!(%path, "refused a cross-origin state-changing request");
        if path == "/auth/login" {
            return Redirect::to("/login?error=csrf").into_response();
        }
        return json_error(
            StatusCode::FORBIDDEN,
            "csrf",
            "Cross-site request refused: the Origin header is missing or not this site.",
        );
    }

    let Some(principal) = principal else {
        req.extensions_mut().insert(meta);
        return next.run(req).await;
    };

    tracing::Span::current().record("user", principal.name.as_str());
    req.extensions_mut().insert(principal);
    req.extensions_mut().insert(meta);
    let mut res = next.run(req).await;
    if !public {
        // Protected pages must not come back from the browser cache after sign-out.
        res.headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    res
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

fn back_to_login(code: &str, next: &str, retry: Option<u64>) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let retry = retry.map(|r| format!("&retry={r}")).unwrap_or_default();
    Redirect::to(&format!("/login?error={code}{retry}&next={next}")).into_response()
}

fn busy(retry_after_secs: u64) -> Response {
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Lookout is busy</title><p>Lookout is busy checking other \
         sign-ins. <a href=\"/login\">Try again</a> in a few seconds.</p>",
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// `POST /auth/login`: checks the password, rotates the session id, signs in.
pub async fn login(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    axum::Extension(meta): axum::Extension<RequestMeta>,
    session: Session,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return back_to_login("missing", "/", None);
    };
    let next = safe_next(form.next.as_deref());
    match auth::sign_in(
        &shared.pool,
        shared.config.throttle(),
        &form.username,
        &form.password,
        &meta,
    )
    .await
    {
        Ok(p) => {
            // A new session id at sign-in defeats session fixation.
            if let Err(e) = session.cycle_id().await {
                tracing::error!(error = %e, "session rotation failed");
                return back_to_login("server", &next, None);
            }
            let _ = session.insert(REFRESHED_AT_KEY, unix_now()).await;
            if let Err(e) = session.insert(USER_ID_KEY, p.user_id).await {
                tracing::error!(error = %e, "session write failed");
                return back_to_login("server", &next, None);
            }
            Redirect::to(&next).into_response()
        }
        Err(DomainError::RateLimited {
            retry_after_secs, ..
        }) => back_to_login("throttled", &next, Some(retry_after_secs)),
        // Every hashing slot is busy (a flood of sign-ins): a plain 503 with Retry-After, so
        // scripts back off; a person gets a page that says so.
        Err(DomainError::Unavailable {
            retry_after_secs, ..
        }) => busy(retry_after_secs),
        Err(DomainError::Unauthenticated(_))
            if form.username.is_empty() || form.password.is_empty() =>
        {
            back_to_login("missing", &next, None)
        }
        Err(DomainError::Unauthenticated(_)) => back_to_login("invalid", &next, None),
        Err(e) => {
            tracing::error!(error = ?e, "sign-in failed");
            back_to_login("server", &next, None)
        }
    }
}

/// `POST /auth/logout`: ends the session (deleted from the store, cookie cleared).
pub async fn logout(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    axum::Extension(meta): axum::Extension<RequestMeta>,
    axum::Extension(who): axum::Extension<Principal>,
    session: Session,
) -> Response {
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "could not delete the session");
    }
    if let Err(e) = auth::record_sign_out(&shared.pool, &who, &meta).await {
        tracing::error!(error = ?e, "could not audit the sign-out");
    }
    let mut res = Redirect::to("/login?signed_out=1").into_response();
    res.headers_mut()
        .insert("clear-site-data", HeaderValue::from_static("\"cache\""));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn origin_rules() {
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Headers, Option<&str>, bool)] = &[
            (
                &[
                    ("origin", "http://127.0.0.1:3000"),
                    ("host", "127.0.0.1:3000"),
                ],
                None,
                true,
            ),
            (
                &[
                    ("origin", "http://evil.example"),
                    ("host", "127.0.0.1:3000"),
                ],
                None,
                false,
            ),
            (
                &[("origin", "null"), ("host", "127.0.0.1:3000")],
                None,
                false,
            ),
            (&[("host", "127.0.0.1:3000")], None, false),
            (
                &[
                    ("host", "127.0.0.1:3000"),
                    ("sec-fetch-site", "same-origin"),
                ],
                None,
                true,
            ),
            (
                &[("host", "127.0.0.1:3000"), ("sec-fetch-site", "cross-site")],
                None,
                false,
            ),
            (
                &[("origin", "https://lookout.example"), ("host", "10.0.0.1")],
                Some("https://lookout.example"),
                true,
            ),
            (
                &[
                    ("origin", "http://lookout.example"),
                    ("host", "lookout.example"),
                ],
                Some("https://lookout.example"),
                false,
            ),
        ];
        for (h, expected, ok) in cases {
            assert_eq!(
                same_origin(&headers(h), *expected),
                *ok,
                "{h:?} {expected:?}"
            );
        }
    }

    #[test]
    fn public_paths() {
        assert!(is_public("/healthz", &Method::GET));
        assert!(is_public("/login", &Method::GET));
        assert!(is_public("/auth/login", &Method::POST));
        assert!(is_public("/pkg/lookout.js", &Method::GET));
        assert!(!is_public("/auth/logout", &Method::POST));
        assert!(!is_public("/metrics", &Method::GET));
        assert!(!is_public("/api/v1/whoami", &Method::GET));
        assert!(!is_public("/settings", &Method::GET));
    }
}
