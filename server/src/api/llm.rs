//! `/api/v1/llm`: the weekly LLM cost review (the same data as the LLM costs page).

use super::ApiQuery;
use crate::error::ApiResult;
use crate::route;
use crate::routes::Routes;
use crate::state::Shared;
use axum::{Extension, Json};
use domain::Principal;
use domain::costs::CostReview;
use domain::services::llm as svc;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    route!(Routes::new(), "/api/v1/llm/review", get(review))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    #[serde(default)]
    week: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    feature: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    operation: Option<String>,
}

impl ReviewQuery {
    pub fn into_query(self) -> svc::ReviewQuery {
        let mut filters = BTreeMap::new();
        for (k, v) in [
            ("provider", self.provider),
            ("model", self.model),
            ("service", self.service),
            ("feature", self.feature),
            ("tenant", self.tenant),
            ("operation", self.operation),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                filters.insert(k.to_string(), v);
            }
        }
        svc::ReviewQuery {
            week: self.week.filter(|w| !w.is_empty()),
            by: self.by.filter(|b| !b.is_empty()),
            filters,
            ..Default::default()
        }
    }
}

/// `GET /api/v1/llm/review`
pub async fn review(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Json<CostReview>> {
    Ok(Json(svc::review(&s.pool, &who, &q.into_query()).await?))
}
