//! LLM cost accounting: token buckets ([`tokens`]), the price book's rules ([`prices`]), and
//! the week-over-week explanation ([`explain`]). Pure functions with table tests; storage and
//! ingest build on them (docs/llm-costs.md).

pub mod explain;
pub mod prices;
pub mod spans;
pub mod tokens;
