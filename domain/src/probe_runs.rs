//! Probe runs and the probe catalogue, as the browser and the API see them (plain types,
//! shared with the wasm build; the probes themselves live server-side in `probes`).

use crate::incidents::{Finding, FindingSeverity};
use crate::target_kind::TargetKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(sqlx::Type))]
#[cfg_attr(
    feature = "server",
    sqlx(type_name = "probe_run_status", rename_all = "snake_case")
)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    Cancelled,
    TimedOut,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed out",
        }
    }
    pub fn is_done(self) -> bool {
        self != RunStatus::Running
    }

    /// How a finished run is recorded (the one status type: the probe framework reports
    /// only its result).
    #[cfg(feature = "server")]
    pub fn of(o: &probes::framework::RunOutcome) -> RunStatus {
        if o.is_ok() {
            RunStatus::Ok
        } else if o.cancelled() {
            RunStatus::Cancelled
        } else if o.timed_out() {
            RunStatus::TimedOut
        } else {
            RunStatus::Failed
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    pub name: String,
    pub label: String,
    pub help: String,
    /// `int`, `text` or `bool`.
    pub kind: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub default: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    pub code: String,
    pub severity: FindingSeverity,
    pub meaning: String,
    pub remediation: String,
}

/// One entry of `GET /api/v1/probes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub name: String,
    pub kind: TargetKind,
    pub title: String,
    pub description: String,
    pub params: Vec<ParamInfo>,
    pub steps: Vec<String>,
    pub codes: Vec<CodeInfo>,
    pub run_timeout_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    pub name: String,
    /// pending, running, done, failed, skipped
    pub status: String,
    pub elapsed_ms: u64,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRun {
    pub id: i64,
    pub target_id: Option<i64>,
    pub target_name: String,
    pub target_kind: TargetKind,
    pub probe: String,
    pub params: BTreeMap<String, String>,
    pub incident_key: Option<String>,
    pub started_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Final duration, or the time so far while running.
    pub elapsed_ms: i64,
    pub status: RunStatus,
    pub error: Option<String>,
    pub steps: Vec<StepInfo>,
    /// Commands / queries sent to the target.
    pub commands: i64,
    pub finding_count: i32,
    pub cancel_requested: bool,
}

impl ProbeRun {
    pub fn steps_done(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.status.as_str(), "done" | "failed" | "skipped"))
            .count()
    }
    pub fn current_step(&self) -> Option<&StepInfo> {
        self.steps.iter().find(|s| s.status == "running")
    }
}

/// A run with its findings (when done) and raw evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRunDetail {
    pub run: ProbeRun,
    pub findings: Vec<Finding>,
    pub evidence: BTreeMap<String, String>,
}
