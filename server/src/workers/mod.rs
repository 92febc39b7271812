//! Background workers: one file per worker, and what they share.
//!
//! - [`run_periodic`]: a job every interval (with jitter) on exactly one replica — the one
//!   holding the job's lease in PostgreSQL (`storage::leases`, renewed every run, released
//!   on shutdown, expiring when a replica dies) — that waits for a running job on shutdown
//!   up to a limit. Housekeeping runs on it.
//! - The same leases, one per target (`kafka-sampler:<id>`), divide Kafka targets among
//!   replicas (`kafka_sampler.rs`).
//! - Automated deployment items are claimed row by row (`SKIP LOCKED`) by every replica's
//!   evaluation loop (`deployment_checks.rs`): no lease needed.
//! - [`supervise`] restarts a loop that panicked (after a pause that grows to a minute, with
//!   a log line and a metric) and leaves it alone when it ends after shutdown.
//! - [`record`] keeps per-worker counters that `/metrics` shows: runs, failures, restarts,
//!   the last run's duration and the last success.

mod deployment_checks;
mod housekeeping;
mod kafka_sampler;

pub use deployment_checks::{CheckSettings, check_stats, spawn_deployment_checks};
pub use housekeeping::{
    housekeeping_round, spawn, spawn_llm_budgets, spawn_llm_partitions, spawn_llm_rollups,
};
pub use kafka_sampler::{SamplerSettings, spawn_kafka_sampler};

use sqlx::PgPool;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// A job that runs every `interval` on one replica.
#[derive(Debug, Clone)]
pub struct Periodic {
    /// The job's name: its lease and its metrics.
    pub name: &'static str,
    pub interval: Duration,
    /// A random extra wait of up to this much before each run, so replicas started
    /// together do not all ask for the lease at the same instant.
    pub jitter: Duration,
    /// This replica (unique per process).
    pub holder: String,
    /// How long shutdown waits for a running job before cancelling it.
    pub grace: Duration,
}

impl Periodic {
    pub fn new(name: &'static str, interval: Duration) -> Self {
        Periodic {
            name,
            interval,
            jitter: interval / 10,
            holder: holder_id(),
            grace: Duration::from_secs(10),
        }
    }

    /// How long a lease lasts: past the next run, so a live holder never loses it.
    pub fn ttl(&self) -> Duration {
        self.interval.mul_f64(1.5) + self.jitter
    }
}

/// `<hostname>-<pid>-<random>`: unique per process, readable in `worker_leases`.
pub fn holder_id() -> String {
    format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "lookout".into()),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Runs `job` every `p.interval` (plus jitter), first at once, on whichever replica holds
/// the job's lease; under [`supervise`]. On shutdown a running job may finish within
/// `p.grace` (then it is cancelled), and the lease is released for the next replica.
pub fn run_periodic<F, Fut>(
    pool: PgPool,
    p: Periodic,
    shutdown: watch::Receiver<bool>,
    job: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let (p, job) = (Arc::new(p), Arc::new(job));
    let name = p.name;
    supervise(name, shutdown.clone(), move || {
        periodic_loop(pool.clone(), p.clone(), shutdown.clone(), job.clone())
    })
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // The sender is gone: nobody can ask us to stop, so never return.
        std::future::pending::<()>().await;
    }
}

async fn periodic_loop<F, Fut>(
    pool: PgPool,
    p: Arc<Periodic>,
    mut shutdown: watch::Receiver<bool>,
    job: Arc<F>,
) where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut first = true;
    loop {
        let jitter = p.jitter.mul_f64(rand::random::<f64>());
        let wait = if first { jitter } else { p.interval + jitter };
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut shutdown) => break,
        }
        match domain::storage::leases::take(&pool, p.name, &p.holder, p.ttl()).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(worker = p.name, error = %e, "cannot take the worker lease");
                continue;
            }
        }
        let started = Instant::now();
        let mut run = tokio::spawn(job());
        let outcome = tokio::select! {
            r = &mut run => Some(r),
            _ = stopped(&mut shutdown) => {
                match tokio::time::timeout(p.grace, &mut run).await {
                    Ok(r) => {
                        record(p.name, started, matches!(r, Ok(Ok(()))));
                    }
                    Err(_) => {
                        run.abort();
                        record(p.name, started, false);
                        tracing::warn!(worker = p.name, grace_s = p.grace.as_secs_f64(), "shutdown: the running job did not finish in time and was cancelled");
                    }
                }
                None
            }
        };
        match outcome {
            None => break,
            Some(Ok(Ok(()))) => record(p.name, started, true),
            Some(Ok(Err(e))) => {
                record(p.name, started, false);
                tracing::warn!(worker = p.name, error = %e, "worker run failed; will retry");
            }
            Some(Err(e)) => {
                record(p.name, started, false);
                if e.is_panic() {
                    tracing::error!(worker = p.name, "worker run panicked; will retry");
                }
            }
        }
    }
    if let Err(e) = domain::storage::leases::release(&pool, p.name, &p.holder).await {
        tracing::warn!(worker = p.name, error = %e, "could not release the worker lease");
    }
}

/// One worker's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerStats {
    pub runs: u64,
    pub failures: u64,
    pub restarts: u64,
    pub last_duration_s: f64,
    /// Unix seconds of the last successful run.
    pub last_success: Option<f64>,
}

static STATS: Mutex<BTreeMap<&'static str, WorkerStats>> = Mutex::new(BTreeMap::new());

fn with_stats(name: &'static str, f: impl FnOnce(&mut WorkerStats)) {
    let mut m = STATS.lock().unwrap_or_else(|e| e.into_inner());
    f(m.entry(name).or_default());
}

/// Records one run of a worker (its duration, and whether it succeeded).
pub fn record(name: &'static str, started: Instant, ok: bool) {
    with_stats(name, |s| {
        s.runs += 1;
        s.last_duration_s = started.elapsed().as_secs_f64();
        if ok {
            s.last_success = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64());
        } else {
            s.failures += 1;
        }
    });
}

/// Every worker's counters, by name (for `/metrics` and tests).
pub fn stats() -> BTreeMap<&'static str, WorkerStats> {
    STATS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `make()`'s future as a task and starts it again whenever it panics — a bug in one
/// round must not end sampling or housekeeping for the life of the process. A loop that
/// returns (it saw the shutdown signal) is not restarted. Returns the supervising task.
pub fn supervise<F, Fut>(
    name: &'static str,
    shutdown: tokio::sync::watch::Receiver<bool>,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            match tokio::spawn(make()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    with_stats(name, |s| s.restarts += 1);
                    let what = e
                        .into_panic()
                        .downcast::<String>()
                        .map(|s| *s)
                        .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|_| "(no message)".into());
                    tracing::error!(worker = name, panic = %what, restart_in_s = pause.as_secs(), "worker panicked; restarting it");
                }
                Err(_) => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_panicking_worker_is_restarted_and_counted() {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let starts = Arc::new(AtomicU32::new(0));
        let s2 = starts.clone();
        let h = supervise("test-panics-twice", rx, move || {
            let n = s2.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("round {n} hit a bug");
                }
            }
        });
        h.await.unwrap();
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "started, restarted twice, then ended"
        );
        assert_eq!(stats()["test-panics-twice"].restarts, 2);
    }

    #[tokio::test]
    async fn a_worker_that_ends_is_not_restarted() {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let starts = Arc::new(AtomicU32::new(0));
        let s2 = starts.clone();
        supervise("test-ends", rx, move || {
            s2.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .await
        .unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert!(!stats().contains_key("test-ends") || stats()["test-ends"].restarts == 0);
    }

    #[test]
    fn runs_and_failures_are_counted() {
        record("test-counted", Instant::now(), true);
        record("test-counted", Instant::now(), false);
        let s = &stats()["test-counted"];
        assert_eq!((s.runs, s.failures), (2, 1));
        assert!(s.last_success.is_some());
    }
}
