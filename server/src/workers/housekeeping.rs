//! Housekeeping: expired sessions, old sign-in failures, probe runs orphaned by a replica
//! that died. With several replicas, a transaction-scoped advisory lock lets one replica do
//! each round.

use sqlx::PgPool;
use std::time::Duration;

/// One round: expired sessions, sign-in failures older than the window, probe runs whose
/// replica died, lapsed worker leases. (Which replica runs it is the lease's business.)
pub async fn housekeeping_round(pool: &PgPool, login_window_secs: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let sessions = domain::storage::sessions::delete_expired(&mut *tx).await?;
    let failures = domain::storage::login_throttle::prune(&mut *tx, login_window_secs).await?;
    let orphans = domain::storage::probe_runs::reap_orphans(
        &mut *tx,
        domain::services::probe_runs::ORPHAN_AFTER_SECS,
    )
    .await?;
    domain::storage::leases::prune(&mut *tx).await?;
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
    Ok(())
}

/// Every ten minutes, on one replica (the `housekeeping` lease).
pub fn spawn(
    pool: PgPool,
    login_window_secs: i64,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let job_pool = pool.clone();
    super::run_periodic(
        pool,
        super::Periodic::new("housekeeping", Duration::from_secs(600)),
        shutdown,
        move || {
            let pool = job_pool.clone();
            async move {
                housekeeping_round(&pool, login_window_secs)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
}

/// Every hour, on one replica (the `llm-partitions` lease): LLM usage partitions for today
/// and the next three days, and those past retention dropped.
pub fn spawn_llm_partitions(
    pool: PgPool,
    retention_days: u32,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let job_pool = pool.clone();
    let window = domain::services::llm::Window {
        retention_days: i64::from(retention_days),
    };
    super::run_periodic(
        pool,
        super::Periodic::new("llm-partitions", Duration::from_secs(3600)),
        shutdown,
        move || {
            let pool = job_pool.clone();
            async move {
                let (_, dropped) = domain::services::llm::maintain_partitions(&pool, window)
                    .await
                    .map_err(|e| e.to_string())?;
                if dropped > 0 {
                    tracing::info!(dropped, "dropped LLM usage partitions past retention");
                }
                Ok(())
            }
        },
    )
}

/// Every second, on one replica (the `llm-rollups` lease): the daily deltas ingest appended
/// folded into the daily rollups the cost review reads (readers add what is not folded yet,
/// so this keeps the deltas few, not the review exact), and the failed calls queued ten
/// seconds ago resolved into fallback chains.
pub fn spawn_llm_rollups(
    pool: PgPool,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let job_pool = pool.clone();
    super::run_periodic(
        pool,
        super::Periodic::new("llm-rollups", Duration::from_secs(1)),
        shutdown,
        move || {
            let pool = job_pool.clone();
            async move {
                domain::services::llm::fold_rollups(&pool, 50_000)
                    .await
                    .map_err(|e| e.to_string())?;
                // Failed calls queued ten seconds ago: their fallbacks have usually arrived.
                domain::services::llm::resolve_chains(&pool, Duration::from_secs(10), 5_000)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
}

/// Every five minutes, on one replica (the `llm-budgets` lease): every LLM budget against its
/// period's spend and forecast; a threshold crossed for the first time raises.
pub fn spawn_llm_budgets(
    pool: PgPool,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let job_pool = pool.clone();
    super::run_periodic(
        pool,
        super::Periodic::new("llm-budgets", Duration::from_secs(300)),
        shutdown,
        move || {
            let pool = job_pool.clone();
            async move {
                let raised =
                    domain::services::llm_budgets::evaluate(&pool, time::OffsetDateTime::now_utc())
                        .await
                        .map_err(|e| e.to_string())?;
                if raised > 0 {
                    tracing::warn!(raised, "LLM budget thresholds crossed");
                }
                Ok(())
            }
        },
    )
}
