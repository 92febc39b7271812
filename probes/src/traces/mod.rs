//! Traces: where a slow request spent its time, from the trace store a team already runs.
//! `analysis` is the pure breakdown; `jaeger` reads Jaeger's query API; `probe` is the
//! `traces` probe.

pub mod analysis;
pub mod jaeger;
pub mod probe;

use crate::{ConnectionReport, ProbeError};
use std::time::{Duration, Instant};

/// "Test connection": the services Jaeger knows, within `limit`.
pub async fn check(address: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let c = jaeger::Client::new(address)?;
    let start = Instant::now();
    let services = c.services(limit).await?;
    Ok(ConnectionReport {
        kind: "traces".into(),
        target: c.target.clone(),
        server_version: "Jaeger query API".into(),
        latency_ms: start.elapsed().as_secs_f64() * 1000.0,
        facts: vec![
            ("services".into(), services.len().to_string()),
            (
                "some services".into(),
                services
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ],
    })
}
