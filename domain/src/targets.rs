//! Target types (shared with the browser). A target is a system Lookout can look at.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub use crate::target_kind::TargetKind;

/// A target as shown to people: never the secret, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: i64,
    pub name: String,
    pub kind: TargetKind,
    pub connection: String,
    pub username: String,
    pub secret_set: bool,
    pub environment: String,
    pub labels: BTreeMap<String, String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The newest probe run on this target (in lists).
    #[serde(default)]
    pub last_run: Option<crate::probe_runs::ProbeRun>,
}

/// The outcome of "test connection".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionTest {
    pub ok: bool,
    /// The server version and facts on success, the exact failure otherwise.
    pub summary: String,
    pub latency_ms: Option<f64>,
    pub facts: Vec<(String, String)>,
}

/// A kind this server supports, for forms (from `kinds`, the server's registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindInfo {
    pub kind: TargetKind,
    pub connection_help: String,
}

pub fn check_target_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid target name {name:?}: 1–63 of a–z, 0–9, '.', '_', '-', starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        assert!(check_target_name("orders-cache").is_ok());
        assert!(check_target_name("Orders").is_err());
        assert!(check_target_name("-x").is_err());
        assert!(check_target_name(&"a".repeat(64)).is_err());
    }
}
