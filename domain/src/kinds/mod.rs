//! Target kinds, one implementation each, registered in one list. A kind owns everything a
//! target of that kind means: how its connection string is written and checked, which
//! hosts and files it leads to (for `reach`), how credentials go into the connection (in
//! memory only, when connecting), its connection check, and which probes apply to it. The
//! targets service, the connection check, probe runs and the probe catalogue ask this
//! registry and nothing else, so a new kind is one file here plus one line in `BUILT_IN`
//! (see docs/architecture.md). An unknown or unsupported kind is an error that names it.

mod kafka;
mod kubernetes;
mod postgres;
mod prometheus;
mod rabbitmq;
mod redis;
mod traces;
pub mod url;

use crate::error::{DomainError, DomainResult};
use crate::targets::TargetKind;
use probes::framework::{BoxFuture, Probe};
use probes::{ConnectionReport, ProbeError};
use std::sync::RwLock;
use std::time::Duration;

pub use kafka::Kafka;
pub use kubernetes::Kubernetes;
pub use postgres::POSTGRES;
pub use prometheus::Prometheus;
pub use rabbitmq::RabbitMq;
pub use redis::REDIS;
pub use traces::Traces;

/// What one kind of target is. Every method but `check` is pure.
pub trait Kind: Send + Sync {
    /// The name stored with targets and used by probe specs (`ProbeSpec::kind`).
    fn name(&self) -> &'static str;
    /// What the connection field holds, for forms and errors.
    fn connection_help(&self) -> &'static str;
    /// Checks a connection field as typed by an admin (trimmed, ≤ 2000 characters). A
    /// credential inside it is refused: it belongs in the sealed secret.
    fn check_connection(&self, conn: &str) -> Result<(), String>;
    /// Whether the username and the presence of a secret fit the connection (e.g. Kafka's
    /// SASL needs both, plaintext neither).
    fn check_credentials(
        &self,
        _conn: &str,
        _username: &str,
        _has_secret: bool,
    ) -> Result<(), String> {
        Ok(())
    }
    /// The largest secret this kind takes (a password; a whole kubeconfig for Kubernetes).
    fn max_secret_bytes(&self) -> usize {
        4096
    }
    /// Checks a secret against the connection before it is sealed (e.g. a kubeconfig
    /// parses, names the connection's context and server, and runs no plugin). The
    /// message names what is wrong and never quotes the secret.
    fn check_secret(&self, _conn: &str, _secret: &str) -> Result<(), String> {
        Ok(())
    }
    /// The hosts and ports the connection dials first (checked against
    /// `LOOKOUT_TARGET_NETWORKS`).
    fn hosts(&self, conn: &str) -> Vec<(String, u16)>;
    /// Where the connection leads, in a normal form: editing a target so that this changes
    /// needs its secret again. By default the hosts and ports.
    fn destination(&self, conn: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .hosts(conn)
            .into_iter()
            .map(|(h, p)| format!("{}:{p}", h.to_ascii_lowercase()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// The connection options that name a file on the Lookout server (checked against
    /// `LOOKOUT_TARGET_FILES_DIR`).
    fn file_options(&self, _conn: &str) -> Vec<(String, String)> {
        vec![]
    }
    /// The address to connect with, credentials put in (never stored or shown).
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String>;
    /// "Test connection": connect within `limit`, read-only, and say what answered.
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>>;
    /// The probes that run against this kind; by default those whose spec names it.
    fn probes(&self) -> Vec<&'static dyn Probe> {
        probes::registry::for_kind(self.name())
    }
}

/// The kinds every Lookout supports, in the order forms list them.
static BUILT_IN: [&dyn Kind; 7] = [
    &REDIS,
    &POSTGRES,
    &Kafka,
    &Prometheus,
    &Kubernetes,
    &RabbitMq,
    &Traces,
];

/// Kinds added at start-up (`register`), after the built-in ones.
static ADDED: RwLock<Vec<&'static dyn Kind>> = RwLock::new(Vec::new());

/// Adds a kind (a deployment's own, or a test's). Refuses a name already taken or badly
/// shaped.
pub fn register(kind: &'static dyn Kind) -> Result<(), String> {
    TargetKind::new(kind.name())?;
    let mut added = ADDED.write().unwrap_or_else(|e| e.into_inner());
    if BUILT_IN
        .iter()
        .chain(added.iter())
        .any(|k| k.name() == kind.name())
    {
        return Err(format!(
            "target kind {:?} is already registered",
            kind.name()
        ));
    }
    added.push(kind);
    Ok(())
}

/// Every supported kind.
pub fn all() -> Vec<&'static dyn Kind> {
    let added = ADDED.read().unwrap_or_else(|e| e.into_inner());
    BUILT_IN
        .iter()
        .copied()
        .chain(added.iter().copied())
        .collect()
}

fn names() -> String {
    all()
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The implementation of a kind, or an error that names it (and what is supported).
pub fn get(kind: &TargetKind) -> DomainResult<&'static dyn Kind> {
    all()
        .into_iter()
        .find(|k| *kind == k.name())
        .ok_or_else(|| {
            DomainError::Invalid(format!(
                "target kind {:?} is not supported by this server (supported: {})",
                kind.as_str(),
                names()
            ))
        })
}

/// Every probe of every supported kind, in catalogue order.
pub fn probes() -> Vec<&'static dyn Probe> {
    all().into_iter().flat_map(|k| k.probes()).collect()
}

/// A probe by name.
pub fn find_probe(name: &str) -> Option<&'static dyn Probe> {
    probes().into_iter().find(|p| p.spec().name == name)
}

/// Checks a connection field for its kind (length, then the kind's own rules).
pub fn check_connection(kind: &dyn Kind, conn: &str) -> Result<(), String> {
    let conn = conn.trim();
    if conn.is_empty() || conn.len() > 2000 {
        return Err("the connection is 1–2000 characters".into());
    }
    kind.check_connection(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_names_what_it_does_not_know() {
        assert_eq!(get(&TargetKind::KAFKA).unwrap().name(), "kafka");
        let e = get(&TargetKind::new("mongodb").unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("\"mongodb\"")
                && e.contains("redis, postgres, kafka, prometheus, kubernetes, rabbitmq, traces"),
            "{e}"
        );
        assert!(register(&REDIS).is_err(), "a taken name is refused");
        // Every built-in probe belongs to a registered kind, so the catalogue loses none.
        assert_eq!(probes().len(), probes::registry::all().len());
        for p in probes() {
            assert!(get(&TargetKind::new(p.spec().kind).unwrap()).is_ok());
        }
    }

    #[test]
    fn connections_per_kind() {
        for (kind, conn, ok) in [
            (&REDIS as &dyn Kind, "redis://cache:6379/0", true),
            (&REDIS, "rediss://cache:6380", true),
            (&REDIS, "redis://:hunter2@cache:6379", false),
            (&REDIS, "postgres://db/x", false),
            (
                &POSTGRES,
                "postgres://app@db:5432/app?sslmode=require",
                true,
            ),
            (&POSTGRES, "postgres://app:pw@db/app", false),
            (&POSTGRES, "postgres://app@db/app?password=hunter2", false),
            (
                &POSTGRES,
                "postgres://app@db/app?sslmode=require&PassWord=hunter2",
                false,
            ),
            (
                &POSTGRES,
                "postgres://app@db/app?sslpassword=hunter2",
                false,
            ),
            (
                &POSTGRES,
                "postgres://app@db/app?passfile=/root/.pgpass",
                false,
            ),
            (&POSTGRES, "postgres://:pw@db/app", false),
            (&POSTGRES, "postgres://app%3Apw@db/app", true),
            (&REDIS, "redis://cache:6379/0?password=hunter2", false),
            (&REDIS, "redis://cache:6379/0?protocol=resp3", true),
            (&POSTGRES, "db:5432", false),
            (&Kafka, "k1:9092,k2:9092", true),
            (&Kafka, "k1", false),
            (&Kafka, "k1:notaport", false),
            (
                &Kafka,
                "k1:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-256",
                true,
            ),
            (
                &Kafka,
                "k1:9093?security.protocol=SASL_SSL&sasl.password=x",
                false,
            ),
            (&Kafka, "k1:9093?linger.ms=5", false),
            (&REDIS, "redis://", false),
            (&REDIS, "", false),
            (&REDIS, &format!("redis://{}", "a".repeat(2000)), false),
        ] {
            assert_eq!(
                check_connection(kind, conn).is_ok(),
                ok,
                "{} {conn}",
                kind.name()
            );
        }
    }

    #[test]
    fn destinations_per_kind() {
        let d = |k: &dyn Kind, c: &str| k.destination(c);
        assert_eq!(
            d(&REDIS, "redis://Cache:6379/0"),
            d(&REDIS, "redis://cache/5")
        );
        assert_ne!(
            d(&REDIS, "redis://cache:6379/0"),
            d(&REDIS, "redis://evil:6379/0")
        );
        assert_ne!(
            d(&REDIS, "redis://cache:6379"),
            d(&REDIS, "redis://cache:6380")
        );
        assert_ne!(d(&REDIS, "redis://cache"), d(&REDIS, "rediss://cache"));
        assert_eq!(
            d(&POSTGRES, "postgres://app@db/app?sslmode=require"),
            d(&POSTGRES, "postgresql://other@db:5432/x")
        );
        assert_eq!(
            d(&Kafka, "k1:9092,k2:9092"),
            d(&Kafka, "K2:9092, k1:9092?security.protocol=SSL")
        );
        assert_ne!(d(&Kafka, "k1:9092"), d(&Kafka, "k1:9092,evil:9092"));
    }

    #[test]
    fn kafka_credentials_follow_the_protocol() {
        let sasl = "k:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512";
        for (conn, user, secret, ok) in [
            ("k:9092", "", false, true),
            ("k:9092", "u", false, false),
            ("k:9092", "", true, false),
            (sasl, "u", true, true),
            (sasl, "", true, false),
            (sasl, "u", false, false),
        ] {
            assert_eq!(
                Kafka.check_credentials(conn, user, secret).is_ok(),
                ok,
                "{conn} {user} {secret}"
            );
        }
    }
}
