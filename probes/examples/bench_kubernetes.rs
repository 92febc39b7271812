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
//! It seeds namespace `bench-k8s` once (2,000 bare pods on a kwok node, 10% of them
//! crash-looping with an OOM kill written through the status subresource, and 10,000
//! events: 5 per pod), then runs the probe over the namespace `LOOKOUT_BENCH_RUNS` times
//! (default 5) and prints the times, the API requests each run made and the findings. Beside
//! it, the same reads with `kubectl get pods,events -o json` (when kubectl is installed) as
//! the floor: what just fetching the state costs.

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use probes::framework::{self, Connection};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const NS: &str = "bench-k8s";
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
    let t0 = Instant::now();
    in_parallel(PODS, 32, |i| {
        let pods = pods.clone();
        async move {
            let app = format!("svc-{}", i % 40);
            let p: Pod = serde_json::from_value(json!({
                "metadata": { "name": format!("pod-{i:05}"), "labels": { "app": app } },
                "spec": { "nodeName": "kwok-bench", "containers": [{ "name": "app", "image": format!("registry.example.com/{app}:1"),
                    "resources": { "requests": { "cpu": "10m", "memory": "32Mi" }, "limits": { "memory": "128Mi" } } }] }
            }))
            .expect("pod");
            let _ = pods.create(&PostParams::default(), &p).await;
        }
    })
    .await;
    println!("created {PODS} pods in {:.1} s", t0.elapsed().as_secs_f64());
    // Wait for kwok to run them, then crash 10% with an OOM kill.
    let start = Instant::now();
    loop {
        let running = pods
            .list(
                &ListParams::default()
                    .fields("status.phase=Running")
                    .limit(1),
            )
            .await
            .map(|l| l.metadata.remaining_item_count.unwrap_or(0) + l.items.len() as i64)
            .unwrap_or(0);
        if running >= PODS as i64 || start.elapsed() > Duration::from_secs(300) {
            println!(
                "{running} pods running after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    in_parallel(PODS / 10, 32, |j| {
        let pods = pods.clone();
        async move {
            let i = j * 10;
            let patch = json!({ "status": {
                "conditions": [{ "type": "Ready", "status": "False", "lastTransitionTime": ts(300) }],
                "containerStatuses": [{ "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 6,
                    "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off" } },
                    "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled", "startedAt": ts(120), "finishedAt": ts(90) } } }]
            }});
            let _ = pods
                .patch_status(&format!("pod-{i:05}"), &PatchParams::default(), &Patch::Strategic(patch))
                .await;
        }
    })
    .await;
    let events: Api<Event> = Api::namespaced(c.clone(), NS);
    let t0 = Instant::now();
    in_parallel(PODS * EVENTS_PER_POD, 32, |k| {
        let events = events.clone();
        async move {
            let i = k % PODS;
            let reason = ["Scheduled", "Pulled", "Created", "Started", "BackOff"][k / PODS];
            let e: Event = serde_json::from_value(json!({
                "metadata": { "name": format!("pod-{i:05}.{k}") },
                "involvedObject": { "kind": "Pod", "namespace": NS, "name": format!("pod-{i:05}"), "apiVersion": "v1", "fieldPath": "spec.containers{app}" },
                "reason": reason, "message": format!("{reason} for pod-{i:05}"), "type": if reason == "BackOff" { "Warning" } else { "Normal" },
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

#[tokio::main]
async fn main() {
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
