//! Incident types and the pure rules over them (shared with the browser): severities, the
//! status lifecycle, who may do what, and the shapes of timeline events, findings and
//! action items. No I/O here; `storage::incidents` and `services::incidents` use these.

use crate::accounts::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use time::{Date, OffsetDateTime};

macro_rules! string_enum {
    ($name:ident, $sqlname:literal, $case:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "server", derive(sqlx::Type))]
        #[cfg_attr(feature = "server", sqlx(type_name = $sqlname))]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                #[cfg_attr(feature = "server", sqlx(rename = $text))]
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(format!(
                    concat!("unknown ", $case, " {:?}: expected one of {}"),
                    t,
                    [$($text),+].join(", ")
                ))
            }
        }
    };
}

string_enum!(Severity, "incident_severity", "severity", {
    Sev1 => "SEV1", Sev2 => "SEV2", Sev3 => "SEV3", Sev4 => "SEV4",
});
string_enum!(IncidentStatus, "incident_status", "status", {
    Triage => "triage", Investigating => "investigating", Mitigated => "mitigated",
    Resolved => "resolved", Closed => "closed", Cancelled => "cancelled",
});
string_enum!(TimelineKind, "timeline_kind", "event kind", {
    Created => "created", StatusChange => "status_change", SeverityChange => "severity_change",
    RoleChange => "role_change", Note => "note", FindingAdded => "finding_added",
    FindingUpdated => "finding_updated", ProbeRunStarted => "probe_run_started",
    ProbeRunFinished => "probe_run_finished", AlertReceived => "alert_received",
    AlertResolved => "alert_resolved", DeploymentLinked => "deployment_linked",
    PostmortemExported => "postmortem_exported", TimestampCorrected => "timestamp_corrected",
    SummaryChanged => "summary_changed", ActionItem => "action_item",
});
string_enum!(FindingSeverity, "finding_severity", "finding severity", {
    Critical => "critical", Warning => "warning", Info => "info",
});
string_enum!(FindingStatus, "finding_status", "finding status", {
    Open => "open", Confirmed => "confirmed", FalsePositive => "false_positive", Fixed => "fixed",
});
string_enum!(ActionItemStatus, "action_item_status", "action item status", {
    Open => "open", InProgress => "in_progress", Done => "done", WontDo => "wont_do",
});

impl IncidentStatus {
    /// Open incidents are still being worked.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Triage | Self::Investigating | Self::Mitigated)
    }
}

impl TimelineKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Created => "Opened",
            Self::StatusChange => "Status",
            Self::SeverityChange => "Severity",
            Self::RoleChange => "Roles",
            Self::Note => "Note",
            Self::FindingAdded => "Finding",
            Self::FindingUpdated => "Finding updated",
            Self::ProbeRunStarted => "Probe started",
            Self::ProbeRunFinished => "Probe finished",
            Self::AlertReceived => "Alert firing",
            Self::AlertResolved => "Alert resolved",
            Self::DeploymentLinked => "Deployment",
            Self::PostmortemExported => "Postmortem",
            Self::TimestampCorrected => "Time corrected",
            Self::SummaryChanged => "Summary",
            Self::ActionItem => "Action item",
        }
    }
}

/// The key people use: `INC-42`.
pub fn incident_key(number: i64) -> String {
    format!("INC-{number}")
}

/// Parses `INC-42` (case-insensitive) into 42.
pub fn parse_incident_key(key: &str) -> Option<i64> {
    let key = key.trim();
    let prefix = key.get(..4)?;
    if !prefix.eq_ignore_ascii_case("INC-") {
        return None;
    }
    key[4..].parse::<i64>().ok().filter(|n| *n > 0)
}

/// Who is acting on an incident, for the permission rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub role: Role,
    pub is_commander: bool,
}

impl Actor {
    /// Commander, approvers and admins steer an incident (severity, roles, close, cancel).
    pub fn can_steer(self) -> bool {
        self.is_commander || self.role.allows(Role::Approver)
    }
}

/// Which stage timestamps a transition sets (those not set yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStamps {
    pub acknowledged: bool,
    pub mitigated: bool,
    pub resolved: bool,
    pub closed: bool,
}

/// Why a status change was refused: not a step the lifecycle has (409), or not this
/// caller's to make (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionError {
    NotAllowed(String),
    Forbidden(String),
}

/// The lifecycle: `triage → investigating → mitigated → resolved → closed`, plus
/// `cancelled`. Moving forward may skip stages (their timestamps are set too, at the same
/// moment, so MTTA ≤ MTTM ≤ MTTR stays true). Going back is allowed where real incidents go
/// back: a failed mitigation (`mitigated → investigating`), a recurrence (`resolved →
/// investigating`). Nothing leaves `closed` or `cancelled` except an admin's re-open.
/// Closing and cancelling need the commander, an approver or an admin.
pub fn check_transition(
    from: IncidentStatus,
    to: IncidentStatus,
    actor: Actor,
) -> Result<StageStamps, TransitionError> {
    use IncidentStatus::*;
    use TransitionError::{Forbidden, NotAllowed};
    if from == to {
        return Err(NotAllowed(format!("the incident is already {from}")));
    }
    if !actor.role.allows(Role::Responder) {
        return Err(Forbidden("viewers cannot change an incident".into()));
    }
    let allowed = match (from, to) {
        (Triage, Investigating | Mitigated | Resolved | Cancelled) => true,
        (Investigating, Mitigated | Resolved | Cancelled) => true,
        (Mitigated, Investigating | Resolved | Cancelled) => true,
        (Resolved, Closed | Investigating) => true,
        (Closed, Investigating) | (Cancelled, Triage) => {
            if actor.role != Role::Admin {
                return Err(Forbidden(format!(
                    "a {from} incident can only be re-opened by an admin"
                )));
            }
            true
        }
        _ => false,
    };
    if !allowed {
        return Err(NotAllowed(format!(
            "an incident cannot go from {from} to {to}"
        )));
    }
    if matches!(to, Closed | Cancelled) && !actor.can_steer() {
        return Err(Forbidden(format!(
            "only the commander, an approver or an admin can mark an incident {to}"
        )));
    }
    let rank = |s: IncidentStatus| match s {
        Triage => 0,
        Investigating => 1,
        Mitigated => 2,
        Resolved => 3,
        Closed => 4,
        Cancelled => 0,
    };
    let r = rank(to);
    Ok(StageStamps {
        acknowledged: to != Cancelled && r >= 1,
        mitigated: to != Cancelled && r >= 2,
        resolved: to != Cancelled && r >= 3,
        closed: to == Closed,
    })
}

/// The stage timestamps, for monotonicity checks on corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimes {
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub mitigated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

impl StageTimes {
    /// detected ≤ acknowledged ≤ mitigated ≤ resolved ≤ closed (skipping unset ones), and
    /// nothing in the future.
    pub fn check(&self, now: OffsetDateTime) -> Result<(), String> {
        let stages = [
            ("detected_at", Some(self.detected_at)),
            ("acknowledged_at", self.acknowledged_at),
            ("mitigated_at", self.mitigated_at),
            ("resolved_at", self.resolved_at),
            ("closed_at", self.closed_at),
        ];
        let mut prev: Option<(&str, OffsetDateTime)> = None;
        for (name, t) in stages {
            let Some(t) = t else { continue };
            if t > now + time::Duration::minutes(1) {
                return Err(format!("{name} is in the future"));
            }
            if let Some((pname, pt)) = prev
                && t < pt
            {
                return Err(format!("{name} cannot be earlier than {pname}"));
            }
            prev = Some((name, t));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub services: Vec<String>,
    pub environment: String,
    pub labels: BTreeMap<String, String>,
    pub commander: Option<String>,
    #[serde(flatten)]
    pub times: StageTimes,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteRevision {
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub edited_at: OffsetDateTime,
    pub edited_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub kind: TimelineKind,
    /// The current text (a note's latest revision), markdown.
    pub body: String,
    /// `body` rendered to sanitized HTML on the server.
    pub body_html: String,
    /// Structured details as JSON text (`{}` when none).
    pub details: String,
    pub pinned: bool,
    /// Earlier versions of an edited note, oldest first (the original body first).
    pub history: Vec<NoteRevision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EvidenceFact {
    pub name: String,
    pub value: String,
}

/// Evidence: key facts, the command or query that produced them, a size-capped excerpt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Evidence {
    #[serde(default)]
    pub facts: Vec<EvidenceFact>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub excerpt: Option<String>,
    /// Tabular evidence (top keys, blocking chains, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<EvidenceTable>,
    /// Time-series charts (the series a probe's query returned), drawn as SVG.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<EvidenceChart>,
}

/// A chart of evidence: series of (unix seconds, value) points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EvidenceChart {
    pub title: String,
    pub unit: String,
    pub series: Vec<EvidenceSeries>,
}

/// Values are finite (JSON has no NaN), so a chart equals itself.
impl Eq for EvidenceChart {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EvidenceSeries {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// The most charts a finding keeps, series per chart and points per series.
pub const MAX_EVIDENCE_CHARTS: usize = 6;
pub const MAX_CHART_SERIES: usize = 8;
pub const MAX_CHART_POINTS: usize = 400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EvidenceTable {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The most tables, and rows per table, a finding keeps.
pub const MAX_EVIDENCE_TABLES: usize = 10;
pub const MAX_EVIDENCE_ROWS: usize = 200;

/// The largest raw excerpt kept with a finding.
pub const MAX_EXCERPT_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingSource {
    /// `manual` or `probe`.
    pub kind: String,
    pub probe: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: i64,
    pub incident_key: Option<String>,
    pub code: String,
    pub source: FindingSource,
    pub severity: FindingSeverity,
    pub title: String,
    pub evidence: Evidence,
    pub remediation: String,
    pub remediation_html: String,
    /// Shell commands found in the remediation's code blocks (for copy buttons).
    pub commands: Vec<String>,
    pub doc_link: Option<String>,
    pub status: FindingStatus,
    pub status_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
    /// True when this is the summary a long page lists (evidence and remediation left out;
    /// the finding's own page shows them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detail_omitted: bool,
}

impl Finding {
    /// The finding as a list shows it: code, severity, title, status and source; the
    /// evidence and remediation stay on its own page.
    pub fn summary(mut self) -> Finding {
        self.evidence = Evidence::default();
        self.remediation.clear();
        self.remediation_html.clear();
        self.commands.clear();
        self.detail_omitted = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionItem {
    pub id: i64,
    pub title: String,
    pub owner: Option<String>,
    pub due_date: Option<Date>,
    pub status: ActionItemStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentSummary,
    pub summary: String,
    pub summary_html: String,
    pub scribe: Option<String>,
    pub responders: Vec<String>,
    pub created_by: String,
    pub timeline: Vec<TimelineEvent>,
    pub findings: Vec<Finding>,
    pub action_items: Vec<ActionItem>,
}

/// Filters and paging for the incident list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    /// `open` = triage, investigating or mitigated.
    pub open: Option<bool>,
    pub severity: Option<Severity>,
    pub service: Option<String>,
    pub environment: Option<String>,
    /// `key=value`
    pub label: Option<String>,
    /// A key (`INC-42`) or words of the title.
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentSummary>,
    pub next_cursor: Option<String>,
}

/// Mean times to acknowledge / mitigate / resolve for one severity over the last 30 and
/// 90 days, in seconds (None when no incident qualifies).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(sqlx::FromRow))]
pub struct MeanTimes {
    pub severity: Severity,
    pub mtta_30d: Option<f64>,
    pub mttm_30d: Option<f64>,
    pub mttr_30d: Option<f64>,
    pub mtta_90d: Option<f64>,
    pub mttm_90d: Option<f64>,
    pub mttr_90d: Option<f64>,
}

/// One row of the list page's summary: open incidents and the mean times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityStats {
    pub open: i64,
    #[serde(flatten)]
    pub means: MeanTimes,
}

/// "1 h 05 m", "42 s", "3 d 2 h": durations for people.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as i64;
    let (d, h, m, sec) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m:02} m")
    } else if m > 0 {
        format!("{m} m {sec:02} s")
    } else {
        format!("{sec} s")
    }
}

/// Validation rules shared by forms and the server.
pub mod limits {
    pub const TITLE_MAX: usize = 200;
    pub const SUMMARY_MAX: usize = 20_000;
    pub const NOTE_MAX: usize = 20_000;
    pub const SERVICES_MAX: usize = 20;
    pub const NAME_MAX: usize = 64;
}

/// Parses a comma- or whitespace-separated list of service names.
pub fn parse_services(raw: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = vec![];
    for s in raw
        .split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        check_name("service", s)?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.is_empty() {
        return Err("name at least one affected service".into());
    }
    if out.len() > limits::SERVICES_MAX {
        return Err(format!("at most {} services", limits::SERVICES_MAX));
    }
    Ok(out)
}

/// Service, environment and label names: 1–64 of letters, digits, `.-_/:`.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= limits::NAME_MAX
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {s:?}: 1–{} letters, digits, '.', '-', '_', '/' or ':'",
            limits::NAME_MAX
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IncidentStatus::*;

    fn actor(role: Role, is_commander: bool) -> Actor {
        Actor { role, is_commander }
    }

    #[test]
    fn lifecycle_table() {
        let responder = actor(Role::Responder, false);
        let commander = actor(Role::Responder, true);
        let approver = actor(Role::Approver, false);
        let admin = actor(Role::Admin, false);
        let viewer = actor(Role::Viewer, true);
        // (from, to, actor, allowed)
        let table = [
            (Triage, Investigating, responder, true),
            (Triage, Mitigated, responder, true),
            (Triage, Resolved, responder, true),
            (Triage, Closed, admin, false),
            (Triage, Cancelled, responder, false),
            (Triage, Cancelled, commander, true),
            (Triage, Cancelled, approver, true),
            (Investigating, Triage, admin, false),
            (Investigating, Mitigated, responder, true),
            (Investigating, Resolved, responder, true),
            (Mitigated, Investigating, responder, true),
            (Mitigated, Resolved, responder, true),
            (Resolved, Closed, responder, false),
            (Resolved, Closed, commander, true),
            (Resolved, Closed, approver, true),
            (Resolved, Investigating, responder, true),
            (Closed, Investigating, approver, false),
            (Closed, Investigating, commander, false),
            (Closed, Investigating, admin, true),
            (Closed, Resolved, admin, false),
            (Cancelled, Triage, admin, true),
            (Cancelled, Investigating, admin, false),
            (Cancelled, Triage, approver, false),
            (Triage, Triage, admin, false),
            (Triage, Investigating, viewer, false),
        ];
        for (from, to, who, ok) in table {
            assert_eq!(
                check_transition(from, to, who).is_ok(),
                ok,
                "{from} → {to} by {who:?}"
            );
        }
    }

    #[test]
    fn skipping_forward_stamps_every_skipped_stage() {
        let r = actor(Role::Responder, true);
        assert_eq!(
            check_transition(Triage, Resolved, r).unwrap(),
            StageStamps {
                acknowledged: true,
                mitigated: true,
                resolved: true,
                closed: false
            }
        );
        assert_eq!(
            check_transition(Triage, Investigating, r).unwrap(),
            StageStamps {
                acknowledged: true,
                ..Default::default()
            }
        );
        assert_eq!(
            check_transition(Triage, Cancelled, r).unwrap(),
            StageStamps::default()
        );
        assert!(check_transition(Resolved, Closed, r).unwrap().closed);
    }

    #[test]
    fn stage_times_must_be_monotonic() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let now = t0 + time::Duration::days(1);
        let m = |s: i64| Some(t0 + time::Duration::minutes(s));
        let ok = StageTimes {
            detected_at: t0,
            acknowledged_at: m(5),
            mitigated_at: None,
            resolved_at: m(30),
            closed_at: m(60),
        };
        assert!(ok.check(now).is_ok());
        let bad = StageTimes {
            resolved_at: m(2),
            ..ok
        };
        assert_eq!(
            bad.check(now).unwrap_err(),
            "resolved_at cannot be earlier than acknowledged_at"
        );
        let future = StageTimes {
            closed_at: Some(now + time::Duration::hours(1)),
            ..ok
        };
        assert!(future.check(now).unwrap_err().contains("future"));
        let before_detect = StageTimes {
            acknowledged_at: Some(t0 - time::Duration::minutes(1)),
            ..ok
        };
        assert!(before_detect.check(now).is_err());
    }

    #[test]
    fn keys_and_names() {
        assert_eq!(incident_key(42), "INC-42");
        assert_eq!(parse_incident_key("inc-42"), Some(42));
        assert_eq!(parse_incident_key("INC-0"), None);
        assert_eq!(parse_incident_key("INC-x"), None);
        assert_eq!(parse_incident_key("42"), None);
        assert_eq!(parse_incident_key("INC"), None);
        assert_eq!(
            parse_services("api, db  api\nworker").unwrap(),
            vec!["api", "db", "worker"]
        );
        assert!(parse_services(" , ").is_err());
        assert!(parse_services("bad name!").is_err());
        assert_eq!("sev2".parse::<Severity>(), Ok(Severity::Sev2));
        assert!("SEV5".parse::<Severity>().is_err());
        assert_eq!(human_duration(3900.0), "1 h 05 m");
        assert_eq!(human_duration(42.0), "42 s");
    }
}
