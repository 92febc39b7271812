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
    /// Set when the check was asked against a cluster (a Kubernetes target): what its
    /// nodes offer, or why they could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterNodes>,
}

/// The nodes of the cluster the manifests were checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterNodes {
    pub target_id: i64,
    pub target: String,
    /// Nodes read (0 when they could not be read).
    pub nodes: usize,
    /// `64 (kwok-gpu)`: the largest allocatable CPU and its node.
    pub largest_cpu: Option<String>,
    /// `256Gi (kwok-gpu)`.
    pub largest_memory: Option<String>,
    /// Why the nodes could not be read; the static checks still ran.
    pub error: Option<String>,
}
