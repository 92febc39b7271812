//! The HTTP layer's one error type for JSON endpoints (`/api/v1`, operations). It wraps
//! the domain error, picks the status, logs internal causes and shows only safe messages.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::DomainError;

#[derive(Debug)]
pub struct ApiError(pub DomainError);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError(e.into())
    }
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(DomainError::Invalid(msg.into()))
    }
    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        ApiError(DomainError::Unauthenticated(msg.into()))
    }
}

/// A JSON error body: `{"error": {"code": "...", "message": "..."}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let DomainError::Internal(cause) = &self.0 {
            tracing::error!(%cause, "request failed");
        }
        // Malformed input is a 400 at the HTTP layer; validation failures of well-formed
        // input are 422 (the domain's `Invalid`).
        let status =
            StatusCode::from_u16(self.0.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = json_error(status, self.0.code(), &self.0.public_message());
        match &self.0 {
            DomainError::RateLimited {
                retry_after_secs, ..
            }
            | DomainError::Unavailable {
                retry_after_secs, ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            DomainError::Unauthenticated(_) => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        res
    }
}

/// Maps axum's JSON/query/path extractor rejections to a clear 400 (or 413/415) JSON error.
pub fn rejection(status: StatusCode, body: String) -> Response {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    json_error(status, code, &body)
}

/// The body limit answers 413 before any handler runs (or when an extractor hits it), in
/// plain text; under `/api/` the answer becomes the API's JSON error, with the limit.
pub async fn api_too_large(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if api && res.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the request body is over the limit of {limit} bytes"),
        );
    }
    res
}
