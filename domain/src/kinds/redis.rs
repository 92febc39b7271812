//! Redis targets: `redis://` or `rediss://` URLs; the password is put into the URL when
//! connecting.

use super::{Kind, url};
use probes::framework::BoxFuture;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

const DEFAULT_PORT: u16 = 6379;

pub struct Redis;

impl Kind for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn connection_help(&self) -> &'static str {
        "redis://host:6379/0 (rediss:// for TLS); the password goes in the secret"
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        url::check(
            self.name(),
            self.connection_help(),
            &["redis", "rediss"],
            conn,
        )
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        url::hosts(conn, DEFAULT_PORT)
    }
    fn destination(&self, conn: &str) -> Vec<String> {
        url::destination(conn, DEFAULT_PORT)
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
        Box::pin(probes::redis::check(address, limit))
    }
}
