//! How long the lag history is kept.

use crate::error::DomainResult;
use crate::storage::kafka_lag as store;
use sqlx::PgPool;

/// Retention of the history.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_hours: i64,
    pub minute_days: i64,
    pub ten_minute_days: i64,
    pub hour_days: i64,
}

/// Deletes history past its retention.
pub async fn prune(pool: &PgPool, r: Retention) -> DomainResult<u64> {
    let mut n = store::prune_raw(pool, r.raw_hours).await?;
    for (res, days) in [
        (60, r.minute_days),
        (600, r.ten_minute_days),
        (3600, r.hour_days),
    ] {
        n += store::prune_rollups(pool, res, days).await?;
    }
    Ok(n)
}
