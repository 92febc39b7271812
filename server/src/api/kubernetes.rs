//! `/api/v1/kubernetes/manifest-checks`: static checks on Kubernetes manifests (YAML as
//! `kubectl apply -f` takes it), answered with the findings by line. Nothing is stored.

use super::ApiQuery;
use super::deployments::TemplateBody;
use crate::error::ApiResult;
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use domain::Principal;
use domain::manifests::ManifestReport;
use domain::services::manifests as svc;
use serde::Deserialize;
use std::time::Duration;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    route!(
        Routes::new(),
        "/api/v1/kubernetes/manifest-checks",
        post(check)
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// A Kubernetes target: the requests are also checked against its largest node.
    target: Option<i64>,
}

/// `POST /api/v1/kubernetes/manifest-checks[?target=ID]` with the YAML as the body
/// (`Content-Type: application/yaml`) or JSON `{"yaml": "…"}`: 200 with the findings, 422
/// naming the document that is not YAML or not a Kubernetes object. With `target`, the
/// cluster's nodes are read (10 s per request) and `cluster` says what they offer or why
/// they could not be read.
pub async fn check(
    Extension(s): Extension<std::sync::Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<CheckQuery>,
    TemplateBody(yaml): TemplateBody,
) -> ApiResult<Json<ManifestReport>> {
    Ok(Json(match q.target {
        None => svc::check(&who, &yaml)?,
        Some(id) => {
            svc::check_against_cluster(&s.pool, &who, &s.access, &yaml, id, Duration::from_secs(10))
                .await?
        }
    }))
}
