//! Lag alerts: a group in WARN or ERR for longer than the configured time opens an incident
//! (or adds a finding to the group's open one) once per episode; its recovery adds an event.
//! A group that flaps back to OK before the time is up never alerts. What to do for a
//! group is a pure decision ([`decide`], table-tested); [`AlertPolicy::step_all`] carries
//! the decisions out.

use super::evaluate::Evaluated;
use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::incidents::{FindingSeverity, Severity, TimelineKind, incident_key};
use crate::storage::incidents as istore;
use crate::storage::kafka_lag::{self as store, AlertRow};
use probes::kafka::rules;
use sqlx::{Acquire, PgConnection};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use time::OffsetDateTime;

pub(super) struct AlertPolicy {
    pub(super) target_id: i64,
    pub(super) target_name: String,
    pub(super) environment: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) default_after: Option<Duration>,
}

fn system() -> Principal {
    Principal {
        user_id: None,
        name: "lookout:kafka-sampler".into(),
        role: Role::Admin,
        method: crate::accounts::AuthMethod::Cli,
        token_id: None,
        deploy_services: None,
        ingest: false,
    }
}

fn fact(name: &str, value: impl ToString) -> crate::incidents::EvidenceFact {
    crate::incidents::EvidenceFact {
        name: name.into(),
        value: value.to_string(),
    }
}

/// What one round means for one group's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Nothing,
    /// Unhealthy for the first time: an episode starts now.
    Start,
    /// Unhealthy for longer than allowed and not alerted yet: raise (episode began then).
    Raise {
        bad_since: OffsetDateTime,
    },
    /// Healthy again with an open episode: close it (and tell its incident when alerted).
    Recover {
        since: OffsetDateTime,
        incident: Option<i64>,
    },
}

/// The decision for a group with verdict `label`, its open episode `row`, and `after` (how
/// long it may stay unhealthy before it alerts; `None`: never).
pub(super) fn decide(
    label: &str,
    row: Option<AlertRow>,
    after: Option<Duration>,
    now: OffsetDateTime,
) -> Decision {
    match label {
        "WARN" | "ERR" => {
            let Some(after) = after else {
                return Decision::Nothing;
            };
            let Some((bad_since, alerted, _)) = row else {
                // An episode starts; with no grace at all it alerts at once.
                return if after.is_zero() {
                    Decision::Raise { bad_since: now }
                } else {
                    Decision::Start
                };
            };
            if alerted.is_some()
                || (now - bad_since).whole_milliseconds() < after.as_millis() as i128
            {
                Decision::Nothing
            } else {
                Decision::Raise { bad_since }
            }
        }
        "OK" => match row {
            Some((since, alerted, incident)) => Decision::Recover {
                since,
                incident: alerted.and(incident),
            },
            None => Decision::Nothing,
        },
        // INCOMPLETE: no verdict yet, nothing changes.
        _ => Decision::Nothing,
    }
}

impl AlertPolicy {
    fn after(&self, group: &str) -> Option<Duration> {
        let label = self
            .labels
            .get(&format!("kafka-alert-after-secs:{group}"))
            .or_else(|| self.labels.get("kafka-alert-after-secs"));
        match label.and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None => self.default_after,
        }
    }

    /// One round's alert steps: the open episodes are read in one query, new episodes
    /// written in one; only raising and recovering touch a group on its own.
    pub(super) async fn step_all(
        &self,
        db: &mut PgConnection,
        groups: &[Evaluated],
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        let rows: HashMap<String, AlertRow> = store::open_alerts(&mut *db, self.target_id)
            .await?
            .into_iter()
            .collect();
        let mut new_bad = vec![];
        for g in groups {
            let row = rows.get(&g.name).copied();
            match decide(g.label, row, self.after(&g.name), now) {
                Decision::Nothing => {}
                Decision::Start => new_bad.push(g.name.clone()),
                Decision::Raise { bad_since } => {
                    if row.is_none() {
                        new_bad.push(g.name.clone());
                    }
                    self.raise(&mut *db, g, bad_since, now).await?
                }
                Decision::Recover { since, incident } => {
                    self.recover(&mut *db, g, since, incident).await?
                }
            }
        }
        store::start_alerts(&mut *db, self.target_id, now, &new_bad).await?;
        Ok(())
    }

    async fn recover(
        &self,
        db: &mut PgConnection,
        g: &Evaluated,
        since: OffsetDateTime,
        incident: Option<i64>,
    ) -> DomainResult<()> {
        let (group, lag) = (g.name.as_str(), g.total);
        let mut tx = db.begin().await?;
        if let Some(iid) = incident
            && istore::by_id(&mut *tx, iid)
                .await?
                .is_some_and(|i| i.status.is_open())
        {
            istore::insert_event(
                &mut *tx,
                istore::NewEvent {
                    incident_id: iid,
                    actor: &system().name,
                    actor_id: None,
                    kind: TimelineKind::AlertResolved,
                    body: &format!(
                        "Consumer group {group} recovered: OK again (lag {lag}); it had been unhealthy since {since}"
                    ),
                    details: serde_json::json!({ "group": group, "target": self.target_name }),
                },
            )
            .await?;
        }
        store::end_alert(&mut tx, self.target_id, group).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn raise(
        &self,
        db: &mut PgConnection,
        g: &Evaluated,
        bad_since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        let (group, label, worst, reason, lag) = (
            g.name.as_str(),
            g.label,
            g.worst.as_str(),
            g.reason.as_str(),
            g.total,
        );
        let who = system();
        let key = format!("kafka:{}:{group}", self.target_id);
        let mut tx = db.begin().await?;
        store::lock_alert_key(&mut tx, &key).await?;
        let incident = match istore::open_by_group_key(&mut *tx, &key).await? {
            Some(i) => i.id,
            None => {
                let severity = if label == "ERR" {
                    Severity::Sev3
                } else {
                    Severity::Sev4
                };
                let service =
                    crate::alertmanager::sanitize_name(group).unwrap_or_else(|| "kafka".into());
                let environment = crate::alertmanager::sanitize_name(&self.environment)
                    .unwrap_or_else(|| "unknown".into());
                let title: String = format!(
                    "Kafka consumer group {group} is {worst} on {}",
                    self.target_name
                )
                .chars()
                .take(200)
                .collect();
                let (id, number) = istore::insert(
                    &mut *tx,
                    istore::NewIncidentRow {
                        title: &title,
                        summary: reason,
                        severity,
                        services: &[service],
                        environment: &environment,
                        labels: serde_json::json!({ "kafka-target": self.target_name, "kafka-group": group }),
                        commander_id: None,
                        created_by: &who.name,
                        created_by_id: None,
                        alert_group_key: Some(&key),
                        detected_at: Some(bad_since),
                    },
                )
                .await?;
                istore::insert_event(
                    &mut *tx,
                    istore::NewEvent {
                        incident_id: id,
                        actor: &who.name,
                        actor_id: None,
                        kind: TimelineKind::Created,
                        body: &format!(
                            "Opened {} as {severity}: consumer group {group} has been {label} since {bad_since}",
                            incident_key(number)
                        ),
                        details: serde_json::json!({ "group_key": key }),
                    },
                )
                .await?;
                id
            }
        };
        let evidence = crate::incidents::Evidence {
            facts: vec![
                fact("target", &self.target_name),
                fact("group", group),
                fact("verdict", format!("{label} ({worst})")),
                fact("lag", lag),
                fact("unhealthy since", bad_since),
            ],
            command: Some(format!(
                "GET /api/v1/kafka/{}/groups/{group}",
                self.target_id
            )),
            excerpt: None,
            tables: vec![],
            charts: vec![],
        };
        let title: String = format!("{group}: {reason}").chars().take(300).collect();
        let fid = istore::insert_finding(
            &mut *tx,
            istore::NewFindingRow {
                incident_id: Some(incident),
                code: rules::ALERT_CODE.code,
                source_kind: "probe",
                source_probe: Some("kafka-sampler"),
                source_target: Some(&self.target_name),
                severity: if label == "ERR" {
                    FindingSeverity::Critical
                } else {
                    FindingSeverity::Warning
                },
                title: &title,
                evidence: serde_json::to_value(&evidence).map_err(DomainError::internal)?,
                remediation: rules::ALERT_CODE.remediation,
                doc_link: None,
                created_by: &who.name,
                probe_run_id: None,
            },
        )
        .await?;
        istore::insert_event(
            &mut *tx,
            istore::NewEvent {
                incident_id: incident,
                actor: &who.name,
                actor_id: None,
                kind: TimelineKind::FindingAdded,
                body: &format!("{} [{label}] consumer group {group}: {reason}", rules::ALERT_CODE.code),
                details: serde_json::json!({ "finding_id": fid, "group": group, "target": self.target_name }),
            },
        )
        .await?;
        store::mark_alerted(&mut tx, self.target_id, group, now, incident).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_per_verdict_episode_and_grace() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let at = |s: i64| t0 + time::Duration::seconds(s);
        let min5 = Some(Duration::from_secs(300));
        use Decision::*;
        for (label, row, after, now, want) in [
            // Healthy with no episode, or no verdict yet: nothing.
            ("OK", None, min5, at(0), Nothing),
            (
                "INCOMPLETE",
                Some((at(0), None, None)),
                min5,
                at(900),
                Nothing,
            ),
            // Unhealthy: an episode starts; alerting off for the group: nothing at all.
            ("WARN", None, min5, at(0), Start),
            ("ERR", None, min5, at(0), Start),
            ("ERR", None, None, at(0), Nothing),
            ("ERR", Some((at(0), None, None)), None, at(900), Nothing),
            // The grace edge: 1 ms short of it nothing, at it raise (episode began then).
            (
                "WARN",
                Some((at(0), None, None)),
                min5,
                at(300) - time::Duration::milliseconds(1),
                Nothing,
            ),
            (
                "WARN",
                Some((at(0), None, None)),
                min5,
                at(300),
                Raise { bad_since: at(0) },
            ),
            (
                "ERR",
                Some((at(0), None, None)),
                min5,
                at(3600),
                Raise { bad_since: at(0) },
            ),
            // Once per episode.
            (
                "ERR",
                Some((at(0), Some(at(300)), Some(7))),
                min5,
                at(3600),
                Nothing,
            ),
            // A zero grace raises on the first unhealthy round.
            (
                "ERR",
                None,
                Some(Duration::ZERO),
                at(0),
                Raise { bad_since: at(0) },
            ),
            // Recovery: with the incident when it alerted, without when it flapped back.
            (
                "OK",
                Some((at(0), Some(at(300)), Some(7))),
                min5,
                at(900),
                Recover {
                    since: at(0),
                    incident: Some(7),
                },
            ),
            (
                "OK",
                Some((at(0), None, None)),
                min5,
                at(100),
                Recover {
                    since: at(0),
                    incident: None,
                },
            ),
        ] {
            assert_eq!(
                decide(label, row, after, now),
                want,
                "{label} {row:?} {after:?} {now}"
            );
        }
    }

    #[test]
    fn labels_override_the_grace_per_group() {
        let p = AlertPolicy {
            target_id: 1,
            target_name: "t".into(),
            environment: "e".into(),
            labels: [
                ("kafka-alert-after-secs".to_string(), "60".to_string()),
                ("kafka-alert-after-secs:quiet".to_string(), "0".to_string()),
                ("kafka-alert-after-secs:slow".to_string(), "900".to_string()),
                ("kafka-alert-after-secs:bad".to_string(), "soon".to_string()),
            ]
            .into_iter()
            .collect(),
            default_after: Some(Duration::from_secs(300)),
        };
        assert_eq!(p.after("any"), Some(Duration::from_secs(60)));
        assert_eq!(p.after("quiet"), None, "0 turns alerting off");
        assert_eq!(p.after("slow"), Some(Duration::from_secs(900)));
        assert_eq!(
            p.after("bad"),
            Some(Duration::from_secs(300)),
            "unparseable: the default"
        );
    }
}
