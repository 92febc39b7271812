//! What Lookout may reach when it connects to a target. Admins choose target hosts, and the
//! server connects to them (and to the brokers a Kafka cluster advertises) from inside the
//! network it runs in; some connection options name files on the Lookout server. Both are
//! bounded here:
//! - `LOOKOUT_TARGET_NETWORKS` (optional): every address a target's hosts resolve to must lie
//!   in one of these networks, checked when connecting (DNS answers change).
//! - `LOOKOUT_TARGET_FILES_DIR` (optional): the only directory from which connection options
//!   may read files (Kafka `ssl.ca.location`, PostgreSQL `sslrootcert`/`sslcert`/`sslkey`);
//!   unset, such options are refused. Checked when saving (the path as written) and when
//!   connecting (the real path, so a symlink cannot lead out).

use crate::secrets::SecretBox;
use crate::targets::TargetKind;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// An IPv4 or IPv6 network (`addr/prefix`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0–{max}"))?,
        };
        Ok(Network { addr, prefix })
    }
}

/// Parses a comma-separated list of networks.
pub fn parse_networks(s: &str) -> Result<Vec<Network>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Network::from_str)
        .collect()
}

/// The limits on where targets may lead (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub networks: Vec<Network>,
    pub files_dir: Option<PathBuf>,
}

/// Everything needed to connect to targets: the key that opens their secrets and the limits
/// on where they may lead.
#[derive(Clone, Default)]
pub struct Access {
    pub key: Option<SecretBox>,
    pub reach: Reach,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("key", &self.key.as_ref().map(|_| "(set)"))
            .field("reach", &self.reach)
            .finish()
    }
}

/// How long resolving a target's host may take when checking the allow-list.
const RESOLVE_LIMIT: Duration = Duration::from_secs(5);

/// The connection options of `conn` that name a file on the Lookout server.
pub fn file_options(kind: TargetKind, conn: &str) -> Vec<(String, String)> {
    let query = match kind {
        TargetKind::Kafka => conn.split_once('?').map(|(_, q)| q.to_string()),
        TargetKind::Postgres => url::Url::parse(conn.trim())
            .ok()
            .and_then(|u| u.query().map(str::to_string)),
        _ => None,
    };
    let keys: &[&str] = match kind {
        TargetKind::Kafka => &["ssl.ca.location"],
        TargetKind::Postgres => &["sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir"],
        _ => &[],
    };
    let Some(q) = query else {
        return vec![];
    };
    url::form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| keys.iter().any(|w| k.eq_ignore_ascii_case(w)))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The hosts and ports `conn` connects to first (Kafka: the bootstrap servers).
pub fn hosts(kind: TargetKind, conn: &str) -> Vec<(String, u16)> {
    match kind {
        TargetKind::Kafka => conn
            .split('?')
            .next()
            .unwrap_or_default()
            .split(',')
            .filter_map(|hp| {
                let hp = hp.trim();
                let (h, p) = hp.rsplit_once(':')?;
                Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?))
            })
            .collect(),
        _ => match url::Url::parse(conn.trim()) {
            Ok(u) => {
                let default = match u.scheme() {
                    "redis" | "rediss" => 6379,
                    "postgres" | "postgresql" => 5432,
                    _ => u.port_or_known_default().unwrap_or(0),
                };
                u.host_str()
                    .map(|h| {
                        (
                            h.trim_matches(['[', ']']).to_string(),
                            u.port().unwrap_or(default),
                        )
                    })
                    .into_iter()
                    .collect()
            }
            Err(_) => vec![],
        },
    }
}

fn lexically_inside(dir: &Path, path: &Path) -> bool {
    path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        && path.starts_with(dir)
}

impl Reach {
    /// File options as written (when saving a target): inside the configured directory.
    pub fn check_files(&self, kind: TargetKind, conn: &str) -> Result<(), String> {
        for (k, v) in file_options(kind, conn) {
            let Some(dir) = &self.files_dir else {
                return Err(format!(
                    "`{k}` reads a file on the Lookout server: set LOOKOUT_TARGET_FILES_DIR to the directory that holds such files"
                ));
            };
            if !lexically_inside(dir, Path::new(&v)) {
                return Err(format!(
                    "`{k}` must name a file inside {} (LOOKOUT_TARGET_FILES_DIR), not {v:?}",
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    /// When connecting: the files' real paths stay inside the directory, and every address
    /// the hosts resolve to lies inside the allowed networks.
    pub async fn check_connect(&self, kind: TargetKind, conn: &str) -> Result<(), String> {
        self.check_files(kind, conn)?;
        if let Some(dir) = &self.files_dir {
            let real_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            for (k, v) in file_options(kind, conn) {
                let real = std::fs::canonicalize(&v)
                    .map_err(|e| format!("`{k}`: cannot read {v:?}: {e}"))?;
                if !real.starts_with(&real_dir) {
                    return Err(format!(
                        "`{k}`: {v:?} leads outside {} (LOOKOUT_TARGET_FILES_DIR)",
                        dir.display()
                    ));
                }
            }
        }
        if self.networks.is_empty() {
            return Ok(());
        }
        for (host, port) in hosts(kind, conn) {
            let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::time::timeout(
                    RESOLVE_LIMIT,
                    tokio::net::lookup_host((host.as_str(), port)),
                )
                .await
                .map_err(|_| format!("{host} did not resolve within 5 s"))?
                .map_err(|e| format!("{host} does not resolve: {e}"))?
                .map(|a| a.ip())
                .collect(),
            };
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address"));
            }
            for ip in addrs {
                if !self.networks.iter().any(|n| n.contains(ip)) {
                    return Err(format!(
                        "{host} resolves to {}, outside LOOKOUT_TARGET_NETWORKS",
                        canonical(ip)
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let n = parse_networks("10.0.0.0/8, 192.168.1.7,fd00::/8").unwrap();
        assert_eq!(n.len(), 3);
        assert!(n[0].contains("10.200.3.4".parse().unwrap()));
        assert!(!n[0].contains("11.0.0.1".parse().unwrap()));
        assert!(n[1].contains("192.168.1.7".parse().unwrap()));
        assert!(!n[1].contains("192.168.1.8".parse().unwrap()));
        assert!(n[2].contains("fd12::1".parse().unwrap()));
        assert!(n[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("fd00::/129").is_err());
        assert!(parse_networks("example.com").is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<Network>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn file_options_inside_the_directory_only() {
        use TargetKind::*;
        let none = Reach::default();
        let dir = Reach {
            files_dir: Some(PathBuf::from("/etc/lookout/ca")),
            ..Reach::default()
        };
        let cases = [
            (Kafka, "k:9093?security.protocol=SSL", true, true),
            (
                Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=/etc/lookout/ca/k.pem",
                false,
                true,
            ),
            (
                Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=/etc/passwd",
                false,
                false,
            ),
            (
                Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=/etc/lookout/ca/../../passwd",
                false,
                false,
            ),
            (
                Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=ca.pem",
                false,
                false,
            ),
            (
                Postgres,
                "postgres://a@db/x?sslmode=verify-full&sslrootcert=/etc/lookout/ca/db.pem",
                false,
                true,
            ),
            (
                Postgres,
                "postgres://a@db/x?sslmode=verify-full&SSLROOTCERT=/root/.ssh/id_rsa",
                false,
                false,
            ),
            (
                Postgres,
                "postgres://a@db/x?sslkey=%2Fetc%2Fshadow",
                false,
                false,
            ),
            (Postgres, "postgres://a@db/x?sslmode=require", true, true),
            (Redis, "redis://cache:6379/0", true, true),
        ];
        for (kind, conn, ok_unset, ok_dir) in cases {
            assert_eq!(
                none.check_files(kind, conn).is_ok(),
                ok_unset,
                "unset: {conn}"
            );
            assert_eq!(dir.check_files(kind, conn).is_ok(), ok_dir, "dir: {conn}");
        }
    }

    #[test]
    fn hosts_of_a_connection() {
        use TargetKind::*;
        assert_eq!(
            hosts(Redis, "redis://cache/0"),
            vec![("cache".into(), 6379)]
        );
        assert_eq!(
            hosts(Postgres, "postgres://a@[::1]:6000/x"),
            vec![("::1".into(), 6000)]
        );
        assert_eq!(
            hosts(Kafka, "k1:9092,10.0.0.5:9093?security.protocol=SSL"),
            vec![("k1".into(), 9092), ("10.0.0.5".into(), 9093)]
        );
    }

    #[tokio::test]
    async fn hosts_outside_the_networks_are_refused_when_connecting() {
        let reach = Reach {
            networks: parse_networks("127.0.0.0/8, ::1").unwrap(),
            ..Reach::default()
        };
        assert!(
            reach
                .check_connect(TargetKind::Redis, "redis://127.0.0.1:6379")
                .await
                .is_ok()
        );
        assert!(
            reach
                .check_connect(TargetKind::Redis, "redis://localhost:6379")
                .await
                .is_ok()
        );
        let e = reach
            .check_connect(TargetKind::Postgres, "postgres://a@10.1.2.3/x")
            .await
            .unwrap_err();
        assert!(
            e.contains("10.1.2.3") && e.contains("outside LOOKOUT_TARGET_NETWORKS"),
            "{e}"
        );
        let e = reach
            .check_connect(TargetKind::Kafka, "127.0.0.1:9092,192.0.2.1:9092")
            .await
            .unwrap_err();
        assert!(e.contains("192.0.2.1"), "{e}");
        // No allow-list: anything goes.
        assert!(
            Reach::default()
                .check_connect(TargetKind::Postgres, "postgres://a@10.1.2.3/x")
                .await
                .is_ok()
        );
    }
}
