//! Security headers on every response. Pages rendered by Leptos carry their own
//! Content-Security-Policy with a per-response nonce (`app::state::page_csp`); everything else
//! (JSON, redirects, static files, plain error pages) gets a policy that allows nothing.

use crate::state::Shared;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The policy of responses that are not Leptos pages.
pub const DEFAULT_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn security_headers(
    axum::Extension(shared): axum::Extension<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
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
