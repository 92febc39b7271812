//! Kubernetes targets: the connection is the API server URL with, optionally, the
//! kubeconfig context and the namespace (`https://api.prod:6443?context=prod&namespace=shop`);
//! the secret is the kubeconfig itself (inline credentials only: no exec plugins, no file
//! paths, no proxy — `probes::kubernetes::config` says why). The kubeconfig is checked
//! against the connection when it is saved and again on every use.

use super::Kind;
use probes::framework::BoxFuture;
use probes::kubernetes::config::{self, KubeTarget, MAX_KUBECONFIG_BYTES};
use probes::{ConnectionReport, ProbeError};
use std::time::Duration;

pub struct Kubernetes;

impl Kind for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn connection_help(&self) -> &'static str {
        config::help()
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        KubeTarget::parse(conn).map(|_| ())
    }
    /// The kubeconfig holds the credentials: no username, and a kubeconfig is required.
    fn check_credentials(
        &self,
        conn: &str,
        username: &str,
        has_secret: bool,
    ) -> Result<(), String> {
        if KubeTarget::parse(conn).is_ok_and(|t| t.in_cluster) {
            if !username.is_empty() || has_secret {
                return Err("an in-cluster target uses Lookout's own service account: leave the username and secret empty".into());
            }
            return Ok(());
        }
        if !username.is_empty() {
            return Err(
                "a Kubernetes target takes no username: the kubeconfig (the secret) names the user"
                    .into(),
            );
        }
        if !has_secret {
            return Err("a Kubernetes target needs its kubeconfig in the secret (`kubectl config view --raw --flatten --minify`)".into());
        }
        Ok(())
    }
    fn max_secret_bytes(&self) -> usize {
        MAX_KUBECONFIG_BYTES
    }
    fn check_secret(&self, conn: &str, secret: &str) -> Result<(), String> {
        let target = KubeTarget::parse(conn)?;
        if target.in_cluster {
            return Err(
                "an in-cluster target uses Lookout's own service account: leave the secret empty"
                    .into(),
            );
        }
        config::check_kubeconfig(&target, secret).map(|_| ())
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        KubeTarget::parse(conn)
            .map(|t| vec![(t.host, t.port)])
            .unwrap_or_default()
    }
    /// The API server (scheme, host, port, path): the context and namespace may change
    /// without the secret, since the kubeconfig is checked against them.
    fn destination(&self, conn: &str) -> Vec<String> {
        KubeTarget::parse(conn)
            .map(|t| vec![t.server])
            .unwrap_or_default()
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        self.check_credentials(conn, username, secret.is_some())?;
        let kubeconfig = secret.unwrap_or_default();
        if !KubeTarget::parse(conn).is_ok_and(|t| t.in_cluster) {
            self.check_secret(conn, kubeconfig)?;
        }
        Ok(config::address(conn, kubeconfig))
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        Box::pin(probes::kubernetes::check(address, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://api.prod:6443\nusers:\n- name: u\n  user:\n    token: t0k3n\ncontexts:\n- name: prod\n  context: {cluster: c, user: u}\ncurrent-context: prod\n";

    #[test]
    fn the_kubeconfig_is_the_secret_and_must_fit_the_connection() {
        let k = Kubernetes;
        assert!(
            k.check_connection("https://api.prod:6443?namespace=shop")
                .is_ok()
        );
        assert!(k.check_secret("https://api.prod:6443", KC).is_ok());
        assert!(
            k.check_secret("https://evil:6443", KC)
                .unwrap_err()
                .contains("not to the connection's https://evil:6443")
        );
        assert!(
            k.check_credentials("https://api.prod:6443", "", false)
                .is_err()
        );
        assert!(
            k.check_credentials("https://api.prod:6443", "bob", true)
                .is_err()
        );
        assert_eq!(
            k.hosts("https://API.prod:6443?context=x"),
            vec![("api.prod".to_string(), 6443)]
        );
        assert_eq!(
            k.destination("https://api.prod:6443?context=a"),
            k.destination("https://api.prod:6443/?namespace=b")
        );
        assert_ne!(
            k.destination("https://api.prod:6443"),
            k.destination("https://api.prod:6444")
        );
        let addr = k
            .connect_address("https://api.prod:6443", "", Some(KC))
            .unwrap();
        assert!(
            addr.contains("t0k3n"),
            "the address carries the kubeconfig (in memory only)"
        );
        assert!(
            k.connect_address("https://api.prod:6443", "", None)
                .is_err()
        );
        assert!(k.max_secret_bytes() >= 64 * 1024);
        // In the cluster: Lookout's own service account, so no secret and no username.
        let inside = "https://kubernetes.default.svc?in_cluster=true";
        assert!(k.check_connection(inside).is_ok());
        assert!(k.check_credentials(inside, "", false).is_ok());
        assert!(k.check_credentials(inside, "", true).is_err());
        assert!(k.check_secret(inside, KC).is_err());
        assert!(
            k.check_connection("https://kubernetes.default.svc?in_cluster=true&context=x")
                .is_err()
        );
        assert!(
            k.check_connection("https://kubernetes.default.svc?in_cluster=yes")
                .is_err()
        );
    }
}
