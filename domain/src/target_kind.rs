//! The kinds of target Lookout can look at (shared with the browser). Its own module so
//! that `targets` (which lists a target's last probe run) and `probe_runs` (which names the
//! kind a run was for) do not import each other.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(sqlx::Type))]
#[cfg_attr(
    feature = "server",
    sqlx(type_name = "target_kind", rename_all = "lowercase")
)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Redis,
    Postgres,
    Kafka,
    Kubernetes,
    Prometheus,
}

impl TargetKind {
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Redis,
        TargetKind::Postgres,
        TargetKind::Kafka,
        TargetKind::Kubernetes,
        TargetKind::Prometheus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Redis => "redis",
            TargetKind::Postgres => "postgres",
            TargetKind::Kafka => "kafka",
            TargetKind::Kubernetes => "kubernetes",
            TargetKind::Prometheus => "prometheus",
        }
    }

    /// What the connection field holds, for forms and errors.
    pub fn connection_help(self) -> &'static str {
        match self {
            TargetKind::Redis => {
                "redis://host:6379/0 (rediss:// for TLS); the password goes in the secret"
            }
            TargetKind::Postgres => {
                "postgres://user@host:5432/db?sslmode=require; the password goes in the secret"
            }
            TargetKind::Kafka => {
                "bootstrap servers host:9092[,host:9092], optionally ?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512 (SSL, SASL_PLAINTEXT; PLAIN, SCRAM-SHA-256; ssl.ca.location=/path/ca.pem); the SASL username and password go in the username and secret"
            }
            TargetKind::Kubernetes => {
                "https://api-server:6443; the bearer token goes in the secret"
            }
            TargetKind::Prometheus => "http(s)://prometheus:9090",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TargetKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown target kind {s:?}: expected redis, postgres, kafka, kubernetes or prometheus"))
    }
}
