//! Server functions for the Deployments pages (adapters over `domain::services::deployments`).
//! The forms post here; without JavaScript the browser is sent back to the page (or to the
//! new deployment / template version), with it the `Enhance` island re-renders the page.
// The form that opens a deployment has eight fields; the code the server-function macro
// generates takes them as arguments.
#![allow(clippy::too_many_arguments)]

use crate::error::AppError;
use domain::deployments::{Deployment, DeploymentDetail, Template, TemplateSummary};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::deployments::DeploymentStatus;
#[cfg(feature = "ssr")]
use domain::services::deployments as svc;

#[cfg(feature = "ssr")]
fn invalid(m: impl Into<String>) -> AppError {
    AppError::from(domain::DomainError::Invalid(m.into()))
}

/// Every checklist template at its newest version.
#[server(prefix = "/api/fn", endpoint = "deployments/templates")]
pub async fn list_templates() -> Result<Vec<TemplateSummary>, AppError> {
    let c = call()?;
    Ok(svc::list_templates(&c.pool, &c.who).await?)
}

/// The deployments list: newest first, filtered, keyset-paged (`before`: a key's number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
    /// The `before` of the next page, when there is one.
    pub next: Option<i64>,
}

/// One page of deployments (50).
#[server(prefix = "/api/fn", endpoint = "deployments/list")]
pub async fn list_deployments(
    service: Option<String>,
    environment: Option<String>,
    status: Option<String>,
    before: Option<i64>,
) -> Result<DeploymentList, AppError> {
    let c = call()?;
    let nonempty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let f = svc::DeploymentFilter {
        service: nonempty(service),
        environment: nonempty(environment),
        status: nonempty(status),
        before,
    };
    let deployments = svc::list_deployments(&c.pool, &c.who, &f).await?;
    let next = (deployments.len() >= svc::LIST_PAGE)
        .then(|| {
            deployments
                .last()
                .and_then(|d| domain::deployments::parse_deployment_key(&d.key))
        })
        .flatten();
    Ok(DeploymentList { deployments, next })
}

/// What the deployment page shows: the deployment, its record, and what the viewer may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentPageData {
    pub detail: DeploymentDetail,
    /// The record (`at`, actor, kind, body), oldest first: the newest
    /// [`RECORD_WINDOW`] unless all were asked for.
    pub events: Vec<(time::OffsetDateTime, String, String, String)>,
    /// Events left out (older than the window).
    pub hidden_events: usize,
    pub me: String,
    /// Responder or more: check items, move the deployment on.
    pub can_work: bool,
    /// Approver or admin signed in as a person (tokens cannot sign).
    pub can_approve: bool,
    /// The incidents opened from it.
    pub incidents: Vec<domain::deployments::LinkedIncident>,
    /// Each item's help, rendered from its markdown (sanitised): `(item id, HTML)`.
    pub help_html: Vec<(String, String)>,
}

/// How many of the newest events the deployment page shows before "Show all".
pub const RECORD_WINDOW: usize = 200;

/// One deployment with its record (the newest [`RECORD_WINDOW`] events unless `all`).
#[server(prefix = "/api/fn", endpoint = "deployments/get")]
pub async fn get_deployment(
    key: String,
    all: Option<bool>,
) -> Result<DeploymentPageData, AppError> {
    let c = call()?;
    let detail = svc::get_deployment(&c.pool, &c.who, &c.approvals, &key).await?;
    let mut events: Vec<_> = svc::deployment_events(&c.pool, &c.who, &key)
        .await?
        .into_iter()
        .map(|e| (e.at, e.actor, e.kind, e.body))
        .collect();
    let hidden_events = if all.unwrap_or(false) {
        0
    } else {
        let cut = events.len().saturating_sub(RECORD_WINDOW);
        events.drain(..cut);
        cut
    };
    let help_html = detail
        .items
        .iter()
        .filter(|i| !i.help.trim().is_empty())
        .map(|i| (i.item_id.clone(), domain::markdown::render(&i.help)))
        .collect();
    Ok(DeploymentPageData {
        detail,
        events,
        hidden_events,
        me: c.who.name.clone(),
        can_work: c.who.role.allows(domain::Role::Responder),
        can_approve: c.who.role.allows(domain::Role::Approver) && c.who.user_id.is_some(),
        incidents: svc::incidents_of(&c.pool, &c.who, &key).await?,
        help_html,
    })
}

/// Opens an incident for the deployment (its failing items as findings, linked both ways)
/// and goes to it; an open linked incident is returned instead of a second one.
#[server(prefix = "/api/fn", endpoint = "deployments/open-incident")]
pub async fn open_deployment_incident(key: String, severity: String) -> Result<String, AppError> {
    let c = call()?;
    let severity: domain::incidents::Severity = severity.parse().map_err(invalid)?;
    let (incident, _) = svc::open_incident(&c.pool, &c.who, &key, severity).await?;
    leptos_axum::redirect(&format!("/incidents/{incident}"));
    Ok(incident)
}

/// `binding: target` lines (a target's name or a label selector) into the bindings map.
pub fn parse_bindings(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (b, t) = line.split_once(':').ok_or_else(|| {
            format!(
                "target bindings, line {}: write binding: target name or label selector (e.g. prometheus: service=checkout, environment=production)",
                n + 1
            )
        })?;
        if out
            .insert(b.trim().to_string(), t.trim().to_string())
            .is_some()
        {
            return Err(format!(
                "target bindings, line {}: {} is bound twice",
                n + 1,
                b.trim()
            ));
        }
    }
    Ok(out)
}

/// Opens a deployment from the form; goes to its page.
#[server(prefix = "/api/fn", endpoint = "deployments/create")]
pub async fn create_deployment(
    template: String,
    service: String,
    environment: String,
    version: String,
    description: String,
    commit: String,
    pipeline_url: String,
    targets: String,
    #[server(default)] parameters: std::collections::BTreeMap<String, String>,
) -> Result<String, AppError> {
    let c = call()?;
    let targets = parse_bindings(&targets).map_err(invalid)?;
    let opt = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    let d = svc::create_deployment(
        &c.pool,
        &c.who,
        &c.approvals,
        svc::NewDeployment {
            service,
            environment,
            version,
            template,
            template_version: None,
            description,
            commit: opt(commit),
            pipeline_url: opt(pipeline_url),
            targets,
            parameters: parameters
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        },
    )
    .await?;
    leptos_axum::redirect(&format!("/deployments/{}", d.deployment.key));
    Ok(d.deployment.key)
}

/// Check (with a note), uncheck, re-run or waive (with a reason) an item.
#[server(prefix = "/api/fn", endpoint = "deployments/item")]
pub async fn act_on_deployment_item(
    key: String,
    item: String,
    action: String,
    note: Option<String>,
) -> Result<(), AppError> {
    let c = call()?;
    let action = match action.as_str() {
        "check" => svc::ItemAction::Check { note },
        "uncheck" => svc::ItemAction::Uncheck,
        "rerun" => svc::ItemAction::Rerun,
        "waive" => svc::ItemAction::Waive {
            reason: note.unwrap_or_default(),
        },
        a => {
            return Err(invalid(format!(
                "unknown action {a:?}: check, uncheck, rerun or waive"
            )));
        }
    };
    svc::act_on_item(&c.pool, &c.who, &c.approvals, &key, &item, action).await?;
    Ok(())
}

/// Move the deployment on (or cancel / roll back it, with a reason).
#[server(prefix = "/api/fn", endpoint = "deployments/transition")]
pub async fn deployment_transition(
    key: String,
    to: String,
    reason: Option<String>,
) -> Result<(), AppError> {
    let c = call()?;
    let to =
        DeploymentStatus::parse(&to).ok_or_else(|| invalid(format!("unknown status {to:?}")))?;
    svc::transition(
        &c.pool,
        &c.who,
        &c.approvals,
        &key,
        to,
        reason.filter(|r| !r.trim().is_empty()),
    )
    .await?;
    Ok(())
}

/// Sign: approve, or reject with a reason.
#[server(prefix = "/api/fn", endpoint = "deployments/decide")]
pub async fn deployment_decide(
    key: String,
    decision: String,
    reason: Option<String>,
) -> Result<(), AppError> {
    let c = call()?;
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        d => {
            return Err(invalid(format!(
                "unknown decision {d:?}: approve or reject"
            )));
        }
    };
    svc::decide(
        &c.pool,
        &c.who,
        &c.approvals,
        &key,
        approve,
        reason.filter(|r| !r.trim().is_empty()),
    )
    .await?;
    Ok(())
}

/// A template version and the list of its versions (`(version, by, at)`, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplatePageData {
    pub template: Template,
    pub versions: Vec<(i32, String, time::OffsetDateTime)>,
    /// The version compared with, and the line diff from it to this one.
    pub diff: Option<(i32, Vec<domain::deployments::DiffLine>)>,
    pub can_edit: bool,
}

/// A template at a version (its newest by default), optionally diffed against another.
#[server(prefix = "/api/fn", endpoint = "deployments/template")]
pub async fn get_template(
    id: String,
    version: Option<i32>,
    against: Option<i32>,
) -> Result<TemplatePageData, AppError> {
    let c = call()?;
    let template = svc::get_template(&c.pool, &c.who, &id, version).await?;
    let versions = svc::template_versions(&c.pool, &c.who, &id).await?;
    let diff = match against {
        Some(v) => {
            let old = svc::get_template(&c.pool, &c.who, &id, Some(v)).await?;
            Some((v, domain::deployments::line_diff(&old.yaml, &template.yaml)))
        }
        None => None,
    };
    Ok(TemplatePageData {
        template,
        versions,
        diff,
        can_edit: c.who.role.allows(domain::Role::Approver),
    })
}

/// Saves a template: a new one (`edit_of` empty) or a new version of `edit_of`. Goes to the
/// version saved.
#[server(prefix = "/api/fn", endpoint = "deployments/template-save")]
pub async fn save_template(edit_of: String, yaml: String) -> Result<String, AppError> {
    let c = call()?;
    let edit_of = Some(edit_of.trim()).filter(|s| !s.is_empty());
    let t = svc::save_template(&c.pool, &c.who, &c.meta, edit_of, &yaml).await?;
    leptos_axum::redirect(&format!("/deployments/templates/{}", t.template_id));
    Ok(t.template_id)
}

/// The templates a finding's suggested item may be added to: every template for those who
/// may edit templates (approvers), none for the others (the form is not shown to them).
#[server(prefix = "/api/fn", endpoint = "deployments/templates-to-add-to")]
pub async fn templates_to_add_to() -> Result<Vec<TemplateSummary>, AppError> {
    let c = call()?;
    if !c.who.role.allows(domain::Role::Approver) {
        return Ok(vec![]);
    }
    Ok(svc::list_templates(&c.pool, &c.who).await?)
}

/// Adds the checklist item a finding suggests to a template (a new version; approvers) and
/// goes to that version, diffed against the one before: the diff is the item.
#[server(prefix = "/api/fn", endpoint = "deployments/template-add-item")]
pub async fn add_template_item(
    template_id: String,
    section: String,
    item: String,
) -> Result<String, AppError> {
    let c = call()?;
    let t = svc::add_template_item(&c.pool, &c.who, &c.meta, &template_id, &section, &item).await?;
    leptos_axum::redirect(&format!(
        "/deployments/templates/{}?version={}&against={}#diff",
        t.template_id,
        t.version,
        t.version - 1
    ));
    Ok(t.template_id)
}
