//! PostgreSQL targets: `postgres://` URLs with libpq options; the password is put into the
//! URL when connecting; certificate options name files on the Lookout server.

use super::{Kind, url};
use probes::framework::BoxFuture;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

const DEFAULT_PORT: u16 = 5432;

/// The options that make the driver read a file.
const FILE_OPTIONS: &[&str] = &["sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir"];

pub struct Postgres;

impl Kind for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn connection_help(&self) -> &'static str {
        "postgres://user@host:5432/db?sslmode=require; the password goes in the secret"
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        url::check(
            self.name(),
            self.connection_help(),
            &["postgres", "postgresql"],
            conn,
        )
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        url::hosts(conn, DEFAULT_PORT)
    }
    fn destination(&self, conn: &str) -> Vec<String> {
        // postgres:// and postgresql:// are the same destination.
        url::destination(conn, DEFAULT_PORT)
            .into_iter()
            .map(|d| d.replacen("postgresql://", "postgres://", 1))
            .collect()
    }
    fn file_options(&self, conn: &str) -> Vec<(String, String)> {
        let query = ::url::Url::parse(conn.trim())
            .ok()
            .and_then(|u| u.query().map(str::to_string));
        url::query_options(query.as_deref(), FILE_OPTIONS)
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        url::with_credentials(conn, username, secret)
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        Box::pin(probes::postgres::check(address, limit))
    }
}
