//! Kubernetes manifest checks: pure, read nothing, store nothing; any signed-in person may
//! run them (pasting YAML into a page is not a privilege).

use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::manifests::{ManifestIssue, ManifestReport};
use probes::kubernetes::manifests;

pub fn check(who: &Principal, text: &str) -> DomainResult<ManifestReport> {
    who.require(Role::Viewer)?;
    let (docs, found) = manifests::check_text(text).map_err(DomainError::Invalid)?;
    Ok(ManifestReport {
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
    })
}
