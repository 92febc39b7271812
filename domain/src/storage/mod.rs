//! Explicit SQL, one module per aggregate. Functions take any executor so services can compose
//! them inside one transaction (an admin action and its audit entry commit together).

pub mod audit;
pub mod deployments;
pub mod incidents;
pub mod kafka_lag;
pub mod leases;
pub mod llm;
pub mod login_throttle;
pub mod probe_runs;
pub mod sessions;
pub mod targets;
pub mod tokens;
pub mod users;

/// The migrations embedded in the binary (applied at start and by `lookout migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// True when `e` is a unique-constraint violation (SQLSTATE 23505).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// Reads a stored labels object (strings only) back into a map.
pub fn labels_from_json(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}
