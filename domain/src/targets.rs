//! Target types (shared with the browser). A target is a system Lookout can look at.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

pub use crate::target_kind::TargetKind;

/// A target as shown to people: never the secret, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: i64,
    pub name: String,
    pub kind: TargetKind,
    pub connection: String,
    pub username: String,
    pub secret_set: bool,
    pub environment: String,
    pub labels: BTreeMap<String, String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The newest probe run on this target (in lists).
    #[serde(default)]
    pub last_run: Option<crate::probe_runs::ProbeRun>,
}

/// The outcome of "test connection".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionTest {
    pub ok: bool,
    /// The server version and facts on success, the exact failure otherwise.
    pub summary: String,
    pub latency_ms: Option<f64>,
    pub facts: Vec<(String, String)>,
}

pub fn check_target_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid target name {name:?}: 1–63 of a–z, 0–9, '.', '_', '-', starting with a letter or digit"
        ))
    }
}

/// Checks the connection field for the kind; a password inside a URL is refused (it
/// belongs in the encrypted secret).
pub fn check_connection(kind: TargetKind, conn: &str) -> Result<(), String> {
    let conn = conn.trim();
    if conn.is_empty() || conn.len() > 2000 {
        return Err("the connection is 1–2000 characters".into());
    }
    if kind == TargetKind::Kafka {
        // One parser for Kafka connection strings: the probes' (server side only; this
        // module is also compiled for the browser, where nothing is validated).
        #[cfg(feature = "server")]
        return probes::kafka::config::KafkaConfig::parse(conn, false).map(|_| ());
        #[cfg(not(feature = "server"))]
        return Ok(());
    }
    let schemes: &[&str] = match kind {
        TargetKind::Redis => &["redis", "rediss"],
        TargetKind::Postgres => &["postgres", "postgresql"],
        TargetKind::Kubernetes => &["https", "http"],
        TargetKind::Prometheus => &["http", "https"],
        TargetKind::Kafka => &[],
    };
    let (scheme, rest) = conn
        .split_once("://")
        .ok_or_else(|| format!("expected a URL: {}", kind.connection_help()))?;
    if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "a {kind} target needs a {} URL",
            schemes.join(" or ")
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err("put the password in the secret field, not in the URL".into());
    }
    if authority.rsplit('@').next().unwrap_or_default().is_empty() {
        return Err("the URL needs a host".into());
    }
    #[cfg(feature = "server")]
    check_url_options(conn)?;
    Ok(())
}

/// URL options that carry a credential (refused: it belongs in the sealed secret) or name a
/// file on the Lookout server (checked against the configured directory when connecting).
#[cfg(feature = "server")]
const CREDENTIAL_OPTIONS: &[&str] = &[
    "password",
    "sslpassword",
    "pass",
    "passwd",
    "pwd",
    "passfile",
];

/// The URL, parsed as the drivers parse it: no password in the userinfo (also not
/// percent-encoded or after an empty username) and no credential in the query string.
#[cfg(feature = "server")]
fn check_url_options(conn: &str) -> Result<(), String> {
    let u = url::Url::parse(conn).map_err(|e| format!("invalid URL: {e}"))?;
    if u.password().is_some() {
        return Err("put the password in the secret field, not in the URL".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL needs a host".into());
    }
    for (k, _) in u.query_pairs() {
        let k = k.to_ascii_lowercase();
        if CREDENTIAL_OPTIONS.contains(&k.as_str()) {
            return Err(format!(
                "`{k}` in the URL is a credential: put the password in the secret field (it is stored encrypted), not in the URL"
            ));
        }
    }
    Ok(())
}

/// Where a connection leads: the hosts and ports it connects to, in a normal form. Editing
/// a target so that this changes needs its secret again (see `services::targets::update`).
#[cfg(feature = "server")]
pub fn destination(kind: TargetKind, conn: &str) -> Vec<String> {
    let mut out: Vec<String> = if kind == TargetKind::Kafka {
        conn.split('?')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    } else {
        match url::Url::parse(conn.trim()) {
            Ok(u) => {
                let scheme = u.scheme().to_ascii_lowercase();
                // The drivers' default ports (the url crate knows only the web's).
                let default = match scheme.as_str() {
                    "redis" | "rediss" => Some(6379),
                    "postgres" | "postgresql" => Some(5432),
                    _ => None,
                };
                vec![format!(
                    "{scheme}://{}:{}",
                    u.host_str().unwrap_or_default().to_ascii_lowercase(),
                    u.port()
                        .or(default)
                        .or(u.port_or_known_default())
                        .unwrap_or(0)
                )]
            }
            Err(_) => vec![conn.trim().to_string()],
        }
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_kind() {
        use TargetKind::*;
        for (kind, conn, ok) in [
            (Redis, "redis://cache:6379/0", true),
            (Redis, "rediss://cache:6380", true),
            (Redis, "redis://:hunter2@cache:6379", false),
            (Redis, "postgres://db/x", false),
            (Postgres, "postgres://app@db:5432/app?sslmode=require", true),
            (Postgres, "postgres://app:pw@db/app", false),
            (Postgres, "postgres://app@db/app?password=hunter2", false),
            (
                Postgres,
                "postgres://app@db/app?sslmode=require&PassWord=hunter2",
                false,
            ),
            (Postgres, "postgres://app@db/app?sslpassword=hunter2", false),
            (
                Postgres,
                "postgres://app@db/app?passfile=/root/.pgpass",
                false,
            ),
            (Postgres, "postgres://:pw@db/app", false),
            (Postgres, "postgres://app%3Apw@db/app", true),
            (Redis, "redis://cache:6379/0?password=hunter2", false),
            (Redis, "redis://cache:6379/0?protocol=resp3", true),
            (Postgres, "db:5432", false),
            (Kafka, "k1:9092,k2:9092", true),
            (Kafka, "k1", false),
            (Kafka, "k1:notaport", false),
            (
                Kafka,
                "k1:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-256",
                true,
            ),
            (
                Kafka,
                "k1:9093?security.protocol=SASL_SSL&sasl.password=x",
                false,
            ),
            (Kafka, "k1:9093?linger.ms=5", false),
            (Prometheus, "http://prom:9090", true),
            (Kubernetes, "https://api:6443", true),
            (Redis, "redis://", false),
        ] {
            // Kafka connections are checked by the probes' parser, on the server only.
            if (kind == Kafka || conn.contains('?')) && cfg!(not(feature = "server")) {
                continue;
            }
            assert_eq!(check_connection(kind, conn).is_ok(), ok, "{kind} {conn}");
        }
        #[cfg(feature = "server")]
        {
            let d = |k, c| destination(k, c);
            assert_eq!(
                d(Redis, "redis://Cache:6379/0"),
                d(Redis, "redis://cache/5")
            );
            assert_ne!(
                d(Redis, "redis://cache:6379/0"),
                d(Redis, "redis://evil:6379/0")
            );
            assert_ne!(
                d(Redis, "redis://cache:6379"),
                d(Redis, "redis://cache:6380")
            );
            assert_ne!(d(Redis, "redis://cache"), d(Redis, "rediss://cache"));
            assert_eq!(
                d(Postgres, "postgres://app@db/app?sslmode=require"),
                d(Postgres, "postgres://other@db:5432/x")
            );
            assert_eq!(
                d(Kafka, "k1:9092,k2:9092"),
                d(Kafka, "K2:9092, k1:9092?security.protocol=SSL")
            );
            assert_ne!(d(Kafka, "k1:9092"), d(Kafka, "k1:9092,evil:9092"));
        }
        assert!(check_target_name("orders-cache").is_ok());
        assert!(check_target_name("Orders").is_err());
        assert!("REDIS".parse::<TargetKind>().is_ok());
    }
}
