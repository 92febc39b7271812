//! The Kubernetes connection check and workload diagnosis against a real kube-apiserver
//! (with etcd, kube-controller-manager, kube-scheduler and kwok's simulated nodes) started
//! by the TEST command (`LOOKOUT_TEST_KUBECONFIG`). Every state is reproduced the way the
//! cluster makes it: the scheduler writes the unschedulable reasons, the controllers the
//! ReplicaSets, rollout conditions and disruption budgets, kwok runs the pods and serves
//! their logs through the API server; what only a kubelet would write (a container's
//! termination, its events) is written through the status subresource and the events API
//! as the kubelet writes it.

mod common;

use common::{cells, codes, fact, finding, run};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn kubeconfig_text() -> String {
    let path = std::env::var("LOOKOUT_TEST_KUBECONFIG")
        .expect("LOOKOUT_TEST_KUBECONFIG is set by scripts/test (a throwaway cluster)");
    std::fs::read_to_string(path).expect("the test cluster's kubeconfig")
}

fn server_of(yaml: &str) -> String {
    let kc = Kubeconfig::from_yaml(yaml).unwrap();
    kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap()
}

async fn admin() -> kube::Client {
    let kc = Kubeconfig::from_yaml(&kubeconfig_text()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn address_for(ns: &str, yaml: &str) -> String {
    probes::kubernetes::config::address(&format!("{}?namespace={ns}", server_of(yaml)), yaml)
}

fn suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 0xffffff
    )
}

async fn create<K>(c: &kube::Client, ns: Option<&str>, v: Value) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(v).unwrap();
    let api: Api<K> = Api::namespaced(c.clone(), ns.unwrap_or("default"));
    api.create(&PostParams::default(), &obj).await.unwrap()
}

async fn namespace(c: &kube::Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", suffix());
    let api: Api<Namespace> = Api::all(c.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap(),
    )
    .await
    .unwrap();
    name
}

/// Two kwok nodes: a general one (8 CPU, 32 GiB) and a tainted GPU one (64 CPU, 256 GiB,
/// `dedicated=gpu:NoSchedule`, label `pool=gpu`). Created once per cluster.
async fn nodes(c: &kube::Client) {
    let api: Api<Node> = Api::all(c.clone());
    for (name, cpu, mem, extra) in [
        ("kwok-general", "8", "32Gi", json!({})),
        (
            "kwok-gpu",
            "64",
            "256Gi",
            json!({ "taints": [{ "key": "dedicated", "value": "gpu", "effect": "NoSchedule" }] }),
        ),
    ] {
        if api.get_opt(name).await.unwrap().is_some() {
            continue;
        }
        let mut spec = json!({});
        if let Value::Object(m) = extra {
            spec = Value::Object(m);
        }
        let labels = if name == "kwok-gpu" {
            json!({ "type": "kwok", "pool": "gpu", "kubernetes.io/hostname": name })
        } else {
            json!({ "type": "kwok", "kubernetes.io/hostname": name })
        };
        let node: Node = serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": { "kwok.x-k8s.io/node": "fake" }, "labels": labels },
            "spec": spec,
            "status": { "allocatable": { "cpu": cpu, "memory": mem, "pods": "110" },
                        "capacity": { "cpu": cpu, "memory": mem, "pods": "110" } }
        }))
        .unwrap();
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("{e}"),
        }
    }
    wait(
        "the kwok nodes are Ready",
        Duration::from_secs(30),
        || async {
            let ns = api.list(&ListParams::default()).await.ok()?;
            let ready = ns
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            (ready >= 2).then_some(())
        },
    )
    .await;
}

async fn wait<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn pods(c: &kube::Client, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(c.clone(), ns);
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

async fn running_pods(c: &kube::Client, ns: &str, selector: &str, n: usize) -> Vec<Pod> {
    wait(
        &format!("{n} running pods {selector} in {ns}"),
        Duration::from_secs(40),
        || async {
            let ps = pods(c, ns, selector).await;
            let running: Vec<Pod> = ps
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            (running.len() >= n).then_some(running)
        },
    )
    .await
}

fn ts(ago_s: i64) -> String {
    let t = k8s_openapi::jiff::Timestamp::now().as_second() - ago_s;
    k8s_openapi::jiff::Timestamp::from_second(t)
        .unwrap()
        .to_string()
}

/// Writes a pod's container state the way the kubelet does (status subresource).
async fn set_container(c: &kube::Client, ns: &str, pod: &Pod, container: Value, ready: bool) {
    let api: Api<Pod> = Api::namespaced(c.clone(), ns);
    let name = pod.metadata.name.clone().unwrap();
    let patch = json!({ "status": {
        "conditions": [
            { "type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": ts(600) },
            { "type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": ts(600) },
            { "type": "PodScheduled", "status": "True", "lastTransitionTime": ts(900) },
            { "type": "Initialized", "status": "True", "lastTransitionTime": ts(900) }
        ],
        "containerStatuses": [container]
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

/// An event about a pod's container, as the kubelet reports it.
#[allow(clippy::too_many_arguments)]
async fn event(
    c: &kube::Client,
    ns: &str,
    pod: &Pod,
    container: &str,
    kind: &str,
    reason: &str,
    message: &str,
    count: i32,
) {
    let pname = pod.metadata.name.clone().unwrap();
    create::<Event>(c, Some(ns), json!({
        "metadata": { "name": format!("{pname}.{}", suffix()), "namespace": ns },
        "involvedObject": { "kind": "Pod", "namespace": ns, "name": pname, "uid": pod.metadata.uid,
                            "apiVersion": "v1", "fieldPath": format!("spec.containers{{{container}}}") },
        "reason": reason, "message": message, "type": kind, "count": count,
        "firstTimestamp": ts(900), "lastTimestamp": ts(20),
        "source": { "component": "kubelet", "host": "kwok-general" }
    }))
    .await;
}

fn deployment(name: &str, replicas: i32, container: Value, extra_pod_spec: Value) -> Value {
    let mut pod_spec = json!({ "containers": [container] });
    if let (Value::Object(a), Value::Object(b)) = (&mut pod_spec, extra_pod_spec) {
        a.extend(b);
    }
    json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": pod_spec }
        }
    })
}

/// The JSON of the `kubectl patch … -p '…'` command in a remediation.
fn patch_of(remediation: &str) -> Value {
    let start = remediation.find("-p '").expect("a kubectl patch command") + 4;
    let end = remediation[start..].find('\'').unwrap() + start;
    serde_json::from_str(&remediation[start..end]).unwrap()
}

/// The remedy works: the API server accepts the patch (dry run) and the result has the change.
async fn dry_run_deployment(c: &kube::Client, ns: &str, name: &str, patch: &Value) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(c.clone(), ns);
    api.patch(
        name,
        &PatchParams::default().dry_run(),
        &Patch::Strategic(patch.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("the remediation's patch is refused: {e}"))
}

fn oom_status(image: &str, restarts: i32) -> Value {
    json!({
        "name": "app", "image": image, "imageID": "", "ready": false, "restartCount": restarts, "started": false,
        "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=app" } },
        "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled", "startedAt": ts(140), "finishedAt": ts(95) } }
    })
}

#[tokio::test]
async fn an_oomkilled_deployment_is_one_finding_with_a_patch_that_applies() {
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "oom").await;
    create::<Deployment>(&c, Some(&ns), deployment("api", 2, json!({
        "name": "app", "image": "registry.example.com/api:1.4.2",
        "resources": { "requests": { "memory": "128Mi", "cpu": "100m" }, "limits": { "memory": "256Mi" } }
    }), json!({}))).await;
    let ps = running_pods(&c, &ns, "app=api", 2).await;
    for p in &ps {
        set_container(
            &c,
            &ns,
            p,
            oom_status("registry.example.com/api:1.4.2", 7),
            false,
        )
        .await;
        event(
            &c,
            &ns,
            p,
            "app",
            "Warning",
            "BackOff",
            "Back-off restarting failed container app",
            31,
        )
        .await;
    }
    let yaml = kubeconfig_text();
    let o = run(
        "kubernetes",
        &address_for(&ns, &yaml),
        &[("workload", "deployment/api")],
    )
    .await;
    assert!(o.is_ok(), "{:?} {:?}", o.result, codes(&o));
    let f = finding(&o, "K8S_CRASHLOOP_OOMKILLED");
    assert!(
        f.title.contains("deployment/api") && f.title.contains("(2 pods)"),
        "{}",
        f.title
    );
    assert_eq!(fact(f, "memory limit"), "256Mi");
    assert!(
        fact(f, "last termination").contains("OOMKilled (exit code 137"),
        "{:?}",
        f.facts
    );
    // The previous container's last lines, read through the API server from kwok.
    let excerpt = f.excerpt.clone().unwrap_or_default();
    assert!(excerpt.contains("OutOfMemoryError"), "{excerpt}");
    let rows = cells(f);
    for p in &ps {
        assert!(rows.contains(p.metadata.name.as_ref().unwrap()), "{rows:?}");
    }
    assert!(
        rows.iter().any(|r| r.contains("Back-off restarting")),
        "the events: {rows:?}"
    );
    // The remedy: a strategic merge patch doubling the limit; the API server accepts it
    // and the Deployment it yields has the new limit (and the request kept).
    assert!(f.remediation.contains("memory: 512Mi"), "{}", f.remediation);
    assert!(f.remediation.contains(&format!(
        "kubectl -n {ns} patch deployment api --type strategic"
    )));
    let d = dry_run_deployment(&c, &ns, "api", &patch_of(&f.remediation)).await;
    let res = d.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.limits.unwrap()["memory"].0, "512Mi");
    assert_eq!(res.requests.unwrap()["memory"].0, "128Mi");
    // Bounded: the 14 permission reviews and a handful of list calls, not one per pod.
    assert!(o.commands < 32, "{} API requests", o.commands);
}

async fn pending_reason(c: &kube::Client, ns: &str, app: &str) -> String {
    wait(
        &format!("{app} is unschedulable"),
        Duration::from_secs(40),
        || async {
            pods(c, ns, &format!("app={app}"))
                .await
                .into_iter()
                .find_map(|p| {
                    p.status?.conditions?.into_iter().find_map(|c| {
                        (c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
                            .then(|| c.message.unwrap_or_default())
                    })
                })
        },
    )
    .await
}

#[tokio::test]
async fn unschedulable_pods_are_told_apart_by_the_schedulers_reason() {
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "sched").await;
    let small = json!({ "requests": { "cpu": "100m", "memory": "64Mi" } });
    create::<Deployment>(&c, Some(&ns), deployment("hungry", 1, json!({
        "name": "app", "image": "busybox:1.36", "resources": { "requests": { "cpu": "100", "memory": "1Gi" } }
    }), json!({}))).await;
    create::<Deployment>(
        &c,
        Some(&ns),
        deployment(
            "trainer",
            1,
            json!({
                "name": "app", "image": "busybox:1.36", "resources": small
            }),
            json!({ "nodeSelector": { "pool": "gpu" } }),
        ),
    )
    .await;
    create::<Deployment>(
        &c,
        Some(&ns),
        deployment(
            "ssd",
            1,
            json!({
                "name": "app", "image": "busybox:1.36", "resources": small
            }),
            json!({ "nodeSelector": { "disktype": "ssd" } }),
        ),
    )
    .await;
    for app in ["hungry", "trainer", "ssd"] {
        let m = pending_reason(&c, &ns, app).await;
        assert!(m.contains("nodes are available"), "{app}: {m}");
    }
    let yaml = kubeconfig_text();
    let o = run("kubernetes", &address_for(&ns, &yaml), &[]).await;
    assert!(o.is_ok(), "{:?}", o.result);

    let f = finding(&o, "K8S_UNSCHEDULABLE_RESOURCES");
    assert!(f.title.contains("deployment/hungry"), "{}", f.title);
    assert!(fact(f, "scheduler's message").contains("Insufficient cpu"));
    assert!(
        fact(f, "largest node allocatable (cpu)").contains("64 on kwok-gpu"),
        "{:?}",
        f.facts
    );
    assert!(
        f.remediation.contains("more than any node has"),
        "{}",
        f.remediation
    );
    let d = dry_run_deployment(&c, &ns, "hungry", &patch_of(&f.remediation)).await;
    let req = d.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .requests
        .unwrap();
    assert_eq!(req["cpu"].0, "57600m", "90% of the largest node");

    let f = finding(&o, "K8S_UNSCHEDULABLE_TAINT");
    assert!(f.title.contains("deployment/trainer"), "{}", f.title);
    assert!(
        fact(f, "taints").contains("dedicated: gpu"),
        "{:?}",
        f.facts
    );
    let d = dry_run_deployment(&c, &ns, "trainer", &patch_of(&f.remediation)).await;
    let tol = d.spec.unwrap().template.spec.unwrap().tolerations.unwrap();
    assert_eq!(
        (tol[0].key.as_deref(), tol[0].value.as_deref()),
        (Some("dedicated"), Some("gpu"))
    );

    let f = finding(&o, "K8S_UNSCHEDULABLE_AFFINITY");
    assert!(f.title.contains("deployment/ssd"), "{}", f.title);
    assert!(
        f.remediation.contains("0 of ")
            && f.remediation.contains(" nodes carry all of disktype=ssd"),
        "{}",
        f.remediation
    );
    // Each workload's pods are in exactly one finding.
    assert_eq!(
        o.findings
            .iter()
            .filter(|f| f.code.starts_with("K8S_UNSCHEDULABLE"))
            .count(),
        3,
        "{:?}",
        codes(&o)
    );
}

#[tokio::test]
async fn a_stuck_rollout_is_tied_to_its_revision_and_budgets_and_services_are_checked() {
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "roll").await;
    let mut d = deployment(
        "web",
        2,
        json!({
            "name": "app", "image": "registry.example.com/web:1.0", "ports": [{ "containerPort": 8080, "name": "http" }],
            "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } }
        }),
        json!({}),
    );
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    create::<Deployment>(&c, Some(&ns), d).await;
    running_pods(&c, &ns, "app=web", 2).await;
    create::<PodDisruptionBudget>(
        &c,
        Some(&ns),
        json!({
            "metadata": { "name": "web" },
            "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "web" } } }
        }),
    )
    .await;
    create::<k8s_openapi::api::core::v1::Service>(
        &c,
        Some(&ns),
        json!({
            "metadata": { "name": "web" },
            "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 9999 }] }
        }),
    )
    .await;
    create::<k8s_openapi::api::core::v1::Service>(
        &c,
        Some(&ns),
        json!({
            "metadata": { "name": "orphan" },
            "spec": { "selector": { "app": "wbe" }, "ports": [{ "port": 80 }] }
        }),
    )
    .await;
    // Revision 2 asks for more CPU than any node has: its pod never schedules and the
    // deployment controller gives up after the progress deadline.
    let api: Api<Deployment> = Api::namespaced(c.clone(), &ns);
    api.patch("web", &PatchParams::default(), &Patch::Strategic(json!({ "spec": { "template": { "spec": {
        "containers": [{ "name": "app", "image": "registry.example.com/web:2.0", "resources": { "requests": { "cpu": "200" } } }]
    } } } })))
    .await
    .unwrap();
    wait(
        "ProgressDeadlineExceeded",
        Duration::from_secs(60),
        || async {
            let d = api.get("web").await.ok()?;
            d.status?
                .conditions?
                .iter()
                .any(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
                .then_some(())
        },
    )
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), &ns);
    wait(
        "the budget is computed",
        Duration::from_secs(30),
        || async {
            let p = pdbs.get("web").await.ok()?;
            (p.status?.expected_pods > 0).then_some(())
        },
    )
    .await;

    let yaml = kubeconfig_text();
    let o = run(
        "kubernetes",
        &address_for(&ns, &yaml),
        &[("workload", "deployment/web")],
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    let f = finding(&o, "K8S_ROLLOUT_STUCK");
    assert!(f.remediation.contains("(revision 2)"), "{}", f.remediation);
    assert!(
        f.remediation.contains("K8S_UNSCHEDULABLE_RESOURCES"),
        "tied to why its pods fail: {}",
        f.remediation
    );
    assert!(
        f.remediation.contains(&format!(
            "kubectl -n {ns} rollout undo deployment/web --to-revision=1"
        )),
        "{}",
        f.remediation
    );
    assert!(
        cells(f).contains(&"registry.example.com/web:2.0".to_string()),
        "{:?}",
        cells(f)
    );
    let f = finding(&o, "K8S_PDB_BLOCKS_DISRUPTION");
    assert_eq!(fact(f, "minAvailable"), "2");
    let f = o
        .findings
        .iter()
        .find(|f| f.code == "K8S_SERVICE_NO_ENDPOINTS" && f.title.contains("service/web"))
        .unwrap_or_else(|| panic!("{:?}", codes(&o)));
    assert!(
        f.title
            .contains("targetPort 9999 is not a port of the pods"),
        "{}",
        f.title
    );
    assert!(f.remediation.contains("8080 (http)"), "{}", f.remediation);
    let svc: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(c.clone(), &ns);
    let fixed = svc
        .patch(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Merge(patch_of(&f.remediation)),
        )
        .await
        .unwrap();
    assert_eq!(
        fixed.spec.unwrap().ports.unwrap()[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    // The orphan Service selects none of this workload's pods, so a workload-scoped run
    // leaves it out; the namespace run names it with the closest pod's labels.
    assert!(
        !o.findings
            .iter()
            .any(|f| f.title.contains("service/orphan"))
    );
    let o = run("kubernetes", &address_for(&ns, &yaml), &[]).await;
    let f = o
        .findings
        .iter()
        .find(|f| f.title.contains("service/orphan"))
        .unwrap_or_else(|| panic!("{:?}", codes(&o)));
    assert!(
        f.title.contains("selector app=wbe matches no pod"),
        "{}",
        f.title
    );
}

/// A StatefulSet and a DaemonSet whose new revision's pods can never schedule: the
/// controllers roll the first pod and wait on it for ever (neither kind has a progress
/// deadline), so the probe calls the rollout stuck once the pod outlives `rollout_stuck_s`.
#[tokio::test]
async fn statefulset_and_daemonset_rollouts_stuck_on_their_new_revision_are_named() {
    use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "sets").await;
    let template = |app: &str| {
        json!({ "metadata": { "labels": { "app": app } }, "spec": { "containers": [{
            "name": "app", "image": format!("registry.example.com/{app}:1"),
            "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] } })
    };
    create::<StatefulSet>(&c, Some(&ns), json!({
        "metadata": { "name": "db" },
        "spec": { "replicas": 2, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } }, "template": template("db") }
    }))
    .await;
    create::<DaemonSet>(&c, Some(&ns), json!({
        "metadata": { "name": "agent" },
        "spec": { "selector": { "matchLabels": { "app": "agent" } }, "template": template("agent") }
    }))
    .await;
    running_pods(&c, &ns, "app=db", 2).await;
    running_pods(&c, &ns, "app=agent", 1).await;
    // Revision 2 of each asks for more CPU than any node has.
    let bad = json!({ "spec": { "template": { "spec": { "containers": [{
        "name": "app", "image": "registry.example.com/app:2", "resources": { "requests": { "cpu": "200" } } }] } } } });
    let sts: Api<StatefulSet> = Api::namespaced(c.clone(), &ns);
    sts.patch(
        "db",
        &PatchParams::default(),
        &Patch::Strategic(bad.clone()),
    )
    .await
    .unwrap();
    let dss: Api<DaemonSet> = Api::namespaced(c.clone(), &ns);
    dss.patch("agent", &PatchParams::default(), &Patch::Strategic(bad))
        .await
        .unwrap();
    let podapi: Api<Pod> = Api::namespaced(c.clone(), &ns);
    wait(
        "db-1 remade on the new revision",
        Duration::from_secs(60),
        || async {
            let update = sts.get("db").await.ok()?.status?.update_revision?;
            let p = podapi.get("db-1").await.ok()?;
            (p.metadata.labels?.get("controller-revision-hash") == Some(&update)).then_some(())
        },
    )
    .await;
    wait(
        "an agent pod of the new template generation",
        Duration::from_secs(60),
        || async {
            let generation = dss
                .get("agent")
                .await
                .ok()?
                .metadata
                .annotations?
                .get("deprecated.daemonset.template.generation")?
                .clone();
            pods(&c, &ns, "app=agent")
                .await
                .iter()
                .any(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("pod-template-generation"))
                        == Some(&generation)
                })
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let yaml = kubeconfig_text();
    let o = run(
        "kubernetes",
        &address_for(&ns, &yaml),
        &[("workload", "statefulset/db"), ("rollout_stuck_s", "1")],
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    let f = finding(&o, "K8S_ROLLOUT_STUCK");
    assert!(
        f.title
            .starts_with("statefulset/db: the rollout is stuck: 1 pod"),
        "{}",
        f.title
    );
    assert!(
        f.remediation.contains("K8S_UNSCHEDULABLE_RESOURCES"),
        "tied to why its pods fail: {}",
        f.remediation
    );
    assert!(
        f.remediation
            .contains(&format!("kubectl -n {ns} rollout undo statefulset/db")),
        "{}",
        f.remediation
    );
    assert!(
        f.remediation
            .contains(&format!("kubectl -n {ns} delete pod db-1")),
        "{}",
        f.remediation
    );
    assert_eq!(fact(f, "pod management"), "OrderedReady");
    assert!(cells(f).contains(&"db-1".to_string()), "{:?}", cells(f));
    // The workload scope keeps the DaemonSet out.
    assert!(
        !o.findings
            .iter()
            .any(|f| f.title.contains("daemonset/agent"))
    );
    // With the default limit (10 min) a 2-second-old pod is no stuck rollout yet.
    let o = run(
        "kubernetes",
        &address_for(&ns, &yaml),
        &[("workload", "statefulset/db")],
    )
    .await;
    assert!(!codes(&o).contains(&"K8S_ROLLOUT_STUCK"), "{:?}", codes(&o));

    let o = run(
        "kubernetes",
        &address_for(&ns, &yaml),
        &[("workload", "daemonset/agent"), ("rollout_stuck_s", "1")],
    )
    .await;
    let f = finding(&o, "K8S_ROLLOUT_STUCK");
    assert!(
        f.title.starts_with("daemonset/agent: the rollout is stuck"),
        "{}",
        f.title
    );
    assert!(
        f.remediation
            .contains(&format!("kubectl -n {ns} rollout undo daemonset/agent")),
        "{}",
        f.remediation
    );
    assert!(
        f.remediation.contains("K8S_UNSCHEDULABLE_RESOURCES"),
        "{}",
        f.remediation
    );
    assert_eq!(fact(f, "maxUnavailable"), "1");
}

/// A CronJob's runs: one completed, then two that ran past their deadline. The probe scoped
/// to the CronJob finds its Jobs' pods, tells the failing runs as one finding (not one
/// per Job), and a crash in a run gets a patch of the CronJob's jobTemplate that the API
/// server accepts.
#[tokio::test]
async fn a_cronjob_whose_runs_fail_is_one_finding_and_its_patch_applies() {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "cron").await;
    let pod_template = json!({ "metadata": { "labels": { "app": "report" } }, "spec": { "restartPolicy": "Never", "containers": [{
        "name": "app", "image": "registry.example.com/report:1",
        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "memory": "128Mi" } } }] } });
    // Scheduled once a year, so the controller never runs it during the test; its runs are
    // made as `kubectl create job --from=cronjob/report` makes them (owned by the CronJob).
    // It keeps 3 failed runs (the default 1 would have the controller delete report-2).
    let cj: CronJob = create(&c, Some(&ns), json!({
        "metadata": { "name": "report" },
        "spec": { "schedule": "0 0 1 1 *", "failedJobsHistoryLimit": 3, "jobTemplate": { "spec": { "backoffLimit": 0, "template": pod_template } } }
    }))
    .await;
    let uid = cj.metadata.uid.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(c.clone(), &ns);
    let run_job = |name: &str, bad: bool| {
        let mut t = pod_template.clone();
        if bad {
            t["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("200");
        }
        json!({
            "metadata": { "name": name, "ownerReferences": [{ "apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "uid": uid, "controller": true }] },
            "spec": { "backoffLimit": 0, "activeDeadlineSeconds": if bad { 2 } else { 600 }, "template": t }
        })
    };
    let finished = |name: &'static str, cond: &'static str| {
        let jobs = jobs.clone();
        async move {
            wait(
                &format!("job {name} {cond}"),
                Duration::from_secs(60),
                || async {
                    let j = jobs.get(name).await.ok()?;
                    j.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == cond && c.status == "True")
                        .then_some(())
                },
            )
            .await
        }
    };
    create::<Job>(&c, Some(&ns), run_job("report-1", false)).await;
    finished("report-1", "Complete").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create::<Job>(&c, Some(&ns), run_job("report-2", true)).await;
    finished("report-2", "Failed").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create::<Job>(&c, Some(&ns), run_job("report-3", true)).await;
    finished("report-3", "Failed").await;

    let yaml = kubeconfig_text();
    let o = run(
        "kubernetes",
        &address_for(&ns, &yaml),
        &[("workload", "cronjob/report")],
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    let f = finding(&o, "K8S_CRONJOB_FAILING");
    assert!(
        f.title
            .starts_with("cronjob/report: the last 2 runs failed"),
        "{} {:?}",
        f.title,
        f.tables
    );
    assert!(
        fact(f, "latest failure").starts_with("job/report-3: DeadlineExceeded"),
        "{:?}",
        f.facts
    );
    assert!(
        f.remediation
            .contains(&format!("kubectl -n {ns} logs job/report-3")),
        "{}",
        f.remediation
    );
    let runs = cells(f);
    for j in ["report-1", "report-2", "report-3"] {
        assert!(runs.contains(&j.to_string()), "{runs:?}");
    }
    // One finding for the CronJob, not one per failed run.
    assert!(!codes(&o).contains(&"K8S_JOB_FAILED"), "{:?}", codes(&o));
    // The completed run's pod is the CronJob's: the summary groups it under the CronJob.
    let s = finding(&o, "K8S_SUMMARY");
    assert!(
        cells(s).iter().any(|c| c.contains("cronjob/report")),
        "{:?}",
        cells(s)
    );

    // A run that crashes (OOMKilled) gets a patch of the CronJob's jobTemplate: evaluated on
    // the real CronJob and Job, the patch is one the API server accepts and it raises the
    // limit the next runs get.
    let job = jobs.get("report-1").await.unwrap();
    let cj = Api::<CronJob>::namespaced(c.clone(), &ns)
        .get("report")
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "report-1-x", "namespace": ns, "uid": "u1", "creationTimestamp": ts(300),
            "ownerReferences": [{ "apiVersion": "batch/v1", "kind": "Job", "name": "report-1", "uid": job.metadata.uid, "controller": true }] },
        "spec": job.spec.clone().unwrap().template.spec,
        "status": { "phase": "Running", "containerStatuses": [oom_status("registry.example.com/report:1", 3)] }
    }))
    .unwrap();
    let snap = probes::kubernetes::rules::Snapshot {
        namespace: ns.clone(),
        now: k8s_openapi::jiff::Timestamp::now().as_second(),
        pods: vec![pod],
        jobs: vec![job],
        cron_jobs: vec![cj],
        scope: "cronjob/report".into(),
        ..Default::default()
    };
    let out = probes::kubernetes::rules::evaluate(&snap, &Default::default());
    let f = out
        .iter()
        .find(|f| f.code == "K8S_CRASHLOOP_OOMKILLED")
        .unwrap_or_else(|| panic!("{:?}", out.iter().map(|f| &f.code).collect::<Vec<_>>()));
    assert!(f.remediation.contains("kubectl -n"), "{}", f.remediation);
    let patched = Api::<CronJob>::namespaced(c.clone(), &ns)
        .patch(
            "report",
            &PatchParams::default().dry_run(),
            &Patch::Strategic(patch_of(&f.remediation)),
        )
        .await
        .unwrap_or_else(|e| panic!("the remediation's patch is refused: {e}"));
    let limits = patched
        .spec
        .unwrap()
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "256Mi");
}

#[tokio::test]
async fn pulls_config_and_probes_are_told_apart_from_the_kubelets_words() {
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "kubelet").await;
    let pod = |name: &str, container: Value| {
        json!({ "metadata": { "name": name, "labels": { "case": name } },
                "spec": { "nodeName": "kwok-general", "containers": [container] } })
    };
    create::<Pod>(
        &c,
        Some(&ns),
        pod(
            "private",
            json!({ "name": "app", "image": "registry.example.com/team/api:v2" }),
        ),
    )
    .await;
    create::<Pod>(
        &c,
        Some(&ns),
        pod(
            "typo",
            json!({ "name": "app", "image": "registry.example.com/team/api:v9" }),
        ),
    )
    .await;
    create::<Pod>(
        &c,
        Some(&ns),
        pod(
            "config",
            json!({ "name": "app", "image": "busybox:1.36",
        "envFrom": [{ "configMapRef": { "name": "app-config" } }] }),
        ),
    )
    .await;
    create::<Pod>(&c, Some(&ns), pod("unready", json!({ "name": "app", "image": "busybox:1.36",
        "ports": [{ "containerPort": 8080 }],
        "readinessProbe": { "httpGet": { "path": "/healthz", "port": 8081 }, "periodSeconds": 5 } }))).await;
    create::<Pod>(&c, Some(&ns), pod("slowstart", json!({ "name": "app", "image": "busybox:1.36",
        "livenessProbe": { "httpGet": { "path": "/live", "port": 8080 }, "initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 3 } }))).await;
    for case in ["private", "typo", "config", "unready", "slowstart"] {
        running_pods(&c, &ns, &format!("case={case}"), 1).await;
    }
    let get = |name: &str| {
        let api: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let name = name.to_string();
        async move { api.get(&name).await.unwrap() }
    };
    let waiting = |image: &str, reason: &str, msg: &str| {
        json!({
            "name": "app", "image": image, "imageID": "", "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": reason, "message": msg } }
        })
    };
    let p = get("private").await;
    set_container(
        &c,
        &ns,
        &p,
        waiting(
            "registry.example.com/team/api:v2",
            "ImagePullBackOff",
            "Back-off pulling image \"registry.example.com/team/api:v2\"",
        ),
        false,
    )
    .await;
    event(&c, &ns, &p, "app", "Warning", "Failed", "Failed to pull image \"registry.example.com/team/api:v2\": failed to resolve reference \"registry.example.com/team/api:v2\": failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized", 4).await;
    let p = get("typo").await;
    set_container(&c, &ns, &p, waiting("registry.example.com/team/api:v9", "ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"registry.example.com/team/api:v9\": failed to resolve reference \"registry.example.com/team/api:v9\": registry.example.com/team/api:v9: not found"), false).await;
    let p = get("config").await;
    set_container(
        &c,
        &ns,
        &p,
        waiting(
            "busybox:1.36",
            "CreateContainerConfigError",
            "configmap \"app-config\" not found",
        ),
        false,
    )
    .await;
    let p = get("unready").await;
    set_container(&c, &ns, &p, json!({ "name": "app", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0, "started": true,
        "state": { "running": { "startedAt": ts(600) } } }), false).await;
    event(&c, &ns, &p, "app", "Warning", "Unhealthy", "Readiness probe failed: Get \"http://10.244.0.9:8081/healthz\": dial tcp 10.244.0.9:8081: connect: connection refused", 118).await;
    let p = get("slowstart").await;
    set_container(&c, &ns, &p, json!({ "name": "app", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 9, "started": false,
        "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 2m40s" } },
        "lastState": { "terminated": { "exitCode": 137, "reason": "Error", "startedAt": ts(80), "finishedAt": ts(55) } } }), false).await;
    event(&c, &ns, &p, "app", "Warning", "Unhealthy", "Liveness probe failed: Get \"http://10.244.0.7:8080/live\": dial tcp 10.244.0.7:8080: connect: connection refused", 27).await;
    event(
        &c,
        &ns,
        &p,
        "app",
        "Normal",
        "Killing",
        "Container app failed liveness probe, will be restarted",
        9,
    )
    .await;

    let yaml = kubeconfig_text();
    let o = run("kubernetes", &address_for(&ns, &yaml), &[]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    let f = finding(&o, "K8S_IMAGE_PULL_UNAUTHORIZED");
    assert!(
        f.title.contains("pod/private") && f.title.contains("registry.example.com"),
        "{}",
        f.title
    );
    assert!(
        f.remediation.contains("create secret docker-registry")
            && f.remediation.contains("imagePullSecrets"),
        "{}",
        f.remediation
    );
    let f = finding(&o, "K8S_IMAGE_PULL_NOT_FOUND");
    assert!(
        f.title.contains("pod/typo") && f.title.contains("api:v9"),
        "{}",
        f.title
    );
    let f = finding(&o, "K8S_CONFIG_MISSING");
    assert!(f.title.contains("configmap app-config"), "{}", f.title);
    assert!(
        f.remediation
            .contains(&format!("kubectl -n {ns} create configmap app-config")),
        "{}",
        f.remediation
    );
    let f = finding(&o, "K8S_NOT_READY");
    assert!(f.title.contains("pod/unready"), "{}", f.title);
    assert!(
        f.remediation
            .contains("Nothing listens on the probe's port 8081")
            && f.remediation.contains("the container declares 8080"),
        "{}",
        f.remediation
    );
    assert_eq!(fact(f, "failures"), "118");
    let f = finding(&o, "K8S_LIVENESS_FAILING");
    assert!(f.title.contains("pod/slowstart"), "{}", f.title);
    assert!(f.remediation.contains("startupProbe"), "{}", f.remediation);
    // A bare Pod cannot be patched: the finding says to edit and recreate instead.
    assert!(
        f.remediation.contains("cannot be changed in place"),
        "{}",
        f.remediation
    );
    // Nothing else is said about these pods (no generic crash-loop duplicate).
    assert!(
        !codes(&o).contains(&"K8S_CRASHLOOP_EXIT"),
        "{:?}",
        codes(&o)
    );
}

/// A token for a service account that may only list pods and events in `ns` (the legacy
/// token Secret, filled in by kube-controller-manager's token controller).
async fn limited_token(c: &kube::Client, ns: &str) -> String {
    create::<k8s_openapi::api::core::v1::ServiceAccount>(
        c,
        Some(ns),
        json!({ "metadata": { "name": "lookout" } }),
    )
    .await;
    create::<k8s_openapi::api::rbac::v1::Role>(c, Some(ns), json!({
        "metadata": { "name": "pods-only" },
        "rules": [{ "apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"] }]
    })).await;
    create::<k8s_openapi::api::rbac::v1::RoleBinding>(c, Some(ns), json!({
        "metadata": { "name": "lookout-pods-only" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods-only" },
        "subjects": [{ "kind": "ServiceAccount", "name": "lookout", "namespace": ns }]
    })).await;
    create::<Secret>(c, Some(ns), json!({
        "metadata": { "name": "lookout-token", "annotations": { "kubernetes.io/service-account.name": "lookout" } },
        "type": "kubernetes.io/service-account-token"
    })).await;
    let api: Api<Secret> = Api::namespaced(c.clone(), ns);
    wait(
        "the token controller fills the token",
        Duration::from_secs(30),
        || async {
            let s = api.get("lookout-token").await.ok()?;
            let t = s.data?.get("token")?.0.clone();
            String::from_utf8(t).ok()
        },
    )
    .await
}

fn with_token(yaml: &str, token: &str) -> String {
    yaml.lines()
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                format!("    token: {token}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn restricted_credentials_are_named_and_the_rest_still_runs() {
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "rbac").await;
    create::<Deployment>(&c, Some(&ns), deployment("api", 1, json!({
        "name": "app", "image": "registry.example.com/api:1", "resources": { "limits": { "memory": "1Gi" } }
    }), json!({}))).await;
    let ps = running_pods(&c, &ns, "app=api", 1).await;
    set_container(
        &c,
        &ns,
        &ps[0],
        oom_status("registry.example.com/api:1", 3),
        false,
    )
    .await;
    let token = limited_token(&c, &ns).await;
    let yaml = with_token(&kubeconfig_text(), &token);
    let addr = address_for(&ns, &yaml);

    let r = probes::kubernetes::check(&addr, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r.server_version, "v1.34.2");
    let facts: std::collections::BTreeMap<_, _> = r.facts.iter().cloned().collect();
    assert_eq!(facts["permissions"], "2 of 14 reads allowed", "{facts:?}");
    let missing = &facts["missing permissions"];
    assert!(
        missing.contains(&format!(
            "get pods/log in {ns} (needed for the crashing containers' last log lines)"
        )),
        "{missing}"
    );
    assert!(missing.contains("list nodes cluster-wide"), "{missing}");
    // The admin may do everything.
    let full = probes::kubernetes::check(
        &address_for(&ns, &kubeconfig_text()),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(
        full.facts
            .iter()
            .any(|(k, v)| k == "permissions" && v == "14 of 14 reads allowed"),
        "{:?}",
        full.facts
    );

    let o = run("kubernetes", &addr, &[]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    let c_ = codes(&o);
    assert!(c_.contains(&"K8S_PERMISSION_MISSING"), "{c_:?}");
    let f = finding(&o, "K8S_CRASHLOOP_OOMKILLED");
    // Without replicasets the pod's owner stays its ReplicaSet; without nodes no cap.
    assert!(f.title.contains("replicaset/api-"), "{}", f.title);
    assert!(f.remediation.contains("memory: 2Gi"), "{}", f.remediation);
    let logs = finding(&o, "K8S_LOGS_UNAVAILABLE");
    assert!(
        fact(logs, "why").contains("no permission to get pods/log"),
        "{:?}",
        logs.facts
    );
}

#[tokio::test]
async fn dead_refused_and_hanging_servers_fail_clearly_and_in_time() {
    let yaml = kubeconfig_text();
    let server = server_of(&yaml);
    // Wrong token: the API server's 401 is an authentication failure.
    let bad = with_token(&yaml, "not-a-valid-token");
    let e = probes::kubernetes::check(&address_for("default", &bad), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, probes::ProbeError::AuthFailed { .. }), "{e:?}");
    // A dead port: refused, quickly.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead_url = format!("https://127.0.0.1:{dead}");
    let moved = yaml.replace(&server, &dead_url);
    let started = Instant::now();
    let e = probes::kubernetes::check(
        &probes::kubernetes::config::address(&dead_url, &moved),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, probes::ProbeError::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .to_ascii_lowercase()
            .contains("connection refused"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // A server that accepts and never answers: the step limit ends it.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("https://127.0.0.1:{}", hang.local_addr().unwrap().port());
    let moved = yaml.replace(&server, &hang_url);
    let started = Instant::now();
    let e = probes::kubernetes::check(
        &probes::kubernetes::config::address(&hang_url, &moved),
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, probes::ProbeError::TimedOut { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let o = run(
        "kubernetes",
        &probes::kubernetes::config::address(&hang_url, &moved),
        &[("step_timeout_s", "1")],
    )
    .await;
    assert!(o.timed_out(), "{:?}", o.result);
    assert!(o.duration < Duration::from_secs(4), "{:?}", o.duration);
    drop(hang);
    // A kubeconfig that would run a program on the Lookout server is refused before
    // anything runs.
    let marker = std::env::temp_dir().join(format!("lookout-exec-{}", suffix()));
    let exec = yaml.replace(
        "    token:",
        &format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"touch {}\"]\n    token:", marker.display()),
    );
    let e = probes::kubernetes::check(&address_for("default", &exec), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exec"), "{e}");
    assert!(!marker.exists());
    // A missing workload is named.
    let o = run(
        "kubernetes",
        &address_for("default", &yaml),
        &[("workload", "deployment/nope")],
    )
    .await;
    assert!(
        o.error_text()
            .unwrap_or_default()
            .contains("there is no deployment \"nope\" in namespace default"),
        "{:?}",
        o.result
    );
}

#[tokio::test]
async fn live_workloads_get_the_manifest_checks() {
    let c = admin().await;
    nodes(&c).await;
    let ns = namespace(&c, "mf").await;
    // A careless Deployment: latest tag, privileged, no resources or probes, 3 replicas
    // without a budget or spread, and a Service whose selector has a typo.
    create::<Deployment>(&c, Some(&ns), deployment("careless", 3, json!({
        "name": "app", "image": "registry.example.com/careless:latest", "securityContext": { "privileged": true }
    }), json!({}))).await;
    create::<k8s_openapi::api::core::v1::Service>(
        &c,
        Some(&ns),
        json!({
            "metadata": { "name": "careless" },
            "spec": { "selector": { "app": "carless" }, "ports": [{ "port": 80 }] }
        }),
    )
    .await;
    // A careful one raises nothing of warning or worse.
    create::<Deployment>(&c, Some(&ns), deployment("careful", 2, json!({
        "name": "app", "image": "registry.example.com/careful:1.4.2",
        "ports": [{ "containerPort": 8080, "name": "http" }],
        "resources": { "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "memory": "256Mi" } },
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" }, "periodSeconds": 10, "timeoutSeconds": 2 },
        "livenessProbe": { "httpGet": { "path": "/livez", "port": "http" }, "periodSeconds": 10, "timeoutSeconds": 2 },
        "securityContext": { "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true }
    }), json!({
        "serviceAccountName": "careful", "automountServiceAccountToken": false,
        "securityContext": { "runAsNonRoot": true, "runAsUser": 10001 },
        "topologySpreadConstraints": [{ "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": { "app": "careful" } } }]
    }))).await;
    create::<PodDisruptionBudget>(
        &c,
        Some(&ns),
        json!({
            "metadata": { "name": "careful" },
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": "careful" } } }
        }),
    )
    .await;
    create::<k8s_openapi::api::core::v1::Service>(&c, Some(&ns), json!({
        "metadata": { "name": "careful" },
        "spec": { "selector": { "app": "careful" }, "ports": [{ "port": 80, "targetPort": "http" }] }
    })).await;

    let yaml = kubeconfig_text();
    let o = run("kubernetes-manifests", &address_for(&ns, &yaml), &[]).await;
    assert!(o.is_ok(), "{:?}", o.result);
    let got = common::problems(&o);
    for code in [
        "K8S_MF_PRIVILEGE",
        "K8S_MF_IMAGE_TAG",
        "K8S_MF_RESOURCES",
        "K8S_MF_PROBES",
        "K8S_MF_NO_PDB",
        "K8S_MF_RUN_AS_ROOT",
        "K8S_MF_SERVICE_SELECTOR",
    ] {
        assert!(got.contains(&code), "{code}: {got:?}");
    }
    for f in &o.findings {
        assert!(
            !cells(f)
                .iter()
                .any(|c| c.starts_with("Deployment/careful") || c.starts_with("Service/careful ")),
            "the careful workload is clean: {} {:?}",
            f.code,
            cells(f)
        );
    }
    let f = finding(&o, "K8S_MF_PRIVILEGE");
    assert!(
        cells(f).contains(&"Deployment/careless".to_string()),
        "{:?}",
        cells(f)
    );
    assert!(
        f.remediation.contains("allowPrivilegeEscalation: false"),
        "{}",
        f.remediation
    );
    let f = finding(&o, "K8S_MF_SERVICE_SELECTOR");
    assert!(
        f.title.contains("app=carless matches no pod template"),
        "{}",
        f.title
    );
    // A workload asking for more than the biggest node (the 64-CPU kwok node) can never run.
    let api: Api<Deployment> = Api::namespaced(c.clone(), &ns);
    api.patch(
        "careless",
        &PatchParams::default(),
        &Patch::Strategic(json!({ "spec": { "template": { "spec": {
        "containers": [{ "name": "app", "resources": { "requests": { "cpu": "100" } } }]
    } } } })),
    )
    .await
    .unwrap();
    let o = run(
        "kubernetes-manifests",
        &address_for(&ns, &yaml),
        &[("workload", "deployment/careless")],
    )
    .await;
    let f = finding(&o, "K8S_MF_REQUESTS_EXCEED_NODE");
    assert!(cells(f).iter().any(|c| c.contains("requests 100 cpu; the largest node (kwok-gpu) has 64 allocatable")), "{:?}", cells(f));
    // One workload: only its own objects (the careful one alone is clean).
    let o = run(
        "kubernetes-manifests",
        &address_for(&ns, &yaml),
        &[("workload", "deployment/careful")],
    )
    .await;
    assert!(o.is_ok(), "{:?}", o.result);
    assert_eq!(common::problems(&o), Vec::<&str>::new(), "{:?}", codes(&o));
}

/// Inside the cluster: the pod's own service account (token and CA as the kubelet mounts
/// them), only for the cluster's own API server.
#[tokio::test]
async fn in_cluster_credentials_reach_only_their_own_api_server() {
    let yaml = kubeconfig_text();
    let server = server_of(&yaml);
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let ca_b64 = kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .certificate_authority_data
        .clone()
        .unwrap();
    let token = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    let dir = std::env::temp_dir().join(format!("lookout-sa-{}", suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    use base64::Engine;
    std::fs::write(
        dir.join("ca.crt"),
        base64::engine::general_purpose::STANDARD
            .decode(ca_b64)
            .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    std::fs::write(dir.join("namespace"), "kube-system\n").unwrap();
    let port = url::Url::parse(&server).unwrap().port().unwrap();
    // SAFETY: only this test reads these variables (the other tests use kubeconfigs).
    unsafe {
        std::env::set_var("KUBERNETES_SERVICE_HOST", "127.0.0.1");
        std::env::set_var("KUBERNETES_SERVICE_PORT", port.to_string());
        std::env::set_var("LOOKOUT_K8S_SERVICEACCOUNT_DIR", &dir);
    }
    for conn in [
        format!("https://127.0.0.1:{port}?in_cluster=true"),
        "https://kubernetes.default.svc?in_cluster=true".to_string(),
    ] {
        let addr = probes::kubernetes::config::address(&conn, "");
        let r = probes::kubernetes::check(&addr, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{conn}: {e}"));
        assert_eq!(r.server_version, "v1.34.2");
        assert!(
            r.facts
                .contains(&("namespace".to_string(), "kube-system".to_string())),
            "{:?}",
            r.facts
        );
    }
    // Another server with in_cluster: the pod's token is never sent there.
    let e = probes::kubernetes::check(
        &probes::kubernetes::config::address("https://evil.example:443?in_cluster=true", ""),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("must be this cluster's API server"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
