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
    /// `INC-42`
    pub key: String,
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
}
