//! Background housekeeping: expired sessions and old sign-in failures. With several
//! replicas, a transaction-scoped advisory lock lets one replica do each round.

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

pub fn spawn(pool: PgPool, login_window_secs: i64, shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = housekeeping_round(&pool, login_window_secs).await {
                        tracing::warn!(error = %e, "housekeeping failed; will retry");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// The Kafka lag sampler: every `interval`, each Kafka target whose lease this replica
/// holds (or can take) is sampled once. The lease lasts 1.5 intervals and is renewed every
/// round, so a replica that dies hands its targets over within about one interval.
pub fn spawn_kafka_sampler(
    pool: PgPool,
    access: domain::reach::Access,
    interval: Duration,
    retention: domain::services::kafka_lag::Retention,
    alert_after: Option<Duration>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if interval.is_zero() {
        tracing::info!("Kafka lag sampler off (LOOKOUT_KAFKA_SAMPLE_SECS=0)");
        return;
    }
    let holder = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "lookout".into()),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let targets = match domain::services::kafka_lag::sampled_targets(&pool).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka sampler: cannot list targets");
                    continue;
                }
            };
            let step = interval
                .min(Duration::from_secs(10))
                .max(Duration::from_secs(2));
            for (id, _) in targets {
                match domain::services::kafka_lag::try_lease(
                    &pool,
                    id,
                    &holder,
                    interval.mul_f64(1.5),
                )
                .await
                {
                    Ok(true) => {
                        match domain::services::kafka_lag::sample_round(
                            &pool,
                            &access,
                            id,
                            &holder,
                            step,
                            alert_after,
                        )
                        .await
                        {
                            Ok(r) if !r.ok => {
                                tracing::warn!(target_id = id, error = ?r.error, "Kafka sample skipped")
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(target_id = id, error = %e, "Kafka sample failed")
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(target_id = id, error = %e, "Kafka sampler lease failed")
                    }
                }
            }
            rounds += 1;
            if rounds % 100 == 1
                && let Err(e) = domain::services::kafka_lag::prune(&pool, retention).await
            {
                tracing::warn!(error = %e, "Kafka sample retention failed");
            }
        }
    });
}
