//! The rules as a table: each case is a small cluster state (the objects as the API returns
//! them) and the codes it must raise, with words the finding must contain. The integration
//! test (`tests/kubernetes.rs`) makes the same states on a real API server.

use super::*;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn t(ago: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(NOW - ago)
        .unwrap()
        .to_string()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// A pod of Deployment `app` (through ReplicaSet `app-1`), with containers and statuses.
fn pod(name: &str, containers: Value, statuses: Value, extra_status: Value) -> Value {
    let mut status =
        json!({ "phase": "Running", "startTime": t(3600), "containerStatuses": statuses });
    if let (Value::Object(a), Value::Object(b)) = (&mut status, extra_status) {
        a.extend(b);
    }
    json!({
        "metadata": { "name": name, "namespace": "shop", "uid": format!("uid-{name}"), "creationTimestamp": t(3600),
                      "labels": { "app": "app" },
                      "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-1", "uid": "rs1", "controller": true }] },
        "spec": { "nodeName": "n1", "containers": containers },
        "status": status
    })
}

fn rs() -> Value {
    json!({ "metadata": { "name": "app-1", "namespace": "shop", "annotations": { "deployment.kubernetes.io/revision": "3" },
        "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "app", "uid": "d1", "controller": true }] },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "app" } },
                  "template": { "metadata": { "labels": { "app": "app" } }, "spec": { "containers": [{ "name": "c", "image": "img:3" }] } } },
        "status": { "replicas": 2, "readyReplicas": 0 } })
}

fn node(name: &str, cpu: &str, mem: &str, extra: Value) -> Value {
    let mut n = json!({ "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
        "status": { "allocatable": { "cpu": cpu, "memory": mem },
                    "conditions": [{ "type": "Ready", "status": "True" }] } });
    if let (Value::Object(a), Value::Object(b)) = (&mut n, extra) {
        for (k, v) in b {
            match (a.get_mut(&k), v) {
                (Some(Value::Object(x)), Value::Object(y)) => x.extend(y),
                (_, v) => {
                    a.insert(k, v);
                }
            }
        }
    }
    n
}

fn ev(pod: &str, container: &str, reason: &str, msg: &str, count: i32) -> Value {
    json!({ "metadata": { "name": format!("{pod}.{reason}"), "namespace": "shop" },
        "involvedObject": { "kind": "Pod", "name": pod, "uid": format!("uid-{pod}"), "fieldPath": format!("spec.containers{{{container}}}") },
        "reason": reason, "message": msg, "count": count, "type": "Warning", "lastTimestamp": t(30) })
}

fn c(name: &str, extra: Value) -> Value {
    let mut v = json!({ "name": name, "image": "registry.example.com/shop/app:3" });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    v
}

fn waiting(name: &str, reason: &str, msg: &str, restarts: i32, last: Value) -> Value {
    json!({ "name": name, "image": "registry.example.com/shop/app:3", "imageID": "", "ready": false, "restartCount": restarts,
            "state": { "waiting": { "reason": reason, "message": msg } }, "lastState": last })
}

fn oom(started: i64, finished: i64) -> Value {
    json!({ "terminated": { "exitCode": 137, "reason": "OOMKilled", "startedAt": t(started), "finishedAt": t(finished) } })
}

/// (pod, container) and the log text or why it could not be read.
type LogCase = (
    (&'static str, &'static str),
    Result<&'static str, &'static str>,
);

#[derive(Default)]
struct Case {
    pods: Vec<Value>,
    events: Vec<Value>,
    nodes: Option<Vec<Value>>,
    others: Vec<(&'static str, Value)>,
    logs: Vec<LogCase>,
}

fn snapshot(case: Case) -> Snapshot {
    let mut s = Snapshot {
        namespace: "shop".into(),
        now: NOW,
        scope: "namespace shop".into(),
        pods: case.pods.into_iter().map(from).collect(),
        events: case.events.into_iter().map(from).collect(),
        nodes: case.nodes.map(|n| n.into_iter().map(from).collect()),
        replica_sets: vec![from(rs())],
        ..Default::default()
    };
    for (kind, v) in case.others {
        match kind {
            "deployment" => s.deployments.push(from(v)),
            "replicaset" => s.replica_sets.push(from(v)),
            "pdb" => s.pdbs.push(from(v)),
            "hpa" => s.hpas.push(from(v)),
            "service" => s.services.push(from(v)),
            "slice" => s.endpoint_slices.push(from(v)),
            "job" => s.jobs.push(from(v)),
            "cronjob" => s.cron_jobs.push(from(v)),
            "statefulset" => s.stateful_sets.push(from(v)),
            "daemonset" => s.daemon_sets.push(from(v)),
            other => panic!("{other}"),
        }
    }
    for ((p, c), r) in case.logs {
        s.logs.insert(
            (p.into(), c.into()),
            r.map(String::from).map_err(String::from),
        );
    }
    s
}

/// A pod controlled by `kind/owner` with `labels`, made `age` seconds ago; `ready` or
/// waiting with `waiting_reason`.
fn owned_pod(
    name: &str,
    kind: &str,
    owner: &str,
    labels: Value,
    age: i64,
    waiting_reason: Option<&str>,
) -> Value {
    let (ready, state) = match waiting_reason {
        None => (true, json!({ "running": { "startedAt": t(age) } })),
        Some(r) => (false, json!({ "waiting": { "reason": r } })),
    };
    json!({
        "metadata": { "name": name, "namespace": "shop", "uid": format!("uid-{name}"), "creationTimestamp": t(age), "labels": labels,
                      "ownerReferences": [{ "apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": format!("uid-{owner}"), "controller": true }] },
        "spec": { "nodeName": "n1", "containers": [{ "name": "c", "image": "img:2" }] },
        "status": { "phase": "Running", "startTime": t(age),
                    "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
                    "containerStatuses": [{ "name": "c", "image": "img:2", "imageID": "", "ready": ready, "restartCount": 0, "state": state }] }
    })
}

fn sts(update: &str) -> Value {
    json!({ "metadata": { "name": "db", "namespace": "shop" },
        "spec": { "replicas": 3, "serviceName": "db", "selector": { "matchLabels": { "app": "db" } },
                  "template": { "metadata": { "labels": { "app": "db" } }, "spec": { "containers": [{ "name": "c", "image": "img:2" }] } } },
        "status": { "replicas": 3, "readyReplicas": 2, "updatedReplicas": 1, "currentRevision": "db-1", "updateRevision": update } })
}

fn ds() -> Value {
    json!({ "metadata": { "name": "agent", "namespace": "shop", "generation": 4, "annotations": { "deprecated.daemonset.template.generation": "4" } },
        "spec": { "selector": { "matchLabels": { "app": "agent" } },
                  "template": { "metadata": { "labels": { "app": "agent" } }, "spec": { "containers": [{ "name": "c", "image": "img:2" }] } } },
        "status": { "currentNumberScheduled": 2, "desiredNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 1,
                    "updatedNumberScheduled": 1, "numberUnavailable": 1 } })
}

/// A run of CronJob `report`, started `age` seconds ago, ended as `outcome` (or running).
fn run_of_report(name: &str, age: i64, outcome: Option<&str>) -> Value {
    let conditions = match outcome {
        Some("Complete") => json!([{ "type": "Complete", "status": "True" }]),
        Some(r) => {
            json!([{ "type": "Failed", "status": "True", "reason": r, "message": "Job has reached the specified backoff limit" }])
        }
        None => json!([]),
    };
    json!({ "metadata": { "name": name, "namespace": "shop", "creationTimestamp": t(age),
                          "ownerReferences": [{ "apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "uid": "cj1", "controller": true }] },
        "spec": { "backoffLimit": 2, "template": { "spec": { "containers": [] } } },
        "status": { "startTime": t(age), "failed": if outcome.is_some_and(|o| o != "Complete") { 3 } else { 0 }, "conditions": conditions } })
}

fn cronjob(suspend: bool) -> Value {
    json!({ "metadata": { "name": "report", "namespace": "shop" },
        "spec": { "schedule": "0 * * * *", "suspend": suspend,
                  "jobTemplate": { "spec": { "template": { "metadata": { "labels": { "app": "report" } }, "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "img:2" }] } } } } },
        "status": { "lastScheduleTime": t(600), "lastSuccessfulTime": t(10_800) } })
}

/// (name, state, expected warning-or-worse codes in order of appearance (sorted), words in
/// the first finding with the first code).
fn cases() -> Vec<(&'static str, Case, Vec<&'static str>, Vec<&'static str>)> {
    let mem_limit = json!({ "resources": { "limits": { "memory": "512Mi" }, "requests": { "memory": "256Mi" } } });
    vec![
        (
            "two OOMKilled replicas are one finding; the limit doubles",
            Case {
                pods: vec![
                    pod("app-1-a", json!([c("c", mem_limit.clone())]), json!([waiting("c", "CrashLoopBackOff", "back-off", 6, oom(120, 60))]), json!({})),
                    pod("app-1-b", json!([c("c", mem_limit.clone())]), json!([waiting("c", "CrashLoopBackOff", "back-off", 4, oom(120, 60))]), json!({})),
                ],
                logs: vec![(("app-1-a", "c"), Ok("heap exhausted\n"))],
                nodes: Some(vec![node("n1", "4", "16Gi", json!({}))]),
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_OOMKILLED"],
            vec!["deployment/app", "(2 pods)", "memory: 1Gi", "kubectl -n shop patch deployment app --type strategic"],
        ),
        (
            "the doubled limit is capped at the largest node, and the request follows",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "resources": { "limits": { "memory": "12Gi" }, "requests": { "memory": "12Gi" } } }))]), json!([waiting("c", "CrashLoopBackOff", "", 3, oom(50, 40))]), json!({}))],
                nodes: Some(vec![node("n1", "4", "16Gi", json!({})), node("n2", "4", "15Gi", json!({}))]),
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_OOMKILLED"],
            vec!["memory: 16Gi", "capped at the largest node's allocatable, n1"],
        ),
        (
            "a limit already at the biggest node's memory: the remedy is not a bigger limit",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "resources": { "limits": { "memory": "16Gi" } } }))]), json!([waiting("c", "CrashLoopBackOff", "", 3, oom(50, 40))]), json!({}))],
                nodes: Some(vec![node("n1", "4", "16Gi", json!({}))]),
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_OOMKILLED"],
            vec!["Raising it cannot help", "-Xmx"],
        ),
        (
"no limit: twice the request, capped at the biggest node",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "resources": { "requests": { "memory": "6Gi" } } }))]), json!([waiting("c", "CrashLoopBackOff", "", 3, oom(50, 40))]), json!({}))],
                nodes: Some(vec![node("n1", "4", "8Gi", json!({}))]),
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_OOMKILLED"],
            vec!["memory limit (none set)", "memory: 8Gi"],
        ),
        (
            "a crash with exit 127 explains the command; the logs are quoted",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({}))]), json!([waiting("c", "CrashLoopBackOff", "", 12, json!({ "terminated": { "exitCode": 127, "reason": "Error" } }))]), json!({}))],
                logs: vec![(("app-1-a", "c"), Ok("exec: \"gunicorn\": executable file not found in $PATH\n"))],
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_EXIT"],
            vec!["exit code 127", "command is not found in the image"],
        ),
        (
            "liveness kills a slow starter: a startup probe sized on the measured run",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "livenessProbe": { "httpGet": { "path": "/live", "port": 8080 }, "initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 3 } }))]),
                    json!([waiting("c", "CrashLoopBackOff", "", 9, json!({ "terminated": { "exitCode": 137, "reason": "Error", "startedAt": t(100), "finishedAt": t(60) } }))]), json!({}))],
                events: vec![ev("app-1-a", "c", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 503", 27)],
                ..Default::default()
            },
            vec!["K8S_LIVENESS_FAILING"],
            vec!["startupProbe", "failureThreshold: 8", "ran 40s before the kill; the probe allows 20s"],
        ),
        (
            "image pull: unauthorized vs not found vs rate limit",
            Case {
                pods: vec![
                    pod("app-1-a", json!([c("c", json!({}))]), json!([waiting("c", "ImagePullBackOff", "Back-off pulling image", 0, json!({}))]), json!({ "phase": "Pending" })),
                    pod("app-1-b", json!([c("d", json!({ "image": "ghcr.io/acme/tool:v1" }))]), json!([waiting("d", "ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"ghcr.io/acme/tool:v1\": not found", 0, json!({}))]), json!({ "phase": "Pending" })),
                    pod("app-1-c", json!([c("e", json!({ "image": "redis" }))]), json!([waiting("e", "ErrImagePull", "toomanyrequests: You have reached your pull rate limit", 0, json!({}))]), json!({ "phase": "Pending" })),
                ],
                events: vec![ev("app-1-a", "c", "Failed", "Failed to pull image \"registry.example.com/shop/app:3\": 401 Unauthorized", 5)],
                ..Default::default()
            },
            vec!["K8S_IMAGE_PULL_NOT_FOUND", "K8S_IMAGE_PULL_UNAUTHORIZED", "K8S_IMAGE_PULL_FAILED"],
            vec!["ghcr.io/acme/tool:v1", "does not exist"],
        ),
        (
            "a missing key in a Secret is named with the command that adds it",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({}))]), json!([waiting("c", "CreateContainerConfigError", "couldn't find key password in Secret shop/db", 0, json!({}))]), json!({ "phase": "Pending" }))],
                ..Default::default()
            },
            vec!["K8S_CONFIG_MISSING"],
            vec!["secret db key password", "kubectl -n shop patch secret db"],
        ),
        (
            "pending over resources: request vs the largest node, and the fitting patch",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "resources": { "requests": { "cpu": "6", "memory": "1Gi" } } }))]), json!([]),
                    json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod." }] }))],
                nodes: Some(vec![node("n1", "4", "16Gi", json!({})), node("n2", "3800m", "16Gi", json!({}))]),
                ..Default::default()
            },
            vec!["K8S_UNSCHEDULABLE_RESOURCES"],
            vec!["cpu: 3600m", "more than any node has (4 on n1)"],
        ),
        (
            "pending on a taint: the nodes the selector picks are tainted (whatever the message lists first)",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({}))]), json!([]),
                    json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}." }] }))]
                    .into_iter()
                    .map(|mut p| {
                        p["spec"]["nodeSelector"] = json!({ "pool": "gpu" });
                        p
                    })
                    .collect(),
                nodes: Some(vec![
                    node("n1", "4", "16Gi", json!({})),
                    node("g1", "64", "256Gi", json!({ "metadata": { "labels": { "pool": "gpu" } }, "spec": { "taints": [{ "key": "dedicated", "value": "gpu", "effect": "NoSchedule" }] } })),
                ]),
                ..Default::default()
            },
            vec!["K8S_UNSCHEDULABLE_TAINT"],
            vec!["tolerations:", "key: dedicated", "value: gpu"],
        ),
        (
            "pending on a selector no node has, although the message also names a taint",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({}))]), json!([]),
                    json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}." }] }))]
                    .into_iter()
                    .map(|mut p| {
                        p["spec"]["nodeSelector"] = json!({ "disktype": "ssd" });
                        p
                    })
                    .collect(),
                nodes: Some(vec![node("n1", "4", "16Gi", json!({})), node("g1", "64", "256Gi", json!({ "spec": { "taints": [{ "key": "dedicated", "value": "gpu", "effect": "NoSchedule" }] } }))]),
                ..Default::default()
            },
            vec!["K8S_UNSCHEDULABLE_AFFINITY"],
            vec!["0 of 2 nodes carry all of disktype=ssd"],
        ),
        (
            "running but not ready: a timeout gets a longer timeoutSeconds",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "readinessProbe": { "httpGet": { "path": "/ready", "port": 8080 }, "timeoutSeconds": 1 } }))]),
                    json!([{ "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": { "running": { "startedAt": t(900) } } }]), json!({}))],
                events: vec![ev("app-1-a", "c", "Unhealthy", "Readiness probe failed: Get \"http://10.0.0.5:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)", 40)],
                ..Default::default()
            },
            vec!["K8S_NOT_READY"],
            vec!["timeoutSeconds: 3", "(\"running for\", \"15m\")"],
        ),
        (
            "a named probe port the container does not declare",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({ "ports": [{ "containerPort": 8080, "name": "http" }], "readinessProbe": { "httpGet": { "path": "/ready", "port": "metrics" } } }))]),
                    json!([{ "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": { "running": { "startedAt": t(900) } } }]), json!({}))],
                events: vec![ev("app-1-a", "c", "Unhealthy", "Readiness probe failed: strconv.Atoi: parsing \"metrics\": invalid syntax", 40)],
                ..Default::default()
            },
            vec!["K8S_NOT_READY"],
            vec!["port `metrics`, which the container does not declare"],
        ),
        (
            "evicted pods, a stuck init container and many restarts",
            Case {
                pods: vec![
                    pod("app-1-a", json!([c("c", json!({}))]), json!([]), json!({ "phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 90Mi." })),
                    {
                        let mut p = pod("app-1-b", json!([c("c", json!({}))]), json!([]), json!({ "phase": "Pending", "startTime": t(900),
                            "initContainerStatuses": [{ "name": "wait-db", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0, "state": { "running": { "startedAt": t(890) } } }] }));
                        p["spec"]["initContainers"] = json!([{ "name": "wait-db", "image": "busybox" }]);
                        p
                    },
                    pod("app-1-c", json!([c("c", json!({}))]), json!([{ "name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 11,
                        "state": { "running": { "startedAt": t(100) } }, "lastState": { "terminated": { "exitCode": 1, "reason": "Error" } } }]), json!({})),
                ],
                ..Default::default()
            },
            vec!["K8S_EVICTED", "K8S_INIT_STUCK", "K8S_HIGH_RESTARTS"],
            vec!["low on resource: memory"],
        ),
        (
            "a stuck rollout names the new revision, why its pods fail and the undo",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", mem_limit.clone())]), json!([waiting("c", "CrashLoopBackOff", "", 6, oom(120, 60))]), json!({}))],
                others: vec![
                    ("deployment", json!({ "metadata": { "name": "app", "namespace": "shop" }, "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "app" } },
                        "template": { "metadata": { "labels": { "app": "app" } }, "spec": { "containers": [{ "name": "c" }] } }, "progressDeadlineSeconds": 600 },
                        "status": { "updatedReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 1, "conditions": [
                            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"app-1\" has timed out progressing." }] } })),
                    ("replicaset", json!({ "metadata": { "name": "app-0", "namespace": "shop", "annotations": { "deployment.kubernetes.io/revision": "2" },
                        "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "app", "uid": "d1", "controller": true }] },
                        "spec": { "selector": { "matchLabels": { "app": "app" } } } })),
                ],
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_OOMKILLED", "K8S_ROLLOUT_STUCK"],
            vec![],
        ),
        (
            "budgets, autoscalers, services and jobs",
            Case {
                pods: vec![{
                    let mut p = pod("app-1-a", json!([c("c", json!({ "ports": [{ "containerPort": 8080 }] }))]), json!([]), json!({ "conditions": [{ "type": "Ready", "status": "True" }] }));
                    p["status"]["containerStatuses"] = json!([{ "name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": { "running": { "startedAt": t(100) } } }]);
                    p
                }],
                others: vec![
                    ("pdb", json!({ "metadata": { "name": "app" }, "spec": { "minAvailable": 2, "selector": { "matchLabels": { "app": "app" } } },
                        "status": { "currentHealthy": 2, "desiredHealthy": 2, "disruptionsAllowed": 0, "expectedPods": 2 } })),
                    ("hpa", json!({ "metadata": { "name": "app" }, "spec": { "maxReplicas": 10, "scaleTargetRef": { "kind": "Deployment", "name": "app" } },
                        "status": { "currentReplicas": 10, "desiredReplicas": 14, "conditions": [{ "type": "ScalingLimited", "status": "True" }] } })),
                    ("hpa", json!({ "metadata": { "name": "worker" }, "spec": { "maxReplicas": 5, "scaleTargetRef": { "kind": "Deployment", "name": "worker" } },
                        "status": { "desiredReplicas": 1, "conditions": [{ "type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "unable to get metrics for resource cpu" }] } })),
                    ("service", json!({ "metadata": { "name": "app" }, "spec": { "selector": { "app": "app" }, "ports": [{ "port": 80, "targetPort": 9090 }] } })),
                    ("service", json!({ "metadata": { "name": "good" }, "spec": { "selector": { "app": "app" }, "ports": [{ "port": 80, "targetPort": 8080 }] } })),
                    ("slice", json!({ "metadata": { "name": "good-x", "labels": { "kubernetes.io/service-name": "good" } }, "addressType": "IPv4",
                        "endpoints": [{ "addresses": ["10.0.0.1"], "conditions": { "ready": true } }] })),
                    ("service", json!({ "metadata": { "name": "external" }, "spec": { "type": "ExternalName", "externalName": "db.example.com" } })),
                    ("job", json!({ "metadata": { "name": "migrate" }, "spec": { "backoffLimit": 2, "template": { "spec": { "containers": [] } } },
                        "status": { "failed": 3, "conditions": [{ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" }] } })),
                ],
                ..Default::default()
            },
            vec!["K8S_SERVICE_NO_ENDPOINTS", "K8S_PDB_BLOCKS_DISRUPTION", "K8S_HPA_AT_MAX", "K8S_HPA_NO_METRICS", "K8S_JOB_FAILED"],
            vec!["targetPort 9090 is not a port of the pods", "targetPort: 8080"],
        ),
        (
            "node pressure and NotReady where the pods run; other nodes are not reported",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({}))]), json!([{ "name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": { "running": {} } }]), json!({}))],
                nodes: Some(vec![
                    node("n1", "4", "16Gi", json!({ "status": { "conditions": [{ "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status." },
                        { "type": "DiskPressure", "status": "True" }] } })),
                    node("n9", "4", "16Gi", json!({ "status": { "conditions": [{ "type": "Ready", "status": "False" }] } })),
                ]),
                ..Default::default()
            },
            vec!["K8S_NODE_NOT_READY", "K8S_NODE_PRESSURE"],
            vec!["node/n1", "Kubelet stopped posting"],
        ),
        (
            "a StatefulSet rollout stuck on a pod of the new revision names the pod to delete",
            Case {
                pods: vec![
                    owned_pod("db-0", "StatefulSet", "db", json!({ "app": "db", "controller-revision-hash": "db-1" }), 7200, None),
                    owned_pod("db-1", "StatefulSet", "db", json!({ "app": "db", "controller-revision-hash": "db-1" }), 7200, None),
                    owned_pod("db-2", "StatefulSet", "db", json!({ "app": "db", "controller-revision-hash": "db-2" }), 1200, Some("ContainerCreating")),
                ],
                others: vec![("statefulset", sts("db-2"))],
                ..Default::default()
            },
            vec!["K8S_ROLLOUT_STUCK"],
            vec!["statefulset/db: the rollout is stuck: 1 pod of the new revision not Ready for 20m", "db-2", "kubectl -n shop rollout undo statefulset/db", "kubectl -n shop delete pod db-2", "OrderedReady"],
        ),
        (
            "a StatefulSet's new pod younger than the limit, or an old revision's pod not ready, is no stuck rollout",
            Case {
                pods: vec![
                    owned_pod("db-1", "StatefulSet", "db", json!({ "app": "db", "controller-revision-hash": "db-1" }), 7200, Some("ContainerCreating")),
                    owned_pod("db-2", "StatefulSet", "db", json!({ "app": "db", "controller-revision-hash": "db-2" }), 300, Some("ContainerCreating")),
                ],
                others: vec![("statefulset", sts("db-2"))],
                ..Default::default()
            },
            vec![],
            vec![],
        ),
        (
            "a StatefulSet scaling up on its current revision is no rollout",
            Case {
                pods: vec![owned_pod("db-2", "StatefulSet", "db", json!({ "app": "db", "controller-revision-hash": "db-1" }), 1200, Some("ContainerCreating"))],
                others: vec![("statefulset", sts("db-1"))],
                ..Default::default()
            },
            vec![],
            vec![],
        ),
        (
            "a DaemonSet rollout stuck on a pod of the new template generation",
            Case {
                pods: vec![
                    owned_pod("agent-a", "DaemonSet", "agent", json!({ "app": "agent", "pod-template-generation": "3" }), 7200, None),
                    owned_pod("agent-b", "DaemonSet", "agent", json!({ "app": "agent", "pod-template-generation": "4" }), 900, Some("ContainerCreating")),
                ],
                others: vec![("daemonset", ds())],
                ..Default::default()
            },
            vec!["K8S_ROLLOUT_STUCK"],
            vec!["daemonset/agent: the rollout is stuck", "agent-b", "rollout undo daemonset/agent", "maxUnavailable (1)"],
        ),
        (
            "a CronJob whose last runs failed is one finding, not one per run",
            Case {
                others: vec![
                    ("cronjob", cronjob(false)),
                    ("job", run_of_report("report-1", 10_800, Some("Complete"))),
                    ("job", run_of_report("report-2", 7200, Some("BackoffLimitExceeded"))),
                    ("job", run_of_report("report-3", 3600, Some("DeadlineExceeded"))),
                    ("job", run_of_report("report-4", 60, None)),
                ],
                ..Default::default()
            },
            vec!["K8S_CRONJOB_FAILING", "K8S_NOTHING_SELECTED"],
            vec!["cronjob/report: the last 2 runs failed (last success 3h ago)", "job/report-3: DeadlineExceeded", "kubectl -n shop logs job/report-3", "create job --from=cronjob/report report-check"],
        ),
        (
            "a CronJob's crashing run gets a patch of the CronJob's jobTemplate",
            Case {
                pods: vec![{
                    let mut p = pod("report-3-x", json!([c("c", mem_limit.clone())]), json!([waiting("c", "CrashLoopBackOff", "back-off", 6, oom(120, 60))]), json!({}));
                    p["metadata"]["ownerReferences"] = json!([{ "apiVersion": "batch/v1", "kind": "Job", "name": "report-3", "uid": "j3", "controller": true }]);
                    p
                }],
                others: vec![("cronjob", cronjob(true)), ("job", run_of_report("report-3", 3600, None))],
                ..Default::default()
            },
            vec!["K8S_CRASHLOOP_OOMKILLED"],
            vec!["cronjob/report", "jobTemplate", "kubectl -n shop patch cronjob report --type strategic", "kubectl -n shop create job --from=cronjob/report"],
        ),
        (
            "a healthy namespace raises nothing",
            Case {
                pods: vec![pod("app-1-a", json!([c("c", json!({}))]), json!([{ "name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 1, "state": { "running": {} } }]), json!({}))],
                nodes: Some(vec![node("n1", "4", "16Gi", json!({}))]),
                ..Default::default()
            },
            vec![],
            vec![],
        ),
    ]
}

#[test]
fn rules_table() {
    for (name, case, want, words) in cases() {
        let s = snapshot(case);
        let out = evaluate(&s, &Limits::default());
        let got: Vec<&str> = out
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .map(|f| f.code.as_str())
            .collect();
        let mut g = got.clone();
        let mut w = want.clone();
        g.sort();
        w.sort();
        assert_eq!(g, w, "{name}: {got:?}");
        if let Some(first) = want.first() {
            let f = out.iter().find(|f| f.code == *first).unwrap();
            let text = format!(
                "{}\n{:?}\n{}\n{:?}\n{}",
                f.title,
                f.facts,
                f.remediation,
                f.tables,
                f.excerpt.clone().unwrap_or_default()
            );
            for word in words {
                assert!(text.contains(word), "{name}: {word:?} not in\n{text}");
            }
        }
        // Every code raised is documented.
        for f in &out {
            assert!(
                CODES.iter().any(|c| c.code == f.code),
                "{name}: undocumented {}",
                f.code
            );
        }
    }
}

#[test]
fn logs_and_permissions_are_said_not_hidden() {
    let mut s = snapshot(Case {
        pods: vec![pod(
            "app-1-a",
            json!([c("c", json!({}))]),
            json!([waiting(
                "c",
                "CrashLoopBackOff",
                "",
                3,
                json!({ "terminated": { "exitCode": 1, "reason": "Error" } })
            )]),
            json!({}),
        )],
        logs: vec![(("app-1-a", "c"), Err("no permission to get pods/log"))],
        ..Default::default()
    });
    s.denied.push((
        "get pods/log in shop".into(),
        "the crashing containers' last log lines".into(),
    ));
    let out = evaluate(&s, &Limits::default());
    let codes: Vec<&str> = out.iter().map(|f| f.code.as_str()).collect();
    assert!(
        codes.contains(&"K8S_PERMISSION_MISSING") && codes.contains(&"K8S_LOGS_UNAVAILABLE"),
        "{codes:?}"
    );
    let crash = out.iter().find(|f| f.code == "K8S_CRASHLOOP_EXIT").unwrap();
    assert!(
        crash
            .remediation
            .contains("logs could not be read: no permission"),
        "{}",
        crash.remediation
    );
    // The overview lists the workload with its states and the codes raised on it.
    let sum = out.iter().find(|f| f.code == "K8S_SUMMARY").unwrap();
    assert_eq!(sum.title, "namespace shop: 1 pods in 1 workloads, 0 ready");
    assert_eq!(
        sum.tables[0].rows[0],
        vec![
            "deployment/app",
            "1",
            "0",
            "0",
            "1",
            "3",
            "K8S_CRASHLOOP_EXIT"
        ]
    );
    // No pods at all, and a capped list, are said.
    let mut empty = snapshot(Case::default());
    empty.pods_capped = None;
    assert!(
        evaluate(&empty, &Limits::default())
            .iter()
            .any(|f| f.code == "K8S_NOTHING_SELECTED")
    );
    let mut capped = snapshot(Case {
        pods: vec![pod(
            "app-1-a",
            json!([c("c", json!({}))]),
            json!([]),
            json!({}),
        )],
        ..Default::default()
    });
    capped.pods_capped = Some(5000);
    let f = evaluate(&capped, &Limits::default())
        .into_iter()
        .find(|f| f.code == "K8S_PODS_CAPPED")
        .unwrap();
    assert_eq!(f.title, "1 of 5000 pods examined");
}

#[test]
fn quantities_and_yaml() {
    for (q, v) in [
        ("500m", 0.5),
        ("2", 2.0),
        ("1.5", 1.5),
        ("256Mi", 268_435_456.0),
        ("1Gi", 1_073_741_824.0),
        ("1G", 1e9),
        ("128974848", 128_974_848.0),
        ("129e6", 129e6),
        ("100Ki", 102_400.0),
    ] {
        assert_eq!(parse_quantity(q), Some(v), "{q}");
    }
    for bad in ["", "Mi", "12Qi", "1e999999", "--1", "1.2.3"] {
        assert!(parse_quantity(bad).is_none_or(|v| v.is_finite()), "{bad}");
    }
    assert_eq!(parse_quantity("12Qi"), None);
    assert_eq!(fmt_memory(512.0 * 1024.0 * 1024.0), "512Mi");
    assert_eq!(fmt_memory(2048.0 * 1024.0 * 1024.0), "2Gi");
    assert_eq!(fmt_cpu(3.6), "3600m");
    assert_eq!(fmt_cpu(2.0), "2");
    let y = to_yaml(&json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "app", "resources": { "limits": { "memory": "1Gi" } } }
    ], "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "true" }] } } } }));
    assert_eq!(
        y,
        "spec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits:\n            memory: 1Gi\n      tolerations:\n      - key: dedicated\n        operator: Equal\n        value: \"true\"\n"
    );
    assert_eq!(
        parse_config_error("configmap \"app-config\" not found"),
        ("ConfigMap".into(), "app-config".into(), None)
    );
    assert_eq!(
        parse_config_error("couldn't find key password in Secret shop/db"),
        ("Secret".into(), "db".into(), Some("password".into()))
    );
}

#[test]
fn a_suspended_cronjob_is_said_and_its_runs_are_its_own() {
    let s = snapshot(Case {
        others: vec![
            ("cronjob", cronjob(true)),
            ("job", run_of_report("report-1", 600, Some("Complete"))),
        ],
        ..Default::default()
    });
    let out = evaluate(&s, &Limits::default());
    let f = out
        .iter()
        .find(|f| f.code == CRONJOB_SUSPENDED.code)
        .expect("suspended");
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.remediation.contains("\"suspend\":false"),
        "{}",
        f.remediation
    );
    // Its last run succeeded: nothing is failing.
    assert!(!out.iter().any(|f| f.code == CRONJOB_FAILING.code));
    // A pod of its run belongs to the CronJob, not to the run.
    let p: Pod = from(owned_pod(
        "report-1-x",
        "Job",
        "report-1",
        json!({}),
        600,
        None,
    ));
    assert_eq!(owner(&s, &p).label(), "cronjob/report");
    // A Job no CronJob made stays a Job.
    let p: Pod = from(owned_pod(
        "migrate-x",
        "Job",
        "migrate",
        json!({}),
        600,
        None,
    ));
    assert_eq!(owner(&s, &p).label(), "job/migrate");
}
