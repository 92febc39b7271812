//! The weekly LLM cost review as the page and the API show it (plain data, shared with the
//! browser; money is pre-formatted text plus a float for charts and sorting).

use serde::{Deserialize, Serialize};

/// What a week's calls cost, with every token bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTotals {
    /// Exact, as a decimal string (dollars).
    pub cost: String,
    pub cost_usd: f64,
    pub calls: i64,
    pub unpriced_calls: i64,
    pub input: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub output: i64,
    pub reasoning: i64,
    /// What cache reads saved against the uncached input price.
    pub cache_savings: String,
    /// Calls that failed (an attempt that fell back, or a call that errored) and their cost.
    pub failed_calls: i64,
    pub failed_cost: String,
}

/// One row of a breakdown (by provider, model, service, feature, tenant or operation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    pub key: String,
    pub cur: CostTotals,
    pub prev: CostTotals,
    /// This week's cost minus last week's, exact.
    pub change: String,
    pub change_usd: f64,
    pub cost_per_call: String,
}

/// The change of a week's cost split into effects that add up to it (docs/llm-costs.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostChange {
    /// Whose change: a service, or `all services`.
    pub scope: String,
    pub total: String,
    pub volume: String,
    pub mix: String,
    pub price: String,
    pub cache: String,
    pub tokens: String,
    pub sentence: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub week: String,
    pub cost_usd: f64,
    pub cost: String,
    pub calls: i64,
    pub unpriced_calls: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceCost {
    pub trace_id: String,
    pub service: String,
    pub calls: i64,
    pub cost: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReview {
    /// ISO week, `2026-W48`.
    pub week: String,
    pub prev_week: String,
    /// The week's bounds (RFC 3339, in the review's zone).
    pub from: String,
    pub to: String,
    /// The breakdown's dimension.
    pub by: String,
    /// Filters of a drill-down (dimension, value).
    pub filters: Vec<(String, String)>,
    pub cur: CostTotals,
    pub prev: CostTotals,
    pub overall: CostChange,
    pub services: Vec<CostChange>,
    pub rows: Vec<CostRow>,
    pub trend: Vec<TrendPoint>,
    pub top_traces: Vec<TraceCost>,
}

/// The dimensions a breakdown can be by.
pub const DIMENSIONS: [&str; 6] = [
    "provider",
    "model",
    "service",
    "feature",
    "tenant",
    "operation",
];
