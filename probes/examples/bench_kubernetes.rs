//! Benchmark: the Kubernetes workload diagnosis of one namespace holding 2,000 pods and
//! 10,000 events, against a real kube-apiserver (with kwok running the pods).
//!
//! ```sh
//! K8S_BIN_DIR=~/.cache/lookout/k8s/bin-v1.34.2 WITH_KCM=1 WITH_SCHEDULER=1 WITH_KWOK=1 \
//!   scripts/k8s/start-cluster.sh /tmp/k8s-bench
//! LOOKOUT_BENCH_KUBECONFIG=/tmp/k8s-bench/kubeconfig \
//!   cargo run --release -p probes --example bench_kubernetes
//! scripts/k8s/stop-cluster.sh /tmp/k8s-bench
//! ```
//!
//! It seeds namespace `bench-k8s-deployments` once (40 Deployments of 50 replicas: 2,000 pods
//! that the controller makes and kwok runs; the pods of 4 Deployments, 10%, crash-loop with
//! an OOM kill written through the status subresource; and 10,000 events: 5 per pod), then runs the probe over the namespace `LOOKOUT_BENCH_RUNS` times
//! (default 5) and prints the times, the API requests each run made and the findings. Beside
//! it, the same reads with `kubectl get pods,events -o json` (when kubectl is installed) as
//! the floor: what just fetching the state costs. First, the manifest checks over 1,000
//! documents (no cluster needed).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use probes::framework::{self, Connection};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const NS: &str = "bench-k8s-deployments";
const DEPLOYMENTS: usize = 40;
const PODS: usize = 2000;
const EVENTS_PER_POD: usize = 5;

fn ts(ago: i64) -> String {
    let t = k8s_openapi::jiff::Timestamp::now().as_second() - ago;
    k8s_openapi::jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

async fn in_parallel<F, Fut>(n: usize, width: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(0..n)
        .for_each_concurrent(width, f)
        .await;
}

async fn seed(c: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let have = pods
        .list(&ListParams::default().limit(1))
        .await
        .map(|l| l.metadata.remaining_item_count.unwrap_or(0) + l.items.len() as i64)
        .unwrap_or(0);
    if have >= PODS as i64 {
        println!("namespace {NS} already seeded ({have} pods)");
        return;
    }
    let nodes: Api<Node> = Api::all(c.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": { "name": "kwok-bench", "annotations": { "kwok.x-k8s.io/node": "fake" }, "labels": { "type": "kwok" } },
        "status": { "allocatable": { "cpu": "512", "memory": "2Ti", "pods": "5000" },
                    "capacity": { "cpu": "512", "memory": "2Ti", "pods": "5000" } }
    }))
    .expect("node");
    let _ = nodes.create(&PostParams::default(), &node).await;
    let nss: Api<Namespace> = Api::all(c.clone());
    let _ = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": NS } })).expect("ns"),
        )
        .await;
    // 40 Deployments of 50 replicas: the controller makes the pods, the scheduler binds them,
    // kwok runs them.
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), NS);
    for d in 0..DEPLOYMENTS {
        let app = format!("svc-{d}");
        let dep: Deployment = serde_json::from_value(json!({
            "metadata": { "name": app },
            "spec": { "replicas": PODS / DEPLOYMENTS, "selector": { "matchLabels": { "app": app } },
                "template": { "metadata": { "labels": { "app": app } },
                    "spec": { "containers": [{ "name": "app", "image": format!("registry.example.com/{app}:1"),
                        "resources": { "requests": { "cpu": "10m", "memory": "32Mi" }, "limits": { "memory": "128Mi" } } }] } } }
        }))
        .expect("deployment");
        let _ = deployments.create(&PostParams::default(), &dep).await;
    }
    let start = Instant::now();
    let running = loop {
        let all = pods
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let running: Vec<String> = all
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.metadata.name)
            .collect();
        if running.len() >= PODS || start.elapsed() > Duration::from_secs(600) {
            println!(
                "{} pods running after {:.1} s",
                running.len(),
                start.elapsed().as_secs_f64()
            );
            break running;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    // The pods of 4 of the 40 Deployments (10%) crash-loop with an OOM kill.
    let crashing: Vec<String> = running
        .iter()
        .filter(|n| (0..DEPLOYMENTS / 10).any(|d| n.starts_with(&format!("svc-{d}-"))))
        .cloned()
        .collect();
    in_parallel(crashing.len(), 32, |j| {
        let pods = pods.clone();
        let name = crashing[j].clone();
        async move {
            let patch = json!({ "status": {
                "conditions": [{ "type": "Ready", "status": "False", "lastTransitionTime": ts(300) }],
                "containerStatuses": [{ "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 6,
                    "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off" } },
                    "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled", "startedAt": ts(120), "finishedAt": ts(90) } } }]
            }});
            let _ = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await;
        }
    })
    .await;
    let events: Api<Event> = Api::namespaced(c.clone(), NS);
    let t0 = Instant::now();
    let names = running.clone();
    in_parallel(names.len() * EVENTS_PER_POD, 32, |k| {
        let events = events.clone();
        let pod = names[k % names.len()].clone();
        async move {
            let i = k % PODS;
            let reason = ["Scheduled", "Pulled", "Created", "Started", "BackOff"][k / PODS];
            let e: Event = serde_json::from_value(json!({
                "metadata": { "name": format!("{pod}.{k}") },
                "involvedObject": { "kind": "Pod", "namespace": NS, "name": pod, "apiVersion": "v1", "fieldPath": "spec.containers{app}" },
                "reason": reason, "message": format!("{reason} for pod {i}"), "type": if reason == "BackOff" { "Warning" } else { "Normal" },
                "count": 1, "firstTimestamp": ts(600), "lastTimestamp": ts(60), "source": { "component": "kubelet" }
            }))
            .expect("event");
            let _ = events.create(&PostParams::default(), &e).await;
        }
    })
    .await;
    println!(
        "created {} events in {:.1} s",
        PODS * EVENTS_PER_POD,
        t0.elapsed().as_secs_f64()
    );
}

/// Manifest checks over 1,000 documents (500 Deployments, each with its Service): the
/// median of 5 runs of parsing and checking.
fn bench_manifests() {
    let mut text = String::new();
    for i in 0..500 {
        text.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: svc-{i}}}\n  template:\n    metadata:\n      labels: {{app: svc-{i}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/svc-{i}:{}\n        ports: [{{containerPort: 8080, name: http}}]\n        resources: {{requests: {{cpu: 100m, memory: 128Mi}}, limits: {{memory: 256Mi}}}}\n        readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 10}}\n        securityContext: {{allowPrivilegeEscalation: false}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  selector: {{app: svc-{i}}}\n  ports: [{{port: 80, targetPort: {}}}]\n",
            if i % 7 == 0 { "latest" } else { "1.4.2" },
            if i % 11 == 0 { "9090" } else { "http" }
        ));
    }
    let mut times = vec![];
    let mut found = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        let (docs, f) = probes::kubernetes::manifests::check_text(&text).expect("manifests");
        times.push(t0.elapsed().as_secs_f64());
        assert_eq!(docs.len(), 1000);
        found = f.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "manifest checks, 1,000 documents ({} KiB): median {:.0} ms, max {:.0} ms, {found} findings",
        text.len() / 1024,
        times[2] * 1000.0,
        times[4] * 1000.0
    );
}

#[tokio::main]
async fn main() {
    bench_manifests();
    let path = std::env::var("LOOKOUT_BENCH_KUBECONFIG")
        .expect("LOOKOUT_BENCH_KUBECONFIG: a throwaway cluster's kubeconfig");
    let yaml = std::fs::read_to_string(&path).expect("kubeconfig");
    let kc = Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let server = kc.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    seed(&client).await;

    let runs: usize = std::env::var("LOOKOUT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let probe = probes::registry::find("kubernetes").expect("the kubernetes probe");
    let address = probes::kubernetes::config::address(&format!("{server}?namespace={NS}"), &yaml);
    let params = framework::validate_params(probe.spec(), &Default::default()).expect("params");
    let conn = Connection {
        url: address,
        display: server.clone(),
        allowed: vec![],
    };
    let mut times = vec![];
    for i in 0..runs {
        let t0 = Instant::now();
        let o = framework::run(
            probe,
            &conn,
            &params,
            CancellationToken::new(),
            Arc::new(()),
        )
        .await;
        let el = t0.elapsed();
        times.push(el.as_secs_f64());
        let mut codes: Vec<String> = o
            .findings
            .iter()
            .map(|f| {
                format!(
                    "{} ({})",
                    f.code,
                    f.title.chars().take(60).collect::<String>()
                )
            })
            .collect();
        codes.truncate(6);
        println!(
            "run {}: {:.2} s, {} API requests, status {:?}, {} findings: {}",
            i + 1,
            el.as_secs_f64(),
            o.commands,
            o.result.as_ref().map(|_| "ok"),
            o.findings.len(),
            codes.join("; ")
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "lookout kubernetes probe, {PODS} pods / {} events: median {:.2} s, max {:.2} s over {runs} runs",
        PODS * EVENTS_PER_POD,
        times[times.len() / 2],
        times[times.len() - 1]
    );
    // The floor: kubectl reading the same pods and events as JSON.
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        let mut k = vec![];
        for _ in 0..runs {
            let t0 = Instant::now();
            let out = std::process::Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    &path,
                    "-n",
                    NS,
                    "get",
                    "pods,events",
                    "-o",
                    "json",
                ])
                .output()
                .expect("kubectl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            k.push(t0.elapsed().as_secs_f64());
        }
        k.sort_by(f64::total_cmp);
        println!(
            "kubectl get pods,events -o json: median {:.2} s, max {:.2} s",
            k[k.len() / 2],
            k[k.len() - 1]
        );
    }
}
