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
    assert!(text.contains("14 of 14 reads allowed"), "{text}");
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
        (json!({"workload": "service/x"}), "unknown workload kind"),
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

/// Adds a Kubernetes target through the API (the kubeconfig as its secret); its id.
async fn add_cluster(
    app: &TestApp,
    admin: &str,
    name: &str,
    connection: &str,
    kubeconfig: &str,
) -> i64 {
    let (s, t) = app
        .post(
            admin,
            "/api/v1/targets",
            json!({"name": name, "kind": "kubernetes", "connection": connection,
                   "secret": kubeconfig, "environment": "production"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    t["id"].as_i64().unwrap()
}

/// A node of the test cluster as kwok runs them (its allocatable is what the check reads).
async fn ensure_node(name: &str, cpu: &str, memory: &str) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, PostParams};
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let api: Api<Node> = Api::all(kube::Client::try_from(cfg).unwrap());
    let node: Node = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": { "kwok.x-k8s.io/node": "fake" }, "labels": { "type": "kwok" } },
        "status": { "allocatable": { "cpu": cpu, "memory": memory, "pods": "110" },
                    "capacity": { "cpu": cpu, "memory": memory, "pods": "110" } }
    }))
    .unwrap();
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("{e}"),
    }
}

/// A manifest asking for more than any node has, checked against a real cluster through a
/// Kubernetes target: by the API (`?target=`) and by the page's form, pasted or uploaded as a
/// file (multipart, as a browser without JavaScript sends it).
#[sqlx::test(migrations = "../migrations")]
async fn manifests_are_checked_against_a_clusters_nodes_pasted_or_uploaded(pool: PgPool) {
    ensure_node("kwok-lookout-srv", "4", "8Gi").await;
    let app = TestApp::spawn(pool).await;
    let admin = app.create_token("mka", Role::Admin).await;
    let viewer = app.create_token("mkv", Role::Viewer).await;
    let responder = app.create_token("mkr", Role::Responder).await;
    let yaml = kubeconfig();
    let conn = format!("{}?namespace=default", server(&yaml));
    let id = add_cluster(&app, &admin, "prod-cluster", &conn, &yaml).await;
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: big\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: big}\n  template:\n    metadata:\n      labels: {app: big}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/big:1.0\n        resources:\n          requests: {cpu: \"1000\", memory: 64Mi}\n";
    let check = |token: String, query: String| {
        let req = app
            .plain()
            .post(app.url(&format!("/api/v1/kubernetes/manifest-checks{query}")))
            .header("content-type", "application/yaml")
            .bearer_auth(token)
            .body(manifest);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, r) = check(responder.clone(), format!("?target={id}")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["cluster"]["target"], "prod-cluster");
    assert!(r["cluster"]["nodes"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["cluster"]["error"].is_null(), "{r}");
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "K8S_MF_REQUESTS_EXCEED_NODE")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(f["line"], 14, "the container's line: {f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("container app requests 1000 cpu; the largest node ("),
        "{f}"
    );
    // Without a cluster the same text has no such finding; the static checks are the same.
    let (s, plain) = check(viewer.clone(), String::new()).await;
    assert_eq!(s, 200);
    assert!(plain["cluster"].is_null());
    assert!(!plain.to_string().contains("K8S_MF_REQUESTS_EXCEED_NODE"));
    // Using a target's credentials takes a responder; a bad id is named, not guessed.
    assert_eq!(check(viewer.clone(), format!("?target={id}")).await.0, 403);
    assert_eq!(
        check(responder.clone(), "?target=987654".into()).await.0,
        404
    );
    assert_eq!(check(responder.clone(), "?target=abc".into()).await.0, 400);
    assert_eq!(check(responder.clone(), "?tar=1".into()).await.0, 400);
    // A cluster that does not answer: the static findings still come, and the report says why
    // the nodes were not read.
    let dead = "https://127.0.0.1:1";
    let dead_yaml = yaml.replace(&server(&yaml), dead);
    let dead_id = add_cluster(&app, &admin, "dead-cluster", dead, &dead_yaml).await;
    let started = Instant::now();
    let (s, r) = check(responder.clone(), format!("?target={dead_id}")).await;
    assert_eq!(s, 200, "{r}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        r["cluster"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1:1"),
        "{r}"
    );
    assert!(r["findings"].as_array().unwrap().len() >= 2, "{r}");

    // The page: a file chosen (multipart, as a browser posts the form), against the cluster.
    let browser = app.signed_in("mkb", Role::Responder).await;
    let file = reqwest::multipart::Part::bytes(manifest.as_bytes().to_vec())
        .file_name("big.yaml")
        .mime_str("application/yaml")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("yaml", "")
        .part("file", file)
        .text("target", id.to_string());
    let res = browser
        .post(app.url("/kubernetes/manifests"))
        .header("accept", "text/html")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("data-code=\"K8S_MF_REQUESTS_EXCEED_NODE\""),
        "{html}"
    );
    assert!(html.contains("Checked against prod-cluster"), "{html}");
    // The file's text is what the listing shows (its line 14 flagged) and the box now holds.
    assert!(html.contains("registry.example.com/big:1.0"));
    assert!(
        html.contains(&format!("<option value=\"{id}\" selected")),
        "the cluster stays chosen"
    );
    // A file that is not text, or nothing at all: a 422 on the page, nothing checked.
    for (form, want) in [
        (
            reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(vec![0xff, 0xfe, 0x00, 0x9f]).file_name("x.bin"),
            ),
            "not UTF-8 text",
        ),
        (
            reqwest::multipart::Form::new()
                .text("yaml", "  ")
                .text("target", ""),
            "paste manifests or choose a file",
        ),
        (
            reqwest::multipart::Form::new()
                .text("yaml", manifest)
                .text("target", "x\"><svg onload=alert(1)>"),
            "not a target id",
        ),
    ] {
        let res = browser
            .post(app.url("/kubernetes/manifests"))
            .header("accept", "text/html")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let html = res.text().await.unwrap();
        assert!(html.contains(want), "{want}");
        assert!(!html.contains("<svg onload"));
    }
    // The url-encoded form (a browser that sends no file) still works.
    let res = browser
        .post(app.url("/kubernetes/manifests"))
        .header("accept", "text/html")
        .form(&[("yaml", manifest), ("target", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        !res.text()
            .await
            .unwrap()
            .contains("K8S_MF_REQUESTS_EXCEED_NODE")
    );
}
