//! `/api/v1` adapters for incidents, findings, action items, the postmortem and the
//! Alertmanager webhook.

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::incidents::*;
use domain::services::incidents as svc;
use domain::{Principal, Role};
use serde::Deserialize;
use std::sync::Arc;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/incidents", get(list).post(create));
    let r = route!(r, "/api/v1/incidents/stats", get(stats));
    let r = route!(r, "/api/v1/incidents/{key}", get(get).patch(patch));
    let r = route!(r, "/api/v1/incidents/{key}/notes", post(add_note));
    let r = route!(
        r,
        "/api/v1/incidents/{key}/findings",
        get(list_findings).post(add_finding)
    );
    let r = route!(
        r,
        "/api/v1/incidents/{key}/action-items",
        get(list_action_items).post(add_action_item)
    );
    let r = route!(
        r,
        "/api/v1/incidents/{key}/action-items/{id}",
        patch(patch_action_item)
    );
    let r = route!(
        r,
        "/api/v1/incidents/{key}/postmortem.md",
        get(postmortem).post(export_postmortem)
    );
    let r = route!(r, "/api/v1/timeline/{id}", patch(patch_event));
    let r = route!(r, "/api/v1/findings/{id}", patch(patch_finding));
    route!(r, "/api/v1/webhooks/alertmanager", post(alertmanager))
}

type Ctx = (Extension<Arc<Shared>>, Extension<Principal>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<IncidentStatus>,
    open: Option<bool>,
    severity: Option<Severity>,
    service: Option<String>,
    environment: Option<String>,
    label: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    (Extension(s), Extension(who)): Ctx,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<IncidentPage>> {
    let q = IncidentQuery {
        status: q.status,
        open: q.open,
        severity: q.severity,
        service: q.service,
        environment: q.environment,
        label: q.label,
        q: q.q,
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(Json(svc::list(&s.pool, &who, &q).await?))
}

pub async fn stats((Extension(s), Extension(who)): Ctx) -> ApiResult<Json<Vec<SeverityStats>>> {
    Ok(Json(svc::stats(&s.pool, &who, &s.stats_cache).await?))
}

pub async fn create(
    (Extension(s), Extension(who)): Ctx,
    ApiJson(body): ApiJson<svc::NewIncident>,
) -> ApiResult<Response> {
    let d = svc::create(&s.pool, &who, body).await?;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

pub async fn get(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<IncidentDetail>> {
    Ok(Json(svc::get(&s.pool, &who, &key).await?))
}

pub async fn patch(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<svc::IncidentPatch>,
) -> ApiResult<Json<IncidentDetail>> {
    Ok(Json(svc::update(&s.pool, &who, &key, body).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    body: String,
}

pub async fn add_note(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(b): ApiJson<NoteBody>,
) -> ApiResult<Response> {
    let e = svc::add_note(&s.pool, &who, &key, &b.body).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPatch {
    body: Option<String>,
    pinned: Option<bool>,
}

pub async fn patch_event(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<EventPatch>,
) -> ApiResult<Json<TimelineEvent>> {
    let mut out = None;
    if let Some(body) = &b.body {
        out = Some(svc::edit_note(&s.pool, &who, id, body).await?);
    }
    if let Some(p) = b.pinned {
        out = Some(svc::set_pinned(&s.pool, &who, id, p).await?);
    }
    out.map(Json)
        .ok_or_else(|| ApiError::bad_request("nothing to change: give body or pinned"))
}

pub async fn list_findings(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Vec<Finding>>> {
    Ok(Json(svc::list_findings(&s.pool, &who, &key).await?))
}

pub async fn add_finding(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(f): ApiJson<svc::NewFinding>,
) -> ApiResult<Response> {
    let f = svc::add_finding(&s.pool, &who, &key, f).await?;
    Ok((StatusCode::CREATED, Json(f)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingPatch {
    status: FindingStatus,
    reason: Option<String>,
}

pub async fn patch_finding(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<FindingPatch>,
) -> ApiResult<Json<Finding>> {
    Ok(Json(
        svc::update_finding(&s.pool, &who, id, b.status, b.reason.as_deref()).await?,
    ))
}

pub async fn list_action_items(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Vec<ActionItem>>> {
    Ok(Json(svc::list_action_items(&s.pool, &who, &key).await?))
}

pub async fn add_action_item(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(a): ApiJson<svc::NewActionItem>,
) -> ApiResult<Response> {
    let a = svc::add_action_item(&s.pool, &who, &key, a).await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionItemPatch {
    status: ActionItemStatus,
}

pub async fn patch_action_item(
    (Extension(s), Extension(who)): Ctx,
    ApiPath((key, id)): ApiPath<(String, i64)>,
    ApiJson(b): ApiJson<ActionItemPatch>,
) -> ApiResult<Json<Vec<ActionItem>>> {
    Ok(Json(
        svc::set_action_item_status(&s.pool, &who, &key, id, b.status).await?,
    ))
}

/// `GET /api/v1/incidents/{key}/postmortem.md`: the Markdown, as a download (read only).
pub async fn postmortem(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Response> {
    let md = svc::postmortem(&s.pool, &who, &key).await?;
    Ok(markdown_download(&key, md))
}

/// `POST /api/v1/incidents/{key}/postmortem.md`: the same download, and the export is
/// recorded on the timeline.
pub async fn export_postmortem(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Response> {
    let md = svc::export_postmortem(&s.pool, &who, &key).await?;
    Ok(markdown_download(&key, md))
}

fn markdown_download(key: &str, md: String) -> Response {
    let key = key.to_ascii_uppercase();
    let disposition = format!(
        "attachment; filename=\"postmortem-{}.md\"",
        key.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
    );
    (
        [
            (
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        md,
    )
        .into_response()
}

/// `POST /api/v1/webhooks/alertmanager` (payload version 4; bearer token, responder+).
pub async fn alertmanager(
    (Extension(s), Extension(who)): Ctx,
    ApiJson(w): ApiJson<domain::alertmanager::Webhook>,
) -> ApiResult<Json<domain::alertmanager::Outcome>> {
    who.require(Role::Responder)?;
    Ok(Json(
        domain::alertmanager::receive(&s.pool, &who, &w, &s.severity_mapping).await?,
    ))
}
