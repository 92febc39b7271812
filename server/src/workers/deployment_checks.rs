//! The evaluation loop of automated deployment items. Every `tick` it claims the items whose
//! measurement is due (`domain::services::deployment_checks::claim_due`: each replica takes
//! different rows) and takes each measurement in its own task:
//!
//! - **A hanging Prometheus delays only its own items**: a measurement waits for at most
//!   `min(interval, query_limit)`, and at most `per_target` measurements wait on one target
//!   at a time (the rest of that target's items wait their turn within the same limit and
//!   are recorded inconclusive when it runs out); other targets' items are untouched.
//! - **It reports how far it is behind**: every measurement records its lag behind the
//!   schedule; `/metrics` shows the largest of the last tick
//!   (`lookout_deployment_check_lag_seconds`) and the count of measurements taken.
//! - It runs under the workers' supervisor (a panic restarts it, counted).

use domain::services::deployment_checks as svc;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const WORKER: &str = "deployment_checks";

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// How often due measurements are looked for (0: the loop is off).
    pub tick: Duration,
    /// Measurements waiting on one Prometheus target at once.
    pub per_target: usize,
    /// The longest one query may take (shorter when the item's interval is).
    pub query_limit: Duration,
    /// Measurements claimed per tick.
    pub batch: i64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            tick: Duration::from_secs(1),
            per_target: 16,
            query_limit: Duration::from_secs(10),
            batch: 1_000,
        }
    }
}

static MEASUREMENTS: AtomicU64 = AtomicU64::new(0);
/// The largest lag of the last tick that measured anything, in microseconds.
static LAG_US: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// (measurements taken, the last tick's largest lag in seconds, measurements in flight).
pub fn check_stats() -> (u64, f64, u64) {
    (
        MEASUREMENTS.load(Ordering::Relaxed),
        LAG_US.load(Ordering::Relaxed) as f64 / 1e6,
        IN_FLIGHT.load(Ordering::Relaxed),
    )
}

/// Starts the loop under the supervisor; `None` when it is off.
pub fn spawn_deployment_checks(
    pool: PgPool,
    access: domain::reach::Access,
    runner: domain::services::probe_runs::Runner,
    settings: CheckSettings,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.tick.is_zero() {
        tracing::info!("deployment checks off (LOOKOUT_DEPLOYMENT_CHECK_TICK_MS=0)");
        return None;
    }
    let access = Arc::new(access);
    let settings = Arc::new(settings);
    Some(super::supervise(WORKER, shutdown.clone(), move || {
        run(
            pool.clone(),
            access.clone(),
            runner.clone(),
            settings.clone(),
            shutdown.clone(),
        )
    }))
}

struct InFlight;
impl InFlight {
    fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(
    pool: PgPool,
    access: Arc<domain::reach::Access>,
    runner: domain::services::probe_runs::Runner,
    settings: Arc<CheckSettings>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(settings.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_target: Arc<Mutex<HashMap<i64, Arc<Semaphore>>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done
                && e.is_panic()
            {
                super::record(WORKER, Instant::now(), false);
                tracing::error!(worker = WORKER, "a measurement panicked; the loop goes on");
            }
        }
        let started = Instant::now();
        let due = match svc::claim_due(&pool, settings.batch).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "deployment checks: cannot claim due measurements");
                super::record(WORKER, started, false);
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let lag = due.iter().map(|d| d.lag).max().unwrap_or_default();
        LAG_US.store(lag.as_micros() as u64, Ordering::Relaxed);
        if lag > settings.tick * 2 + Duration::from_secs(1) {
            tracing::warn!(
                lag_s = lag.as_secs_f64(),
                due = due.len(),
                "deployment checks are behind schedule"
            );
        }
        for d in due {
            let slot = {
                let mut m = per_target.lock().unwrap_or_else(|e| e.into_inner());
                m.entry(d.target_id.unwrap_or(0))
                    .or_insert_with(|| Arc::new(Semaphore::new(settings.per_target.max(1))))
                    .clone()
            };
            let (pool, access, runner) = (pool.clone(), access.clone(), runner.clone());
            let limit = settings.query_limit.min(d.interval());
            let guard = InFlight::new();
            tasks.spawn(async move {
                let _guard = guard;
                let t0 = Instant::now();
                // Waiting for the target's turn counts against the same limit.
                let permit = tokio::time::timeout(limit, slot.acquire_owned()).await;
                let left = limit.saturating_sub(t0.elapsed()).max(Duration::from_millis(1));
                // The permit is held for the whole step.
                let (_permit, left) = match permit {
                    Ok(Ok(p)) => (Some(p), left),
                    _ => (None, Duration::from_millis(1)),
                };
                let result = match &d.check {
                    svc::Check::Metric(_) => svc::measure(&pool, &access, &d, left).await,
                    svc::Check::Probe(_) => svc::probe_step(&pool, &access, &runner, &d).await,
                    svc::Check::KafkaLag(_) => svc::lag_step(&pool, &d).await,
                };
                MEASUREMENTS.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(_) => super::record(WORKER, t0, true),
                    Err(e) => {
                        super::record(WORKER, t0, false);
                        tracing::warn!(deployment = d.deployment_id, item = %d.item_id, error = %e, "deployment check could not be recorded");
                    }
                }
            });
        }
    }
    // Shutdown: measurements in flight end within their own limit.
    let grace = settings.query_limit + Duration::from_secs(2);
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
}
