//! Deployment checklists (issue 12): **templates** — the YAML format, its validation with
//! the line and column of every error, and its versions (every edit is a new version; a
//! version never changes) — and **deployments**: the status machine
//! ([`transition_error`]), what blocks a deployment ([`blocking`]), the CI gate ([`gate`]),
//! the approvals needed per environment ([`ApprovalPolicy`]) and how a metric item's run
//! ends ([`metric_outcome`]), all pure and table-tested.
//!
//! ```yaml
//! id: web-release            # [a-z0-9][a-z0-9-]*, at most 63
//! name: Web release
//! version: 3                 # optional: when given, must be the version this save creates
//! description: Checklist for the web tier.
//! sections:
//!   pre:
//!     - id: tests-green
//!       kind: manual
//!       text: All tests pass on the release commit
//!       help: "CI must be **green**, not skipped."
//!       requires_note: true  # checking it needs a comment (default false)
//!       required: true       # default true
//!   during:
//!     - id: error-rate
//!       kind: metric
//!       text: Error rate below 0.1% during the rollout
//!       target: prometheus   # a binding: a Prometheus target chosen per deployment
//!       query: sum(rate(http_requests_total{service="{{service}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{service="{{service}}"}[1m]))
//!       success: result < 0.001
//!       failure: result >= 0.01   # optional: between the two is inconclusive
//!       interval: 30s        # default 10s
//!       count: 10            # default 1
//!       failure_limit: 0     # default 0
//!       inconclusive_limit: 1 # default 0
//!   post: []
//! ```
//!
//! A `probe` item runs a probe of the catalogue on a bound target:
//!
//! ```yaml
//!     - id: indexes-valid
//!       kind: probe
//!       text: Indexes built CONCURRENTLY are valid
//!       target: db           # a binding of the probe's kind
//!       probe: postgres
//!       codes: [PG_INVALID_INDEX]   # optional: only these count
//!       max_severity: warning       # default warning
//! ```
//!
//! A `kafka_lag` item reads the Kafka sampler's verdicts on a consumer group
//! (`target`, `group`, `duration`, `max_state`; see [`KafkaLagCheck`]).
//!
//! An `approval` item is a sign-off inside the checklist (e.g. "product owner confirms the
//! release notes"): only an approver signed in as a person, never the deployment's
//! requester, checks it.
//!
//! Item kinds: `manual`, `approval`, `metric`, `probe` and `kafka_lag`; any other is refused
//! with the list.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The largest template accepted, in bytes of YAML.
pub const TEMPLATE_YAML_MAX: usize = 64 * 1024;
/// The most items in one template (all sections together).
pub const TEMPLATE_ITEMS_MAX: usize = 200;
pub const TEMPLATE_NAME_MAX: usize = 100;
pub const TEMPLATE_DESCRIPTION_MAX: usize = 2_000;
pub const ITEM_TEXT_MAX: usize = 500;
pub const ITEM_HELP_MAX: usize = 5_000;

/// When in a deployment a section's items apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Pre,
    During,
    Post,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Pre, Section::During, Section::Post];
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Pre => "pre",
            Section::During => "during",
            Section::Post => "post",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What checks an item: `manual` and `metric` so far (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A person checks it (with a note when `requires_note`).
    Manual,
    /// Lookout measures a Prometheus query until it passes, fails or is inconclusive.
    Metric,
    /// Lookout runs a probe on a bound target; its findings decide.
    Probe,
    /// A consumer group's lag verdicts (from the Kafka sampler) must stay good for a while.
    KafkaLag,
    /// A sign-off inside the checklist: checked only by an approver signed in as a person,
    /// never the deployment's requester.
    Approval,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Manual => "manual",
            ItemKind::Metric => "metric",
            ItemKind::Probe => "probe",
            ItemKind::KafkaLag => "kafka_lag",
            ItemKind::Approval => "approval",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            ItemKind::Manual,
            ItemKind::Metric,
            ItemKind::Probe,
            ItemKind::KafkaLag,
            ItemKind::Approval,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    /// Set by Lookout (re-run or waived by people), not checked by hand.
    pub fn is_automated(self) -> bool {
        !matches!(self, ItemKind::Manual | ItemKind::Approval)
    }
}

/// The most measurements one metric item takes per run.
pub const METRIC_COUNT_MAX: u32 = 1_000;
/// The longest PromQL query accepted.
pub const METRIC_QUERY_MAX: usize = 4_000;

/// A metric item's check, as in an Argo Rollouts AnalysisTemplate: the instant `query` is
/// measured every `interval_secs`, `count` times; a measurement is successful, failed or
/// inconclusive by the `success` / `failure` conditions (`probes::prometheus::condition`);
/// more than `failure_limit` failed measurements fail the item, more than
/// `inconclusive_limit` inconclusive ones make it inconclusive, and `count` measurements
/// within both limits pass it. No data is inconclusive, never a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricCheck {
    /// The target binding (named in the template, bound to a Prometheus target when a
    /// deployment is created).
    pub target: String,
    /// PromQL; `{{service}}`, `{{environment}}` and `{{version}}` are filled in (escaped
    /// for a double-quoted PromQL string) when a deployment is created.
    pub query: String,
    pub success: String,
    #[serde(default)]
    pub failure: Option<String>,
    pub interval_secs: u32,
    pub count: u32,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
}

/// A probe item's check: `probe` (any in the catalogue) on the target bound to `target`
/// (a binding of the probe's kind), with `params`; it passes when the run ends `ok` with no
/// finding at or above `max_severity` (among `codes`, when listed). The run is the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCheck {
    pub target: String,
    pub probe: String,
    /// The probe's kind of target (`postgres`, `redis`, `kafka`).
    pub target_kind: String,
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// `critical`, `warning` or `info`.
    pub max_severity: String,
    #[serde(default)]
    pub codes: Vec<String>,
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// How a probe item's run ends it: the run's status (`ok`, `failed`, `timed_out`,
/// `cancelled`), its error, and its findings `(code, severity, title)`. A run that did not
/// end `ok`, or says the target could not be examined (`TARGET_*`), is inconclusive — never
/// a pass; an `ok` run fails the item when a counted finding is at or above `max_severity`.
pub fn probe_outcome(
    c: &ProbeCheck,
    status: &str,
    error: Option<&str>,
    findings: &[(String, String, String)],
) -> (ItemState, String) {
    if status != "ok" {
        return (
            ItemState::Inconclusive,
            format!(
                "the {} run ended {status}{}",
                c.probe,
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        );
    }
    // TARGET_UNREACHABLE, TARGET_AUTH_FAILED, TARGET_TIMEOUT, TARGET_ERROR: the target was
    // not examined, whatever codes the item counts.
    if let Some((code, _, title)) = findings
        .iter()
        .find(|(code, _, _)| code.starts_with("TARGET_"))
    {
        return (
            ItemState::Inconclusive,
            format!("the target could not be examined: {code}: {title}"),
        );
    }
    let floor = severity_rank(&c.max_severity);
    let counted: Vec<&(String, String, String)> = findings
        .iter()
        .filter(|(code, sev, _)| {
            severity_rank(sev) >= floor && (c.codes.is_empty() || c.codes.contains(code))
        })
        .collect();
    if counted.is_empty() {
        (
            ItemState::Passed,
            format!(
                "no finding at or above {}{} ({} finding(s) in all)",
                c.max_severity,
                if c.codes.is_empty() {
                    String::new()
                } else {
                    format!(" among {}", c.codes.join(", "))
                },
                findings.len()
            ),
        )
    } else {
        (
            ItemState::Failed,
            format!(
                "{} finding(s) at or above {}: {}",
                counted.len(),
                c.max_severity,
                counted
                    .iter()
                    .take(5)
                    .map(|(code, sev, title)| format!("{code} ({sev}): {title}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    }
}

/// A `kafka_lag` item's check: the Kafka sampler's verdict on consumer group `group` of the
/// Kafka target bound to `target` must stay no worse than `max_state` (`ok`, or `warn`) for
/// `duration_secs`, read every `interval_secs`. A verdict worse than that fails the item at
/// once; no fresh verdict (the sampler is off, the group unknown, its last sample older
/// than five minutes, or INCOMPLETE) is an inconclusive reading, and more than
/// [`LAG_INCONCLUSIVE_LIMIT`] of them make the item inconclusive — never a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaLagCheck {
    pub target: String,
    /// `{{service}}`, `{{environment}}` and `{{version}}` are filled in when a deployment
    /// is opened.
    pub group: String,
    pub duration_secs: u32,
    pub max_state: String,
    pub interval_secs: u32,
}

/// Inconclusive readings a `kafka_lag` item tolerates.
pub const LAG_INCONCLUSIVE_LIMIT: u32 = 2;

/// A `kafka_lag` item's run after a reading: `failed` readings fail it, more than
/// [`LAG_INCONCLUSIVE_LIMIT`] inconclusive ones make it inconclusive, and good readings
/// spanning `duration_secs` (from the run's first reading to now) pass it.
pub fn lag_outcome(
    c: &KafkaLagCheck,
    failed: u32,
    inconclusive: u32,
    span_secs: f64,
) -> MetricOutcome {
    if failed > 0 {
        MetricOutcome::Failed
    } else if inconclusive > LAG_INCONCLUSIVE_LIMIT {
        MetricOutcome::Inconclusive
    } else if span_secs >= c.duration_secs as f64 {
        MetricOutcome::Passed
    } else {
        MetricOutcome::Running
    }
}

/// Where a metric item's run stands after a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOutcome {
    Running,
    Passed,
    Failed,
    Inconclusive,
}

/// The run's outcome from its measurements so far (Argo's rules): more failed than
/// `failure_limit` → failed; more inconclusive than `inconclusive_limit` → inconclusive;
/// `count` taken within both → passed; else it goes on.
pub fn metric_outcome(
    c: &MetricCheck,
    successful: u32,
    failed: u32,
    inconclusive: u32,
) -> MetricOutcome {
    if failed > c.failure_limit {
        MetricOutcome::Failed
    } else if inconclusive > c.inconclusive_limit {
        MetricOutcome::Inconclusive
    } else if successful + failed + inconclusive >= c.count {
        MetricOutcome::Passed
    } else {
        MetricOutcome::Running
    }
}

/// Escapes a value for a double-quoted PromQL string.
pub fn promql_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Replaces each `{{name}}` (spaces inside the braces allowed) for which `value` has an
/// answer; other placeholders and an unclosed `{{` are left as they are.
pub fn fill_placeholders(s: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..i]);
        match value(after[..end].trim()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The placeholders Lookout fills from the deployment itself.
pub const BUILT_IN_PLACEHOLDERS: [&str; 3] = ["service", "environment", "version"];

/// Fills `{{service}}`, `{{environment}}` and `{{version}}`, each passed through `esc`.
pub fn fill_built_ins(
    s: &str,
    service: &str,
    environment: &str,
    version: &str,
    esc: impl Fn(&str) -> String,
) -> String {
    fill_placeholders(s, |name| match name {
        "service" => Some(esc(service)),
        "environment" => Some(esc(environment)),
        "version" => Some(esc(version)),
        _ => None,
    })
}

/// Fills `{{service}}`, `{{environment}}` and `{{version}}` into a query, each escaped for a
/// double-quoted PromQL string.
pub fn fill_query(query: &str, service: &str, environment: &str, version: &str) -> String {
    fill_built_ins(query, service, environment, version, promql_escape)
}

/// What a template parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A finite number, optionally within `min`..=`max` (a threshold).
    Number,
    /// `10s`, `5m`, `1h` (an interval or a window), from 1s to 24h.
    Duration,
    /// Up to 200 letters, digits, spaces and `_ . : / @ -` (a label value, a group name);
    /// escaped when filled into a PromQL query.
    Text,
}

impl ParamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Number => "number",
            ParamKind::Duration => "duration",
            ParamKind::Text => "text",
        }
    }
}

/// A template parameter: a value chosen when a deployment is opened (else its default),
/// filled in wherever `{{name}}` appears in the items' text, queries, conditions,
/// intervals, durations, groups and probe parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateParam {
    pub name: String,
    pub kind: ParamKind,
    /// Canonical (numbers as Rust prints them, durations as written).
    pub default: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Parameters a template may declare.
pub const TEMPLATE_PARAMS_MAX: usize = 20;
/// A text parameter's longest value.
pub const PARAM_TEXT_MAX: usize = 200;

/// A parameter's name: a lower-case letter, then letters, digits and `_` (at most 40), not
/// one of the built-in placeholders.
pub fn valid_param_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 40
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !BUILT_IN_PLACEHOLDERS.contains(&s)
}

/// `10s`, `2m`, `1h`, or a whole number of seconds.
pub fn duration_secs(t: &str) -> Option<u32> {
    let t = t.trim();
    if let Ok(n) = t.parse::<u32>() {
        return Some(n);
    }
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: u32 = num.parse().ok()?;
    n.checked_mul(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    })
}

impl TemplateParam {
    /// A value for this parameter, checked, in canonical form; the error says what it
    /// must be.
    pub fn check(&self, v: &str) -> Result<String, String> {
        let v = v.trim();
        match self.kind {
            ParamKind::Number => {
                let n: f64 = v
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| format!("{v:?} is not a number"))?;
                if let Some(min) = self.min
                    && n < min
                {
                    return Err(format!("{n} is below its minimum {min}"));
                }
                if let Some(max) = self.max
                    && n > max
                {
                    return Err(format!("{n} is above its maximum {max}"));
                }
                // 0.1, 500, -2: Rust never prints an exponent, so PromQL and the
                // conditions read it.
                Ok(format!("{}", if n == 0.0 { 0.0 } else { n }))
            }
            ParamKind::Duration => match duration_secs(v) {
                Some(s) if (1..=86_400).contains(&s) => {
                    Ok(if v.bytes().all(|b| b.is_ascii_digit()) {
                        format!("{s}s")
                    } else {
                        v.to_string()
                    })
                }
                _ => Err(format!(
                    "{v:?} is not a duration from 1s to 24h (e.g. 30s, 5m, 1h)"
                )),
            },
            ParamKind::Text => {
                let ok = !v.is_empty()
                    && v.chars().count() <= PARAM_TEXT_MAX
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || " _.:/@-".contains(c));
                if ok {
                    Ok(v.to_string())
                } else {
                    Err(format!(
                        "{v:?}: 1–{PARAM_TEXT_MAX} letters, digits, spaces and _ . : / @ -"
                    ))
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateItem {
    pub id: String,
    pub kind: ItemKind,
    pub text: String,
    /// Markdown shown next to the item.
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub requires_note: bool,
    pub required: bool,
    /// For `metric` items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricCheck>,
    /// For `probe` items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeCheck>,
    /// For `kafka_lag` items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_lag: Option<KafkaLagCheck>,
}

impl TemplateItem {
    /// The target binding an automated item uses, and the kind of target it needs.
    pub fn binding(&self) -> Option<(&str, &str)> {
        match (&self.metric, &self.probe, &self.kafka_lag) {
            (Some(m), _, _) => Some((m.target.as_str(), "prometheus")),
            (_, Some(p), _) => Some((p.target.as_str(), p.target_kind.as_str())),
            (_, _, Some(k)) => Some((k.target.as_str(), "kafka")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TemplateSections {
    #[serde(default)]
    pub pre: Vec<TemplateItem>,
    #[serde(default)]
    pub during: Vec<TemplateItem>,
    #[serde(default)]
    pub post: Vec<TemplateItem>,
}

impl TemplateSections {
    pub fn section(&self, s: Section) -> &[TemplateItem] {
        match s {
            Section::Pre => &self.pre,
            Section::During => &self.during,
            Section::Post => &self.post,
        }
    }
    pub fn len(&self) -> usize {
        self.pre.len() + self.during.len() + self.post.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A template as parsed and validated (what a deployment will be created from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Values chosen when a deployment is opened (their defaults otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TemplateParam>,
    pub sections: TemplateSections,
}

/// One stored version of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub template_id: String,
    pub version: i32,
    pub name: String,
    pub description: String,
    /// As its author wrote it.
    pub yaml: String,
    pub spec: TemplateSpec,
    pub built_in: bool,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A template in the list: its newest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSummary {
    pub template_id: String,
    pub latest_version: i32,
    pub name: String,
    pub description: String,
    pub built_in: bool,
    pub items: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

/// A template or item id: lower-case letters, digits and dashes, starting with a letter or
/// digit, at most 63 characters.
pub fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

// ---- deployments ---------------------------------------------------------------------

/// `draft → awaiting_approval → approved → in_progress → verifying → done`, or `rejected`,
/// `rolled_back`, `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Draft,
    AwaitingApproval,
    Approved,
    InProgress,
    Verifying,
    Done,
    Rejected,
    RolledBack,
    Cancelled,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 9] = [
        DeploymentStatus::Draft,
        DeploymentStatus::AwaitingApproval,
        DeploymentStatus::Approved,
        DeploymentStatus::InProgress,
        DeploymentStatus::Verifying,
        DeploymentStatus::Done,
        DeploymentStatus::Rejected,
        DeploymentStatus::RolledBack,
        DeploymentStatus::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Draft => "draft",
            DeploymentStatus::AwaitingApproval => "awaiting_approval",
            DeploymentStatus::Approved => "approved",
            DeploymentStatus::InProgress => "in_progress",
            DeploymentStatus::Verifying => "verifying",
            DeploymentStatus::Done => "done",
            DeploymentStatus::Rejected => "rejected",
            DeploymentStatus::RolledBack => "rolled_back",
            DeploymentStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Done
                | DeploymentStatus::Rejected
                | DeploymentStatus::RolledBack
                | DeploymentStatus::Cancelled
        )
    }
    /// The section whose items are worked on in this status (pre until approved).
    pub fn open_section(self) -> Option<Section> {
        match self {
            DeploymentStatus::Draft
            | DeploymentStatus::AwaitingApproval
            | DeploymentStatus::Approved => Some(Section::Pre),
            DeploymentStatus::InProgress => Some(Section::During),
            DeploymentStatus::Verifying => Some(Section::Post),
            _ => None,
        }
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item's state. `checked` (a person) and `passed` (a machine) count as done, and so
/// does `waived` (an approver, with a reason) — shown as waived everywhere, never as passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    Running,
    Passed,
    Failed,
    Inconclusive,
    Waived,
    Checked,
}

impl ItemState {
    pub const ALL: [ItemState; 7] = [
        ItemState::Pending,
        ItemState::Running,
        ItemState::Passed,
        ItemState::Failed,
        ItemState::Inconclusive,
        ItemState::Waived,
        ItemState::Checked,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Running => "running",
            ItemState::Passed => "passed",
            ItemState::Failed => "failed",
            ItemState::Inconclusive => "inconclusive",
            ItemState::Waived => "waived",
            ItemState::Checked => "checked",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn is_done(self) -> bool {
        matches!(
            self,
            ItemState::Passed | ItemState::Checked | ItemState::Waived
        )
    }
}

/// One item of one deployment (copied from its template version at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentItem {
    pub item_id: String,
    pub section: Section,
    pub kind: ItemKind,
    pub text: String,
    pub help: String,
    pub required: bool,
    pub requires_note: bool,
    pub state: ItemState,
    pub set_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub set_at: Option<OffsetDateTime>,
    pub note: Option<String>,
    /// A metric item's check (the query with the deployment's values filled in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricCheck>,
    /// A probe item's check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeCheck>,
    /// A `kafka_lag` item's check (the group with the deployment's values filled in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_lag: Option<KafkaLagCheck>,
    /// A probe item's current (or last) run: its evidence, at `/probe-runs/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_run: Option<i64>,
    /// The target an automated item was bound to (its name when the deployment was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// An automated item's run (each re-run is a new one; 0: never run).
    #[serde(default)]
    pub run: i32,
    /// The evidence: an automated item's newest measurements, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// One measurement of a metric item: when, its phase, the values (at most 20 series) or
/// the error, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub run: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `successful`, `failed` or `inconclusive`.
    pub phase: String,
    /// The series measured (at most [`MEASURED_SERIES_MAX`]); empty when the query failed.
    pub values: Vec<MeasuredSeries>,
    /// How many series the query returned.
    pub series: i32,
    pub message: String,
}

/// The most series a measurement keeps.
pub const MEASURED_SERIES_MAX: usize = 20;

/// One series' value as Prometheus wrote it (`"0.25"`, `"NaN"`, `"+Inf"`) and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredSeries {
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: String,
}

impl Measurement {
    /// The finite values, for charts.
    pub fn numbers(&self) -> Vec<f64> {
        self.values
            .iter()
            .filter_map(|s| s.value.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .collect()
    }
}

/// An approval or a rejection, with the frozen state of every item it was given on and that
/// snapshot's SHA-256, so an export proves what was signed. Voided by a later change to a
/// pre-deploy item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: String,
    pub decision: String,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The items' states when it was given, as the JSON text that was hashed.
    pub snapshot: String,
    /// SHA-256 of `snapshot`, hex.
    pub snapshot_sha256: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub voided_at: Option<OffsetDateTime>,
    pub voided_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub key: String,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub description: String,
    pub requester: String,
    pub template_id: String,
    pub template_version: i32,
    pub status: DeploymentStatus,
    pub commit: Option<String>,
    pub pipeline_url: Option<String>,
    /// The template parameters it was opened with (every one, defaults included).
    #[serde(default)]
    pub parameters: std::collections::BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// A deployment with its items, approvals, and what blocks its next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDetail {
    pub deployment: Deployment,
    pub items: Vec<DeploymentItem>,
    pub approvals: Vec<Approval>,
    pub approvals_needed: u32,
    /// Valid approvals so far (not voided, by distinct approvers).
    pub approvals_given: u32,
    pub blocking: Vec<String>,
}

/// One line of a diff between two template versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    /// `+` added, `-` removed, ` ` unchanged.
    pub op: char,
    pub text: String,
}

/// The line diff from `old` to `new` (longest common subsequence). Bounded: past 4 million
/// line pairs it says every old line was removed and every new one added.
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let line = |op, t: &str| DiffLine {
        op,
        text: t.to_string(),
    };
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        return a
            .iter()
            .map(|t| line('-', t))
            .chain(b.iter().map(|t| line('+', t)))
            .collect();
    }
    // lcs[i][j]: the common subsequence of a[i..] and b[j..].
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * (m + 1) + j] = if a[i] == b[j] {
                lcs[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            out.push(line(' ', a[i]));
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1] {
            out.push(line('-', a[i]));
            i += 1;
        } else {
            out.push(line('+', b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|t| line('-', t)));
    out.extend(b[j..].iter().map(|t| line('+', t)));
    out
}

/// An incident opened from (linked to) a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIncident {
    pub key: String,
    pub title: String,
    pub status: String,
    pub severity: String,
}

/// A deployment as an incident lists it: linked to it, or overlapping it in time on one of
/// its services in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentNearIncident {
    pub key: String,
    pub service: String,
    pub version: String,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub linked: bool,
}

/// `DEP-12`.
pub fn deployment_key(n: i64) -> String {
    format!("DEP-{n}")
}

pub fn parse_deployment_key(key: &str) -> Option<i64> {
    let prefix = key.get(..4)?;
    if !prefix.eq_ignore_ascii_case("DEP-") {
        return None;
    }
    let n: i64 = key[4..].parse().ok()?;
    (n > 0 && key[4..].bytes().all(|b| b.is_ascii_digit())).then_some(n)
}

/// Why `from → to` is not allowed (`None`: it is, as far as the status goes; the items
/// and approvals are checked by [`blocking`]). Approval and rejection happen by signing,
/// not by asking for the status.
pub fn transition_error(from: DeploymentStatus, to: DeploymentStatus) -> Option<String> {
    use DeploymentStatus::*;
    if from == to {
        return Some(format!("the deployment is {from} already"));
    }
    if from.is_final() {
        return Some(format!("the deployment is {from}: it is over"));
    }
    let ok = matches!(
        (from, to),
        (Draft, AwaitingApproval)
            | (Approved, InProgress)
            | (InProgress, Verifying)
            | (Verifying, Done)
            | (InProgress | Verifying, RolledBack)
            | (Draft | AwaitingApproval | Approved, Cancelled)
    );
    if ok {
        return None;
    }
    Some(match to {
        Approved | Rejected => {
            "approval and rejection are given by approvers signing (POST …/approvals), not set"
                .into()
        }
        _ => format!("a deployment cannot go from {from} to {to}"),
    })
}

/// What keeps the deployment from moving on from where it is: required items of the open
/// section not done, approvals missing. Empty: nothing blocks.
pub fn blocking(
    status: DeploymentStatus,
    items: &[DeploymentItem],
    approvals_needed: u32,
    approvals_given: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(section) = status.open_section() else {
        return out;
    };
    for it in items
        .iter()
        .filter(|i| i.section == section && i.required && !i.state.is_done())
    {
        out.push(format!(
            "{} item {} is {}",
            section.as_str(),
            it.item_id,
            it.state.as_str()
        ));
    }
    if matches!(
        status,
        DeploymentStatus::Draft | DeploymentStatus::AwaitingApproval
    ) && approvals_given < approvals_needed
    {
        out.push(format!("{approvals_given} of {approvals_needed} approvals"));
    }
    out
}

/// The CI gate: may the pipeline go on past `phase`? `pre`: the deployment is approved (every
/// required pre item done and sign-off complete) or later; `post`: it is done.
pub fn gate(
    phase: Section,
    status: DeploymentStatus,
    items: &[DeploymentItem],
    approvals_needed: u32,
    approvals_given: u32,
) -> (bool, Vec<String>) {
    use DeploymentStatus::*;
    let allowed = match phase {
        Section::Pre => matches!(status, Approved | InProgress | Verifying | Done),
        Section::Post => status == Done,
        Section::During => matches!(status, Verifying | Done),
    };
    if allowed {
        return (true, vec![]);
    }
    let mut why = match status {
        Rejected | RolledBack | Cancelled => vec![format!("the deployment is {status}")],
        _ => vec![],
    };
    // What is still to do, section by section up to the phase asked about.
    for s in Section::ALL {
        for it in items
            .iter()
            .filter(|i| i.section == s && i.required && !i.state.is_done())
        {
            why.push(format!(
                "{} item {} is {}",
                s.as_str(),
                it.item_id,
                it.state.as_str()
            ));
        }
        if s == Section::Pre && approvals_given < approvals_needed {
            why.push(format!("{approvals_given} of {approvals_needed} approvals"));
        }
        if s == phase {
            break;
        }
    }
    if why.is_empty() {
        why.push(format!("the deployment is {status}"));
    }
    (false, why)
}

/// Approvals needed per environment: `production=2,staging=1,*=0` (the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    rules: Vec<(String, u32)>,
    default: u32,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            rules: vec![("production".into(), 2), ("staging".into(), 1)],
            default: 0,
        }
    }
}

impl ApprovalPolicy {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut default = 0;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (env, n) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: write environment=count, e.g. production=2"))?;
            let n: u32 = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n <= 10)
                .ok_or_else(|| format!("{part:?}: the count is a number from 0 to 10"))?;
            match env.trim() {
                "*" => default = n,
                e if !e.is_empty() => rules.push((e.to_string(), n)),
                _ => return Err(format!("{part:?}: the environment is empty")),
            }
        }
        Ok(ApprovalPolicy { rules, default })
    }
    pub fn needed(&self, environment: &str) -> u32 {
        self.rules
            .iter()
            .find(|(e, _)| e == environment)
            .map(|(_, n)| *n)
            .unwrap_or(self.default)
    }
}

#[cfg(feature = "server")]
pub use parse::{ParsedTemplate, parse_template, parse_template_with};

#[cfg(feature = "server")]
mod add_item;
#[cfg(feature = "server")]
pub use add_item::{SUGGESTED_ITEM_MAX, add_item};

/// Whether a remediation's code block is a checklist item a finding suggests (a YAML list of
/// one metric item, as the Prometheus probe writes them): its page offers to add it to a
/// template in one click.
pub fn is_suggested_item(block: &str) -> bool {
    block.len() <= 8 * 1024
        && block.starts_with("- id: ")
        && block.lines().any(|l| l == "  kind: metric")
}

#[cfg(feature = "server")]
mod parse {
    use super::*;

    /// A template as its YAML says, and the version it claims (if any).
    #[derive(Debug)]
    pub struct ParsedTemplate {
        pub spec: TemplateSpec,
        pub version: Option<i32>,
        /// Each parameter's value as filled in (the one given, else its default).
        pub values: std::collections::BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawTemplate {
        id: String,
        name: String,
        #[serde(default)]
        version: Option<i32>,
        #[serde(default)]
        description: String,
        #[serde(default)]
        parameters: std::collections::BTreeMap<String, RawParam>,
        #[serde(default)]
        sections: RawSections,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawParam {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        default: serde_yaml_ng::Value,
        #[serde(default)]
        description: String,
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    }

    /// The template's parameters, checked, each with the value it takes (`given`, else its
    /// default).
    fn parameters(
        raw: std::collections::BTreeMap<String, RawParam>,
        given: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<(TemplateParam, String)>, String> {
        if raw.len() > TEMPLATE_PARAMS_MAX {
            return Err(format!(
                "parameters: {} declared: at most {TEMPLATE_PARAMS_MAX}",
                raw.len()
            ));
        }
        let mut params = Vec::new();
        for (name, r) in raw {
            let at = format!("parameters.{name}");
            if !valid_param_name(&name) {
                return Err(format!(
                    "{at}: name a parameter with a lower-case letter, then letters, digits and _ (at most 40); service, environment and version are filled in already"
                ));
            }
            let kind = match r.kind.as_deref().map(str::trim).unwrap_or("number") {
                "number" => ParamKind::Number,
                "duration" => ParamKind::Duration,
                "text" => ParamKind::Text,
                k => {
                    return Err(format!(
                        "{at}: type: {k:?}: one of number (the default), duration, text"
                    ));
                }
            };
            if kind != ParamKind::Number && (r.min.is_some() || r.max.is_some()) {
                return Err(format!("{at}: min and max are for number parameters"));
            }
            if let (Some(a), Some(b)) = (r.min, r.max)
                && a > b
            {
                return Err(format!("{at}: min {a} is above max {b}"));
            }
            check_len(&format!("{at}: description"), &r.description, 500)?;
            let default = match &r.default {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                _ => return Err(format!("{at}: default: a number or a string")),
            };
            let mut p = TemplateParam {
                name,
                kind,
                default: String::new(),
                description: r.description.trim().to_string(),
                min: r.min,
                max: r.max,
            };
            p.default = p
                .check(&default)
                .map_err(|e| format!("{at}: default: {e}"))?;
            params.push(p);
        }
        if let Some(unknown) = given.keys().find(|k| !params.iter().any(|p| &p.name == *k)) {
            return Err(format!(
                "parameters.{unknown}: the template has no parameter {unknown:?} ({})",
                if params.is_empty() {
                    "it has none".to_string()
                } else {
                    format!(
                        "its parameters: {}",
                        params
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        let mut values = Vec::new();
        for p in &params {
            let v = match given.get(&p.name) {
                Some(v) => p
                    .check(v)
                    .map_err(|e| format!("parameters.{}: {e}", p.name))?,
                None => p.default.clone(),
            };
            values.push((p.clone(), v));
        }
        Ok(values)
    }

    /// The placeholders in `s`, trimmed; an unclosed `{{` is an error.
    fn placeholder_names(s: &str) -> Result<Vec<&str>, ()> {
        let mut names = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let end = after.find("}}").ok_or(())?;
            names.push(after[..end].trim());
            rest = &after[end + 2..];
        }
        Ok(names)
    }

    /// Fills the parameters into every field of an item that takes them (escaped for a
    /// PromQL string in the query when a text parameter), noting which were used.
    fn fill_item(
        it: &mut RawItem,
        values: &[(TemplateParam, String)],
        used: &mut std::collections::BTreeSet<String>,
    ) {
        let mut fill = |s: &mut String, promql: bool| {
            if let Ok(names) = placeholder_names(s) {
                for n in names {
                    if values.iter().any(|(p, _)| p.name == n) {
                        used.insert(n.to_string());
                    }
                }
            }
            *s = fill_placeholders(s, |name| {
                values.iter().find(|(p, _)| p.name == name).map(|(p, v)| {
                    if promql && p.kind == ParamKind::Text {
                        promql_escape(v)
                    } else {
                        v.clone()
                    }
                })
            });
        };
        fill(&mut it.text, false);
        fill(&mut it.help, false);
        if let Some(q) = &mut it.query {
            fill(q, true);
        }
        for s in [&mut it.success, &mut it.failure, &mut it.group]
            .into_iter()
            .flatten()
        {
            fill(s, false);
        }
        for v in [&mut it.interval, &mut it.duration].into_iter().flatten() {
            if let serde_yaml_ng::Value::String(s) = v {
                fill(s, false);
            }
        }
        for v in it.params.iter_mut().flat_map(|m| m.values_mut()) {
            if let serde_yaml_ng::Value::String(s) = v {
                fill(s, false);
            }
        }
    }

    /// A field's placeholders after the parameters are filled in: an unknown one is an
    /// error, and so is a built-in one where Lookout does not fill it.
    fn check_placeholders(at: &str, field: &str, s: &str, built_ins: bool) -> Result<(), String> {
        let names =
            placeholder_names(s).map_err(|_| format!("{at}: {field}: `{{{{` without `}}}}`"))?;
        for name in names {
            if BUILT_IN_PLACEHOLDERS.contains(&name) {
                if !built_ins {
                    return Err(format!(
                        "{at}: {field}: {{{{{name}}}}} is filled in only in text, queries, groups and probe parameters"
                    ));
                }
            } else {
                return Err(format!(
                    "{at}: {field}: unknown placeholder {{{{{name}}}}}: declare it under parameters, or use {{{{service}}}}, {{{{environment}}}} or {{{{version}}}}"
                ));
            }
        }
        Ok(())
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawSections {
        #[serde(default)]
        pre: Vec<RawItem>,
        #[serde(default)]
        during: Vec<RawItem>,
        #[serde(default)]
        post: Vec<RawItem>,
    }

    fn yes() -> bool {
        true
    }

    /// Every key any item kind has, so an unknown key is reported where it is and a key of
    /// a kind that is not available yet leads to the kind's own message.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct RawItem {
        id: String,
        kind: String,
        text: String,
        #[serde(default)]
        help: String,
        #[serde(default)]
        requires_note: bool,
        #[serde(default = "yes")]
        required: bool,
        // probe and metric
        target: Option<String>,
        // probe
        probe: Option<String>,
        params: Option<std::collections::BTreeMap<String, serde_yaml_ng::Value>>,
        max_severity: Option<String>,
        codes: Option<Vec<String>>,
        // metric
        query: Option<String>,
        success: Option<String>,
        failure: Option<String>,
        interval: Option<serde_yaml_ng::Value>,
        count: Option<u32>,
        failure_limit: Option<u32>,
        inconclusive_limit: Option<u32>,
        // kafka_lag
        group: Option<String>,
        duration: Option<serde_yaml_ng::Value>,
        max_state: Option<String>,
    }

    /// A `kafka_lag` item's keys, checked.
    fn lag_check(at: &str, it: &RawItem) -> Result<KafkaLagCheck, String> {
        let target = it.target.clone().unwrap_or_default();
        if !valid_id(&target) {
            return Err(format!(
                "{at}: target: name the Kafka target binding (e.g. target: kafka); it is bound to a target when a deployment is created"
            ));
        }
        let group = it.group.as_deref().unwrap_or("").trim().to_string();
        check_placeholders(at, "group", &group, true)?;
        check_duration(at, "duration", it.duration.as_ref())?;
        if group.is_empty() || group.chars().count() > 255 || group.chars().any(|c| c.is_control())
        {
            return Err(format!(
                "{at}: group: the consumer group's name (1–255 characters; {{{{service}}}} is filled in)"
            ));
        }
        let duration_secs = match &it.duration {
            None => 300,
            Some(v) => seconds(v)
                .filter(|s| (10..=86_400).contains(s))
                .ok_or_else(|| format!("{at}: duration: from 10s to 24h, e.g. 5m"))?,
        };
        let max_state = it
            .max_state
            .as_deref()
            .unwrap_or("ok")
            .trim()
            .to_ascii_lowercase();
        if !["ok", "warn"].contains(&max_state.as_str()) {
            return Err(format!(
                "{at}: max_state: ok, or warn (the worst verdict the item accepts)"
            ));
        }
        Ok(KafkaLagCheck {
            target,
            group,
            interval_secs: (duration_secs / 10).clamp(5, 30),
            duration_secs,
            max_state,
        })
    }

    /// The `kafka_lag` keys another kind must not carry.
    fn lag_keys(it: &RawItem) -> Option<&'static str> {
        [
            ("group", it.group.is_some()),
            ("duration", it.duration.is_some()),
            ("max_state", it.max_state.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(k, _)| k)
    }

    /// A probe item's keys, checked against the catalogue (the probe, its parameters, its
    /// codes).
    fn probe_check(at: &str, it: &RawItem) -> Result<ProbeCheck, String> {
        let target = it.target.clone().unwrap_or_default();
        if !valid_id(&target) {
            return Err(format!(
                "{at}: target: name the target binding (e.g. target: db); it is bound to a target when a deployment is created"
            ));
        }
        let name = it.probe.as_deref().unwrap_or("").trim();
        let names = || {
            crate::kinds::probes()
                .iter()
                .map(|p| p.spec().name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let probe = crate::kinds::find_probe(name)
            .ok_or_else(|| format!("{at}: probe: {name:?} is not a probe: one of {}", names()))?;
        let spec = probe.spec();
        let mut params = std::collections::BTreeMap::new();
        for (k, v) in it.params.iter().flatten() {
            let text = match v {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                serde_yaml_ng::Value::Bool(b) => b.to_string(),
                _ => return Err(format!("{at}: params.{k}: a string, number or boolean")),
            };
            check_placeholders(at, &format!("params.{k}"), &text, true)?;
            params.insert(k.clone(), text);
        }
        probes::framework::validate_params(spec, &params)
            .map_err(|e| format!("{at}: params: {e}"))?;
        let max_severity = it
            .max_severity
            .as_deref()
            .unwrap_or("warning")
            .trim()
            .to_string();
        if !["critical", "warning", "info"].contains(&max_severity.as_str()) {
            return Err(format!(
                "{at}: max_severity: critical, warning or info (the item fails on a finding at or above it)"
            ));
        }
        let codes = it.codes.clone().unwrap_or_default();
        for c in &codes {
            let known = spec
                .codes
                .iter()
                .chain(probes::framework::COMMON_CODES)
                .any(|d| d.code == c);
            if !known {
                return Err(format!(
                    "{at}: codes: {c:?} is not a code of the {} probe",
                    spec.name
                ));
            }
        }
        Ok(ProbeCheck {
            target,
            probe: spec.name.to_string(),
            target_kind: spec.kind.to_string(),
            params,
            max_severity,
            codes,
        })
    }

    /// The probe keys a manual or metric item must not carry.
    fn probe_keys(it: &RawItem) -> Option<&'static str> {
        [
            ("probe", it.probe.is_some()),
            ("params", it.params.is_some()),
            ("max_severity", it.max_severity.is_some()),
            ("codes", it.codes.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(k, _)| k)
    }

    /// `10s`, `2m`, `1h` or a number of seconds.
    fn seconds(v: &serde_yaml_ng::Value) -> Option<u32> {
        if let Some(n) = v.as_u64() {
            return u32::try_from(n).ok();
        }
        let t = v.as_str()?.trim();
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        duration_secs(t)
    }

    /// A duration key's placeholders (none may be left once the parameters are filled).
    fn check_duration(
        at: &str,
        field: &str,
        v: Option<&serde_yaml_ng::Value>,
    ) -> Result<(), String> {
        match v {
            Some(serde_yaml_ng::Value::String(s)) => check_placeholders(at, field, s, false),
            _ => Ok(()),
        }
    }

    /// A metric item's keys, checked (the conditions parsed, the placeholders known).
    fn metric_check(at: &str, it: &RawItem) -> Result<MetricCheck, String> {
        use probes::prometheus::condition::Condition;
        let target = it.target.clone().unwrap_or_default();
        if !valid_id(&target) {
            return Err(format!(
                "{at}: target: name the Prometheus target binding (e.g. target: prometheus); it is bound to a target when a deployment is created"
            ));
        }
        let query = it.query.as_deref().unwrap_or("").trim().to_string();
        if query.is_empty() {
            return Err(format!("{at}: query: a metric item needs a PromQL query"));
        }
        check_len(&format!("{at}: query"), &query, METRIC_QUERY_MAX)?;
        check_placeholders(at, "query", &query, true)?;
        let success = it.success.as_deref().ok_or_else(|| {
            format!("{at}: success: a metric item needs a success condition (e.g. result < 0.001)")
        })?;
        check_placeholders(at, "success", success, false)?;
        Condition::parse(success).map_err(|e| format!("{at}: success: {e}"))?;
        if let Some(f) = &it.failure {
            check_placeholders(at, "failure", f, false)?;
            Condition::parse(f).map_err(|e| format!("{at}: failure: {e}"))?;
        }
        check_duration(at, "interval", it.interval.as_ref())?;
        let interval_secs = match &it.interval {
            None => 10,
            Some(v) => seconds(v)
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| format!("{at}: interval: from 1s to 1h, e.g. 10s, 2m, 1h"))?,
        };
        let count = it.count.unwrap_or(1);
        if !(1..=METRIC_COUNT_MAX).contains(&count) {
            return Err(format!("{at}: count: from 1 to {METRIC_COUNT_MAX}"));
        }
        let failure_limit = it.failure_limit.unwrap_or(0);
        let inconclusive_limit = it.inconclusive_limit.unwrap_or(0);
        if failure_limit >= count || inconclusive_limit >= count {
            return Err(format!(
                "{at}: failure_limit and inconclusive_limit must be below count ({count}), or the item could never fail or never be inconclusive"
            ));
        }
        Ok(MetricCheck {
            target,
            query,
            success: success.trim().to_string(),
            failure: it.failure.as_ref().map(|f| f.trim().to_string()),
            interval_secs,
            count,
            failure_limit,
            inconclusive_limit,
        })
    }

    /// The metric keys a manual item must not carry.
    fn metric_keys(it: &RawItem, with_target: bool) -> Option<&'static str> {
        [
            ("target", with_target && it.target.is_some()),
            ("query", it.query.is_some()),
            ("success", it.success.is_some()),
            ("failure", it.failure.is_some()),
            ("interval", it.interval.is_some()),
            ("count", it.count.is_some()),
            ("failure_limit", it.failure_limit.is_some()),
            ("inconclusive_limit", it.inconclusive_limit.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(k, _)| k)
    }

    /// serde_yaml's message without its own " at line L column C" (we put the position first).
    fn yaml_error(e: &serde_yaml_ng::Error) -> String {
        let msg = e.to_string();
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        match e.location() {
            Some(l) => format!("line {}, column {}: {msg}", l.line(), l.column()),
            None => msg,
        }
    }

    fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
        if s.chars().count() > max {
            return Err(format!("{what} is too long: at most {max} characters"));
        }
        Ok(())
    }

    /// Parses and validates a template. Errors say where: `line L, column C: …` for YAML
    /// syntax, wrong types and unknown keys; `sections.pre[2] (id): …` for rules about
    /// values. Bounded: the YAML's size, its nesting (the parser's recursion limit) and
    /// alias expansion (the parser's repetition limit) are all capped.
    pub fn parse_template(yaml: &str) -> Result<ParsedTemplate, String> {
        parse_template_with(yaml, &Default::default())
    }

    /// [`parse_template`] with chosen parameter values (checked: an unknown parameter or a
    /// value of the wrong shape is an error, and so is an item the values make invalid,
    /// e.g. an interval over an hour); the others take their defaults.
    pub fn parse_template_with(
        yaml: &str,
        given: &std::collections::BTreeMap<String, String>,
    ) -> Result<ParsedTemplate, String> {
        if yaml.len() > TEMPLATE_YAML_MAX {
            return Err(format!(
                "the template is {} bytes: at most {TEMPLATE_YAML_MAX}",
                yaml.len()
            ));
        }
        if yaml.trim().is_empty() {
            return Err("the template is empty".into());
        }
        let raw: RawTemplate = serde_yaml_ng::from_str(yaml).map_err(|e| yaml_error(&e))?;
        if !valid_id(&raw.id) {
            return Err(format!(
                "id {:?}: use lower-case letters, digits and dashes (at most 63, e.g. web-release)",
                raw.id
            ));
        }
        let name = raw.name.trim().to_string();
        if name.is_empty() {
            return Err("name: a template needs a name".into());
        }
        check_len("name", &name, TEMPLATE_NAME_MAX)?;
        check_len("description", &raw.description, TEMPLATE_DESCRIPTION_MAX)?;
        if let Some(v) = raw.version
            && v < 1
        {
            return Err(format!("version {v}: versions start at 1"));
        }
        let values = parameters(raw.parameters, given)?;
        let params: Vec<TemplateParam> = values.iter().map(|(p, _)| p.clone()).collect();
        let mut used = std::collections::BTreeSet::new();
        let mut seen: Vec<String> = Vec::new();
        let mut convert = |section: Section,
                           items: Vec<RawItem>|
         -> Result<Vec<TemplateItem>, String> {
            items
                .into_iter()
                .enumerate()
                .map(|(i, mut it)| {
                    fill_item(&mut it, &values, &mut used);
                    let at = format!("sections.{}[{i}]", section.as_str());
                    if !valid_id(&it.id) {
                        return Err(format!(
                            "{at}: id {:?}: use lower-case letters, digits and dashes (at most 63)",
                            it.id
                        ));
                    }
                    let at = format!("{at} ({})", it.id);
                    if seen.contains(&it.id) {
                        return Err(format!("{at}: the id is used twice; item ids are unique in a template"));
                    }
                    seen.push(it.id.clone());
                    let other = match it.kind.as_str() {
                        "kafka_lag" => None,
                        _ => lag_keys(&it),
                    };
                    if let Some(k) = other {
                        return Err(format!("{at}: `{k}` belongs to kafka_lag items, not {} ones", it.kind));
                    }
                    let mut kafka_lag = None;
                    let (kind, metric, probe) = match it.kind.as_str() {
                        "kafka_lag" => {
                            if let Some(k) = metric_keys(&it, false).or(probe_keys(&it)) {
                                return Err(format!("{at}: `{k}` does not belong to kafka_lag items"));
                            }
                            kafka_lag = Some(lag_check(&at, &it)?);
                            (ItemKind::KafkaLag, None, None)
                        }
                        "manual" | "approval" => {
                            if let Some(k) = metric_keys(&it, true).or(probe_keys(&it)) {
                                return Err(format!(
                                    "{at}: `{k}` belongs to automated items, not {} ones",
                                    it.kind
                                ));
                            }
                            let kind = if it.kind == "manual" {
                                ItemKind::Manual
                            } else {
                                ItemKind::Approval
                            };
                            (kind, None, None)
                        }
                        "metric" => {
                            if let Some(k) = probe_keys(&it) {
                                return Err(format!("{at}: `{k}` belongs to probe items, not metric ones"));
                            }
                            (ItemKind::Metric, Some(metric_check(&at, &it)?), None)
                        }
                        "probe" => {
                            if let Some(k) = metric_keys(&it, false) {
                                return Err(format!("{at}: `{k}` belongs to metric items, not probe ones"));
                            }
                            (ItemKind::Probe, None, Some(probe_check(&at, &it)?))
                        }
                        k => {
                            return Err(format!(
                                "{at}: unknown kind `{k}`: one of manual, approval, metric, probe, kafka_lag"
                            ));
                        }
                    };
                    let text = it.text.trim().to_string();
                    if text.is_empty() {
                        return Err(format!("{at}: text: an item needs a text"));
                    }
                    check_len(&format!("{at}: text"), &text, ITEM_TEXT_MAX)?;
                    check_placeholders(&at, "text", &text, true)?;
                    check_len(&format!("{at}: help"), &it.help, ITEM_HELP_MAX)?;
                    Ok(TemplateItem {
                        id: it.id,
                        kind,
                        text,
                        help: it.help,
                        requires_note: it.requires_note,
                        required: it.required,
                        metric,
                        probe,
                        kafka_lag,
                    })
                })
                .collect()
        };
        let count = raw.sections.pre.len() + raw.sections.during.len() + raw.sections.post.len();
        if count > TEMPLATE_ITEMS_MAX {
            return Err(format!(
                "sections: {count} items: at most {TEMPLATE_ITEMS_MAX} in a template"
            ));
        }
        let sections = TemplateSections {
            pre: convert(Section::Pre, raw.sections.pre)?,
            during: convert(Section::During, raw.sections.during)?,
            post: convert(Section::Post, raw.sections.post)?,
        };
        if sections.is_empty() {
            return Err("sections: a template needs at least one item".into());
        }
        if let Some(p) = params.iter().find(|p| !used.contains(&p.name)) {
            return Err(format!(
                "parameters.{}: no item uses it: write {{{{{}}}}} where its value goes, or remove it",
                p.name, p.name
            ));
        }
        // One binding, one kind of target.
        let mut kinds: Vec<(&str, &str, &str)> = Vec::new();
        for s in Section::ALL {
            for it in sections.section(s) {
                if let Some((b, k)) = it.binding() {
                    match kinds.iter().find(|(b2, _, _)| *b2 == b) {
                        Some((_, k2, first)) if *k2 != k => {
                            return Err(format!(
                                "sections.{} ({}): target binding {b:?} needs a {k} target, but item {first} uses it for a {k2} target: use another binding name",
                                s.as_str(),
                                it.id
                            ));
                        }
                        Some(_) => {}
                        None => kinds.push((b, k, &it.id)),
                    }
                }
            }
        }
        Ok(ParsedTemplate {
            spec: TemplateSpec {
                id: raw.id,
                name,
                description: raw.description,
                parameters: params,
                sections,
            },
            version: raw.version,
            values: values.into_iter().map(|(p, v)| (p.name, v)).collect(),
        })
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    const GOOD: &str = "id: web-release
name: Web release
description: The web tier.
sections:
  pre:
    - id: tests-green
      kind: manual
      text: All tests pass
      requires_note: true
  post:
    - id: smoke
      kind: manual
      text: Smoke test the checkout
      required: false
";

    #[test]
    fn a_good_template_parses() {
        let p = parse_template(GOOD).unwrap();
        assert_eq!(p.spec.id, "web-release");
        assert_eq!(p.version, None);
        assert_eq!(p.spec.sections.pre[0].kind, ItemKind::Manual);
        assert!(p.spec.sections.pre[0].requires_note && p.spec.sections.pre[0].required);
        assert!(!p.spec.sections.post[0].required, "required: false is kept");
        assert!(p.spec.sections.during.is_empty());
    }

    /// Each bad template and the start of the message it must give (position first).
    #[test]
    fn errors_say_what_and_where() {
        let m = |extra: &str| {
            format!(
                "id: a\nname: A\nsections:\n  pre:\n    - id: m\n      kind: metric\n      text: t\n{extra}"
            )
        };
        let ok = "      target: prom\n      query: up\n      success: result == 1\n";
        let metric_cases: Vec<(String, &str)> = vec![
            (m("      query: up\n      success: result == 1\n"), "sections.pre[0] (m): target: name the Prometheus target binding"),
            (m("      target: prom\n      success: result == 1\n"), "query: a metric item needs a PromQL query"),
            (m("      target: prom\n      query: up\n"), "success: a metric item needs a success condition"),
            (m("      target: prom\n      query: up\n      success: result ~ 1\n"), "success: \"result ~ 1\": expected one of"),
            (m(&format!("{ok}      failure: all(result\n")), "failure:"),
            (m(&format!("{ok}      interval: 0s\n")), "interval: from 1s to 1h"),
            (m(&format!("{ok}      interval: 2d\n")), "interval: from 1s to 1h"),
            (m(&format!("{ok}      count: 0\n")), "count: from 1 to 1000"),
            (m(&format!("{ok}      count: -1\n")), "line 11, column 14: sections.pre[0].count: invalid type: integer `-1`"),
            (m(&format!("{ok}      count: 3\n      failure_limit: 3\n")), "must be below count (3)"),
            (m("      target: prom\n      query: up{job=\"{{team}}\"}\n      success: result == 1\n"), "unknown placeholder {{team}}"),
            (m("      target: prom\n      query: up{job=\"{{service\"}\n      success: result == 1\n"), "`{{` without `}}`"),
            (
                "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: a, query: up}\n".to_string(),
                "sections.pre[0] (x): `query` belongs to automated items, not manual ones",
            ),
        ];
        for (yaml, want) in &metric_cases {
            let e = parse_template(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}\n→ {e}\n(wanted {want})");
        }
        let t = parse_template(&m(&format!(
            "{ok}      interval: 2m\n      count: 5\n      failure_limit: 1\n"
        )))
        .unwrap();
        let c = t.spec.sections.pre[0].metric.clone().unwrap();
        assert_eq!(
            (
                c.interval_secs,
                c.count,
                c.failure_limit,
                c.inconclusive_limit
            ),
            (120, 5, 1, 0)
        );
        let t = parse_template(&m(ok)).unwrap();
        let c = t.spec.sections.pre[0].metric.clone().unwrap();
        assert_eq!((c.interval_secs, c.count), (10, 1), "defaults");

        let cases: &[(&str, &str)] = &[
            // YAML syntax and types: line and column.
            (
                "id: a\nname: [unclosed\n",
                "line 2, column 7: name: invalid type",
            ),
            (
                "id: a\nname: 'unclosed\n",
                "line 3, column 1: found unexpected end of stream",
            ),
            (
                "id: a\n  name: x\n",
                "line 2, column 7: mapping values are not allowed",
            ),
            // An unknown key, where it is.
            (
                "id: a\nname: A\nsections:\n  pre:\n    - id: x\n      kind: manual\n      txt: hi\n",
                "line 7, column 7: sections.pre[0]: unknown field `txt`",
            ),
            (
                "id: a\nname: A\ncolour: red\n",
                "line 3, column 1: unknown field `colour`",
            ),
            // A wrong type.
            (
                "id: a\nname: A\nversion: two\n",
                "line 3, column 10: version: invalid type",
            ),
            ("id: a\n", "missing field `name`"),
            ("id: A_B\nname: A\n", "id \"A_B\": use lower-case"),
            ("id: a\nname: '  '\n", "name: a template needs a name"),
            (
                "id: a\nname: A\nversion: 0\n",
                "version 0: versions start at 1",
            ),
            (
                "id: a\nname: A\n",
                "sections: a template needs at least one item",
            ),
            (
                "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: a}\n    - {id: x, kind: manual, text: b}\n",
                "sections.pre[1] (x): the id is used twice",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: approval, text: a, query: up}\n",
                "sections.during[0] (x): `query` belongs to automated items, not approval ones",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: shell, text: a}\n",
                "unknown kind `shell`: one of manual, approval, metric, probe, kafka_lag",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: kafka_lag, text: a, target: k}\n",
                "sections.during[0] (x): group: the consumer group's name",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: kafka_lag, text: a, target: k, group: g, duration: 5s}\n",
                "duration: from 10s to 24h",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: kafka_lag, text: a, target: k, group: g, max_state: err}\n",
                "max_state: ok, or warn",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: kafka_lag, text: a, target: k, group: g, query: up}\n",
                "`query` does not belong to kafka_lag items",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: manual, text: a, group: g}\n",
                "`group` belongs to kafka_lag items, not manual ones",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, target: db, probe: nope}\n",
                "sections.during[0] (x): probe: \"nope\" is not a probe: one of redis",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, probe: postgres}\n",
                "sections.during[0] (x): target: name the target binding",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, target: db, probe: postgres, params: {bogus: 1}}\n",
                "sections.during[0] (x): params: unknown parameter",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, target: db, probe: postgres, codes: [REDIS_BIG_KEYS]}\n",
                "codes: \"REDIS_BIG_KEYS\" is not a code of the postgres probe",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, target: db, probe: postgres, max_severity: fatal}\n",
                "max_severity: critical, warning or info",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, target: db, probe: postgres, query: up}\n",
                "`query` belongs to metric items, not probe ones",
            ),
            (
                "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: probe, text: a, target: db, probe: postgres}\n    - {id: y, kind: probe, text: b, target: db, probe: redis}\n",
                "sections.pre (y): target binding \"db\" needs a redis target, but item x uses it for a postgres target",
            ),
            (
                "id: a\nname: A\nsections:\n  post:\n    - {id: x, kind: shell, text: a}\n",
                "sections.post[0] (x): unknown kind `shell`",
            ),
            (
                "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: ''}\n",
                "sections.pre[0] (x): text: an item needs a text",
            ),
            ("", "the template is empty"),
            ("[1, 2]", "invalid type: sequence"),
        ];
        for (yaml, want) in cases {
            match parse_template(yaml) {
                Ok(_) => panic!("accepted: {yaml:?}"),
                Err(e) => assert!(e.starts_with(want) || e.contains(want), "{yaml:?}: {e}"),
            }
        }
    }

    #[test]
    fn bombs_and_huge_templates_are_refused_quickly() {
        let t = std::time::Instant::now();
        // Billion laughs: aliases of aliases.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..12 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            bomb.push_str(&format!("{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        assert!(parse_template(&bomb).is_err());
        // Deep nesting.
        let deep = format!(
            "id: a\nname: A\ndescription: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let e = parse_template(&deep).unwrap_err();
        assert!(
            e.contains("recursion limit") || e.contains("invalid type"),
            "{e}"
        );
        // Too big.
        let big = format!(
            "id: a\nname: A\ndescription: {}\n",
            "x".repeat(TEMPLATE_YAML_MAX)
        );
        assert!(parse_template(&big).unwrap_err().contains("at most 65536"));
        // Too many items.
        let mut many = String::from("id: a\nname: A\nsections:\n  pre:\n");
        for i in 0..=TEMPLATE_ITEMS_MAX {
            many.push_str(&format!("    - {{id: i{i}, kind: manual, text: t}}\n"));
        }
        assert!(parse_template(&many).unwrap_err().contains("at most 200"));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn metric_runs_end_by_argo_rules() {
        let c = MetricCheck {
            target: "p".into(),
            query: "up".into(),
            success: "result == 1".into(),
            failure: None,
            interval_secs: 1,
            count: 5,
            failure_limit: 1,
            inconclusive_limit: 0,
        };
        use MetricOutcome::*;
        for ((ok, failed, inconclusive), want) in [
            ((0, 0, 0), Running),
            ((4, 0, 0), Running),
            ((5, 0, 0), Passed),
            ((4, 1, 0), Passed),
            ((1, 1, 0), Running),
            ((0, 2, 0), Failed),
            ((3, 0, 1), Inconclusive),
            ((0, 2, 1), Failed),
        ] {
            assert_eq!(
                metric_outcome(&c, ok, failed, inconclusive),
                want,
                "{ok} {failed} {inconclusive}"
            );
        }
    }

    #[test]
    fn probe_runs_end_items() {
        let c = |max: &str, codes: &[&str]| ProbeCheck {
            target: "db".into(),
            probe: "postgres".into(),
            target_kind: "postgres".into(),
            params: Default::default(),
            max_severity: max.into(),
            codes: codes.iter().map(|s| s.to_string()).collect(),
        };
        let f =
            |code: &str, sev: &str| (code.to_string(), sev.to_string(), format!("{code} title"));
        use ItemState::*;
        for (check, status, findings, want) in [
            (c("warning", &[]), "ok", vec![], Passed),
            (
                c("warning", &[]),
                "ok",
                vec![f("PG_SUMMARY", "info")],
                Passed,
            ),
            (
                c("warning", &[]),
                "ok",
                vec![f("PG_INVALID_INDEX", "warning")],
                Failed,
            ),
            (
                c("critical", &[]),
                "ok",
                vec![f("PG_INVALID_INDEX", "warning")],
                Passed,
            ),
            (c("info", &[]), "ok", vec![f("PG_SUMMARY", "info")], Failed),
            (
                c("warning", &["PG_INVALID_INDEX"]),
                "ok",
                vec![f("PG_DEAD_TUPLES", "critical")],
                Passed,
            ),
            (
                c("warning", &["PG_INVALID_INDEX"]),
                "ok",
                vec![f("PG_INVALID_INDEX", "warning")],
                Failed,
            ),
            (
                c("warning", &["PG_INVALID_INDEX"]),
                "failed",
                vec![f("TARGET_UNREACHABLE", "critical")],
                Inconclusive,
            ),
            (
                c("warning", &["PG_INVALID_INDEX"]),
                "ok",
                vec![f("TARGET_TIMEOUT", "critical")],
                Inconclusive,
            ),
            (c("warning", &[]), "timed_out", vec![], Inconclusive),
            (c("warning", &[]), "cancelled", vec![], Inconclusive),
        ] {
            let (got, why) = probe_outcome(&check, status, None, &findings);
            assert_eq!(got, want, "{check:?} {status} {findings:?}: {why}");
        }
    }

    #[test]
    fn lag_items_end_on_the_first_bad_verdict_or_after_their_duration() {
        let c = KafkaLagCheck {
            target: "k".into(),
            group: "g".into(),
            duration_secs: 300,
            max_state: "ok".into(),
            interval_secs: 30,
        };
        use MetricOutcome::*;
        for ((failed, inconclusive, span), want) in [
            ((0, 0, 0.0), Running),
            ((0, 0, 299.0), Running),
            ((0, 0, 300.0), Passed),
            ((0, 2, 300.0), Passed),
            ((1, 0, 10.0), Failed),
            ((1, 0, 400.0), Failed),
            ((0, 3, 10.0), Inconclusive),
        ] {
            assert_eq!(
                lag_outcome(&c, failed, inconclusive, span),
                want,
                "{failed} {inconclusive} {span}"
            );
        }
    }

    #[test]
    fn diffs_between_versions() {
        let d = |a: &str, b: &str| {
            line_diff(a, b)
                .into_iter()
                .map(|l| format!("{}{}", l.op, l.text))
                .collect::<Vec<_>>()
        };
        assert_eq!(d("a\nb\nc", "a\nb\nc"), [" a", " b", " c"]);
        assert_eq!(d("a\nb\nc", "a\nx\nc"), [" a", "-b", "+x", " c"]);
        assert_eq!(d("a\nc", "a\nb\nc\nd"), [" a", "+b", " c", "+d"]);
        assert_eq!(d("a\nb", ""), ["-a", "-b"]);
        assert_eq!(d("", "x"), ["+x"]);
        let big = "x\n".repeat(3_000);
        let other = "y\n".repeat(3_000);
        assert_eq!(
            line_diff(&big, &other).len(),
            6_000,
            "bounded: no 9M-cell table"
        );
    }

    const PARAMS: &str = "id: web
name: Web
parameters:
  max_error_percent: {default: 0.1, min: 0, max: 100, description: 5xx share}
  every: {type: duration, default: 30s}
  job: {type: text, default: api}
sections:
  during:
    - id: errors
      kind: metric
      text: Error rate <{{max_error_percent}}% for {{ service }}
      target: prom
      query: 100 * rate(errors{job=\"{{job}}\",svc=\"{{service}}\"}[5m])
      success: result < {{max_error_percent}}
      failure: result >= {{ max_error_percent }}
      interval: \"{{every}}\"
      count: 3
";

    fn given(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_fill_thresholds_intervals_and_queries() {
        // Defaults.
        let p = parse_template(PARAMS).unwrap();
        let names: Vec<&str> = p.spec.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["every", "job", "max_error_percent"]);
        let m = p.spec.sections.during[0].metric.clone().unwrap();
        assert_eq!(m.success, "result < 0.1");
        assert_eq!(m.failure.as_deref(), Some("result >= 0.1"));
        assert_eq!(m.interval_secs, 30);
        assert!(m.query.contains(r#"job="api""#), "{}", m.query);
        assert!(
            m.query.contains("{{service}}"),
            "built-ins are left for the deployment"
        );
        assert_eq!(
            p.spec.sections.during[0].text,
            "Error rate <0.1% for {{ service }}"
        );
        assert_eq!(
            p.values,
            given(&[
                ("every", "30s"),
                ("job", "api"),
                ("max_error_percent", "0.1")
            ])
        );
        // Chosen values; a text value is escaped inside the query's string.
        let p = parse_template_with(
            PARAMS,
            &given(&[
                ("max_error_percent", "2.5"),
                ("every", "1s"),
                ("job", "a\"b"),
            ]),
        );
        assert!(p.is_err(), "a quote is not a text parameter's character");
        let p = parse_template_with(
            PARAMS,
            &given(&[
                ("max_error_percent", " 2.5 "),
                ("every", "90"),
                ("job", "shop/api v2"),
            ]),
        )
        .unwrap();
        let m = p.spec.sections.during[0].metric.clone().unwrap();
        assert_eq!(m.success, "result < 2.5");
        assert_eq!(m.interval_secs, 90);
        assert!(m.query.contains(r#"job="shop/api v2""#));
        assert_eq!(p.values["every"], "90s");
        assert_eq!(
            p.spec.sections.during[0].text,
            "Error rate <2.5% for {{ service }}"
        );
        // The defaults themselves are what the template keeps.
        assert_eq!(
            p.spec
                .parameters
                .iter()
                .find(|p| p.name == "every")
                .unwrap()
                .default,
            "30s"
        );
    }

    /// Each bad parameter (in the template, or chosen for a deployment) and its message.
    #[test]
    fn parameter_errors_say_which() {
        let with = |params: &str, success: &str| {
            format!(
                "id: a\nname: A\nparameters:\n{params}sections:\n  pre:\n    - id: m\n      kind: metric\n      text: t\n      target: prom\n      query: up\n      success: {success}\n"
            )
        };
        let template_cases: Vec<(String, &str)> = vec![
            (
                with("  x: {default: 1}\n", "result < {{y}}"),
                "success: unknown placeholder {{y}}: declare it under parameters",
            ),
            (
                with("  x: {default: 1}\n", "result < 1"),
                "parameters.x: no item uses it",
            ),
            (
                with("  x: {default: 1}\n", "result < {{service}}"),
                "success: {{service}} is filled in only in text, queries",
            ),
            (
                with("  X: {default: 1}\n", "result < {{X}}"),
                "parameters.X: name a parameter with a lower-case letter",
            ),
            (
                with("  service: {default: 1}\n", "result < 1"),
                "parameters.service: name a parameter",
            ),
            (
                with("  x: {default: abc}\n", "result < {{x}}"),
                "parameters.x: default: \"abc\" is not a number",
            ),
            (
                with("  x: {default: .inf}\n", "result < {{x}}"),
                "parameters.x: default: \".inf\" is not a number",
            ),
            (
                with("  x: {default: 5, max: 1}\n", "result < {{x}}"),
                "parameters.x: default: 5 is above its maximum 1",
            ),
            (
                with("  x: {default: 5, min: 9, max: 1}\n", "result < {{x}}"),
                "parameters.x: min 9 is above max 1",
            ),
            (
                with("  x: {type: duration, default: 2d}\n", "result < {{x}}"),
                "parameters.x: default: \"2d\" is not a duration",
            ),
            (
                with(
                    "  x: {type: duration, default: 5m, min: 1}\n",
                    "result < {{x}}",
                ),
                "parameters.x: min and max are for number parameters",
            ),
            (
                with("  x: {type: colour, default: red}\n", "result < {{x}}"),
                "parameters.x: type: \"colour\": one of number",
            ),
            (
                with("  x: {type: text, default: \"a;b\"}\n", "result < {{x}}"),
                "parameters.x: default: \"a;b\": 1–200 letters",
            ),
            (
                with("  x: {type: text, default: [1]}\n", "result < {{x}}"),
                "parameters.x: default: a number or a string",
            ),
            (
                with("  x: {value: 1}\n", "result < {{x}}"),
                "line 4, column 7: parameters.x: unknown field `value`",
            ),
            (
                with("  x: {}\n", "result < {{x}}"),
                "missing field `default`",
            ),
            (
                with("  x: {type: text, default: abc}\n", "result < {{x}}"),
                "success: \"result < abc\"",
            ),
        ];
        for (yaml, want) in &template_cases {
            match parse_template(yaml) {
                Ok(_) => panic!("accepted:\n{yaml}"),
                Err(e) => assert!(e.contains(want), "{yaml}\nwant {want:?}\n got {e:?}"),
            }
        }
        let many: String = (0..21)
            .map(|i| format!("  p{i}: {{default: 1}}\n"))
            .collect();
        let e = parse_template(&with(&many, "result < 1")).unwrap_err();
        assert!(e.contains("parameters: 21 declared: at most 20"), "{e}");

        let chosen_cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("nope", "1")],
                "parameters.nope: the template has no parameter \"nope\" (its parameters: every, job, max_error_percent)",
            ),
            (
                vec![("max_error_percent", "1e400")],
                "parameters.max_error_percent: \"1e400\" is not a number",
            ),
            (vec![("max_error_percent", "NaN")], "is not a number"),
            (
                vec![("max_error_percent", "-1")],
                "parameters.max_error_percent: -1 is below its minimum 0",
            ),
            (
                vec![("max_error_percent", "101")],
                "is above its maximum 100",
            ),
            (
                vec![("every", "2h")],
                "sections.during[0] (errors): interval: from 1s to 1h",
            ),
            (
                vec![("every", "0s")],
                "parameters.every: \"0s\" is not a duration",
            ),
            (vec![("every", "5m}}")], "is not a duration"),
            (vec![("job", "")], "parameters.job: \"\": 1–200"),
            (vec![("job", "x\"}) or vector(1) #")], "parameters.job"),
            (vec![("job", "{{service}}")], "parameters.job"),
        ];
        for (vals, want) in &chosen_cases {
            match parse_template_with(PARAMS, &given(vals)) {
                Ok(_) => panic!("accepted {vals:?}"),
                Err(e) => assert!(e.contains(want), "{vals:?}\nwant {want:?}\n got {e:?}"),
            }
        }
        let no_params = parse_template_with(GOOD, &given(&[("x", "1")])).unwrap_err();
        assert!(no_params.contains("it has none"), "{no_params}");
    }

    /// The template docs/api.md shows is one Lookout accepts.
    #[test]
    fn the_documented_template_parses() {
        let doc = include_str!("../../docs/api.md");
        let start = doc.find("<<'YAML'\n").expect("the example") + "<<'YAML'\n".len();
        let end = start + doc[start..].find("\nYAML\n").expect("its end");
        let p = parse_template(&doc[start..end]).unwrap_or_else(|e| panic!("{e}"));
        let m = p.spec.sections.during[0].metric.clone().unwrap();
        assert_eq!((m.success.as_str(), m.interval_secs), ("result < 0.1", 30));
        assert_eq!(p.spec.parameters.len(), 2);
    }

    #[test]
    fn placeholders_fill_what_they_know() {
        let f = |s: &str| fill_placeholders(s, |n| (n == "a").then(|| "1".to_string()));
        assert_eq!(f("x{{a}}y{{ a }}z"), "x1y1z");
        assert_eq!(f("{{b}} {{a}}"), "{{b}} 1");
        assert_eq!(f("{{a"), "{{a");
        assert_eq!(f("{{a}}{{"), "1{{");
        assert_eq!(f("ü{{a}}ü"), "ü1ü");
    }

    #[test]
    fn placeholders_are_escaped_for_promql_strings() {
        assert_eq!(
            fill_query(
                r#"up{service="{{service}}",env="{{environment}}",v="{{version}}"}"#,
                "checkout",
                "prod",
                r#"1.0"} or vector(1) #\"#
            ),
            r#"up{service="checkout",env="prod",v="1.0\"} or vector(1) #\\"}"#
        );
    }

    #[test]
    fn ids() {
        for ok in ["a", "web-release", "0day", &"a".repeat(63)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use DeploymentStatus::*;

    fn item(section: Section, id: &str, required: bool, state: ItemState) -> DeploymentItem {
        DeploymentItem {
            item_id: id.into(),
            section,
            kind: ItemKind::Manual,
            text: id.into(),
            help: String::new(),
            required,
            requires_note: false,
            state,
            set_by: None,
            set_at: None,
            note: None,
            metric: None,
            probe: None,
            kafka_lag: None,
            probe_run: None,
            target: None,
            run: 0,
            measurements: vec![],
        }
    }

    /// Every pair of statuses: allowed or not (approved/rejected only by signing).
    #[test]
    fn the_status_machine() {
        let allowed = [
            (Draft, AwaitingApproval),
            (Draft, Cancelled),
            (AwaitingApproval, Cancelled),
            (Approved, InProgress),
            (Approved, Cancelled),
            (InProgress, Verifying),
            (InProgress, RolledBack),
            (Verifying, Done),
            (Verifying, RolledBack),
        ];
        for from in DeploymentStatus::ALL {
            for to in DeploymentStatus::ALL {
                let ok = transition_error(from, to).is_none();
                assert_eq!(
                    ok,
                    allowed.contains(&(from, to)),
                    "{from} → {to}: {:?}",
                    transition_error(from, to)
                );
            }
        }
        assert!(
            transition_error(AwaitingApproval, Approved)
                .unwrap()
                .contains("signing")
        );
        assert!(transition_error(Done, Draft).unwrap().contains("over"));
        assert!(transition_error(Draft, Draft).unwrap().contains("already"));
        for s in DeploymentStatus::ALL {
            assert_eq!(DeploymentStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn what_blocks_and_what_the_gate_says() {
        let items = vec![
            item(Section::Pre, "tests", true, ItemState::Checked),
            item(Section::Pre, "backup", true, ItemState::Pending),
            item(Section::Pre, "nice", false, ItemState::Pending),
            item(Section::Pre, "skipped", true, ItemState::Waived),
            item(Section::During, "watch", true, ItemState::Pending),
            item(Section::Post, "smoke", true, ItemState::Failed),
        ];
        // Draft: the required pre item not done and the approvals; optional and waived ones never block.
        assert_eq!(
            blocking(Draft, &items, 2, 0),
            ["pre item backup is pending", "0 of 2 approvals"]
        );
        assert_eq!(
            blocking(InProgress, &items, 2, 2),
            ["during item watch is pending"]
        );
        assert_eq!(
            blocking(Verifying, &items, 2, 2),
            ["post item smoke is failed"]
        );
        assert!(blocking(Done, &items, 2, 0).is_empty());
        // The gate: pre needs approved or later; post needs done.
        let cases: &[(Section, DeploymentStatus, u32, bool, &[&str])] = &[
            (
                Section::Pre,
                Draft,
                0,
                false,
                &["pre item backup is pending", "0 of 2 approvals"],
            ),
            (
                Section::Pre,
                AwaitingApproval,
                1,
                false,
                &["pre item backup is pending", "1 of 2 approvals"],
            ),
            (Section::Pre, Approved, 2, true, &[]),
            (Section::Pre, InProgress, 2, true, &[]),
            (
                Section::Pre,
                Rejected,
                0,
                false,
                &[
                    "the deployment is rejected",
                    "pre item backup is pending",
                    "0 of 2 approvals",
                ],
            ),
            (
                Section::Post,
                InProgress,
                2,
                false,
                &[
                    "pre item backup is pending",
                    "during item watch is pending",
                    "post item smoke is failed",
                ],
            ),
            (Section::Post, Done, 2, true, &[]),
            (
                Section::Post,
                RolledBack,
                2,
                false,
                &[
                    "the deployment is rolled_back",
                    "pre item backup is pending",
                    "during item watch is pending",
                    "post item smoke is failed",
                ],
            ),
        ];
        for (phase, status, given, ok, why) in cases {
            let (allowed, blocking) = gate(*phase, *status, &items, 2, *given);
            assert_eq!(
                (
                    allowed,
                    blocking.iter().map(String::as_str).collect::<Vec<_>>()
                ),
                (*ok, why.to_vec()),
                "{phase:?} {status}"
            );
        }
        // Nothing left to do but the status: the gate says so rather than nothing.
        let done_items = vec![item(Section::Pre, "a", true, ItemState::Checked)];
        assert_eq!(
            gate(Section::Post, Approved, &done_items, 0, 0).1,
            ["the deployment is approved"]
        );
    }

    #[test]
    fn approvals_per_environment() {
        let d = ApprovalPolicy::default();
        assert_eq!(
            (d.needed("production"), d.needed("staging"), d.needed("dev")),
            (2, 1, 0)
        );
        let p = ApprovalPolicy::parse("production=3, *=1").unwrap();
        assert_eq!((p.needed("production"), p.needed("staging")), (3, 1));
        for bad in ["production", "production=x", "production=11", "=2"] {
            assert!(ApprovalPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(parse_deployment_key("DEP-12"), Some(12));
        assert_eq!(parse_deployment_key("dep-7"), Some(7));
        for bad in [
            "DEP-",
            "DEP-0",
            "DEP--1",
            "DEP-1a",
            "INC-1",
            "DEP-+1",
            "DEP-99999999999999999999",
        ] {
            assert_eq!(parse_deployment_key(bad), None, "{bad}");
        }
    }
}
