//! Kubernetes manifest checks as the browser and the API see them (the checks themselves
//! are `probes::kubernetes::manifests`, run by `services::manifests`).

use serde::{Deserialize, Serialize};

/// One problem, next to its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestIssue {
    pub code: String,
    /// critical, warning, info
    pub severity: String,
    /// `Deployment/api`
    pub object: String,
    pub container: Option<String>,
    /// 1-based line in the text checked.
    pub line: usize,
    pub message: String,
    /// A YAML fragment that fixes it (empty when the fix is a choice only a person can make).
    pub fix: String,
}

/// The result of checking a manifest text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ManifestReport {
    pub documents: usize,
    /// `Deployment/api`, … in order.
    pub objects: Vec<String>,
    /// By line, most severe first within a line.
    pub findings: Vec<ManifestIssue>,
}
