//! Prometheus: the connection check and instant queries over its HTTP API, read-only and
//! bounded (a time limit on every request, a cap on the answer's size and series). The
//! address is the server's base URL; credentials come in its userinfo when connecting
//! (`domain::kinds`): a username and password are sent as basic auth, a password alone as a
//! bearer token. They are never part of what is shown (`target`).

pub mod condition;
pub mod probe;
pub mod rules;

use crate::{ConnectionReport, ProbeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The largest answer read from Prometheus.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The most series kept from one answer.
pub const MAX_SERIES: usize = 10_000;

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// An instant query's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryValue {
    Scalar(f64),
    Vector(Vec<Sample>),
}

impl QueryValue {
    /// The values, for evidence and charts.
    pub fn values(&self) -> Vec<f64> {
        match self {
            QueryValue::Scalar(v) => vec![*v],
            QueryValue::Vector(s) => s.iter().map(|s| s.value).collect(),
        }
    }
}

/// A Prometheus server to ask.
pub struct Client {
    api: crate::http::HttpApi,
    /// The base URL as shown (no credentials).
    pub target: String,
}

impl Client {
    pub fn new(address: &str) -> Result<Client, ProbeError> {
        let api = crate::http::HttpApi::new(
            address,
            "a Prometheus target is an http:// or https:// URL",
            MAX_ANSWER_BYTES,
        )?;
        Ok(Client {
            target: api.target.clone(),
            api,
        })
    }

    /// Sends a request and reads its JSON `data` within `limit`, the answer capped.
    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        limit: Duration,
    ) -> Result<serde_json::Value, ProbeError> {
        let (status, body) = self.api.send(req, limit).await?;
        #[derive(Deserialize)]
        struct Envelope {
            status: String,
            #[serde(default)]
            data: serde_json::Value,
            #[serde(default, rename = "errorType")]
            error_type: String,
            #[serde(default)]
            error: String,
        }
        let env: Envelope = serde_json::from_slice(&body).map_err(|_| ProbeError::Server {
            target: self.target.clone(),
            reason: format!(
                "HTTP {status}, not a Prometheus API answer: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })?;
        if env.status != "success" {
            return Err(ProbeError::Server {
                target: self.target.clone(),
                reason: format!(
                    "{}: {}",
                    if env.error_type.is_empty() {
                        status.to_string()
                    } else {
                        env.error_type
                    },
                    env.error.chars().take(500).collect::<String>()
                ),
            });
        }
        Ok(env.data)
    }

    /// The server's version (`/api/v1/status/buildinfo`).
    pub async fn build_info(&self, limit: Duration) -> Result<String, ProbeError> {
        let data = self
            .call(self.api.get("api/v1/status/buildinfo")?, limit)
            .await?;
        Ok(data
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string())
    }

    /// An instant query (POST, so long queries fit), evaluated now.
    pub async fn query(&self, promql: &str, limit: Duration) -> Result<QueryValue, ProbeError> {
        let req = self.api.post("api/v1/query")?.form(&[
            ("query", promql),
            ("timeout", &format!("{}s", limit.as_secs().max(1))),
        ]);
        let data = self.call(req, limit).await?;
        parse_result(&data).map_err(|reason| ProbeError::Server {
            target: self.target.clone(),
            reason,
        })
    }
}

impl Client {
    /// A range query: at most [`MAX_RANGE_POINTS`] points per series (the step is chosen by
    /// the caller to fit), at most [`MAX_SERIES`] series.
    pub async fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step_s: f64,
        limit: Duration,
    ) -> Result<Vec<RangeSeries>, ProbeError> {
        let req = self.api.post("api/v1/query_range")?.form(&[
            ("query", promql),
            ("start", &format!("{start:.3}")),
            ("end", &format!("{end:.3}")),
            ("step", &format!("{:.3}", step_s.max(0.001))),
            ("timeout", &format!("{}s", limit.as_secs().max(1))),
        ]);
        let data = self.call(req, limit).await?;
        parse_matrix(&data).map_err(|reason| ProbeError::Server {
            target: self.target.clone(),
            reason,
        })
    }
}

/// The most points a range answer may carry per series (Prometheus itself refuses more
/// than 11,000).
pub const MAX_RANGE_POINTS: usize = 11_000;

/// One series of a range query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    /// (unix seconds, value)
    pub points: Vec<(f64, f64)>,
}

/// `data` of a range query: a matrix.
pub fn parse_matrix(data: &serde_json::Value) -> Result<Vec<RangeSeries>, String> {
    let kind = data
        .get("resultType")
        .and_then(|k| k.as_str())
        .unwrap_or("");
    if kind != "matrix" {
        return Err(format!("a range query returned a {kind:?}, not a matrix"));
    }
    let series = data
        .get("result")
        .and_then(|r| r.as_array())
        .ok_or_else(|| "a matrix without series".to_string())?;
    if series.len() > MAX_SERIES {
        return Err(format!(
            "the query returned {} series (at most {MAX_SERIES}): narrow the selector",
            series.len()
        ));
    }
    series
        .iter()
        .map(|s| {
            let labels = labels_of(s);
            let values = s
                .get("values")
                .and_then(|v| v.as_array())
                .ok_or_else(|| "a series without values".to_string())?;
            if values.len() > MAX_RANGE_POINTS {
                return Err(format!("a series has more than {MAX_RANGE_POINTS} points"));
            }
            let points = values
                .iter()
                .map(|p| {
                    let t = p
                        .get(0)
                        .and_then(|t| t.as_f64())
                        .ok_or_else(|| "a point without a time".to_string())?;
                    Ok((t, number(p)?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(RangeSeries { labels, points })
        })
        .collect()
}

fn number(v: &serde_json::Value) -> Result<f64, String> {
    // [timestamp, "value"]
    let s = v
        .get(1)
        .and_then(|x| x.as_str())
        .ok_or_else(|| "a sample without a value".to_string())?;
    s.parse::<f64>()
        .map_err(|_| format!("the value {s:?} is not a number"))
}

/// A series' labels (`metric`) of a query answer.
fn labels_of(s: &serde_json::Value) -> BTreeMap<String, String> {
    s.get("metric")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `data` of an instant query: a vector or a scalar (a matrix or a string is refused).
pub fn parse_result(data: &serde_json::Value) -> Result<QueryValue, String> {
    let kind = data
        .get("resultType")
        .and_then(|k| k.as_str())
        .unwrap_or("");
    let result = data.get("result").unwrap_or(&serde_json::Value::Null);
    match kind {
        "scalar" => Ok(QueryValue::Scalar(number(result)?)),
        "vector" => {
            let series = result
                .as_array()
                .ok_or_else(|| "a vector without series".to_string())?;
            if series.len() > MAX_SERIES {
                return Err(format!(
                    "the query returned {} series (at most {MAX_SERIES}): aggregate it",
                    series.len()
                ));
            }
            series
                .iter()
                .map(|s| {
                    let labels = labels_of(s);
                    Ok(Sample {
                        labels,
                        value: number(s.get("value").unwrap_or(&serde_json::Value::Null))?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
                .map(QueryValue::Vector)
        }
        "matrix" => Err(
            "the query returned a range vector: a check needs an instant value (wrap it, e.g. rate(x[5m]))"
                .into(),
        ),
        other => Err(format!("the query returned a {other:?}: a check needs a number")),
    }
}

/// "Test connection": the build info within `limit`.
pub async fn check(address: &str, limit: Duration) -> Result<ConnectionReport, ProbeError> {
    let client = Client::new(address)?;
    let start = Instant::now();
    let version = client.build_info(limit).await?;
    let latency = start.elapsed();
    // One query proves the credentials may query, not only read the build info.
    let up = client.query("count(up == 1)", limit).await?;
    let up = up.values().first().copied().unwrap_or(0.0);
    Ok(ConnectionReport {
        kind: "prometheus".into(),
        target: client.target.clone(),
        server_version: version,
        latency_ms: latency.as_secs_f64() * 1000.0,
        facts: vec![("targets up".into(), format!("{up}"))],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1.5,"0.25"]},{"metric":{},"value":[1.5,"NaN"]}]}"#,
        )
        .unwrap();
        let QueryValue::Vector(s) = parse_result(&v).unwrap() else {
            panic!()
        };
        assert_eq!(s[0].value, 0.25);
        assert_eq!(s[0].labels["job"], "a");
        assert!(s[1].value.is_nan());
        let v = serde_json::json!({"resultType":"scalar","result":[1.5,"+Inf"]});
        assert_eq!(parse_result(&v).unwrap(), QueryValue::Scalar(f64::INFINITY));
        let v = serde_json::json!({"resultType":"matrix","result":[]});
        assert!(parse_result(&v).unwrap_err().contains("range vector"));
        let v = serde_json::json!({"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]});
        assert!(parse_result(&v).is_err());
    }

    #[test]
    fn only_http_urls() {
        assert_eq!(
            Client::new("http://:t@prom:9090/x").unwrap().target,
            "http://prom:9090/x/"
        );
        assert!(Client::new("ftp://prom").is_err());
    }
}
