//! The shared worker loop: one replica runs a job at a time, a dead replica's job is taken
//! over, shutdown waits for a running job up to its limit and hands the lease back.

use server::workers::{Periodic, run_periodic};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn periodic(name: &'static str, holder: &str, interval_ms: u64) -> Periodic {
    Periodic {
        name,
        interval: Duration::from_millis(interval_ms),
        jitter: Duration::from_millis(interval_ms / 10),
        holder: holder.into(),
        grace: Duration::from_secs(2),
    }
}

/// A second pool on the same database: another replica.
async fn other_pool(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

async fn holder_of(pool: &PgPool, job: &str) -> Option<String> {
    domain::storage::leases::holder(pool, job).await.unwrap()
}

#[derive(Default)]
struct Job {
    running: AtomicBool,
    overlaps: AtomicU32,
    runs_a: AtomicU32,
    runs_b: AtomicU32,
}

impl Job {
    async fn run(&self, by_a: bool, takes: Duration) {
        if self.running.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(takes).await;
        self.running.store(false, Ordering::SeqCst);
        if by_a {
            self.runs_a.fetch_add(1, Ordering::SeqCst);
        } else {
            self.runs_b.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn spawn_replica(
    pool: PgPool,
    p: Periodic,
    job: Arc<Job>,
    by_a: bool,
    takes: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    run_periodic(pool, p, stop, move || {
        let job = job.clone();
        async move {
            job.run(by_a, takes).await;
            Ok(())
        }
    })
}

#[sqlx::test(migrations = "../migrations")]
async fn two_replicas_share_a_job_without_running_it_twice(pool: PgPool) {
    let pool_b = other_pool(&pool).await;
    let job = Arc::new(Job::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let a = spawn_replica(
        pool.clone(),
        periodic("test-shared", "a", 200),
        job.clone(),
        true,
        Duration::from_millis(50),
        stop.clone(),
    );
    let b = spawn_replica(
        pool_b,
        periodic("test-shared", "b", 200),
        job.clone(),
        false,
        Duration::from_millis(50),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (ra, rb) = (
        job.runs_a.load(Ordering::SeqCst),
        job.runs_b.load(Ordering::SeqCst),
    );
    assert!(
        ra + rb >= 8,
        "{ra} + {rb} runs in 2.2 s at a 200 ms interval"
    );
    assert!(
        ra == 0 || rb == 0,
        "the lease's holder keeps it: a ran {ra}, b ran {rb}"
    );
    assert_eq!(job.overlaps.load(Ordering::SeqCst), 0, "never two at once");
    stop_tx.send(true).unwrap();
    let _ = tokio::join!(a, b);
    assert_eq!(
        holder_of(&pool, "test-shared").await,
        None,
        "released on shutdown"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_dead_replicas_job_is_taken_over(pool: PgPool) {
    let job = Arc::new(Job::default());
    // Replica a runs on its own runtime; dropping the runtime kills it mid-life, without
    // any chance to release its lease — as a crashed process would.
    let opts = (*pool.connect_options()).clone();
    let job_a = job.clone();
    let (_keep_a, stop_a) = tokio::sync::watch::channel(false);
    let runtime_a = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let pool_a = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_with(opts)
                .await
                .unwrap();
            let _h = spawn_replica(
                pool_a,
                periodic("test-takeover", "a", 300),
                job_a.clone(),
                true,
                Duration::from_millis(10),
                stop_a,
            );
            while job_a.runs_a.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        rt.shutdown_background(); // the replica dies here
    });
    runtime_a.join().unwrap();
    let died = Instant::now();
    assert_eq!(
        holder_of(&pool, "test-takeover").await.as_deref(),
        Some("a")
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let p = periodic("test-takeover", "b", 300);
    let limit = p.ttl() + p.interval + p.jitter + Duration::from_millis(500);
    let _b = spawn_replica(
        pool.clone(),
        p,
        job.clone(),
        false,
        Duration::from_millis(10),
        stop,
    );
    while job.runs_b.load(Ordering::SeqCst) == 0 {
        assert!(
            died.elapsed() < limit,
            "b did not take over within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        holder_of(&pool, "test-takeover").await.as_deref(),
        Some("b")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn shutdown_waits_for_a_running_job_up_to_its_limit(pool: PgPool) {
    // A job that needs 800 ms, stopped 200 ms in, with 2 s of grace: it finishes.
    let finished = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (f, s) = (finished.clone(), started.clone());
    let h = run_periodic(
        pool.clone(),
        periodic("test-grace", "a", 60_000),
        stop,
        move || {
            let (f, s) = (f.clone(), s.clone());
            async move {
                s.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(800)).await;
                f.store(true, Ordering::SeqCst);
                Ok(())
            }
        },
    );
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    stop_tx.send(true).unwrap();
    h.await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "the running job finished before shutdown ended"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(holder_of(&pool, "test-grace").await, None);

    // A job that would need 10 s, with 500 ms of grace: shutdown ends at the limit.
    let finished = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (f, s) = (finished.clone(), started.clone());
    let mut p = periodic("test-grace-limit", "a", 60_000);
    p.grace = Duration::from_millis(500);
    let h = run_periodic(pool.clone(), p, stop, move || {
        let (f, s) = (f.clone(), s.clone());
        async move {
            s.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(10)).await;
            f.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    stop_tx.send(true).unwrap();
    h.await.unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the job was cancelled at the limit"
    );
    let stats = server::workers::stats();
    assert!(stats["test-grace-limit"].failures >= 1, "{stats:?}");
}
