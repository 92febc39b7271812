//! Housekeeping: expired sessions, old sign-in failures, probe runs orphaned by a replica
//! that died. With several replicas, a transaction-scoped advisory lock lets one replica do
//! each round.

use sqlx::PgPool;
use std::time::Duration;

pub async fn housekeeping_round(
    pool: &PgPool,
    login_window_secs: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('lookout.housekeeping'))")
            .fetch_one(&mut *tx)
            .await?;
    if !got {
        return Ok(false);
    }
    let sessions = sqlx::query("DELETE FROM sessions WHERE expiry_date < now()")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let failures = domain::storage::login_throttle::prune(&mut *tx, login_window_secs).await?;
    let orphans = domain::storage::probe_runs::reap_orphans(
        &mut *tx,
        domain::services::probe_runs::ORPHAN_AFTER_SECS,
    )
    .await?;
    tx.commit().await?;
    if sessions + failures > 0 {
        tracing::info!(sessions, failures, "housekeeping removed expired rows");
    }
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "marked probe runs failed: the server running them stopped"
        );
    }
    Ok(true)
}

/// Every ten minutes, under the supervisor (restarted if it panics).
pub fn spawn(pool: PgPool, login_window_secs: i64, shutdown: tokio::sync::watch::Receiver<bool>) {
    super::supervise("housekeeping", shutdown.clone(), move || {
        let pool = pool.clone();
        let mut shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let started = std::time::Instant::now();
                        match housekeeping_round(&pool, login_window_secs).await {
                            Ok(_) => super::record("housekeeping", started, true),
                            Err(e) => {
                                super::record("housekeeping", started, false);
                                tracing::warn!(error = %e, "housekeeping failed; will retry");
                            }
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
        }
    });
}
