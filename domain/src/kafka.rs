//! Kafka consumer-lag state as the pages and the API see it (plain types; the sampling and
//! the rules live server-side in `probes::kafka` and `services::kafka_lag`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaMember {
    pub id: String,
    pub client_id: String,
    pub host: String,
    /// `(topic, partition)` assigned to it.
    pub parts: Vec<(String, i32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// OK, WARN, STALL, STOP, REWIND, NO_OFFSET, INCOMPLETE
    pub status: String,
    pub reason: String,
    pub committed: Option<i64>,
    pub end: i64,
    pub start: i64,
    pub lag: Option<i64>,
    pub time_lag_s: Option<f64>,
    /// `exact`, `estimated` or `at_least`
    pub time_lag_kind: Option<String>,
    /// Since when the committed offset has had its current value (ms since the epoch): the
    /// first sample that saw it. Carried from round to round, so a round does not search
    /// the history for it.
    #[serde(default)]
    pub committed_since_ms: Option<i64>,
    /// True when `committed_since_ms` was carried by the sampler (rows written before it
    /// was are looked up in the history once).
    #[serde(default)]
    pub tracked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaGroup {
    pub group: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub state: String,
    pub protocol: String,
    pub members: Vec<KafkaMember>,
    pub member_count: i32,
    pub partitions: i32,
    pub total_lag: i64,
    pub time_lag_s: Option<f64>,
    pub time_lag_kind: Option<String>,
    /// OK, WARN, ERR or INCOMPLETE (the worst partition's; STALL/STOP/REWIND are ERR).
    pub status: String,
    /// The worst partition status.
    pub worst: String,
    /// The worst partition's reason, with numbers.
    pub reason: String,
    pub catch_up: String,
    pub verdicts: Vec<PartitionState>,
    /// Total lag of the last rounds, oldest first.
    pub trend: Vec<i64>,
    /// Rebalances seen by the sampler (the member set changed between two rounds, or the
    /// group was caught rebalancing) in the hour before `at`.
    #[serde(default)]
    pub rebalances_last_hour: i32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_rebalance: Option<OffsetDateTime>,
    /// Dead-letter topics next to the topics the group reads.
    #[serde(default)]
    pub dlq: Vec<DlqState>,
    /// Partitions the group reads but has never committed an offset on: their lag is
    /// unknown and is *not* in `total_lag` (where the consumer starts decides it).
    #[serde(default)]
    pub lag_unknown_partitions: i32,
    /// The messages retained on those partitions (log end − log start): what the lag would
    /// be if the consumer started from the earliest offset.
    #[serde(default)]
    pub lag_unknown_messages: i64,
    /// `total_lag` plus `lag_unknown_messages`: the most the lag can be.
    #[serde(default)]
    pub lag_upper_bound: i64,
}

/// The unknown part of a group's lag: the partitions without a committed offset, and the
/// messages retained on them.
pub fn unknown_lag(verdicts: &[PartitionState]) -> (i32, i64) {
    verdicts
        .iter()
        .filter(|v| v.committed.is_none())
        .fold((0, 0), |(n, m), v| (n + 1, m + (v.end - v.start).max(0)))
}

impl KafkaGroup {
    /// Fills the unknown-lag fields from the verdicts.
    pub fn with_unknown_lag(mut self) -> Self {
        let (n, m) = unknown_lag(&self.verdicts);
        self.lag_unknown_partitions = n;
        self.lag_unknown_messages = m;
        self.lag_upper_bound = self.total_lag.saturating_add(m);
        self
    }

    /// The total lag as a sentence that does not hide what is unknown:
    /// `0 + 2 partitions never committed (198 messages)`.
    pub fn lag_text(&self, fmt: impl Fn(i64) -> String) -> String {
        match self.lag_unknown_partitions {
            0 => fmt(self.total_lag),
            n => format!(
                "{} + {n} partition{} never committed ({} message{})",
                fmt(self.total_lag),
                if n == 1 { "" } else { "s" },
                fmt(self.lag_unknown_messages),
                if self.lag_unknown_messages == 1 {
                    ""
                } else {
                    "s"
                }
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqState {
    /// The dead-letter topic.
    pub topic: String,
    /// The topic it is the DLQ of.
    pub source: String,
    /// Messages it holds (log end − log start, over its partitions).
    pub messages: i64,
    /// Change since the previous round (`None` on the first).
    pub growth: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRound {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub ok: bool,
    pub error: Option<String>,
    pub groups: i32,
    pub partitions: i32,
    pub requests: i32,
    pub duration_ms: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaGroupPage {
    pub groups: Vec<KafkaGroup>,
    pub next_cursor: Option<String>,
    /// The newest sampling round (whether it worked, or why not).
    pub last_round: Option<KafkaRound>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub lag: i64,
    pub end: i64,
    pub committed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSeries {
    /// Which resolution served it: `raw`, `1m`, `10m` or `1h`.
    pub rollup: String,
    pub points: Vec<LagPoint>,
    /// Lag per partition, one value per point (the highest in the bucket for rollups; 0
    /// where the partition was not read).
    #[serde(default)]
    pub partitions: Vec<PartitionSeries>,
    /// Incidents about this group or its target that overlap the range.
    #[serde(default)]
    pub annotations: Vec<LagAnnotation>,
    /// The group's worst verdict per bucket (1-minute buckets for raw ranges).
    #[serde(default)]
    pub band: Vec<VerdictBand>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictBand {
    /// Start of the bucket.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Bucket length.
    pub seconds: i32,
    /// OK, INCOMPLETE, WARN or ERR.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSeries {
    pub topic: String,
    pub partition: i32,
    pub lag: Vec<i64>,
}

/// An incident drawn on the lag graph: from detection to resolution (or now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagAnnotation {
    /// `INC-42` or `DEP-12`
    pub key: String,
    /// `incident` or `deployment`.
    #[serde(default)]
    pub kind: String,
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: i32, committed: Option<i64>, start: i64, end: i64) -> PartitionState {
        PartitionState {
            topic: "t".into(),
            partition: p,
            status: if committed.is_some() {
                "OK"
            } else {
                "NO_OFFSET"
            }
            .into(),
            reason: String::new(),
            committed,
            end,
            start,
            lag: committed.map(|c| end - c),
            time_lag_s: None,
            time_lag_kind: None,
            committed_since_ms: None,
            tracked: false,
        }
    }

    #[test]
    fn the_unknown_part_of_the_lag() {
        let cases: &[(&[PartitionState], (i32, i64))] = &[
            (&[], (0, 0)),
            (&[part(0, Some(10), 0, 10)], (0, 0)),
            (
                &[
                    part(0, Some(10), 0, 10),
                    part(1, None, 0, 99),
                    part(2, None, 1, 100),
                ],
                (2, 198),
            ),
            // Retention emptied it: nothing unread, but still unknown.
            (&[part(0, None, 50, 50)], (1, 0)),
            // A broken log offset never counts negative.
            (&[part(0, None, 60, 50)], (1, 0)),
        ];
        for (v, want) in cases {
            assert_eq!(unknown_lag(v), *want, "{v:?}");
        }
    }

    #[test]
    fn the_total_says_what_is_unknown() {
        let g = KafkaGroup {
            group: "g".into(),
            at: OffsetDateTime::UNIX_EPOCH,
            state: "Stable".into(),
            protocol: "range".into(),
            members: vec![],
            member_count: 1,
            partitions: 3,
            total_lag: 0,
            time_lag_s: Some(0.0),
            time_lag_kind: None,
            status: "WARN".into(),
            worst: "NO_OFFSET".into(),
            reason: String::new(),
            catch_up: String::new(),
            verdicts: vec![
                part(0, Some(10), 0, 10),
                part(1, None, 0, 99),
                part(2, None, 1, 100),
            ],
            trend: vec![],
            rebalances_last_hour: 0,
            last_rebalance: None,
            dlq: vec![],
            lag_unknown_partitions: 0,
            lag_unknown_messages: 0,
            lag_upper_bound: 0,
        }
        .with_unknown_lag();
        assert_eq!(g.lag_upper_bound, 198);
        assert_eq!(
            g.lag_text(|n| n.to_string()),
            "0 + 2 partitions never committed (198 messages)"
        );
        let known = KafkaGroup {
            verdicts: vec![part(0, Some(5), 0, 10)],
            total_lag: 5,
            ..g
        }
        .with_unknown_lag();
        assert_eq!(known.lag_text(|n| n.to_string()), "5");
        assert_eq!(known.lag_upper_bound, 5);
    }
}
