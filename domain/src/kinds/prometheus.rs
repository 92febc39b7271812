//! Prometheus targets: the server's base URL (`http://prometheus:9090`, a path prefix
//! allowed). Credentials are optional: a username with its password in the secret is sent
//! as basic auth; a secret alone as a bearer token. They go into the URL's userinfo only
//! when connecting, where `probes::prometheus` turns them into a header.

use super::{Kind, url};
use probes::framework::BoxFuture;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

pub struct Prometheus;

const HELP: &str = "http://prometheus:9090 (https:// for TLS; a path prefix is kept); for basic auth the username and its password in the secret, for a bearer token the token in the secret alone";

impl Kind for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }
    fn connection_help(&self) -> &'static str {
        HELP
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        url::check_api_base("prometheus", HELP, conn)
    }
    fn check_credentials(
        &self,
        _conn: &str,
        username: &str,
        has_secret: bool,
    ) -> Result<(), String> {
        if !username.is_empty() && !has_secret {
            return Err(
                "basic auth needs the password in the secret (for a bearer token, leave the username empty)"
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
        Box::pin(probes::prometheus::check(address, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections() {
        for (conn, ok) in [
            ("http://prometheus:9090", true),
            ("https://prom.example.com/prometheus", true),
            ("http://user@prom:9090", false),
            ("http://:token@prom:9090", false),
            ("http://prom:9090/?password=x", false),
            ("http://prom:9090/?x=1", false),
            ("redis://prom:9090", false),
            ("prom:9090", false),
        ] {
            assert_eq!(
                super::super::check_connection(&Prometheus, conn).is_ok(),
                ok,
                "{conn}"
            );
        }
        assert_eq!(
            Prometheus.hosts("https://prom"),
            vec![("prom".to_string(), 443)]
        );
        assert_eq!(
            Prometheus.hosts("http://prom:9090/x"),
            vec![("prom".to_string(), 9090)]
        );
        assert!(
            Prometheus
                .check_credentials("http://p", "ops", false)
                .is_err()
        );
        assert!(Prometheus.check_credentials("http://p", "", true).is_ok());
        assert_eq!(
            Prometheus
                .connect_address("http://p:9090", "", Some("t@k"))
                .unwrap(),
            "http://:t%40k@p:9090/"
        );
    }
}
