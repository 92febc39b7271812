//! The HTTP side shared by the probes that read an HTTP API (Prometheus, RabbitMQ's
//! management API, Jaeger's query API): the base URL with its credentials taken out of the
//! userinfo (a username and password as basic auth, a password alone as a bearer token), a
//! client that follows no redirect, and one way to send a request within a time limit with
//! the answer's size capped — failures become [`ProbeError`]s a responder can act on.

use crate::ProbeError;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// An HTTP API to ask.
pub struct HttpApi {
    base: url::Url,
    pub(crate) auth: Auth,
    /// The base URL as shown (no credentials).
    pub target: String,
    http: reqwest::Client,
    max_bytes: usize,
    /// Said with a 403 (e.g. which permission the user lacks).
    forbidden_hint: &'static str,
}

impl HttpApi {
    /// `address`: an http(s) URL, credentials in its userinfo; `what` says what it should
    /// have been when it is not one.
    pub fn new(address: &str, what: &str, max_bytes: usize) -> Result<HttpApi, ProbeError> {
        let mut base = url::Url::parse(address.trim())
            .map_err(|e| ProbeError::InvalidTarget(format!("invalid URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ProbeError::InvalidTarget(what.to_string()));
        }
        let user = percent_decode(base.username());
        let password = base.password().map(percent_decode);
        let auth = match (user.is_empty(), password) {
            (true, None) => Auth::None,
            (true, Some(token)) => Auth::Bearer(token),
            (false, pw) => Auth::Basic(user, pw.unwrap_or_default()),
        };
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
        Ok(HttpApi {
            target: base.to_string(),
            base,
            auth,
            http,
            max_bytes,
            forbidden_hint: "",
        })
    }

    /// What a 403 means for this API.
    pub fn forbidden_hint(mut self, hint: &'static str) -> Self {
        self.forbidden_hint = hint;
        self
    }

    fn url(&self, path: &str) -> Result<url::Url, ProbeError> {
        self.base
            .join(path)
            .map_err(|e| ProbeError::InvalidTarget(e.to_string()))
    }

    pub fn get(&self, path: &str) -> Result<reqwest::RequestBuilder, ProbeError> {
        Ok(self.http.get(self.url(path)?))
    }

    pub fn post(&self, path: &str) -> Result<reqwest::RequestBuilder, ProbeError> {
        Ok(self.http.post(self.url(path)?))
    }

    /// Sends `req` with the credentials and reads the answer within `limit`: its status and
    /// body (at most `max_bytes`). Refused or unresolvable → `Unreachable`, 401/403 →
    /// `AuthFailed`, too slow → `TimedOut`, too big → `Server`.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
        limit: Duration,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ProbeError> {
        let start = Instant::now();
        let target = self.target.clone();
        let req = match &self.auth {
            Auth::None => req,
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        let work = async {
            let mut resp = req.send().await.map_err(|e| ProbeError::Unreachable {
                target: target.clone(),
                reason: error_chain(&e),
                elapsed: crate::secs(start.elapsed()),
            })?;
            let status = resp.status();
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                let hint = if status == reqwest::StatusCode::FORBIDDEN {
                    self.forbidden_hint
                } else {
                    ""
                };
                return Err(ProbeError::AuthFailed {
                    target: target.clone(),
                    reason: if hint.is_empty() {
                        format!("HTTP {status}")
                    } else {
                        format!("HTTP {status}: {hint}")
                    },
                });
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| ProbeError::Server {
                target: target.clone(),
                reason: format!("reading the answer: {}", error_chain(&e)),
            })? {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(ProbeError::Server {
                        target: target.clone(),
                        reason: format!(
                            "the answer is larger than {} MB: narrow the request",
                            self.max_bytes >> 20
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| ProbeError::TimedOut {
                target: self.target.clone(),
                limit: crate::secs(limit),
            })?
    }
}

/// `%XX` escapes of a URL's userinfo decoded.
pub fn percent_decode(s: &str) -> String {
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

/// An error with its causes, for people ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_headers_and_never_the_target() {
        let c = HttpApi::new("http://:tok%40en@prom:9090/prefix", "", 1).unwrap();
        assert_eq!(c.target, "http://prom:9090/prefix/");
        assert!(matches!(&c.auth, Auth::Bearer(t) if t == "tok@en"));
        let c = HttpApi::new("https://ops:pw@prom", "", 1).unwrap();
        assert_eq!(c.target, "https://prom/");
        assert!(matches!(&c.auth, Auth::Basic(u, p) if u == "ops" && p == "pw"));
        let c = HttpApi::new("http://prom:9090", "", 1).unwrap();
        assert!(matches!(c.auth, Auth::None));
        assert_eq!(
            HttpApi::new("ftp://prom", "an http URL", 1).err(),
            Some(ProbeError::InvalidTarget("an http URL".into()))
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
