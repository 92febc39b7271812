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
    base: url::Url,
    user: String,
    password: String,
    /// The base URL as shown (no credentials).
    pub target: String,
    http: reqwest::Client,
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
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
        let mut base = url::Url::parse(address.trim())
            .map_err(|e| ProbeError::InvalidTarget(format!("invalid URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ProbeError::InvalidTarget(
                "a RabbitMQ target is the management API's http:// or https:// URL".into(),
            ));
        }
        let user = percent_decode(base.username());
        let password = base.password().map(percent_decode).unwrap_or_default();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProbeError::Internal(format!("HTTP client: {e}")))?;
        Ok(Client {
            target: base.to_string(),
            base,
            user,
            password,
            http,
        })
    }

    /// GET `path` (relative to the base, already encoded) and its JSON, within `limit`.
    pub async fn get(&self, path: &str, limit: Duration) -> Result<serde_json::Value, ProbeError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| ProbeError::InvalidTarget(e.to_string()))?;
        let start = Instant::now();
        let target = self.target.clone();
        let work = async {
            let mut req = self.http.get(url);
            if !self.user.is_empty() {
                req = req.basic_auth(&self.user, Some(&self.password));
            }
            let mut resp = req.send().await.map_err(|e| ProbeError::Unreachable {
                target: target.clone(),
                reason: error_chain(&e),
                elapsed: crate::secs(start.elapsed()),
            })?;
            let status = resp.status();
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(ProbeError::AuthFailed {
                    target: target.clone(),
                    reason: "HTTP 401: wrong username or password".into(),
                });
            }
            if status == reqwest::StatusCode::FORBIDDEN {
                return Err(ProbeError::AuthFailed {
                    target: target.clone(),
                    reason:
                        "HTTP 403: the user needs the `monitoring` tag to read the management API"
                            .into(),
                });
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| ProbeError::Server {
                target: target.clone(),
                reason: format!("reading the answer: {}", error_chain(&e)),
            })? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(ProbeError::Server {
                        target: target.clone(),
                        reason: format!(
                            "the answer to {path} is larger than {} MB",
                            MAX_ANSWER_BYTES / (1024 * 1024)
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        let (status, body) =
            tokio::time::timeout(limit, work)
                .await
                .map_err(|_| ProbeError::TimedOut {
                    target: self.target.clone(),
                    limit: crate::secs(limit),
                })??;
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
        assert_eq!((c.user.as_str(), c.password.as_str()), ("ops", "p@ss"));
        assert!(Client::new("amqp://rabbit").is_err());
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("orders.dlq"), "orders.dlq");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
