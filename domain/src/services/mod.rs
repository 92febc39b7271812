//! Operations on the domain, called by both the UI's server functions and `/api/v1`.
//! Each checks the caller's role itself: authorization never depends on which adapter called.

pub mod accounts;
pub mod auth;
pub mod deployment_checks;
pub mod deployments;
pub mod incidents;
pub mod kafka_lag;
pub mod llm;
pub mod llm_budgets;
pub mod llm_import;
pub mod llm_prices;
pub mod manifests;
pub mod passwords;
pub mod probe_runs;
pub(crate) mod resolve;
pub mod targets;

use crate::error::{DomainError, DomainResult};
use std::collections::BTreeMap;

/// Labels as stored (a JSON object of strings), validated: at most 30, keys are names,
/// values at most 200 characters.
pub(crate) fn labels_json(labels: &BTreeMap<String, String>) -> DomainResult<serde_json::Value> {
    if labels.len() > 30 {
        return Err(DomainError::invalid("at most 30 labels"));
    }
    let mut m = serde_json::Map::new();
    for (k, v) in labels {
        crate::incidents::check_name("label key", k).map_err(DomainError::Invalid)?;
        if v.chars().count() > 200 {
            return Err(DomainError::invalid(
                "a label value is at most 200 characters",
            ));
        }
        m.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    Ok(serde_json::Value::Object(m))
}
