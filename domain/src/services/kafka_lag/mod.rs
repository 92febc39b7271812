//! The Kafka lag sampler and its read side, one file per part:
//! - `round`: one sampling round of one target — read the cluster (the lag probe's own
//!   reading code, so the never-join guarantee is the same), store the samples, evaluate,
//!   add to the rollups, step the alerts, record the round; everything the round writes
//!   commits together or not at all. A round that fails (broker down, timeout) is recorded
//!   with its error and skipped.
//! - `evaluate`: the pure evaluation — the window of the last [`rules::WINDOW`] samples per
//!   partition and the carried state in; Burrow-style verdicts, time lag, the group's state
//!   and signs (rebalances, dead letters) out. No database: table-tested.
//! - `alerts`: the alert policy — a pure decision per group (start an episode, raise, recover)
//!   and the writes that carry it out.
//! - `read`: the overview, a group, a topic's groups, the lag series with its annotations.
//! - `retention`: pruning raw samples and rollups.
//!
//! Its SQL is in `storage::kafka_lag`. Replicas share the work with a lease per target
//! (`storage::leases`): a replica samples a target only while it holds the lease, renewed
//! each round; a replica that dies stops renewing, so another takes over within one
//! interval.
//!
//! [`rules::WINDOW`]: probes::kafka::rules::WINDOW

mod alerts;
mod evaluate;
mod read;
mod retention;
mod round;

pub use read::{GroupSort, get_group, groups_of_topic, lag_series, list_groups, resolution_for};
pub use retention::{Retention, prune};
pub use round::{RoundOutcome, sample_round};

use crate::error::DomainResult;
use crate::storage::kafka_lag as store;
use sqlx::PgPool;
use std::time::Duration;
use time::OffsetDateTime;

fn ts(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Takes or renews the sampling lease on a target for `ttl`; false when another holder's
/// lease is still valid.
pub async fn try_lease(
    pool: &PgPool,
    target_id: i64,
    holder: &str,
    ttl: Duration,
) -> DomainResult<bool> {
    Ok(crate::storage::leases::take(pool, &lease_job(target_id), holder, ttl).await?)
}

/// The worker lease that says which replica samples a Kafka target.
pub fn lease_job(target_id: i64) -> String {
    format!("kafka-sampler:{target_id}")
}

/// The Kafka targets to sample.
pub async fn sampled_targets(pool: &PgPool) -> DomainResult<Vec<(i64, String)>> {
    Ok(store::kafka_targets(pool).await?)
}
