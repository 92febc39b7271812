//! Kafka: the connection check, the consumer-lag probe and sampler ([`lag`], with the
//! verdict [`rules`]), the read-only protocol client they observe through ([`wire`]), and
//! the connection settings ([`config`]). The check connects the way the sampler does (TLS
//! and SASL as configured) and asks for the cluster's metadata; it never joins a group.

use crate::{ConnectionReport, ProbeError, secs};
use std::time::{Duration, Instant};

pub async fn check(connection: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let kafka = config::KafkaConfig::parse(connection, true).map_err(ProbeError::InvalidTarget)?;
    let target = kafka.bootstrap.clone();
    let start = Instant::now();
    let res = tokio::time::timeout(limit, async {
        let mut c = wire::Cluster::connect(&kafka, limit).await?;
        let md = c.metadata().await?;
        Ok::<_, wire::WireError>((c.connected_to(), md))
    })
    .await;
    let elapsed = start.elapsed();
    match res {
        Ok(Ok((answered, md))) => Ok(ConnectionReport {
            kind: "kafka".into(),
            target,
            // Kafka does not report a release version in metadata; name the answering broker.
            server_version: format!("answered by {answered}"),
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            facts: vec![
                (
                    "brokers".into(),
                    md.brokers
                        .iter()
                        .map(|b| format!("{}@{}", b.id, b.addr))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ("topics".into(), md.topics.len().to_string()),
                ("security".into(), kafka.describe()),
            ],
        }),
        Ok(Err(e)) => Err(lag::wire_error(&target, e, elapsed)),
        Err(_) => Err(ProbeError::TimedOut {
            target,
            limit: secs(limit),
        }),
    }
}

pub mod config;
pub mod lag;
pub mod rules;
pub mod wire;
