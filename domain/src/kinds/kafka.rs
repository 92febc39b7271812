//! Kafka targets: bootstrap servers with client options (parsed by the probes' one parser,
//! `probes::kafka::config`); the SASL username and password are added when connecting.

use super::{Kind, url};
use probes::framework::BoxFuture;
use probes::kafka::config::KafkaConfig;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

pub struct Kafka;

impl Kind for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn connection_help(&self) -> &'static str {
        "bootstrap servers host:9092[,host:9092], optionally ?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512 (SSL, SASL_PLAINTEXT; PLAIN, SCRAM-SHA-256; ssl.ca.location=/path/ca.pem); the SASL username and password go in the username and secret"
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        KafkaConfig::parse(conn, false).map(|_| ())
    }
    /// SASL needs a username and a secret (the password); without SASL there is nothing to
    /// send them with.
    fn check_credentials(
        &self,
        conn: &str,
        username: &str,
        has_secret: bool,
    ) -> Result<(), String> {
        let cfg = KafkaConfig::parse(conn, false)?;
        match (cfg.protocol.sasl(), (!username.is_empty(), has_secret)) {
            (true, (true, true)) | (false, (false, false)) => Ok(()),
            (true, _) => Err(format!(
                "security.protocol={} needs the SASL username and its password in the secret",
                cfg.protocol.as_str()
            )),
            (false, _) => Err(
                "a username or secret on a Kafka target needs security.protocol=SASL_PLAINTEXT or SASL_SSL in the connection (e.g. host:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512)"
                    .into(),
            ),
        }
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        bootstrap(conn)
            .filter_map(|hp| {
                let (h, p) = hp.rsplit_once(':')?;
                Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?))
            })
            .collect()
    }
    /// The bootstrap servers as written (lower case): a new or different broker is a new
    /// destination.
    fn destination(&self, conn: &str) -> Vec<String> {
        let mut out: Vec<String> = bootstrap(conn).map(|h| h.to_ascii_lowercase()).collect();
        out.sort();
        out.dedup();
        out
    }
    fn file_options(&self, conn: &str) -> Vec<(String, String)> {
        url::query_options(conn.split_once('?').map(|(_, q)| q), &["ssl.ca.location"])
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        self.check_credentials(conn, username, secret.is_some())?;
        Ok(match secret {
            Some(pw) => KafkaConfig::with_credentials(conn, username, pw),
            None => conn.to_string(),
        })
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        Box::pin(probes::kafka::check(address, limit))
    }
}

fn bootstrap(conn: &str) -> impl Iterator<Item = &str> {
    conn.split('?')
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
}
