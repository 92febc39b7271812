//! The postmortem as Markdown: a pure function of the incident, so it is tested without a
//! database. Sections: summary, impact window, severity and roles, timeline (pinned first,
//! then chronological), findings with evidence and remediation, action items.

use crate::incidents::*;
use std::fmt::Write;
use time::OffsetDateTime;
use time::macros::format_description;

fn ts(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(d: &IncidentDetail, now: OffsetDateTime) -> String {
    let i = &d.incident;
    let mut o = String::new();
    let _ = writeln!(o, "# Postmortem: {} — {}\n", i.key, i.title);
    let _ = writeln!(o, "_Exported {} from Lookout._\n", ts(now));
    let _ = writeln!(o, "## Summary\n");
    if d.summary.trim().is_empty() {
        let _ = writeln!(o, "_No summary was written._\n");
    } else {
        let _ = writeln!(o, "{}\n", d.summary.trim());
    }
    let _ = writeln!(o, "## Impact\n");
    let end = i.times.resolved_at;
    let _ = writeln!(
        o,
        "- **Impact window:** {} → {}{}",
        ts(i.times.detected_at),
        end.map(ts).unwrap_or_else(|| "not resolved".into()),
        end.map(|e| format!(
            " ({})",
            human_duration((e - i.times.detected_at).as_seconds_f64())
        ))
        .unwrap_or_default()
    );
    let _ = writeln!(o, "- **Severity:** {}", i.severity);
    let _ = writeln!(o, "- **Status:** {}", i.status);
    let _ = writeln!(o, "- **Services:** {}", i.services.join(", "));
    let _ = writeln!(o, "- **Environment:** {}", i.environment);
    for (name, t) in [
        ("Detected", Some(i.times.detected_at)),
        ("Acknowledged", i.times.acknowledged_at),
        ("Mitigated", i.times.mitigated_at),
        ("Resolved", i.times.resolved_at),
        ("Closed", i.times.closed_at),
    ] {
        if let Some(t) = t {
            let _ = writeln!(o, "- **{name}:** {}", ts(t));
        }
    }
    let _ = writeln!(o, "\n## Roles\n");
    let _ = writeln!(
        o,
        "- **Commander:** {}",
        i.commander.as_deref().unwrap_or("—")
    );
    let _ = writeln!(o, "- **Scribe:** {}", d.scribe.as_deref().unwrap_or("—"));
    let _ = writeln!(
        o,
        "- **Responders:** {}",
        if d.responders.is_empty() {
            "—".to_string()
        } else {
            d.responders.join(", ")
        }
    );
    let _ = writeln!(o, "\n## Timeline\n");
    let pinned: Vec<&TimelineEvent> = d.timeline.iter().filter(|e| e.pinned).collect();
    if !pinned.is_empty() {
        let _ = writeln!(o, "### Pinned\n");
        for e in &pinned {
            event_line(&mut o, e);
        }
        let _ = writeln!(o, "\n### All events\n");
    }
    let mut events: Vec<&TimelineEvent> = d.timeline.iter().collect();
    events.sort_by_key(|e| (e.at, e.id));
    for e in events {
        event_line(&mut o, e);
    }
    let _ = writeln!(o, "\n## Findings\n");
    if d.findings.is_empty() {
        let _ = writeln!(o, "_No findings were recorded._");
    }
    for f in &d.findings {
        let _ = writeln!(o, "### [{}] {} — {}\n", f.severity, f.code, f.title);
        let source = match (&f.source.probe, &f.source.target) {
            (Some(p), Some(t)) => format!("probe `{p}` on `{t}`"),
            _ => "entered by hand".into(),
        };
        let _ = writeln!(
            o,
            "- **Status:** {}{}",
            f.status,
            f.status_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "- **Source:** {source}");
        if let Some(link) = &f.doc_link {
            let _ = writeln!(o, "- **Docs:** {link}");
        }
        if !f.evidence.facts.is_empty() {
            let _ = writeln!(o, "\n| Evidence | Value |\n|---|---|");
            for fact in &f.evidence.facts {
                let _ = writeln!(o, "| {} | {} |", cell(&fact.name), cell(&fact.value));
            }
        }
        if let Some(cmd) = &f.evidence.command {
            let _ = writeln!(o, "\nProduced by:\n\n```\n{cmd}\n```");
        }
        if let Some(x) = &f.evidence.excerpt {
            let _ = writeln!(o, "\nExcerpt:\n\n```\n{x}\n```");
        }
        if !f.remediation.trim().is_empty() {
            let _ = writeln!(o, "\n**Remediation**\n\n{}", f.remediation.trim());
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Action items\n");
    if d.action_items.is_empty() {
        let _ = writeln!(o, "_No action items._");
    } else {
        let _ = writeln!(o, "| Item | Owner | Due | Status |\n|---|---|---|---|");
        for a in &d.action_items {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                cell(&a.title),
                a.owner.as_deref().unwrap_or("—"),
                a.due_date
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "—".into()),
                a.status
            );
        }
    }
    o
}

fn event_line(o: &mut String, e: &TimelineEvent) {
    let body = e.body.trim().replace('\n', "\n  ");
    let _ = writeln!(
        o,
        "- **{}** — {} ({}){}: {}",
        ts(e.at),
        e.kind.label(),
        e.actor,
        if e.history.is_empty() {
            ""
        } else {
            " _(edited)_"
        },
        body
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_763_900_000).unwrap() + time::Duration::minutes(min)
    }

    #[test]
    fn sections_in_order_with_pinned_first() {
        let ev = |id, at, kind, body: &str, pinned| TimelineEvent {
            id,
            at: t(at),
            actor: "ana".into(),
            kind,
            body: body.into(),
            body_html: String::new(),
            details: String::new(),
            pinned,
            history: vec![],
        };
        let d = IncidentDetail {
            incident: IncidentSummary {
                id: 1,
                key: "INC-7".into(),
                title: "Checkout errors".into(),
                severity: Severity::Sev2,
                status: IncidentStatus::Resolved,
                services: vec!["checkout".into()],
                environment: "production".into(),
                labels: Default::default(),
                commander: Some("ana".into()),
                times: StageTimes {
                    detected_at: t(0),
                    acknowledged_at: Some(t(3)),
                    mitigated_at: Some(t(20)),
                    resolved_at: Some(t(65)),
                    closed_at: None,
                },
                created_at: t(0),
            },
            summary: "Payments failed.".into(),
            summary_html: String::new(),
            scribe: None,
            responders: vec!["bo".into()],
            created_by: "ana".into(),
            timeline: vec![
                ev(1, 0, TimelineKind::Created, "Opened", false),
                ev(2, 10, TimelineKind::Note, "Redis is full", true),
            ],
            findings: vec![],
            action_items: vec![],
        };
        let md = render(&d, t(100));
        let order = [
            "# Postmortem: INC-7",
            "## Summary",
            "## Impact",
            "## Roles",
            "## Timeline",
            "### Pinned",
            "### All events",
            "## Findings",
            "## Action items",
        ];
        let mut pos = 0;
        for h in order {
            let p = md[pos..]
                .find(h)
                .unwrap_or_else(|| panic!("{h} after {pos} in\n{md}"))
                + pos;
            pos = p;
        }
        assert!(md.contains("(1 h 05 m)"), "{md}");
        assert!(md.contains("- **Commander:** ana"));
        let pinned_at = md.find("### Pinned").unwrap();
        assert!(
            md[pinned_at..].find("Redis is full").unwrap()
                < md[pinned_at..].find("### All events").unwrap()
        );
    }
}
