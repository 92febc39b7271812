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
    /// Fallbacks per feature: how often a request failed over, and what it cost.
    #[serde(default)]
    pub fallbacks: Vec<FallbackRow>,
    /// The zone the weeks start in (`UTC`, `UTC+02:00`).
    #[serde(default)]
    pub zone: String,
}

/// A feature's fallbacks in the week: requests whose first attempt failed and another model
/// answered (attempts under one parent span), and the **fallback tax** — what the failed
/// attempts were billed, plus what the fallback model cost above the first choice's price for
/// the same tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FallbackRow {
    pub feature: String,
    /// Successful calls of the feature (requests answered).
    pub requests: i64,
    pub fell_back: i64,
    /// fell_back / requests, in percent.
    pub share: f64,
    /// The chains seen, first choice → what answered (`openai gpt-4.1 → anthropic claude-sonnet-4-5`), most frequent first.
    pub chains: Vec<String>,
    pub failed_cost: String,
    pub pricier_cost: String,
    pub tax: String,
    pub tax_usd: f64,
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

/// One row of the price book as shown (rates per million tokens, exact decimal text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceView {
    pub id: i64,
    pub provider: String,
    pub model: String,
    pub service_tier: String,
    pub min_prompt_tokens: i64,
    /// RFC 3339.
    pub effective_from: String,
    pub input: String,
    pub cache_read: Option<String>,
    pub cache_write_5m: Option<String>,
    pub cache_write_1h: Option<String>,
    pub output: String,
    pub reasoning: Option<String>,
    pub source: String,
    pub created_at: String,
    /// Set when a later version replaced it; it still prices the records it priced.
    pub retired_at: Option<String>,
    /// Usage records this row priced.
    pub records: i64,
}

/// What a price change does to the records already stored (a dry run shows it before it is
/// applied; applying it does exactly this).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepriceDiff {
    /// Records whose price or cost changes.
    pub records: i64,
    /// Unpriced before, priced after (and the reverse).
    pub newly_priced: i64,
    pub newly_unpriced: i64,
    pub cost_before: String,
    pub cost_after: String,
    pub change: String,
    /// Per ISO week and model.
    pub rows: Vec<RepriceRow>,
    /// Fields of an imported file that Lookout does not price (LiteLLM's audio, image, … costs).
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepriceRow {
    pub week: String,
    pub model: String,
    pub records: i64,
    pub before: String,
    pub after: String,
    pub change: String,
}

/// The outcome of a price change: the new rows, the retired ones, and what it re-priced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceChangeResult {
    /// False for a dry run: nothing was written.
    pub applied: bool,
    pub added: Vec<i64>,
    pub retired: Vec<i64>,
    pub diff: RepriceDiff,
}

/// The review record of a week: the reviewer's notes and the sign that it was reviewed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeekReview {
    pub week: String,
    pub notes: String,
    pub reviewed_by: Option<String>,
    /// RFC 3339.
    pub reviewed_at: Option<String>,
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
    /// Whether the caller may write the notes and mark the week reviewed (responder+).
    #[serde(default)]
    pub can_edit: bool,
}

/// One LLM call of a trace (the spans behind a row of the most expensive traces).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceCall {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: f64,
    pub service: String,
    pub feature: String,
    pub tenant: String,
    pub operation: String,
    pub provider: String,
    pub model: String,
    pub request_model: Option<String>,
    pub status: String,
    pub error_type: Option<String>,
    pub input: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub output: i64,
    pub reasoning: i64,
    /// Empty when unpriced.
    pub cost: String,
    pub price_version: Option<i64>,
    /// The usage as received.
    pub raw_usage: String,
}

/// A budget and where its period stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub id: i64,
    /// `service`, `feature` or `tenant`.
    pub scope: String,
    pub name: String,
    /// `week` (ISO, Monday 00:00 UTC) or `month` (the 1st, 00:00 UTC).
    pub period: String,
    pub amount: String,
    /// The current period's first day.
    pub period_start: String,
    pub spent: String,
    /// The period's spend if it goes on at the rate so far (shown once a fifth of the period
    /// has passed).
    pub forecast: Option<String>,
    pub spent_percent: f64,
    pub forecast_percent: Option<f64>,
    /// Thresholds raised this period (80, 100).
    pub raised: Vec<i32>,
    pub created_by: String,
}
