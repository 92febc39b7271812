//! The Kafka lag sampler. Every `interval`, each Kafka target whose lease this replica holds
//! (or can take) gets one sampling round (`domain::services::kafka_lag::sample_round`).
//!
//! - Targets are sampled **concurrently**, at most `concurrency` at once, so one slow or
//!   hanging cluster delays nobody else.
//! - Each target's **lease** (1.5 intervals) is renewed on its own, every half interval,
//!   for as long as its round runs — a long round keeps its target, and the other targets'
//!   leases never wait on it. A replica that dies stops renewing, and its targets pass to
//!   another replica within about one interval.
//! - A round is bounded (`round_limit`); one that runs over is cancelled, and since a round
//!   writes in one transaction, a cancelled round leaves nothing half-written.
//! - A target still being sampled is not started again by the next tick.
//! - The loop runs under the workers' supervisor: a panic restarts it (with a log line and
//!   `lookout_worker_restarts_total{worker="kafka_sampler"}`); a panic inside one target's
//!   round is counted as a failed run and the loop goes on.

use domain::services::kafka_lag as svc;
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKER: &str = "kafka_sampler";

/// How the sampler runs.
#[derive(Debug, Clone)]
pub struct SamplerSettings {
    pub interval: Duration,
    pub retention: svc::Retention,
    pub alert_after: Option<Duration>,
    /// Targets sampled at once.
    pub concurrency: usize,
    /// The longest one target's round may take.
    pub round_limit: Duration,
    /// Who holds the leases (unique per process).
    pub holder: String,
}

impl SamplerSettings {
    pub fn new(
        interval: Duration,
        retention: svc::Retention,
        alert_after: Option<Duration>,
    ) -> Self {
        SamplerSettings {
            interval,
            retention,
            alert_after,
            concurrency: 4,
            round_limit: (interval * 3).max(Duration::from_secs(30)),
            holder: super::holder_id(),
        }
    }
}

/// Starts the sampler under the supervisor; returns its task (it ends after shutdown).
pub fn spawn_kafka_sampler(
    pool: PgPool,
    access: domain::reach::Access,
    settings: SamplerSettings,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.interval.is_zero() {
        tracing::info!("Kafka lag sampler off (LOOKOUT_KAFKA_SAMPLE_SECS=0)");
        return None;
    }
    let access = Arc::new(access);
    let settings = Arc::new(settings);
    Some(super::supervise(WORKER, shutdown.clone(), move || {
        run(
            pool.clone(),
            access.clone(),
            settings.clone(),
            shutdown.clone(),
        )
    }))
}

async fn run(
    pool: PgPool,
    access: Arc<domain::reach::Access>,
    settings: Arc<SamplerSettings>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut rounds = tokio::task::JoinSet::new();
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        // Rounds that ended since the last tick: a panic in one is a failed run.
        while let Some(done) = rounds.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                super::record(WORKER, Instant::now(), false);
                tracing::error!(
                    worker = WORKER,
                    "a sampling round panicked; the sampler goes on"
                );
            }
        }
        let targets = match svc::sampled_targets(&pool).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "Kafka sampler: cannot list targets");
                continue;
            }
        };
        for (id, _) in targets {
            if !in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id)
            {
                continue; // its previous round is still running here
            }
            let (pool, access, settings, slots, in_flight) = (
                pool.clone(),
                access.clone(),
                settings.clone(),
                slots.clone(),
                in_flight.clone(),
            );
            rounds.spawn(async move {
                let _done = Done(in_flight, id);
                target_round(&pool, &access, &settings, &slots, id).await;
            });
        }
        ticks += 1;
        if ticks % 100 == 1
            && let Err(e) = svc::prune(&pool, settings.retention).await
        {
            tracing::warn!(error = %e, "Kafka sample retention failed");
        }
    }
    // Shutdown: rounds in flight are cancelled (each one's transaction rolls back) and the
    // leases run out.
    rounds.shutdown().await;
}

/// Takes the target off the in-flight set when its task ends, however it ends.
struct Done(Arc<Mutex<HashSet<i64>>>, i64);

impl Drop for Done {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// One target: take (or keep) its lease, keep renewing it while the round runs, run the
/// round within its limit.
async fn target_round(
    pool: &PgPool,
    access: &domain::reach::Access,
    s: &SamplerSettings,
    slots: &tokio::sync::Semaphore,
    id: i64,
) {
    let ttl = s.interval.mul_f64(1.5);
    match svc::try_lease(pool, id, &s.holder, ttl).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(target_id = id, error = %e, "Kafka sampler lease failed");
            return;
        }
    }
    let renew = {
        let (pool, holder) = (pool.clone(), s.holder.clone());
        let every = s.interval / 2;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match svc::try_lease(&pool, id, &holder, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            target_id = id,
                            "Kafka sampler: the lease passed to another replica"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!(target_id = id, error = %e, "lease renewal failed"),
                }
            }
        })
    };
    let started = Instant::now();
    let outcome = match slots.acquire().await {
        Ok(_permit) => {
            tokio::time::timeout(
                s.round_limit,
                svc::sample_round(pool, access, id, &s.holder, step(s.interval), s.alert_after),
            )
            .await
        }
        Err(_) => {
            renew.abort();
            return;
        }
    };
    renew.abort();
    match outcome {
        Ok(Ok(r)) if r.ok => super::record(WORKER, started, true),
        Ok(Ok(r)) => {
            super::record(WORKER, started, false);
            tracing::warn!(target_id = id, error = ?r.error, "Kafka sample skipped");
        }
        Ok(Err(e)) => {
            super::record(WORKER, started, false);
            tracing::warn!(target_id = id, error = %e, "Kafka sample failed");
        }
        Err(_) => {
            super::record(WORKER, started, false);
            tracing::warn!(
                target_id = id,
                limit_s = s.round_limit.as_secs(),
                "Kafka sampling round ran over its limit and was cancelled (nothing written)"
            );
        }
    }
}

/// The network step limit of a round: the interval, between 2 and 10 seconds.
fn step(interval: Duration) -> Duration {
    interval
        .min(Duration::from_secs(10))
        .max(Duration::from_secs(2))
}
