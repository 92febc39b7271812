//! Background workers and the one supervisor they run under. Each worker is a loop in its
//! own file; [`supervise`] restarts a loop that panicked (after a pause that grows to a
//! minute, with a log line and a metric) and leaves it alone when it ends after shutdown.
//! [`record`] keeps per-worker counters that `/metrics` shows: runs, failures, restarts,
//! the last run's duration and the last success.

mod housekeeping;
mod kafka_sampler;

pub use housekeeping::{housekeeping_round, spawn};
pub use kafka_sampler::{SamplerSettings, spawn_kafka_sampler};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
