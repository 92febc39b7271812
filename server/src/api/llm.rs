//! `/api/v1/llm`: the weekly LLM cost review (the same data as the LLM costs page).

use super::{ApiJson, ApiPath, ApiQuery, ApiText};
use crate::error::ApiResult;
use crate::route;
use crate::routes::Routes;
use crate::state::Shared;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use domain::costs::{
    BudgetStatus, CostReview, PriceChangeResult, PriceView, TraceCall, WeekReview,
};
use domain::services::llm as svc;
use domain::services::llm_budgets as budgets_svc;
use domain::services::llm_prices as prices_svc;
use domain::{DomainError, Principal, RequestMeta};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    let r = route!(Routes::new(), "/api/v1/llm/review", get(review));
    let r = route!(r, "/api/v1/llm/review/csv", get(review_csv));
    let r = route!(r, "/api/v1/llm/review/markdown", get(review_markdown));
    let r = route!(r, "/api/v1/llm/traces/{trace}", get(trace_calls));
    let r = route!(
        r,
        "/api/v1/llm/budgets",
        get(list_budgets).post(create_budget)
    );
    let r = route!(r, "/api/v1/llm/budgets/{id}", delete(delete_budget));
    let r = route!(r, "/api/v1/llm/usage/import", post(import_usage));
    let r = route!(
        r,
        "/api/v1/llm/reviews/{week}",
        get(week_review).put(save_week_review)
    );
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

fn download(content_type: &'static str, name: String, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

/// A file name part: letters, digits, `-` and `_` only.
fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect()
}

/// `GET /api/v1/llm/review/csv`: the week's usage per breakdown key, model and price version,
/// every token bucket, the exact cost.
pub async fn review_csv(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Response> {
    let q = q.into_query(s.config.llm_week_offset);
    let csv = svc::review_csv(&s.pool, &who, &q).await?;
    let week = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').next())
        .unwrap_or("week");
    let name = format!(
        "lookout-llm-costs-{}-by-{}.csv",
        file_part(week.trim_matches('"')),
        file_part(q.by.as_deref().unwrap_or("model"))
    );
    Ok(download("text/csv; charset=utf-8", name, csv))
}

/// `GET /api/v1/llm/review/markdown`: the review as Markdown, notes included.
pub async fn review_markdown(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Response> {
    let q = q.into_query(s.config.llm_week_offset);
    let md = svc::review_markdown(&s.pool, &who, &q).await?;
    let week = md
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("week");
    let name = format!("lookout-llm-cost-review-{}.md", file_part(week));
    Ok(download("text/markdown; charset=utf-8", name, md))
}

/// `GET /api/v1/llm/traces/{trace}`: the LLM calls recorded in one trace.
pub async fn trace_calls(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiPath(trace): ApiPath<String>,
) -> ApiResult<Json<Vec<TraceCall>>> {
    Ok(Json(svc::trace_calls(&s.pool, &who, &trace).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    format: String,
}

/// `POST /api/v1/llm/usage/import?format=jsonl|csv` (approver+): the body is the file.
pub async fn import_usage(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    ApiText(body): ApiText,
) -> ApiResult<Json<serde_json::Value>> {
    let window = svc::Window {
        retention_days: i64::from(s.config.llm_retention_days),
    };
    let r = domain::services::llm_import::import(&s.pool, &who, &q.format, &body, window).await?;
    Ok(Json(
        serde_json::json!({ "stored": r.stored, "duplicates": r.duplicates }),
    ))
}

/// `GET /api/v1/llm/budgets`: every budget with its period's spend and forecast.
pub async fn list_budgets(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<BudgetStatus>>> {
    Ok(Json(budgets_svc::list_budgets(&s.pool, &who).await?))
}

/// `POST /api/v1/llm/budgets` (approver+).
pub async fn create_budget(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiJson(body): ApiJson<budgets_svc::NewBudget>,
) -> ApiResult<(axum::http::StatusCode, Json<serde_json::Value>)> {
    let id = budgets_svc::create_budget(&s.pool, &who, &meta, &body).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::json!({ "id": id })),
    ))
}

/// `DELETE /api/v1/llm/budgets/{id}` (approver+).
pub async fn delete_budget(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<axum::http::StatusCode> {
    budgets_svc::delete_budget(&s.pool, &who, &meta, id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /api/v1/llm/reviews/{week}`
pub async fn week_review(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiPath(week): ApiPath<String>,
) -> ApiResult<Json<WeekReview>> {
    Ok(Json(svc::week_review(&s.pool, &who, &week).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveReview {
    #[serde(default)]
    notes: String,
    #[serde(default)]
    reviewed: bool,
}

/// `PUT /api/v1/llm/reviews/{week}`
pub async fn save_week_review(
    (Extension(s), Extension(who), Extension(meta)): Ctx,
    ApiPath(week): ApiPath<String>,
    ApiJson(body): ApiJson<SaveReview>,
) -> ApiResult<Json<WeekReview>> {
    Ok(Json(
        svc::save_week_review(&s.pool, &who, &meta, &week, &body.notes, body.reviewed).await?,
    ))
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
    ApiText(body): ApiText,
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
    pub fn into_query(self, offset: time::UtcOffset) -> svc::ReviewQuery {
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
            offset,
        }
    }
}

/// `GET /api/v1/llm/review`
pub async fn review(
    Extension(s): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Json<CostReview>> {
    Ok(Json(
        svc::review(&s.pool, &who, &q.into_query(s.config.llm_week_offset)).await?,
    ))
}
