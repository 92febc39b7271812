//! Server functions for the LLM costs page (adapters over `domain::services::llm`).
#![allow(clippy::too_many_arguments)]

use crate::error::AppError;
use domain::costs::CostReview;
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
        ..Default::default()
    };
    Ok(domain::services::llm::review(&c.pool, &c.who, &q).await?)
}
