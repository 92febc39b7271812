//! `/api/v1`: the JSON API for machines (CI gates, webhooks, scripts). Same permissions as the
//! UI, because both call the same `domain::services`. Authenticated by API token or session.

mod accounts;
mod incidents;
mod kafka;
mod openapi;
mod probes;
mod targets;

use crate::error::json_error;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, patch, post};

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/api/v1/whoami", get(accounts::whoami))
        .route(
            "/api/v1/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route("/api/v1/users/{id}", patch(accounts::update_user))
        .route(
            "/api/v1/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(accounts::revoke_token))
        .route("/api/v1/audit", get(accounts::audit))
        .route(
            "/api/v1/incidents",
            get(incidents::list).post(incidents::create),
        )
        .route("/api/v1/incidents/stats", get(incidents::stats))
        .route(
            "/api/v1/incidents/{key}",
            get(incidents::get).patch(incidents::patch),
        )
        .route("/api/v1/incidents/{key}/notes", post(incidents::add_note))
        .route(
            "/api/v1/incidents/{key}/findings",
            get(incidents::list_findings).post(incidents::add_finding),
        )
        .route(
            "/api/v1/incidents/{key}/action-items",
            get(incidents::list_action_items).post(incidents::add_action_item),
        )
        .route(
            "/api/v1/incidents/{key}/action-items/{id}",
            patch(incidents::patch_action_item),
        )
        .route(
            "/api/v1/incidents/{key}/postmortem.md",
            get(incidents::postmortem).post(incidents::export_postmortem),
        )
        .route("/api/v1/incidents/{key}/stream", get(crate::live::stream))
        .route("/api/v1/timeline/{id}", patch(incidents::patch_event))
        .route("/api/v1/findings/{id}", patch(incidents::patch_finding))
        .route(
            "/api/v1/webhooks/alertmanager",
            post(incidents::alertmanager),
        )
        .route("/api/v1/targets", get(targets::list).post(targets::create))
        .route(
            "/api/v1/targets/{id}",
            get(targets::get)
                .patch(targets::patch)
                .delete(targets::delete),
        )
        .route("/api/v1/targets/{id}/test", post(targets::test))
        .route(
            "/api/v1/targets/{id}/probe-runs",
            get(probes::of_target).post(probes::start),
        )
        .route("/api/v1/probes", get(probes::catalogue))
        .route("/api/v1/kafka/{target}/groups", get(kafka::groups))
        .route("/api/v1/kafka/{target}/groups/{group}", get(kafka::group))
        .route("/api/v1/kafka/{target}/groups/{group}/lag", get(kafka::lag))
        .route("/api/v1/probe-runs/{id}", get(probes::get))
        .route("/api/v1/probe-runs/{id}/cancel", post(probes::cancel))
        .route("/api/v1/probe-runs/{id}/attach", post(probes::attach))
        .route(
            "/api/v1/probe-runs/{id}/stream",
            get(crate::live::run_stream),
        )
        .route(
            "/api/v1/incidents/{key}/probe-runs",
            get(probes::of_incident),
        )
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
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
