//! `/api/v1/kafka/{target}/…`: consumer-group lag from the sampler's latest state and history.

use super::{ApiPath, ApiQuery};
use crate::error::ApiResult;
use crate::state::Shared;
use axum::Extension;
use axum::Json;
use domain::DomainError;
use domain::Principal;
use domain::kafka::{KafkaGroup, KafkaGroupPage, LagSeries};
use domain::services::kafka_lag as svc;
use serde::Deserialize;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::route;
use crate::routes::Routes;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = Routes::new();
    let r = route!(r, "/api/v1/kafka/{target}/groups", get(groups));
    let r = route!(r, "/api/v1/kafka/{target}/groups/{group}", get(group));
    route!(r, "/api/v1/kafka/{target}/groups/{group}/lag", get(lag))
}

type Ctx = (Extension<Arc<Shared>>, Extension<Principal>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub order: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/kafka/{target}/groups`
pub async fn groups(
    (Extension(s), Extension(who)): Ctx,
    ApiPath(target): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<KafkaGroupPage>> {
    let sort: svc::GroupSort = q.sort.as_deref().unwrap_or("lag").parse()?;
    let desc = match q.order.as_deref() {
        None => sort == svc::GroupSort::Lag,
        Some("desc") => true,
        Some("asc") => false,
        Some(o) => {
            return Err(
                DomainError::invalid(format!("order must be asc or desc, not {o:?}")).into(),
            );
        }
    };
    Ok(Json(
        svc::list_groups(
            &s.pool,
            &who,
            target,
            sort,
            desc,
            q.cursor.as_deref(),
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

/// `GET /api/v1/kafka/{target}/groups/{group}`
pub async fn group(
    (Extension(s), Extension(who)): Ctx,
    ApiPath((target, group)): ApiPath<(i64, String)>,
) -> ApiResult<Json<KafkaGroup>> {
    Ok(Json(svc::get_group(&s.pool, &who, target, &group).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}

/// `GET /api/v1/kafka/{target}/groups/{group}/lag?from=&to=` (RFC 3339; default: the last hour)
pub async fn lag(
    (Extension(s), Extension(who)): Ctx,
    ApiPath((target, group)): ApiPath<(i64, String)>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> ApiResult<Json<LagSeries>> {
    let to = q.to.unwrap_or_else(OffsetDateTime::now_utc);
    let from = q.from.unwrap_or(to - time::Duration::hours(1));
    Ok(Json(
        svc::lag_series(&s.pool, &who, target, &group, from, to).await?,
    ))
}
