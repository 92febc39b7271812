//! What Lookout may reach when it connects to a target. Admins choose target hosts, and the
//! server connects to them (and to the brokers a Kafka cluster advertises) from inside the
//! network it runs in; some connection options name files on the Lookout server. Both are
//! bounded here:
//! - `LOOKOUT_TARGET_NETWORKS` (optional): every address a target's hosts resolve to must lie
//!   in one of these networks, checked when connecting (DNS answers change); the Kafka wire
//!   client applies the same list to the brokers a cluster advertises (`probes::net`).
//! - `LOOKOUT_TARGET_FILES_DIR` (optional): the only directory from which connection options
//!   may read files (Kafka `ssl.ca.location`, PostgreSQL `sslrootcert`/`sslcert`/`sslkey`);
//!   unset, such options are refused. Checked when saving (the path as written) and when
//!   connecting (the real path, so a symlink cannot lead out).

use crate::kinds::Kind;
use crate::secrets::SecretBox;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub use probes::net::{Network, canonical, parse_networks};

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

fn lexically_inside(dir: &Path, path: &Path) -> bool {
    path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        && path.starts_with(dir)
}

impl Reach {
    /// File options as written (when saving a target): inside the configured directory.
    pub fn check_files(&self, kind: &dyn Kind, conn: &str) -> Result<(), String> {
        for (k, v) in kind.file_options(conn) {
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
    pub async fn check_connect(&self, kind: &dyn Kind, conn: &str) -> Result<(), String> {
        self.check_files(kind, conn)?;
        if let Some(dir) = &self.files_dir {
            let real_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            for (k, v) in kind.file_options(conn) {
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
        for (host, port) in kind.hosts(conn) {
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
    fn file_options_inside_the_directory_only() {
        use crate::kinds::{Kafka, POSTGRES, REDIS};
        let none = Reach::default();
        let dir = Reach {
            files_dir: Some(PathBuf::from("/etc/lookout/ca")),
            ..Reach::default()
        };
        let cases: [(&dyn Kind, &str, bool, bool); 10] = [
            (&Kafka, "k:9093?security.protocol=SSL", true, true),
            (
                &Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=/etc/lookout/ca/k.pem",
                false,
                true,
            ),
            (
                &Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=/etc/passwd",
                false,
                false,
            ),
            (
                &Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=/etc/lookout/ca/../../passwd",
                false,
                false,
            ),
            (
                &Kafka,
                "k:9093?security.protocol=SSL&ssl.ca.location=ca.pem",
                false,
                false,
            ),
            (
                &POSTGRES,
                "postgres://a@db/x?sslmode=verify-full&sslrootcert=/etc/lookout/ca/db.pem",
                false,
                true,
            ),
            (
                &POSTGRES,
                "postgres://a@db/x?sslmode=verify-full&SSLROOTCERT=/root/.ssh/id_rsa",
                false,
                false,
            ),
            (
                &POSTGRES,
                "postgres://a@db/x?sslkey=%2Fetc%2Fshadow",
                false,
                false,
            ),
            (&POSTGRES, "postgres://a@db/x?sslmode=require", true, true),
            (&REDIS, "redis://cache:6379/0", true, true),
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
        use crate::kinds::{Kafka, POSTGRES, REDIS};
        assert_eq!(REDIS.hosts("redis://cache/0"), vec![("cache".into(), 6379)]);
        assert_eq!(
            POSTGRES.hosts("postgres://a@[::1]:6000/x"),
            vec![("::1".into(), 6000)]
        );
        assert_eq!(
            Kafka.hosts("k1:9092,10.0.0.5:9093?security.protocol=SSL"),
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
                .check_connect(&crate::kinds::REDIS, "redis://127.0.0.1:6379")
                .await
                .is_ok()
        );
        assert!(
            reach
                .check_connect(&crate::kinds::REDIS, "redis://localhost:6379")
                .await
                .is_ok()
        );
        let e = reach
            .check_connect(&crate::kinds::POSTGRES, "postgres://a@10.1.2.3/x")
            .await
            .unwrap_err();
        assert!(
            e.contains("10.1.2.3") && e.contains("outside LOOKOUT_TARGET_NETWORKS"),
            "{e}"
        );
        let e = reach
            .check_connect(&crate::kinds::Kafka, "127.0.0.1:9092,192.0.2.1:9092")
            .await
            .unwrap_err();
        assert!(e.contains("192.0.2.1"), "{e}");
        // No allow-list: anything goes.
        assert!(
            Reach::default()
                .check_connect(&crate::kinds::POSTGRES, "postgres://a@10.1.2.3/x")
                .await
                .is_ok()
        );
    }
}
