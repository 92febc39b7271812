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
use crate::ProbeError;
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, Finding, ParamKind, ParamSpec, Params, Probe, ProbeSpec,
    Severity, Table, bytes, group,
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

const fn int(
    name: &'static str,
    label: &'static str,
    help: &'static str,
    min: i64,
    max: i64,
    default: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        label,
        help,
        kind: ParamKind::Int { min, max },
        default,
    }
}

const PARAMS: &[ParamSpec] = &[
    int(
        "long_query_s",
        "Long query (s)",
        "Active queries running longer than this are reported.",
        1,
        86_400,
        "30",
    ),
    int(
        "idle_in_tx_s",
        "Idle in transaction (s)",
        "Sessions idle inside a transaction longer than this are reported.",
        1,
        86_400,
        "60",
    ),
    int(
        "blocked_s",
        "Lock wait (s)",
        "Lock waits at least this long are reported with their blockers.",
        0,
        3600,
        "5",
    ),
    int(
        "connections_high_pct",
        "High connections (%)",
        "Connections at or above this share of max_connections are flagged.",
        1,
        100,
        "80",
    ),
    int(
        "seq_scan_min_bytes",
        "Seq-scan table size (bytes)",
        "Only tables at least this big are checked for sequential scans.",
        0,
        1 << 40,
        "10485760",
    ),
    int(
        "seq_scan_ratio",
        "Seq/index scan ratio",
        "Flag tables with this many times more sequential scans than index scans (and at least 50).",
        1,
        1_000_000,
        "10",
    ),
    int(
        "dead_tuple_pct",
        "Dead tuples (%)",
        "Flag tables whose dead tuples are at least this share of all tuples.",
        1,
        100,
        "20",
    ),
    int(
        "dead_tuple_min",
        "Dead tuples (rows)",
        "…and at least this many dead tuples.",
        0,
        1 << 40,
        "10000",
    ),
    int(
        "xid_age_warn",
        "XID age warning",
        "Databases whose datfrozenxid age reaches this are flagged (autovacuum_freeze_max_age is 200M by default).",
        1,
        2_000_000_000,
        "500000000",
    ),
    int(
        "replication_lag_s",
        "Replication lag (s)",
        "Replicas (or this standby) further behind than this are flagged.",
        1,
        86_400,
        "30",
    ),
    int(
        "slot_retained_bytes",
        "Slot retained WAL (bytes)",
        "Inactive replication slots holding at least this much WAL are flagged.",
        0,
        1 << 50,
        "1073741824",
    ),
    int(
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

/// `"schema"."name"` with quotes doubled.
fn ident(schema: &str, name: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        name.replace('"', "\"\"")
    )
}

/// The read-only query that lists the keys a unique index refuses: rows whose key columns
/// (or expressions) are equal, within the index's predicate; NULL keys are distinct unless
/// the index says NULLS NOT DISTINCT. `limit` 0: every such key.
fn duplicate_keys_query(
    table: &str,
    keys: &[String],
    predicate: Option<&str>,
    nulls_not_distinct: bool,
    limit: usize,
) -> String {
    let shown: Vec<String> = keys.iter().map(|k| format!("({k})::text")).collect();
    let mut conds: Vec<String> = vec![];
    if !nulls_not_distinct {
        conds.extend(keys.iter().map(|k| format!("({k}) IS NOT NULL")));
    }
    if let Some(p) = predicate {
        conds.push(format!("({p})"));
    }
    let grouped: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
    let mut q = format!("SELECT ARRAY[{}], count(*) FROM {table}", shown.join(", "));
    if !conds.is_empty() {
        q.push_str(&format!(" WHERE {}", conds.join(" AND ")));
    }
    q.push_str(&format!(
        " GROUP BY {} HAVING count(*) > 1 ORDER BY count(*) DESC",
        grouped.join(", ")
    ));
    if limit > 0 {
        q.push_str(&format!(" LIMIT {limit}"));
    }
    q
}

fn secs_text(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
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
    let mut t = Table::new("Settings", &["name", "value"]);
    let mut version = String::new();
    for (name, setting, unit) in &rows {
        if name == "server_version" {
            version = setting.clone();
        }
        let shown = match unit.as_deref() {
            Some("8kB") => setting
                .parse::<u64>()
                .map(|n| bytes(n * 8192))
                .unwrap_or(setting.clone()),
            Some("kB") => setting
                .parse::<u64>()
                .map(|n| bytes(n * 1024))
                .unwrap_or(setting.clone()),
            Some(u) => format!("{setting} {u}"),
            None => setting.clone(),
        };
        t.row(vec![name.clone(), shown]);
    }
    let get = |n: &str| {
        rows.iter()
            .find(|r| r.0 == n)
            .map(|r| r.1.clone())
            .unwrap_or_default()
    };
    let mut f = Finding::new(
        "PG_SUMMARY",
        Severity::Info,
        format!(
            "PostgreSQL {version} ({}), database {db} ({})",
            if recovery { "standby" } else { "primary" },
            bytes(size.max(0) as u64)
        ),
    )
    .fact("server_version", &version)
    .fact("role", if recovery { "standby" } else { "primary" })
    .fact("database", &db)
    .fact("max_connections", get("max_connections"))
    .command("SELECT name, reset_val, unit FROM pg_settings WHERE name IN (…)")
    .table(t);
    let mut notes = vec![];
    if get("statement_timeout") == "0" {
        notes.push("`statement_timeout` is 0 (no limit): a runaway query runs until someone cancels it; set it per application role, e.g. `ALTER ROLE app SET statement_timeout = '30s';`");
    }
    if get("idle_in_transaction_session_timeout") == "0" {
        notes.push("`idle_in_transaction_session_timeout` is 0: a client that forgets to commit holds locks forever; e.g. `ALTER ROLE app SET idle_in_transaction_session_timeout = '60s';`");
    }
    f.remediation = if notes.is_empty() {
        "None; context for the other findings.".into()
    } else {
        notes.join("\n\n")
    };
    ctx.finding(f);
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
    let total: i64 = by_state.iter().map(|r| r.1).sum();
    let (max, reserved) = max.first().copied().unwrap_or((0, 0));
    let mut t = Table::new("Client connections by state", &["state", "connections"]);
    for (s, n) in &by_state {
        t.row(vec![s.clone(), n.to_string()]);
    }
    let mut apps = Table::new(
        "Top applications by connections",
        &["application", "user", "connections"],
    );
    for (a, u, n) in &by_app {
        apps.row(vec![a.clone(), u.clone(), n.to_string()]);
    }
    let usable = (max - reserved).max(1);
    let pct = total as f64 / usable as f64 * 100.0;
    if pct >= p.int("connections_high_pct") as f64 {
        ctx.finding(
            Finding::new(
                "PG_CONNECTIONS_NEAR_MAX",
                if pct >= 95.0 { Severity::Critical } else { Severity::Warning },
                format!("{total} of {usable} usable connections in use ({pct:.0}%; max_connections {max}, {reserved} reserved)"),
            )
            .fact("client connections", total)
            .fact("max_connections", max)
            .fact("superuser_reserved_connections", reserved)
            .command("SELECT state, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1")
            .table(t)
            .table(apps)
            .remediation("New connections will fail with `too many clients already`. Find who holds them (the application table), close idle ones, and put a pooler (PgBouncer in transaction mode) in front instead of raising max_connections:\n\n```\nSELECT application_name, state, count(*) FROM pg_stat_activity GROUP BY 1, 2 ORDER BY 3 DESC;\n```"),
        );
    }
    if !idle.is_empty() {
        let mut it = Table::new(
            "Idle in transaction",
            &[
                "pid",
                "user",
                "database",
                "application",
                "client",
                "idle for",
                "transaction age",
                "last query",
            ],
        );
        for r in &idle {
            it.row(vec![
                r.0.to_string(),
                r.1.clone(),
                r.2.clone(),
                r.3.clone(),
                r.4.clone(),
                secs_text(r.5),
                secs_text(r.6),
                r.7.clone(),
            ]);
        }
        let worst = &idle[0];
        ctx.finding(
            Finding::new(
                "PG_IDLE_IN_TRANSACTION",
                Severity::Warning,
                format!("{} sessions idle in transaction for more than {} s; longest {} (pid {}, {})", idle.len(), p.int("idle_in_tx_s"), secs_text(worst.5), worst.0, if worst.3.is_empty() { "no application name" } else { &worst.3 }),
            )
            .fact("threshold", format!("{} s", p.int("idle_in_tx_s")))
            .command("SELECT … FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .table(it)
            .remediation(format!(
                "An open transaction holds its locks and stops vacuum from cleaning up. Find the code path that does not commit (the last query shows where it stopped). To end the worst one now:\n\n```\nSELECT pg_terminate_backend({});\n```\n\nand set a guard rail: `ALTER ROLE {} SET idle_in_transaction_session_timeout = '60s';`",
                worst.0, worst.1
            )),
        );
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
    if !long.is_empty() {
        let mut t = Table::new(
            "Long-running queries",
            &[
                "pid",
                "user",
                "database",
                "application",
                "running for",
                "waiting on",
                "query",
            ],
        );
        for r in &long {
            t.row(vec![
                r.0.to_string(),
                r.1.clone(),
                r.2.clone(),
                r.3.clone(),
                secs_text(r.4),
                r.5.clone().unwrap_or_default(),
                r.6.clone(),
            ]);
        }
        let w = &long[0];
        ctx.finding(
            Finding::new(
                "PG_LONG_QUERY",
                Severity::Warning,
                format!("{} queries running longer than {} s; longest {} (pid {})", long.len(), p.int("long_query_s"), secs_text(w.4), w.0),
            )
            .fact("threshold", format!("{} s", p.int("long_query_s")))
            .command("SELECT … FROM pg_stat_activity WHERE state = 'active' AND now() - query_start > …")
            .table(t)
            .remediation(format!(
                "EXPLAIN the query to see why it is slow. If it harms others, cancel it (the session survives):\n\n```\nSELECT pg_cancel_backend({});\n```\n\nand cap the role: `ALTER ROLE {} SET statement_timeout = '30s';`",
                w.0, w.1
            )),
        );
    }
    if !chains.is_empty() {
        let mut t = Table::new(
            "Blocking chains",
            &[
                "waiter pid",
                "waiter user",
                "waiting for",
                "waiter query",
                "blocker pid",
                "blocker state",
                "blocker transaction age",
                "blocker query",
            ],
        );
        for r in &chains {
            t.row(vec![
                r.0.to_string(),
                r.1.clone(),
                secs_text(r.3),
                r.2.clone(),
                r.4.to_string(),
                r.5.clone(),
                secs_text(r.7),
                r.6.clone(),
            ]);
        }
        let w = &chains[0];
        // The root blocker: a blocker that does not itself wait.
        let waiting: std::collections::HashSet<i32> = chains.iter().map(|r| r.0).collect();
        let root = chains.iter().find(|r| !waiting.contains(&r.4)).unwrap_or(w);
        ctx.finding(
            Finding::new(
                "PG_BLOCKING_CHAIN",
                if w.3 >= 60.0 { Severity::Critical } else { Severity::Warning },
                format!(
                    "{} sessions wait for locks; pid {} has waited {} for pid {} ({}, transaction open {})",
                    waiting.len(), w.0, secs_text(w.3), root.4, root.5, secs_text(root.7)
                ),
            )
            .fact("waiting sessions", waiting.len())
            .fact("root blocker pid", root.4)
            .fact("root blocker state", &root.5)
            .fact("root blocker query", &root.6)
            .command("SELECT … FROM pg_stat_activity w, unnest(pg_blocking_pids(w.pid)) …")
            .table(t)
            .remediation(format!(
                "The root blocker holds the lock everybody waits for{}. If its transaction is stuck, end it:\n\n```\nSELECT pg_terminate_backend({});\n```\n\nMigrations should set `SET lock_timeout = '5s'` so they fail instead of queueing everyone behind them.",
                if root.5.starts_with("idle in transaction") { " while idle in transaction (the application never committed)" } else { "" },
                root.4
            )),
        );
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
    let building: std::collections::HashSet<i64> = builds.iter().map(|b| b.10).collect();
    if !builds.is_empty() {
        let mut t = Table::new(
            "Index builds in progress",
            &[
                "pid",
                "database",
                "table",
                "index",
                "phase",
                "progress",
                "running for",
            ],
        );
        for b in &builds {
            let pct = if b.5 > 0 {
                format!("{:.0}% of blocks", b.6 as f64 / b.5 as f64 * 100.0)
            } else if b.7 > 0 {
                format!("{:.0}% of tuples", b.8 as f64 / b.7 as f64 * 100.0)
            } else {
                "–".into()
            };
            t.row(vec![
                b.0.to_string(),
                b.1.clone(),
                b.2.clone(),
                b.3.clone(),
                b.4.clone(),
                pct,
                secs_text(b.9),
            ]);
        }
        ctx.finding(
            Finding::new(
                "PG_INDEX_BUILD_IN_PROGRESS",
                Severity::Info,
                format!("{} index build(s) in progress; {} is in phase \"{}\"", builds.len(), builds[0].3, builds[0].4),
            )
            .command("SELECT … FROM pg_stat_progress_create_index")
            .table(t)
            .remediation("A concurrent build in a \"waiting for …\" phase waits for older transactions to finish: look for long transactions (see the long-query and idle-in-transaction findings)."),
        );
    }
    let invalid: Vec<_> = invalid
        .into_iter()
        .filter(|r| !building.contains(&r.5))
        .collect();
    if !invalid.is_empty() {
        // A unique index whose build failed on duplicate keys fails again when rebuilt:
        // find the duplicates (read-only, bounded by the step limit) for the first few.
        let mut dup_tables = vec![];
        let mut first_fix = String::new();
        for (schema, idx, _, _, _, _, unique, table, keys, pred, nulls_nd) in invalid.iter().take(5)
        {
            if !*unique || keys.is_empty() {
                continue;
            }
            let q = duplicate_keys_query(table, keys, pred.as_deref(), *nulls_nd, 10);
            let mut tx = begin(pg, conn).await?;
            let rows: Result<Vec<(Vec<Option<String>>, i64)>, ProbeError> =
                fetch!(pg, tx, sqlx::query_as(&q));
            let _ = tx.rollback().await;
            let name = ident(schema, idx);
            let all = duplicate_keys_query(table, keys, pred.as_deref(), *nulls_nd, 0);
            match rows {
                Ok(rows) if rows.is_empty() => {}
                Ok(rows) => {
                    let mut t = Table::new(
                        &format!("Duplicate keys in {table} that {name} refuses"),
                        &[&keys.join(", "), "rows"],
                    );
                    for (vals, n) in &rows {
                        let shown: Vec<String> = vals.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect();
                        t.row(vec![shown.join(", "), n.to_string()]);
                    }
                    dup_tables.push(t);
                    first_fix.push_str(&format!(
                        "{name} is UNIQUE and {table} holds duplicate keys ({}{}): rebuilt as it is, it fails again with \"could not create unique index\". Resolve them first — keep one row per key (merge or delete the others); list them all with:\n\n```\n{all};\n```\n\n",
                        rows.len(),
                        if rows.len() >= 10 { " or more keys" } else { " key(s)" },
                    ));
                }
                Err(_) => first_fix.push_str(&format!(
                    "{name} is UNIQUE: Lookout could not check its table for duplicate keys within the step limit. Before rebuilding, run:\n\n```\n{all};\n```\n\nand resolve any rows it lists, or the rebuild fails again.\n\n"
                )),
            }
        }
        let mut t = Table::new("Invalid indexes", &["index", "table", "size", "definition"]);
        let mut fix = String::new();
        for (schema, idx, table, size, def, ..) in &invalid {
            let name = ident(schema, idx);
            t.row(vec![
                name.clone(),
                table.clone(),
                bytes(*size as u64),
                def.clone(),
            ]);
            let create = def.replacen("CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX CONCURRENTLY", 1);
            let create = if create == *def {
                def.replacen("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
            } else {
                create
            };
            fix.push_str(&format!("DROP INDEX CONCURRENTLY {name};\n{create};\n"));
        }
        let mut f = Finding::new(
            "PG_INVALID_INDEX",
            Severity::Warning,
            format!(
                "{} invalid index(es), e.g. {} on {}: left by a failed CREATE INDEX CONCURRENTLY",
                invalid.len(),
                invalid[0].1,
                invalid[0].2
            ),
        )
        .command("SELECT … FROM pg_index WHERE NOT indisvalid")
        .table(t);
        for d in dup_tables {
            f = f.table(d);
        }
        ctx.finding(f.remediation(format!(
            "An invalid index is maintained on every write but never used for reads. {first_fix}Fix what made the build fail first, then drop it and build it again:\n\n```\n{fix}```"
        )));
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
    let mut summary = Table::new(
        "Migration tables",
        &["tool", "table", "applied", "last applied", "failed"],
    );
    let mut failed = Table::new(
        "Failed migrations",
        &["tool", "table", "version", "description", "installed on"],
    );
    for (schema, name) in &tables {
        let t = ident(schema, name);
        match name.as_str() {
            "_sqlx_migrations" => {
                let rows: Vec<(i64, String, bool, String)> = fetch!(
                    pg,
                    tx,
                    sqlx::query_as(&format!(
                        "SELECT version, description, success, installed_on::text FROM {t} ORDER BY version DESC LIMIT 1000"
                    ))
                )?;
                let last = rows.iter().find(|r| r.2);
                let bad: Vec<_> = rows.iter().filter(|r| !r.2).collect();
                summary.row(vec![
                    "sqlx".into(),
                    t.clone(),
                    rows.iter().filter(|r| r.2).count().to_string(),
                    last.map(|r| format!("{} {}", r.0, r.1)).unwrap_or_default(),
                    bad.len().to_string(),
                ]);
                for r in bad {
                    failed.row(vec![
                        "sqlx".into(),
                        t.clone(),
                        r.0.to_string(),
                        r.1.clone(),
                        r.3.clone(),
                    ]);
                }
            }
            "flyway_schema_history" => {
                let rows: Vec<(i32, Option<String>, String, bool, String)> = fetch!(
                    pg,
                    tx,
                    sqlx::query_as(&format!(
                        "SELECT installed_rank, version, description, success, installed_on::text FROM {t} ORDER BY installed_rank DESC LIMIT 1000"
                    ))
                )?;
                let last = rows.iter().find(|r| r.3);
                let bad: Vec<_> = rows.iter().filter(|r| !r.3).collect();
                summary.row(vec![
                    "Flyway".into(),
                    t.clone(),
                    rows.iter().filter(|r| r.3).count().to_string(),
                    last.map(|r| {
                        format!(
                            "{} {}",
                            r.1.clone().unwrap_or_else(|| "(repeatable)".into()),
                            r.2
                        )
                    })
                    .unwrap_or_default(),
                    bad.len().to_string(),
                ]);
                for r in bad {
                    failed.row(vec![
                        "Flyway".into(),
                        t.clone(),
                        r.1.clone().unwrap_or_default(),
                        r.2.clone(),
                        r.4.clone(),
                    ]);
                }
            }
            _ => {
                let rows: Vec<(String, i64)> = fetch!(
                    pg,
                    tx,
                    sqlx::query_as(&format!(
                        "SELECT max(name), count(*) FROM {t} HAVING count(*) > 0"
                    ))
                )?;
                let (last, n) = rows.first().cloned().unwrap_or_default();
                summary.row(vec![
                    "Sequelize".into(),
                    t.clone(),
                    n.to_string(),
                    last,
                    "(Sequelize does not record failures)".into(),
                ]);
            }
        }
    }
    let _ = tx.rollback().await;
    if tables.is_empty() {
        return Ok(());
    }
    ctx.finding(
        Finding::new("PG_MIGRATIONS", Severity::Info, format!("Migration state of {} tool table(s)", tables.len()))
            .command("SELECT … FROM _sqlx_migrations / flyway_schema_history / \"SequelizeMeta\"")
            .table(summary)
            .remediation("Compare the last applied migration with what the deployment expected. Which files exist is out of the probe's reach (it sees the database only)."),
    );
    if !failed.rows.is_empty() {
        let first = failed.rows[0].clone();
        ctx.finding(
            Finding::new(
                "PG_MIGRATION_FAILED",
                Severity::Critical,
                format!("{} migration(s) recorded as failed, e.g. {} {} \"{}\"", failed.rows.len(), first[0], first[2], first[3]),
            )
            .command("SELECT version, description, success FROM … WHERE success = false")
            .table(failed)
            .remediation(format!(
                "The schema may be half-migrated. Check which statements of migration {} ran, bring the schema to its before or after state by hand, then clear the record so the tool can continue (sqlx: delete the row and re-run; Flyway: `flyway repair`):\n\n```\nDELETE FROM {} WHERE version = {} AND success = false;\n```",
                first[2], first[1], first[2]
            )),
        );
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
    let mut t = Table::new(
        "Vector columns",
        &["table", "column", "type", "ANN index (operator class)"],
    );
    let mut missing = vec![];
    for (s, table, col, ty, idx) in &cols {
        let name = ident(s, table);
        t.row(vec![
            name.clone(),
            col.clone(),
            ty.clone(),
            idx.clone().unwrap_or_else(|| "none".into()),
        ]);
        if idx.is_none() {
            missing.push((name, col.clone()));
        }
    }
    ctx.finding(
        Finding::new("PG_VECTOR_INDEXES", Severity::Info, format!("pgvector {version}: {} vector column(s), {} without an ANN index", cols.len(), missing.len()))
            .fact("pgvector version", &version)
            .command("SELECT … FROM pg_attribute JOIN pg_type … WHERE typname IN ('vector', 'halfvec', 'sparsevec')")
            .table(t.clone())
            .remediation("Check that each index's operator class matches the distance operator the queries use (`<=>` cosine → vector_cosine_ops, `<->` L2 → vector_l2_ops, `<#>` inner product → vector_ip_ops); a mismatch means the index is not used."),
    );
    if let Some((table, col)) = missing.first() {
        ctx.finding(
            Finding::new(
                "PG_VECTOR_NO_INDEX",
                Severity::Warning,
                format!("{} vector column(s) without an HNSW or IVFFlat index, e.g. {table}.{col}: similarity search scans the whole table", missing.len()),
            )
            .command("SELECT … FROM pg_index JOIN pg_am … WHERE amname IN ('hnsw', 'ivfflat')")
            .table(t)
            .remediation(format!(
                "Build an approximate-nearest-neighbour index with the operator class of the distance your queries use (cosine shown):\n\n```\nCREATE INDEX CONCURRENTLY ON {table} USING hnsw ({col} vector_cosine_ops);\n```"
            )),
        );
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
    if !seq.is_empty() {
        let mut t = Table::new(
            "Tables read mostly by sequential scans",
            &[
                "table",
                "size",
                "seq scans",
                "index scans",
                "rows read by seq scans",
            ],
        );
        for r in &seq {
            t.row(vec![
                ident(&r.0, &r.1),
                bytes(r.2 as u64),
                group(r.3 as u64),
                group(r.4 as u64),
                group(r.5 as u64),
            ]);
        }
        ctx.finding(
            Finding::new(
                "PG_SEQ_SCAN_HEAVY",
                Severity::Warning,
                format!("{} large table(s) read mostly by sequential scans, e.g. {} ({} seq vs {} index scans)", seq.len(), ident(&seq[0].0, &seq[0].1), group(seq[0].3 as u64), group(seq[0].4 as u64)),
            )
            .command("SELECT … FROM pg_stat_user_tables WHERE seq_scan > ratio * idx_scan")
            .table(t)
            .remediation(format!(
                "Find the queries that scan the table and EXPLAIN them; usually an index on the filtered columns is missing:\n\n```\nSELECT query, calls, rows FROM pg_stat_statements WHERE query ILIKE '%{}%' ORDER BY total_exec_time DESC LIMIT 10;\n```",
                seq[0].1
            )),
        );
    }
    if !dead.is_empty() {
        let mut t = Table::new(
            "Tables with many dead tuples",
            &[
                "table",
                "live",
                "dead",
                "dead %",
                "last vacuum",
                "last autoanalyze",
            ],
        );
        for r in &dead {
            t.row(vec![
                ident(&r.0, &r.1),
                group(r.2.max(0) as u64),
                group(r.3.max(0) as u64),
                format!("{:.0}%", r.3 as f64 / (r.2 + r.3).max(1) as f64 * 100.0),
                r.4.clone().unwrap_or_else(|| "never".into()),
                r.5.clone().unwrap_or_else(|| "never".into()),
            ]);
        }
        let name = ident(&dead[0].0, &dead[0].1);
        ctx.finding(
            Finding::new(
                "PG_DEAD_TUPLES",
                Severity::Warning,
                format!("{} table(s) with many dead tuples, e.g. {name}: {} dead of {} (last vacuum {})", dead.len(), group(dead[0].3 as u64), group((dead[0].2 + dead[0].3) as u64), dead[0].4.clone().unwrap_or_else(|| "never".into())),
            )
            .command("SELECT … FROM pg_stat_user_tables WHERE n_dead_tup …")
            .table(t)
            .remediation(format!(
                "Dead tuples bloat the table and slow scans. Vacuum it now, then find why autovacuum did not (a long transaction holding the xmin horizon, autovacuum disabled on the table, too high a scale factor):\n\n```\nVACUUM (VERBOSE, ANALYZE) {name};\nALTER TABLE {name} SET (autovacuum_vacuum_scale_factor = 0.02);\n```"
            )),
        );
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
    let warn = p.int("xid_age_warn");
    let hot: Vec<_> = rows.iter().filter(|r| r.1 as i64 >= warn).collect();
    if hot.is_empty() {
        return Ok(());
    }
    let mut t = Table::new(
        "Transaction ID age by database",
        &[
            "database",
            "xid age",
            "share of the 2^31 limit",
            "multixact age",
        ],
    );
    for r in &rows {
        t.row(vec![
            r.0.clone(),
            group(r.1.max(0) as u64),
            format!("{:.1}%", r.1 as f64 / 2_147_483_648.0 * 100.0),
            group(r.2.max(0) as u64),
        ]);
    }
    let top = hot[0];
    ctx.finding(
        Finding::new(
            "PG_XID_WRAPAROUND",
            if top.1 >= 1_000_000_000 { Severity::Critical } else { Severity::Warning },
            format!("Database {} has transaction ID age {} ({:.1}% of the way to wraparound)", top.0, group(top.1 as u64), top.1 as f64 / 2_147_483_648.0 * 100.0),
        )
        .fact("threshold", group(warn as u64))
        .command("SELECT datname, age(datfrozenxid) FROM pg_database")
        .table(t)
        .remediation("At about 2.1 billion PostgreSQL refuses writes to prevent wraparound. Find what blocks freezing — long transactions, abandoned replication slots, prepared transactions — then freeze the oldest tables:\n\n```\nSELECT relname, age(relfrozenxid) FROM pg_class WHERE relkind = 'r' ORDER BY 2 DESC LIMIT 10;\nVACUUM (FREEZE, VERBOSE) <table>;\n```"),
    );
    Ok(())
}

async fn replication(pg: &Pg<'_>, conn: &mut PgConnection, p: &Params) -> Result<(), ProbeError> {
    let ctx = pg.ctx;
    let lag_s = p.int("replication_lag_s") as f64;
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
        if let Some((Some(lag), caught_up)) = rows.first().copied()
            && lag >= lag_s
            && !caught_up
        {
            ctx.finding(
                Finding::new("PG_STANDBY_REPLAY_LAG", Severity::Warning, format!("This standby replays WAL {} behind its primary", secs_text(lag)))
                    .fact("replay lag", secs_text(lag))
                    .command("SELECT now() - pg_last_xact_replay_timestamp()")
                    .remediation("Reads from this standby are stale. Check replay conflicts and the standby's I/O:\n\n```\nSELECT * FROM pg_stat_database_conflicts;\n```"),
            );
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
    let lagging: Vec<_> = reps
        .iter()
        // Behind by time, or WAL outstanding while the replica has stopped answering (an
        // idle, caught-up replica replies rarely and is not lagging).
        .filter(|r| {
            r.5.unwrap_or(0.0) >= lag_s || (r.4.unwrap_or(0) > 0 && r.6.unwrap_or(0.0) >= lag_s)
        })
        .collect();
    if !lagging.is_empty() {
        let mut t = Table::new(
            "Replicas",
            &[
                "application",
                "client",
                "state",
                "sync",
                "bytes behind",
                "lag",
                "last reply",
            ],
        );
        for r in &reps {
            t.row(vec![
                r.0.clone(),
                r.1.clone(),
                r.2.clone(),
                r.3.clone(),
                r.4.map(|b| bytes(b.max(0) as u64)).unwrap_or_default(),
                r.5.map(secs_text).unwrap_or_else(|| "–".into()),
                r.6.map(|s| format!("{} ago", secs_text(s)))
                    .unwrap_or_else(|| "–".into()),
            ]);
        }
        let w = lagging[0];
        ctx.finding(
            Finding::new(
                "PG_REPLICATION_LAG",
                Severity::Warning,
                format!("{} replica(s) behind; {} ({}) is {} behind, last reply {} ago", lagging.len(), w.0, w.1, w.4.map(|b| bytes(b.max(0) as u64)).unwrap_or_default(), w.6.map(secs_text).unwrap_or_else(|| "?".into())),
            )
            .command("SELECT … FROM pg_stat_replication")
            .table(t)
            .remediation("Reads from the replica are stale and a failover would lose the gap. Check the replica's disk, CPU and network, and replay conflicts on it:\n\n```\nSELECT * FROM pg_stat_replication;\n```"),
        );
    }
    let limit = p.int("slot_retained_bytes");
    let stale: Vec<_> = slots
        .iter()
        .filter(|s| !s.2 && s.3.unwrap_or(0) >= limit)
        .collect();
    if !stale.is_empty() {
        let mut t = Table::new(
            "Inactive replication slots",
            &["slot", "type", "retained WAL"],
        );
        for s in &stale {
            t.row(vec![
                s.0.clone(),
                s.1.clone(),
                s.3.map(|b| bytes(b.max(0) as u64))
                    .unwrap_or_else(|| "–".into()),
            ]);
        }
        ctx.finding(
            Finding::new(
                "PG_INACTIVE_REPLICATION_SLOT",
                Severity::Warning,
                format!("{} inactive replication slot(s) retaining WAL, e.g. {}", stale.len(), stale[0].0),
            )
            .command("SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots")
            .table(t)
            .remediation(format!(
                "An inactive slot keeps every WAL segment since its consumer left: the disk fills and vacuum cannot remove old rows. Reconnect the consumer, or drop the slot if it is abandoned:\n\n```\nSELECT pg_drop_replication_slot('{}');\n```",
                stale[0].0
            )),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
