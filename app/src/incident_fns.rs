//! Server functions for the incident pages: thin adapters over
//! `domain::services::incidents` (the same services `/api/v1` calls).

use crate::error::AppError;
use domain::incidents::*;
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::services::incidents as svc;

#[server(prefix = "/api/fn", endpoint = "incidents/list")]
pub async fn list_incidents(
    status: Option<String>,
    severity: Option<String>,
    service: Option<String>,
    environment: Option<String>,
    label: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
) -> Result<IncidentPage, AppError> {
    let c = call()?;
    let bad = |m: String| AppError::from(domain::DomainError::Invalid(m));
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let (status, open) = match nonempty(status).as_deref() {
        None => (None, None),
        Some("open") => (None, Some(true)),
        Some("done") => (None, Some(false)),
        Some(s) => (Some(s.parse::<IncidentStatus>().map_err(bad)?), None),
    };
    let severity = match nonempty(severity) {
        Some(s) => Some(s.parse::<Severity>().map_err(bad)?),
        None => None,
    };
    let query = IncidentQuery {
        status,
        open,
        severity,
        service: nonempty(service),
        environment: nonempty(environment),
        label: nonempty(label),
        q: nonempty(q),
        cursor: nonempty(cursor),
        limit: None,
    };
    Ok(svc::list(&c.pool, &c.who, &query).await?)
}

#[server(prefix = "/api/fn", endpoint = "incidents/stats")]
pub async fn incident_stats() -> Result<Vec<SeverityStats>, AppError> {
    let c = call()?;
    Ok(svc::stats(&c.pool, &c.who, &c.stats_cache).await?)
}

#[server(prefix = "/api/fn", endpoint = "incidents/create")]
pub async fn create_incident(
    title: String,
    severity: Severity,
    services: String,
    environment: String,
    summary: String,
) -> Result<String, AppError> {
    let c = call()?;
    let services =
        parse_services(&services).map_err(|m| AppError::from(domain::DomainError::Invalid(m)))?;
    let d = svc::create(
        &c.pool,
        &c.who,
        svc::NewIncident {
            title,
            severity,
            services,
            environment,
            summary,
            labels: Default::default(),
            commander: None,
        },
    )
    .await?;
    leptos_axum::redirect(&format!("/incidents/{}", d.incident.key));
    Ok(d.incident.key)
}

/// What the incident page needs: the incident, and who is looking (to offer "Edit" on
/// their own notes only). Raw markdown that the page never shows is left out, which halves
/// the page's hydration data on long timelines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentPageData {
    pub detail: IncidentDetail,
    pub me: String,
    /// Events matching the kind filter, before windowing.
    pub matching_events: usize,
    /// Events left out of this page (older than the window; pinned ones are always shown).
    pub hidden_events: usize,
    /// Deployments linked to it, or of its services in its environment around its time.
    pub deployments: Vec<domain::deployments::DeploymentNearIncident>,
}

/// How many of the newest events the incident page shows before "Show all".
pub const TIMELINE_WINDOW: usize = 200;

/// One finding of an incident, whole: its page.
#[server(prefix = "/api/fn", endpoint = "incidents/finding-detail")]
pub async fn get_finding(key: String, finding_id: i64) -> Result<Finding, AppError> {
    let c = call()?;
    let mut f = svc::finding(&c.pool, &c.who, &key, finding_id).await?;
    f.remediation.clear();
    Ok(f)
}

#[server(prefix = "/api/fn", endpoint = "incidents/get")]
pub async fn get_incident(
    key: String,
    kind: Option<String>,
    all: Option<bool>,
) -> Result<IncidentPageData, AppError> {
    let c = call()?;
    let mut detail = svc::get(&c.pool, &c.who, &key).await?;
    if let Some(k) = kind.as_deref().filter(|k| !k.is_empty()) {
        let k: TimelineKind = k
            .parse()
            .map_err(|m: String| AppError::from(domain::DomainError::Invalid(m)))?;
        detail.timeline.retain(|e| e.kind == k);
    }
    let matching_events = detail.timeline.len();
    let mut hidden_events = 0;
    if !all.unwrap_or(false) && matching_events > TIMELINE_WINDOW {
        // Keep the newest TIMELINE_WINDOW events and every pinned one (the list is oldest first).
        let cut = matching_events - TIMELINE_WINDOW;
        let mut i = 0;
        detail.timeline.retain(|e| {
            let keep = i >= cut || e.pinned;
            i += 1;
            keep
        });
        hidden_events = matching_events - detail.timeline.len();
    }
    for e in &mut detail.timeline {
        if !(e.kind == TimelineKind::Note && e.actor == c.who.name) {
            e.body.clear();
        }
    }
    // Findings as summaries: their evidence and remediation are on their own pages (a long
    // incident's page stays light; issue 18).
    detail.findings = std::mem::take(&mut detail.findings)
        .into_iter()
        .map(Finding::summary)
        .collect();
    detail.summary.clear();
    let deployments =
        domain::services::deployments::deployments_near_incident(&c.pool, &c.who, &key).await?;
    Ok(IncidentPageData {
        detail,
        me: c.who.name,
        matching_events,
        hidden_events,
        deployments,
    })
}

#[server(prefix = "/api/fn", endpoint = "incidents/status")]
pub async fn set_incident_status(
    key: String,
    status: IncidentStatus,
    reason: String,
) -> Result<(), AppError> {
    let c = call()?;
    let patch = svc::IncidentPatch {
        status: Some(status),
        reason: Some(reason),
        ..Default::default()
    };
    svc::update(&c.pool, &c.who, &key, patch).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/severity")]
pub async fn set_incident_severity(key: String, severity: Severity) -> Result<(), AppError> {
    let c = call()?;
    let patch = svc::IncidentPatch {
        severity: Some(severity),
        ..Default::default()
    };
    svc::update(&c.pool, &c.who, &key, patch).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/roles")]
pub async fn set_incident_roles(
    key: String,
    commander: String,
    scribe: String,
    responders: String,
) -> Result<(), AppError> {
    let c = call()?;
    let responders: Vec<String> = responders
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let patch = svc::IncidentPatch {
        commander: Some(commander),
        scribe: Some(scribe),
        responders: Some(responders),
        ..Default::default()
    };
    svc::update(&c.pool, &c.who, &key, patch).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/note")]
pub async fn add_incident_note(key: String, body: String) -> Result<(), AppError> {
    let c = call()?;
    svc::add_note(&c.pool, &c.who, &key, &body).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/note-edit")]
pub async fn edit_incident_note(event_id: i64, body: String) -> Result<(), AppError> {
    let c = call()?;
    svc::edit_note(&c.pool, &c.who, event_id, &body).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/pin")]
pub async fn pin_incident_event(event_id: i64, pinned: bool) -> Result<(), AppError> {
    let c = call()?;
    svc::set_pinned(&c.pool, &c.who, event_id, pinned).await?;
    Ok(())
}

/// Renders markdown exactly as a saved note will be rendered (sanitized).
#[server(prefix = "/api/fn", endpoint = "markdown/preview")]
pub async fn preview_markdown(body: String) -> Result<String, AppError> {
    let _ = call()?;
    if body.chars().count() > limits::NOTE_MAX {
        return Err(domain::DomainError::invalid(format!(
            "the note is too long; the limit is {} characters",
            limits::NOTE_MAX
        ))
        .into());
    }
    Ok(domain::markdown::render(&body))
}

#[server(prefix = "/api/fn", endpoint = "incidents/finding")]
pub async fn add_incident_finding(
    key: String,
    code: String,
    severity: FindingSeverity,
    title: String,
    facts: String,
    command: String,
    remediation: String,
) -> Result<(), AppError> {
    let c = call()?;
    let facts = facts
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(':') {
            Some((n, v)) => EvidenceFact {
                name: n.trim().into(),
                value: v.trim().into(),
            },
            None => EvidenceFact {
                name: l.trim().into(),
                value: String::new(),
            },
        })
        .collect();
    let f = svc::NewFinding {
        code: code.trim().to_string(),
        severity,
        title,
        evidence: Evidence {
            facts,
            command: Some(command).filter(|c| !c.trim().is_empty()),
            excerpt: None,
            tables: vec![],
            charts: vec![],
        },
        remediation,
        doc_link: None,
        source: None,
    };
    svc::add_finding(&c.pool, &c.who, &key, f).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "findings/status")]
pub async fn set_finding_status(
    finding_id: i64,
    status: FindingStatus,
    reason: String,
) -> Result<(), AppError> {
    let c = call()?;
    svc::update_finding(&c.pool, &c.who, finding_id, status, Some(&reason)).await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/action-item")]
pub async fn add_action_item(
    key: String,
    title: String,
    owner: String,
    due_date: String,
) -> Result<(), AppError> {
    let c = call()?;
    let due = match due_date.trim() {
        "" => None,
        d => Some(
            time::Date::parse(
                d,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| domain::DomainError::invalid("the due date looks like 2026-12-31"))?,
        ),
    };
    svc::add_action_item(
        &c.pool,
        &c.who,
        &key,
        svc::NewActionItem {
            title,
            owner: Some(owner),
            due_date: due,
        },
    )
    .await?;
    Ok(())
}

#[server(prefix = "/api/fn", endpoint = "incidents/action-item-status")]
pub async fn set_action_item_status(
    key: String,
    item_id: i64,
    status: ActionItemStatus,
) -> Result<(), AppError> {
    let c = call()?;
    svc::set_action_item_status(&c.pool, &c.who, &key, item_id, status).await?;
    Ok(())
}
