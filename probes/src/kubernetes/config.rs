//! A Kubernetes target: the connection names the API server and, optionally, the kubeconfig
//! context and the namespace the probes look at
//! (`https://api.prod:6443?context=prod&namespace=payments`); the kubeconfig itself is the
//! target's sealed secret. The kubeconfig is checked before it is stored and again before
//! every use:
//!
//! - it parses (YAML, at most [`MAX_KUBECONFIG_BYTES`], aliases bounded by the parser) and
//!   names the context (the connection's, or its `current-context`), whose cluster and user
//!   it defines;
//! - the context's cluster `server` is the connection's API server, so the reach rules that
//!   check the connection check where the credentials really go;
//! - everything is inline: a kubeconfig that names files on the Lookout server
//!   (`certificate-authority`, `client-certificate`, `client-key`, `tokenFile`), runs a
//!   program (`exec`, `auth-provider`) or goes through a proxy (`proxy-url`) is refused,
//!   because a pasted kubeconfig must not read the server's files or run commands on it.

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::time::Duration;

/// The largest kubeconfig accepted (a real one with inline certificates is 5–10 KiB).
pub const MAX_KUBECONFIG_BYTES: usize = 64 * 1024;

/// What the connection field says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    /// The API server URL, normalised (scheme, lower-case host, port, no trailing slash).
    pub server: String,
    pub host: String,
    pub port: u16,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// `?in_cluster=true`: Lookout runs inside this cluster and uses its own service
    /// account (no kubeconfig); the server must be the cluster's own API server.
    pub in_cluster: bool,
}

const HELP: &str = "https://api-server:6443, optionally ?context=NAME&namespace=NS; the kubeconfig (inline certificates or token, no exec plugins or file paths) goes in the secret. Inside the cluster: https://kubernetes.default.svc?in_cluster=true and no secret (Lookout's own service account)";

pub fn help() -> &'static str {
    HELP
}

/// A DNS-1123 label (namespaces) — 1 to 63 of a-z, 0-9, '-', alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (object names) — at most 253, labels joined by '.'.
pub fn is_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn normalise_server(u: &url::Url) -> Result<(String, String, u16), String> {
    let host = u
        .host_str()
        .ok_or("the API server URL has no host")?
        .to_ascii_lowercase();
    let port = u
        .port_or_known_default()
        .ok_or("the API server URL has no port")?;
    let path = u.path().trim_end_matches('/');
    Ok((
        format!("{}://{}:{}{}", u.scheme(), host, port, path),
        host.trim_matches(['[', ']']).to_string(),
        port,
    ))
}

impl KubeTarget {
    pub fn parse(conn: &str) -> Result<KubeTarget, String> {
        let conn = conn.trim();
        let u =
            url::Url::parse(conn).map_err(|e| format!("invalid API server URL: {e} ({HELP})"))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(format!(
                "the API server URL is https:// (or http://) ({HELP})"
            ));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("credentials go in the kubeconfig (the secret), not in the URL".into());
        }
        if u.fragment().is_some() {
            return Err("the API server URL takes no fragment".into());
        }
        let (server, host, port) = normalise_server(&u)?;
        let (mut context, mut namespace, mut in_cluster) = (None, None, None);
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "context" if context.is_none() => {
                    if v.is_empty() || v.len() > 253 || v.chars().any(char::is_control) {
                        return Err("context is 1–253 printable characters".into());
                    }
                    context = Some(v.into_owned());
                }
                "namespace" if namespace.is_none() => {
                    if !is_dns_label(&v) {
                        return Err(format!(
                            "namespace {:?} is not a Kubernetes namespace name (a-z, 0-9, '-', at most 63)",
                            v.chars().take(70).collect::<String>()
                        ));
                    }
                    namespace = Some(v.into_owned());
                }
                "in_cluster" if in_cluster.is_none() => {
                    in_cluster = Some(match v.as_ref() {
                        "true" => true,
                        "false" => false,
                        _ => return Err("in_cluster is true or false".into()),
                    });
                }
                "context" | "namespace" | "in_cluster" => {
                    return Err(format!("{k} is given twice"));
                }
                other => {
                    return Err(format!(
                        "unknown option {:?}: the connection takes context, namespace and in_cluster",
                        other.chars().take(40).collect::<String>()
                    ));
                }
            }
        }
        let in_cluster = in_cluster.unwrap_or(false);
        if in_cluster && context.is_some() {
            return Err("an in-cluster target has no kubeconfig, so no context".into());
        }
        Ok(KubeTarget {
            server,
            host,
            port,
            context,
            namespace,
            in_cluster,
        })
    }
}

/// Why a kubeconfig cannot be used, in words that name the part.
fn refuse(what: &str, name: &str, why: &str) -> String {
    format!("the kubeconfig's {what} {name:?} {why}")
}

/// A kubeconfig checked against its target: the context to use and the namespace.
pub struct Checked {
    pub kubeconfig: Kubeconfig,
    pub context: String,
    /// The connection's namespace, else the context's, else `default`.
    pub namespace: String,
    /// The cluster skips TLS verification (`insecure-skip-tls-verify`): said in the check.
    pub insecure: bool,
}

/// Checks a kubeconfig (the secret) against the target (the connection). See the module
/// documentation for what is refused.
pub fn check_kubeconfig(target: &KubeTarget, yaml: &str) -> Result<Checked, String> {
    if yaml.len() > MAX_KUBECONFIG_BYTES {
        return Err(format!(
            "the kubeconfig is {} KiB; at most {} KiB is accepted",
            yaml.len() / 1024,
            MAX_KUBECONFIG_BYTES / 1024
        ));
    }
    if yaml.trim().is_empty() {
        return Err("the secret must hold the kubeconfig (YAML)".into());
    }
    let kc = Kubeconfig::from_yaml(yaml).map_err(|e| {
        // The parser's message can quote the text (a token); keep only its first line,
        // without quoted values.
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("").to_string();
        let cut: String = first.split('"').step_by(2).collect::<Vec<_>>().join("…");
        format!(
            "the kubeconfig does not parse as YAML: {}",
            cut.chars().take(200).collect::<String>()
        )
    })?;
    if kc.contexts.is_empty() || kc.clusters.is_empty() || kc.auth_infos.is_empty() {
        return Err(
            "the kubeconfig needs clusters, users and contexts (is this a kubeconfig? `kubectl config view --raw --minify` prints one)"
                .into(),
        );
    }
    let ctx_name = match (&target.context, &kc.current_context) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) if !c.is_empty() => c.clone(),
        _ => {
            return Err(
                "the kubeconfig has no current-context: name one with ?context=NAME in the connection"
                    .into(),
            );
        }
    };
    let names = |v: Vec<&str>| v.join(", ");
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .ok_or_else(|| {
            format!(
                "the kubeconfig has no context {ctx_name:?} (it has: {})",
                names(kc.contexts.iter().map(|c| c.name.as_str()).collect())
            )
        })?;
    let context = ctx
        .context
        .as_ref()
        .ok_or_else(|| refuse("context", &ctx_name, "is empty"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| {
            format!(
                "the context {ctx_name:?} names cluster {:?}, which the kubeconfig does not define",
                context.cluster
            )
        })?;
    let user_name = context.user.clone().unwrap_or_default();
    let user = kc
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| {
            format!(
                "the context {ctx_name:?} names user {user_name:?}, which the kubeconfig does not define"
            )
        })?;
    let server = cluster
        .server
        .as_deref()
        .ok_or_else(|| refuse("cluster", &context.cluster, "has no server"))?;
    let su = url::Url::parse(server).map_err(|e| {
        refuse(
            "cluster",
            &context.cluster,
            &format!("has an invalid server URL: {e}"),
        )
    })?;
    let (norm, _, _) = normalise_server(&su)?;
    if norm != target.server {
        return Err(format!(
            "the context {ctx_name:?} leads to {norm}, not to the connection's {}: make them the same (the connection says where Lookout may connect)",
            target.server
        ));
    }
    let c_name = context.cluster.as_str();
    if cluster.certificate_authority.is_some() {
        return Err(refuse(
            "cluster",
            c_name,
            "names a certificate-authority file: inline it as certificate-authority-data (`kubectl config view --raw --flatten --minify`)",
        ));
    }
    if cluster.proxy_url.is_some() {
        return Err(refuse(
            "cluster",
            c_name,
            "goes through a proxy-url, which Lookout does not follow",
        ));
    }
    let u_name = user_name.as_str();
    if user.client_certificate.is_some() || user.client_key.is_some() {
        return Err(refuse(
            "user",
            u_name,
            "names client-certificate/client-key files: inline them as client-certificate-data/client-key-data (`kubectl config view --raw --flatten --minify`)",
        ));
    }
    if user.token_file.is_some() {
        return Err(refuse(
            "user",
            u_name,
            "names a tokenFile: put the token itself in `token`",
        ));
    }
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(refuse(
            "user",
            u_name,
            "runs a credential plugin (exec / auth-provider), which Lookout never runs: use a service-account token (`kubectl create token lookout -n lookout --duration=8760h`) or a client certificate",
        ));
    }
    if user.impersonate.is_some() || user.impersonate_groups.is_some() {
        return Err(refuse(
            "user",
            u_name,
            "impersonates another identity; give Lookout its own",
        ));
    }
    let has_token = user.token.is_some();
    let has_cert = user.client_certificate_data.is_some() && user.client_key_data.is_some();
    let has_basic = user.username.is_some() && user.password.is_some();
    if !(has_token || has_cert || has_basic) {
        return Err(refuse(
            "user",
            u_name,
            "has no credentials (a token, or client-certificate-data with client-key-data)",
        ));
    }
    let namespace = target
        .namespace
        .clone()
        .or_else(|| context.namespace.clone().filter(|n| is_dns_label(n)))
        .unwrap_or_else(|| "default".into());
    let insecure = cluster.insecure_skip_tls_verify.unwrap_or(false);
    Ok(Checked {
        kubeconfig: kc.clone(),
        context: ctx_name,
        namespace,
        insecure,
    })
}

/// The address a probe connects with: the connection and the kubeconfig together (in
/// memory only; never stored or shown).
pub fn address(conn: &str, kubeconfig: &str) -> String {
    serde_json::json!({ "connection": conn, "kubeconfig": kubeconfig }).to_string()
}

/// Where a pod's service account is mounted (`LOOKOUT_K8S_SERVICEACCOUNT_DIR` overrides it).
pub const SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// An in-cluster target as a kubeconfig: the pod's own service-account token and CA, for
/// the cluster's own API server (`KUBERNETES_SERVICE_HOST`/`_PORT`). Refused when Lookout
/// does not run in a cluster, or when the connection names another server: the pod's token
/// must never be sent anywhere else.
/// Answers the cluster's own server URL (normalised) and the kubeconfig.
pub fn in_cluster_kubeconfig(target: &KubeTarget) -> Result<(String, String), String> {
    use base64::Engine;
    let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
        "Lookout is not running inside a Kubernetes cluster (no KUBERNETES_SERVICE_HOST): give the target a kubeconfig instead".to_string()
    })?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let own = url::Url::parse(&format!(
        "https://{}:{port}",
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        }
    ))
    .map_err(|e| format!("KUBERNETES_SERVICE_HOST/PORT do not form a URL: {e}"))?;
    let (own, _, _) = normalise_server(&own)?;
    let alias = [
        "https://kubernetes.default.svc:443",
        "https://kubernetes.default.svc.cluster.local:443",
        "https://kubernetes.default:443",
        "https://kubernetes:443",
    ];
    if target.server != own && !alias.contains(&target.server.as_str()) {
        return Err(format!(
            "an in-cluster target uses Lookout's own service account, so it must be this cluster's API server ({own} or https://kubernetes.default.svc), not {}",
            target.server
        ));
    }
    let dir = std::env::var("LOOKOUT_K8S_SERVICEACCOUNT_DIR")
        .unwrap_or_else(|_| SERVICEACCOUNT_DIR.into());
    let read = |f: &str| {
        std::fs::read_to_string(format!("{dir}/{f}"))
            .map_err(|e| format!("cannot read the service account's {f} in {dir}: {e}"))
    };
    let token = read("token")?;
    let ca = read("ca.crt")?;
    let ns = read("namespace").unwrap_or_else(|_| "default".into());
    let kc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "in-cluster", "cluster": { "server": own,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca.as_bytes()) } }],
        "users": [{ "name": "lookout", "user": { "token": token.trim() } }],
        "contexts": [{ "name": "in-cluster", "context": { "cluster": "in-cluster", "user": "lookout", "namespace": ns.trim() } }],
        "current-context": "in-cluster"
    });
    Ok((own, kc.to_string()))
}

/// The target, the checked kubeconfig and a client whose every request ends within `limit`.
pub struct Session {
    pub target: KubeTarget,
    pub checked: Checked,
    pub client: kube::Client,
}

/// Opens an address made by [`address`]: everything is checked again (the secret may have
/// been stored by an older Lookout).
pub async fn open(address: &str, limit: Duration) -> Result<Session, crate::ProbeError> {
    use crate::ProbeError;
    let v: serde_json::Value = serde_json::from_str(address)
        .map_err(|_| ProbeError::InvalidTarget("not a Kubernetes target address".into()))?;
    let conn = v["connection"].as_str().unwrap_or_default();
    let yaml = v["kubeconfig"].as_str().unwrap_or_default();
    let mut target = KubeTarget::parse(conn).map_err(ProbeError::InvalidTarget)?;
    let own;
    let yaml = if target.in_cluster {
        let (server, kubeconfig) =
            in_cluster_kubeconfig(&target).map_err(ProbeError::InvalidTarget)?;
        // The kubeconfig names the cluster's own address, which the alias stands for.
        target.server = server;
        own = kubeconfig;
        own.as_str()
    } else {
        yaml
    };
    let checked = check_kubeconfig(&target, yaml).map_err(ProbeError::InvalidTarget)?;
    let opts = KubeConfigOptions {
        context: Some(checked.context.clone()),
        cluster: None,
        user: None,
    };
    let mut cfg = kube::Config::from_custom_kubeconfig(checked.kubeconfig.clone(), &opts)
        .await
        .map_err(|e| ProbeError::InvalidTarget(format!("the kubeconfig cannot be used: {e}")))?;
    cfg.connect_timeout = Some(limit);
    cfg.read_timeout = Some(limit);
    cfg.write_timeout = Some(limit);
    cfg.default_namespace = checked.namespace.clone();
    cfg.proxy_url = None;
    let client = kube::Client::try_from(cfg)
        .map_err(|e| ProbeError::InvalidTarget(format!("the kubeconfig cannot be used: {e}")))?;
    Ok(Session {
        target,
        checked,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==";

    fn kc(server: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {CA}\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: prod\n  context:\n    cluster: c\n    user: u\n    namespace: payments\ncurrent-context: prod\n"
        )
    }

    #[test]
    fn connections() {
        for (conn, ok) in [
            ("https://api.prod:6443", true),
            (
                "https://API.prod:6443/?context=prod&namespace=payments",
                true,
            ),
            ("http://127.0.0.1:8080", true),
            ("https://api.prod", true),
            ("ftp://api.prod", false),
            ("https://u:p@api.prod:6443", false),
            ("https://api.prod:6443?namespace=Payments", false),
            ("https://api.prod:6443?namespace=a&namespace=b", false),
            ("https://api.prod:6443?insecure=true", false),
            ("https://api.prod:6443?context=", false),
            ("https://api.prod:6443#x", false),
            ("api.prod:6443", false),
        ] {
            assert_eq!(KubeTarget::parse(conn).is_ok(), ok, "{conn}");
        }
        let t = KubeTarget::parse("https://API.prod/?context=a%20b").unwrap();
        assert_eq!(t.server, "https://api.prod:443");
        assert_eq!(t.context.as_deref(), Some("a b"));
    }

    #[test]
    fn kubeconfigs_are_checked_and_the_bad_part_is_named() {
        let t = KubeTarget::parse("https://api.prod:6443").unwrap();
        let token = "    token: abc\n";
        let ok = check_kubeconfig(&t, &kc("https://api.prod:6443", token)).unwrap();
        assert_eq!(ok.context, "prod");
        assert_eq!(ok.namespace, "payments");
        let with_ns = KubeTarget::parse("https://api.prod:6443?namespace=shop").unwrap();
        assert_eq!(
            check_kubeconfig(&with_ns, &kc("https://api.prod:6443", token))
                .unwrap()
                .namespace,
            "shop"
        );
        for (server, user, conn, needle) in [
            (
                "https://evil:6443",
                token,
                "https://api.prod:6443",
                "leads to https://evil:6443",
            ),
            (
                "https://api.prod:6443",
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n",
                "https://api.prod:6443",
                "exec",
            ),
            (
                "https://api.prod:6443",
                "    tokenFile: /etc/shadow\n",
                "https://api.prod:6443",
                "tokenFile",
            ),
            (
                "https://api.prod:6443",
                "    client-certificate: /root/c.pem\n    client-key: /root/k.pem\n",
                "https://api.prod:6443",
                "client-certificate",
            ),
            (
                "https://api.prod:6443",
                "    username: x\n",
                "https://api.prod:6443",
                "no credentials",
            ),
            (
                "https://api.prod:6443",
                token,
                "https://api.prod:6443?context=staging",
                "no context \"staging\" (it has: prod)",
            ),
        ] {
            let t = KubeTarget::parse(conn).unwrap();
            let e = check_kubeconfig(&t, &kc(server, user))
                .err()
                .unwrap_or_default();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        for (yaml, needle) in [
            ("", "must hold"),
            ("a: [", "does not parse"),
            ("just: text\n", "needs clusters"),
            ("- 1\n- 2\n", "does not parse"),
        ] {
            let e = check_kubeconfig(&t, yaml).err().unwrap_or_default();
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
        let big = format!(
            "{}#{}\n",
            kc("https://api.prod:6443", token),
            "x".repeat(MAX_KUBECONFIG_BYTES)
        );
        assert!(
            check_kubeconfig(&t, &big)
                .err()
                .unwrap_or_default()
                .contains("at most 64 KiB")
        );
        // An alias bomb (a billion laughs) is refused by the parser's budget, quickly.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 0..9u8 {
            let (p, n) = ((b'a' + i) as char, (b'a' + i + 1) as char);
            bomb.push_str(&format!(
                "{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        assert!(check_kubeconfig(&t, &bomb).is_err());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Deep nesting is refused, not a stack overflow.
        for deep in [
            format!("a: {}{}", "[".repeat(50_000), "]".repeat(50_000)),
            format!("a: {}1{}", "{b: ".repeat(20_000), "}".repeat(20_000)),
            "- ".repeat(20_000),
        ] {
            assert!(check_kubeconfig(&t, &deep[..deep.len().min(MAX_KUBECONFIG_BYTES)]).is_err());
        }
        // A secret never appears in an error message.
        let e = check_kubeconfig(
            &t,
            "users: [{name: u, user: {token: \"s3cr3t\"}}]\nclusters: 7\n",
        )
        .err()
        .unwrap_or_default();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
