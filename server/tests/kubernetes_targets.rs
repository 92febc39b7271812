//! Kubernetes targets through the API, against the real API server the TEST command starts
//! (`LOOKOUT_TEST_KUBECONFIG`): the kubeconfig is the sealed secret and never comes back,
//! the connection test reports the server's version and permissions, a probe run lands with
//! its findings, and every bad kubeconfig is a 422 that names what is wrong and writes nothing.

mod common;

use common::{TestApp, env};
use domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant};

fn kubeconfig() -> String {
    std::fs::read_to_string(env("LOOKOUT_TEST_KUBECONFIG")).unwrap()
}

fn server(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_string()
}

async fn count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM targets")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_kubernetes_target_checks_runs_and_keeps_its_kubeconfig_sealed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("ka", Role::Admin).await;
    let responder = app.create_token("kr", Role::Responder).await;
    let yaml = kubeconfig();
    let token = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    let conn = format!("{}?namespace=default", server(&yaml));
    let (s, t) = app
        .post(
            &admin,
            "/api/v1/targets",
            json!({"name": "prod-cluster", "kind": "kubernetes", "connection": conn,
            "secret": yaml, "environment": "production"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["secret_set"], true);
    assert!(!t.to_string().contains(&token));
    let id = t["id"].as_i64().unwrap();
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, '|') FROM targets t")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(&token), "sealed at rest");

    let (s, r) = app
        .post(&responder, &format!("/api/v1/targets/{id}/test"), json!({}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    let text = r.to_string();
    assert!(text.contains("v1.34.2"), "{text}");
    assert!(text.contains("13 of 13 reads allowed"), "{text}");
    assert!(!text.contains(&token));

    // A run through the API: the default namespace has no pods, and says so.
    let res = app
        .plain()
        .post(app.url(&format!("/api/v1/targets/{id}/probe-runs")))
        .bearer_auth(&responder)
        .json(&json!({"probe": "kubernetes", "params": {"namespace": "kube-system"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let run: Value = res.json().await.unwrap();
    let run_id = run["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let d = loop {
        let (_, d) = app
            .get(&responder, &format!("/api/v1/probe-runs/{run_id}"))
            .await;
        if d["run"]["status"] != "running" {
            break d;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(d["run"]["status"], "ok", "{d}");
    let codes: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["K8S_NOTHING_SELECTED"], "{d}");
    assert!(!d.to_string().contains(&token));
    // Bad parameters are refused before anything runs.
    for (params, want) in [
        (json!({"namespace": "Kube System"}), "namespace"),
        (json!({"workload": "cronjob/x"}), "unknown workload kind"),
        (json!({"label_selector": "app=\"x\""}), "label selector"),
    ] {
        let res = app
            .plain()
            .post(app.url(&format!("/api/v1/targets/{id}/probe-runs")))
            .bearer_auth(&responder)
            .json(&json!({"probe": "kubernetes", "params": params}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        // Refused at once (400), or run and failed naming the parameter.
        if status == 202 {
            let run: Value = serde_json::from_str(&body).unwrap();
            let rid = run["id"].as_i64().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let d = loop {
                let (_, d) = app
                    .get(&responder, &format!("/api/v1/probe-runs/{rid}"))
                    .await;
                if d["run"]["status"] != "running" {
                    break d;
                }
                assert!(Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(d["run"]["status"], "failed", "{d}");
            assert!(d.to_string().contains(want), "{want}: {d}");
        } else {
            assert_eq!(status, 422, "{body}");
            assert!(body.contains(want), "{want}: {body}");
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_kubeconfigs_are_refused_by_name_and_write_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("kb", Role::Admin).await;
    let yaml = kubeconfig();
    let srv = server(&yaml);
    let exec = yaml.replace(
        "    token:",
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n    token:",
    );
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 0..9u8 {
        let (p, n) = ((b'a' + i) as char, (b'a' + i + 1) as char);
        bomb.push_str(&format!(
            "{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    let deployment =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n";
    let huge = format!("{yaml}\n#{}\n", "x".repeat(70 * 1024));
    let cases: Vec<(String, String, &str, &str)> = vec![
        (srv.clone(), exec, "", "exec"),
        (
            format!("{srv}?context=staging"),
            yaml.clone(),
            "",
            "no context \"staging\"",
        ),
        (
            "https://10.9.9.9:6443".into(),
            yaml.clone(),
            "",
            "not to the connection's https://10.9.9.9:6443",
        ),
        (srv.clone(), "clusters: [".into(), "", "does not parse"),
        (srv.clone(), bomb, "", "kubeconfig"),
        (
            srv.clone(),
            format!("a: {}{}", "[".repeat(30_000), "]".repeat(30_000)),
            "",
            "kubeconfig",
        ),
        (
            srv.clone(),
            deployment.into(),
            "",
            "needs clusters, users and contexts",
        ),
        // Bigger than the server's request body limit (64 KiB by default): refused before
        // it is read; the kubeconfig's own 64 KiB bound is the domain's (unit-tested).
        (srv.clone(), huge, "", "over the limit"),
        (srv.clone(), yaml.clone(), "bob", "takes no username"),
        (srv.clone(), String::new(), "", "needs its kubeconfig"),
        (
            format!("{srv}?namespace=Prod"),
            yaml.clone(),
            "",
            "not a Kubernetes namespace name",
        ),
        (
            format!("{srv}?insecure=true"),
            yaml.clone(),
            "",
            "unknown option",
        ),
    ];
    for (conn, secret, user, want) in cases {
        let (s, e) = app
            .post(
                &admin,
                "/api/v1/targets",
                json!({"name": "bad-cluster", "kind": "kubernetes", "connection": conn,
                "username": user, "secret": secret, "environment": "test"}),
            )
            .await;
        assert_eq!(
            s,
            if want == "over the limit" { 413 } else { 422 },
            "{want}: {e}"
        );
        let msg = e["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{want}: {e}");
        assert!(
            !e.to_string().contains("token:"),
            "the secret is not echoed: {e}"
        );
        assert_eq!(count(&app).await, 0, "{want}: nothing written");
    }

    // A good target whose connection is later changed to a context its kubeconfig lacks:
    // refused, and the stored target is unchanged.
    let (s, t) = app
        .post(
            &admin,
            "/api/v1/targets",
            json!({"name": "ok-cluster", "kind": "kubernetes", "connection": srv,
            "secret": yaml, "environment": "test"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_i64().unwrap();
    let res = app
        .plain()
        .patch(app.url(&format!("/api/v1/targets/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"connection": format!("{srv}?context=nope")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains("no context \\\"nope\\\""), "{body}");
    let (_, t) = app.get(&admin, &format!("/api/v1/targets/{id}")).await;
    assert_eq!(t["connection"], srv.as_str());
}

#[sqlx::test(migrations = "../migrations")]
async fn manifests_are_checked_by_line_and_bad_yaml_is_named(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let viewer = app.create_token("mv", Role::Viewer).await;
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/api:latest\n        securityContext: {privileged: true}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  selector: {app: apii}\n  ports: [{port: 80}]\n";
    let post = |body: String, ct: &'static str, token: Option<String>| {
        let req = app
            .plain()
            .post(app.url("/api/v1/kubernetes/manifest-checks"))
            .header("content-type", ct)
            .body(body);
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, r) = post(yaml.into(), "application/yaml", Some(viewer.clone())).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["documents"], 2);
    assert_eq!(r["objects"], json!(["Deployment/api", "Service/api"]));
    let f = r["findings"].as_array().unwrap();
    let by = |code: &str| {
        f.iter()
            .find(|x| x["code"] == code)
            .unwrap_or_else(|| panic!("{code}: {r}"))
    };
    assert_eq!(by("K8S_MF_PRIVILEGE")["line"], 14, "the container's line");
    assert_eq!(by("K8S_MF_PRIVILEGE")["severity"], "critical");
    assert_eq!(by("K8S_MF_IMAGE_TAG")["container"], "app");
    assert_eq!(by("K8S_MF_SERVICE_SELECTOR")["line"], 18);
    assert!(
        by("K8S_MF_SERVICE_SELECTOR")["message"]
            .as_str()
            .unwrap()
            .contains("app=apii matches no pod template")
    );
    assert!(
        by("K8S_MF_NO_PDB")["fix"]
            .as_str()
            .unwrap()
            .contains("maxUnavailable: 1")
    );
    // JSON works too; bad input is a 422 that names the document; no token is a 401.
    let (s, _) = post(
        json!({"yaml": yaml}).to_string(),
        "application/json",
        Some(viewer.clone()),
    )
    .await;
    assert_eq!(s, 200);
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 0..9u8 {
        let (p, n) = ((b'a' + i) as char, (b'a' + i + 1) as char);
        bomb.push_str(&format!(
            "{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    for (body, want) in [
        ("a: [", "do not parse"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nfoo: bar\n",
            "line 5 is not a Kubernetes object",
        ),
        (bomb.as_str(), "do not parse"),
    ] {
        let (s, e) = post(body.to_string(), "application/yaml", Some(viewer.clone())).await;
        assert_eq!(s, 422, "{body}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(want),
            "{want}: {e}"
        );
    }
    let (s, _) = post(yaml.into(), "application/yaml", None).await;
    assert_eq!(s, 401);
    let (s, _) = post(
        yaml.into(),
        "application/x-www-form-urlencoded",
        Some(viewer),
    )
    .await;
    assert_eq!(s, 415);
}
