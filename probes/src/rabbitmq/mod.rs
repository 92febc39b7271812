//! RabbitMQ through its management API (the `rabbitmq_management` plugin): the connection
//! check and the JSON reads the probe makes, read-only (GET only) and bounded (a time limit on
//! every request, a cap on the answer's size). The address is the management API's base URL
//! (`http://rabbit:15672`); the username and password come in its userinfo when connecting
//! (`domain::kinds`) and are sent as basic auth, never shown.

pub mod probe;
pub mod rules;

use crate::{ConnectionReport, ProbeError};
use std::time::{Duration, Instant};

/// The largest answer read from the management API.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

pub struct Client {
    api: crate::http::HttpApi,
    /// The base URL as shown (no credentials).
    pub target: String,
}

/// A path segment of the management API (vhosts, queue and exchange names): everything but
/// unreserved characters percent-encoded, so `/` becomes `%2F`.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub fn new(address: &str) -> Result<Client, ProbeError> {
        let api = crate::http::HttpApi::new(
            address,
            "a RabbitMQ target is the management API's http:// or https:// URL",
            MAX_ANSWER_BYTES,
        )?
        .forbidden_hint("the user needs the `monitoring` tag to read the management API");
        Ok(Client {
            target: api.target.clone(),
            api,
        })
    }

    /// GET `path` (relative to the base, already encoded) and its JSON, within `limit`.
    pub async fn get(&self, path: &str, limit: Duration) -> Result<serde_json::Value, ProbeError> {
        let (status, body) = self.api.send(self.api.get(path)?, limit).await?;
        if !status.is_success() {
            return Err(ProbeError::Server {
                target: self.target.clone(),
                reason: format!(
                    "HTTP {status} for {path}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            });
        }
        serde_json::from_slice(&body).map_err(|_| ProbeError::Server {
            target: self.target.clone(),
            reason: format!(
                "HTTP {status}, not a management API answer: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })
    }
}

/// "Test connection": the overview within `limit` (version, cluster, counts).
pub async fn check(address: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let client = Client::new(address)?;
    let start = Instant::now();
    let o = client.get("api/overview", limit).await?;
    let latency = start.elapsed();
    let s = |k: &str| o.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let n = |a: &str, b: &str| {
        o.get(a)
            .and_then(|v| v.get(b))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    Ok(ConnectionReport {
        kind: "rabbitmq".into(),
        target: client.target.clone(),
        server_version: format!("RabbitMQ {}", s("rabbitmq_version")),
        latency_ms: latency.as_secs_f64() * 1000.0,
        facts: vec![
            ("cluster".into(), s("cluster_name")),
            ("queues".into(), format!("{}", n("object_totals", "queues"))),
            (
                "connections".into(),
                format!("{}", n("object_totals", "connections")),
            ),
            (
                "messages".into(),
                format!("{}", n("queue_totals", "messages")),
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_the_target_and_segments_encode() {
        let c = Client::new("http://ops:p%40ss@rabbit:15672/mgmt").unwrap();
        assert_eq!(c.target, "http://rabbit:15672/mgmt/");
        assert!(matches!(&c.api.auth, crate::http::Auth::Basic(u, p) if u == "ops" && p == "p@ss"));
        assert!(Client::new("amqp://rabbit").is_err());
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("orders.dlq"), "orders.dlq");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
