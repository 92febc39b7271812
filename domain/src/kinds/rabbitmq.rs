//! RabbitMQ targets: the management API's base URL (`http://rabbit:15672`, a path prefix
//! allowed), a username and its password in the secret (basic auth; the user needs the
//! `monitoring` tag, nothing more). They go into the URL's userinfo only when connecting,
//! where `probes::rabbitmq` turns them into a header.

use super::{Kind, url};
use probes::framework::BoxFuture;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

pub struct RabbitMq;

const HELP: &str = "the management API's URL, http://rabbit:15672 (https:// for TLS; a path prefix is kept), with a user that has the monitoring tag and its password in the secret";

impl Kind for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    fn connection_help(&self) -> &'static str {
        HELP
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        url::check_api_base("rabbitmq", HELP, conn)
    }
    fn check_credentials(
        &self,
        _conn: &str,
        username: &str,
        has_secret: bool,
    ) -> Result<(), String> {
        if username.is_empty() || !has_secret {
            return Err(
                "the management API needs a username and its password (a user with the monitoring tag)"
                    .into(),
            );
        }
        Ok(())
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        url::hosts(conn, url::http_port(conn))
    }
    fn destination(&self, conn: &str) -> Vec<String> {
        url::destination(conn, url::http_port(conn))
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        self.check_credentials(conn, username, secret.is_some())?;
        url::with_credentials(conn, username, secret)
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        Box::pin(probes::rabbitmq::check(address, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections() {
        for (conn, ok) in [
            ("http://rabbit:15672", true),
            ("https://mq.example.com/rabbitmq", true),
            ("http://guest@rabbit:15672", false),
            ("http://rabbit:15672/?x=1", false),
            ("amqp://rabbit:5672", false),
            ("rabbit:15672", false),
        ] {
            assert_eq!(
                super::super::check_connection(&RabbitMq, conn).is_ok(),
                ok,
                "{conn}"
            );
        }
        assert!(RabbitMq.check_credentials("http://r", "", true).is_err());
        assert!(
            RabbitMq
                .check_credentials("http://r", "ops", false)
                .is_err()
        );
        assert!(RabbitMq.check_credentials("http://r", "ops", true).is_ok());
        assert_eq!(
            RabbitMq
                .connect_address("http://r:15672", "ops", Some("p@ss"))
                .unwrap(),
            "http://ops:p%40ss@r:15672/"
        );
    }
}
