//! `worker_leases`: which replica runs a background job now. A lease is taken when it is
//! free, expired or already ours, and lasts `ttl` from then; renewing is taking it again.

use sqlx::PgExecutor;
use std::time::Duration;

/// Takes or renews `job`'s lease for `holder`; false when another holder's lease is live.
pub async fn take(
    db: impl PgExecutor<'_>,
    job: &str,
    holder: &str,
    ttl: Duration,
) -> sqlx::Result<bool> {
    let got: Option<String> = sqlx::query_scalar(
        "INSERT INTO worker_leases (job, holder, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))
         ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
           WHERE worker_leases.expires_at < now() OR worker_leases.holder = EXCLUDED.holder
         RETURNING holder",
    )
    .bind(job)
    .bind(holder)
    .bind(ttl.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(got.is_some())
}

/// Gives `job`'s lease up (on shutdown), if `holder` has it.
pub async fn release(db: impl PgExecutor<'_>, job: &str, holder: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM worker_leases WHERE job = $1 AND holder = $2")
        .bind(job)
        .bind(holder)
        .execute(db)
        .await?;
    Ok(())
}

/// Who holds `job` now (a live lease), if anyone.
pub async fn holder(db: impl PgExecutor<'_>, job: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT holder FROM worker_leases WHERE job = $1 AND expires_at > now()")
        .bind(job)
        .fetch_optional(db)
        .await
}

/// Drops leases that lapsed a day ago (jobs of deleted targets, replicas long gone).
pub async fn prune(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM worker_leases WHERE expires_at < now() - interval '1 day'")
            .execute(db)
            .await?
            .rows_affected(),
    )
}
