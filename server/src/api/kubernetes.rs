//! `/api/v1/kubernetes/manifest-checks`: static checks on Kubernetes manifests (YAML as
//! `kubectl apply -f` takes it), answered with the findings by line. Nothing is stored.

use super::deployments::TemplateBody;
use crate::error::ApiResult;
use axum::Extension;
use axum::Json;
use domain::Principal;
use domain::manifests::ManifestReport;
use domain::services::manifests as svc;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    route!(
        Routes::new(),
        "/api/v1/kubernetes/manifest-checks",
        post(check)
    )
}

/// `POST /api/v1/kubernetes/manifest-checks` with the YAML as the body
/// (`Content-Type: application/yaml`) or JSON `{"yaml": "…"}`: 200 with the findings, 422
/// naming the document that is not YAML or not a Kubernetes object.
pub async fn check(
    Extension(who): Extension<Principal>,
    TemplateBody(yaml): TemplateBody,
) -> ApiResult<Json<ManifestReport>> {
    Ok(Json(svc::check(&who, &yaml)?))
}
