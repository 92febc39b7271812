//! Every request gets a deadline (`LOOKOUT_REQUEST_TIMEOUT_SECS`). A database that stops
//! answering mid-request (paused, a network partition) would otherwise hold the request —
//! and its pooled connection — forever: PostgreSQL cannot enforce `statement_timeout` while
//! it is not running, and the pool's acquire timeout only covers getting a connection.
//! Past the deadline the handler's future is dropped: an open transaction is never committed
//! (the connection is closed, PostgreSQL rolls it back), so nothing is half-written, and the
//! caller gets a 503 with `Retry-After` saying so. Event streams (`…/stream`) are long-lived
//! by design and exempt.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

pub const TIMED_OUT: &str = "Lookout could not finish this request in time (the database is not answering); nothing was saved. Try again in a few seconds.";

pub async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.ends_with("/stream") {
        return next.run(req).await;
    }
    let api = path.starts_with("/api/") || path.starts_with("/v1/");
    let method = req.method().clone();
    let shown_path = path.to_string();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(%method, path = %shown_path, limit_secs = limit.as_secs(), "request timed out");
            let mut res = if api {
                crate::error::json_error(StatusCode::SERVICE_UNAVAILABLE, "timeout", TIMED_OUT)
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    TIMED_OUT,
                )
                    .into_response()
            };
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            res
        }
    }
}
