//! A small, read-only Kafka protocol client for the cluster-wide reads that librdkafka
//! cannot batch.
//!
//! Why this exists next to rdkafka: the lag sampler must read the committed offsets of
//! *every* group each round, and the number of requests must grow with brokers and batches,
//! not with groups. librdkafka 2.12 (the one rdkafka 0.38 bundles) sends one OffsetFetch
//! per group: `rd_kafka_ListConsumerGroupOffsets` "only supports one group per invocation"
//! (rdkafka.h), and a consumer's `committed()` is bound to its own group id. Kafka has had a
//! multi-group OffsetFetch (v8, KIP-709) and a batched FindCoordinator (v4, KIP-699) since
//! 3.0; this client speaks exactly those, plus ListGroups, DescribeGroups (many groups per
//! coordinator), Metadata and ListOffsets (many partitions per leader), and nothing that
//! writes. rdkafka stays the client for everything else (the connection check, reading
//! records for exact time lag, the tests' producers and consumers).
//!
//! Every request has a deadline (the caller's step limit); responses are size-checked and
//! decoded defensively (a malformed answer is an error, never a panic). Requests are
//! counted, so a sampling round can report how many it made. Connections speak TLS
//! (rustls; the system's CAs or `ssl.ca.location`) and SASL PLAIN / SCRAM-SHA-256 /
//! SCRAM-SHA-512 (RFC 5802 / 7677) as [`KafkaConfig`] says.

use super::config::{KafkaConfig, Mechanism};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// (topic, partition)
pub type Tp = (String, i32);

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{api} to {addr}: {reason}")]
    Io {
        api: &'static str,
        addr: String,
        reason: String,
    },
    #[error("{api}: no answer from {addr} within {secs:.1} s")]
    Timeout {
        api: &'static str,
        addr: String,
        secs: f64,
    },
    #[error("{api}: malformed response ({reason})")]
    Decode { api: &'static str, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{api}: broker error {code} ({})", error_name(*code))]
    Broker { api: &'static str, code: i16 },
    #[error("TLS with {addr}: {reason}")]
    Tls { addr: String, reason: String },
    #[error("SASL {mechanism}: {reason}")]
    Auth {
        mechanism: &'static str,
        reason: String,
    },
    /// A broker the cluster advertises lies outside the networks Lookout may reach.
    #[error(
        "broker {broker} is advertised at {addr} ({ip}), outside the networks Lookout may reach (LOOKOUT_TARGET_NETWORKS); not connecting"
    )]
    NotAllowed {
        broker: i32,
        addr: String,
        ip: String,
    },
}

impl WireError {
    /// True when no broker could be reached at all (as opposed to a broker that answered
    /// badly): the target is down.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            WireError::Connect { .. } | WireError::Timeout { .. } | WireError::Tls { .. }
        )
    }
}

/// Names of the error codes an operator is likely to meet here.
pub fn error_name(code: i16) -> &'static str {
    match code {
        0 => "NONE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        6 => "NOT_LEADER_OR_FOLLOWER",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        30 => "GROUP_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        35 => "UNSUPPORTED_VERSION",
        69 => "GROUP_ID_NOT_FOUND",
        88 => "UNSTABLE_OFFSET_COMMIT",
        _ => "see the Kafka protocol error codes",
    }
}

type Result<T> = std::result::Result<T, WireError>;

// API keys used here.
const LIST_OFFSETS: i16 = 2;
const METADATA: i16 = 3;
const OFFSET_FETCH: i16 = 9;
const FIND_COORDINATOR: i16 = 10;
const DESCRIBE_GROUPS: i16 = 15;
const LIST_GROUPS: i16 = 16;
const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const CONSUMER_GROUP_DESCRIBE: i16 = 69;

/// Largest response accepted (a 50,000-group ListGroups answer is a few MB).
const MAX_RESPONSE: usize = 256 << 20;
/// Kafka's longest topic name. A longer one is a hostile broker's: copied into every
/// partition it names, a 32 KB name over four-byte partitions would multiply a response
/// 8,000 times in memory.
const MAX_TOPIC_NAME: usize = 249;
/// Most partitions one response may name (clusters hold a few hundred thousand at most).
const MAX_PARTITIONS: usize = 1_000_000;
/// Groups per DescribeGroups / OffsetFetch / FindCoordinator request: bounds the size of one
/// answer while keeping the request count at groups / 500.
pub const GROUP_BATCH: usize = 500;

fn api_name(key: i16) -> &'static str {
    match key {
        LIST_OFFSETS => "ListOffsets",
        METADATA => "Metadata",
        OFFSET_FETCH => "OffsetFetch",
        FIND_COORDINATOR => "FindCoordinator",
        DESCRIBE_GROUPS => "DescribeGroups",
        LIST_GROUPS => "ListGroups",
        API_VERSIONS => "ApiVersions",
        SASL_HANDSHAKE => "SaslHandshake",
        SASL_AUTHENTICATE => "SaslAuthenticate",
        CONSUMER_GROUP_DESCRIBE => "ConsumerGroupDescribe",
        _ => "request",
    }
}

/// Request body encoder; `flex` selects the compact encodings of flexible versions.
struct Enc {
    b: Vec<u8>,
    flex: bool,
}

impl Enc {
    fn new(flex: bool) -> Enc {
        Enc { b: vec![], flex }
    }
    fn i8(&mut self, v: i8) {
        self.b.push(v as u8);
    }
    fn i16(&mut self, v: i16) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.b.push(v as u8);
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.b.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.b.push(v as u8);
    }
    fn str(&mut self, s: &str) {
        if self.flex {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.i16(s.len().min(i16::MAX as usize) as i16);
        }
        self.b.extend_from_slice(s.as_bytes());
    }
    fn len(&mut self, n: usize) {
        if self.flex {
            self.uvarint(n as u64 + 1);
        } else {
            self.i32(n as i32);
        }
    }
    fn null_array(&mut self) {
        if self.flex {
            self.uvarint(0);
        } else {
            self.i32(-1);
        }
    }
    fn tags(&mut self) {
        if self.flex {
            self.uvarint(0);
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.b.extend_from_slice(b);
    }
}

/// Response decoder: every read is bounds-checked.
struct Dec<'a> {
    b: &'a [u8],
    at: usize,
    flex: bool,
    api: &'static str,
    /// Partitions decoded so far.
    parts: usize,
}

impl<'a> Dec<'a> {
    fn new(b: &'a [u8], flex: bool, api: &'static str) -> Dec<'a> {
        Dec {
            b,
            at: 0,
            flex,
            api,
            parts: 0,
        }
    }
    fn err(&self, what: &str) -> WireError {
        WireError::Decode {
            api: self.api,
            reason: format!("{what} at byte {}", self.at),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| self.err("truncated"))?;
        self.at += n;
        Ok(s)
    }
    fn i8(&mut self) -> Result<i8> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i64(&mut self) -> Result<i64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_be_bytes(a))
    }
    fn bool(&mut self) -> Result<bool> {
        Ok(self.i8()? != 0)
    }
    fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }
    /// Length of a string, bytes or array field; None when null.
    fn raw_len(&mut self, wide: bool) -> Result<Option<usize>> {
        let n: i64 = if self.flex {
            self.uvarint()? as i64 - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if n < 0 {
            return Ok(None);
        }
        // Every element takes at least one byte: a longer count is a lie.
        if n as usize > self.b.len().saturating_sub(self.at) {
            return Err(self.err("length beyond the response"));
        }
        Ok(Some(n as usize))
    }
    /// A topic name (at most [`MAX_TOPIC_NAME`] bytes).
    fn topic(&mut self) -> Result<String> {
        let s = self.str()?;
        if s.len() > MAX_TOPIC_NAME {
            return Err(self.err("topic name longer than 249 bytes"));
        }
        Ok(s)
    }
    /// Counts one more partition of this response (at most [`MAX_PARTITIONS`]).
    fn partition(&mut self) -> Result<()> {
        self.parts += 1;
        if self.parts > MAX_PARTITIONS {
            return Err(self.err("more than a million partitions"));
        }
        Ok(())
    }
    fn nstr(&mut self) -> Result<Option<String>> {
        match self.raw_len(false)? {
            None => Ok(None),
            Some(n) => Ok(Some(String::from_utf8_lossy(self.take(n)?).into_owned())),
        }
    }
    fn str(&mut self) -> Result<String> {
        Ok(self.nstr()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.raw_len(true)? {
            None => Ok(vec![]),
            Some(n) => Ok(self.take(n)?.to_vec()),
        }
    }
    /// Array length (null reads as empty).
    fn len(&mut self) -> Result<usize> {
        Ok(self.raw_len(true)?.unwrap_or(0))
    }
    fn tags(&mut self) -> Result<()> {
        if self.flex {
            let n = self.uvarint()?;
            for _ in 0..n {
                self.uvarint()?;
                let size = self.uvarint()? as usize;
                self.take(size)?;
            }
        }
        Ok(())
    }
}

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How connections are secured: the parsed configuration and, for TLS, the rustls client
/// built once per cluster.
struct Security {
    cfg: KafkaConfig,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Security {
    fn new(cfg: &KafkaConfig) -> Result<Security> {
        let tls = if cfg.protocol.tls() {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            match &cfg.ca_location {
                Some(path) => {
                    use rustls_pki_types::pem::PemObject;
                    let certs =
                        rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                            WireError::Tls {
                                addr: cfg.bootstrap.clone(),
                                reason: format!("ssl.ca.location {path}: {e}"),
                            }
                        })?;
                    for c in certs {
                        let c = c.map_err(|e| WireError::Tls {
                            addr: cfg.bootstrap.clone(),
                            reason: format!("ssl.ca.location {path}: {e}"),
                        })?;
                        let _ = roots.add(c);
                    }
                }
                None => {
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(c);
                    }
                }
            }
            if roots.is_empty() {
                return Err(WireError::Tls {
                    addr: cfg.bootstrap.clone(),
                    reason: "no CA certificates to trust".into(),
                });
            }
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| WireError::Tls {
                    addr: cfg.bootstrap.clone(),
                    reason: e.to_string(),
                })?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Security {
            cfg: cfg.clone(),
            tls,
        })
    }
}

/// One connection to one broker.
struct Conn {
    stream: Box<dyn Io>,
    addr: String,
    correlation: i32,
}

impl Conn {
    /// Connects, then TLS and SASL as configured; returns the connection and the number
    /// of Kafka requests the authentication took.
    async fn open(addr: &str, sec: &Security, timeout: Duration) -> Result<(Conn, u64)> {
        let tcp = Conn::tcp(addr, timeout).await?;
        let stream: Box<dyn Io> = match &sec.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let host = addr
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                    .unwrap_or(addr);
                let name =
                    rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                        WireError::Tls {
                            addr: addr.into(),
                            reason: format!("{host}: {e}"),
                        }
                    })?;
                match tokio::time::timeout(timeout, tls.connect(name, tcp)).await {
                    Ok(Ok(s)) => Box::new(s),
                    Ok(Err(e)) => {
                        return Err(WireError::Tls {
                            addr: addr.into(),
                            reason: e.to_string(),
                        });
                    }
                    Err(_) => {
                        return Err(WireError::Tls {
                            addr: addr.into(),
                            reason: format!(
                                "no TLS handshake within {:.1} s",
                                timeout.as_secs_f64()
                            ),
                        });
                    }
                }
            }
        };
        let mut conn = Conn {
            stream,
            addr: addr.into(),
            correlation: 0,
        };
        let n = if sec.cfg.protocol.sasl() {
            conn.sasl(&sec.cfg, timeout).await?
        } else {
            0
        };
        Ok((conn, n))
    }

    /// SaslHandshake v1, then SaslAuthenticate v1 round trips; returns the requests made.
    async fn sasl(&mut self, cfg: &KafkaConfig, timeout: Duration) -> Result<u64> {
        let mechanism = cfg.mechanism.as_str();
        let auth_err = |reason: String| WireError::Auth { mechanism, reason };
        let mut e = Enc::new(false);
        e.str(mechanism);
        let body = self.call(SASL_HANDSHAKE, 1, false, e.b, timeout).await?;
        let mut d = Dec::new(&body, false, "SaslHandshake");
        let err = d.i16()?;
        if err != 0 {
            let mut offered = vec![];
            for _ in 0..d.len()? {
                offered.push(d.str()?);
            }
            return Err(auth_err(format!(
                "the broker does not enable it here (it offers {})",
                offered.join(", ")
            )));
        }
        match cfg.mechanism {
            Mechanism::Plain => {
                let mut msg = vec![0u8];
                msg.extend_from_slice(cfg.username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(cfg.password.as_bytes());
                self.authenticate(mechanism, &msg, timeout).await?;
                Ok(2)
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let nonce = B64.encode(rand::random::<[u8; 24]>());
                let user = cfg.username.replace('=', "=3D").replace(',', "=2C");
                let first_bare = format!("n={user},r={nonce}");
                let server_first = self
                    .authenticate(mechanism, format!("n,,{first_bare}").as_bytes(), timeout)
                    .await?;
                let server_first = String::from_utf8_lossy(&server_first).into_owned();
                let (final_msg, server_sig) =
                    scram_final(cfg, &nonce, &first_bare, &server_first).map_err(auth_err)?;
                let server_final = self
                    .authenticate(mechanism, final_msg.as_bytes(), timeout)
                    .await?;
                let server_final = String::from_utf8_lossy(&server_final).into_owned();
                match server_final.strip_prefix("v=") {
                    Some(v) if B64.decode(v.trim()).ok().as_deref() == Some(&server_sig[..]) => {
                        Ok(3)
                    }
                    _ => Err(auth_err(format!(
                        "the broker's final message does not prove it knows the password ({server_final})"
                    ))),
                }
            }
        }
    }

    async fn authenticate(
        &mut self,
        mechanism: &'static str,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let mut e = Enc::new(false);
        e.bytes(msg);
        let body = self.call(SASL_AUTHENTICATE, 1, false, e.b, timeout).await?;
        let mut d = Dec::new(&body, false, "SaslAuthenticate");
        let err = d.i16()?;
        let message = d.nstr()?;
        let bytes = d.bytes()?;
        if err != 0 {
            return Err(WireError::Auth {
                mechanism,
                reason: message.unwrap_or_else(|| format!("error {err}")),
            });
        }
        Ok(bytes)
    }

    async fn tcp(addr: &str, timeout: Duration) -> Result<TcpStream> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(WireError::Connect {
                    addr: addr.into(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(WireError::Connect {
                    addr: addr.into(),
                    reason: format!("no TCP connection within {:.1} s", timeout.as_secs_f64()),
                });
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Sends one request and returns the response body after the header.
    async fn call(
        &mut self,
        key: i16,
        version: i16,
        flex: bool,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let api = api_name(key);
        self.correlation = self.correlation.wrapping_add(1);
        let mut h = Enc {
            b: Vec::with_capacity(body.len() + 40),
            flex: false,
        };
        h.i32(0); // size, filled below
        h.i16(key);
        h.i16(version);
        h.i32(self.correlation);
        h.str("lookout"); // client id: always a non-compact string
        if flex {
            h.uvarint(0); // request header v2 tagged fields
        }
        h.b.extend_from_slice(&body);
        let size = (h.b.len() - 4) as i32;
        h.b[..4].copy_from_slice(&size.to_be_bytes());
        let addr = self.addr.clone();
        let io = |e: std::io::Error| WireError::Io {
            api,
            addr: addr.clone(),
            reason: e.to_string(),
        };
        let exchange = async {
            self.stream.write_all(&h.b).await?;
            let n = self.stream.read_i32().await?;
            if n < 4 || n as usize > MAX_RESPONSE {
                return Err(std::io::Error::other(format!("response size {n}")));
            }
            let mut buf = vec![0u8; n as usize];
            self.stream.read_exact(&mut buf).await?;
            Ok(buf)
        };
        let buf = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(io(e)),
            Err(_) => {
                return Err(WireError::Timeout {
                    api,
                    addr: addr.clone(),
                    secs: timeout.as_secs_f64(),
                });
            }
        };
        let got = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if got != self.correlation {
            return Err(WireError::Decode {
                api,
                reason: format!("correlation id {got}, expected {}", self.correlation),
            });
        }
        // Flexible responses carry header tagged fields, except ApiVersions (always v0).
        let mut d = Dec {
            b: &buf,
            at: 4,
            flex: flex && key != API_VERSIONS,
            api,
            parts: 0,
        };
        d.tags()?;
        let at = d.at;
        Ok(buf[at..].to_vec())
    }
}

/// SCRAM's client-final message and the server signature to expect (RFC 5802 §3).
fn scram_final(
    cfg: &KafkaConfig,
    nonce: &str,
    first_bare: &str,
    server_first: &str,
) -> std::result::Result<(String, Vec<u8>), String> {
    let mut r = None;
    let mut salt = None;
    let mut iterations = None;
    for part in server_first.split(',') {
        if let Some(v) = part.strip_prefix("r=") {
            r = Some(v);
        } else if let Some(v) = part.strip_prefix("s=") {
            salt = B64.decode(v).ok();
        } else if let Some(v) = part.strip_prefix("i=") {
            iterations = v.parse::<u32>().ok();
        } else if let Some(v) = part.strip_prefix("e=") {
            return Err(format!("the broker refused: {v}"));
        }
    }
    let (Some(r), Some(salt), Some(i)) = (r, salt, iterations) else {
        return Err(format!("unexpected server-first message {server_first:?}"));
    };
    if !r.starts_with(nonce) || r.len() == nonce.len() {
        return Err("the broker's nonce does not extend ours".into());
    }
    if !(4096..=1_000_000).contains(&i) {
        return Err(format!("{i} iterations is outside 4096–1,000,000"));
    }
    let without_proof = format!("c=biws,r={r}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let pw = cfg.password.as_bytes();
    let (proof, server_sig) = match cfg.mechanism {
        Mechanism::ScramSha512 => scram_proof_sha512(pw, &salt, i, &auth_message),
        _ => scram_proof_sha256(pw, &salt, i, &auth_message),
    };
    Ok((
        format!("{without_proof},p={}", B64.encode(proof)),
        server_sig,
    ))
}

/// A ConsumerGroupDescribe assignment: [topic id, topic name, [partition]].
fn assignment(d: &mut Dec) -> Result<Vec<Tp>> {
    let mut parts = vec![];
    for _ in 0..d.len()? {
        d.take(16)?; // topic id (uuid)
        let topic = d.topic()?;
        for _ in 0..d.len()? {
            d.partition()?;
            parts.push((topic.clone(), d.i32()?));
        }
        d.tags()?;
    }
    d.tags()?;
    Ok(parts)
}

/// `stable` → `Stable`, as the classic protocol spells states.
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `scram_proof_*`: (client proof, server signature) for one SCRAM exchange with one hash
/// (a macro: the two differ only in the hash type).
macro_rules! scram_proof {
    ($name:ident, $hash:ty) => {
        fn $name(password: &[u8], salt: &[u8], iterations: u32, auth: &str) -> (Vec<u8>, Vec<u8>) {
            use sha2::Digest;
            let mut salted = vec![0u8; <$hash>::output_size()];
            pbkdf2::pbkdf2_hmac::<$hash>(password, salt, iterations, &mut salted);
            let mac = |key: &[u8], data: &[u8]| -> Vec<u8> {
                match <Hmac<$hash> as Mac>::new_from_slice(key) {
                    Ok(mut m) => {
                        m.update(data);
                        m.finalize().into_bytes().to_vec()
                    }
                    // HMAC takes keys of any length: not reached.
                    Err(_) => vec![],
                }
            };
            let client_key = mac(&salted, b"Client Key");
            let stored_key = <$hash>::digest(&client_key).to_vec();
            let client_sig = mac(&stored_key, auth.as_bytes());
            let proof = client_key
                .iter()
                .zip(&client_sig)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_key = mac(&salted, b"Server Key");
            (proof, mac(&server_key, auth.as_bytes()))
        }
    };
}
scram_proof!(scram_proof_sha256, sha2::Sha256);
scram_proof!(scram_proof_sha512, sha2::Sha512);

#[derive(Debug, Clone)]
pub struct Broker {
    pub id: i32,
    pub addr: String,
}

#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub brokers: Vec<Broker>,
    /// topic → leader node per partition (index = partition id; -1: no leader).
    pub topics: HashMap<String, Vec<i32>>,
}

#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub name: String,
    pub protocol_type: String,
}

#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub id: String,
    pub client_id: String,
    pub host: String,
    /// The partitions assigned to it.
    pub parts: Vec<Tp>,
}

#[derive(Debug, Clone)]
pub struct DescribedGroup {
    pub name: String,
    pub error: i16,
    pub state: String,
    pub protocol_type: String,
    /// The assignor (`range`, `uniform`, …).
    pub protocol: String,
    pub members: Vec<DescribedMember>,
    /// The group epoch (consumer protocol only).
    pub generation: Option<i32>,
}

/// Parses a ConsumerProtocol assignment (version, [topic, [partition]], user data).
pub fn parse_assignment(b: &[u8]) -> Vec<Tp> {
    // Malformed, a topic name longer than Kafka allows or more than a million partitions:
    // nothing (the member's assignment is unknown). The classic encoding's strings and
    // arrays are the non-flexible protocol's, so the response decoder reads it.
    let mut d = Dec::new(b, false, "ConsumerProtocolAssignment");
    let mut parse = || -> Result<Vec<Tp>> {
        d.i16()?; // version
        let mut v = vec![];
        for _ in 0..d.len()? {
            let topic = d.topic()?;
            for _ in 0..d.len()? {
                d.partition()?;
                v.push((topic.clone(), d.i32()?));
            }
        }
        Ok(v)
    };
    parse().unwrap_or_default()
}

/// Committed offsets of one group (only partitions with a commit), or its error code.
pub type GroupOffsets = std::result::Result<Vec<(Tp, i64)>, i16>;

/// Every address an advertised broker resolves to must be allowed (when a list is set).
async fn allowed_broker(
    allowed: &[crate::net::Network],
    id: i32,
    addr: &str,
    timeout: Duration,
) -> Result<()> {
    if allowed.is_empty() {
        return Ok(());
    }
    let resolved: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host(addr)).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                return Err(WireError::Connect {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(WireError::Connect {
                    addr: addr.to_string(),
                    reason: "the name did not resolve in time".into(),
                });
            }
        };
    match resolved
        .iter()
        .map(|s| s.ip())
        .find(|ip| !crate::net::allowed(allowed, *ip))
    {
        Some(ip) => Err(WireError::NotAllowed {
            broker: id,
            addr: addr.to_string(),
            ip: crate::net::canonical(ip).to_string(),
        }),
        None => Ok(()),
    }
}

/// A client for one cluster: one connection per broker, opened on first use.
pub struct Cluster {
    timeout: Duration,
    security: Security,
    /// Where advertised brokers may be (empty: anywhere).
    allowed: Vec<crate::net::Network>,
    bootstrap: Conn,
    bootstrap_id: Option<i32>,
    conns: HashMap<i32, Conn>,
    addrs: HashMap<i32, String>,
    versions: HashMap<i16, (i16, i16)>,
    /// Kafka requests sent so far (ApiVersions included).
    pub requests: u64,
}

impl Cluster {
    /// Connects to the first bootstrap server that answers (with TLS and SASL as
    /// configured) and learns the API versions.
    pub async fn connect(cfg: &KafkaConfig, timeout: Duration) -> Result<Cluster> {
        let security = Security::new(cfg)?;
        let mut last = WireError::Unsupported("no bootstrap servers".into());
        let servers: Vec<String> = cfg.bootstrap.split(',').map(str::to_string).collect();
        for addr in &servers {
            match Conn::open(addr, &security, timeout).await {
                // Wrong credentials are wrong on every broker.
                Err(e @ WireError::Auth { .. }) => return Err(e),
                Err(e) => last = e,
                Ok((conn, auth_requests)) => {
                    let mut c = Cluster {
                        timeout,
                        security,
                        allowed: cfg.allowed.clone(),
                        bootstrap: conn,
                        bootstrap_id: None,
                        conns: HashMap::new(),
                        addrs: HashMap::new(),
                        versions: HashMap::new(),
                        requests: auth_requests,
                    };
                    c.api_versions().await?;
                    return Ok(c);
                }
            }
        }
        Err(last)
    }

    /// The bootstrap server that answered.
    pub fn connected_to(&self) -> String {
        self.bootstrap.addr.clone()
    }

    async fn api_versions(&mut self) -> Result<()> {
        let body = self
            .bootstrap
            .call(API_VERSIONS, 0, false, vec![], self.timeout)
            .await?;
        self.requests += 1;
        let mut d = Dec::new(&body, false, "ApiVersions");
        let err = d.i16()?;
        if err != 0 {
            return Err(WireError::Broker {
                api: "ApiVersions",
                code: err,
            });
        }
        for _ in 0..d.len()? {
            let (k, min, max) = (d.i16()?, d.i16()?, d.i16()?);
            self.versions.insert(k, (min, max));
        }
        Ok(())
    }

    /// The highest version both sides speak, within `want` (inclusive).
    fn version(&self, key: i16, want: (i16, i16)) -> Result<i16> {
        let (min, max) = self.versions.get(&key).copied().ok_or_else(|| {
            WireError::Unsupported(format!("the broker does not offer {}", api_name(key)))
        })?;
        let v = max.min(want.1);
        if v < want.0 || v < min {
            return Err(WireError::Unsupported(format!(
                "{} v{}–v{} needed, the broker offers v{min}–v{max} (Kafka 3.0 or newer is needed)",
                api_name(key),
                want.0,
                want.1
            )));
        }
        Ok(v)
    }

    async fn call(
        &mut self,
        node: Option<i32>,
        key: i16,
        v: i16,
        flex: bool,
        e: Enc,
    ) -> Result<Vec<u8>> {
        let timeout = self.timeout;
        self.requests += 1;
        let conn = match node {
            None => &mut self.bootstrap,
            Some(id) if Some(id) == self.bootstrap_id => &mut self.bootstrap,
            Some(id) => {
                if !self.conns.contains_key(&id) {
                    let addr = self.addrs.get(&id).cloned().ok_or_else(|| {
                        WireError::Unsupported(format!("broker {id} is not in the metadata"))
                    })?;
                    allowed_broker(&self.allowed, id, &addr, timeout).await?;
                    let (c, n) = Conn::open(&addr, &self.security, timeout).await?;
                    self.requests += n;
                    self.conns.insert(id, c);
                }
                match self.conns.get_mut(&id) {
                    Some(c) => c,
                    None => return Err(WireError::Unsupported(format!("broker {id}"))),
                }
            }
        };
        let r = conn.call(key, v, flex, e.b, timeout).await;
        if r.is_err()
            && let Some(id) = node
        {
            // A broken connection is not reused.
            self.conns.remove(&id);
        }
        r
    }

    /// Brokers and each topic's partition leaders (Metadata v4–v8).
    pub async fn metadata(&mut self) -> Result<Metadata> {
        let v = self.version(METADATA, (4, 8))?;
        let mut e = Enc::new(false);
        e.null_array(); // all topics
        e.bool(false); // never create topics
        if v >= 8 {
            e.bool(false);
            e.bool(false);
        }
        let body = self.call(None, METADATA, v, false, e).await?;
        let md = decode_metadata(&body, v)?;
        self.addrs = md.brokers.iter().map(|b| (b.id, b.addr.clone())).collect();
        // The bootstrap connection doubles as the connection to the broker it reached.
        let boot = self.bootstrap.addr.clone();
        self.bootstrap_id = md.brokers.iter().find(|b| b.addr == boot).map(|b| b.id);
        Ok(md)
    }

    /// The groups one broker coordinates (ListGroups v0–v4).
    pub async fn list_groups(&mut self, node: i32) -> Result<Vec<ListedGroup>> {
        let v = self.version(LIST_GROUPS, (0, 4))?;
        let flex = v >= 3;
        let mut e = Enc::new(flex);
        if v >= 4 {
            e.len(0); // no state filter
        }
        e.tags();
        let body = self.call(Some(node), LIST_GROUPS, v, flex, e).await?;
        decode_list_groups(&body, v)
    }

    /// The coordinator of each group (FindCoordinator v4: many keys per request).
    /// Groups whose coordinator is unknown right now are left out.
    pub async fn coordinators(&mut self, groups: &[String]) -> Result<HashMap<String, i32>> {
        let v = self.version(FIND_COORDINATOR, (4, 4))?;
        let mut out = HashMap::new();
        for chunk in groups.chunks(GROUP_BATCH) {
            let mut e = Enc::new(true);
            e.i8(0); // group coordinators
            e.len(chunk.len());
            for g in chunk {
                e.str(g);
            }
            e.tags();
            let body = self.call(None, FIND_COORDINATOR, v, true, e).await?;
            out.extend(decode_find_coordinator(&body)?);
        }
        Ok(out)
    }

    /// Describes groups coordinated by `node` (DescribeGroups v0–v5, one request per
    /// [`GROUP_BATCH`] groups).
    pub async fn describe_groups(
        &mut self,
        node: i32,
        groups: &[String],
    ) -> Result<Vec<DescribedGroup>> {
        let v = self.version(DESCRIBE_GROUPS, (0, 5))?;
        let flex = v >= 5;
        let mut out = vec![];
        for chunk in groups.chunks(GROUP_BATCH) {
            let mut e = Enc::new(flex);
            e.len(chunk.len());
            for g in chunk {
                e.str(g);
            }
            if v >= 3 {
                e.bool(false);
            }
            e.tags();
            let body = self.call(Some(node), DESCRIBE_GROUPS, v, flex, e).await?;
            out.extend(decode_describe_groups(&body, v)?);
        }
        Ok(out)
    }

    /// True when the broker speaks ConsumerGroupDescribe (Kafka 3.7+; the consumer
    /// protocol of KIP-848).
    pub fn supports_consumer_group_describe(&self) -> bool {
        self.version(CONSUMER_GROUP_DESCRIBE, (0, 1)).is_ok()
    }

    /// Describes groups on the consumer protocol (KIP-848) coordinated by `node`:
    /// ConsumerGroupDescribe v0–v1, one request per [`GROUP_BATCH`] groups. States are
    /// given the classic capitalisation (`stable` → `Stable`).
    pub async fn consumer_group_describe(
        &mut self,
        node: i32,
        groups: &[String],
    ) -> Result<Vec<DescribedGroup>> {
        let v = self.version(CONSUMER_GROUP_DESCRIBE, (0, 1))?;
        let mut out = vec![];
        for chunk in groups.chunks(GROUP_BATCH) {
            let mut e = Enc::new(true);
            e.len(chunk.len());
            for g in chunk {
                e.str(g);
            }
            e.bool(false);
            e.tags();
            let body = self
                .call(Some(node), CONSUMER_GROUP_DESCRIBE, v, true, e)
                .await?;
            out.extend(decode_consumer_group_describe(&body, v)?);
        }
        Ok(out)
    }

    /// The committed offsets of many groups coordinated by `node`: OffsetFetch v8 with all
    /// topics, one request per [`GROUP_BATCH`] groups.
    pub async fn offset_fetch(
        &mut self,
        node: i32,
        groups: &[String],
    ) -> Result<HashMap<String, GroupOffsets>> {
        let v = self.version(OFFSET_FETCH, (8, 8))?;
        let mut out = HashMap::new();
        for chunk in groups.chunks(GROUP_BATCH) {
            let mut e = Enc::new(true);
            e.len(chunk.len());
            for g in chunk {
                e.str(g);
                e.null_array(); // every topic the group committed to
                e.tags();
            }
            // No require_stable: a pending transactional commit would turn the answer
            // into UNSTABLE_OFFSET_COMMIT; the last stable commit is what is wanted.
            e.bool(false);
            e.tags();
            let body = self.call(Some(node), OFFSET_FETCH, v, true, e).await?;
            out.extend(decode_offset_fetch(&body)?);
        }
        Ok(out)
    }

    /// Log offsets of partitions led by `leader` at `timestamp` (-2: log start, -1: log
    /// end) in one ListOffsets request (v1–v4, read-committed, so the end is the last stable
    /// offset). Partitions the broker does not lead are left out.
    pub async fn list_offsets(
        &mut self,
        leader: i32,
        parts: &[Tp],
        timestamp: i64,
    ) -> Result<HashMap<Tp, i64>> {
        let v = self.version(LIST_OFFSETS, (1, 4))?;
        let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
        for (t, p) in parts {
            by_topic.entry(t).or_default().push(*p);
        }
        let mut e = Enc::new(false);
        e.i32(-1); // replica id: a client
        if v >= 2 {
            e.i8(1); // READ_COMMITTED
        }
        e.len(by_topic.len());
        for (t, ps) in &by_topic {
            e.str(t);
            e.len(ps.len());
            for p in ps {
                e.i32(*p);
                if v >= 4 {
                    e.i32(-1); // current leader epoch: unknown
                }
                e.i64(timestamp);
            }
        }
        let body = self.call(Some(leader), LIST_OFFSETS, v, false, e).await?;
        decode_list_offsets(&body, v)
    }
}

/// A Metadata response (v4–v8).
fn decode_metadata(body: &[u8], v: i16) -> Result<Metadata> {
    let mut d = Dec::new(body, false, "Metadata");
    d.i32()?; // throttle
    let mut md = Metadata::default();
    for _ in 0..d.len()? {
        let id = d.i32()?;
        let host = d.str()?;
        let port = d.i32()?;
        d.nstr()?; // rack
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        md.brokers.push(Broker { id, addr });
    }
    d.nstr()?; // cluster id
    d.i32()?; // controller
    for _ in 0..d.len()? {
        let _err = d.i16()?;
        let name = d.topic()?;
        d.bool()?; // internal
        let mut leaders = vec![];
        let count = d.len()?;
        for _ in 0..count {
            d.partition()?;
            d.i16()?;
            let p = d.i32()?;
            let leader = d.i32()?;
            if v >= 7 {
                d.i32()?; // leader epoch
            }
            for _ in 0..d.len()? {
                d.i32()?;
            }
            for _ in 0..d.len()? {
                d.i32()?;
            }
            if v >= 5 {
                for _ in 0..d.len()? {
                    d.i32()?;
                }
            }
            // Partition ids run 0..count: a larger one is not allocated for.
            if p >= 0 && (p as usize) < count {
                if leaders.len() <= p as usize {
                    leaders.resize(p as usize + 1, -1);
                }
                leaders[p as usize] = leader;
            }
        }
        if v >= 8 {
            d.i32()?; // topic authorized operations
        }
        md.topics.insert(name, leaders);
    }
    Ok(md)
}

/// A ListGroups response (v0–v4).
fn decode_list_groups(body: &[u8], v: i16) -> Result<Vec<ListedGroup>> {
    let flex = v >= 3;
    let mut d = Dec::new(body, flex, "ListGroups");
    if v >= 1 {
        d.i32()?;
    }
    let err = d.i16()?;
    if err != 0 {
        return Err(WireError::Broker {
            api: "ListGroups",
            code: err,
        });
    }
    let mut out = vec![];
    for _ in 0..d.len()? {
        let name = d.str()?;
        let protocol_type = d.str()?;
        if v >= 4 {
            d.str()?; // state (DescribeGroups gives it too)
        }
        d.tags()?;
        out.push(ListedGroup {
            name,
            protocol_type,
        });
    }
    Ok(out)
}

/// A FindCoordinator v4 response: each key's coordinator (keys in error left out).
fn decode_find_coordinator(body: &[u8]) -> Result<Vec<(String, i32)>> {
    let mut out = vec![];
    let mut d = Dec::new(body, true, "FindCoordinator");
    d.i32()?;
    for _ in 0..d.len()? {
        let key = d.str()?;
        let node = d.i32()?;
        d.str()?; // host
        d.i32()?; // port
        let err = d.i16()?;
        d.nstr()?;
        d.tags()?;
        if err == 0 {
            out.push((key, node));
        }
    }
    d.tags()?;
    Ok(out)
}

/// A DescribeGroups response (v0–v5).
fn decode_describe_groups(body: &[u8], v: i16) -> Result<Vec<DescribedGroup>> {
    let mut out = vec![];
    let flex = v >= 5;
    let mut d = Dec::new(body, flex, "DescribeGroups");
    if v >= 1 {
        d.i32()?;
    }
    for _ in 0..d.len()? {
        let error = d.i16()?;
        let name = d.str()?;
        let state = d.str()?;
        let protocol_type = d.str()?;
        let protocol = d.str()?;
        let mut members = vec![];
        for _ in 0..d.len()? {
            let id = d.str()?;
            if v >= 4 {
                d.nstr()?; // group instance id
            }
            let client_id = d.str()?;
            let host = d.str()?;
            d.bytes()?; // subscription metadata
            let assignment = d.bytes()?;
            d.tags()?;
            members.push(DescribedMember {
                id,
                client_id,
                host,
                parts: parse_assignment(&assignment),
            });
        }
        if v >= 3 {
            d.i32()?;
        }
        d.tags()?;
        out.push(DescribedGroup {
            name,
            error,
            state,
            protocol_type,
            protocol,
            members,
            generation: None,
        });
    }
    Ok(out)
}

/// A ConsumerGroupDescribe response (v0–v1).
fn decode_consumer_group_describe(body: &[u8], v: i16) -> Result<Vec<DescribedGroup>> {
    let mut out = vec![];
    let mut d = Dec::new(body, true, "ConsumerGroupDescribe");
    d.i32()?;
    for _ in 0..d.len()? {
        let error = d.i16()?;
        d.nstr()?; // error message
        let name = d.str()?;
        let state = capitalised(&d.str()?);
        let epoch = d.i32()?;
        d.i32()?; // assignment epoch
        let assignor = d.str()?;
        let mut members = vec![];
        for _ in 0..d.len()? {
            let id = d.str()?;
            d.nstr()?; // instance id
            d.nstr()?; // rack
            d.i32()?; // member epoch
            let client_id = d.str()?;
            let host = d.str()?;
            for _ in 0..d.len()? {
                d.str()?; // subscribed topic names
            }
            d.nstr()?; // subscribed regex
            let parts = assignment(&mut d)?;
            assignment(&mut d)?; // target assignment
            if v >= 1 {
                d.i8()?; // member type
            }
            d.tags()?;
            members.push(DescribedMember {
                id,
                client_id,
                host,
                parts,
            });
        }
        d.i32()?; // authorized operations
        d.tags()?;
        out.push(DescribedGroup {
            name,
            error,
            state,
            protocol_type: "consumer".into(),
            protocol: assignor,
            members,
            generation: Some(epoch),
        });
    }
    d.tags()?;
    Ok(out)
}

/// An OffsetFetch v8 response: each group's committed offsets, or its error code.
fn decode_offset_fetch(body: &[u8]) -> Result<Vec<(String, GroupOffsets)>> {
    let mut out = vec![];
    let mut d = Dec::new(body, true, "OffsetFetch");
    d.i32()?;
    for _ in 0..d.len()? {
        let name = d.str()?;
        let mut offsets = vec![];
        for _ in 0..d.len()? {
            let topic = d.topic()?;
            for _ in 0..d.len()? {
                d.partition()?;
                let p = d.i32()?;
                let off = d.i64()?;
                d.i32()?; // leader epoch
                d.nstr()?; // metadata
                let err = d.i16()?;
                d.tags()?;
                if err == 0 && off >= 0 {
                    offsets.push(((topic.clone(), p), off));
                }
            }
            d.tags()?;
        }
        let err = d.i16()?;
        d.tags()?;
        out.push((name, if err == 0 { Ok(offsets) } else { Err(err) }));
    }
    d.tags()?;
    Ok(out)
}

/// A ListOffsets response (v1–v4): each partition's offset (partitions in error left out).
fn decode_list_offsets(body: &[u8], v: i16) -> Result<HashMap<Tp, i64>> {
    let mut d = Dec::new(body, false, "ListOffsets");
    if v >= 2 {
        d.i32()?;
    }
    let mut out = HashMap::new();
    for _ in 0..d.len()? {
        let topic = d.topic()?;
        for _ in 0..d.len()? {
            d.partition()?;
            let p = d.i32()?;
            let err = d.i16()?;
            d.i64()?; // timestamp
            let off = d.i64()?;
            if v >= 4 {
                d.i32()?;
            }
            if err == 0 && off >= 0 {
                out.insert((topic.clone(), p), off);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // `fuzz::` in the name: the TEST command runs these again with more cases.
    proptest! {
        /// A hostile broker's response bytes through every decoding primitive, in any
        /// order: each read answers or fails with a decode error — never panics, never reads
        /// past the end, never allocates beyond the bytes (lengths are checked first).
        #[test]
        fn fuzz_the_decoder_survives_any_response(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            flex in any::<bool>(),
            ops in prop::collection::vec(0u8..12, 0..40),
        ) {
            let mut d = Dec::new(&bytes, flex, "Fuzz");
            for op in ops {
                let r = match op {
                    0 => d.i8().map(drop),
                    1 => d.i16().map(drop),
                    2 => d.i32().map(drop),
                    3 => d.i64().map(drop),
                    4 => d.bool().map(drop),
                    5 => d.uvarint().map(drop),
                    6 => d.nstr().map(drop),
                    7 => d.str().map(drop),
                    8 => d.bytes().map(|b| assert!(b.len() <= bytes.len())),
                    9 => d.len().map(drop),
                    10 => d.tags(),
                    _ => assignment(&mut d).map(|a| assert!(a.len() <= bytes.len() / 4)),
                };
                prop_assert!(d.at <= bytes.len());
                if r.is_err() {
                    break;
                }
            }
        }

        /// Every response decoder over a hostile broker's bytes — random, or a stream of
        /// well-formed fields (small counts, short strings, tagged fields) in random order,
        /// which reaches deeper — at every version Lookout asks for: a value or a decode
        /// error, never a panic, and never more items than the bytes could hold.
        #[test]
        fn fuzz_every_response_decoder(
            raw in prop::collection::vec(any::<u8>(), 0..256),
            fields in prop::collection::vec((0u8..8, 0i64..4), 0..80),
            v in 0i16..9,
        ) {
            for flex in [false, true] {
                let mut e = Enc::new(flex);
                for (op, n) in &fields {
                    match op {
                        0 => e.i16(*n as i16),
                        1 => e.i32(*n as i32),
                        2 => e.i64(*n),
                        3 => e.len(*n as usize),
                        4 => e.str(&"t".repeat(*n as usize)),
                        5 => e.tags(),
                        6 => e.bool(*n > 1),
                        _ => e.bytes(&[0, 0, 0, 0, 0, 1][..*n as usize]),
                    }
                }
                for body in [&raw[..], &e.b[..]] {
                    let most = body.len();
                    if let Ok(m) = decode_metadata(body, v) {
                        prop_assert!(m.brokers.len() <= most && m.topics.len() <= most);
                    }
                    if let Ok(g) = decode_list_groups(body, v) {
                        prop_assert!(g.len() <= most);
                    }
                    if let Ok(c) = decode_find_coordinator(body) {
                        prop_assert!(c.len() <= most);
                    }
                    for g in [decode_describe_groups(body, v), decode_consumer_group_describe(body, v)]
                        .into_iter()
                        .flatten()
                    {
                        prop_assert!(g.len() <= most);
                        prop_assert!(g.iter().map(|g| g.members.len()).sum::<usize>() <= most);
                    }
                    if let Ok(o) = decode_offset_fetch(body) {
                        prop_assert!(o.len() <= most);
                    }
                    if let Ok(o) = decode_list_offsets(body, v) {
                        prop_assert!(o.len() <= most);
                    }
                }
            }
        }

        /// A consumer's assignment (member metadata a broker relays) of any bytes: at most
        /// one partition per four bytes, and names no longer than Kafka allows, so the
        /// decoded form is never more than ~64 times the bytes; never a panic.
        #[test]
        fn fuzz_assignments_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let parts = parse_assignment(&bytes);
            prop_assert!(parts.len() <= bytes.len() / 4);
            prop_assert!(parts.iter().all(|(t, _)| t.len() <= MAX_TOPIC_NAME));
        }
    }

    /// A hostile assignment: one 30,000-byte topic name over 10,000 four-byte partitions
    /// (40 KB on the wire, 300 MB if every partition copied the name) is refused, in both
    /// the classic and the consumer-protocol encodings; a 249-byte name is still read.
    #[test]
    fn a_long_topic_name_cannot_multiply_memory() {
        let classic = |name_len: usize| {
            let mut b = vec![0, 0];
            b.extend(1i32.to_be_bytes());
            b.extend((name_len as i16).to_be_bytes());
            b.extend(std::iter::repeat_n(b'a', name_len));
            b.extend(10_000i32.to_be_bytes());
            for p in 0..10_000i32 {
                b.extend(p.to_be_bytes());
            }
            b
        };
        assert!(parse_assignment(&classic(30_000)).is_empty());
        assert_eq!(parse_assignment(&classic(249)).len(), 10_000);
        let flex = |name_len: usize| {
            let mut e = Enc::new(true);
            e.len(1);
            e.b.extend([0u8; 16]);
            e.str(&"a".repeat(name_len));
            e.len(10_000);
            for p in 0..10_000 {
                e.i32(p);
            }
            e.tags();
            e.tags();
            e.b
        };
        let b = flex(30_000);
        let mut d = Dec::new(&b, true, "t");
        assert!(assignment(&mut d).is_err());
        let b = flex(249);
        let mut d = Dec::new(&b, true, "t");
        assert_eq!(assignment(&mut d).map(|a| a.len()).ok(), Some(10_000));
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64] {
            let mut e = Enc::new(true);
            e.uvarint(v);
            let mut d = Dec::new(&e.b, true, "t");
            assert_eq!(d.uvarint().ok(), Some(v));
            assert_eq!(d.at, e.b.len());
        }
    }

    #[test]
    fn strings_and_arrays_in_both_encodings() {
        for flex in [false, true] {
            let mut e = Enc::new(flex);
            e.str("orders");
            e.len(2);
            e.i32(7);
            e.i32(9);
            e.null_array();
            e.tags();
            let mut d = Dec {
                b: &e.b,
                at: 0,
                flex,
                api: "t",
                parts: 0,
            };
            assert_eq!(d.str().ok().as_deref(), Some("orders"));
            assert_eq!(d.len().ok(), Some(2));
            assert_eq!((d.i32().ok(), d.i32().ok()), (Some(7), Some(9)));
            assert_eq!(d.len().ok(), Some(0), "null array reads as empty");
            assert!(d.tags().is_ok());
            assert_eq!(d.at, e.b.len());
        }
    }

    /// RFC 7677 §3's SCRAM-SHA-256 example: user "user", password "pencil".
    #[test]
    fn scram_sha_256_matches_the_rfc_example() {
        let cfg = KafkaConfig::parse(
            "k:9092?security.protocol=SASL_PLAINTEXT&sasl.mechanism=SCRAM-SHA-256&sasl.username=user&sasl.password=pencil",
            true,
        )
        .unwrap();
        let (final_msg, server_sig) = scram_final(
            &cfg,
            "rOprNGfwEbeRWgbNEkqO",
            "n=user,r=rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        )
        .unwrap();
        assert_eq!(
            final_msg,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            B64.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // A nonce the broker did not extend, or too few iterations, is refused.
        assert!(scram_final(&cfg, "abc", "n=user,r=abc", "r=xyz1,s=AAAA,i=4096").is_err());
        assert!(scram_final(&cfg, "abc", "n=user,r=abc", "r=abc1,s=AAAA,i=1").is_err());
    }

    /// A server that is not a Kafka broker (a lying size, garbage, silence) is an error
    /// within the deadline — never a panic, a hang or a 2 GB allocation.
    #[tokio::test]
    async fn a_peer_that_is_not_kafka_is_an_error_in_time() {
        use tokio::io::AsyncWriteExt;
        let answers: [&[u8]; 4] = [
            &[0x7f, 0xff, 0xff, 0xff],             // a 2 GB response
            &[0, 0, 0, 2, 0, 0],                   // shorter than a correlation id
            &[0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0], // someone else's correlation id
            b"",                                   // silence
        ];
        for answer in answers {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let reply = answer.to_vec();
            tokio::spawn(async move {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 256];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&reply).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let cfg = KafkaConfig::parse(&addr, false).unwrap();
            let started = std::time::Instant::now();
            let r = Cluster::connect(&cfg, Duration::from_millis(500)).await;
            assert!(r.is_err(), "{answer:?}");
            assert!(started.elapsed() < Duration::from_secs(2), "{answer:?}");
        }
    }

    #[test]
    fn lies_and_truncation_are_errors_not_panics() {
        // An array claiming two billion elements in a 6-byte answer.
        let b = [0x7f, 0xff, 0xff, 0xff, 0, 0];
        let mut d = Dec::new(&b, false, "t");
        assert!(d.len().is_err());
        // A string cut short.
        let b = [0, 10, b'a', b'b'];
        let mut d = Dec::new(&b, false, "t");
        assert!(d.str().is_err());
        // A varint that never ends.
        let b = [0xff; 12];
        let mut d = Dec::new(&b, true, "t");
        assert!(d.uvarint().is_err());
        // Tagged fields whose size runs past the end.
        let b = [1, 0, 50];
        let mut d = Dec::new(&b, true, "t");
        assert!(d.tags().is_err());
    }
}
