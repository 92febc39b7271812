//! Incident operations: open, read, list, change (status, severity, roles, summary, time
//! corrections), notes, findings, action items, the postmortem, and the Alertmanager webhook.
//! Every change writes its timeline event in the same transaction.

use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::incidents::*;
use crate::markdown;
use crate::storage::incidents as store;
use serde::Deserialize;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use time::OffsetDateTime;

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::Invalid(m.into())
}

pub(crate) async fn find(db: &mut PgConnection, key: &str) -> DomainResult<store::IncidentRow> {
    let n = parse_incident_key(key).ok_or_else(|| {
        DomainError::not_found(format!("no incident {key:?} (keys look like INC-42)"))
    })?;
    store::by_number(&mut *db, n)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no incident {}", incident_key(n))))
}

fn actor_of(who: &Principal, row: &store::IncidentRow) -> Actor {
    Actor {
        role: who.role,
        is_commander: who.user_id.is_some() && who.user_id == row.commander_id,
    }
}

pub(crate) async fn event(
    db: &mut PgConnection,
    incident_id: i64,
    who: &Principal,
    kind: TimelineKind,
    body: &str,
    details: serde_json::Value,
) -> DomainResult<i64> {
    Ok(store::insert_event(
        &mut *db,
        store::NewEvent {
            incident_id,
            actor: &who.name,
            actor_id: who.user_id,
            kind,
            body,
            details,
        },
    )
    .await?)
}

fn check_len(what: &str, s: &str, max: usize) -> DomainResult<()> {
    if s.chars().count() > max {
        return Err(invalid(format!(
            "{what} is too long: at most {max} characters"
        )));
    }
    Ok(())
}

/// What a new incident needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub title: String,
    pub severity: Severity,
    pub services: Vec<String>,
    pub environment: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Username; defaults to the creator when the creator is a user.
    #[serde(default)]
    pub commander: Option<String>,
}

pub async fn create(
    pool: &PgPool,
    who: &Principal,
    new: NewIncident,
) -> DomainResult<IncidentDetail> {
    who.require(Role::Responder)?;
    let title = new.title.trim();
    if title.is_empty() {
        return Err(invalid("an incident needs a title"));
    }
    check_len("the title", title, limits::TITLE_MAX)?;
    check_len("the summary", &new.summary, limits::SUMMARY_MAX)?;
    // Each entry is one name (the page's comma-separated field is split before this); a
    // blank or malformed entry, or more than the limit, is refused rather than dropped.
    if new.services.len() > crate::incidents::limits::SERVICES_MAX {
        return Err(invalid(format!(
            "at most {} services",
            crate::incidents::limits::SERVICES_MAX
        )));
    }
    for s in &new.services {
        check_name("service", s).map_err(invalid)?;
    }
    let services = parse_services(&new.services.join(",")).map_err(invalid)?;
    let environment = new.environment.trim();
    check_name("environment", environment).map_err(invalid)?;
    let labels = super::labels_json(&new.labels)?;
    let mut tx = pool.begin().await?;
    let (_, number) = create_in(&mut tx, who, &new, title, &services, environment, labels).await?;
    tx.commit().await?;
    get(pool, who, &incident_key(number)).await
}

/// Opens an incident inside the caller's transaction (checked by [`create`] or the caller);
/// returns its id and number.
pub(crate) async fn create_in(
    tx: &mut PgConnection,
    who: &Principal,
    new: &NewIncident,
    title: &str,
    services: &[String],
    environment: &str,
    labels: serde_json::Value,
) -> DomainResult<(i64, i64)> {
    let commander_id = match new
        .commander
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(name) => Some(resolve_user(&mut *tx, name).await?),
        None => who.user_id,
    };
    let (id, number) = store::insert(
        &mut *tx,
        store::NewIncidentRow {
            title,
            summary: &new.summary,
            severity: new.severity,
            services,
            environment,
            labels,
            commander_id,
            created_by: &who.name,
            created_by_id: who.user_id,
            alert_group_key: None,
            detected_at: None,
        },
    )
    .await?;
    event(
        &mut *tx,
        id,
        who,
        TimelineKind::Created,
        &format!(
            "Opened {} as {}: {title}",
            incident_key(number),
            new.severity
        ),
        serde_json::json!({ "severity": new.severity, "services": services }),
    )
    .await?;
    Ok((id, number))
}

async fn resolve_user(db: &mut PgConnection, name: &str) -> DomainResult<i64> {
    resolve_users(db, std::slice::from_ref(&name.to_string()))
        .await?
        .first()
        .copied()
        .ok_or_else(|| invalid(format!("unknown or disabled user: {name}")))
}

async fn resolve_users(db: &mut PgConnection, names: &[String]) -> DomainResult<Vec<i64>> {
    match store::user_ids(&mut *db, names).await? {
        Ok(ids) => Ok(ids),
        Err(missing) => Err(invalid(format!(
            "unknown or disabled user(s): {}",
            missing.join(", ")
        ))),
    }
}

pub async fn get(pool: &PgPool, who: &Principal, key: &str) -> DomainResult<IncidentDetail> {
    who.require(Role::Viewer)?;
    let mut conn = pool.acquire().await?;
    let row = find(&mut conn, key).await?;
    detail(&mut conn, row).await
}

/// One timeline event as shown: a note's current text is its latest revision, and the
/// earlier versions (the original first) form its history. `revs` is oldest first.
fn event_view(e: store::EventRow, revs: &[&store::RevisionRow]) -> TimelineEvent {
    let (body, body_html, history) = match revs.split_last() {
        None => (e.body, e.body_html, vec![]),
        Some((latest, earlier)) => {
            let mut history = vec![NoteRevision {
                body: e.body,
                edited_at: e.at,
                edited_by: e.actor.clone(),
            }];
            history.extend(earlier.iter().map(|r| NoteRevision {
                body: r.body.clone(),
                edited_at: r.edited_at,
                edited_by: r.edited_by.clone(),
            }));
            (latest.body.clone(), latest.body_html.clone(), history)
        }
    };
    TimelineEvent {
        id: e.id,
        at: e.at,
        actor: e.actor,
        kind: e.kind,
        body_html,
        body,
        details: if e.details == serde_json::json!({}) {
            String::new()
        } else {
            e.details.to_string()
        },
        pinned: e.pinned,
        history,
    }
}

async fn detail(db: &mut PgConnection, row: store::IncidentRow) -> DomainResult<IncidentDetail> {
    let events = store::events(&mut *db, row.id).await?;
    let revisions = store::revisions(&mut *db, row.id).await?;
    let findings = store::findings(&mut *db, row.id).await?;
    let items = store::action_items(&mut *db, row.id).await?;
    let responders = store::usernames(&mut *db, &row.responder_ids).await?;
    let mut by_event: std::collections::HashMap<i64, Vec<&store::RevisionRow>> =
        std::collections::HashMap::new();
    for r in &revisions {
        by_event.entry(r.event_id).or_default().push(r);
    }
    let timeline = events
        .into_iter()
        .map(|e| {
            let revs = by_event.remove(&e.id).unwrap_or_default();
            event_view(e, &revs)
        })
        .collect();
    Ok(IncidentDetail {
        incident: row.summary_view(),
        summary_html: markdown::render(&row.summary),
        summary: row.summary.clone(),
        scribe: row.scribe.clone(),
        responders,
        created_by: row.created_by.clone(),
        timeline,
        findings: findings.into_iter().map(finding_view).collect(),
        action_items: items.into_iter().map(|a| a.view()).collect(),
    })
}

pub fn finding_view(f: store::FindingRow) -> Finding {
    let evidence: Evidence = serde_json::from_value(f.evidence).unwrap_or_default();
    Finding {
        id: f.id,
        incident_key: f.incident_number.map(incident_key),
        code: f.code,
        source: FindingSource {
            kind: f.source_kind,
            probe: f.source_probe,
            target: f.source_target,
        },
        severity: f.severity,
        title: f.title,
        evidence,
        remediation_html: f.remediation_html,
        commands: f.commands,
        remediation: f.remediation,
        doc_link: f.doc_link,
        status: f.status,
        status_reason: f.status_reason,
        created_at: f.created_at,
        created_by: f.created_by,
        updated_at: f.updated_at,
        updated_by: f.updated_by,
        detail_omitted: false,
    }
}

/// One finding of an incident, whole (its page: evidence and remediation).
pub async fn finding(pool: &PgPool, who: &Principal, key: &str, id: i64) -> DomainResult<Finding> {
    who.require(Role::Viewer)?;
    let mut conn = pool.acquire().await?;
    let inc = find(&mut conn, key).await?;
    match store::finding(&mut *conn, id).await? {
        Some(f) if f.incident_id == Some(inc.id) => Ok(finding_view(f)),
        _ => Err(DomainError::not_found(format!("{key} has no finding {id}"))),
    }
}

pub async fn list(pool: &PgPool, who: &Principal, q: &IncidentQuery) -> DomainResult<IncidentPage> {
    who.require(Role::Viewer)?;
    if q.limit.is_some_and(|l| l == 0 || l > store::MAX_PAGE) {
        return Err(invalid(format!(
            "limit must be between 1 and {}",
            store::MAX_PAGE
        )));
    }
    if let Some(l) = q.label.as_deref().filter(|l| !l.is_empty())
        && !l.contains('=')
    {
        return Err(invalid("a label filter looks like key=value"));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            Some(store::decode_cursor(c).ok_or_else(|| invalid("the page cursor is malformed"))?)
        }
        None => None,
    };
    let (rows, more) = store::list(pool, q, cursor).await?;
    let next_cursor = if more {
        rows.last().map(store::encode_cursor)
    } else {
        None
    };
    Ok(IncidentPage {
        incidents: rows.iter().map(|r| r.summary_view()).collect(),
        next_cursor,
    })
}

/// Caches the mean times (a scan of 90 days of incidents) for a minute; open counts are
/// always live. One per process: the means of the last 30/90 days do not move in a minute.
#[derive(Debug)]
pub struct StatsCache {
    ttl: std::time::Duration,
    means: std::sync::Mutex<Option<(std::time::Instant, Vec<MeanTimes>)>>,
}

impl StatsCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            means: std::sync::Mutex::new(None),
        }
    }
}

pub async fn stats(
    pool: &PgPool,
    who: &Principal,
    cache: &StatsCache,
) -> DomainResult<Vec<SeverityStats>> {
    who.require(Role::Viewer)?;
    let cached = cache.means.lock().ok().and_then(|g| {
        g.as_ref()
            .filter(|(at, _)| at.elapsed() < cache.ttl)
            .map(|(_, m)| m.clone())
    });
    let means = match cached {
        Some(m) => m,
        None => {
            let m = store::mean_times(pool).await?;
            if let Ok(mut g) = cache.means.lock() {
                *g = Some((std::time::Instant::now(), m.clone()));
            }
            m
        }
    };
    let open = store::open_counts(pool).await?;
    Ok(Severity::ALL
        .iter()
        .map(|sev| SeverityStats {
            open: open
                .iter()
                .find(|(s, _)| s == sev)
                .map(|(_, n)| *n)
                .unwrap_or(0),
            means: means
                .iter()
                .find(|m| m.severity == *sev)
                .copied()
                .unwrap_or(MeanTimes {
                    severity: *sev,
                    mtta_30d: None,
                    mttm_30d: None,
                    mttr_30d: None,
                    mtta_90d: None,
                    mttm_90d: None,
                    mttr_90d: None,
                }),
        })
        .collect())
}

/// Corrections of stage times by the commander (or an approver/admin).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeCorrections {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub detected_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub mitigated_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

/// A change to an incident; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    #[serde(default, deserialize_with = "crate::not_null")]
    pub status: Option<IncidentStatus>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub severity: Option<Severity>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub summary: Option<String>,
    /// Usernames; an empty string clears.
    #[serde(default, deserialize_with = "crate::not_null")]
    pub commander: Option<String>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub scribe: Option<String>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub responders: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub corrections: Option<TimeCorrections>,
    /// Why (recorded with status changes and corrections).
    #[serde(default, deserialize_with = "crate::not_null")]
    pub reason: Option<String>,
}

/// Applies a patch. Everything is validated before anything is written; an invalid
/// transition is a `Conflict` (409) carrying the reason.
pub async fn update(
    pool: &PgPool,
    who: &Principal,
    key: &str,
    p: IncidentPatch,
) -> DomainResult<IncidentDetail> {
    who.require(Role::Responder)?;
    let mut tx = pool.begin().await?;
    let original = find(&mut tx, key).await?;
    store::lock(&mut *tx, original.id).await?;
    let original = store::by_id(&mut *tx, original.id)
        .await?
        .ok_or_else(|| DomainError::not_found(key.to_string()))?;
    let actor = actor_of(who, &original);
    let mut row = original.clone();
    let now = OffsetDateTime::now_utc();
    let mut events: Vec<(TimelineKind, String, serde_json::Value)> = vec![];
    let reason = p.reason.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(r) = reason {
        check_len("the reason", r, 2000)?;
    }

    if let Some(title) = p.title.as_deref().map(str::trim) {
        if title.is_empty() {
            return Err(invalid("an incident needs a title"));
        }
        check_len("the title", title, limits::TITLE_MAX)?;
        if title != row.title {
            events.push((
                TimelineKind::SummaryChanged,
                format!("Title changed to “{title}”"),
                serde_json::json!({ "field": "title", "from": row.title, "to": title }),
            ));
            row.title = title.to_string();
        }
    }
    if let Some(summary) = &p.summary {
        check_len("the summary", summary, limits::SUMMARY_MAX)?;
        if *summary != row.summary {
            events.push((
                TimelineKind::SummaryChanged,
                "Summary updated".into(),
                serde_json::json!({ "field": "summary" }),
            ));
            row.summary = summary.clone();
        }
    }
    if let Some(sev) = p.severity
        && sev != row.severity
    {
        if !actor.can_steer() {
            return Err(DomainError::forbidden(
                "only the commander, an approver or an admin can change the severity",
            ));
        }
        events.push((
            TimelineKind::SeverityChange,
            format!("Severity {} → {sev}", row.severity),
            serde_json::json!({ "from": row.severity, "to": sev }),
        ));
        row.severity = sev;
    }
    let roles_change = p.commander.is_some() || p.scribe.is_some() || p.responders.is_some();
    if roles_change {
        if !actor.can_steer() {
            return Err(DomainError::forbidden(
                "only the commander, an approver or an admin can change roles",
            ));
        }
        for (role, label, wanted) in [
            ("commander", "Commander", &p.commander),
            ("scribe", "Scribe", &p.scribe),
        ] {
            let Some(name) = wanted.as_deref().map(str::trim) else {
                continue;
            };
            let id = if name.is_empty() {
                None
            } else {
                Some(resolve_user(&mut tx, name).await?)
            };
            let (slot, current) = if role == "commander" {
                (&mut row.commander_id, row.commander.clone())
            } else {
                (&mut row.scribe_id, row.scribe.clone())
            };
            if id != *slot {
                events.push((
                    TimelineKind::RoleChange,
                    if name.is_empty() {
                        format!("{label} cleared")
                    } else {
                        format!("{label}: {name}")
                    },
                    serde_json::json!({ "role": role, "from": current, "to": name }),
                ));
                *slot = id;
            }
        }
        if let Some(names) = &p.responders {
            let names: Vec<String> = names
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if names.len() > 50 {
                return Err(invalid("at most 50 responders"));
            }
            let ids = resolve_users(&mut tx, &names).await?;
            if ids != row.responder_ids {
                events.push((
                    TimelineKind::RoleChange,
                    format!(
                        "Responders: {}",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ),
                    serde_json::json!({ "role": "responders", "to": names }),
                ));
                row.responder_ids = ids;
            }
        }
    }
    if let Some(to) = p.status
        && to != row.status
    {
        let stamps = check_transition(row.status, to, actor).map_err(|e| match e {
            TransitionError::NotAllowed(m) => DomainError::Conflict(m),
            TransitionError::Forbidden(m) => DomainError::Forbidden(m),
        })?;
        let from = row.status;
        if stamps.acknowledged && row.acknowledged_at.is_none() {
            row.acknowledged_at = Some(now);
        }
        if stamps.mitigated && row.mitigated_at.is_none() {
            row.mitigated_at = Some(now);
        }
        if stamps.resolved && row.resolved_at.is_none() {
            row.resolved_at = Some(now);
        }
        if stamps.closed && row.closed_at.is_none() {
            row.closed_at = Some(now);
        }
        // Re-opening clears the later stages' times: the incident is live again.
        if from == IncidentStatus::Closed
            || (from == IncidentStatus::Resolved && to == IncidentStatus::Investigating)
        {
            row.closed_at = None;
            row.resolved_at = None;
            row.mitigated_at = None;
        }
        if from == IncidentStatus::Mitigated && to == IncidentStatus::Investigating {
            row.mitigated_at = None;
        }
        let reopened = matches!(from, IncidentStatus::Closed | IncidentStatus::Cancelled);
        events.push((
            TimelineKind::StatusChange,
            format!(
                "{} {from} → {to}{}",
                if reopened { "Re-opened:" } else { "Status" },
                reason.map(|r| format!(" — {r}")).unwrap_or_default()
            ),
            serde_json::json!({ "from": from, "to": to, "reason": reason, "reopen": reopened }),
        ));
        row.status = to;
    }
    if let Some(c) = &p.corrections {
        if !actor.can_steer() {
            return Err(DomainError::forbidden(
                "only the commander, an approver or an admin can correct stage times",
            ));
        }
        let mut changed = vec![];
        if let Some(t) = c.detected_at {
            changed.push(("detected_at", Some(row.detected_at), t));
            row.detected_at = t;
        }
        for (name, val, slot) in [
            (
                "acknowledged_at",
                c.acknowledged_at,
                &mut row.acknowledged_at,
            ),
            ("mitigated_at", c.mitigated_at, &mut row.mitigated_at),
            ("resolved_at", c.resolved_at, &mut row.resolved_at),
            ("closed_at", c.closed_at, &mut row.closed_at),
        ] {
            if let Some(t) = val {
                if slot.is_none() {
                    return Err(invalid(format!(
                        "{name} is not set yet: the incident has not reached that stage"
                    )));
                }
                changed.push((name, *slot, t));
                *slot = Some(t);
            }
        }
        row.times().check(now).map_err(invalid)?;
        for (name, old, new) in changed {
            if old == Some(new) {
                continue;
            }
            events.push((
                TimelineKind::TimestampCorrected,
                format!(
                    "Corrected {name}{}",
                    reason.map(|r| format!(" — {r}")).unwrap_or_default()
                ),
                serde_json::json!({ "field": name, "from": old.map(fmt_time), "to": fmt_time(new), "reason": reason }),
            ));
        }
    }
    row.times()
        .check(now + time::Duration::minutes(1))
        .map_err(invalid)?;
    if events.is_empty() {
        if p.status.is_none()
            && p.severity.is_none()
            && p.title.is_none()
            && p.summary.is_none()
            && !roles_change
            && p.corrections.is_none()
        {
            return Err(invalid("nothing to change"));
        }
        tx.rollback().await?;
        return get(pool, who, key).await;
    }
    store::save(&mut *tx, &row).await?;
    for (kind, body, details) in events {
        event(&mut tx, row.id, who, kind, &body, details).await?;
    }
    tx.commit().await?;
    get(pool, who, key).await
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub async fn add_note(
    pool: &PgPool,
    who: &Principal,
    key: &str,
    body: &str,
) -> DomainResult<TimelineEvent> {
    who.require(Role::Responder)?;
    let body = body.trim();
    if body.is_empty() {
        return Err(invalid("a note cannot be empty"));
    }
    if body.chars().count() > limits::NOTE_MAX {
        return Err(invalid(format!(
            "the note is too long ({} characters); the limit is {}",
            body.chars().count(),
            limits::NOTE_MAX
        )));
    }
    let mut tx = pool.begin().await?;
    let row = find(&mut tx, key).await?;
    let id = event(
        &mut tx,
        row.id,
        who,
        TimelineKind::Note,
        body,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    timeline_event(pool, id).await
}

/// One event, read on its own (not the whole incident).
async fn timeline_event(pool: &PgPool, event_id: i64) -> DomainResult<TimelineEvent> {
    let e = store::event(pool, event_id)
        .await?
        .ok_or_else(|| DomainError::internal("event vanished"))?;
    let revs = store::event_revisions(pool, event_id).await?;
    Ok(event_view(e, &revs.iter().collect::<Vec<_>>()))
}

/// Only a note's author may edit it; the previous text stays in the history.
pub async fn edit_note(
    pool: &PgPool,
    who: &Principal,
    event_id: i64,
    body: &str,
) -> DomainResult<TimelineEvent> {
    who.require(Role::Responder)?;
    let body = body.trim();
    if body.is_empty() {
        return Err(invalid("a note cannot be empty"));
    }
    if body.chars().count() > limits::NOTE_MAX {
        return Err(invalid(format!(
            "the note is too long; the limit is {} characters",
            limits::NOTE_MAX
        )));
    }
    let ev = store::event(pool, event_id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no timeline event {event_id}")))?;
    if ev.kind != TimelineKind::Note {
        return Err(DomainError::conflict(
            "only notes can be edited; other events are a permanent record",
        ));
    }
    let same_author = match (who.user_id, ev.actor_id) {
        (Some(a), Some(b)) => a == b,
        _ => who.name == ev.actor,
    };
    if !same_author {
        return Err(DomainError::forbidden(
            "only the author of a note can edit it",
        ));
    }
    store::insert_revision(pool, event_id, body, &who.name).await?;
    timeline_event(pool, event_id).await
}

pub async fn set_pinned(
    pool: &PgPool,
    who: &Principal,
    event_id: i64,
    pinned: bool,
) -> DomainResult<TimelineEvent> {
    who.require(Role::Responder)?;
    if store::set_pinned(pool, event_id, pinned).await? == 0 {
        return Err(DomainError::not_found(format!(
            "no timeline event {event_id}"
        )));
    }
    timeline_event(pool, event_id).await
}

/// A finding to record (by hand, or later by a probe).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFinding {
    pub code: String,
    pub severity: FindingSeverity,
    pub title: String,
    #[serde(default)]
    pub evidence: Evidence,
    #[serde(default)]
    pub remediation: String,
    #[serde(default)]
    pub doc_link: Option<String>,
    /// Set by the probe framework; `None` for findings entered by hand.
    #[serde(skip)]
    pub source: Option<(String, String)>,
}

pub fn validate_finding(f: &NewFinding) -> DomainResult<()> {
    let code_ok = f.code.len() >= 3
        && f.code.len() <= 80
        && f.code.starts_with(|c: char| c.is_ascii_uppercase())
        && f.code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !code_ok {
        return Err(invalid(format!(
            "invalid finding code {:?}: 3–80 of A–Z, 0–9 and _, starting with a letter (e.g. REDIS_NOEVICTION_NEAR_LIMIT)",
            f.code
        )));
    }
    let title = f.title.trim();
    if title.is_empty() {
        return Err(invalid("a finding needs a title"));
    }
    check_len("the title", title, 300)?;
    check_len("the remediation", &f.remediation, 20_000)?;
    if f.evidence.facts.len() > 100 {
        return Err(invalid("at most 100 evidence facts"));
    }
    for fact in &f.evidence.facts {
        check_len("an evidence name", &fact.name, 200)?;
        check_len("an evidence value", &fact.value, 4000)?;
    }
    if let Some(c) = &f.evidence.command {
        check_len("the evidence command", c, 4000)?;
    }
    if f.evidence.tables.len() > crate::incidents::MAX_EVIDENCE_TABLES {
        return Err(invalid(format!(
            "at most {} evidence tables",
            crate::incidents::MAX_EVIDENCE_TABLES
        )));
    }
    for t in &f.evidence.tables {
        check_len("an evidence table title", &t.title, 200)?;
        if t.columns.len() > 20 || t.rows.len() > crate::incidents::MAX_EVIDENCE_ROWS {
            return Err(invalid(format!(
                "an evidence table has at most 20 columns and {} rows",
                crate::incidents::MAX_EVIDENCE_ROWS
            )));
        }
        for cell in t.columns.iter().chain(t.rows.iter().flatten()) {
            check_len("an evidence table cell", cell, 2000)?;
        }
    }
    if f.evidence.charts.len() > crate::incidents::MAX_EVIDENCE_CHARTS {
        return Err(invalid(format!(
            "at most {} evidence charts",
            crate::incidents::MAX_EVIDENCE_CHARTS
        )));
    }
    for c in &f.evidence.charts {
        check_len("a chart title", &c.title, 200)?;
        check_len("a chart unit", &c.unit, 40)?;
        if c.series.len() > crate::incidents::MAX_CHART_SERIES
            || c.series
                .iter()
                .any(|s| s.points.len() > crate::incidents::MAX_CHART_POINTS)
        {
            return Err(invalid(format!(
                "a chart has at most {} series of {} points",
                crate::incidents::MAX_CHART_SERIES,
                crate::incidents::MAX_CHART_POINTS
            )));
        }
        for s in &c.series {
            check_len("a chart series name", &s.name, 200)?;
        }
    }
    if let Some(link) = &f.doc_link {
        let ok = url::Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(invalid("the doc link must be an http(s) URL"));
        }
    }
    Ok(())
}

/// Caps the raw excerpt at [`MAX_EXCERPT_BYTES`] on a character boundary.
pub fn cap_excerpt(e: &mut Evidence) {
    if let Some(x) = e.excerpt.as_mut()
        && x.len() > MAX_EXCERPT_BYTES
    {
        let mut cut = MAX_EXCERPT_BYTES;
        while !x.is_char_boundary(cut) {
            cut -= 1;
        }
        x.truncate(cut);
        x.push_str("\n… (truncated)");
    }
}

pub async fn add_finding(
    pool: &PgPool,
    who: &Principal,
    key: &str,
    mut f: NewFinding,
) -> DomainResult<Finding> {
    who.require(Role::Responder)?;
    validate_finding(&f)?;
    cap_excerpt(&mut f.evidence);
    let mut tx = pool.begin().await?;
    let row = find(&mut tx, key).await?;
    let id = add_finding_in(&mut tx, who, row.id, &f).await?;
    tx.commit().await?;
    let fr = store::finding(pool, id)
        .await?
        .ok_or_else(|| DomainError::internal("finding vanished"))?;
    Ok(finding_view(fr))
}

/// Adds a checked finding to incident `incident_id` inside the caller's transaction, with
/// its timeline event; returns its id.
pub(crate) async fn add_finding_in(
    tx: &mut PgConnection,
    who: &Principal,
    incident_id: i64,
    f: &NewFinding,
) -> DomainResult<i64> {
    let (kind, probe, target) = match &f.source {
        Some((p, t)) => ("probe", Some(p.as_str()), Some(t.as_str())),
        None => ("manual", None, None),
    };
    let id = store::insert_finding(
        &mut *tx,
        store::NewFindingRow {
            incident_id: Some(incident_id),
            code: &f.code,
            source_kind: kind,
            source_probe: probe,
            source_target: target,
            severity: f.severity,
            title: f.title.trim(),
            evidence: serde_json::to_value(&f.evidence).map_err(DomainError::internal)?,
            remediation: &f.remediation,
            doc_link: f.doc_link.as_deref(),
            created_by: &who.name,
            probe_run_id: None,
        },
    )
    .await?;
    event(
        &mut *tx,
        incident_id,
        who,
        TimelineKind::FindingAdded,
        &format!("{} [{}] {}", f.code, f.severity, f.title.trim()),
        serde_json::json!({ "finding_id": id, "code": f.code, "severity": f.severity }),
    )
    .await?;
    Ok(id)
}

pub async fn list_findings(
    pool: &PgPool,
    who: &Principal,
    key: &str,
) -> DomainResult<Vec<Finding>> {
    who.require(Role::Viewer)?;
    let mut conn = pool.acquire().await?;
    let row = find(&mut conn, key).await?;
    Ok(store::findings(&mut *conn, row.id)
        .await?
        .into_iter()
        .map(finding_view)
        .collect())
}

/// Changes a finding's status; a false positive needs a reason.
pub async fn update_finding(
    pool: &PgPool,
    who: &Principal,
    id: i64,
    status: FindingStatus,
    reason: Option<&str>,
) -> DomainResult<Finding> {
    who.require(Role::Responder)?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if status == FindingStatus::FalsePositive && reason.is_none() {
        return Err(invalid("say why this finding is a false positive"));
    }
    if let Some(r) = reason {
        check_len("the reason", r, 2000)?;
    }
    let mut tx = pool.begin().await?;
    let f = store::finding(&mut *tx, id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("no finding {id}")))?;
    store::set_finding_status(&mut *tx, id, status, reason, &who.name).await?;
    if let Some(incident_id) = f.incident_id {
        event(
            &mut tx,
            incident_id,
            who,
            TimelineKind::FindingUpdated,
            &format!(
                "{} {} → {status}{}",
                f.code,
                f.status,
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            serde_json::json!({ "finding_id": id, "from": f.status, "to": status, "reason": reason }),
        )
        .await?;
    }
    tx.commit().await?;
    let fr = store::finding(pool, id)
        .await?
        .ok_or_else(|| DomainError::internal("finding vanished"))?;
    Ok(finding_view(fr))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewActionItem {
    pub title: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub due_date: Option<time::Date>,
}

pub async fn add_action_item(
    pool: &PgPool,
    who: &Principal,
    key: &str,
    a: NewActionItem,
) -> DomainResult<ActionItem> {
    who.require(Role::Responder)?;
    let title = a.title.trim();
    if title.is_empty() {
        return Err(invalid("an action item needs a title"));
    }
    check_len("the title", title, 300)?;
    let mut tx = pool.begin().await?;
    let row = find(&mut tx, key).await?;
    let owner = match a.owner.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(o) => Some(resolve_user(&mut tx, o).await?),
        None => None,
    };
    let id =
        store::insert_action_item(&mut *tx, row.id, title, owner, a.due_date, &who.name).await?;
    event(
        &mut tx,
        row.id,
        who,
        TimelineKind::ActionItem,
        &format!("Action item: {title}"),
        serde_json::json!({ "action_item_id": id, "owner": a.owner, "due_date": a.due_date }),
    )
    .await?;
    tx.commit().await?;
    let items = store::action_items(pool, row.id).await?;
    items
        .into_iter()
        .find(|i| i.id == id)
        .map(|i| i.view())
        .ok_or_else(|| DomainError::internal("action item vanished"))
}

pub async fn list_action_items(
    pool: &PgPool,
    who: &Principal,
    key: &str,
) -> DomainResult<Vec<ActionItem>> {
    who.require(Role::Viewer)?;
    let mut conn = pool.acquire().await?;
    let row = find(&mut conn, key).await?;
    Ok(store::action_items(&mut *conn, row.id)
        .await?
        .into_iter()
        .map(|a| a.view())
        .collect())
}

pub async fn set_action_item_status(
    pool: &PgPool,
    who: &Principal,
    key: &str,
    id: i64,
    status: ActionItemStatus,
) -> DomainResult<Vec<ActionItem>> {
    who.require(Role::Responder)?;
    let mut conn = pool.acquire().await?;
    let row = find(&mut conn, key).await?;
    if store::set_action_item_status(&mut *conn, id, row.id, status).await? == 0 {
        return Err(DomainError::not_found(format!(
            "no action item {id} on {key}"
        )));
    }
    Ok(store::action_items(&mut *conn, row.id)
        .await?
        .into_iter()
        .map(|a| a.view())
        .collect())
}

/// The postmortem as Markdown, read only (any role that may read the incident).
pub async fn postmortem(pool: &PgPool, who: &Principal, key: &str) -> DomainResult<String> {
    let d = get(pool, who, key).await?;
    Ok(crate::postmortem::render(&d, OffsetDateTime::now_utc()))
}

/// Exports the postmortem as Markdown and records the export on the timeline (a POST).
pub async fn export_postmortem(pool: &PgPool, who: &Principal, key: &str) -> DomainResult<String> {
    let d = get(pool, who, key).await?;
    let md = crate::postmortem::render(&d, OffsetDateTime::now_utc());
    let mut conn = pool.acquire().await?;
    event(
        &mut conn,
        d.incident.id,
        who,
        TimelineKind::PostmortemExported,
        "Postmortem exported",
        serde_json::json!({ "bytes": md.len() }),
    )
    .await?;
    Ok(md)
}
