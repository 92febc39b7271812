//! PostgreSQL: connection check (`SELECT version()` in a read-only transaction with
//! statement and lock timeouts). Read-only.

use crate::{ConnectionReport, ProbeError, redact_url, secs};
use sqlx::Connection;
use std::time::{Duration, Instant};

pub(crate) fn classify(target: &str, e: &sqlx::Error, elapsed: Duration) -> ProbeError {
    match e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")) => {
            ProbeError::AuthFailed {
                target: target.into(),
                reason: db.message().to_string(),
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
            ProbeError::Unreachable {
                target: target.into(),
                reason: e.to_string(),
                elapsed: secs(elapsed),
            }
        }
        sqlx::Error::Configuration(c) => ProbeError::InvalidTarget(c.to_string()),
        _ => ProbeError::Server {
            target: target.into(),
            reason: e.to_string(),
        },
    }
}

pub async fn check(url: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let target = redact_url(url);
    let start = Instant::now();
    let ms = limit.as_millis().max(1);
    let work = async {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        let latency = start.elapsed();
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        for stmt in [
            "SET TRANSACTION READ ONLY".to_string(),
            format!("SET LOCAL statement_timeout = {ms}"),
            format!("SET LOCAL lock_timeout = {ms}"),
        ] {
            sqlx::query(&stmt)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(&target, &e, start.elapsed()))?;
        }
        let (version, recovery, db): (String, bool, String) = sqlx::query_as(
            "SELECT current_setting('server_version'), pg_is_in_recovery(), current_database()",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| classify(&target, &e, start.elapsed()))?;
        tx.rollback()
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        let _ = conn.close().await;
        Ok::<_, ProbeError>((version, recovery, db, latency))
    };
    let (version, recovery, db, latency) =
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ProbeError::TimedOut {
                target: target.clone(),
                limit: secs(limit),
            })??;
    Ok(ConnectionReport {
        kind: "postgres".into(),
        target,
        server_version: version,
        latency_ms: latency.as_secs_f64() * 1000.0,
        facts: vec![
            ("database".into(), db),
            (
                "role".into(),
                if recovery { "standby" } else { "primary" }.into(),
            ),
        ],
    })
}
pub mod probe;
pub mod rules;
