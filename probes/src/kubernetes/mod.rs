//! Kubernetes: the connection check (server version, and what the credentials may do for
//! the probe's reads, asked with SelfSubjectAccessReview), the workload diagnosis probe
//! (`probe.rs`, its pure rules in `rules.rs`). Read-only: the only object Lookout creates
//! is the SelfSubjectAccessReview, which the API server answers without storing.

pub mod config;
pub mod manifest_probe;
pub mod manifests;
pub mod probe;
pub mod rules;

use crate::{ConnectionReport, ProbeError, secs};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use std::time::{Duration, Instant};

/// One permission the probe uses: verb, API group, resource (with subresource), and whether
/// it is cluster-scoped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    pub cluster: bool,
    /// What the probe loses without it.
    pub needed_for: &'static str,
}

const fn perm(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    cluster: bool,
    needed_for: &'static str,
) -> Permission {
    Permission {
        verb,
        group,
        resource,
        subresource,
        cluster,
        needed_for,
    }
}

/// Every read the workload diagnosis makes (README's ClusterRole grants exactly these).
pub const PERMISSIONS: &[Permission] = &[
    perm("list", "", "pods", "", false, "pod states"),
    perm(
        "list",
        "",
        "events",
        "",
        false,
        "the scheduler's and kubelet's events",
    ),
    perm(
        "get",
        "",
        "pods",
        "log",
        false,
        "the crashing containers' last log lines",
    ),
    perm(
        "list",
        "",
        "services",
        "",
        false,
        "services without ready endpoints",
    ),
    perm(
        "list",
        "discovery.k8s.io",
        "endpointslices",
        "",
        false,
        "services without ready endpoints",
    ),
    perm("list", "apps", "deployments", "", false, "stuck rollouts"),
    perm(
        "list",
        "apps",
        "replicasets",
        "",
        false,
        "tying failing pods to their rollout",
    ),
    perm(
        "list",
        "apps",
        "statefulsets",
        "",
        false,
        "StatefulSet workloads",
    ),
    perm(
        "list",
        "apps",
        "daemonsets",
        "",
        false,
        "DaemonSet workloads",
    ),
    perm("list", "batch", "jobs", "", false, "failed Jobs"),
    perm(
        "list",
        "batch",
        "cronjobs",
        "",
        false,
        "CronJob workloads and their failing runs",
    ),
    perm(
        "list",
        "policy",
        "poddisruptionbudgets",
        "",
        false,
        "PodDisruptionBudgets that block drains",
    ),
    perm(
        "list",
        "autoscaling",
        "horizontalpodautoscalers",
        "",
        false,
        "autoscalers at their maximum",
    ),
    perm(
        "list",
        "",
        "nodes",
        "",
        true,
        "node pressure and the largest node's allocatable",
    ),
];

impl Permission {
    /// `list pods/log`, `list nodes (cluster-wide)`.
    pub fn label(&self) -> String {
        let res = if self.subresource.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let res = if self.group.is_empty() {
            res
        } else {
            format!("{res}.{}", self.group)
        };
        format!("{} {res}", self.verb)
    }
}

pub(crate) fn classify(target: &str, e: kube::Error, elapsed: Duration) -> ProbeError {
    match e {
        kube::Error::Api(s) if s.code == 401 => ProbeError::AuthFailed {
            target: target.into(),
            reason: format!("{} ({})", s.message, s.reason),
        },
        kube::Error::Api(s) => ProbeError::Server {
            target: target.into(),
            reason: format!("{} {}: {}", s.code, s.reason, s.message),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            // The useful words are deep in the chain ("Connection refused", "deadline has
            // elapsed"): every distinct message of it, outermost first.
            let mut parts: Vec<String> = vec![];
            let mut cur: Option<&dyn std::error::Error> = Some(&e);
            while let Some(err) = cur {
                let m = err.to_string();
                if !parts.iter().any(|p| p.contains(&m)) {
                    parts.push(m);
                }
                cur = err.source();
            }
            let detail = parts.join(": ");
            if detail.to_ascii_lowercase().contains("timed out")
                || detail.to_ascii_lowercase().contains("elapsed")
            {
                ProbeError::TimedOut {
                    target: target.into(),
                    limit: secs(elapsed),
                }
            } else {
                ProbeError::Unreachable {
                    target: target.into(),
                    reason: detail,
                    elapsed: secs(elapsed),
                }
            }
        }
        other => ProbeError::Server {
            target: target.into(),
            reason: other.to_string(),
        },
    }
}

/// Asks the API server whether the credentials may do each of `perms` (in `namespace` for
/// namespaced ones). Answers in order: `Ok(true)` allowed, `Ok(false)` denied (with the
/// reason when the server gave one).
pub async fn access_review(
    client: &kube::Client,
    namespace: &str,
    perms: &[Permission],
) -> Result<Vec<(Permission, bool, String)>, kube::Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut out = Vec::with_capacity(perms.len());
    for p in perms {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(p.verb.into()),
                    group: Some(p.group.into()),
                    resource: Some(p.resource.into()),
                    subresource: (!p.subresource.is_empty()).then(|| p.subresource.into()),
                    namespace: (!p.cluster).then(|| namespace.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = api.create(&PostParams::default(), &review).await?;
        let status = r.status.unwrap_or_default();
        out.push((*p, status.allowed, status.reason.unwrap_or_default()));
    }
    Ok(out)
}

/// "Test connection": the server's version and which of the probe's reads are allowed,
/// within `limit`. A missing permission is named (it does not fail the check: the probe
/// runs without that part and says so).
pub async fn check(address: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let start = Instant::now();
    let session = config::open(address, limit).await?;
    let target = session.target.server.clone();
    let work = async {
        let version = session
            .client
            .apiserver_version()
            .await
            .map_err(|e| classify(&target, e, start.elapsed()))?;
        let latency = start.elapsed();
        let review = access_review(&session.client, &session.checked.namespace, PERMISSIONS)
            .await
            .map_err(|e| classify(&target, e, start.elapsed()))?;
        Ok::<_, ProbeError>((version, latency, review))
    };
    let (version, latency, review) =
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ProbeError::TimedOut {
                target: target.clone(),
                limit: secs(limit),
            })??;
    let missing: Vec<String> = review
        .iter()
        .filter(|(_, allowed, _)| !allowed)
        .map(|(p, _, _)| {
            format!(
                "{}{} (needed for {})",
                p.label(),
                if p.cluster {
                    " cluster-wide".to_string()
                } else {
                    format!(" in {}", session.checked.namespace)
                },
                p.needed_for
            )
        })
        .collect();
    let mut facts = vec![
        ("context".to_string(), session.checked.context.clone()),
        ("namespace".to_string(), session.checked.namespace.clone()),
        ("platform".to_string(), version.platform.clone()),
        (
            "permissions".to_string(),
            format!(
                "{} of {} reads allowed",
                review.len() - missing.len(),
                review.len()
            ),
        ),
    ];
    if !missing.is_empty() {
        facts.push(("missing permissions".to_string(), missing.join("; ")));
    }
    if session.checked.insecure {
        facts.push((
            "tls".to_string(),
            "insecure-skip-tls-verify: the server's certificate is not checked".to_string(),
        ));
    }
    Ok(ConnectionReport {
        kind: "kubernetes".into(),
        target,
        server_version: version.git_version,
        latency_ms: latency.as_secs_f64() * 1000.0,
        facts,
    })
}

/// Why the previous container's logs could not be read, in words (the API server's reason
/// names the kubelet, the permission or the missing container).
pub(crate) fn log_read_failure(reason: &str) -> String {
    let lower = reason.to_ascii_lowercase();
    let short: String = reason.chars().take(200).collect();
    if lower.starts_with("403") {
        "no permission to get pods/log".into()
    } else if lower.contains("previous terminated container") || lower.contains("not found") {
        format!("no previous container's logs on the node ({short})")
    } else if lower.contains("dial tcp")
        || lower.contains("connection refused")
        || lower.contains("no preferred addresses")
    {
        format!("the kubelet of the pod's node did not answer ({short})")
    } else {
        short
    }
}
