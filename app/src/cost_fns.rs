//! Server functions for the LLM costs page (adapters over `domain::services::llm`).
#![allow(clippy::too_many_arguments)]

use crate::error::AppError;
use domain::costs::{
    BudgetStatus, CostReview, PriceChangeResult, PriceView, TraceCall, WeekReview,
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::state::call;

/// The weekly review (`week` like `2026-W48`; empty: the last complete week), broken down
/// `by` a dimension, drilled down by the filters that are set.
#[server(prefix = "/api/fn", endpoint = "costs/review")]
pub async fn weekly_cost_review(
    #[server(default)] week: Option<String>,
    #[server(default)] by: Option<String>,
    #[server(default)] provider: Option<String>,
    #[server(default)] model: Option<String>,
    #[server(default)] service: Option<String>,
    #[server(default)] feature: Option<String>,
    #[server(default)] tenant: Option<String>,
    #[server(default)] operation: Option<String>,
) -> Result<CostReview, AppError> {
    let c = call()?;
    let mut filters = std::collections::BTreeMap::new();
    for (k, v) in [
        ("provider", provider),
        ("model", model),
        ("service", service),
        ("feature", feature),
        ("tenant", tenant),
        ("operation", operation),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            filters.insert(k.to_string(), v);
        }
    }
    let q = domain::services::llm::ReviewQuery {
        week: week.filter(|w| !w.is_empty()),
        by: by.filter(|b| !b.is_empty()),
        filters,
        offset: c.llm_week_offset,
    };
    Ok(domain::services::llm::review(&c.pool, &c.who, &q).await?)
}

/// A week's review record (notes, who marked it reviewed).
#[server(prefix = "/api/fn", endpoint = "costs/week-review")]
pub async fn week_review_record(week: String) -> Result<WeekReview, AppError> {
    let c = call()?;
    Ok(domain::services::llm::week_review(&c.pool, &c.who, &week).await?)
}

/// Saves the notes on a week and whether it is reviewed; without JavaScript the browser is
/// sent back to the week's review.
#[server(prefix = "/api/fn", endpoint = "costs/save-review")]
pub async fn save_week_review(
    week: String,
    notes: String,
    #[server(default)] reviewed: Option<String>,
) -> Result<WeekReview, AppError> {
    let c = call()?;
    let reviewed = reviewed.is_some_and(|v| !v.is_empty());
    let r =
        domain::services::llm::save_week_review(&c.pool, &c.who, &c.meta, &week, &notes, reviewed)
            .await?;
    leptos_axum::redirect(&format!("/costs?week={}", r.week));
    Ok(r)
}

/// The LLM calls of one trace.
#[server(prefix = "/api/fn", endpoint = "costs/trace")]
pub async fn llm_trace_calls(trace: String) -> Result<Vec<TraceCall>, AppError> {
    let c = call()?;
    Ok(domain::services::llm::trace_calls(&c.pool, &c.who, &trace).await?)
}

/// Every budget with its period's spend and forecast.
#[server(prefix = "/api/fn", endpoint = "costs/budgets")]
pub async fn llm_budgets() -> Result<Vec<BudgetStatus>, AppError> {
    let c = call()?;
    Ok(domain::services::llm_budgets::list_budgets(&c.pool, &c.who).await?)
}

/// Creates a budget (approver+); without JavaScript the browser is sent back to the page.
#[server(prefix = "/api/fn", endpoint = "costs/budgets/create")]
pub async fn create_llm_budget(
    scope: String,
    name: String,
    period: String,
    amount: String,
) -> Result<i64, AppError> {
    let c = call()?;
    // The role first: a caller who may not create budgets learns nothing about the input.
    c.who.require(domain::Role::Approver)?;
    let amount = domain::services::llm_budgets::parse_amount(&amount)?;
    let id = domain::services::llm_budgets::create_budget(
        &c.pool,
        &c.who,
        &c.meta,
        &domain::services::llm_budgets::NewBudget {
            scope,
            name,
            period,
            amount,
        },
    )
    .await?;
    leptos_axum::redirect("/costs#budgets");
    Ok(id)
}

/// Imports usage records pasted or loaded into the page's form (approver+).
#[server(prefix = "/api/fn", endpoint = "costs/import")]
pub async fn import_llm_usage(format: String, data: String) -> Result<String, AppError> {
    let c = call()?;
    let window = domain::services::llm::Window {
        retention_days: c.llm_retention_days,
    };
    let r = domain::services::llm_import::import(&c.pool, &c.who, &format, &data, window).await?;
    Ok(format!(
        "{} records imported, {} already there",
        r.stored, r.duplicates
    ))
}

/// The price book: the live prices, and the retired versions too when `retired` is set.
#[server(prefix = "/api/fn", endpoint = "costs/prices")]
pub async fn llm_prices(
    #[server(default)] retired: Option<String>,
) -> Result<Vec<PriceView>, AppError> {
    let c = call()?;
    let all = domain::services::llm_prices::list_prices(&c.pool, &c.who).await?;
    Ok(if retired.as_deref().is_some_and(|r| !r.is_empty()) {
        all
    } else {
        all.into_iter().filter(|p| p.retired_at.is_none()).collect()
    })
}

#[cfg(feature = "ssr")]
fn price_form(
    retire: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    service_tier: Option<String>,
    min_prompt_tokens: Option<String>,
    effective_from: Option<String>,
    input: Option<String>,
    cache_read: Option<String>,
    cache_write_5m: Option<String>,
    cache_write_1h: Option<String>,
    output: Option<String>,
    reasoning: Option<String>,
    source: Option<String>,
) -> domain::services::llm_prices::PriceForm {
    domain::services::llm_prices::PriceForm {
        retire: retire.unwrap_or_default(),
        provider: provider.unwrap_or_default(),
        model: model.unwrap_or_default(),
        service_tier: service_tier.unwrap_or_default(),
        min_prompt_tokens: min_prompt_tokens.unwrap_or_default(),
        effective_from: effective_from.unwrap_or_default(),
        input: input.unwrap_or_default(),
        cache_read: cache_read.unwrap_or_default(),
        cache_write_5m: cache_write_5m.unwrap_or_default(),
        cache_write_1h: cache_write_1h.unwrap_or_default(),
        output: output.unwrap_or_default(),
        reasoning: reasoning.unwrap_or_default(),
        source: source.unwrap_or_default(),
    }
}

/// What a price change would re-price, without changing anything (admins): the page shows
/// it before the change is applied. `apply` set applies it (the form's second step), then
/// sends a browser without JavaScript back to the price book.
#[server(prefix = "/api/fn", endpoint = "costs/prices/change")]
pub async fn change_llm_price(
    #[server(default)] retire: Option<String>,
    #[server(default)] provider: Option<String>,
    #[server(default)] model: Option<String>,
    #[server(default)] service_tier: Option<String>,
    #[server(default)] min_prompt_tokens: Option<String>,
    #[server(default)] effective_from: Option<String>,
    #[server(default)] input: Option<String>,
    #[server(default)] cache_read: Option<String>,
    #[server(default)] cache_write_5m: Option<String>,
    #[server(default)] cache_write_1h: Option<String>,
    #[server(default)] output: Option<String>,
    #[server(default)] reasoning: Option<String>,
    #[server(default)] source: Option<String>,
    #[server(default)] apply: Option<String>,
) -> Result<PriceChangeResult, AppError> {
    let c = call()?;
    // The role first: a caller who may not change prices learns nothing about the input.
    c.who.require(domain::Role::Admin)?;
    let change = price_form(
        retire,
        provider,
        model,
        service_tier,
        min_prompt_tokens,
        effective_from,
        input,
        cache_read,
        cache_write_5m,
        cache_write_1h,
        output,
        reasoning,
        source,
    )
    .change()?;
    let apply = apply.as_deref().is_some_and(|a| !a.is_empty());
    let r = domain::services::llm_prices::change_prices(
        &c.pool,
        &c.who,
        &c.meta,
        &change,
        !apply,
        Vec::new(),
    )
    .await?;
    if apply {
        leptos_axum::redirect(&format!(
            "/costs/prices?applied=1&added={}&retired={}",
            r.added.len(),
            r.retired.len()
        ));
    }
    Ok(r)
}
