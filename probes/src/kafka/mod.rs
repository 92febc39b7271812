//! Kafka: connection check through librdkafka's metadata request. Uses an admin-style
//! client with no group id, so it never joins or disturbs a consumer group.

use crate::{ConnectionReport, ProbeError, secs};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

pub async fn check(bootstrap: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    if bootstrap.trim().is_empty() {
        return Err(ProbeError::InvalidTarget("no bootstrap servers".into()));
    }
    let target = bootstrap.to_string();
    let ms = limit.as_millis().max(1).to_string();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", &ms)
        .set("socket.connection.setup.timeout.ms", &ms)
        .set("client.id", "lookout-connection-check")
        .set("log_level", "3")
        .create()
        .map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
    let start = Instant::now();
    // librdkafka's metadata call blocks; keep it off the async workers.
    let res = tokio::task::spawn_blocking(move || {
        consumer.fetch_metadata(None, limit).map(|md| {
            let brokers: Vec<String> = md
                .brokers()
                .iter()
                .map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port()))
                .collect();
            (
                brokers,
                md.orig_broker_name().to_string(),
                md.topics().len(),
            )
        })
    })
    .await
    .map_err(|e| ProbeError::Server {
        target: target.clone(),
        reason: e.to_string(),
    })?;
    let elapsed = start.elapsed();
    match res {
        Ok((brokers, orig, topics)) => Ok(ConnectionReport {
            kind: "kafka".into(),
            target,
            // Kafka does not report a release version in metadata; name the answering broker.
            server_version: format!("answered by {orig}"),
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            facts: vec![
                ("brokers".into(), brokers.join(", ")),
                ("topics".into(), topics.to_string()),
            ],
        }),
        Err(_) if elapsed >= limit => Err(ProbeError::TimedOut {
            target,
            limit: secs(limit),
        }),
        Err(e) => Err(ProbeError::Unreachable {
            target,
            reason: e.to_string(),
            elapsed: secs(elapsed),
        }),
    }
}

pub mod lag;
pub mod rules;
pub mod wire;
