//! `/api/v1`: the JSON API for machines (CI gates, webhooks, scripts). Same permissions as the
//! UI, because both call the same `domain::services`. Authenticated by API token or session.

mod accounts;
mod deployments;
mod incidents;
mod kafka;
mod kubernetes;
mod llm;
mod openapi;
mod probes;
mod streams;
mod targets;

use crate::error::json_error;
use crate::route;
use crate::routes::Routes;
use axum::http::StatusCode;
use axum::response::Response;

/// Every `/api/v1` route: each module lists its own, this only puts them together (and
/// answers unknown API paths with a JSON 404).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    Routes::new()
        .merge(accounts::routes())
        .merge(incidents::routes())
        .merge(deployments::routes())
        .merge(targets::routes())
        .merge(probes::routes())
        .merge(kafka::routes())
        .merge(kubernetes::routes())
        .merge(llm::routes())
        .merge(streams::routes())
        .merge(route!(
            Routes::new(),
            "/api/v1/openapi.json",
            get(openapi::document)
        ))
        .add("/api/v1/{*rest}", &["any"], axum::routing::any(not_found))
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "No such API endpoint.")
}

/// Parses a JSON body, turning every rejection (bad syntax, wrong types, wrong content
/// type, too large) into a clear 4xx JSON error.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(crate::error::rejection(rej.status(), rej.body_text())),
        }
    }
}

/// A text body (a file: JSON Lines, CSV, a price file) with the same treatment: a body that
/// is not UTF-8 is a JSON 400 like every other bad body, not axum's plain-text answer.
pub struct ApiText(pub String);

impl<S> axum::extract::FromRequest<S> for ApiText
where
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match <String as axum::extract::FromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(ApiText(v)),
            Err(rej) => Err(crate::error::rejection(rej.status(), rej.body_text())),
        }
    }
}

/// Query strings with the same treatment.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(crate::error::rejection(rej.status(), rej.body_text())),
        }
    }
}

/// Path parameters with the same treatment.
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(crate::error::rejection(
                StatusCode::BAD_REQUEST,
                rej.body_text(),
            )),
        }
    }
}
