//! Test harness: the real router over a real PostgreSQL database (one per test, created by
//! `#[sqlx::test]` with the migrations applied), served on a random loopback port.
#![allow(dead_code)]

use domain::services::accounts;
use domain::{AuthMethod, Principal, RequestMeta, Role};
use reqwest::redirect::Policy;
use server::config::Config;
use sqlx::PgPool;

pub const PASSWORD: &str = "correct-horse-battery";
/// The longest any single request of a test may take (streams included).
pub const REQUEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

pub const TEST_SECRET_KEY: &str =
    "5f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615243a";

pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
}

pub fn admin_principal() -> Principal {
    Principal {
        user_id: None,
        name: "test-harness".into(),
        role: Role::Admin,
        method: AuthMethod::Cli,
        token_id: None,
        deploy_services: None,
        ingest: false,
    }
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, |_| {}).await
    }

    /// [`TestApp::spawn_with`], and OTLP/gRPC ingest on its own port (returned as a URL).
    pub async fn spawn_with_grpc(pool: PgPool, tweak: impl FnOnce(&mut Config)) -> (Self, String) {
        let mut config = Config::for_tests("postgres://unused");
        config.secret_key = Some(domain::secrets::SecretBox::from_config(TEST_SECRET_KEY).unwrap());
        tweak(&mut config);
        server::prepare(&pool, &config).await.unwrap();
        let (router, shared) = server::router_with_shared(pool.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            server::serve_until_dropped(listener, router).await.unwrap();
        });
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        tokio::spawn(async move {
            server::ingest::grpc::serve(grpc, shared, std::future::pending())
                .await
                .unwrap();
        });
        (
            TestApp {
                base: format!("http://{addr}"),
                pool,
            },
            format!("http://{grpc_addr}"),
        )
    }

    pub async fn spawn_with(pool: PgPool, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests("postgres://unused");
        config.max_body_bytes = 64 * 1024;
        config.secret_key = Some(domain::secrets::SecretBox::from_config(TEST_SECRET_KEY).unwrap());
        tweak(&mut config);
        // As main does before serving (some tests hand in a pool with no database behind).
        if let Err(e) = server::prepare(&pool, &config).await {
            eprintln!("TestApp: prepare: {e}");
        }
        let router = server::router(pool.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            server::serve_until_dropped(listener, router).await.unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            pool,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A browser-like client: keeps cookies, does not follow redirects, sends our Origin.
    /// Test clients give up on a request after [`REQUEST_LIMIT`]: a handler that never
    /// answers fails its test with the request's URL instead of hanging the run.
    pub fn browser(&self) -> reqwest::Client {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("origin", self.base.parse().unwrap());
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .default_headers(h)
            .timeout(REQUEST_LIMIT)
            .build()
            .unwrap()
    }

    /// A client without cookies or Origin (scripts, CI).
    pub fn plain(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(REQUEST_LIMIT)
            .build()
            .unwrap()
    }

    pub async fn create_user(&self, username: &str, role: Role) -> i64 {
        accounts::create_user(
            &self.pool,
            &admin_principal(),
            &RequestMeta::default(),
            accounts::NewUser {
                username: username.into(),
                display_name: String::new(),
                role,
                password: PASSWORD.into(),
            },
        )
        .await
        .unwrap()
        .id
    }

    pub async fn create_token(&self, name: &str, role: Role) -> String {
        accounts::create_token(
            &self.pool,
            &admin_principal(),
            &RequestMeta::default(),
            name,
            role,
        )
        .await
        .unwrap()
        .secret
    }

    /// Signs `client` in; returns the redirect target.
    pub async fn login(&self, client: &reqwest::Client, user: &str, password: &str) -> String {
        let res = client
            .post(self.url("/auth/login"))
            .form(&[
                ("username", user),
                ("password", password),
                ("next", "/settings"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "login answers with a redirect");
        res.headers()["location"].to_str().unwrap().to_string()
    }

    /// A signed-in browser client for a new user with `role`.
    pub async fn signed_in(&self, username: &str, role: Role) -> reqwest::Client {
        self.create_user(username, role).await;
        let c = self.browser();
        let to = self.login(&c, username, PASSWORD).await;
        assert_eq!(to, "/settings", "{username} signs in");
        c
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// An `/api/v1` call as a script makes it (bearer token, JSON body): the status and the
    /// JSON answer (a body that is not JSON comes back as a JSON string, empty as null).
    pub async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let req = self
            .plain()
            .request(method, self.url(path))
            .bearer_auth(token);
        json_answer(match body {
            Some(b) => req.json(&b),
            None => req,
        })
        .await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.api(token, reqwest::Method::GET, path, None).await
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.api(token, reqwest::Method::POST, path, Some(body))
            .await
    }

    pub async fn patch(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.api(token, reqwest::Method::PATCH, path, Some(body))
            .await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// The server-function call a wasm client makes (form-encoded, JSON answer).
pub async fn call_fn(
    client: &reqwest::Client,
    app: &TestApp,
    endpoint: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(app.url(&format!("/api/fn/{endpoint}")))
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Sends a request and reads its status and JSON answer (a body that is not JSON comes back
/// as a JSON string, an empty one as null).
pub async fn json_answer(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let res = req.send().await.unwrap();
    let s = res.status().as_u16();
    let t = res.text().await.unwrap();
    let v = if t.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))
    };
    (s, v)
}

/// A variable the TEST command sets (service addresses).
pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is set by the TEST command (scripts/test)"))
}

/// A JSON call with `client` (a signed-in browser: its session cookie, its Origin).
pub async fn json_req(
    client: &reqwest::Client,
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let req = client.request(method, app.url(path));
    json_answer(match body {
        Some(b) => req.json(&b),
        None => req,
    })
    .await
}

/// A real Prometheus (Debian's `prometheus`, or `LOOKOUT_PROMETHEUS_BIN`) on a random
/// loopback port, scraping `targets` every second; killed when dropped.
pub struct Prometheus {
    pub url: String,
    child: std::process::Child,
    _dir: tempdir::Dir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod jaeger;
pub mod llm;
pub mod own_pg;
pub mod rabbit;

pub mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(prefix: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    pub async fn start(targets: &[String]) -> Prometheus {
        Self::start_jobs(&[("test", targets)]).await
    }

    /// A Prometheus scraping each job's targets every second (the `job` label is the job's
    /// name, as a service's scrape job usually is).
    pub async fn start_jobs(jobs: &[(&str, &[String])]) -> Prometheus {
        Self::start_with_history(jobs, None).await
    }

    /// Like [`Prometheus::start_jobs`], with `history` (OpenMetrics text, samples in the
    /// past) turned into blocks by `promtool tsdb create-blocks-from openmetrics` first, so
    /// the server holds yesterday's series as if it had scraped them.
    pub async fn start_with_history(
        jobs: &[(&str, &[String])],
        history: Option<&str>,
    ) -> Prometheus {
        let bin = std::env::var("LOOKOUT_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let dir = tempdir::Dir::new("lookout-prometheus");
        if let Some(text) = history {
            let om = dir.0.join("history.om");
            std::fs::write(&om, text).unwrap();
            let out = std::process::Command::new("promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&om)
                .arg(dir.0.join("data"))
                .output()
                .expect("promtool (apt install prometheus)");
            assert!(
                out.status.success(),
                "promtool: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut config =
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                .to_string();
        for (job, targets) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = std::process::Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (apt install prometheus): {e}"));
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let c = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = c.get(format!("{}/-/ready", p.url)).send().await
                && r.status() == 200
            {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Waits until `promql` returns at least one series.
    pub async fn wait_for(&self, promql: &str) {
        let c = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = c
                .post(format!("{}/api/v1/query", self.url))
                .form(&[("query", promql)])
                .send()
                .await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["data"]["result"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus never saw {promql}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}

/// A Prometheus exporter serving whatever text it is given (`/metrics`).
pub struct Exporter {
    pub addr: String,
    pub text: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Exporter {
    pub async fn start(text: &str) -> Exporter {
        let shared = std::sync::Arc::new(std::sync::Mutex::new(text.to_string()));
        let s2 = shared.clone();
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let s = s2.clone();
                async move { s.lock().unwrap().clone() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Exporter { addr, text: shared }
    }
    pub fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }
}

/// One item of a deployment's JSON.
pub fn dep_item<'a>(d: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    d["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item_id"] == id)
        .unwrap_or_else(|| panic!("no item {id}"))
}

/// Polls a deployment until item `id` leaves `running` (within `limit`); its JSON.
pub async fn settled(
    app: &TestApp,
    token: &str,
    key: &str,
    id: &str,
    limit: std::time::Duration,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let (s, d) = app.get(token, &format!("/api/v1/deployments/{key}")).await;
        assert_eq!(s, 200, "{d}");
        if dep_item(&d, id)["state"] != "running" {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} still running: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The deployment checks' evaluation loop over `pool` (a 200 ms tick, `query_limit` per
/// query); it stops when the returned sender is dropped.
pub fn spawn_checks(
    pool: PgPool,
    query_limit: std::time::Duration,
) -> tokio::sync::watch::Sender<bool> {
    let mut config = Config::for_tests("postgres://unused");
    config.secret_key = Some(domain::secrets::SecretBox::from_config(TEST_SECRET_KEY).unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    server::workers::spawn_deployment_checks(
        pool,
        config.access(),
        domain::services::probe_runs::Runner::default(),
        server::workers::CheckSettings {
            tick: std::time::Duration::from_millis(200),
            query_limit,
            ..Default::default()
        },
        rx,
    )
    .unwrap();
    stop
}

/// A page as `c` gets it: its status and its HTML.
pub async fn page(c: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let res = c.get(app.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The test broker (scripts/test starts it).
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").expect("KAFKA_BROKERS is set by scripts/test")
}

/// A name no other test run uses (topics, groups).
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// Starts `probe` on target `t` with `params` (on `incident` when given), checks the 202,
/// and polls the run until it ends (at most a minute): the run with its findings.
pub async fn probe_run(
    app: &TestApp,
    token: &str,
    t: i64,
    probe: &str,
    params: serde_json::Value,
    incident: Option<&str>,
) -> serde_json::Value {
    let mut body = serde_json::json!({"probe": probe, "params": params});
    if let Some(k) = incident {
        body["incident_key"] = serde_json::json!(k);
    }
    let (s, r) = app
        .post(token, &format!("/api/v1/targets/{t}/probe-runs"), body)
        .await;
    assert_eq!(s, 202, "{r}");
    let id = r["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (s, d) = app.get(token, &format!("/api/v1/probe-runs/{id}")).await;
        assert_eq!(s, 200, "{d}");
        if d["run"]["status"] != "running" {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} still running: {d}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The findings of a run (`probe_run`) with `code`.
pub fn run_findings<'a>(d: &'a serde_json::Value, code: &str) -> Vec<&'a serde_json::Value> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

/// A finding's evidence fact by name (the test fails when it is missing).
pub fn fact(f: &serde_json::Value, name: &str) -> String {
    f["evidence"]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .and_then(|x| x["value"].as_str())
        .unwrap_or_else(|| panic!("no fact {name:?} in {f}"))
        .to_string()
}

/// A loopback address that accepts connections and never answers (a hung service).
pub async fn hanging_listener() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    addr
}
