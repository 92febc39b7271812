//! One place per target kind: a kind defined here, in the test crate, and registered with
//! `domain::kinds::register` — nothing else — is known to the targets API (create, list,
//! kinds), to the connection check and to the probe catalogue and runner. The fake kind
//! talks to a real TCP server this test runs (a greeting line with a version).

mod common;

use common::TestApp;
use domain::Role;
use domain::kinds::{self, Kind, url};
use probes::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, Finding, Params, Probe, ProbeSpec, Severity,
};
use probes::{ConnectionReport, ProbeError};
use serde_json::json;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Greeter;

const HELP: &str = "greeter://host:port";

/// Reads the greeting (`GREETER <version>`) of the server at a `greeter://` address.
async fn greet(address: &str, limit: Duration) -> Result<(String, f64), ProbeError> {
    let (host, port) = url::hosts(address, 7)
        .pop()
        .ok_or_else(|| ProbeError::InvalidTarget(address.into()))?;
    let started = Instant::now();
    let read = async {
        let s = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ProbeError::TimedOut {
            target: address.into(),
            limit: format!("{limit:?}"),
        })?
        .map_err(|e| ProbeError::Unreachable {
            target: address.into(),
            reason: e.to_string(),
            elapsed: format!("{:?}", started.elapsed()),
        })?;
    let version = line
        .trim()
        .strip_prefix("GREETER ")
        .ok_or_else(|| ProbeError::Server {
            target: address.into(),
            reason: format!("unexpected greeting {line:?}"),
        })?;
    Ok((version.to_string(), started.elapsed().as_secs_f64() * 1e3))
}

impl Kind for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }
    fn connection_help(&self) -> &'static str {
        HELP
    }
    fn check_connection(&self, conn: &str) -> Result<(), String> {
        url::check(self.name(), HELP, &["greeter"], conn)
    }
    fn hosts(&self, conn: &str) -> Vec<(String, u16)> {
        url::hosts(conn, 7)
    }
    fn connect_address(
        &self,
        conn: &str,
        username: &str,
        secret: Option<&str>,
    ) -> Result<String, String> {
        url::with_credentials(conn, username, secret)
    }
    fn check<'a>(
        &'a self,
        address: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ConnectionReport, ProbeError>> {
        Box::pin(async move {
            let (version, latency_ms) = greet(address, limit).await?;
            Ok(ConnectionReport {
                kind: "greeter".into(),
                target: address.into(),
                server_version: version,
                latency_ms,
                facts: vec![],
            })
        })
    }
    fn probes(&self) -> Vec<&'static dyn Probe> {
        vec![&GreetingProbe]
    }
}

struct GreetingProbe;

static SPEC: ProbeSpec = ProbeSpec {
    name: "greeting",
    kind: "greeter",
    title: "Greeter version",
    description: "Reads the greeting and flags versions before 2.",
    params: &[],
    steps: &["greet"],
    codes: &[CodeDoc {
        code: "GREETER_OLD",
        severity: Severity::Warning,
        meaning: "The greeter is older than 2.",
        remediation: "Upgrade it.",
    }],
    run_timeout_s: 10,
    check: None,
};

impl Probe for GreetingProbe {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        _params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(async move {
            ctx.phase("greet");
            let (version, _) = greet(&conn.url, ctx.step_timeout()).await?;
            if version.starts_with("1.") {
                ctx.finding(
                    Finding::new(
                        "GREETER_OLD",
                        Severity::Warning,
                        format!("greeter {version}"),
                    )
                    .fact("version", &version)
                    .remediation("Upgrade it."),
                );
            }
            Ok(())
        })
    }
}

fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| kinds::register(&Greeter).expect("greeter registers once"));
}

/// A real TCP server that greets every connection.
async fn greeter_server(version: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(format!("GREETER {version}\n").as_bytes()).await;
        }
    });
    port
}

#[sqlx::test(migrations = "../migrations")]
async fn registering_a_kind_is_all_it_takes(pool: PgPool) {
    use reqwest::Method;
    register();
    assert!(
        kinds::register(&Greeter).is_err(),
        "a name is registered once"
    );
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("a", Role::Admin).await;
    let port = greeter_server("1.9").await;

    // The targets API knows the kind: listed, accepted, its own connection rules applied.
    let (s, k) = app.get(&admin, "/api/v1/target-kinds").await;
    assert_eq!(s, 200);
    assert!(
        k.as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "greeter" && k["connection_help"] == HELP),
        "{k}"
    );
    let (s, e) = app.post(&admin, "/api/v1/targets", json!({"name": "g", "kind": "greeter", "connection": "redis://127.0.0.1:1", "environment": "test"})).await;
    assert_eq!(s, 422, "the kind's own connection check applies: {e}");
    let (s, t) = app.post(&admin, "/api/v1/targets", json!({"name": "g", "kind": "greeter", "connection": format!("greeter://127.0.0.1:{port}"), "environment": "test"})).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["kind"], "greeter");
    let id = t["id"].as_i64().unwrap();

    // The connection check is the kind's.
    let (s, c) = app
        .api(
            &admin,
            Method::POST,
            &format!("/api/v1/targets/{id}/test"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["ok"], true, "{c}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .starts_with("greeter 1.9 answered"),
        "{c}"
    );

    // The catalogue lists its probe, and the runner runs it.
    let (s, cat) = app.get(&admin, "/api/v1/probes").await;
    assert_eq!(s, 200);
    let p = cat
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "greeting")
        .cloned();
    assert_eq!(
        p.as_ref().map(|p| p["kind"].clone()),
        Some(json!("greeter")),
        "{cat}"
    );
    let (s, r) = app
        .post(
            &admin,
            &format!("/api/v1/targets/{id}/probe-runs"),
            json!({"probe": "greeting"}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let run = r["id"].as_i64().or(r["run"]["id"].as_i64()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let d = loop {
        let (s, d) = app.get(&admin, &format!("/api/v1/probe-runs/{run}")).await;
        assert_eq!(s, 200, "{d}");
        if d["run"]["status"] != "running" {
            break d;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(d["run"]["status"], "ok", "{d}");
    assert_eq!(d["findings"][0]["code"], "GREETER_OLD", "{d}");

    // A probe of one kind does not run against another kind's target.
    let (s, e) = app.post(&admin, "/api/v1/targets", json!({"name": "r", "kind": "redis", "connection": "redis://127.0.0.1:1", "environment": "test"})).await;
    assert_eq!(s, 201, "{e}");
    let rid = e["id"].as_i64().unwrap();
    let (s, e) = app
        .post(
            &admin,
            &format!("/api/v1/targets/{rid}/probe-runs"),
            json!({"probe": "greeting"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
}
