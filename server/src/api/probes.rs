//! `/api/v1/probes` (the catalogue) and `/api/v1/probe-runs`: thin adapters over
//! `domain::services::probe_runs`.

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::ApiResult;
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::Principal;
use domain::probe_runs::{ProbeInfo, ProbeRun, ProbeRunDetail};
use domain::services::probe_runs as svc;
use serde::Deserialize;
use std::sync::Arc;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(
        r,
        "/api/v1/targets/{id}/probe-runs",
        get(of_target).post(start)
    );
    let r = route!(r, "/api/v1/probes", get(catalogue));
    let r = route!(r, "/api/v1/probe-runs/{id}", get(get));
    let r = route!(r, "/api/v1/probe-runs/{id}/cancel", post(cancel));
    let r = route!(r, "/api/v1/probe-runs/{id}/attach", post(attach));
    route!(r, "/api/v1/incidents/{key}/probe-runs", get(of_incident))
}

type Ctx = (Extension<Arc<Shared>>, Extension<Principal>);

/// `GET /api/v1/probes`: every probe with its parameters, steps and finding codes.
pub async fn catalogue((_, Extension(who)): Ctx) -> ApiResult<Json<Vec<ProbeInfo>>> {
    who.require(domain::Role::Viewer)?;
    Ok(Json(svc::catalogue()))
}

/// `POST /api/v1/targets/{id}/probe-runs`: starts a run and answers 202 at once.
pub async fn start(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(target): ApiPath<i64>,
    ApiJson(req): ApiJson<svc::StartRun>,
) -> ApiResult<Response> {
    let run = svc::start(&s.pool, &s.runner, &s.access, &who, target, req).await?;
    let location = format!("/api/v1/probe-runs/{}", run.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(run),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/targets/{id}/probe-runs`: the target's run history, newest first.
pub async fn of_target(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(target): ApiPath<i64>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<ProbeRun>>> {
    domain::services::targets::get(&s.pool, &who, target).await?;
    Ok(Json(
        svc::runs_of_target(&s.pool, &who, target, q.limit.unwrap_or(50)).await?,
    ))
}

/// `GET /api/v1/incidents/{key}/probe-runs`.
pub async fn of_incident(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Vec<ProbeRun>>> {
    Ok(Json(svc::runs_of_incident(&s.pool, &who, &key).await?))
}

/// `GET /api/v1/probe-runs/{id}`: status, steps, and findings once done.
pub async fn get(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ProbeRunDetail>> {
    Ok(Json(svc::get_run(&s.pool, &who, id).await?))
}

/// `POST /api/v1/probe-runs/{id}/cancel`.
pub async fn cancel(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let run = svc::cancel(&s.pool, &s.runner, &who, id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attach {
    pub incident_key: String,
}

/// `POST /api/v1/probe-runs/{id}/attach`: attaches a standalone run to an incident.
pub async fn attach(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(id): ApiPath<i64>,
    ApiJson(a): ApiJson<Attach>,
) -> ApiResult<Json<ProbeRun>> {
    Ok(Json(svc::attach(&s.pool, &who, id, &a.incident_key).await?))
}
