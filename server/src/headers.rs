//! Security and caching headers on every response. Every request gets a fresh nonce here
//! ([`PageNonce`]): Leptos renders the page with it (`provide_page_nonce`, the additional
//! context of every Leptos handler) and an HTML answer gets the page policy with that same
//! nonce (`app::response::page_csp`), decided here rather than inside the render, so a page's
//! scripts and its policy always agree. Everything else (JSON, redirects, static files) gets
//! a policy that allows nothing.

use crate::state::Shared;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use leptos::prelude::{provide_context, use_context};
use std::sync::Arc;

/// The policy of responses that are not pages.
pub const DEFAULT_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The nonce of this request's page (128 random bits, hex).
#[derive(Clone, Debug)]
pub struct PageNonce(pub Arc<str>);

/// Leptos's additional context for every page: render with this request's [`PageNonce`].
pub fn provide_page_nonce() {
    if let Some(parts) = use_context::<axum::http::request::Parts>()
        && let Some(PageNonce(n)) = parts.extensions.get::<PageNonce>()
    {
        provide_context(leptos::nonce::Nonce::from_value(n.clone()));
    }
}

pub async fn security_headers(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let nonce: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    req.extensions_mut().insert(PageNonce(nonce.clone()));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    match HeaderValue::from_str(&app::response::page_csp(&nonce)) {
        Ok(page) if html => {
            h.insert(header::CONTENT_SECURITY_POLICY, page);
        }
        _ => {
            h.entry(header::CONTENT_SECURITY_POLICY)
                .or_insert(HeaderValue::from_static(DEFAULT_CSP));
        }
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Browsers ignore HSTS over plain HTTP; send it only when the public URL is https.
    if shared
        .config
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() == "https")
    {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// How long a response may be kept, by what it is:
/// - a static file with a content-hashed name (`/pkg/lookout.<hash>.wasm`): a year,
///   `immutable` — a new build has new names;
/// - any other static file (`/static/…`, unhashed `/pkg/…`): kept but revalidated
///   (`no-cache`, with its Last-Modified);
/// - everything else (pages, JSON, redirects) keeps what its handler set — signed-in
///   responses are `no-store` (`auth.rs`) — or gets `no-store`: nothing Lookout renders is
///   for a shared cache.
pub async fn cache_control(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut res = next.run(req).await;
    let static_file = path.starts_with("/pkg/") || path.starts_with("/static/");
    let ok = res.status().is_success() || res.status() == axum::http::StatusCode::NOT_MODIFIED;
    let policy = match (static_file && ok, content_hashed(&path)) {
        (true, true) => "public, max-age=31536000, immutable",
        (true, false) => "no-cache",
        (false, _) => "no-store",
    };
    res.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(policy));
    res
}

/// `name.<hash>.ext` as cargo-leptos names hashed files: the hash is the base64url MD5 of the
/// contents (22 characters).
pub fn content_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.rsplit('.');
    let (Some(_ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !stem.is_empty()
        && hash.len() >= 16
        && hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::content_hashed;

    #[test]
    fn hashed_names() {
        for (path, hashed) in [
            ("/pkg/lookout.Qm9vYmFyYmF6cXV4MTIzNA.wasm", true),
            ("/pkg/lookout.Qm9vYmFyYmF6cXV4MTIzNA.css", true),
            ("/pkg/lookout.wasm", false),
            ("/pkg/lookout_bg.wasm", false),
            ("/pkg/snippets/x.js", false),
            ("/pkg/.Qm9vYmFyYmF6cXV4MTIzNA.js", false),
            ("/pkg/lookout.short.js", false),
            ("/pkg/lookout.Qm9vYmFyYmF6cX%2FV4MTIzNA.js", false),
        ] {
            assert_eq!(content_hashed(path), hashed, "{path}");
        }
    }
}
