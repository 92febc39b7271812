//! The webhook proven with a real Alertmanager (Debian's `prometheus-alertmanager`): the
//! test configures it to send to the test server with an API token, posts an alert to
//! Alertmanager's own API, and watches the incident open and then record the resolution.

mod common;

use common::TestApp;
use domain::Role;
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/bin/prometheus-alertmanager";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn poll<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_real_alertmanager_opens_and_resolves_an_incident(pool: PgPool) {
    assert!(
        std::path::Path::new(BIN).exists(),
        "scripts/test installs prometheus-alertmanager"
    );
    let app = TestApp::spawn(pool).await;
    let token = app.create_token("alertmanager", Role::Responder).await;
    let dir =
        std::env::temp_dir().join(format!("lookout-am-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        r#"route:
  receiver: lookout
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: lookout
    webhook_configs:
      - url: {base}/api/v1/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"#,
        base = app.base
    );
    std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
    let am_port = free_port();
    let am = Command::new(BIN)
        .arg(format!(
            "--config.file={}",
            dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _am = Killed(am);
    let am_url = format!("http://127.0.0.1:{am_port}");
    let http = reqwest::Client::new();
    poll("Alertmanager to be ready", 30, || {
        let http = http.clone();
        let url = format!("{am_url}/-/ready");
        async move {
            http.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        }
    })
    .await;

    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let alert = |ends: Option<time::OffsetDateTime>| {
        let mut a = serde_json::json!([{
            "labels": {"alertname": "DiskAlmostFull", "severity": "warning", "service": "orders-db", "env": "production"},
            "annotations": {"summary": "orders-db disk above 90%"},
            "startsAt": fmt(now - time::Duration::seconds(30)),
            "generatorURL": "http://prometheus.example/graph"
        }]);
        if let Some(e) = ends {
            a[0]["endsAt"] = serde_json::json!(fmt(e));
        }
        a
    };
    let res = http
        .post(format!("{am_url}/api/v2/alerts"))
        .json(&alert(None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "Alertmanager took the alert");

    let pool = app.pool.clone();
    let (number, severity, title): (i64, String, String) = poll("the incident to open", 30, || {
        let pool = pool.clone();
        async move {
            sqlx::query_as("SELECT number, severity::text, title FROM incidents WHERE alert_group_key IS NOT NULL")
                .fetch_optional(&pool)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(severity, "SEV3", "warning → SEV3");
    assert_eq!(title, "orders-db disk above 90%");

    // Resolve it in Alertmanager; the resolved notification adds an event.
    let res = http
        .post(format!("{am_url}/api/v2/alerts"))
        .json(&alert(Some(time::OffsetDateTime::now_utc())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: String = poll("the resolved event", 30, || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar(
                "SELECT e.body FROM timeline_events e JOIN incidents i ON i.id = e.incident_id
                                WHERE i.number = $1 AND e.kind = 'alert_resolved'",
            )
            .bind(number)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    })
    .await;
    assert!(body.contains("DiskAlmostFull"), "{body}");
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(incidents, 1, "one incident for the group");
    let firing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM timeline_events WHERE kind = 'alert_received'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(firing >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}
