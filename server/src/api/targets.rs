//! `/api/v1/targets`: the systems Lookout looks at.

use super::{ApiJson, ApiPath};
use crate::error::ApiResult;
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::services::targets as svc;
use domain::targets::{ConnectionTest, KindInfo, Target};
use domain::{Principal, RequestMeta};
use std::sync::Arc;
use std::time::Duration;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/targets", get(list).post(create));
    let r = route!(r, "/api/v1/target-kinds", get(kinds));
    let r = route!(
        r,
        "/api/v1/targets/{id}",
        get(get).patch(patch).delete(delete)
    );
    route!(r, "/api/v1/targets/{id}/test", post(test))
}

type Ctx = (
    Extension<Arc<Shared>>,
    Extension<Principal>,
    Extension<RequestMeta>,
);

pub async fn list((Extension(s), Extension(who), _): Ctx) -> ApiResult<Json<Vec<Target>>> {
    Ok(Json(svc::list(&s.pool, &who).await?))
}

/// The kinds this server supports (the registry in `domain::kinds`).
pub async fn kinds((_, Extension(who), _): Ctx) -> ApiResult<Json<Vec<KindInfo>>> {
    Ok(Json(svc::kinds(&who)?))
}

pub async fn create(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiJson(n): ApiJson<svc::NewTarget>,
) -> ApiResult<Response> {
    let t = svc::create(&s.pool, &who, &meta, &s.access, n).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

pub async fn get(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Target>> {
    Ok(Json(svc::get(&s.pool, &who, id).await?))
}

pub async fn patch(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(id): ApiPath<i64>,
    ApiJson(p): ApiJson<svc::TargetPatch>,
) -> ApiResult<Json<Target>> {
    Ok(Json(
        svc::update(&s.pool, &who, &meta, &s.access, id, p).await?,
    ))
}

pub async fn delete(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    svc::delete(&s.pool, &who, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/targets/{id}/test`: connects within 10 s and reports the answer.
pub async fn test(
    (Extension(s), Extension(who), _): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ConnectionTest>> {
    Ok(Json(
        svc::test_connection(&s.pool, &who, &s.access, id, Duration::from_secs(10)).await?,
    ))
}
