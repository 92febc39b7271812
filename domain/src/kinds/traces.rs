//! Trace-store targets: Jaeger's query API, written `jaeger+http://jaeger:16686` (`https`
//! for TLS; a path prefix is kept) — Lookout asks the store teams already run, it does not
//! become one. Credentials are optional: a username with its password in the secret is sent
//! as basic auth, a secret alone as a bearer token. Grafana Tempo is not supported yet.

use super::{Kind, url};
use probes::framework::BoxFuture;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

pub struct Traces;

const HELP: &str = "Jaeger's query API, jaeger+http://jaeger:16686 (jaeger+https:// for TLS); for basic auth the username and its password in the secret, for a bearer token the token in the secret alone";

fn inner(conn: &str) -> Result<&str, String> {
    let c = conn.trim();
    if c.starts_with("tempo+") {
        return Err("Grafana Tempo is not supported yet: a traces target is Jaeger's query API (jaeger+http://…)".into());
    }
    c.strip_prefix("jaeger+")
        .ok_or_else(|| format!("expected {HELP}"))
}

impl Kind for Traces {
    fn name(&self) -> &'static str {
        "traces"
    }
    fn connection_help(&self) -> &'static str {
        HELP
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        url::check_api_base("traces", HELP, inner(conn)?)
    }
    fn check_credentials(
        &self,
        _conn: &str,
        username: &str,
        has_secret: bool,
    ) -> Result<(), String> {
        if !username.is_empty() && !has_secret {
            return Err("basic auth needs the password in the secret (for a bearer token, leave the username empty)".into());
        }
        Ok(())
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        let Ok(rest) = inner(conn) else {
            return vec![];
        };
        url::hosts(rest, url::http_port(rest))
    }
    fn destination(&self, conn: &str) -> Vec<String> {
        let rest = inner(conn).unwrap_or("");
        url::destination(rest, url::http_port(rest))
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        self.check_credentials(conn, username, secret.is_some())?;
        let rest = inner(conn)?;
        Ok(format!(
            "jaeger+{}",
            url::with_credentials(rest, username, secret)?
        ))
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        Box::pin(probes::traces::check(address, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections() {
        for (conn, ok) in [
            ("jaeger+http://jaeger:16686", true),
            ("jaeger+https://tracing.example.com/jaeger", true),
            ("http://jaeger:16686", false),
            ("tempo+http://tempo:3200", false),
            ("jaeger+http://u@jaeger:16686", false),
            ("jaeger+http://jaeger:16686/?x=1", false),
            ("jaeger+ftp://jaeger", false),
        ] {
            assert_eq!(
                super::super::check_connection(&Traces, conn).is_ok(),
                ok,
                "{conn}"
            );
        }
        assert_eq!(
            Traces.hosts("jaeger+http://j:16686"),
            vec![("j".to_string(), 16686)]
        );
        assert_eq!(
            Traces
                .connect_address("jaeger+http://j:16686", "", Some("t@k"))
                .unwrap(),
            "jaeger+http://:t%40k@j:16686/"
        );
        assert!(
            super::super::check_connection(&Traces, "tempo+http://t")
                .unwrap_err()
                .contains("not supported yet")
        );
    }
}
