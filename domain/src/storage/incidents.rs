//! The incident aggregate's tables: incidents, timeline_events (+ note_revisions),
//! findings, action_items. Explicit SQL; list queries are keyset-paginated on indexes.

use crate::incidents::*;
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};

#[derive(Debug, Clone, FromRow)]
pub struct IncidentRow {
    pub id: i64,
    pub number: i64,
    pub title: String,
    pub summary: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub services: Vec<String>,
    pub environment: String,
    pub labels: serde_json::Value,
    pub commander_id: Option<i64>,
    pub commander: Option<String>,
    pub scribe_id: Option<i64>,
    pub scribe: Option<String>,
    pub responder_ids: Vec<i64>,
    pub created_by: String,
    pub alert_group_key: Option<String>,
    pub detected_at: OffsetDateTime,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub mitigated_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
    pub closed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub list_order: i16,
}

impl IncidentRow {
    pub fn times(&self) -> StageTimes {
        StageTimes {
            detected_at: self.detected_at,
            acknowledged_at: self.acknowledged_at,
            mitigated_at: self.mitigated_at,
            resolved_at: self.resolved_at,
            closed_at: self.closed_at,
        }
    }

    pub fn summary_view(&self) -> IncidentSummary {
        let labels: BTreeMap<String, String> = super::labels_from_json(&self.labels);
        IncidentSummary {
            id: self.id,
            key: incident_key(self.number),
            title: self.title.clone(),
            severity: self.severity,
            status: self.status,
            services: self.services.clone(),
            environment: self.environment.clone(),
            labels,
            commander: self.commander.clone(),
            times: self.times(),
            created_at: self.created_at,
        }
    }
}

const SELECT: &str = "SELECT i.id, i.number, i.title, i.summary, i.severity, i.status, i.services,
    i.environment, i.labels, i.commander_id, c.username AS commander, i.scribe_id,
    s.username AS scribe, i.responder_ids, i.created_by, i.alert_group_key, i.detected_at,
    i.acknowledged_at, i.mitigated_at, i.resolved_at, i.closed_at, i.created_at, i.list_order
    FROM incidents i
    LEFT JOIN users c ON c.id = i.commander_id
    LEFT JOIN users s ON s.id = i.scribe_id";

pub struct NewIncidentRow<'a> {
    pub title: &'a str,
    pub summary: &'a str,
    pub severity: Severity,
    pub services: &'a [String],
    pub environment: &'a str,
    pub labels: serde_json::Value,
    pub commander_id: Option<i64>,
    pub created_by: &'a str,
    pub created_by_id: Option<i64>,
    pub alert_group_key: Option<&'a str>,
    pub detected_at: Option<OffsetDateTime>,
}

pub async fn insert(db: impl PgExecutor<'_>, n: NewIncidentRow<'_>) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "INSERT INTO incidents (title, summary, severity, services, environment, labels,
            commander_id, created_by, created_by_id, alert_group_key, detected_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, now()))
         RETURNING id, number",
    )
    .bind(n.title)
    .bind(n.summary)
    .bind(n.severity)
    .bind(n.services)
    .bind(n.environment)
    .bind(n.labels)
    .bind(n.commander_id)
    .bind(n.created_by)
    .bind(n.created_by_id)
    .bind(n.alert_group_key)
    .bind(n.detected_at)
    .fetch_one(db)
    .await
}

pub async fn by_number(db: impl PgExecutor<'_>, number: i64) -> sqlx::Result<Option<IncidentRow>> {
    sqlx::query_as::<_, IncidentRow>(&format!("{SELECT} WHERE i.number = $1"))
        .bind(number)
        .fetch_optional(db)
        .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<IncidentRow>> {
    sqlx::query_as::<_, IncidentRow>(&format!("{SELECT} WHERE i.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Locks the incident row for the rest of the transaction (serialises concurrent edits).
pub async fn lock(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn open_by_group_key(
    db: impl PgExecutor<'_>,
    key: &str,
) -> sqlx::Result<Option<IncidentRow>> {
    sqlx::query_as::<_, IncidentRow>(&format!(
        "{SELECT} WHERE i.alert_group_key = $1 AND i.status IN ('triage', 'investigating', 'mitigated')"
    ))
    .bind(key)
    .fetch_optional(db)
    .await
}

/// Writes the whole mutable state of an incident (the service computed it).
pub async fn save(db: impl PgExecutor<'_>, r: &IncidentRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE incidents SET title = $2, summary = $3, severity = $4, status = $5,
            commander_id = $6, scribe_id = $7, responder_ids = $8, detected_at = $9,
            acknowledged_at = $10, mitigated_at = $11, resolved_at = $12, closed_at = $13,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.title)
    .bind(&r.summary)
    .bind(r.severity)
    .bind(r.status)
    .bind(r.commander_id)
    .bind(r.scribe_id)
    .bind(&r.responder_ids)
    .bind(r.detected_at)
    .bind(r.acknowledged_at)
    .bind(r.mitigated_at)
    .bind(r.resolved_at)
    .bind(r.closed_at)
    .execute(db)
    .await?;
    Ok(())
}

pub const DEFAULT_PAGE: u32 = 25;
pub const MAX_PAGE: u32 = 200;

/// `order.created_at_unix_micros.id`
pub fn encode_cursor(r: &IncidentRow) -> String {
    format!(
        "{}.{}.{}",
        r.list_order,
        r.created_at.unix_timestamp_nanos() / 1000,
        r.id
    )
}

pub fn decode_cursor(c: &str) -> Option<(i16, OffsetDateTime, i64)> {
    let mut it = c.split('.');
    let rank = it.next()?.parse().ok()?;
    let micros: i128 = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?).ok()?;
    Some((rank, at, id))
}

/// The list: open incidents first by severity, then everything else, newest first within.
/// Keyset-paginated on (list_order, created_at, id), all descending, matching the indexes.
pub async fn list(
    db: impl PgExecutor<'_>,
    q: &IncidentQuery,
    cursor: Option<(i16, OffsetDateTime, i64)>,
) -> sqlx::Result<(Vec<IncidentRow>, bool)> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as i64;
    let mut b: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    b.push(" WHERE TRUE");
    if let Some(s) = q.status {
        b.push(" AND i.status = ").push_bind(s);
    }
    match q.open {
        Some(true) => {
            b.push(" AND i.list_order > 0");
        }
        Some(false) => {
            b.push(" AND i.list_order = 0");
        }
        None => {}
    }
    if let Some(s) = q.severity {
        b.push(" AND i.severity = ").push_bind(s);
    }
    if let Some(s) = q.service.as_deref().filter(|s| !s.is_empty()) {
        b.push(" AND i.services @> ARRAY[")
            .push_bind(s.to_string())
            .push("]::text[]");
    }
    if let Some(e) = q.environment.as_deref().filter(|s| !s.is_empty()) {
        b.push(" AND i.environment = ").push_bind(e.to_string());
    }
    if let Some((k, v)) = q.label.as_deref().and_then(|l| l.split_once('=')) {
        b.push(" AND i.labels @> ")
            .push_bind(serde_json::json!({ k.trim(): v.trim() }));
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(n) = parse_incident_key(text) {
            b.push(" AND i.number = ").push_bind(n);
        } else {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            b.push(" AND i.title ILIKE ")
                .push_bind(format!("%{escaped}%"));
        }
    }
    if let Some((order, at, id)) = cursor {
        // Strictly after the cursor in (list_order, created_at, id) DESC: one index range.
        b.push(" AND (i.list_order, i.created_at, i.id) < (")
            .push_bind(order)
            .push(", ")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    b.push(" ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT ")
        .push_bind(limit + 1);
    let mut rows = b.build_query_as::<IncidentRow>().fetch_all(db).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// MTTA / MTTM / MTTR per severity over incidents detected in the last 30 and 90 days
/// (cancelled incidents excluded). Scans the 90-day window: callers cache it.
pub async fn mean_times(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<MeanTimes>> {
    sqlx::query_as::<_, MeanTimes>(
        "SELECT severity,
           avg(extract(epoch FROM acknowledged_at - detected_at)) FILTER (WHERE detected_at > now() - interval '30 days')::float8 AS mtta_30d,
           avg(extract(epoch FROM mitigated_at - detected_at)) FILTER (WHERE detected_at > now() - interval '30 days')::float8 AS mttm_30d,
           avg(extract(epoch FROM resolved_at - detected_at)) FILTER (WHERE detected_at > now() - interval '30 days')::float8 AS mttr_30d,
           avg(extract(epoch FROM acknowledged_at - detected_at))::float8 AS mtta_90d,
           avg(extract(epoch FROM mitigated_at - detected_at))::float8 AS mttm_90d,
           avg(extract(epoch FROM resolved_at - detected_at))::float8 AS mttr_90d
         FROM incidents
         WHERE detected_at > now() - interval '90 days' AND status <> 'cancelled'
         GROUP BY severity",
    )
    .fetch_all(db)
    .await
}

/// Open incidents per severity (an index range: list_order > 0).
pub async fn open_counts(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Severity, i64)>> {
    sqlx::query_as(
        "SELECT severity, count(*) FROM incidents WHERE list_order > 0 GROUP BY severity",
    )
    .fetch_all(db)
    .await
}

// ---- timeline ----

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub incident_id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub actor_id: Option<i64>,
    pub kind: TimelineKind,
    pub body: String,
    pub body_html: String,
    pub details: serde_json::Value,
    pub pinned: bool,
}

pub struct NewEvent<'a> {
    pub incident_id: i64,
    pub actor: &'a str,
    pub actor_id: Option<i64>,
    pub kind: TimelineKind,
    pub body: &'a str,
    pub details: serde_json::Value,
}

/// Appends an event; its markdown is rendered and sanitized here, once.
pub async fn insert_event(db: impl PgExecutor<'_>, e: NewEvent<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO timeline_events (incident_id, actor, actor_id, kind, body, body_html, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(e.incident_id)
    .bind(e.actor)
    .bind(e.actor_id)
    .bind(e.kind)
    .bind(e.body)
    .bind(crate::markdown::render(e.body))
    .bind(e.details)
    .fetch_one(db)
    .await
}

pub async fn events(db: impl PgExecutor<'_>, incident_id: i64) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as::<_, EventRow>(
        "SELECT id, incident_id, at, actor, actor_id, kind, body, body_html, details, pinned
         FROM timeline_events WHERE incident_id = $1 ORDER BY at, id",
    )
    .bind(incident_id)
    .fetch_all(db)
    .await
}

pub async fn event(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<EventRow>> {
    sqlx::query_as::<_, EventRow>(
        "SELECT id, incident_id, at, actor, actor_id, kind, body, body_html, details, pinned
         FROM timeline_events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn set_pinned(db: impl PgExecutor<'_>, id: i64, pinned: bool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE timeline_events SET pinned = $2 WHERE id = $1")
            .bind(id)
            .bind(pinned)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

#[derive(Debug, Clone, FromRow)]
pub struct RevisionRow {
    pub event_id: i64,
    pub body: String,
    pub body_html: String,
    pub edited_at: OffsetDateTime,
    pub edited_by: String,
}

pub async fn insert_revision(
    db: impl PgExecutor<'_>,
    event_id: i64,
    body: &str,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO note_revisions (event_id, body, body_html, edited_by) VALUES ($1, $2, $3, $4)",
    )
    .bind(event_id)
    .bind(body)
    .bind(crate::markdown::render(body))
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn event_revisions(
    db: impl PgExecutor<'_>,
    event_id: i64,
) -> sqlx::Result<Vec<RevisionRow>> {
    sqlx::query_as::<_, RevisionRow>(
        "SELECT event_id, body, body_html, edited_at, edited_by
         FROM note_revisions WHERE event_id = $1 ORDER BY id",
    )
    .bind(event_id)
    .fetch_all(db)
    .await
}

pub async fn revisions(
    db: impl PgExecutor<'_>,
    incident_id: i64,
) -> sqlx::Result<Vec<RevisionRow>> {
    sqlx::query_as::<_, RevisionRow>(
        "SELECT r.event_id, r.body, r.body_html, r.edited_at, r.edited_by
         FROM note_revisions r JOIN timeline_events e ON e.id = r.event_id
         WHERE e.incident_id = $1 ORDER BY r.id",
    )
    .bind(incident_id)
    .fetch_all(db)
    .await
}

// ---- findings ----

#[derive(Debug, Clone, FromRow)]
pub struct FindingRow {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub incident_number: Option<i64>,
    pub code: String,
    pub source_kind: String,
    pub source_probe: Option<String>,
    pub source_target: Option<String>,
    pub severity: FindingSeverity,
    pub title: String,
    pub evidence: serde_json::Value,
    pub remediation: String,
    pub remediation_html: String,
    pub commands: Vec<String>,
    pub doc_link: Option<String>,
    pub status: FindingStatus,
    pub status_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

const FINDING_SELECT: &str = "SELECT f.id, f.incident_id, i.number AS incident_number, f.code,
    f.source_kind, f.source_probe, f.source_target, f.severity, f.title, f.evidence,
    f.remediation, f.remediation_html, f.commands, f.doc_link, f.status, f.status_reason, f.created_at, f.created_by,
    f.updated_at, f.updated_by
    FROM findings f LEFT JOIN incidents i ON i.id = f.incident_id";

pub struct NewFindingRow<'a> {
    pub incident_id: Option<i64>,
    pub code: &'a str,
    pub source_kind: &'a str,
    pub source_probe: Option<&'a str>,
    pub source_target: Option<&'a str>,
    pub severity: FindingSeverity,
    pub title: &'a str,
    pub evidence: serde_json::Value,
    pub remediation: &'a str,
    pub doc_link: Option<&'a str>,
    pub created_by: &'a str,
    pub probe_run_id: Option<i64>,
}

pub async fn insert_finding(db: impl PgExecutor<'_>, f: NewFindingRow<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO findings (incident_id, code, source_kind, source_probe, source_target,
            severity, title, evidence, remediation, remediation_html, commands, doc_link,
            created_by, updated_by, probe_run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) RETURNING id",
    )
    .bind(f.incident_id)
    .bind(f.code)
    .bind(f.source_kind)
    .bind(f.source_probe)
    .bind(f.source_target)
    .bind(f.severity)
    .bind(f.title)
    .bind(f.evidence)
    .bind(f.remediation)
    .bind(crate::markdown::render(f.remediation))
    .bind(crate::markdown::code_blocks(f.remediation))
    .bind(f.doc_link)
    .bind(f.created_by)
    .bind(f.probe_run_id)
    .fetch_one(db)
    .await
}

pub async fn finding(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<FindingRow>> {
    sqlx::query_as::<_, FindingRow>(&format!("{FINDING_SELECT} WHERE f.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn findings_of_run(
    db: impl PgExecutor<'_>,
    run_id: i64,
) -> sqlx::Result<Vec<FindingRow>> {
    sqlx::query_as::<_, FindingRow>(&format!(
        "{FINDING_SELECT} WHERE f.probe_run_id = $1 ORDER BY f.severity, f.id"
    ))
    .bind(run_id)
    .fetch_all(db)
    .await
}

pub async fn findings(db: impl PgExecutor<'_>, incident_id: i64) -> sqlx::Result<Vec<FindingRow>> {
    sqlx::query_as::<_, FindingRow>(&format!(
        "{FINDING_SELECT} WHERE f.incident_id = $1 ORDER BY f.severity, f.id"
    ))
    .bind(incident_id)
    .fetch_all(db)
    .await
}

pub async fn set_finding_status(
    db: impl PgExecutor<'_>,
    id: i64,
    status: FindingStatus,
    reason: Option<&str>,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE findings SET status = $2, status_reason = $3, updated_by = $4, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

// ---- action items ----

#[derive(Debug, Clone, FromRow)]
pub struct ActionItemRow {
    pub id: i64,
    pub incident_id: i64,
    pub title: String,
    pub owner: Option<String>,
    pub due_date: Option<Date>,
    pub status: ActionItemStatus,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

impl ActionItemRow {
    pub fn view(self) -> ActionItem {
        ActionItem {
            id: self.id,
            title: self.title,
            owner: self.owner,
            due_date: self.due_date,
            status: self.status,
            created_at: self.created_at,
            created_by: self.created_by,
        }
    }
}

pub async fn insert_action_item(
    db: impl PgExecutor<'_>,
    incident_id: i64,
    title: &str,
    owner_id: Option<i64>,
    due: Option<Date>,
    by: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO action_items (incident_id, title, owner_id, due_date, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(incident_id)
    .bind(title)
    .bind(owner_id)
    .bind(due)
    .bind(by)
    .fetch_one(db)
    .await
}

pub async fn action_items(
    db: impl PgExecutor<'_>,
    incident_id: i64,
) -> sqlx::Result<Vec<ActionItemRow>> {
    sqlx::query_as::<_, ActionItemRow>(
        "SELECT a.id, a.incident_id, a.title, u.username AS owner, a.due_date, a.status,
                a.created_at, a.created_by
         FROM action_items a LEFT JOIN users u ON u.id = a.owner_id
         WHERE a.incident_id = $1 ORDER BY a.id",
    )
    .bind(incident_id)
    .fetch_all(db)
    .await
}

pub async fn set_action_item_status(
    db: impl PgExecutor<'_>,
    id: i64,
    incident_id: i64,
    status: ActionItemStatus,
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE action_items SET status = $3 WHERE id = $1 AND incident_id = $2")
            .bind(id)
            .bind(incident_id)
            .bind(status)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// Usernames for ids (for responders).
pub async fn usernames(db: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT username FROM users WHERE id = ANY($1) ORDER BY username")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// Ids for usernames; returns the names that do not exist as the error.
pub async fn user_ids(
    db: impl PgExecutor<'_>,
    names: &[String],
) -> sqlx::Result<Result<Vec<i64>, Vec<String>>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM users WHERE username = ANY($1) AND NOT disabled")
            .bind(names)
            .fetch_all(db)
            .await?;
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !rows.iter().any(|(_, u)| u == *n))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(Ok(names
            .iter()
            .filter_map(|n| rows.iter().find(|(_, u)| u == n).map(|(id, _)| *id))
            .collect()))
    } else {
        Ok(Err(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap();
        let s = format!("3.{}.42", at.unix_timestamp_nanos() / 1000);
        assert_eq!(decode_cursor(&s), Some((3, at, 42)));
        for bad in [
            "",
            "1.2",
            "a.b.c",
            "1.2.3.4",
            "1.99999999999999999999999999999.1",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
