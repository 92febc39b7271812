//! How to reach a Kafka cluster: bootstrap servers plus the client security settings, in
//! one connection string — `host:9092[,host:9092][?key=value&…]` with Kafka's own client
//! keys, so an operator can copy them from their client config:
//!
//! - `security.protocol`: `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`;
//! - `sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (default `PLAIN`);
//! - `ssl.ca.location`: a PEM file of the CAs to trust (default: the system's).
//!
//! The SASL username and password are never part of the stored string: they live in the
//! target's username and encrypted secret, and are added (as `sasl.username` /
//! `sasl.password`) only in memory, on the way to a probe or the sampler. [`KafkaConfig`]
//! is the one parser: target validation, the wire client and the rdkafka clients all use it.

use rdkafka::ClientConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }
    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port,host:port`
    pub bootstrap: String,
    pub protocol: Protocol,
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
    pub ca_location: Option<String>,
    /// Where the client may connect (empty: anywhere). Not part of the connection string:
    /// Lookout sets it from `LOOKOUT_TARGET_NETWORKS`, and the wire client refuses a broker
    /// the cluster advertises outside it.
    pub allowed: Vec<crate::net::Network>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap", &self.bootstrap)
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"***")
            .field("ca_location", &self.ca_location)
            .field("allowed", &self.allowed.len())
            .finish()
    }
}

fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

/// Percent-encodes a value for the connection string.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl KafkaConfig {
    /// Parses a connection string. `with_credentials`: whether `sasl.username` and
    /// `sasl.password` may appear (only in the in-memory form; a stored connection that
    /// carries them is refused — they belong in the secret).
    pub fn parse(conn: &str, with_credentials: bool) -> Result<KafkaConfig, String> {
        let conn = conn.trim();
        let (hosts, query) = conn.split_once('?').unwrap_or((conn, ""));
        let mut servers = vec![];
        for part in hosts.split(',').map(str::trim) {
            let part = part
                .strip_prefix("PLAINTEXT://")
                .or_else(|| part.strip_prefix("kafka://"))
                .unwrap_or(part);
            let (host, port) = part
                .rsplit_once(':')
                .ok_or_else(|| format!("bootstrap server {part:?} needs host:port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() || host.contains(['/', '@', ' ']) {
                return Err(format!("bootstrap server {part:?} needs host:port"));
            }
            servers.push(format!("{host}:{port}"));
        }
        if servers.is_empty() {
            return Err("no bootstrap servers".into());
        }
        let mut c = KafkaConfig {
            bootstrap: servers.join(","),
            protocol: Protocol::Plaintext,
            mechanism: Mechanism::Plain,
            username: String::new(),
            password: String::new(),
            ca_location: None,
            allowed: vec![],
        };
        let mut mechanism_set = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
            let v = decode(v)?;
            match k {
                "security.protocol" => {
                    c.protocol = match v.to_ascii_uppercase().as_str() {
                        "PLAINTEXT" => Protocol::Plaintext,
                        "SSL" => Protocol::Ssl,
                        "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
                        "SASL_SSL" => Protocol::SaslSsl,
                        _ => {
                            return Err(format!(
                                "security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not {v:?}"
                            ));
                        }
                    }
                }
                "sasl.mechanism" => {
                    mechanism_set = true;
                    c.mechanism = match v.to_ascii_uppercase().as_str() {
                        "PLAIN" => Mechanism::Plain,
                        "SCRAM-SHA-256" => Mechanism::ScramSha256,
                        "SCRAM-SHA-512" => Mechanism::ScramSha512,
                        _ => {
                            return Err(format!(
                                "sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not {v:?}"
                            ));
                        }
                    }
                }
                "ssl.ca.location" => {
                    if v.is_empty() || v.len() > 1000 {
                        return Err("ssl.ca.location: a path of 1–1000 characters".into());
                    }
                    c.ca_location = Some(v);
                }
                "sasl.username" | "sasl.password" if !with_credentials => {
                    return Err(format!(
                        "{k} does not belong in the connection: put the username and password in the target's username and secret"
                    ));
                }
                "sasl.username" => c.username = v,
                "sasl.password" => c.password = v,
                _ => {
                    return Err(format!(
                        "unknown option {k:?}: security.protocol, sasl.mechanism and ssl.ca.location are understood"
                    ));
                }
            }
        }
        if mechanism_set && !c.protocol.sasl() {
            return Err("sasl.mechanism needs security.protocol=SASL_PLAINTEXT or SASL_SSL".into());
        }
        if c.ca_location.is_some() && !c.protocol.tls() {
            return Err("ssl.ca.location needs security.protocol=SSL or SASL_SSL".into());
        }
        Ok(c)
    }

    /// The in-memory connection string with the credentials added.
    pub fn with_credentials(stored: &str, username: &str, password: &str) -> String {
        let sep = if stored.contains('?') { '&' } else { '?' };
        format!(
            "{stored}{sep}sasl.username={}&sasl.password={}",
            encode(username),
            encode(password)
        )
    }

    /// "SASL_SSL, SCRAM-SHA-512 as app" — for reports; never the password.
    pub fn describe(&self) -> String {
        let mut s = self.protocol.as_str().to_string();
        if self.protocol.sasl() {
            s.push_str(&format!(
                ", {} as {}",
                self.mechanism.as_str(),
                self.username
            ));
        }
        if let Some(ca) = &self.ca_location {
            s.push_str(&format!(", CA {ca}"));
        }
        s
    }

    /// Applies the security settings to an rdkafka client.
    pub fn apply(&self, cfg: &mut ClientConfig) {
        cfg.set("bootstrap.servers", &self.bootstrap)
            .set("security.protocol", self.protocol.as_str());
        if self.protocol.sasl() {
            cfg.set("sasl.mechanism", self.mechanism.as_str())
                .set("sasl.username", &self.username)
                .set("sasl.password", &self.password);
        }
        if let Some(ca) = &self.ca_location {
            cfg.set("ssl.ca.location", ca);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let c = KafkaConfig::parse("k1:9092, k2:9092", false).unwrap();
        assert_eq!(c.bootstrap, "k1:9092,k2:9092");
        assert_eq!(c.protocol, Protocol::Plaintext);
        let c = KafkaConfig::parse(
            "k1:9093?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512&ssl.ca.location=/etc/kafka/ca.pem",
            false,
        )
        .unwrap();
        assert_eq!(c.protocol, Protocol::SaslSsl);
        assert_eq!(c.mechanism, Mechanism::ScramSha512);
        assert_eq!(c.ca_location.as_deref(), Some("/etc/kafka/ca.pem"));
        for bad in [
            "k1",
            "k1:notaport",
            "",
            "k1:9092?security.protocol=TLS",
            "k1:9092?sasl.mechanism=GSSAPI&security.protocol=SASL_SSL",
            "k1:9092?sasl.mechanism=PLAIN",
            "k1:9092?ssl.ca.location=/x",
            "k1:9092?acks=all",
            "k1:9092?security.protocol",
            "k1:9092?security.protocol=SASL_SSL&sasl.password=hunter2",
            "user@k1:9092",
        ] {
            assert!(KafkaConfig::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_travel_encoded_and_never_print() {
        let s = KafkaConfig::with_credentials(
            "k1:9092?security.protocol=SASL_PLAINTEXT",
            "app&1",
            "p@ss=w&rd ü",
        );
        let c = KafkaConfig::parse(&s, true).unwrap();
        assert_eq!(c.username, "app&1");
        assert_eq!(c.password, "p@ss=w&rd ü");
        assert!(!format!("{c:?}").contains("p@ss"));
        let s = KafkaConfig::with_credentials("k1:9092", "u", "p");
        assert_eq!(s, "k1:9092?sasl.username=u&sasl.password=p");
    }
}
