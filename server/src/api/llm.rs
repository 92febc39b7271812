//! `/api/v1/llm`: the weekly LLM cost review (the same data as the LLM costs page).

use super::{ApiJson, ApiQuery};
use crate::error::ApiResult;
use crate::route;
use crate::routes::Routes;
use crate::state::Shared;
use axum::{Extension, Json};
use domain::costs::{CostReview, PriceChangeResult, PriceView};
use domain::services::llm as svc;
use domain::services::llm_prices as prices_svc;
use domain::{DomainError, Principal, RequestMeta};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = route!(Routes::new(), "/api/v1/llm/review", get(review));
    let r = route!(r, "/api/v1/llm/prices", get(prices).post(change_prices));
    route!(
        r,
        "/api/v1/llm/prices/litellm",
        get(export_litellm).post(import_litellm)
    )
}

type Ctx = (
    Extension<Arc<Shared>>,
    Extension<Principal>,
    Extension<RequestMeta>,
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    #[serde(default)]
    dry_run: Option<bool>,
    /// For a LiteLLM import: the date its prices take effect.
    #[serde(default)]
    effective_from: Option<String>,
}

/// `GET /api/v1/llm/prices`
pub async fn prices(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<PriceView>>> {
    Ok(Json(prices_svc::list_prices(&s.pool, &who).await?))
}

/// `POST /api/v1/llm/prices[?dry_run=true]`
pub async fn change_prices(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiQuery(q): ApiQuery<DryRun>,
    ApiJson(change): ApiJson<prices_svc::PriceChange>,
) -> ApiResult<Json<PriceChangeResult>> {
    if q.effective_from.is_some() {
        return Err(DomainError::invalid(
            "effective_from belongs in each price (it is a LiteLLM import parameter)",
        )
        .into());
    }
    Ok(Json(
        prices_svc::change_prices(
            &s.pool,
            &who,
            &meta,
            &change,
            q.dry_run.unwrap_or(false),
            Vec::new(),
        )
        .await?,
    ))
}

/// `POST /api/v1/llm/prices/litellm?effective_from=2026-01-01[&dry_run=true]`: the body is
/// LiteLLM's `model_prices_and_context_window.json` (or part of it).
pub async fn import_litellm(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiQuery(q): ApiQuery<DryRun>,
    body: String,
) -> ApiResult<Json<PriceChangeResult>> {
    who.require(domain::Role::Admin)?;
    let Some(from) = q.effective_from.filter(|f| !f.is_empty()) else {
        return Err(DomainError::invalid(
            "effective_from: the date these prices take effect (2026-01-01)",
        )
        .into());
    };
    let (change, ignored) = prices_svc::from_litellm(&body, &from, "LiteLLM import")?;
    Ok(Json(
        prices_svc::change_prices(
            &s.pool,
            &who,
            &meta,
            &change,
            q.dry_run.unwrap_or(false),
            ignored,
        )
        .await?,
    ))
}

/// `GET /api/v1/llm/prices/litellm`: the prices in effect now, in LiteLLM's format.
pub async fn export_litellm(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(prices_svc::to_litellm(&s.pool, &who).await?))
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
