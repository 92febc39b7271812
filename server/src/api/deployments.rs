//! `/api/v1/deployment-templates`: deployment checklist templates (issue 12; deployments,
//! sign-off and the CI gate are not built yet). A template is sent as YAML — the body itself
//! (`Content-Type: application/yaml`, `text/yaml` or `text/plain`, e.g. `curl --data-binary
//! @checklist.yaml`) or JSON `{"yaml": "…"}`.

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
use domain::deployments::{Template, TemplateSummary};
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
    route!(
        r,
        "/api/v1/deployment-templates/{id}/versions",
        get(versions)
    )
}

type Ctx = (
    Extension<Arc<Shared>>,
    Extension<Principal>,
    Extension<RequestMeta>,
);

/// A template's YAML from the body (see the module docs).
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
                "send the template as YAML (Content-Type: application/yaml) or as JSON {\"yaml\": \"…\"}".into(),
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
