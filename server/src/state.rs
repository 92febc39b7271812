//! What the server's own handlers share (the Leptos side has `app::state::AppState`).

use crate::config::Config;
use crate::metrics::Metrics;
use sqlx::PgPool;

pub struct Shared {
    pub pool: PgPool,
    pub config: Config,
    /// The secrets' key and the reach limits, for connecting to targets.
    pub access: domain::reach::Access,
    /// Whose `X-Forwarded-For` hops to believe (from the configuration, read once).
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    pub metrics: std::sync::Arc<Metrics>,
    pub live: crate::live::Live,
    pub runner: domain::services::probe_runs::Runner,
    pub severity_mapping: domain::alertmanager::SeverityMapping,
    pub stats_cache: std::sync::Arc<domain::services::incidents::StatsCache>,
    /// Trace exports decoded and written at once (`crate::ingest`).
    pub ingest_slots: std::sync::Arc<tokio::sync::Semaphore>,
}
