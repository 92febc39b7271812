//! Failed sign-in counting, per account and per client address, over a sliding window.

use sqlx::PgExecutor;

/// Failures seen for the account and for the address within the last `window_secs`,
/// and the age in seconds of the oldest failure that still counts (to say when to retry).
pub struct Counts {
    pub by_user: i64,
    pub by_ip: i64,
    pub oldest_user_age_secs: i64,
    pub oldest_ip_age_secs: i64,
}

pub async fn counts(
    db: impl PgExecutor<'_>,
    username: &str,
    client_ip: &str,
    window_secs: i64,
) -> sqlx::Result<Counts> {
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "WITH w AS (SELECT now() - make_interval(secs => $3) AS since)
         SELECT
           (SELECT count(*) FROM login_failures, w WHERE username = $1 AND at > w.since),
           (SELECT count(*) FROM login_failures, w WHERE client_ip = $2 AND at > w.since),
           COALESCE((SELECT extract(epoch FROM now() - min(at))::bigint FROM login_failures, w
                     WHERE username = $1 AND at > w.since), 0),
           COALESCE((SELECT extract(epoch FROM now() - min(at))::bigint FROM login_failures, w
                     WHERE client_ip = $2 AND at > w.since), 0)",
    )
    .bind(username)
    .bind(client_ip)
    .bind(window_secs as f64)
    .fetch_one(db)
    .await?;
    Ok(Counts {
        by_user: row.0,
        by_ip: row.1,
        oldest_user_age_secs: row.2,
        oldest_ip_age_secs: row.3,
    })
}

/// Serialises sign-in attempts for one account and for one address until the transaction
/// ends (transaction-scoped advisory locks, always taken in this order), so that counting
/// the failures and recording this attempt happen as one step.
pub async fn lock(
    tx: &mut sqlx::PgConnection,
    username: &str,
    client_ip: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('lookout.login.user:' || $1)),
                pg_advisory_xact_lock(hashtext('lookout.login.ip:' || $2))",
    )
    .bind(username)
    .bind(client_ip)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records an attempt as a failure; returns its id (see [`forget`]).
pub async fn record(db: impl PgExecutor<'_>, username: &str, client_ip: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO login_failures (username, client_ip) VALUES ($1, $2) RETURNING id",
    )
    .bind(username)
    .bind(client_ip)
    .fetch_one(db)
    .await
}

/// Takes back one recorded attempt (one that was never checked).
pub async fn forget(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// A successful sign-in clears the account's failures (not the address's).
pub async fn clear_user(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE username = $1")
        .bind(username)
        .execute(db)
        .await?;
    Ok(())
}

/// Drops rows older than the window; called by the housekeeping worker.
pub async fn prune(db: impl PgExecutor<'_>, window_secs: i64) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM login_failures WHERE at < now() - make_interval(secs => $1)")
            .bind(window_secs as f64)
            .execute(db)
            .await?
            .rows_affected(),
    )
}
