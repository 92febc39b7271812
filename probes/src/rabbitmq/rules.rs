//! The RabbitMQ probe's rules: pure functions from what the management API said (two queue
//! samples some seconds apart, the nodes, the overview) to findings, each with a table of
//! cases below.

use crate::framework::Severity;
use serde_json::Value;

/// One queue as the management API lists it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queue {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    pub messages: f64,
    pub ready: f64,
    pub unacked: f64,
    pub consumers: f64,
    /// Share of time the consumers could take new messages (0–1), when known.
    pub utilisation: Option<f64>,
    pub publish_rate: f64,
    pub deliver_rate: f64,
    pub ack_rate: f64,
    pub redeliver_rate: f64,
    /// `x-max-length` (argument or policy `max-length`).
    pub max_length: Option<f64>,
    /// `x-overflow` (argument or policy `overflow`): drop-head (the default),
    /// reject-publish, reject-publish-dlx.
    pub overflow: String,
    /// `x-dead-letter-exchange` (argument or policy `dead-letter-exchange`).
    pub dlx: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dl_routing_key: Option<String>,
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return 0.0,
        }
    }
    cur.as_f64().filter(|x| x.is_finite()).unwrap_or(0.0)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .to_string()
}

/// A queue argument, or its policy's definition (`x-max-length` / `max-length`).
fn setting<'a>(v: &'a Value, arg: &str, policy: &str) -> Option<&'a Value> {
    v.get("arguments").and_then(|a| a.get(arg)).or_else(|| {
        v.get("effective_policy_definition")
            .and_then(|p| p.get(policy))
    })
}

/// A queue of `/api/queues` (unknown fields ignored, missing ones zero).
pub fn parse_queue(v: &Value) -> Option<Queue> {
    let name = v.get("name")?.as_str()?.to_string();
    Some(Queue {
        vhost: text(v, "vhost"),
        name,
        kind: text(v, "type"),
        state: text(v, "state"),
        messages: num(v, &["messages"]),
        ready: num(v, &["messages_ready"]),
        unacked: num(v, &["messages_unacknowledged"]),
        consumers: num(v, &["consumers"]),
        utilisation: v
            .get("consumer_utilisation")
            .and_then(|x| x.as_f64())
            .filter(|x| x.is_finite()),
        publish_rate: num(v, &["message_stats", "publish_details", "rate"]),
        deliver_rate: num(v, &["message_stats", "deliver_get_details", "rate"]),
        ack_rate: num(v, &["message_stats", "ack_details", "rate"]),
        redeliver_rate: num(v, &["message_stats", "redeliver_details", "rate"]),
        max_length: setting(v, "x-max-length", "max-length")
            .and_then(|x| x.as_f64())
            .filter(|x| *x >= 0.0),
        overflow: setting(v, "x-overflow", "overflow")
            .and_then(|x| x.as_str())
            .unwrap_or("drop-head")
            .to_string(),
        dlx: setting(v, "x-dead-letter-exchange", "dead-letter-exchange")
            .and_then(|x| x.as_str())
            .map(str::to_string),
        dl_routing_key: setting(v, "x-dead-letter-routing-key", "dead-letter-routing-key")
            .and_then(|x| x.as_str())
            .map(str::to_string),
    })
}

/// Names people give dead-letter queues.
pub fn looks_like_dlq(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".dlq")
        || n.ends_with("-dlq")
        || n.ends_with("_dlq")
        || n.ends_with(".dlx")
        || n.ends_with(".dead")
        || n.contains("dead-letter")
        || n.contains("deadletter")
        || n.contains("dead_letter")
        || n.starts_with("dlq.")
        || n == "dlq"
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Ready messages at or over which a growing queue is a backlog.
    pub backlog: f64,
    /// The share of `x-max-length` at which a queue is near it.
    pub near_max: f64,
}

/// What is wrong with a queue: (code, severity, why). `growth` is the ready messages'
/// change per second between the two samples; `dlq` whether the queue receives dead
/// letters.
pub fn judge_queue(
    q: &Queue,
    growth: f64,
    unacked_before: f64,
    dlq: bool,
    lim: &Limits,
) -> Vec<(&'static str, Severity, String)> {
    let mut out = vec![];
    let rate = |r: f64| format!("{r:+.1}/s");
    if dlq {
        if q.messages > 0.0 {
            let sev = if growth > 0.0 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            out.push((
                "RMQ_DEAD_LETTERS",
                sev,
                if growth > 0.0 {
                    format!(
                        "dead-letter queue holds {} messages and grows {}",
                        q.messages,
                        rate(growth)
                    )
                } else {
                    format!("dead-letter queue holds {} messages", q.messages)
                },
            ));
        }
    } else if q.consumers == 0.0 && q.ready > 0.0 {
        let growing = growth > 0.0 || q.publish_rate > 0.0;
        out.push((
            "RMQ_NO_CONSUMERS",
            if growing {
                Severity::Critical
            } else {
                Severity::Warning
            },
            if growing {
                format!(
                    "{} messages ready and no consumer, growing {}",
                    q.ready,
                    rate(growth.max(q.publish_rate))
                )
            } else {
                format!("{} messages ready and no consumer", q.ready)
            },
        ));
    } else if q.consumers > 0.0 && q.ready >= lim.backlog && growth > 0.0 {
        let why = match q.utilisation {
            Some(u) if u >= 0.9 => {
                "the consumers are busy all the time: add consumers or make them faster".to_string()
            }
            Some(u) => format!(
                "the consumers could take more {:.0} % of the time: raise their prefetch (basic.qos) or look at what they wait for",
                (1.0 - u) * 100.0
            ),
            None => "the consumers do not keep up".to_string(),
        };
        out.push((
            "RMQ_BACKLOG_GROWING",
            Severity::Warning,
            format!(
                "{} messages ready and growing {} with {} consumers: {why}",
                q.ready,
                rate(growth),
                q.consumers
            ),
        ));
    }
    if q.consumers > 0.0
        && q.unacked > 0.0
        && q.ack_rate == 0.0
        && q.deliver_rate == 0.0
        && q.unacked >= unacked_before
    {
        out.push((
            "RMQ_UNACKED_STUCK",
            Severity::Warning,
            format!(
                "{} consumers hold {} messages unacknowledged and acknowledge none",
                q.consumers, q.unacked
            ),
        ));
    }
    if let Some(max) = q.max_length.filter(|m| *m > 0.0)
        && q.messages >= max * lim.near_max
    {
        let full = q.messages >= max;
        let effect = match q.overflow.as_str() {
            "reject-publish" => "publishes are refused (nack) once full",
            "reject-publish-dlx" => "publishes are refused and dead-lettered once full",
            _ => "the oldest messages are dropped (or dead-lettered) once full",
        };
        out.push((
            "RMQ_NEAR_MAX_LENGTH",
            if full {
                Severity::Critical
            } else {
                Severity::Warning
            },
            format!(
                "{} of x-max-length {max} messages ({}): {effect}",
                q.messages,
                if full { "full" } else { "near full" },
            ),
        ));
    }
    out
}

/// A node's resource alarms: (what, detail).
pub fn node_alarms(n: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    let b = |k: &str| n.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    if b("mem_alarm") {
        out.push((
            "memory".to_string(),
            format!(
                "{} used of a {} high watermark",
                crate::framework::bytes(num(n, &["mem_used"]) as u64),
                crate::framework::bytes(num(n, &["mem_limit"]) as u64)
            ),
        ));
    }
    if b("disk_free_alarm") {
        out.push((
            "disk".to_string(),
            format!(
                "{} free, under the {} limit",
                crate::framework::bytes(num(n, &["disk_free"]) as u64),
                crate::framework::bytes(num(n, &["disk_free_limit"]) as u64)
            ),
        ));
    }
    out
}

/// Unroutable messages from the overview: (dropped per s, returned per s, dropped, returned).
pub fn unroutable(overview: &Value) -> (f64, f64, f64, f64) {
    (
        num(
            overview,
            &["message_stats", "drop_unroutable_details", "rate"],
        ),
        num(
            overview,
            &["message_stats", "return_unroutable_details", "rate"],
        ),
        num(overview, &["message_stats", "drop_unroutable"]),
        num(overview, &["message_stats", "return_unroutable"]),
    )
}

/// Connections opened and closed per second (the overview's churn rates).
pub fn churn(overview: &Value) -> (f64, f64) {
    (
        num(
            overview,
            &["churn_rates", "connection_created_details", "rate"],
        ),
        num(
            overview,
            &["churn_rates", "connection_closed_details", "rate"],
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(ready: f64, unacked: f64, consumers: f64) -> Queue {
        Queue {
            name: "orders".into(),
            messages: ready + unacked,
            ready,
            unacked,
            consumers,
            overflow: "drop-head".into(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_a_management_api_queue() {
        let v = json!({"name": "work", "vhost": "/", "type": "classic", "state": "running",
            "messages": 12, "messages_ready": 10, "messages_unacknowledged": 2, "consumers": 1,
            "consumer_utilisation": 0.25,
            "arguments": {"x-dead-letter-exchange": "dlx", "x-max-length": 100},
            "effective_policy_definition": {"overflow": "reject-publish", "max-length": 5},
            "message_stats": {"publish_details": {"rate": 20.0}, "deliver_get_details": {"rate": 5.0},
                              "ack_details": {"rate": 4.5}}});
        let p = parse_queue(&v).unwrap();
        assert_eq!((p.ready, p.unacked, p.consumers), (10.0, 2.0, 1.0));
        assert_eq!(
            p.max_length,
            Some(100.0),
            "the argument wins over the policy"
        );
        assert_eq!(
            p.overflow, "reject-publish",
            "the policy fills what arguments lack"
        );
        assert_eq!(p.dlx.as_deref(), Some("dlx"));
        assert_eq!(
            (p.publish_rate, p.deliver_rate, p.ack_rate),
            (20.0, 5.0, 4.5)
        );
        assert_eq!(p.utilisation, Some(0.25));
        let bare = parse_queue(&json!({"name": "x"})).unwrap();
        assert_eq!(
            (bare.messages, bare.max_length, bare.overflow.as_str()),
            (0.0, None, "drop-head")
        );
        assert!(parse_queue(&json!({"messages": 1})).is_none());
        for (name, yes) in [
            ("orders.dlq", true),
            ("orders-dlq", true),
            ("dead-letters", true),
            ("DLQ", true),
            ("orders", false),
            ("dlqueue", false),
        ] {
            assert_eq!(looks_like_dlq(name), yes, "{name}");
        }
    }

    #[test]
    fn queue_cases() {
        let lim = Limits {
            backlog: 100.0,
            near_max: 0.8,
        };
        let capped = |messages: f64, overflow: &str| Queue {
            max_length: Some(100.0),
            overflow: overflow.into(),
            consumers: 1.0,
            ack_rate: 1.0,
            ..q(messages, 0.0, 1.0)
        };
        let slow = Queue {
            utilisation: Some(0.3),
            ack_rate: 5.0,
            deliver_rate: 5.0,
            ..q(500.0, 1.0, 2.0)
        };
        let busy = Queue {
            utilisation: Some(0.97),
            ack_rate: 5.0,
            deliver_rate: 5.0,
            ..q(500.0, 1.0, 2.0)
        };
        // (name, queue, growth/s, unacked before, dead-letter queue?, codes with severities)
        type Case = (
            &'static str,
            Queue,
            f64,
            f64,
            bool,
            Vec<(&'static str, Severity)>,
        );
        let cases: Vec<Case> = vec![
            ("idle and empty", q(0.0, 0.0, 0.0), 0.0, 0.0, false, vec![]),
            (
                "no consumer, growing",
                q(50.0, 0.0, 0.0),
                10.0,
                0.0,
                false,
                vec![("RMQ_NO_CONSUMERS", Severity::Critical)],
            ),
            (
                "no consumer, stale",
                q(50.0, 0.0, 0.0),
                0.0,
                0.0,
                false,
                vec![("RMQ_NO_CONSUMERS", Severity::Warning)],
            ),
            (
                "slow consumers",
                slow,
                3.0,
                1.0,
                false,
                vec![("RMQ_BACKLOG_GROWING", Severity::Warning)],
            ),
            (
                "busy consumers",
                busy,
                3.0,
                1.0,
                false,
                vec![("RMQ_BACKLOG_GROWING", Severity::Warning)],
            ),
            (
                "backlog shrinking",
                Queue {
                    ack_rate: 9.0,
                    deliver_rate: 9.0,
                    ..q(500.0, 1.0, 2.0)
                },
                -4.0,
                1.0,
                false,
                vec![],
            ),
            (
                "small backlog",
                Queue {
                    ack_rate: 9.0,
                    deliver_rate: 9.0,
                    ..q(20.0, 1.0, 2.0)
                },
                2.0,
                1.0,
                false,
                vec![],
            ),
            (
                "stuck consumers",
                q(0.0, 50.0, 1.0),
                0.0,
                50.0,
                false,
                vec![("RMQ_UNACKED_STUCK", Severity::Warning)],
            ),
            (
                "unacked but acking",
                Queue {
                    ack_rate: 3.0,
                    ..q(0.0, 50.0, 1.0)
                },
                0.0,
                50.0,
                false,
                vec![],
            ),
            (
                "near max length",
                capped(85.0, "drop-head"),
                0.0,
                0.0,
                false,
                vec![("RMQ_NEAR_MAX_LENGTH", Severity::Warning)],
            ),
            (
                "full, rejecting",
                capped(100.0, "reject-publish"),
                0.0,
                0.0,
                false,
                vec![("RMQ_NEAR_MAX_LENGTH", Severity::Critical)],
            ),
            (
                "under max length",
                capped(50.0, "drop-head"),
                0.0,
                0.0,
                false,
                vec![],
            ),
            (
                "dead letters growing",
                q(30.0, 0.0, 0.0),
                2.0,
                0.0,
                true,
                vec![("RMQ_DEAD_LETTERS", Severity::Critical)],
            ),
            (
                "dead letters waiting",
                q(30.0, 0.0, 0.0),
                0.0,
                0.0,
                true,
                vec![("RMQ_DEAD_LETTERS", Severity::Warning)],
            ),
            (
                "empty dead-letter queue",
                q(0.0, 0.0, 0.0),
                0.0,
                0.0,
                true,
                vec![],
            ),
        ];
        for (name, queue, growth, before, dlq, want) in cases {
            let got: Vec<(&str, Severity)> = judge_queue(&queue, growth, before, dlq, &lim)
                .into_iter()
                .map(|(c, s, _)| (c, s))
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let why = judge_queue(
            &Queue {
                utilisation: Some(0.3),
                ..q(500.0, 1.0, 2.0)
            },
            3.0,
            0.0,
            false,
            &lim,
        );
        assert!(why[0].2.contains("prefetch"), "{}", why[0].2);
        let full = judge_queue(&capped(100.0, "reject-publish"), 0.0, 0.0, false, &lim);
        assert!(full[0].2.contains("publishes are refused"), "{}", full[0].2);
    }

    #[test]
    fn nodes_overview() {
        let n = json!({"mem_alarm": true, "mem_used": 2147483648u64, "mem_limit": 1073741824u64, "disk_free_alarm": false});
        let a = node_alarms(&n);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0, "memory");
        assert!(a[0].1.contains("2.0 GiB used of a 1.0 GiB"), "{}", a[0].1);
        let n = json!({"disk_free_alarm": true, "disk_free": 1000, "disk_free_limit": 50000000});
        assert_eq!(node_alarms(&n)[0].0, "disk");
        assert!(node_alarms(&json!({})).is_empty());
        let o = json!({"message_stats": {"drop_unroutable": 7, "drop_unroutable_details": {"rate": 1.5},
                       "return_unroutable": 2, "return_unroutable_details": {"rate": 0.5}},
                       "churn_rates": {"connection_created_details": {"rate": 12.0}, "connection_closed_details": {"rate": 11.5}}});
        assert_eq!(unroutable(&o), (1.5, 0.5, 7.0, 2.0));
        assert_eq!(churn(&o), (12.0, 11.5));
        assert_eq!(unroutable(&json!({})), (0.0, 0.0, 0.0, 0.0));
    }
}
