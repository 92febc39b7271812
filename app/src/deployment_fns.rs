//! Server functions for the Deployments page (adapters over `domain::services::deployments`).

use crate::error::AppError;
use domain::deployments::{Deployment, TemplateSummary};
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
