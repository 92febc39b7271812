//! Alertmanager's webhook (payload version 4). A firing group opens an incident — or adds
//! an event to the open incident with the same `groupKey` — and resolved alerts add a
//! "resolved" event. Severity comes from a configurable label mapping.

use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::incidents::*;
use crate::storage::incidents as store;
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub version: String,
    pub group_key: String,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
    #[serde(default)]
    pub truncated_alerts: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// Maps an alert label's value to a severity. Default: label `severity`,
/// critical → SEV2, warning → SEV3, anything else → SEV4.
#[derive(Debug, Clone)]
pub struct SeverityMapping {
    pub label: String,
    pub values: Vec<(String, Severity)>,
    pub fallback: Severity,
}

impl Default for SeverityMapping {
    fn default() -> Self {
        Self {
            label: "severity".into(),
            values: vec![
                ("critical".into(), Severity::Sev2),
                ("warning".into(), Severity::Sev3),
            ],
            fallback: Severity::Sev4,
        }
    }
}

impl SeverityMapping {
    /// Parses `label:value=SEVn,value=SEVn[,*=SEVn]`, e.g. `severity:page=SEV1,critical=SEV2,*=SEV4`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (label, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("expected label:value=SEVn,…, got {spec:?}"))?;
        let label = label.trim();
        check_name("label", label)?;
        let mut m = SeverityMapping {
            label: label.into(),
            values: vec![],
            fallback: Severity::Sev4,
        };
        for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (v, sev) = pair
                .split_once('=')
                .ok_or_else(|| format!("expected value=SEVn, got {pair:?}"))?;
            let sev: Severity = sev.parse()?;
            if v.trim() == "*" {
                m.fallback = sev;
            } else {
                m.values.push((v.trim().to_ascii_lowercase(), sev));
            }
        }
        Ok(m)
    }

    pub fn severity(&self, labels: &BTreeMap<String, String>) -> Severity {
        labels
            .get(&self.label)
            .and_then(|v| {
                let v = v.to_ascii_lowercase();
                self.values.iter().find(|(k, _)| *k == v).map(|(_, s)| *s)
            })
            .unwrap_or(self.fallback)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub incident: Option<String>,
    pub created: bool,
    pub firing: usize,
    pub resolved: usize,
}

pub fn validate(w: &Webhook) -> DomainResult<()> {
    if w.version != "4" {
        return Err(DomainError::invalid(format!(
            "unsupported Alertmanager webhook version {:?} (expected \"4\")",
            w.version
        )));
    }
    if w.group_key.is_empty() || w.group_key.len() > 2000 {
        return Err(DomainError::invalid("groupKey must be 1–2000 characters"));
    }
    if !matches!(w.status.as_str(), "firing" | "resolved") {
        return Err(DomainError::invalid(format!(
            "unknown group status {:?}",
            w.status
        )));
    }
    if w.alerts.is_empty() || w.alerts.len() > 1000 {
        return Err(DomainError::invalid("alerts must hold 1–1000 alerts"));
    }
    for a in &w.alerts {
        if !matches!(a.status.as_str(), "firing" | "resolved") {
            return Err(DomainError::invalid(format!(
                "unknown alert status {:?}",
                a.status
            )));
        }
    }
    Ok(())
}

fn name_of(a: &Alert) -> String {
    a.labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "alert".into())
}

pub(crate) fn sanitize_name(s: &str) -> Option<String> {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':'))
        .take(limits::NAME_MAX)
        .collect();
    (!v.is_empty()).then_some(v)
}

fn alerts_json(alerts: &[&Alert]) -> serde_json::Value {
    serde_json::Value::Array(
        alerts
            .iter()
            .take(50)
            .map(|a| {
                serde_json::json!({
                    "alertname": name_of(a),
                    "labels": a.labels,
                    "summary": a.annotations.get("summary"),
                    "starts_at": a.starts_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                    "fingerprint": a.fingerprint,
                    "generator_url": a.generator_url,
                })
            })
            .collect(),
    )
}

fn describe(verb: &str, alerts: &[&Alert]) -> String {
    let names: Vec<String> = alerts
        .iter()
        .take(5)
        .map(|a| {
            let scope = a
                .labels
                .get("service")
                .or_else(|| a.labels.get("job"))
                .or_else(|| a.labels.get("instance"));
            match scope {
                Some(s) => format!("{} ({s})", name_of(a)),
                None => name_of(a),
            }
        })
        .collect();
    let more = alerts.len().saturating_sub(5);
    format!(
        "{} alert{} {verb}: {}{}",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

pub async fn receive(
    pool: &PgPool,
    who: &Principal,
    w: &Webhook,
    mapping: &SeverityMapping,
) -> DomainResult<Outcome> {
    who.require(Role::Responder)?;
    validate(w)?;
    let firing: Vec<&Alert> = w.alerts.iter().filter(|a| a.status == "firing").collect();
    let resolved: Vec<&Alert> = w.alerts.iter().filter(|a| a.status == "resolved").collect();
    let mut tx = pool.begin().await?;
    // One group at a time: concurrent deliveries for the same group must not open two incidents.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lookout.alert_group'), hashtext($1))")
        .bind(&w.group_key)
        .execute(&mut *tx)
        .await?;
    let mut incident = store::open_by_group_key(&mut *tx, &w.group_key).await?;
    let mut created = false;
    if incident.is_none() && !firing.is_empty() {
        let all_labels = if w.common_labels.is_empty() {
            &firing[0].labels
        } else {
            &w.common_labels
        };
        let severity = firing
            .iter()
            .map(|a| mapping.severity(&a.labels))
            .min()
            .unwrap_or(mapping.fallback);
        let title: String = w
            .common_annotations
            .get("summary")
            .or_else(|| all_labels.get("alertname"))
            .cloned()
            .unwrap_or_else(|| "Alert from Alertmanager".into())
            .chars()
            .take(limits::TITLE_MAX)
            .collect();
        let services: Vec<String> = ["service", "app", "job"]
            .iter()
            .find_map(|k| all_labels.get(*k).and_then(|v| sanitize_name(v)))
            .map(|s| vec![s])
            .unwrap_or_else(|| vec!["unknown".into()]);
        let environment = ["environment", "env", "cluster"]
            .iter()
            .find_map(|k| all_labels.get(*k).and_then(|v| sanitize_name(v)))
            .unwrap_or_else(|| "unknown".into());
        let mut labels = serde_json::Map::new();
        for (k, v) in w.group_labels.iter().take(30) {
            if let Some(k) = sanitize_name(k) {
                labels.insert(k, serde_json::Value::String(v.chars().take(200).collect()));
            }
        }
        let summary = w
            .common_annotations
            .get("description")
            .cloned()
            .unwrap_or_default()
            .chars()
            .take(limits::SUMMARY_MAX)
            .collect::<String>();
        let detected = firing
            .iter()
            .filter_map(|a| a.starts_at)
            .min()
            .filter(|t| *t <= OffsetDateTime::now_utc());
        let (id, number) = store::insert(
            &mut *tx,
            store::NewIncidentRow {
                title: &title,
                summary: &summary,
                severity,
                services: &services,
                environment: &environment,
                labels: serde_json::Value::Object(labels),
                commander_id: None,
                created_by: &who.name,
                created_by_id: who.user_id,
                alert_group_key: Some(&w.group_key),
                detected_at: detected,
            },
        )
        .await?;
        store::insert_event(
            &mut *tx,
            store::NewEvent {
                incident_id: id,
                actor: &who.name,
                actor_id: who.user_id,
                kind: TimelineKind::Created,
                body: &format!("Opened {} as {severity} by Alertmanager ({})", incident_key(number), w.receiver),
                details: serde_json::json!({ "group_key": w.group_key, "external_url": w.external_url }),
            },
        )
        .await?;
        incident = store::by_id(&mut *tx, id).await?;
        created = true;
    }
    let Some(inc) = incident else {
        // Resolved alerts for a group with no open incident: nothing to record.
        tx.rollback().await?;
        return Ok(Outcome {
            incident: None,
            created: false,
            firing: firing.len(),
            resolved: resolved.len(),
        });
    };
    if !firing.is_empty() {
        store::insert_event(
            &mut *tx,
            store::NewEvent {
                incident_id: inc.id,
                actor: &who.name,
                actor_id: who.user_id,
                kind: TimelineKind::AlertReceived,
                body: &describe("firing", &firing),
                details: serde_json::json!({ "group_key": w.group_key, "alerts": alerts_json(&firing), "truncated_alerts": w.truncated_alerts }),
            },
        )
        .await?;
    }
    if !resolved.is_empty() {
        store::insert_event(
            &mut *tx,
            store::NewEvent {
                incident_id: inc.id,
                actor: &who.name,
                actor_id: who.user_id,
                kind: TimelineKind::AlertResolved,
                body: &describe("resolved", &resolved),
                details: serde_json::json!({ "group_key": w.group_key, "alerts": alerts_json(&resolved) }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Outcome {
        incident: Some(incident_key(inc.number)),
        created,
        firing: firing.len(),
        resolved: resolved.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping() {
        let m = SeverityMapping::default();
        let l = |v: &str| BTreeMap::from([("severity".to_string(), v.to_string())]);
        assert_eq!(m.severity(&l("critical")), Severity::Sev2);
        assert_eq!(m.severity(&l("Warning")), Severity::Sev3);
        assert_eq!(m.severity(&l("info")), Severity::Sev4);
        assert_eq!(m.severity(&BTreeMap::new()), Severity::Sev4);
    }

    #[test]
    fn custom_mapping() {
        let m = SeverityMapping::parse("priority:p1=SEV1, p2=SEV2, *=SEV3").unwrap();
        let l = |v: &str| BTreeMap::from([("priority".to_string(), v.to_string())]);
        assert_eq!(m.severity(&l("P1")), Severity::Sev1);
        assert_eq!(m.severity(&l("p9")), Severity::Sev3);
        assert!(SeverityMapping::parse("nolabel").is_err());
        assert!(SeverityMapping::parse("sev:x=SEV9").is_err());
    }
}
