//! Jaeger's query API (`/api/traces/{id}`, `/api/traces?service=…`), the one the Jaeger UI
//! uses, read-only and bounded: a time limit on every request, a cap on the answer's size
//! and on the spans kept. Its JSON becomes [`Span`]s.

use super::analysis::Span;
use crate::ProbeError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest answer read from Jaeger.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

pub struct Client {
    api: crate::http::HttpApi,
    /// The base URL as shown (no credentials), `jaeger+http://…`.
    pub target: String,
}

impl Client {
    /// `jaeger+http://host:16686` (or `https`), credentials in the userinfo: a username and
    /// password as basic auth, a password alone as a bearer token.
    pub fn new(address: &str) -> Result<Client, ProbeError> {
        let what = "a traces target starts with jaeger+http:// or jaeger+https://";
        let rest = address
            .trim()
            .strip_prefix("jaeger+")
            .ok_or_else(|| ProbeError::InvalidTarget(what.into()))?;
        let api = crate::http::HttpApi::new(rest, what, MAX_ANSWER_BYTES)?;
        Ok(Client {
            target: format!("jaeger+{}", api.target),
            api,
        })
    }

    /// GET `path` with `query`; `Ok(None)` for a 404 (no such trace).
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: Duration,
    ) -> Result<Option<Value>, ProbeError> {
        let (status, body) = self
            .api
            .send(self.api.get(path)?.query(query), limit)
            .await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&body).map_err(|_| ProbeError::Server {
            target: self.target.clone(),
            reason: format!(
                "HTTP {status}, not a Jaeger query API answer: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })?;
        if !status.is_success() {
            return Err(ProbeError::Server {
                target: self.target.clone(),
                reason: format!("HTTP {status}: {}", errors(&v)),
            });
        }
        Ok(Some(v))
    }

    /// The services Jaeger knows (the connection check).
    pub async fn services(&self, limit: Duration) -> Result<Vec<String>, ProbeError> {
        let v = self
            .get("api/services", &[], limit)
            .await?
            .unwrap_or_default();
        Ok(v.get("data")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// One trace by id; `None` when Jaeger has no such trace.
    pub async fn trace(&self, id: &str, limit: Duration) -> Result<Option<Vec<Span>>, ProbeError> {
        let v = self.get(&format!("api/traces/{id}"), &[], limit).await?;
        Ok(v.and_then(|v| {
            v.get("data")
                .and_then(|d| d.as_array())
                .and_then(|a| a.first())
                .map(parse_trace)
        }))
    }

    /// Traces of `service` in the last `lookback_m` minutes, at most `limit_n`, optionally
    /// only those with the tag `key=value`.
    pub async fn search(
        &self,
        service: &str,
        lookback_m: i64,
        limit_n: i64,
        tag: Option<(&str, &str)>,
        limit: Duration,
    ) -> Result<Vec<Vec<Span>>, ProbeError> {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let mut q = vec![
            ("service", service.to_string()),
            ("start", (end - lookback_m * 60_000_000).to_string()),
            ("end", end.to_string()),
            ("limit", limit_n.to_string()),
        ];
        if let Some((k, v)) = tag {
            let mut m = serde_json::Map::new();
            m.insert(k.to_string(), Value::String(v.to_string()));
            q.push(("tags", Value::Object(m).to_string()));
        }
        let v = self.get("api/traces", &q, limit).await?.unwrap_or_default();
        Ok(v.get("data")
            .and_then(|d| d.as_array())
            .map(|a| a.iter().map(parse_trace).collect())
            .unwrap_or_default())
    }
}

fn errors(v: &Value) -> String {
    v.get("errors")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("msg").and_then(|m| m.as_str()))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| v.to_string().chars().take(200).collect())
}

fn tag_value(t: &Value) -> String {
    match t.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// The most spans kept from one trace.
pub const MAX_SPANS: usize = 100_000;

/// A trace of Jaeger's JSON model: its spans with their service, parent (the CHILD_OF or
/// FOLLOWS_FROM reference within the trace), kind, error status and tags.
pub fn parse_trace(t: &Value) -> Vec<Span> {
    let processes: BTreeMap<String, String> = t
        .get("processes")
        .and_then(|p| p.as_object())
        .map(|p| {
            p.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.get("serviceName")
                            .and_then(|s| s.as_str())
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![];
    for s in t
        .get("spans")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .take(MAX_SPANS)
    {
        let str_of = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let trace_id = str_of("traceID");
        let parent_id = s
            .get("references")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .find(|r| {
                r.get("traceID").and_then(|v| v.as_str()) == Some(trace_id.as_str())
                    && matches!(
                        r.get("refType").and_then(|v| v.as_str()),
                        Some("CHILD_OF" | "FOLLOWS_FROM")
                    )
            })
            .and_then(|r| r.get("spanID").and_then(|v| v.as_str()))
            .map(str::to_string);
        let attrs: BTreeMap<String, String> = s
            .get("tags")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t.get("key")?.as_str()?.to_string(), tag_value(t))))
            .collect();
        let error = attrs.get("error").is_some_and(|v| v == "true")
            || attrs.get("otel.status_code").is_some_and(|v| v == "ERROR");
        out.push(Span {
            span_id: str_of("spanID"),
            parent_id,
            service: processes
                .get(&str_of("processID"))
                .cloned()
                .unwrap_or_default(),
            name: str_of("operationName"),
            kind: attrs.get("span.kind").cloned().unwrap_or_default(),
            start: s.get("startTime").and_then(|v| v.as_i64()).unwrap_or(0),
            duration: s
                .get("duration")
                .and_then(|v| v.as_i64())
                .unwrap_or(0)
                .max(0),
            error,
            attrs,
            trace_id,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaeger_json_becomes_spans() {
        let t = serde_json::json!({
            "traceID": "abc",
            "spans": [
                {"traceID": "abc", "spanID": "1", "operationName": "GET /orders", "references": [],
                 "startTime": 1000, "duration": 500, "processID": "p1",
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}]},
                {"traceID": "abc", "spanID": "2", "operationName": "SELECT", "processID": "p1",
                 "references": [{"refType": "CHILD_OF", "traceID": "abc", "spanID": "1"}],
                 "startTime": 1100, "duration": 100,
                 "tags": [{"key": "db.system", "type": "string", "value": "postgresql"},
                          {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                          {"key": "db.rows", "type": "int64", "value": 3}]},
                {"traceID": "abc", "spanID": "3", "operationName": "linked", "processID": "p2",
                 "references": [{"refType": "FOLLOWS_FROM", "traceID": "other", "spanID": "9"}],
                 "startTime": 1200, "duration": -5, "tags": []}
            ],
            "processes": {"p1": {"serviceName": "checkout"}, "p2": {"serviceName": "mailer"}}
        });
        let spans = parse_trace(&t);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0].kind, "server");
        assert_eq!(spans[1].parent_id.as_deref(), Some("1"));
        assert!(spans[1].error);
        assert_eq!(spans[1].attrs["db.rows"], "3");
        assert_eq!(
            spans[2].parent_id, None,
            "a link to another trace is not a parent"
        );
        assert_eq!(spans[2].service, "mailer");
        assert_eq!(spans[2].duration, 0);
        assert!(parse_trace(&serde_json::json!({})).is_empty());
        assert!(Client::new("http://jaeger:16686").is_err());
        let c = Client::new("jaeger+http://:tok@jaeger:16686").unwrap();
        assert_eq!(c.target, "jaeger+http://jaeger:16686/");
        assert!(matches!(&c.api.auth, crate::http::Auth::Bearer(t) if t == "tok"));
    }
}
