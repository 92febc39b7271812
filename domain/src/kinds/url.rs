//! Kinds whose connection is a URL (Redis, PostgreSQL, and the HTTP-based kinds to come):
//! [`UrlKind`] implements [`Kind`] from a description (schemes, default port, the options
//! that name files, the connection check), and the helpers below serve kinds that need
//! more.

use super::Kind;
use probes::framework::BoxFuture;
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

/// The connection check of a URL kind.
pub type Check =
    for<'a> fn(&'a str, Duration) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>>;

/// A kind whose connection is a URL with the password put in when connecting.
pub struct UrlKind {
    pub name: &'static str,
    pub help: &'static str,
    /// Accepted schemes.
    pub schemes: &'static [&'static str],
    /// Schemes that are another spelling of one scheme (`postgresql` → `postgres`): the
    /// same destination.
    pub aliases: &'static [(&'static str, &'static str)],
    pub default_port: u16,
    /// Query options that make the driver read a file on the Lookout server.
    pub file_options: &'static [&'static str],
    pub check: Check,
}

impl Kind for UrlKind {
    fn name(&self) -> &'static str {
        self.name
    }
    fn connection_help(&self) -> &'static str {
        self.help
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        check(self.name, self.help, self.schemes, conn)
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        hosts(conn, self.default_port)
    }
    fn destination(&self, conn: &str) -> Vec<String> {
        destination(conn, self.default_port)
            .into_iter()
            .map(|d| {
                for (alias, scheme) in self.aliases {
                    if let Some(rest) = d.strip_prefix(&format!("{alias}://")) {
                        return format!("{scheme}://{rest}");
                    }
                }
                d
            })
            .collect()
    }
    fn file_options(&self, conn: &str) -> Vec<(String, String)> {
        let query = url::Url::parse(conn.trim())
            .ok()
            .and_then(|u| u.query().map(str::to_string));
        query_options(query.as_deref(), self.file_options)
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        with_credentials(conn, username, secret)
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        (self.check)(address, limit)
    }
}

/// URL options that carry a credential: refused (it belongs in the sealed secret).
const CREDENTIAL_OPTIONS: &[&str] = &[
    "password",
    "sslpassword",
    "pass",
    "passwd",
    "pwd",
    "passfile",
];

/// A URL with one of `schemes`, a host, and no credential: no password in the userinfo
/// (also not percent-encoded or after an empty username) and none in the query string.
pub fn check(kind: &str, help: &str, schemes: &[&str], conn: &str) -> Result<(), String> {
    let (scheme, _) = conn
        .split_once("://")
        .ok_or_else(|| format!("expected a URL: {help}"))?;
    if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "a {kind} target needs a {} URL",
            schemes.join(" or ")
        ));
    }
    let u = url::Url::parse(conn).map_err(|e| format!("invalid URL: {e}"))?;
    if u.password().is_some() {
        return Err("put the password in the secret field, not in the URL".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL needs a host".into());
    }
    for (k, _) in u.query_pairs() {
        let k = k.to_ascii_lowercase();
        if CREDENTIAL_OPTIONS.contains(&k.as_str()) {
            return Err(format!(
                "`{k}` in the URL is a credential: put the password in the secret field (it is stored encrypted), not in the URL"
            ));
        }
    }
    Ok(())
}

/// The base URL of an HTTP API (Prometheus, RabbitMQ's management API, Jaeger's query
/// API): http or https, and no username, query or fragment in it — the username has its own
/// field and the password goes into the secret.
pub fn check_api_base(kind: &str, help: &str, conn: &str) -> Result<(), String> {
    check(kind, help, &["http", "https"], conn)?;
    let u = url::Url::parse(conn).map_err(|e| format!("invalid URL: {e}"))?;
    if !u.username().is_empty() {
        return Err("put the username in the username field, not in the URL".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err("the base URL takes no query or fragment".into());
    }
    Ok(())
}

/// The default port of an http(s) URL's scheme.
pub fn http_port(conn: &str) -> u16 {
    if conn.trim_start().to_ascii_lowercase().starts_with("https") {
        443
    } else {
        80
    }
}

/// The URL's host and port (`default_port` when it names none).
pub fn hosts(conn: &str, default_port: u16) -> Vec<(String, u16)> {
    match url::Url::parse(conn.trim()) {
        Ok(u) => u
            .host_str()
            .map(|h| {
                (
                    h.trim_matches(['[', ']']).to_string(),
                    u.port().unwrap_or(default_port),
                )
            })
            .into_iter()
            .collect(),
        Err(_) => vec![],
    }
}

/// `scheme://host:port`, so that moving to TLS or plaintext also counts as a new
/// destination.
pub fn destination(conn: &str, default_port: u16) -> Vec<String> {
    match url::Url::parse(conn.trim()) {
        Ok(u) => vec![format!(
            "{}://{}:{}",
            u.scheme().to_ascii_lowercase(),
            u.host_str().unwrap_or_default().to_ascii_lowercase(),
            u.port().unwrap_or(default_port)
        )],
        Err(_) => vec![conn.trim().to_string()],
    }
}

/// The query options among `keys` (compared without case).
pub fn query_options(query: Option<&str>, keys: &[&str]) -> Vec<(String, String)> {
    let Some(q) = query else {
        return vec![];
    };
    url::form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| keys.iter().any(|w| k.eq_ignore_ascii_case(w)))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Puts credentials into a URL for connecting (never stored or shown).
pub fn with_credentials(url: &str, username: &str, secret: Option<&str>) -> Result<String, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if !username.is_empty() {
        u.set_username(username)
            .map_err(|_| "this URL cannot carry a username".to_string())?;
    }
    if let Some(s) = secret {
        u.set_password(Some(s))
            .map_err(|_| "this URL cannot carry a password".to_string())?;
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_into_the_url_for_connecting_only() {
        assert_eq!(
            with_credentials("redis://cache:6379/0", "", Some("p@ss")).unwrap(),
            "redis://:p%40ss@cache:6379/0"
        );
        assert_eq!(
            with_credentials("postgres://db:5432/app", "app", Some("pw")).unwrap(),
            "postgres://app:pw@db:5432/app"
        );
    }
}
