//! Server functions for probe runs (adapters over `domain::services::probe_runs`).

use crate::error::AppError;
use domain::probe_runs::{ProbeInfo, ProbeRun, ProbeRunDetail};
use leptos::prelude::*;
use std::collections::BTreeMap;

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::services::probe_runs as svc;

#[server(prefix = "/api/fn", endpoint = "probes/catalogue")]
pub async fn probe_catalogue() -> Result<Vec<ProbeInfo>, AppError> {
    let c = call()?;
    c.who.require(domain::Role::Viewer)?;
    Ok(svc::catalogue())
}

/// Starts a run. `choice` is `<target id>:<probe>`; parameter fields are named
/// `params[<probe>.<name>]` so one form can carry the fields of several probes (a page
/// without JavaScript shows them all) and only the chosen probe's are used.
#[server(prefix = "/api/fn", endpoint = "probe-runs/start")]
pub async fn start_probe_run(
    choice: String,
    #[server(default)] params: BTreeMap<String, String>,
    #[server(default)] incident_key: Option<String>,
) -> Result<ProbeRun, AppError> {
    let c = call()?;
    let (target, probe) = choice
        .split_once(':')
        .and_then(|(t, p)| {
            t.trim()
                .parse::<i64>()
                .ok()
                .map(|t| (t, p.trim().to_string()))
        })
        .ok_or_else(|| domain::DomainError::invalid("choose a target and a probe"))?;
    let prefix = format!("{probe}.");
    let params = params
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&prefix)
                .map(|n| (n.to_string(), svc::ParamValue::Text(v)))
        })
        .collect();
    Ok(svc::start(
        &c.pool,
        &c.runner,
        &c.access,
        &c.who,
        target,
        svc::StartRun {
            probe,
            params,
            incident_key: incident_key.filter(|k| !k.trim().is_empty()),
        },
    )
    .await?)
}

#[server(prefix = "/api/fn", endpoint = "probe-runs/get")]
pub async fn get_probe_run(run_id: i64) -> Result<ProbeRunDetail, AppError> {
    let c = call()?;
    Ok(svc::get_run(&c.pool, &c.who, run_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "probe-runs/cancel")]
pub async fn cancel_probe_run(run_id: i64) -> Result<ProbeRun, AppError> {
    let c = call()?;
    Ok(svc::cancel(&c.pool, &c.runner, &c.who, run_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "probe-runs/attach")]
pub async fn attach_probe_run(run_id: i64, incident_key: String) -> Result<ProbeRun, AppError> {
    let c = call()?;
    Ok(svc::attach(&c.pool, &c.who, run_id, incident_key.trim()).await?)
}

#[server(prefix = "/api/fn", endpoint = "probe-runs/of-target")]
pub async fn target_probe_runs(target_id: i64) -> Result<Vec<ProbeRun>, AppError> {
    let c = call()?;
    Ok(svc::runs_of_target(&c.pool, &c.who, target_id, 50).await?)
}

#[server(prefix = "/api/fn", endpoint = "probe-runs/of-incident")]
pub async fn incident_probe_runs(key: String) -> Result<Vec<ProbeRun>, AppError> {
    let c = call()?;
    Ok(svc::runs_of_incident(&c.pool, &c.who, &key).await?)
}
