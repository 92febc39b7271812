//! Kubernetes manifest checks: pure, read nothing, store nothing; any signed-in person may
//! run them (pasting YAML into a page is not a privilege).

use super::resolve::{connect_address, open_secret, row, scrub};
use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::manifests::{ClusterNodes, ManifestIssue, ManifestReport};
use crate::reach::Access;
use probes::kubernetes::{manifest_probe, manifests};
use sqlx::PgPool;
use std::time::Duration;

/// The most text checked at once (an upload larger than this is refused before it is read
/// as text).
pub const MAX_BYTES: usize = manifests::MAX_MANIFEST_BYTES;

pub fn check(who: &Principal, text: &str) -> DomainResult<ManifestReport> {
    who.require(Role::Viewer)?;
    let (docs, found) = manifests::check_text(text).map_err(DomainError::Invalid)?;
    Ok(report(docs, found))
}

/// The same checks, plus requests against the largest node of the cluster a Kubernetes
/// target reaches (read with the target's credentials, under its reach rules, within
/// `limit` per request). Using a target's credentials is a responder's right, as "Test
/// connection" is. A cluster that cannot be read is said in the report; the static checks
/// are still answered. The manifests are checked first: text that is not Kubernetes YAML
/// is refused before any cluster is contacted.
pub async fn check_against_cluster(
    pool: &PgPool,
    who: &Principal,
    access: &Access,
    text: &str,
    target_id: i64,
    limit: Duration,
) -> DomainResult<ManifestReport> {
    who.require(Role::Responder)?;
    let (docs, mut found) = manifests::check_text(text).map_err(DomainError::Invalid)?;
    let r = row(pool, target_id).await?;
    if r.kind.as_str() != "kubernetes" {
        return Err(DomainError::invalid(format!(
            "target {:?} is a {} target; manifests are checked against a Kubernetes target",
            r.name, r.kind
        )));
    }
    let secret = open_secret(access.key.as_ref(), &r)?;
    let mut cluster = ClusterNodes {
        target_id: r.id,
        target: r.name.clone(),
        ..Default::default()
    };
    let read = match connect_address(access, &r, secret.as_deref()).await {
        Ok(address) => manifest_probe::read_nodes(&address, limit)
            .await
            .map_err(|e| scrub(&e.to_string(), secret.as_deref())),
        Err(e) => Err(e),
    };
    match read {
        Ok(([cpu, memory], n)) => {
            use probes::kubernetes::rules::{fmt_cpu, fmt_memory};
            cluster.nodes = n;
            cluster.largest_cpu = cpu
                .as_ref()
                .map(|(v, node)| format!("{} ({node})", fmt_cpu(*v)));
            cluster.largest_memory = memory
                .as_ref()
                .map(|(v, node)| format!("{} ({node})", fmt_memory(*v)));
            found.extend(manifests::check_against_nodes(text, &docs, cpu, memory));
            found.sort_by(|a, b| a.line.cmp(&b.line).then(a.severity.cmp(&b.severity)));
        }
        Err(e) => cluster.error = Some(e),
    }
    let mut rep = report(docs, found);
    rep.cluster = Some(cluster);
    Ok(rep)
}

fn report(
    docs: Vec<manifests::Document>,
    found: Vec<manifests::ManifestFinding>,
) -> ManifestReport {
    ManifestReport {
        documents: docs.len(),
        objects: docs
            .iter()
            .map(|d| format!("{}/{}", d.kind, d.name))
            .collect(),
        findings: found
            .into_iter()
            .map(|f| ManifestIssue {
                code: f.code.to_string(),
                severity: f.severity.as_str().to_string(),
                object: f.object,
                container: f.container,
                line: f.line,
                message: f.message,
                fix: f.fix,
            })
            .collect(),
        cluster: None,
    }
}
