//! `/api/v1/deployment-templates` and `/api/v1/deployments`: deployment checklists (issue 12;
//! manual items so far). A template is sent as YAML — the body itself (`Content-Type:
//! application/yaml`, `text/yaml` or `text/plain`, e.g. `curl --data-binary @checklist.yaml`)
//! or JSON `{"yaml": "…"}`. Deployments: create, work items, move on, sign off, and the gate
//! CI asks (`GET …/gate?phase=pre|post[&wait=SECONDS]`).

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::{ApiResult, rejection};
use crate::route;
use crate::routes::Routes;
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::deployments::{
    Deployment, DeploymentDetail, DeploymentStatus, Section, Template, TemplateSummary,
};
use domain::services::deployments as svc;
use domain::{Principal, RequestMeta};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/deployment-templates", get(list).post(create));
    let r = route!(
        r,
        "/api/v1/deployment-templates/{id}",
        get(get_one).put(update)
    );
    let r = route!(
        r,
        "/api/v1/deployment-templates/{id}/versions",
        get(versions)
    );
    let r = route!(
        r,
        "/api/v1/deployments",
        get(list_deployments).post(create_deployment)
    );
    let r = route!(r, "/api/v1/deployments/{key}", get(get_deployment));
    let r = route!(
        r,
        "/api/v1/deployments/{key}/events",
        get(events).post(pipeline_event)
    );
    let r = route!(r, "/api/v1/deployments/{key}/items/{item}", post(item));
    let r = route!(r, "/api/v1/deployments/{key}/transition", post(transition));
    let r = route!(r, "/api/v1/deployments/{key}/approvals", post(approvals));
    let r = route!(
        r,
        "/api/v1/deployments/{key}/export.md",
        post(export_markdown)
    );
    let r = route!(
        r,
        "/api/v1/deployments/{key}/export.json",
        post(export_json)
    );
    let r = route!(
        r,
        "/api/v1/deployments/{key}/incidents",
        get(incidents).post(open_incident)
    );
    route!(r, "/api/v1/deployments/{key}/gate", get(gate))
}

type Ctx = (
    Extension<Arc<Shared>>,
    Extension<Principal>,
    Extension<RequestMeta>,
);

/// YAML from the body (see the module docs): a checklist template, or manifests to check.
pub struct TemplateBody(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    yaml: String,
}

impl<S: Send + Sync> FromRequest<S> for TemplateBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ct == "application/json" {
            let ApiJson(b) = ApiJson::<JsonBody>::from_request(req, state).await?;
            return Ok(TemplateBody(b.yaml));
        }
        if !matches!(
            ct.as_str(),
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" | "text/plain"
        ) {
            return Err(rejection(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the YAML as the body (Content-Type: application/yaml) or as JSON {\"yaml\": \"…\"}".into(),
            ));
        }
        let text = String::from_request(req, state)
            .await
            .map_err(|rej| rejection(rej.status(), rej.body_text()))?;
        Ok(TemplateBody(text))
    }
}

pub async fn list((Extension(s), Extension(who), _): Ctx) -> ApiResult<Json<Vec<TemplateSummary>>> {
    Ok(Json(svc::list_templates(&s.pool, &who).await?))
}

pub async fn create(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    TemplateBody(yaml): TemplateBody,
) -> ApiResult<Response> {
    let t = svc::save_template(&s.pool, &who, &meta, None, &yaml).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    version: Option<i32>,
}

/// The newest version, or `?version=N`.
pub async fn get_one(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> ApiResult<Json<Template>> {
    Ok(Json(
        svc::get_template(&s.pool, &who, &id, q.version).await?,
    ))
}

/// Saves a new version (the YAML's id must be this one).
pub async fn update(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(id): ApiPath<String>,
    TemplateBody(yaml): TemplateBody,
) -> ApiResult<Json<Template>> {
    Ok(Json(
        svc::save_template(&s.pool, &who, &meta, Some(&id), &yaml).await?,
    ))
}

#[derive(Serialize)]
pub struct VersionInfo {
    version: i32,
    created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

pub async fn versions(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<VersionInfo>>> {
    Ok(Json(
        svc::template_versions(&s.pool, &who, &id)
            .await?
            .into_iter()
            .map(|(version, created_by, created_at)| VersionInfo {
                version,
                created_by,
                created_at,
            })
            .collect(),
    ))
}

// ---- deployments ------------------------------------------------------------------------

pub async fn list_deployments(
    (Extension(s), Extension(who), _): Ctx,
    ApiQuery(f): ApiQuery<svc::DeploymentFilter>,
) -> ApiResult<Json<Vec<Deployment>>> {
    Ok(Json(svc::list_deployments(&s.pool, &who, &f).await?))
}

pub async fn create_deployment(
    (Extension(s), Extension(who), _): Ctx,
    ApiJson(n): ApiJson<svc::NewDeployment>,
) -> ApiResult<Response> {
    let d = svc::create_deployment(&s.pool, &who, &s.config.approvals, n).await?;
    let location = format!("/api/v1/deployments/{}", d.deployment.key);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(d)).into_response())
}

pub async fn get_deployment(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<DeploymentDetail>> {
    Ok(Json(
        svc::get_deployment(&s.pool, &who, &s.config.approvals, &key).await?,
    ))
}

pub async fn events(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Vec<domain::storage::deployments::EventRow>>> {
    Ok(Json(svc::deployment_events(&s.pool, &who, &key).await?))
}

pub async fn item(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath((key, item)): ApiPath<(String, String)>,
    ApiJson(action): ApiJson<svc::ItemAction>,
) -> ApiResult<Json<DeploymentDetail>> {
    Ok(Json(
        svc::act_on_item(&s.pool, &who, &s.config.approvals, &key, &item, action).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    to: DeploymentStatus,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn transition(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(b): ApiJson<TransitionBody>,
) -> ApiResult<Json<DeploymentDetail>> {
    Ok(Json(
        svc::transition(&s.pool, &who, &s.config.approvals, &key, b.to, b.reason).await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    decision: Decision,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn approvals(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(b): ApiJson<DecisionBody>,
) -> ApiResult<Json<DeploymentDetail>> {
    let approve = matches!(b.decision, Decision::Approve);
    Ok(Json(
        svc::decide(&s.pool, &who, &s.config.approvals, &key, approve, b.reason).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateQuery {
    phase: Section,
    /// Long poll: wait up to this many seconds (at most 60) for the answer to become
    /// `allowed` or final.
    #[serde(default)]
    wait: Option<u64>,
}

#[derive(Serialize)]
pub struct GateAnswer {
    allowed: bool,
    status: DeploymentStatus,
    blocking: Vec<String>,
}

/// The gate CI asks: 200 with `allowed` and what blocks. With `wait`, the answer comes as
/// soon as it is `allowed` or the deployment has ended, or when the wait is over.
pub async fn gate(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<GateQuery>,
) -> ApiResult<Json<GateAnswer>> {
    let until =
        std::time::Instant::now() + std::time::Duration::from_secs(q.wait.unwrap_or(0).min(60));
    loop {
        let (allowed, blocking, status) =
            svc::gate_answer(&s.pool, &who, &s.config.approvals, &key, q.phase).await?;
        if allowed || status.is_final() || std::time::Instant::now() >= until {
            return Ok(Json(GateAnswer {
                allowed,
                status,
                blocking,
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `POST …/export.md` and `…/export.json`: the whole deployment, audited (POST: it records
/// the export).
pub async fn export_markdown(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Response> {
    let text =
        svc::export_deployment(&s.pool, &who, &meta, &s.config.approvals, &key, true).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.md\"", key.to_ascii_uppercase()),
            ),
        ],
        text,
    )
        .into_response())
}

pub async fn export_json(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Response> {
    let text =
        svc::export_deployment(&s.pool, &who, &meta, &s.config.approvals, &key, false).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.json\"", key.to_ascii_uppercase()),
            ),
        ],
        text,
    )
        .into_response())
}

/// `POST …/events` from the pipeline: `{"event": "started" | "finished"}`, `{"event":
/// "progress", "percent": 40, "message": "…"}`, `{"event": "rolled_back", "reason": "…"}`.
pub async fn pipeline_event(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(e): ApiJson<svc::PipelineEvent>,
) -> ApiResult<Json<DeploymentDetail>> {
    Ok(Json(
        svc::pipeline_event(&s.pool, &who, &s.config.approvals, &key, e).await?,
    ))
}

/// `POST …/incidents` `{}` or `{"severity": "SEV1"}` (default SEV2): opens an incident for
/// the deployment, its failed and inconclusive items as findings, linked both ways (201); a
/// deployment with an open linked incident answers with that one (200).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpenIncident {
    #[serde(default)]
    severity: Option<domain::incidents::Severity>,
}

pub async fn open_incident(
    (Extension(s), Extension(who), Extension(_meta)): Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<OpenIncident>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let severity = body.severity.unwrap_or(domain::incidents::Severity::Sev2);
    let (incident, opened) = svc::open_incident(&s.pool, &who, &key, severity).await?;
    let status = if opened {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::json!({ "incident": incident }))))
}

/// `GET …/incidents`: the incidents opened from the deployment.
pub async fn incidents(
    (Extension(s), Extension(who), Extension(_meta)): Ctx,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Vec<domain::deployments::LinkedIncident>>> {
    Ok(Json(svc::incidents_of(&s.pool, &who, &key).await?))
}
