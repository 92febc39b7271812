//! The PostgreSQL probe: what an SRE checks by hand with psql during an incident.
//!
//! Every phase runs in its own `READ ONLY` transaction with `statement_timeout` and
//! `lock_timeout` set to the step limit, so the probe cannot write, cannot wait behind a
//! lock for long, and one phase the probe's role may not read (say, a missing `pg_monitor`
//! grant) becomes a `TARGET_ERROR` finding while the other phases still run. Results are
//! bounded with `LIMIT`; query texts are truncated.
//!
//! Rows are read as tuples that mirror each SELECT list, next to the SQL that produces them.
#![allow(clippy::type_complexity)]

use super::classify;
use super::rules::{self, Limits, ident};
use crate::ProbeError;
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, Finding, ParamSpec, Params, Probe, ProbeSpec, Severity,
};
use sqlx::{Connection as _, PgConnection};
use std::time::Instant;

pub struct PostgresProbe;

const STEPS: &[&str] = &[
    "Connect",
    "Settings",
    "Connections",
    "Long queries and locks",
    "Indexes",
    "Migrations",
    "pgvector",
    "Table health",
    "Wraparound",
    "Replication",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec::int(
        "long_query_s",
        "Long query (s)",
        "Active queries running longer than this are reported.",
        1,
        86_400,
        "30",
    ),
    ParamSpec::int(
        "idle_in_tx_s",
        "Idle in transaction (s)",
        "Sessions idle inside a transaction longer than this are reported.",
        1,
        86_400,
        "60",
    ),
    ParamSpec::int(
        "blocked_s",
        "Lock wait (s)",
        "Lock waits at least this long are reported with their blockers.",
        0,
        3600,
        "5",
    ),
    ParamSpec::int(
        "connections_high_pct",
        "High connections (%)",
        "Connections at or above this share of max_connections are flagged.",
        1,
        100,
        "80",
    ),
    ParamSpec::int(
        "seq_scan_min_bytes",
        "Seq-scan table size (bytes)",
        "Only tables at least this big are checked for sequential scans.",
        0,
        1 << 40,
        "10485760",
    ),
    ParamSpec::int(
        "seq_scan_ratio",
        "Seq/index scan ratio",
        "Flag tables with this many times more sequential scans than index scans (and at least 50).",
        1,
        1_000_000,
        "10",
    ),
    ParamSpec::int(
        "dead_tuple_pct",
        "Dead tuples (%)",
        "Flag tables whose dead tuples are at least this share of all tuples.",
        1,
        100,
        "20",
    ),
    ParamSpec::int(
        "dead_tuple_min",
        "Dead tuples (rows)",
        "…and at least this many dead tuples.",
        0,
        1 << 40,
        "10000",
    ),
    ParamSpec::int(
        "xid_age_warn",
        "XID age warning",
        "Databases whose datfrozenxid age reaches this are flagged (autovacuum_freeze_max_age is 200M by default).",
        1,
        2_000_000_000,
        "500000000",
    ),
    ParamSpec::int(
        "replication_lag_s",
        "Replication lag (s)",
        "Replicas (or this standby) further behind than this are flagged.",
        1,
        86_400,
        "30",
    ),
    ParamSpec::int(
        "slot_retained_bytes",
        "Slot retained WAL (bytes)",
        "Inactive replication slots holding at least this much WAL are flagged.",
        0,
        1 << 50,
        "1073741824",
    ),
    ParamSpec::int(
        "query_chars",
        "Query text (chars)",
        "Query texts in the evidence are cut to this length.",
        20,
        5000,
        "300",
    ),
];

const CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "PG_SUMMARY",
        severity: Severity::Info,
        meaning: "Version, role, the settings that matter, connections by state.",
        remediation: "None; context for the other findings.",
    },
    CodeDoc {
        code: "PG_CONNECTIONS_NEAR_MAX",
        severity: Severity::Critical,
        meaning: "Client connections are close to max_connections.",
        remediation: "Find the application holding them (`pg_stat_activity` by application_name); put PgBouncer in front; close idle sessions.",
    },
    CodeDoc {
        code: "PG_IDLE_IN_TRANSACTION",
        severity: Severity::Warning,
        meaning: "Sessions sit idle inside an open transaction: they hold locks and stop vacuum.",
        remediation: "Fix the application path that forgets to commit; set `idle_in_transaction_session_timeout`; `SELECT pg_terminate_backend(pid)` for the worst.",
    },
    CodeDoc {
        code: "PG_LONG_QUERY",
        severity: Severity::Warning,
        meaning: "Queries have been running longer than the threshold.",
        remediation: "EXPLAIN the query; `SELECT pg_cancel_backend(pid)` if it is harming others; set `statement_timeout` for the role.",
    },
    CodeDoc {
        code: "PG_BLOCKING_CHAIN",
        severity: Severity::Critical,
        meaning: "Sessions wait for locks held by other sessions (blocker and waiter shown).",
        remediation: "End the blocker's transaction (`pg_terminate_backend(blocker_pid)`) if it is stuck; set `lock_timeout` on migrations.",
    },
    CodeDoc {
        code: "PG_INVALID_INDEX",
        severity: Severity::Warning,
        meaning: "An index is marked invalid (a failed CREATE INDEX CONCURRENTLY): it costs writes and serves no reads. For a UNIQUE index the probe looks for the duplicate keys that broke the build and lists them.",
        remediation: "For a UNIQUE index, resolve the duplicate keys first (the finding lists them and gives the query for all of them), or the rebuild fails again; then `DROP INDEX CONCURRENTLY` it and create it again, or `REINDEX INDEX CONCURRENTLY`.",
    },
    CodeDoc {
        code: "PG_INDEX_BUILD_IN_PROGRESS",
        severity: Severity::Info,
        meaning: "An index is being built (phase and progress shown).",
        remediation: "Wait, or look at what it waits for (old snapshots, lockers).",
    },
    CodeDoc {
        code: "PG_MIGRATIONS",
        severity: Severity::Info,
        meaning: "The last applied migration of each migration tool found (sqlx, Flyway, Sequelize).",
        remediation: "None; compare with what the deployment expected.",
    },
    CodeDoc {
        code: "PG_MIGRATION_FAILED",
        severity: Severity::Critical,
        meaning: "A migration is recorded as failed (sqlx `_sqlx_migrations.success = false`, Flyway `success = false`).",
        remediation: "Fix the schema by hand to the migration's before or after state, then delete or repair the failed row (`flyway repair`).",
    },
    CodeDoc {
        code: "PG_VECTOR_INDEXES",
        severity: Severity::Info,
        meaning: "pgvector columns and the HNSW/IVFFlat indexes on them, with operator classes.",
        remediation: "Check the operator class matches the distance the queries use.",
    },
    CodeDoc {
        code: "PG_VECTOR_NO_INDEX",
        severity: Severity::Warning,
        meaning: "A pgvector column has no HNSW or IVFFlat index: similarity search scans the whole table.",
        remediation: "`CREATE INDEX CONCURRENTLY ... USING hnsw (col vector_cosine_ops)` with the operator class of the queries' distance.",
    },
    CodeDoc {
        code: "PG_SEQ_SCAN_HEAVY",
        severity: Severity::Warning,
        meaning: "A large table is read by sequential scans far more often than through indexes.",
        remediation: "Find the queries (pg_stat_statements), EXPLAIN them, add the missing index.",
    },
    CodeDoc {
        code: "PG_DEAD_TUPLES",
        severity: Severity::Warning,
        meaning: "A table has a high share of dead tuples: autovacuum is not keeping up or is blocked.",
        remediation: "`VACUUM (VERBOSE)` the table; look for long transactions holding back the xmin horizon; tune the table's autovacuum scale factor.",
    },
    CodeDoc {
        code: "PG_XID_WRAPAROUND",
        severity: Severity::Critical,
        meaning: "A database's transaction ID age is high: at ~2 billion PostgreSQL stops accepting writes.",
        remediation: "Find what blocks freezing (long transactions, abandoned slots, prepared transactions) and `VACUUM (FREEZE, VERBOSE)` the oldest tables.",
    },
    CodeDoc {
        code: "PG_REPLICATION_LAG",
        severity: Severity::Warning,
        meaning: "A replica connected to this primary is behind.",
        remediation: "Check the replica's disk and CPU, network, and `hot_standby_feedback` conflicts.",
    },
    CodeDoc {
        code: "PG_STANDBY_REPLAY_LAG",
        severity: Severity::Warning,
        meaning: "This standby replays WAL late.",
        remediation: "Check replay conflicts (`pg_stat_database_conflicts`), the standby's I/O, and long queries on it.",
    },
    CodeDoc {
        code: "PG_INACTIVE_REPLICATION_SLOT",
        severity: Severity::Warning,
        meaning: "An inactive replication slot retains WAL: the disk fills and vacuum is held back.",
        remediation: "Reconnect its consumer, or `SELECT pg_drop_replication_slot('name')` if it is abandoned.",
    },
];

pub static SPEC: ProbeSpec = ProbeSpec {
    name: "postgres",
    kind: "postgres",
    title: "PostgreSQL health",
    description: "Settings, connection saturation, idle-in-transaction sessions, long queries, blocking chains, invalid indexes and index builds, migration state (sqlx, Flyway, Sequelize), pgvector indexes, sequential scans, dead tuples, wraparound age, replication lag and slots.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    run_timeout_s: 120,
    check: None,
};

impl Probe for PostgresProbe {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(run(ctx, conn, params))
    }
}

struct Pg<'a> {
    ctx: &'a Ctx,
    target: String,
    start: Instant,
}

/// Opens a read-only transaction with the step limit as statement and lock timeout.
async fn begin<'c>(
    pg: &Pg<'_>,
    conn: &'c mut PgConnection,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, ProbeError> {
    let ms = pg.ctx.step_timeout().as_millis().max(1);
    let (target, start) = (pg.target.clone(), pg.start);
    let cl = move |e: sqlx::Error| classify(&target, &e, start.elapsed());
    pg.ctx.pace(4).await?;
    let mut tx = pg.ctx.net(&pg.target, conn.begin(), cl.clone()).await?;
    for stmt in [
        "SET TRANSACTION READ ONLY".to_string(),
        format!("SET LOCAL statement_timeout = {ms}"),
        // Lock waits end first, so they are reported as lock waits, not as slow queries.
        format!("SET LOCAL lock_timeout = {}", (ms / 2).max(1)),
    ] {
        pg.ctx
            .net(&pg.target, sqlx::query(&stmt).execute(&mut *tx), cl.clone())
            .await?;
    }
    Ok(tx)
}

/// An error inside one phase: server-side errors (permissions, a statement timeout) become
/// a finding and the run goes on; connection errors end the run.
fn phase_error(ctx: &Ctx, phase: &str, e: ProbeError) -> Result<(), ProbeError> {
    match e {
        ProbeError::Server { target, reason } => {
            ctx.finding(
                Finding::new("TARGET_ERROR", Severity::Warning, format!("{phase}: {reason}"))
                    .fact("target", target)
                    .fact("phase", phase)
                    .remediation("The probe's role may lack a read-only privilege: `GRANT pg_monitor TO <probe role>;` gives it every statistics view the probe reads."),
            );
            Ok(())
        }
        other => Err(other),
    }
}

macro_rules! fetch {
    ($pg:expr, $tx:expr, $q:expr) => {{
        let target = $pg.target.clone();
        let start = $pg.start;
        $pg.ctx.pace(1).await?;
        $pg.ctx
            .net(&$pg.target, $q.fetch_all(&mut *$tx), move |e| {
                classify(&target, &e, start.elapsed())
            })
            .await
    }};
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let start = Instant::now();
    let target = conn.display.clone();
    ctx.phase("Connect");
    let t2 = target.clone();
    let c = ctx
        .net(&target, PgConnection::connect(&conn.url), move |e| {
            classify(&t2, &e, start.elapsed())
        })
        .await?;
    let pg = Pg { ctx, target, start };
    let mut c = c;
    let phases: [(&str, PhaseFn); 9] = [
        ("Settings", |pg, c, p| Box::pin(settings(pg, c, p))),
        ("Connections", |pg, c, p| Box::pin(connections(pg, c, p))),
        ("Long queries and locks", |pg, c, p| {
            Box::pin(long_queries(pg, c, p))
        }),
        ("Indexes", |pg, c, p| Box::pin(indexes(pg, c, p))),
        ("Migrations", |pg, c, p| Box::pin(migrations(pg, c, p))),
        ("pgvector", |pg, c, p| Box::pin(pgvector(pg, c, p))),
        ("Table health", |pg, c, p| Box::pin(tables(pg, c, p))),
        ("Wraparound", |pg, c, p| Box::pin(wraparound(pg, c, p))),
        ("Replication", |pg, c, p| Box::pin(replication(pg, c, p))),
    ];
    for (name, f) in phases {
        ctx.phase(name);
        if let Err(e) = f(&pg, &mut c, params).await {
            phase_error(ctx, name, e)?;
        }
    }
    let _ = c.close().await;
    Ok(())
}

type PhaseFn = for<'a> fn(
    &'a Pg<'_>,
    &'a mut PgConnection,
    &'a Params,
) -> BoxFuture<'a, Result<(), ProbeError>>;

async fn settings(pg: &Pg<'_>, conn: &mut PgConnection, _p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let rows: Vec<(String, String, Option<String>)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            // reset_val, not setting: the probe's own SET LOCAL timeouts must not show.
            "SELECT name, reset_val, unit FROM pg_settings WHERE name IN ('server_version', 'max_connections',
             'superuser_reserved_connections', 'shared_buffers', 'work_mem', 'maintenance_work_mem',
             'statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout',
             'autovacuum', 'autovacuum_freeze_max_age', 'wal_level', 'max_wal_size') ORDER BY name"
        )
    )?;
    let (recovery, db, size): (bool, String, i64) = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT pg_is_in_recovery(), current_database(), pg_database_size(current_database())"
        )
    )?
    .into_iter()
    .next()
    .unwrap_or((false, String::new(), 0));
    let _ = tx.rollback().await;
    ctx.finding(rules::summary(&rows, recovery, &db, size));
    ctx.evidence(
        "settings",
        &rows
            .iter()
            .map(|r| format!("{} = {}", r.0, r.1))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    Ok(())
}

async fn connections(pg: &Pg<'_>, conn: &mut PgConnection, p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let qc = p.int("query_chars") as i32;
    let mut tx = begin(pg, conn).await?;
    let by_state: Vec<(String, i64)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity
             WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC"
        )
    )?;
    let by_app: Vec<(String, String, i64)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT coalesce(nullif(application_name, ''), '(none)'), coalesce(usename::text, '?'), count(*)
             FROM pg_stat_activity WHERE backend_type = 'client backend'
             GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10"
        )
    )?;
    let max: Vec<(i64, i64)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT current_setting('max_connections')::bigint, current_setting('superuser_reserved_connections')::bigint"
        )
    )?;
    let idle: Vec<(i32, String, String, String, String, f64, f64, String)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT pid, coalesce(usename::text, '?'), coalesce(datname::text, '?'), coalesce(application_name, ''),
                    coalesce(client_addr::text, 'local'),
                    extract(epoch FROM clock_timestamp() - state_change)::float8,
                    coalesce(extract(epoch FROM clock_timestamp() - xact_start)::float8, 0),
                    left(coalesce(query, ''), $2)
             FROM pg_stat_activity
             WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
               AND clock_timestamp() - state_change > make_interval(secs => $1)
             ORDER BY state_change LIMIT 50"
        )
        .bind(p.int("idle_in_tx_s") as f64)
        .bind(qc)
    )?;
    let _ = tx.rollback().await;
    let max = max.first().copied().unwrap_or((0, 0));
    for f in rules::connections(&by_state, &by_app, max, &idle, &Limits::from_params(p)) {
        ctx.finding(f);
    }
    Ok(())
}

async fn long_queries(pg: &Pg<'_>, conn: &mut PgConnection, p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let qc = p.int("query_chars") as i32;
    let mut tx = begin(pg, conn).await?;
    let long: Vec<(i32, String, String, String, f64, Option<String>, String)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT pid, coalesce(usename::text, '?'), coalesce(datname::text, '?'), coalesce(application_name, ''),
                    extract(epoch FROM clock_timestamp() - query_start)::float8,
                    wait_event_type, left(coalesce(query, ''), $2)
             FROM pg_stat_activity
             WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND clock_timestamp() - query_start > make_interval(secs => $1)
             ORDER BY query_start LIMIT 50"
        )
        .bind(p.int("long_query_s") as f64)
        .bind(qc)
    )?;
    let chains: Vec<(i32, String, String, f64, i32, String, String, f64, String)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT w.pid, coalesce(w.usename::text, '?'), left(coalesce(w.query, ''), $2),
                    extract(epoch FROM clock_timestamp() - w.query_start)::float8,
                    b.pid, coalesce(b.state, '?'), left(coalesce(b.query, ''), $2),
                    coalesce(extract(epoch FROM clock_timestamp() - b.xact_start)::float8, 0),
                    coalesce(b.usename::text, '?')
             FROM pg_stat_activity w
             CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
             JOIN pg_stat_activity b ON b.pid = bp.pid
             WHERE w.wait_event_type = 'Lock'
               AND clock_timestamp() - w.query_start >= make_interval(secs => $1)
             ORDER BY w.query_start LIMIT 50"
        )
        .bind(p.int("blocked_s") as f64)
        .bind(qc)
    )?;
    let _ = tx.rollback().await;
    for f in rules::long_queries(&long, &chains, &Limits::from_params(p)) {
        ctx.finding(f);
    }
    Ok(())
}

async fn indexes(pg: &Pg<'_>, conn: &mut PgConnection, _p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let builds: Vec<(i32, String, String, String, String, i64, i64, i64, i64, f64, i64)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT p.pid, coalesce(p.datname::text, '?'), p.relid::regclass::text, p.index_relid::regclass::text,
                    p.phase, p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done,
                    coalesce(extract(epoch FROM clock_timestamp() - a.query_start)::float8, 0),
                    p.index_relid::bigint
             FROM pg_stat_progress_create_index p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
             ORDER BY p.pid LIMIT 50"
        )
    )?;
    #[allow(clippy::type_complexity)]
    let invalid: Vec<(String, String, String, i64, String, i64, bool, String, Vec<String>, Option<String>, bool)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text, t.relname::text, pg_relation_size(c.oid), pg_get_indexdef(c.oid), c.oid::bigint,
                    i.indisunique, i.indrelid::regclass::text,
                    ARRAY(SELECT pg_get_indexdef(c.oid, k, true) FROM generate_series(1, i.indnkeyatts) AS k),
                    pg_get_expr(i.indpred, i.indrelid),
                    coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT i.indisvalid
             ORDER BY 1, 2 LIMIT 100"
        )
    )?;
    let _ = tx.rollback().await;
    // A unique index whose build failed on duplicate keys fails again when rebuilt: find
    // the duplicates (read-only, bounded by the step limit) for the first few.
    let building: std::collections::HashSet<i64> = builds.iter().map(|b| b.10).collect();
    let mut dups: Vec<rules::DupCheck> = vec![];
    for (i, (_, _, _, _, _, oid, unique, table, keys, pred, nulls_nd)) in invalid.iter().enumerate()
    {
        if dups.len() >= 5 || building.contains(oid) || !*unique || keys.is_empty() {
            continue;
        }
        let q = rules::duplicate_keys_query(
            table,
            keys,
            pred.as_deref(),
            *nulls_nd,
            rules::DUPLICATES_SHOWN,
        );
        let mut tx = begin(pg, conn).await?;
        let rows: Result<Vec<(Vec<Option<String>>, i64)>, ProbeError> =
            fetch!(pg, tx, sqlx::query_as(&q));
        let _ = tx.rollback().await;
        dups.push((i, rows.ok()));
    }
    for f in rules::indexes(&builds, &invalid, &dups) {
        ctx.finding(f);
    }
    Ok(())
}

async fn migrations(pg: &Pg<'_>, conn: &mut PgConnection, _p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let tables: Vec<(String, String)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND c.relname IN ('_sqlx_migrations', 'flyway_schema_history', 'SequelizeMeta')
             ORDER BY 1, 2 LIMIT 20"
        )
    )?;
    let mut logs = vec![];
    for (schema, name) in &tables {
        let t = ident(schema, name);
        let log = match name.as_str() {
            "_sqlx_migrations" => rules::MigrationLog::Sqlx(fetch!(
                pg,
                tx,
                sqlx::query_as(&format!(
                    "SELECT version, description, success, installed_on::text FROM {t} ORDER BY version DESC LIMIT 1000"
                ))
            )?),
            "flyway_schema_history" => rules::MigrationLog::Flyway(fetch!(
                pg,
                tx,
                sqlx::query_as(&format!(
                    "SELECT installed_rank, version, description, success, installed_on::text FROM {t} ORDER BY installed_rank DESC LIMIT 1000"
                ))
            )?),
            _ => {
                let rows: Vec<(String, i64)> = fetch!(
                    pg,
                    tx,
                    sqlx::query_as(&format!(
                        "SELECT max(name), count(*) FROM {t} HAVING count(*) > 0"
                    ))
                )?;
                rules::MigrationLog::Sequelize(rows.into_iter().next())
            }
        };
        logs.push((t, log));
    }
    let _ = tx.rollback().await;
    for f in rules::migrations(&logs) {
        ctx.finding(f);
    }
    Ok(())
}

async fn pgvector(pg: &Pg<'_>, conn: &mut PgConnection, _p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let ext: Vec<(String,)> = fetch!(
        pg,
        tx,
        sqlx::query_as("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    )?;
    let Some((version,)) = ext.into_iter().next() else {
        let _ = tx.rollback().await;
        return Ok(());
    };
    let cols: Vec<(String, String, String, String, Option<String>)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    (SELECT string_agg(am.amname || ' ' || ic.relname || ' (' || opc.opcname || ')', ', ' ORDER BY ic.relname)
                     FROM pg_index i
                     JOIN pg_class ic ON ic.oid = i.indexrelid
                     JOIN pg_am am ON am.oid = ic.relam
                     JOIN pg_opclass opc ON opc.oid = i.indclass[0]
                     WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum AND am.amname IN ('hnsw', 'ivfflat'))
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_type t ON t.oid = a.atttypid
             WHERE t.typname IN ('vector', 'halfvec', 'sparsevec', 'bit') AND t.typname <> 'bit'
               AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1, 2, 3 LIMIT 200"
        )
    )?;
    let _ = tx.rollback().await;
    for f in rules::pgvector(&version, &cols) {
        ctx.finding(f);
    }
    Ok(())
}

async fn tables(pg: &Pg<'_>, conn: &mut PgConnection, p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let seq: Vec<(String, String, i64, i64, i64, i64)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT schemaname::text, relname::text, pg_table_size(relid), seq_scan, coalesce(idx_scan, 0), seq_tup_read
             FROM pg_stat_user_tables
             WHERE seq_scan >= 50 AND seq_scan > $2 * coalesce(idx_scan, 0)
               AND pg_table_size(relid) >= $1
             ORDER BY seq_tup_read DESC LIMIT 20"
        )
        .bind(p.int("seq_scan_min_bytes"))
        .bind(p.int("seq_scan_ratio"))
    )?;
    let dead: Vec<(String, String, i64, i64, Option<String>, Option<String>)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT schemaname::text, relname::text, n_live_tup, n_dead_tup,
                    greatest(last_autovacuum, last_vacuum)::text, last_autoanalyze::text
             FROM pg_stat_user_tables
             WHERE n_dead_tup >= $1 AND n_dead_tup::float8 / greatest(n_live_tup + n_dead_tup, 1) * 100 >= $2
             ORDER BY n_dead_tup DESC LIMIT 20"
        )
        .bind(p.int("dead_tuple_min"))
        .bind(p.int("dead_tuple_pct") as f64)
    )?;
    let _ = tx.rollback().await;
    for f in rules::tables(&seq, &dead, &Limits::from_params(p)) {
        ctx.finding(f);
    }
    Ok(())
}

async fn wraparound(pg: &Pg<'_>, conn: &mut PgConnection, p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let rows: Vec<(String, i32, i32)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT datname::text, age(datfrozenxid), mxid_age(datminmxid) FROM pg_database
             WHERE datallowconn ORDER BY 2 DESC LIMIT 100"
        )
    )?;
    let _ = tx.rollback().await;
    if let Some(f) = rules::wraparound(&rows, &Limits::from_params(p)) {
        ctx.finding(f);
    }
    Ok(())
}

async fn replication(pg: &Pg<'_>, conn: &mut PgConnection, p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let mut tx = begin(pg, conn).await?;
    let standby: Vec<(bool,)> = fetch!(pg, tx, sqlx::query_as("SELECT pg_is_in_recovery()"))?;
    if standby.first().is_some_and(|r| r.0) {
        let rows: Vec<(Option<f64>, bool)> = fetch!(
            pg,
            tx,
            sqlx::query_as(
                "SELECT extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8,
                        coalesce(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false)"
            )
        )?;
        let _ = tx.rollback().await;
        if let Some(f) = rules::standby(rows.first().copied(), &Limits::from_params(p)) {
            ctx.finding(f);
        }
        return Ok(());
    }
    let reps: Vec<(String, String, String, String, Option<i64>, Option<f64>, Option<f64>)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local'), coalesce(state, '?'), coalesce(sync_state, '?'),
                    pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(replay_lsn, flush_lsn, write_lsn, sent_lsn))::bigint,
                    extract(epoch FROM coalesce(replay_lag, flush_lag, write_lag))::float8,
                    extract(epoch FROM clock_timestamp() - reply_time)::float8
             FROM pg_stat_replication ORDER BY 1 LIMIT 50"
        )
    )?;
    let slots: Vec<(String, String, bool, Option<i64>)> = fetch!(
        pg,
        tx,
        sqlx::query_as(
            "SELECT slot_name::text, slot_type, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
             FROM pg_replication_slots ORDER BY 4 DESC NULLS LAST LIMIT 50"
        )
    )?;
    let _ = tx.rollback().await;
    for f in rules::replication(&reps, &slots, &Limits::from_params(p)) {
        ctx.finding(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::rules::{duplicate_keys_query, secs_text};

    #[test]
    fn the_query_that_finds_the_duplicates_a_unique_index_refuses() {
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&str, Vec<String>, Option<&str>, bool, usize, &str)] = &[
            (
                "users",
                k(&["email"]),
                None,
                false,
                10,
                "SELECT ARRAY[(email)::text], count(*) FROM users WHERE (email) IS NOT NULL GROUP BY (email) HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT 10",
            ),
            (
                "app.\"Orders\"",
                k(&["tenant_id", "lower(code)"]),
                Some("deleted_at IS NULL"),
                false,
                0,
                "SELECT ARRAY[(tenant_id)::text, (lower(code))::text], count(*) FROM app.\"Orders\" WHERE (tenant_id) IS NOT NULL AND (lower(code)) IS NOT NULL AND (deleted_at IS NULL) GROUP BY (tenant_id), (lower(code)) HAVING count(*) > 1 ORDER BY count(*) DESC",
            ),
            (
                "t",
                k(&["a"]),
                None,
                true,
                5,
                "SELECT ARRAY[(a)::text], count(*) FROM t GROUP BY (a) HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT 5",
            ),
        ];
        for (table, keys, pred, nnd, limit, want) in cases {
            assert_eq!(
                duplicate_keys_query(table, keys, *pred, *nnd, *limit),
                *want
            );
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("public", "a\"b"), "\"public\".\"a\"\"b\"");
        assert_eq!(secs_text(90.0), "1.5 min");
    }
}
