//! Lookout's domain. The plain data types (accounts, incidents, targets, probe runs, Kafka) are shared with the browser (wasm);
//! everything that touches PostgreSQL lives behind the `server` feature:
//! [`storage`] holds one module of explicit SQL per aggregate, [`services`] the operations
//! that the UI's server functions and the `/api/v1` handlers both call (written once).

pub mod accounts;
pub mod costs;
pub mod deployments;
pub mod error;
pub mod incidents;
pub mod kafka;
pub mod manifests;
pub mod probe_runs;
pub mod target_kind;
pub mod targets;

#[cfg(feature = "server")]
pub mod alertmanager;
#[cfg(feature = "server")]
pub mod kinds;
#[cfg(feature = "server")]
pub mod llm;
#[cfg(feature = "server")]
pub mod markdown;
#[cfg(feature = "server")]
pub mod postmortem;
#[cfg(feature = "server")]
pub mod reach;
#[cfg(feature = "server")]
pub mod secrets;
#[cfg(feature = "server")]
pub mod services;
#[cfg(feature = "server")]
pub mod storage;

pub use accounts::*;
pub use error::DomainError;

/// For `Option` fields of a PATCH body where `null` means nothing: absent is `None` (with
/// `#[serde(default)]`), a value is `Some`, and an explicit `null` is refused (400) rather
/// than read as "leave it".
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}
