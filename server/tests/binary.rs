//! The `lookout` binary as an operator runs it: --help, configuration errors, subcommands,
//! a failed migration, graceful shutdown on SIGTERM, JSON logs, OTLP traces, and the
//! embedded PostgreSQL (no DATABASE_URL) across a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lookout");

fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL (the TEST command sets it)")
}

/// A new empty database on the test server; returns its URL.
async fn fresh_db(tag: &str) -> String {
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    let name = format!("bin_{tag}_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url()).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lookout(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("LOOKOUT_SECRET_KEY")
        .env("LOOKOUT_LOG", "info")
        .stdin(Stdio::null());
    c
}

async fn wait_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status() == 200
        {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("lookout exited early ({st}): {err}");
        }
        assert!(Instant::now() < deadline, "lookout did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "lookout did not exit within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_lists_every_environment_variable() {
    let out = lookout(&["--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "DATABASE_URL",
        "LOOKOUT_DATA_DIR",
        "LOOKOUT_PG_BINDIR",
        "LOOKOUT_DB_MAX_CONNECTIONS",
        "LEPTOS_SITE_ADDR",
        "LEPTOS_SITE_ROOT",
        "LEPTOS_OUTPUT_NAME",
        "LEPTOS_SITE_PKG_DIR",
        "LOOKOUT_PUBLIC_URL",
        "LOOKOUT_COOKIE_SECURE",
        "LOOKOUT_SESSION_TTL_HOURS",
        "LOOKOUT_ADMIN_PASSWORD",
        "LOOKOUT_LOGIN_MAX_FAILURES_PER_USER",
        "LOOKOUT_LOGIN_MAX_FAILURES_PER_IP",
        "LOOKOUT_LOGIN_WINDOW_SECS",
        "LOOKOUT_TRUSTED_PROXIES",
        "LOOKOUT_TRUST_FORWARDED_FOR",
        "LOOKOUT_MAX_BODY_BYTES",
        "LOOKOUT_SHUTDOWN_GRACE_SECS",
        "LOOKOUT_LOG_FORMAT",
        "LOOKOUT_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "LOOKOUT_SECRET_KEY",
        "LOOKOUT_ALERT_SEVERITY_MAPPING",
        "LOOKOUT_TARGET_NETWORKS",
        "LOOKOUT_KAFKA_SAMPLE_CONCURRENCY",
        "LOOKOUT_TARGET_FILES_DIR",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "--help names {var}");
    }
    for sub in ["serve", "migrate", "create-user", "create-token"] {
        assert!(help.contains(sub));
    }
    // Every variable in --help is documented in the README.
    let readme = include_str!("../../README.md");
    for var in help
        .split("[env: ")
        .skip(1)
        .map(|s| s.split([']', '=']).next().unwrap())
    {
        assert!(readme.contains(var), "README documents {var}");
    }
}

#[test]
fn invalid_configuration_names_the_variable() {
    for (var, value) in [
        ("LOOKOUT_SESSION_TTL_HOURS", "abc"),
        ("LOOKOUT_LOG_FORMAT", "xml"),
        ("LEPTOS_SITE_ADDR", "not-an-address"),
        ("LOOKOUT_MAX_BODY_BYTES", "12"),
        ("LOOKOUT_PUBLIC_URL", "::::"),
    ] {
        let out = lookout(&["migrate"]).env(var, value).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}={value}: {err}");
    }
    let out = lookout(&["migrate"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL: cannot connect"));
    let out = lookout(&["migrate"])
        .env("DATABASE_URL", admin_url())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
}

#[tokio::test]
async fn a_failed_migration_stops_the_server_with_a_clear_message() {
    let url = fresh_db("badmig").await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // Something already in the way of the first migration.
    sqlx::query("CREATE TABLE users (id int)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = lookout(&["serve"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database migration failed"), "{err}");
    assert!(err.contains("Lookout did not start"), "{err}");
}

#[tokio::test]
async fn subcommands_then_serve_then_graceful_sigterm_with_json_logs() {
    let url = fresh_db("subcmd").await;
    let out = lookout(&["migrate"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // create-user reads the password from stdin.
    let mut child = lookout(&["create-user", "--username", "ops", "--role", "approver"])
        .env("DATABASE_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ops-long-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("created user ops with the approver role")
    );
    let out = lookout(&["create-user", "--username", "ops2", "--role", "wizard"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!out.status.success());

    let out = lookout(&["create-token", "--role", "viewer", "--name", "deploy-bot"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("lko_"));

    let port = free_port();
    let mut server = lookout(&["serve"])
        .env("DATABASE_URL", &url)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LOOKOUT_ADMIN_PASSWORD", "first-admin-password")
        .env("LOOKOUT_LOG_FORMAT", "json")
        .env("LOOKOUT_SHUTDOWN_GRACE_SECS", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut server).await;
    let c = reqwest::Client::new();
    let me: serde_json::Value = c
        .get(format!("http://127.0.0.1:{port}/api/v1/whoami"))
        .bearer_auth(&token)
        .header("x-request-id", "json-log-check")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "token:deploy-bot");

    // A slow request in flight when SIGTERM arrives still completes.
    let slow = tokio::spawn({
        let c = c.clone();
        async move {
            c.get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    sigterm(&server);
    let status = tokio::task::spawn_blocking(move || {
        let st = wait_exit(&mut server, 15);
        (st, server)
    })
    .await
    .unwrap();
    let (st, mut server) = status;
    assert!(st.success(), "clean exit on SIGTERM: {st}");
    assert_eq!(slow.await.unwrap().unwrap(), 200);
    let mut stdout = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    assert!(!lines.is_empty(), "json logs on stdout: {stdout}");
    assert!(
        stdout.contains("json-log-check"),
        "the request id appears on the request's log lines: {stdout}"
    );
    assert!(stdout.contains("shutting down"));
}

#[tokio::test]
async fn exports_its_own_traces_over_otlp_when_configured() {
    // A minimal OTLP/HTTP receiver: records every request path and body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= pos + 4 + len {
                            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                            let _ = tx.send((path, buf[pos + 4..pos + 4 + len].to_vec()));
                            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n").await;
                            buf.clear();
                        }
                    }
                }
            });
        }
    });

    let url = fresh_db("otlp").await;
    let port = free_port();
    let mut server = lookout(&["serve"])
        .env("DATABASE_URL", &url)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LOOKOUT_ADMIN_PASSWORD", "first-admin-password")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut server).await;
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    // The background workers' spans can make up the first batch: read exports until the
    // request's span arrives (or 20 s pass).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut exports = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let done = String::from_utf8_lossy(&e.1).contains("request");
        exports.push(e);
        if done {
            break;
        }
    }
    sigterm(&server);
    let _ = tokio::task::spawn_blocking(move || wait_exit(&mut server, 15)).await;
    assert!(!exports.is_empty(), "an OTLP export within 20 s");
    for (path, body) in &exports {
        assert_eq!(path, "/v1/traces");
        assert!(
            String::from_utf8_lossy(body).contains("lookout"),
            "service.name lookout in the export"
        );
    }
    assert!(
        exports
            .iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("request")),
        "the request span is exported"
    );
}

/// RUN's embedded default: no DATABASE_URL → a private PostgreSQL under LOOKOUT_DATA_DIR,
/// created on first start, reused (with its data) on the next, stopped on exit.
#[tokio::test]
async fn embedded_postgres_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("lookout-embedded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let start = |port: u16| {
        lookout(&["serve"])
            .env("LOOKOUT_DATA_DIR", &dir)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("LOOKOUT_ADMIN_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let port = free_port();
    let mut first = start(port);
    // The generated admin password is printed once on stdout.
    let mut out = BufReader::new(first.stdout.take().unwrap());
    let mut password = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_string());
            break;
        }
        line.clear();
    }
    let password = password.expect("a generated admin password on first start");
    wait_healthy(port, &mut first).await;
    assert!(
        dir.join("postgres/PG_VERSION").exists(),
        "the cluster lives under LOOKOUT_DATA_DIR"
    );
    let login_page = reqwest::get(format!("http://127.0.0.1:{port}/login"))
        .await
        .unwrap();
    assert_eq!(login_page.status(), 200);
    sigterm(&first);
    let st = tokio::task::spawn_blocking(move || wait_exit(&mut first, 40))
        .await
        .unwrap();
    assert!(st.success());
    assert!(
        !dir.join("postgres/postmaster.pid").exists(),
        "PostgreSQL was stopped on exit"
    );

    let port = free_port();
    let mut second = start(port);
    wait_healthy(port, &mut second).await;
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = c
        .post(format!("http://127.0.0.1:{port}/auth/login"))
        .header("origin", format!("http://127.0.0.1:{port}"))
        .form(&[("username", "admin"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["location"],
        "/",
        "the same data after a restart"
    );
    sigterm(&second);
    let (st, mut second) =
        tokio::task::spawn_blocking(move || (wait_exit(&mut second, 40), second))
            .await
            .unwrap();
    assert!(st.success());
    let mut stdout = String::new();
    second
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        !stdout.contains("password:"),
        "the password is printed only once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn refuses_to_start_without_the_key_once_a_target_holds_a_secret() {
    let url = fresh_db("nokey").await;
    let out = lookout(&["migrate"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO targets (name, kind, connection, secret_ciphertext, environment, created_by)
                 VALUES ('t', 'redis', 'redis://x', '\\x00112233445566778899aabbccddeeff00112233445566778899', 'prod', 'test')")
        .execute(&pool).await.unwrap();
    pool.close().await;
    let out = lookout(&["serve"])
        .env("DATABASE_URL", &url)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LOOKOUT_SECRET_KEY is not set, but 1 target(s) hold encrypted credentials"),
        "{err}"
    );
    let out = lookout(&["migrate"])
        .env("DATABASE_URL", &url)
        .env("LOOKOUT_SECRET_KEY", "not-a-key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOOKOUT_SECRET_KEY"));
}
