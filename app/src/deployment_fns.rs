//! Server functions for the Deployments page (adapters over `domain::services::deployments`).

use crate::error::AppError;
use domain::deployments::{Deployment, DeploymentDetail, TemplateSummary};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::services::deployments as svc;

/// Every checklist template at its newest version.
#[server(prefix = "/api/fn", endpoint = "deployments/templates")]
pub async fn list_templates() -> Result<Vec<TemplateSummary>, AppError> {
    let c = call()?;
    Ok(svc::list_templates(&c.pool, &c.who).await?)
}

/// The newest deployments (50).
#[server(prefix = "/api/fn", endpoint = "deployments/list")]
pub async fn list_deployments() -> Result<Vec<Deployment>, AppError> {
    let c = call()?;
    Ok(svc::list_deployments(&c.pool, &c.who, &Default::default()).await?)
}

/// One deployment with its record (`at`, actor, kind, body), oldest first.
#[server(prefix = "/api/fn", endpoint = "deployments/get")]
pub async fn get_deployment(
    key: String,
) -> Result<
    (
        DeploymentDetail,
        Vec<(time::OffsetDateTime, String, String, String)>,
    ),
    AppError,
> {
    let c = call()?;
    let d = svc::get_deployment(&c.pool, &c.who, &c.approvals, &key).await?;
    let events = svc::deployment_events(&c.pool, &c.who, &key)
        .await?
        .into_iter()
        .map(|e| (e.at, e.actor, e.kind, e.body))
        .collect();
    Ok((d, events))
}
