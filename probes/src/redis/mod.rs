//! Redis: connection check (PING, then INFO server/replication). Read-only.

use crate::{ConnectionReport, ProbeError, redact_url, secs};
use std::time::{Duration, Instant};

pub(crate) fn classify(target: &str, e: &redis::RedisError, elapsed: Duration) -> ProbeError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("noauth")
        || lower.contains("wrongpass")
        || lower.contains("invalid password")
        || lower.contains("authentication")
    {
        ProbeError::AuthFailed {
            target: target.into(),
            reason: text,
        }
    } else if e.is_timeout() {
        ProbeError::TimedOut {
            target: target.into(),
            limit: secs(elapsed),
        }
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        ProbeError::Unreachable {
            target: target.into(),
            reason: text,
            elapsed: secs(elapsed),
        }
    } else {
        ProbeError::Server {
            target: target.into(),
            reason: text,
        }
    }
}

fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// Connects, PINGs and reads `INFO server` and `INFO replication`, all within `limit`.
pub async fn check(url: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let target = redact_url(url);
    let client = redis::Client::open(url).map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
    let start = Instant::now();
    let work = async {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(limit)
            .set_response_timeout(limit);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        let latency = start.elapsed();
        let server: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(&target, &e, start.elapsed()))?;
        Ok::<_, ProbeError>((pong, latency, server, replication))
    };
    let (pong, latency, server, replication) =
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ProbeError::TimedOut {
                target: target.clone(),
                limit: secs(limit),
            })??;
    if pong != "PONG" {
        return Err(ProbeError::Server {
            target,
            reason: format!("PING answered {pong:?}"),
        });
    }
    let mut facts = vec![];
    for (k, src) in [
        ("redis_mode", &server),
        ("os", &server),
        ("role", &replication),
        ("connected_slaves", &replication),
    ] {
        if let Some(v) = info_field(src, k) {
            facts.push((k.to_string(), v.to_string()));
        }
    }
    Ok(ConnectionReport {
        kind: "redis".into(),
        target,
        server_version: info_field(&server, "redis_version")
            .unwrap_or("unknown")
            .to_string(),
        latency_ms: latency.as_secs_f64() * 1000.0,
        facts,
    })
}
pub mod audit;
pub mod probe;
pub mod rules;
