//! The PostgreSQL probe's judging: pure functions from what each phase gathered (rows of the
//! statistics views, mirrored as tuples next to their SQL in `probe.rs`) to findings, with a
//! table test per finding code at its threshold edges and its healthy case. The SQL
//! pre-filters with the same thresholds to keep its answers small; the rules apply them
//! again, so what is judged does not depend on how it was fetched.
#![allow(clippy::type_complexity)]

use crate::framework::{Finding, Params, Severity, Table, bytes, group};

/// The thresholds, from the probe's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub long_query_s: i64,
    pub idle_in_tx_s: i64,
    pub blocked_s: i64,
    pub connections_high_pct: f64,
    pub seq_scan_min_bytes: i64,
    pub seq_scan_ratio: i64,
    pub dead_tuple_min: i64,
    pub dead_tuple_pct: f64,
    pub xid_age_warn: i64,
    pub replication_lag_s: f64,
    pub slot_retained_bytes: i64,
}

impl Limits {
    pub fn from_params(p: &Params) -> Limits {
        Limits {
            long_query_s: p.int("long_query_s"),
            idle_in_tx_s: p.int("idle_in_tx_s"),
            blocked_s: p.int("blocked_s"),
            connections_high_pct: p.int("connections_high_pct") as f64,
            seq_scan_min_bytes: p.int("seq_scan_min_bytes"),
            seq_scan_ratio: p.int("seq_scan_ratio"),
            dead_tuple_min: p.int("dead_tuple_min"),
            dead_tuple_pct: p.int("dead_tuple_pct") as f64,
            xid_age_warn: p.int("xid_age_warn"),
            replication_lag_s: p.int("replication_lag_s") as f64,
            slot_retained_bytes: p.int("slot_retained_bytes"),
        }
    }
}

/// `"schema"."name"` with quotes doubled.
pub fn ident(schema: &str, name: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        name.replace('"', "\"\"")
    )
}

pub fn secs_text(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// The read-only query that lists the keys a unique index refuses: rows whose key columns
/// (or expressions) are equal, within the index's predicate; NULL keys are distinct unless
/// the index says NULLS NOT DISTINCT. `limit` 0: every such key.
pub fn duplicate_keys_query(
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

/// How many duplicated keys of a failed unique index are listed.
pub const DUPLICATES_SHOWN: usize = 10;

/// pg_settings rows: name, reset value, unit.
pub type SettingRow = (String, String, Option<String>);
/// An idle-in-transaction session: pid, user, database, application, client, idle for (s),
/// transaction age (s), last query.
pub type IdleRow = (i32, String, String, String, String, f64, f64, String);
/// An active query: pid, user, database, application, running for (s), wait event type, query.
pub type LongRow = (i32, String, String, String, f64, Option<String>, String);
/// A lock wait: waiter pid, user, query, waiting for (s); blocker pid, state, query,
/// transaction age (s), user.
pub type ChainRow = (i32, String, String, f64, i32, String, String, f64, String);
/// An index build: pid, database, table, index, phase, blocks total/done, tuples total/done,
/// running for (s), index oid.
pub type BuildRow = (
    i32,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    f64,
    i64,
);
/// An invalid index: schema, index, table name, size, definition, oid, unique, table
/// (qualified), key columns or expressions, predicate, NULLS NOT DISTINCT.
pub type InvalidRow = (
    String,
    String,
    String,
    i64,
    String,
    i64,
    bool,
    String,
    Vec<String>,
    Option<String>,
    bool,
);
/// The duplicated keys found for `invalid[i]` (at most [`DUPLICATES_SHOWN`]), or `None`
/// when the check did not finish within the step limit.
pub type DupCheck = (usize, Option<Vec<(Vec<Option<String>>, i64)>>);
/// A table's scans: schema, table, size, seq scans, index scans, rows read by seq scans.
pub type SeqRow = (String, String, i64, i64, i64, i64);
/// A table's tuples: schema, table, live, dead, last vacuum, last autoanalyze.
pub type DeadRow = (String, String, i64, i64, Option<String>, Option<String>);
/// A replica: application, client, state, sync state, bytes behind, lag (s), last reply (s ago).
pub type ReplicaRow = (
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<f64>,
    Option<f64>,
);
/// A replication slot: name, type, active, retained WAL bytes.
pub type SlotRow = (String, String, bool, Option<i64>);

/// A migration tool's history table as read.
pub enum MigrationLog {
    /// `_sqlx_migrations`: version, description, success, installed on (newest first).
    Sqlx(Vec<(i64, String, bool, String)>),
    /// `flyway_schema_history`: rank, version, description, success, installed on.
    Flyway(Vec<(i32, Option<String>, String, bool, String)>),
    /// `SequelizeMeta`: the last name and the count.
    Sequelize(Option<(String, i64)>),
}

/// `PG_SUMMARY`: version, role, size and the settings, with notes on missing guard rails.
pub fn summary(rows: &[SettingRow], recovery: bool, db: &str, size: i64) -> Finding {
    let mut out: Vec<Finding> = vec![];
    let mut t = Table::new("Settings", &["name", "value"]);
    let mut version = String::new();
    for (name, setting, unit) in rows {
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
    .fact("database", db)
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
    out.push(f);
    out.remove(0)
}

/// `PG_CONNECTIONS_NEAR_MAX` (client connections at or above `connections_high_pct` of the
/// usable ones; critical from 95%) and `PG_IDLE_IN_TRANSACTION` (sessions idle in a
/// transaction longer than `idle_in_tx_s`).
pub fn connections(
    by_state: &[(String, i64)],
    by_app: &[(String, String, i64)],
    (max, reserved): (i64, i64),
    idle: &[IdleRow],
    l: &Limits,
) -> Vec<Finding> {
    let mut out = vec![];
    let idle: Vec<&IdleRow> = idle
        .iter()
        .filter(|r| r.5 > l.idle_in_tx_s as f64)
        .collect();
    let total: i64 = by_state.iter().map(|r| r.1).sum();
    let mut t = Table::new("Client connections by state", &["state", "connections"]);
    for (s, n) in by_state {
        t.row(vec![s.clone(), n.to_string()]);
    }
    let mut apps = Table::new(
        "Top applications by connections",
        &["application", "user", "connections"],
    );
    for (a, u, n) in by_app {
        apps.row(vec![a.clone(), u.clone(), n.to_string()]);
    }
    let usable = (max - reserved).max(1);
    let pct = total as f64 / usable as f64 * 100.0;
    if pct >= l.connections_high_pct {
        out.push(
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
        out.push(
            Finding::new(
                "PG_IDLE_IN_TRANSACTION",
                Severity::Warning,
                format!("{} sessions idle in transaction for more than {} s; longest {} (pid {}, {})", idle.len(), l.idle_in_tx_s, secs_text(worst.5), worst.0, if worst.3.is_empty() { "no application name" } else { &worst.3 }),
            )
            .fact("threshold", format!("{} s", l.idle_in_tx_s))
            .command("SELECT … FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")
            .table(it)
            .remediation(format!(
                "An open transaction holds its locks and stops vacuum from cleaning up. Find the code path that does not commit (the last query shows where it stopped). To end the worst one now:\n\n```\nSELECT pg_terminate_backend({});\n```\n\nand set a guard rail: `ALTER ROLE {} SET idle_in_transaction_session_timeout = '60s';`",
                worst.0, worst.1
            )),
        );
    }
    out
}

/// `PG_LONG_QUERY` (active longer than `long_query_s`) and `PG_BLOCKING_CHAIN` (lock waits
/// of at least `blocked_s`; critical from 60 s), naming the root blocker.
pub fn long_queries(long: &[LongRow], chains: &[ChainRow], l: &Limits) -> Vec<Finding> {
    let mut out = vec![];
    let long: Vec<&LongRow> = long
        .iter()
        .filter(|r| r.4 > l.long_query_s as f64)
        .collect();
    let chains: Vec<&ChainRow> = chains
        .iter()
        .filter(|r| r.3 >= l.blocked_s as f64)
        .collect();
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
        out.push(
            Finding::new(
                "PG_LONG_QUERY",
                Severity::Warning,
                format!("{} queries running longer than {} s; longest {} (pid {})", long.len(), l.long_query_s, secs_text(w.4), w.0),
            )
            .fact("threshold", format!("{} s", l.long_query_s))
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
        let root = chains
            .iter()
            .find(|r| !waiting.contains(&r.4))
            .copied()
            .unwrap_or(w);
        out.push(
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
    out
}

/// `PG_INDEX_BUILD_IN_PROGRESS` and `PG_INVALID_INDEX` (an index build failed; not one
/// still being built). For a UNIQUE one, `dups` says which keys broke it: the remedy says
/// to resolve them before the rebuild, which otherwise fails again.
pub fn indexes(builds: &[BuildRow], all_invalid: &[InvalidRow], dups: &[DupCheck]) -> Vec<Finding> {
    let mut out = vec![];
    let building: std::collections::HashSet<i64> = builds.iter().map(|b| b.10).collect();
    let invalid: Vec<&InvalidRow> = all_invalid
        .iter()
        .filter(|r| !building.contains(&r.5))
        .collect();
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
        for b in builds {
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
        out.push(
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
    if !invalid.is_empty() {
        // A unique index whose build failed on duplicate keys fails again when rebuilt:
        // find the duplicates (read-only, bounded by the step limit) for the first few.
        let mut dup_tables = vec![];
        let mut first_fix = String::new();
        for (i, found) in dups {
            let Some((schema, idx, _, _, _, _, _, table, keys, pred, nulls_nd)) =
                all_invalid.get(*i)
            else {
                continue;
            };
            let name = ident(schema, idx);
            let all = duplicate_keys_query(table, keys, pred.as_deref(), *nulls_nd, 0);
            match found {
                Some(rows) if rows.is_empty() => {}
                Some(rows) => {
                    let mut t = Table::new(
                        &format!("Duplicate keys in {table} that {name} refuses"),
                        &[&keys.join(", "), "rows"],
                    );
                    for (vals, n) in rows {
                        let shown: Vec<String> = vals.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect();
                        t.row(vec![shown.join(", "), n.to_string()]);
                    }
                    dup_tables.push(t);
                    first_fix.push_str(&format!(
                        "{name} is UNIQUE and {table} holds duplicate keys ({}{}): rebuilt as it is, it fails again with \"could not create unique index\". Resolve them first — keep one row per key (merge or delete the others); list them all with:\n\n```\n{all};\n```\n\n",
                        rows.len(),
                        if rows.len() >= DUPLICATES_SHOWN { " or more keys" } else { " key(s)" },
                    ));
                }
                None => first_fix.push_str(&format!(
                    "{name} is UNIQUE: Lookout could not check its table for duplicate keys within the step limit. Before rebuilding, run:\n\n```\n{all};\n```\n\nand resolve any rows it lists, or the rebuild fails again.\n\n"
                )),
            }
        }
        let mut t = Table::new("Invalid indexes", &["index", "table", "size", "definition"]);
        let mut fix = String::new();
        for (schema, idx, table, size, def, ..) in invalid.iter().copied() {
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
        out.push(f.remediation(format!(
            "An invalid index is maintained on every write but never used for reads. {first_fix}Fix what made the build fail first, then drop it and build it again:\n\n```\n{fix}```"
        )));
    }
    out
}

/// `PG_SEQ_SCAN_HEAVY` (tables of `seq_scan_min_bytes` or more with at least 50 sequential
/// scans and more than `seq_scan_ratio` times their index scans) and `PG_DEAD_TUPLES`
/// (`dead_tuple_min` dead tuples or more and `dead_tuple_pct`% of the table or more).
pub fn tables(seq: &[SeqRow], dead: &[DeadRow], l: &Limits) -> Vec<Finding> {
    let mut out = vec![];
    let seq: Vec<&SeqRow> = seq
        .iter()
        .filter(|r| r.2 >= l.seq_scan_min_bytes && r.3 >= 50 && r.3 > l.seq_scan_ratio * r.4)
        .collect();
    let dead: Vec<&DeadRow> = dead
        .iter()
        .filter(|r| {
            r.3 >= l.dead_tuple_min
                && r.3 as f64 / (r.2 + r.3).max(1) as f64 * 100.0 >= l.dead_tuple_pct
        })
        .collect();
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
        for r in seq.iter() {
            t.row(vec![
                ident(&r.0, &r.1),
                bytes(r.2 as u64),
                group(r.3 as u64),
                group(r.4 as u64),
                group(r.5 as u64),
            ]);
        }
        out.push(
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
        for r in dead.iter() {
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
        out.push(
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
    out
}

/// `PG_XID_WRAPAROUND`: a database's transaction ID age at or above `xid_age_warn`
/// (critical from one billion).
pub fn wraparound(rows: &[(String, i32, i32)], l: &Limits) -> Option<Finding> {
    let warn = l.xid_age_warn;
    let hot: Vec<_> = rows.iter().filter(|r| r.1 as i64 >= warn).collect();
    if hot.is_empty() {
        return None;
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
    for r in rows {
        t.row(vec![
            r.0.clone(),
            group(r.1.max(0) as u64),
            format!("{:.1}%", r.1 as f64 / 2_147_483_648.0 * 100.0),
            group(r.2.max(0) as u64),
        ]);
    }
    let top = hot[0];
    Some(
        Finding::new(
            "PG_XID_WRAPAROUND",
            if top.1 >= 1_000_000_000 { Severity::Critical } else { Severity::Warning },
            format!("Database {} has transaction ID age {} ({:.1}% of the way to wraparound)", top.0, group(top.1 as u64), top.1 as f64 / 2_147_483_648.0 * 100.0),
        )
        .fact("threshold", group(warn as u64))
        .command("SELECT datname, age(datfrozenxid) FROM pg_database")
        .table(t)
        .remediation("At about 2.1 billion PostgreSQL refuses writes to prevent wraparound. Find what blocks freezing — long transactions, abandoned replication slots, prepared transactions — then freeze the oldest tables:\n\n```\nSELECT relname, age(relfrozenxid) FROM pg_class WHERE relkind = 'r' ORDER BY 2 DESC LIMIT 10;\nVACUUM (FREEZE, VERBOSE) <table>;\n```"),
    )
}

/// `PG_MIGRATIONS` (the state of every migration tool's table) and `PG_MIGRATION_FAILED`
/// (a migration recorded as failed: the schema may be half-migrated).
pub fn migrations(tables: &[(String, MigrationLog)]) -> Vec<Finding> {
    let mut out = vec![];
    let mut summary = Table::new(
        "Migration tables",
        &["tool", "table", "applied", "last applied", "failed"],
    );
    let mut failed = Table::new(
        "Failed migrations",
        &["tool", "table", "version", "description", "installed on"],
    );
    for (t, log) in tables {
        match log {
            MigrationLog::Sqlx(rows) => {
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
            MigrationLog::Flyway(rows) => {
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
            MigrationLog::Sequelize(rows) => {
                let (last, n) = rows.clone().unwrap_or_default();
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
    if tables.is_empty() {
        return out;
    }
    out.push(
        Finding::new("PG_MIGRATIONS", Severity::Info, format!("Migration state of {} tool table(s)", tables.len()))
            .command("SELECT … FROM _sqlx_migrations / flyway_schema_history / \"SequelizeMeta\"")
            .table(summary)
            .remediation("Compare the last applied migration with what the deployment expected. Which files exist is out of the probe's reach (it sees the database only)."),
    );
    if !failed.rows.is_empty() {
        let first = failed.rows[0].clone();
        out.push(
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
    out
}

/// `PG_VECTOR_INDEXES` (pgvector's columns and their ANN indexes) and `PG_VECTOR_NO_INDEX`
/// (a vector column without an HNSW or IVFFlat index).
pub fn pgvector(
    version: &str,
    cols: &[(String, String, String, String, Option<String>)],
) -> Vec<Finding> {
    let mut out = vec![];
    let mut t = Table::new(
        "Vector columns",
        &["table", "column", "type", "ANN index (operator class)"],
    );
    let mut missing = vec![];
    for (s, table, col, ty, idx) in cols {
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
    out.push(
        Finding::new("PG_VECTOR_INDEXES", Severity::Info, format!("pgvector {version}: {} vector column(s), {} without an ANN index", cols.len(), missing.len()))
            .fact("pgvector version", version)
            .command("SELECT … FROM pg_attribute JOIN pg_type … WHERE typname IN ('vector', 'halfvec', 'sparsevec')")
            .table(t.clone())
            .remediation("Check that each index's operator class matches the distance operator the queries use (`<=>` cosine → vector_cosine_ops, `<->` L2 → vector_l2_ops, `<#>` inner product → vector_ip_ops); a mismatch means the index is not used."),
    );
    if let Some((table, col)) = missing.first() {
        out.push(
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
    out
}

/// `PG_STANDBY_REPLAY_LAG`: this standby replays WAL `replication_lag_s` or more behind and
/// has not caught up with what it received. `row`: replay delay (s), received = replayed.
pub fn standby(row: Option<(Option<f64>, bool)>, l: &Limits) -> Option<Finding> {
    if let Some((Some(lag), caught_up)) = row
        && lag >= l.replication_lag_s
        && !caught_up
    {
        return Some(
            Finding::new("PG_STANDBY_REPLAY_LAG", Severity::Warning, format!("This standby replays WAL {} behind its primary", secs_text(lag)))
                .fact("replay lag", secs_text(lag))
                .command("SELECT now() - pg_last_xact_replay_timestamp()")
                .remediation("Reads from this standby are stale. Check replay conflicts and the standby's I/O:\n\n```\nSELECT * FROM pg_stat_database_conflicts;\n```"),
        );
    }
    None
}

/// `PG_REPLICATION_LAG` (a replica `replication_lag_s` behind, or with WAL outstanding and
/// silent that long) and `PG_INACTIVE_REPLICATION_SLOT` (an inactive slot retaining
/// `slot_retained_bytes` of WAL or more).
pub fn replication(reps: &[ReplicaRow], slots: &[SlotRow], l: &Limits) -> Vec<Finding> {
    let mut out = vec![];
    let lagging: Vec<_> = reps
        .iter()
        // Behind by time, or WAL outstanding while the replica has stopped answering (an
        // idle, caught-up replica replies rarely and is not lagging).
        .filter(|r| {
            r.5.unwrap_or(0.0) >= l.replication_lag_s
                || (r.4.unwrap_or(0) > 0 && r.6.unwrap_or(0.0) >= l.replication_lag_s)
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
        for r in reps {
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
        out.push(
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
    let limit = l.slot_retained_bytes;
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
        out.push(
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::*;

    const L: Limits = Limits {
        long_query_s: 30,
        idle_in_tx_s: 60,
        blocked_s: 5,
        connections_high_pct: 80.0,
        seq_scan_min_bytes: 10 << 20,
        seq_scan_ratio: 10,
        dead_tuple_min: 10_000,
        dead_tuple_pct: 20.0,
        xid_age_warn: 500_000_000,
        replication_lag_s: 30.0,
        slot_retained_bytes: 1 << 30,
    };

    fn sev(found: &[Finding], code: &str) -> Option<Severity> {
        found.iter().find(|f| f.code == code).map(|f| f.severity)
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn summary_notes_missing_guard_rails() {
        let rows = |st: &str| {
            vec![
                (s("server_version"), s("16.4"), None),
                (s("statement_timeout"), s(st), Some(s("ms"))),
                (
                    s("idle_in_transaction_session_timeout"),
                    s("60000"),
                    Some(s("ms")),
                ),
                (s("shared_buffers"), s("16384"), Some(s("8kB"))),
            ]
        };
        let f = summary(&rows("30000"), false, "app", 1 << 20);
        assert_eq!((f.code.as_str(), f.severity), ("PG_SUMMARY", Info));
        assert!(
            f.title.starts_with("PostgreSQL 16.4 (primary)"),
            "{}",
            f.title
        );
        assert!(f.remediation.starts_with("None"), "{}", f.remediation);
        assert!(
            f.tables[0]
                .rows
                .iter()
                .any(|r| r[1] == "128.0 MiB" || r[1].contains("128")),
            "{:?}",
            f.tables[0].rows
        );
        let f = summary(&rows("0"), true, "app", 0);
        assert!(
            f.title.contains("(standby)") && f.remediation.contains("statement_timeout"),
            "{f:?}"
        );
    }

    #[test]
    fn connections_at_their_edges() {
        let idle = |secs: f64| {
            (
                7,
                s("app"),
                s("db"),
                s("api"),
                s("10.0.0.9"),
                secs,
                secs + 5.0,
                s("UPDATE t"),
            )
        };
        let by_state = |n: i64| vec![(s("active"), n)];
        // 100 max, 3 reserved: 97 usable; 80% is 77.6 connections.
        for (n, want) in [
            (77, None),
            (78, Some(Warning)),
            (92, Some(Warning)),
            (93, Some(Critical)),
        ] {
            let f = connections(&by_state(n), &[], (100, 3), &[], &L);
            assert_eq!(sev(&f, "PG_CONNECTIONS_NEAR_MAX"), want, "{n}");
        }
        // Idle in transaction longer than 60 s (exactly 60 is not longer).
        for (secs, want) in [(60.0, None), (60.5, Some(Warning))] {
            let f = connections(&by_state(1), &[], (100, 3), &[idle(secs)], &L);
            assert_eq!(sev(&f, "PG_IDLE_IN_TRANSACTION"), want, "{secs}");
        }
        let f = connections(&by_state(1), &[], (100, 3), &[idle(600.0)], &L);
        assert!(
            f[0].remediation.contains("pg_terminate_backend(7)")
                && f[0].remediation.contains("ALTER ROLE app"),
            "{:?}",
            f[0].remediation
        );
        assert!(
            connections(&by_state(5), &[], (100, 3), &[], &L).is_empty(),
            "healthy"
        );
    }

    #[test]
    fn long_queries_and_the_root_blocker() {
        let long = |secs: f64| (11, s("app"), s("db"), s("api"), secs, None, s("SELECT 1"));
        for (secs, want) in [(30.0, None), (30.5, Some(Warning))] {
            assert_eq!(
                sev(&long_queries(&[long(secs)], &[], &L), "PG_LONG_QUERY"),
                want,
                "{secs}"
            );
        }
        // 21 waits for 22, which waits for 23 (idle in transaction): 23 is the root.
        let chain = |w: i32, waited: f64, b: i32, state: &str| {
            (
                w,
                s("app"),
                s("UPDATE t"),
                waited,
                b,
                s(state),
                s("q"),
                100.0,
                s("app"),
            )
        };
        let chains = [
            chain(21, 61.0, 22, "active"),
            chain(22, 30.0, 23, "idle in transaction"),
        ];
        let f = long_queries(&[], &chains, &L);
        assert_eq!(sev(&f, "PG_BLOCKING_CHAIN"), Some(Critical), "60 s or more");
        assert!(
            f[0].remediation.contains("pg_terminate_backend(23)")
                && f[0].remediation.contains("idle in transaction"),
            "{}",
            f[0].remediation
        );
        assert_eq!(
            sev(
                &long_queries(&[], &[chain(21, 59.0, 22, "active")], &L),
                "PG_BLOCKING_CHAIN"
            ),
            Some(Warning)
        );
        assert_eq!(
            sev(
                &long_queries(&[], &[chain(21, 4.9, 22, "active")], &L),
                "PG_BLOCKING_CHAIN"
            ),
            None,
            "under blocked_s"
        );
        assert!(long_queries(&[], &[], &L).is_empty(), "healthy");
    }

    fn invalid(oid: i64, unique: bool) -> InvalidRow {
        (
            s("public"),
            s("users_email_idx"),
            s("users"),
            8192,
            s("CREATE UNIQUE INDEX users_email_idx ON public.users USING btree (email)")
                .replace("UNIQUE ", if unique { "UNIQUE " } else { "" }),
            oid,
            unique,
            s("users"),
            vec![s("email")],
            None,
            false,
        )
    }

    #[test]
    fn invalid_indexes_say_what_to_fix_first() {
        let build = |oid: i64| {
            (
                5,
                s("db"),
                s("users"),
                s("users_email_idx"),
                s("building index"),
                100,
                50,
                0,
                0,
                12.0,
                oid,
            )
        };
        // Still being built: in progress, not invalid.
        let f = indexes(&[build(42)], &[invalid(42, true)], &[]);
        assert_eq!(
            (
                sev(&f, "PG_INDEX_BUILD_IN_PROGRESS"),
                sev(&f, "PG_INVALID_INDEX")
            ),
            (Some(Info), None)
        );
        assert!(f[0].tables[0].rows[0][5].starts_with("50%"));
        // Failed, not unique: drop and rebuild concurrently.
        let f = indexes(&[], &[invalid(42, false)], &[]);
        assert_eq!(sev(&f, "PG_INVALID_INDEX"), Some(Warning));
        assert!(
            f[0].remediation.contains(
                "DROP INDEX CONCURRENTLY \"public\".\"users_email_idx\";\nCREATE INDEX CONCURRENTLY"
            ),
            "{}",
            f[0].remediation
        );
        // Unique with duplicates: they are listed and resolving them comes first.
        let dups = vec![(0, Some(vec![(vec![Some(s("a@x"))], 3), (vec![None], 2)]))];
        let f = indexes(&[], &[invalid(42, true)], &dups);
        let r = &f[0].remediation;
        assert!(
            r.contains("holds duplicate keys (2 key(s))")
                && r.contains("CREATE UNIQUE INDEX CONCURRENTLY"),
            "{r}"
        );
        assert!(r.find("Resolve them first").unwrap() < r.find("DROP INDEX").unwrap());
        assert_eq!(
            f[0].tables[1].rows,
            vec![vec![s("a@x"), s("3")], vec![s("NULL"), s("2")]]
        );
        // Ten shown means there may be more.
        let ten = vec![(
            0,
            Some((0..10).map(|i| (vec![Some(i.to_string())], 2)).collect()),
        )];
        assert!(
            indexes(&[], &[invalid(42, true)], &ten)[0]
                .remediation
                .contains("10 or more keys")
        );
        // The check did not finish: the query to run before rebuilding.
        let f = indexes(&[], &[invalid(42, true)], &[(0, None)]);
        assert!(
            f[0].remediation.contains("could not check")
                && f[0].remediation.contains("HAVING count(*) > 1"),
            "{}",
            f[0].remediation
        );
        // Clean duplicates check: no warning about keys.
        let f = indexes(&[], &[invalid(42, true)], &[(0, Some(vec![]))]);
        assert!(!f[0].remediation.contains("duplicate keys"));
        assert!(indexes(&[], &[], &[]).is_empty(), "healthy");
    }

    #[test]
    fn migrations_ok_and_failed() {
        let ok = MigrationLog::Sqlx(vec![(2, s("add users"), true, s("2026-11-01"))]);
        let f = migrations(&[(s("\"public\".\"_sqlx_migrations\""), ok)]);
        assert_eq!(
            (sev(&f, "PG_MIGRATIONS"), sev(&f, "PG_MIGRATION_FAILED")),
            (Some(Info), None)
        );
        let bad = MigrationLog::Flyway(vec![
            (3, Some(s("3")), s("add index"), false, s("2026-11-02")),
            (2, Some(s("2")), s("init"), true, s("2026-11-01")),
        ]);
        let seq = MigrationLog::Sequelize(Some((s("20261101-init.js"), 4)));
        let f = migrations(&[
            (s("\"public\".\"flyway_schema_history\""), bad),
            (s("\"public\".\"SequelizeMeta\""), seq),
        ]);
        assert_eq!(sev(&f, "PG_MIGRATION_FAILED"), Some(Critical));
        assert!(
            f[1].remediation.contains("version = 3"),
            "{}",
            f[1].remediation
        );
        assert_eq!(f[0].tables[0].rows.len(), 2);
        assert!(migrations(&[]).is_empty(), "no migration tool: nothing");
    }

    #[test]
    fn vector_columns_without_an_index() {
        let col = |idx: Option<&str>| {
            (
                s("public"),
                s("docs"),
                s("embedding"),
                s("vector(3)"),
                idx.map(s),
            )
        };
        let f = pgvector("0.8.0", &[col(Some("hnsw docs_idx (vector_cosine_ops)"))]);
        assert_eq!(
            (sev(&f, "PG_VECTOR_INDEXES"), sev(&f, "PG_VECTOR_NO_INDEX")),
            (Some(Info), None)
        );
        let f = pgvector("0.8.0", &[col(None)]);
        assert_eq!(sev(&f, "PG_VECTOR_NO_INDEX"), Some(Warning));
        assert!(
            f[1].remediation
                .contains("USING hnsw (embedding vector_cosine_ops)")
        );
    }

    #[test]
    fn table_health_at_its_edges() {
        let mb = 1 << 20;
        let seq =
            |size: i64, seqs: i64, idx: i64| (s("public"), s("orders"), size, seqs, idx, 1_000_000);
        for (row, want) in [
            (seq(10 * mb, 50, 4), Some(Warning)),
            (seq(10 * mb - 1, 50, 4), None),
            (seq(10 * mb, 49, 0), None),
            (seq(10 * mb, 50, 5), None),
        ] {
            assert_eq!(
                sev(
                    &tables(std::slice::from_ref(&row), &[], &L),
                    "PG_SEQ_SCAN_HEAVY"
                ),
                want,
                "{row:?}"
            );
        }
        let dead = |live: i64, dead: i64| (s("public"), s("orders"), live, dead, None, None);
        for (row, want) in [
            (dead(40_000, 10_000), Some(Warning)),
            (dead(40_001, 10_000), None),
            (dead(0, 9_999), None),
        ] {
            assert_eq!(
                sev(
                    &tables(&[], std::slice::from_ref(&row), &L),
                    "PG_DEAD_TUPLES"
                ),
                want,
                "{row:?}"
            );
        }
        assert!(tables(&[seq(mb, 1, 1)], &[], &L).is_empty(), "healthy");
    }

    #[test]
    fn wraparound_and_replication_at_their_edges() {
        let db = |age: i32| vec![(s("app"), age, 1000)];
        assert_eq!(wraparound(&db(499_999_999), &L).map(|f| f.severity), None);
        assert_eq!(
            wraparound(&db(500_000_000), &L).map(|f| f.severity),
            Some(Warning)
        );
        assert_eq!(
            wraparound(&db(1_000_000_000), &L).map(|f| f.severity),
            Some(Critical)
        );
        // A standby behind and not caught up; caught up (idle primary) is not lag.
        assert!(standby(Some((Some(30.0), false)), &L).is_some());
        assert!(standby(Some((Some(29.9), false)), &L).is_none());
        assert!(standby(Some((Some(300.0), true)), &L).is_none());
        assert!(standby(Some((None, false)), &L).is_none());
        let rep = |bytes: i64, lag: Option<f64>, reply: f64| {
            (
                s("replica"),
                s("10.0.0.3"),
                s("streaming"),
                s("async"),
                Some(bytes),
                lag,
                Some(reply),
            )
        };
        for (r, want) in [
            (rep(0, Some(30.0), 1.0), Some(Warning)),
            (rep(0, Some(29.0), 1.0), None),
            // Silent with WAL outstanding is lag; silent and caught up is an idle replica.
            (rep(1, None, 30.0), Some(Warning)),
            (rep(0, None, 300.0), None),
        ] {
            assert_eq!(
                sev(
                    &replication(std::slice::from_ref(&r), &[], &L),
                    "PG_REPLICATION_LAG"
                ),
                want,
                "{r:?}"
            );
        }
        let slot = |active: bool, bytes: i64| (s("cdc"), s("logical"), active, Some(bytes));
        for (sl, want) in [
            (slot(false, 1 << 30), Some(Warning)),
            (slot(false, (1 << 30) - 1), None),
            (slot(true, 1 << 40), None),
        ] {
            assert_eq!(
                sev(
                    &replication(&[], std::slice::from_ref(&sl), &L),
                    "PG_INACTIVE_REPLICATION_SLOT"
                ),
                want,
                "{sl:?}"
            );
        }
    }
}
