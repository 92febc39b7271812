//! Read-only, time-bounded diagnostics against the systems Lookout looks at, one module per
//! system. Probes know nothing of HTTP or of Lookout's tables: target in, report out.
//!
//! This first layer is the connection check every target gets ("test connection"): it
//! proves the target answers, says what it is (server version) and how long it took, and
//! turns every failure — refused, unreachable, timed out, bad credentials — into a clear,
//! bounded error instead of a hang.

pub mod framework;
pub mod http;
pub mod kafka;
pub mod kubernetes;
pub mod llm;
pub mod net;
pub mod postgres;
pub mod prometheus;
pub mod rabbitmq;
pub mod redis;
pub mod registry;
pub mod traces;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The default time limit of one network step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a successful connection check learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionReport {
    /// e.g. `redis`, `postgres`, `kafka`
    pub kind: String,
    /// The target as shown to people (credentials removed).
    pub target: String,
    /// The server's own version string.
    pub server_version: String,
    /// Round trip of the check, in milliseconds.
    pub latency_ms: f64,
    /// Extra facts (role, brokers, cluster id, …) as name/value pairs.
    pub facts: Vec<(String, String)>,
}

/// Why a check failed, in words a responder can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProbeError {
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    #[error("cannot connect to {target}: {reason} after {elapsed}")]
    Unreachable {
        target: String,
        reason: String,
        elapsed: String,
    },
    #[error("{target} did not answer within {limit}")]
    TimedOut { target: String, limit: String },
    #[error("{target} refused the credentials: {reason}")]
    AuthFailed { target: String, reason: String },
    #[error("{target} answered with an error: {reason}")]
    Server { target: String, reason: String },
    #[error("the run was cancelled")]
    Cancelled,
    /// Lookout's own failure (e.g. the probe's task panicked): no finding about the target.
    #[error("{0}")]
    Internal(String),
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Removes the password from a URL for display.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_shown() {
        assert_eq!(
            redact_url("redis://:hunter2@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("::"), "(unparseable URL)");
    }
}
