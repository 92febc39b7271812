//! The Kubernetes diagnosis rules: pure functions from what the probe read (a [`Snapshot`])
//! to findings. Pods that fail the same way in the same workload and container are one
//! finding with a table of pods, so a Deployment of 30 crashing replicas is one finding, not
//! 30. Every finding about a workload's container carries the exact change: a strategic
//! merge patch (YAML, and the `kubectl patch` command that applies it — shown, never
//! applied).

use crate::framework::{CodeDoc, Finding, Severity, Table};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Event, Node, Pod, Probe as KProbe, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// What the probe read from the cluster.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub namespace: String,
    /// Unix seconds, for ages.
    pub now: i64,
    /// The pods examined (at most the cap).
    pub pods: Vec<Pod>,
    /// Pods the scope matched, when more than the cap were listed.
    pub pods_capped: Option<usize>,
    pub events: Vec<Event>,
    /// `None` when the nodes could not be read (no permission).
    pub nodes: Option<Vec<Node>>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    /// The previous container's last lines, by (pod, container): the text, or why not.
    pub logs: BTreeMap<(String, String), Result<String, String>>,
    /// Reads the credentials may not make: (what, what the probe loses).
    pub denied: Vec<(String, String)>,
    /// The scope as asked ("namespace payments", "deployment/api"), for the texts.
    pub scope: String,
}

/// Thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Restarts at or above which a container that is not otherwise failing is flagged.
    pub restarts: i32,
    /// Seconds an init container may take before the pod is "stuck in init".
    pub init_stuck_s: i64,
    /// A StatefulSet's or DaemonSet's rollout whose new pods are not Ready this long after
    /// they were made is stuck (Deployments carry their own `progressDeadlineSeconds`).
    pub rollout_stuck_s: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            restarts: 5,
            init_stuck_s: 300,
            rollout_stuck_s: 600,
        }
    }
}

macro_rules! code {
    ($name:ident, $code:literal, $sev:ident, $meaning:literal, $rem:literal) => {
        pub const $name: CodeDoc = CodeDoc {
            code: $code,
            severity: Severity::$sev,
            meaning: $meaning,
            remediation: $rem,
        };
    };
}

code!(
    OOMKILLED,
    "K8S_CRASHLOOP_OOMKILLED",
    Critical,
    "A container is restarting because the kernel killed it for exceeding its memory limit (last termination OOMKilled, exit 137).",
    "Raise the container's `resources.limits.memory` (the finding gives the patch, capped at the largest node's allocatable) — or, if memory grows without bound, find the leak: the limit only buys time."
);
code!(
    CRASH_EXIT,
    "K8S_CRASHLOOP_EXIT",
    Critical,
    "A container is in CrashLoopBackOff: it exits with a non-zero code; the finding shows the exit code and the previous container's last log lines.",
    "Read the log lines: exit 1 is the application's own error (configuration, a dependency down), 126/127 a command that cannot run (wrong `command`/entrypoint for the image), 137/143 a kill from outside (liveness probe, OOM)."
);
code!(
    LIVENESS,
    "K8S_LIVENESS_FAILING",
    Critical,
    "The kubelet keeps restarting a container because its liveness probe fails (Unhealthy events), often because the probe starts checking before the application is up.",
    "Give slow starts a `startupProbe` (the patch sets one that waits as long as the measured start), or fix the endpoint the probe calls; never point liveness at a dependency check."
);
code!(
    NOT_READY,
    "K8S_NOT_READY",
    Warning,
    "A running container is not Ready: its readiness probe fails, so it receives no traffic.",
    "Read the probe's failure message: `connection refused` means nothing listens on the probe's port (fix the port), a status code means the endpoint reports not-ready (a dependency), a timeout means `timeoutSeconds` is too short."
);
code!(
    PULL_NOT_FOUND,
    "K8S_IMAGE_PULL_NOT_FOUND",
    Critical,
    "An image cannot be pulled because the registry has no such repository or tag.",
    "Fix the image reference (tag typo, a tag never pushed, the wrong registry); pin a digest once it works."
);
code!(
    PULL_UNAUTHORIZED,
    "K8S_IMAGE_PULL_UNAUTHORIZED",
    Critical,
    "An image cannot be pulled because the registry refused the credentials (no or wrong image pull secret).",
    "Create a docker-registry Secret for the registry and list it in the pod's `imagePullSecrets` (or the service account's); the finding gives both commands."
);
code!(
    PULL_FAILED,
    "K8S_IMAGE_PULL_FAILED",
    Warning,
    "An image cannot be pulled for another reason (registry unreachable, rate limit, invalid name).",
    "Read the kubelet's message in the finding: a network error needs the node's egress fixed, `toomanyrequests` a registry mirror or credentials."
);
code!(
    CONFIG_MISSING,
    "K8S_CONFIG_MISSING",
    Critical,
    "A container cannot be created because a ConfigMap or Secret it references (or a key in it) does not exist (CreateContainerConfigError).",
    "Create the named ConfigMap/Secret (or the key) in the pod's namespace, or mark the reference `optional: true` if the application copes without it."
);
code!(
    CREATE_FAILED,
    "K8S_CONTAINER_CREATE_FAILED",
    Critical,
    "The runtime cannot create or start a container (CreateContainerError, RunContainerError): a bad command, mount or security setting.",
    "Read the runtime's message in the finding; fix the container spec it names."
);
code!(
    UNSCHED_RESOURCES,
    "K8S_UNSCHEDULABLE_RESOURCES",
    Critical,
    "Pods stay Pending: no node has the CPU or memory they request (the scheduler's reason, the request and the largest node's allocatable).",
    "Lower the requests to what the container uses (the patch fits the largest node), or add nodes big enough; a request above every node's allocatable can never be scheduled."
);
code!(
    UNSCHED_TAINT,
    "K8S_UNSCHEDULABLE_TAINT",
    Critical,
    "Pods stay Pending: the nodes with room carry taints the pods do not tolerate.",
    "If the workload belongs on those nodes, add the toleration (the patch); otherwise free capacity on untainted nodes."
);
code!(
    UNSCHED_AFFINITY,
    "K8S_UNSCHEDULABLE_AFFINITY",
    Critical,
    "Pods stay Pending: their nodeSelector or node affinity matches no node.",
    "Fix the selector (the finding lists the labels asked for) or label a node to match."
);
code!(
    UNSCHED_PVC,
    "K8S_UNSCHEDULABLE_PVC",
    Critical,
    "Pods stay Pending: a PersistentVolumeClaim they mount is not bound.",
    "Check the claim (`kubectl describe pvc`): its StorageClass exists and can provision, or a matching PersistentVolume is available."
);
code!(
    UNSCHED_OTHER,
    "K8S_UNSCHEDULABLE",
    Critical,
    "Pods stay Pending and the scheduler gives another reason (ports, topology spread, volume zones).",
    "Read the scheduler's message in the finding."
);
code!(
    EVICTED,
    "K8S_EVICTED",
    Warning,
    "Pods were evicted by the kubelet because their node ran short of memory, disk or PIDs.",
    "Set memory requests close to real use (BestEffort and Burstable pods are evicted first), and look at the node's pressure; delete evicted pods once understood."
);
code!(
    INIT_STUCK,
    "K8S_INIT_STUCK",
    Warning,
    "Pods are stuck in an init container (waiting on a dependency, or failing) for longer than the limit.",
    "Read the init container's logs: usually a dependency (database, migration, DNS) it waits for is not there."
);
code!(
    RESTARTS,
    "K8S_HIGH_RESTARTS",
    Warning,
    "A container has restarted many times although it is running now.",
    "Read the last termination (reason, exit code) and the previous container's logs in the finding."
);
code!(
    ROLLOUT_STUCK,
    "K8S_ROLLOUT_STUCK",
    Critical,
    "A rollout has stopped progressing: a Deployment past its progress deadline (ProgressDeadlineExceeded), or a StatefulSet or DaemonSet whose pods of the new revision are not Ready long after they were made. The finding ties it to the revision and why its pods fail.",
    "Fix what the new revision's pods fail on (the other findings), or go back: `kubectl rollout undo` to the previous revision. A StatefulSet then needs its pods stuck on the bad revision deleted by hand (it does not replace a pod that never became Ready)."
);
code!(
    CRONJOB_FAILING,
    "K8S_CRONJOB_FAILING",
    Warning,
    "A CronJob's most recent runs failed (its Jobs hit their backoff limit or deadline); the finding lists the runs kept and the last success.",
    "Read the failed run's logs; the pod findings' patches change the CronJob's `jobTemplate`, so the next run gets the fix. Try it at once with `kubectl create job --from=cronjob/NAME`."
);
code!(
    CRONJOB_SUSPENDED,
    "K8S_CRONJOB_SUSPENDED",
    Info,
    "A CronJob is suspended: it makes no new runs until resumed.",
    "If the suspension is over, resume it (`kubectl patch cronjob NAME -p '{\"spec\":{\"suspend\":false}}'`); runs missed meanwhile are skipped unless within `startingDeadlineSeconds`."
);
code!(
    PDB_BLOCKS,
    "K8S_PDB_BLOCKS_DISRUPTION",
    Warning,
    "A PodDisruptionBudget allows 0 disruptions: node drains and cluster upgrades will hang on these pods.",
    "Use `maxUnavailable: 1` instead of a `minAvailable` equal to the replica count, or run more replicas; if pods are unhealthy, fix them first."
);
code!(
    HPA_AT_MAX,
    "K8S_HPA_AT_MAX",
    Warning,
    "An autoscaler is at its maximum replicas and still wants more.",
    "Raise `maxReplicas` if the cluster has room, or find why load per pod rose (a slow dependency, a retry storm)."
);
code!(
    HPA_NO_METRICS,
    "K8S_HPA_NO_METRICS",
    Warning,
    "An autoscaler cannot compute its metrics (ScalingActive=False), so it does not scale.",
    "Check metrics-server (or the custom metrics adapter) and that the pods set CPU/memory requests the utilisation target is relative to."
);
code!(
    SVC_NO_ENDPOINTS,
    "K8S_SERVICE_NO_ENDPOINTS",
    Critical,
    "A Service has no ready endpoints: its selector matches no pod, the pods are not ready, or its targetPort is not a port of the pods.",
    "Fix the selector or the targetPort (the finding compares them with the pods), or make the pods ready."
);
code!(
    JOB_FAILED,
    "K8S_JOB_FAILED",
    Warning,
    "A Job failed: its pods failed more than `backoffLimit` times (or it ran past its deadline).",
    "Read the failed pods' logs; a Job's template cannot be patched — fix it and create the Job again."
);
code!(
    NODE_NOT_READY,
    "K8S_NODE_NOT_READY",
    Critical,
    "A node where the workload runs is NotReady (or has stopped reporting).",
    "Look at the node's kubelet and container runtime; pods on it are evicted after the toleration period."
);
code!(
    NODE_PRESSURE,
    "K8S_NODE_PRESSURE",
    Warning,
    "A node where the workload runs reports memory, disk or PID pressure.",
    "Free the resource or move workloads; under pressure the kubelet evicts pods."
);
code!(
    LOGS_UNAVAILABLE,
    "K8S_LOGS_UNAVAILABLE",
    Info,
    "The previous container's logs could not be read (no permission for pods/log, kubelet unreachable, logs rotated).",
    "Grant `get` on `pods/log` to Lookout's role; the rest of the diagnosis does not depend on it."
);
code!(
    PERMISSION_MISSING,
    "K8S_PERMISSION_MISSING",
    Warning,
    "Lookout's credentials may not make some reads, so part of the diagnosis was skipped (each is named).",
    "Grant the read-only ClusterRole from the README (get/list/watch on the kinds named)."
);
code!(
    PODS_CAPPED,
    "K8S_PODS_CAPPED",
    Info,
    "More pods matched than the probe examines; the findings cover the examined ones.",
    "Narrow the scope (a workload or label selector) or raise `max_pods`."
);
code!(
    SUMMARY,
    "K8S_SUMMARY",
    Info,
    "What the run examined: the pods by workload with their states and restarts.",
    "Nothing to do: it is the overview the other findings refer to."
);
code!(
    NOTHING_SELECTED,
    "K8S_NOTHING_SELECTED",
    Warning,
    "The scope (namespace, workload or selector) matched no pods.",
    "Check the namespace and the workload's name; a workload scaled to 0 has no pods to diagnose."
);

pub const CODES: &[CodeDoc] = &[
    OOMKILLED,
    CRASH_EXIT,
    LIVENESS,
    NOT_READY,
    PULL_NOT_FOUND,
    PULL_UNAUTHORIZED,
    PULL_FAILED,
    CONFIG_MISSING,
    CREATE_FAILED,
    UNSCHED_RESOURCES,
    UNSCHED_TAINT,
    UNSCHED_AFFINITY,
    UNSCHED_PVC,
    UNSCHED_OTHER,
    EVICTED,
    INIT_STUCK,
    RESTARTS,
    ROLLOUT_STUCK,
    CRONJOB_FAILING,
    CRONJOB_SUSPENDED,
    PDB_BLOCKS,
    HPA_AT_MAX,
    HPA_NO_METRICS,
    SVC_NO_ENDPOINTS,
    JOB_FAILED,
    NODE_NOT_READY,
    NODE_PRESSURE,
    LOGS_UNAVAILABLE,
    PERMISSION_MISSING,
    PODS_CAPPED,
    NOTHING_SELECTED,
    SUMMARY,
];

// ---------- quantities ----------

/// A Kubernetes quantity (`500m`, `1.5`, `256Mi`, `1G`, `1e3`) in base units (cores,
/// bytes). `None` when it does not parse.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?.clamp(-30, 30)),
        _ => return None,
    };
    let v = n * mult;
    v.is_finite().then_some(v)
}

/// Bytes as a quantity in whole MiB (or GiB when exact).
pub fn fmt_memory(bytes: f64) -> String {
    let mi = (bytes / 1024f64.powi(2)).ceil().max(1.0) as u64;
    if mi.is_multiple_of(1024) {
        format!("{}Gi", mi / 1024)
    } else {
        format!("{mi}Mi")
    }
}

/// Cores as a quantity (`250m`, `2`).
pub fn fmt_cpu(cores: f64) -> String {
    let m = (cores * 1000.0).round().max(1.0) as u64;
    if m.is_multiple_of(1000) {
        format!("{}", m / 1000)
    } else {
        format!("{m}m")
    }
}

// ---------- helpers ----------

fn secs(t: &Time) -> i64 {
    t.0.as_second()
}

/// "3m ago", "2h ago".
pub fn ago(now: i64, t: i64) -> String {
    let d = (now - t).max(0);
    match d {
        0..=119 => format!("{d}s ago"),
        120..=7199 => format!("{}m ago", d / 60),
        7200..=172_799 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

fn dur(s: i64) -> String {
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// The workload a pod belongs to: its controller, followed from a ReplicaSet to its
/// Deployment. The revision is the ReplicaSet's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `ReplicaSet`, `Pod`.
    pub kind: String,
    pub name: String,
}

impl Workload {
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind.to_ascii_lowercase(), self.name)
    }
    /// Whether its pod template can be patched (a Job's and a bare Pod's cannot).
    fn patchable(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "CronJob"
        )
    }
}

pub fn owner(s: &Snapshot, pod: &Pod) -> Workload {
    let ctl = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match ctl {
        None => Workload {
            kind: "Pod".into(),
            name: name(&pod.metadata).into(),
        },
        Some(o) if o.kind == "ReplicaSet" => {
            let rs_owner = s
                .replica_sets
                .iter()
                .find(|rs| name(&rs.metadata) == o.name)
                .and_then(|rs| {
                    rs.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.controller == Some(true) && o.kind == "Deployment")
                });
            match rs_owner {
                Some(d) => Workload {
                    kind: "Deployment".into(),
                    name: d.name.clone(),
                },
                None => Workload {
                    kind: "ReplicaSet".into(),
                    name: o.name.clone(),
                },
            }
        }
        Some(o) if o.kind == "Job" => {
            let cron = s
                .jobs
                .iter()
                .find(|j| name(&j.metadata) == o.name)
                .and_then(|j| {
                    j.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.controller == Some(true) && o.kind == "CronJob")
                });
            match cron {
                Some(c) => Workload {
                    kind: "CronJob".into(),
                    name: c.name.clone(),
                },
                None => Workload {
                    kind: "Job".into(),
                    name: o.name.clone(),
                },
            }
        }
        Some(o) => Workload {
            kind: o.kind.clone(),
            name: o.name.clone(),
        },
    }
}

/// The events about an object (by uid when the event has one, else by kind and name),
/// newest first.
/// The events about each pod, by name (indexed once: a namespace can hold 10,000 events
/// about 2,000 pods).
type PodEvents<'a> = std::collections::HashMap<&'a str, Vec<&'a Event>>;

fn pod_events(s: &Snapshot) -> PodEvents<'_> {
    let mut idx: PodEvents = Default::default();
    for e in &s.events {
        let o = &e.involved_object;
        if o.kind.as_deref() == Some("Pod")
            && let Some(n) = o.name.as_deref()
        {
            idx.entry(n).or_default().push(e);
        }
    }
    idx
}

/// The events about a pod (by uid when the event has one), newest first.
fn events_for<'a>(idx: &PodEvents<'a>, obj_name: &str, uid: Option<&str>) -> Vec<&'a Event> {
    let mut v: Vec<&Event> = idx
        .get(obj_name)
        .map(|v| {
            v.iter()
                .copied()
                .filter(|e| match (uid, e.involved_object.uid.as_deref()) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|e| std::cmp::Reverse(event_last(e)));
    v
}

fn event_last(e: &Event) -> i64 {
    e.last_timestamp
        .as_ref()
        .map(secs)
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.first_timestamp.as_ref().map(secs))
        .unwrap_or(0)
}

fn event_count(e: &Event) -> i32 {
    e.series
        .as_ref()
        .and_then(|s| s.count)
        .or(e.count)
        .unwrap_or(1)
}

/// The container an event is about (`spec.containers{app}` → `app`).
fn event_container(e: &Event) -> Option<&str> {
    let fp = e.involved_object.field_path.as_deref()?;
    let start = fp.find('{')? + 1;
    let end = fp.rfind('}')?;
    (start <= end).then(|| &fp[start..end])
}

fn events_table(s: &Snapshot, evs: &[&Event]) -> Table {
    let mut t = Table::new(
        "Events",
        &["Last seen", "Type", "Reason", "Object", "Count", "Message"],
    );
    for e in evs.iter().take(10) {
        t.row(vec![
            ago(s.now, event_last(e)),
            e.type_.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            format!(
                "{}/{}",
                e.involved_object
                    .kind
                    .as_deref()
                    .unwrap_or("")
                    .to_ascii_lowercase(),
                e.involved_object.name.as_deref().unwrap_or("")
            ),
            event_count(e).to_string(),
            clip(e.message.as_deref().unwrap_or(""), 300),
        ]);
    }
    t
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn spec_container<'a>(pod: &'a Pod, cname: &str, init: bool) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    let list = if init {
        spec.init_containers.as_deref().unwrap_or_default()
    } else {
        &spec.containers
    };
    list.iter().find(|c| c.name == cname)
}

fn resource(c: &Container, which: &str, res: &str) -> Option<(String, f64)> {
    let r = c.resources.as_ref()?;
    let m = if which == "limits" {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    let q = m.get(res)?;
    Some((q.0.clone(), parse_quantity(&q.0)?))
}

/// The largest allocatable of `res` over the nodes read (and which node).
fn largest_allocatable(s: &Snapshot, res: &str) -> Option<(String, f64, String)> {
    s.nodes
        .as_ref()?
        .iter()
        .filter_map(|n| {
            let q = n.status.as_ref()?.allocatable.as_ref()?.get(res)?;
            Some((
                name(&n.metadata).to_string(),
                parse_quantity(&q.0)?,
                q.0.clone(),
            ))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

// ---------- patches ----------

/// A tiny YAML writer for patches (maps, lists, strings, numbers, booleans).
pub fn to_yaml(v: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => {
                let plain = !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                    && s.parse::<f64>().is_err()
                    && !matches!(
                        s.as_str(),
                        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
                    );
                if plain {
                    s.clone()
                } else {
                    serde_json::to_string(s).unwrap_or_default()
                }
            }
            Value::Null => "null".into(),
            other => other.to_string(),
        }
    }
    fn emit(v: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    match val {
                        Value::Object(inner) if !inner.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            emit(val, indent + 2, out);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            emit(val, indent, out);
                        }
                        _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(val))),
                    }
                }
            }
            Value::Array(a) => {
                for item in a {
                    match item {
                        Value::Object(_) | Value::Array(_) => {
                            let mut sub = String::new();
                            emit(item, indent + 2, &mut sub);
                            let sub = sub.trim_start_matches(' ');
                            out.push_str(&format!("{pad}- {sub}"));
                        }
                        _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other))),
        }
    }
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

/// The patch for one container of a workload's pod template, as YAML plus the command that
/// applies it; for a Job or a bare Pod (whose template cannot change) the edited fragment
/// and what to do instead.
fn container_patch(ns: &str, w: &Workload, container: &str, init: bool, body: Value) -> String {
    let mut c = serde_json::Map::new();
    c.insert("name".into(), Value::String(container.into()));
    if let Value::Object(m) = body {
        c.extend(m);
    }
    let list = if init { "initContainers" } else { "containers" };
    let pod_spec = json!({ list: [Value::Object(c)] });
    pod_level_patch(ns, w, pod_spec)
}

/// A patch of the pod template's spec (`{"spec": {"template": {"spec": …}}}`).
fn pod_level_patch(ns: &str, w: &Workload, pod_spec: Value) -> String {
    if w.kind == "CronJob" {
        let patch =
            json!({ "spec": { "jobTemplate": { "spec": { "template": { "spec": pod_spec } } } } });
        format!(
            "Patch (CronJob `{}`, strategic merge; its next run gets it — runs already made keep the old template):\n\n```yaml\n{}```\n\n```\nkubectl -n {ns} patch cronjob {} --type strategic -p '{}'\nkubectl -n {ns} create job --from=cronjob/{} {}-check   # try it now\n```",
            w.name,
            to_yaml(&patch),
            w.name,
            patch,
            w.name,
            w.name.chars().take(46).collect::<String>()
        )
    } else if w.patchable() {
        let patch = json!({ "spec": { "template": { "spec": pod_spec } } });
        format!(
            "Patch ({} `{}`, strategic merge; rolls the pods):\n\n```yaml\n{}```\n\n```\nkubectl -n {ns} patch {} {} --type strategic -p '{}'\n```",
            w.kind,
            w.name,
            to_yaml(&patch),
            w.kind.to_ascii_lowercase(),
            w.name,
            patch
        )
    } else {
        let patch = json!({ "spec": pod_spec });
        format!(
            "A {}'s pod spec cannot be changed in place: edit its manifest as below and create it again.\n\n```yaml\n{}```",
            w.kind,
            to_yaml(&patch)
        )
    }
}

// ---------- per-pod rules ----------

/// One pod's problem, before pods failing the same way are merged.
struct Hit {
    code: CodeDoc,
    workload: Workload,
    container: String,
    /// What distinguishes this failure within the code (the missing object, the image).
    key: String,
    title: String,
    facts: Vec<(String, String)>,
    excerpt: Option<String>,
    events: Vec<Table>,
    remediation: String,
    pod_row: Vec<String>,
}

const POD_COLUMNS: &[&str] = &["Pod", "Node", "Phase", "Restarts", "State", "Age"];

fn pod_row(s: &Snapshot, pod: &Pod, state: &str) -> Vec<String> {
    let st = pod.status.as_ref();
    let restarts: i32 = st
        .and_then(|st| st.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    vec![
        name(&pod.metadata).into(),
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "(none)".into()),
        st.and_then(|s| s.phase.clone()).unwrap_or_default(),
        restarts.to_string(),
        state.into(),
        pod.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| ago(s.now, secs(t)))
            .unwrap_or_default(),
    ]
}

/// The (pod, container) pairs whose previous container's logs the probe should read:
/// containers that terminated before (crash loops, restarts).
pub fn wants_logs(pods: &[Pod]) -> Vec<(String, String)> {
    let mut out = vec![];
    for p in pods {
        let Some(st) = &p.status else { continue };
        for cs in st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
        {
            let crashed = cs
                .last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
            if crashed {
                out.push((name(&p.metadata).to_string(), cs.name.clone()));
            }
        }
    }
    out
}

fn log_excerpt(s: &Snapshot, pod: &str, container: &str) -> Option<String> {
    match s.logs.get(&(pod.to_string(), container.to_string()))? {
        Ok(text) if !text.trim().is_empty() => Some(text.clone()),
        _ => None,
    }
}

fn probe_desc(p: &KProbe) -> String {
    let how = if let Some(h) = &p.http_get {
        format!(
            "HTTP GET {}:{}",
            h.path.as_deref().unwrap_or("/"),
            port_str(&h.port)
        )
    } else if let Some(t) = &p.tcp_socket {
        format!("TCP :{}", port_str(&t.port))
    } else if let Some(g) = &p.grpc {
        format!("gRPC :{}", g.port)
    } else if let Some(e) = &p.exec {
        format!("exec {}", e.command.clone().unwrap_or_default().join(" "))
    } else {
        "(no handler)".into()
    };
    format!(
        "{how}; initialDelaySeconds {}, periodSeconds {}, timeoutSeconds {}, failureThreshold {}",
        p.initial_delay_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(10),
        p.timeout_seconds.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

fn port_str(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Whether a probe's port is one the container declares (named ports must be declared;
/// a number not declared may still listen, so only named ports are judged).
fn probe_port_missing(c: &Container, p: &KProbe) -> Option<String> {
    let port = p
        .http_get
        .as_ref()
        .map(|h| &h.port)
        .or(p.tcp_socket.as_ref().map(|t| &t.port))?;
    match port {
        IntOrString::String(n) => {
            let declared = c
                .ports
                .iter()
                .flatten()
                .any(|cp| cp.name.as_deref() == Some(n));
            (!declared).then(|| n.clone())
        }
        IntOrString::Int(_) => None,
    }
}

fn pod_rules(s: &Snapshot, idx: &PodEvents, pod: &Pod, l: &Limits, hits: &mut Vec<Hit>) {
    let pname = name(&pod.metadata).to_string();
    let uid = pod.metadata.uid.as_deref();
    let w = owner(s, pod);
    let Some(st) = &pod.status else { return };
    let evs = events_for(idx, &pname, uid);
    let phase = st.phase.as_deref().unwrap_or("");

    // Evicted.
    if st.reason.as_deref() == Some("Evicted") {
        let msg = st.message.clone().unwrap_or_default();
        hits.push(Hit {
            code: EVICTED,
            workload: w.clone(),
            container: String::new(),
            key: String::new(),
            title: format!("{}: pods evicted by the kubelet", w.label()),
            facts: vec![("kubelet's message".into(), clip(&msg, 300))],
            excerpt: None,
            events: vec![],
            remediation: "Evicted pods are not restarted; the controller made new ones. Set memory requests near real use so these pods are not the first evicted, and look at the node's pressure (the message names the resource).".into(),
            pod_row: pod_row(s, pod, "Evicted"),
        });
        return;
    }

    // Unschedulable.
    if phase == "Pending" {
        let cond = st.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
        if let Some(cond) = cond {
            let msg = cond.message.clone().unwrap_or_default();
            schedule_rule(s, pod, &w, &msg, &evs, hits);
            return;
        }
    }

    let statuses = st
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| (c, true))
        .chain(st.container_statuses.iter().flatten().map(|c| (c, false)));
    for (cs, init) in statuses {
        container_rules(s, pod, &w, cs, init, &evs, l, hits);
    }
}

fn term_facts(cs: &ContainerStatus) -> Vec<(String, String)> {
    let mut f = vec![("restarts".to_string(), cs.restart_count.to_string())];
    if let Some(t) = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
        f.push((
            "last termination".into(),
            format!(
                "{} (exit code {}{})",
                t.reason.as_deref().unwrap_or("?"),
                t.exit_code,
                t.signal
                    .map(|s| format!(", signal {s}"))
                    .unwrap_or_default()
            ),
        ));
        if let (Some(a), Some(b)) = (&t.started_at, &t.finished_at) {
            f.push(("ran for".into(), dur(secs(b) - secs(a))));
        }
    }
    f
}

#[allow(clippy::too_many_arguments)]
fn container_rules(
    s: &Snapshot,
    pod: &Pod,
    w: &Workload,
    cs: &ContainerStatus,
    init: bool,
    pod_events: &[&Event],
    l: &Limits,
    hits: &mut Vec<Hit>,
) {
    let ns = s.namespace.as_str();
    let pname = name(&pod.metadata);
    let cname = cs.name.as_str();
    let spec = spec_container(pod, cname, init);
    let which = if init { "init container" } else { "container" };
    let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
    let reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or("");
    let wmsg = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
    let last = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref());
    let mine: Vec<&Event> = pod_events
        .iter()
        .copied()
        .filter(|e| event_container(e).is_none_or(|c| c == cname))
        .collect();
    let unhealthy = |kind: &str| -> Vec<&Event> {
        mine.iter()
            .copied()
            .filter(|e| {
                e.reason.as_deref() == Some("Unhealthy")
                    && e.message.as_deref().is_some_and(|m| m.starts_with(kind))
            })
            .collect()
    };
    let mut push = |code: CodeDoc,
                    key: String,
                    title: String,
                    facts: Vec<(String, String)>,
                    excerpt: Option<String>,
                    evs: Vec<&Event>,
                    remediation: String,
                    state: &str| {
        hits.push(Hit {
            code,
            workload: w.clone(),
            container: cname.into(),
            key,
            title,
            facts,
            excerpt,
            events: if evs.is_empty() {
                vec![]
            } else {
                vec![events_table(s, &evs)]
            },
            remediation,
            pod_row: pod_row(s, pod, state),
        })
    };

    match reason {
        "CrashLoopBackOff" | "RunContainerError"
            if last.is_some() || reason == "CrashLoopBackOff" =>
        {
            let t = last;
            let oom = t.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
            let liveness = unhealthy("Liveness probe failed");
            let mut facts = term_facts(cs);
            if oom {
                let limit = spec.and_then(|c| resource(c, "limits", "memory"));
                let request = spec.and_then(|c| resource(c, "requests", "memory"));
                facts.push((
                    "memory limit".into(),
                    limit
                        .as_ref()
                        .map(|l| l.0.clone())
                        .unwrap_or_else(|| "(none: the node's memory)".into()),
                ));
                if let Some(r) = &request {
                    facts.push(("memory request".into(), r.0.clone()));
                }
                let base = limit
                    .as_ref()
                    .or(request.as_ref())
                    .map(|l| l.1)
                    .unwrap_or(256.0 * 1024.0 * 1024.0);
                let mut new_limit =
                    (base * 2.0 / (64.0 * 1024.0 * 1024.0)).ceil() * 64.0 * 1024.0 * 1024.0;
                let mut cap_note = String::new();
                if let Some((node, alloc, q)) = largest_allocatable(s, "memory")
                    && new_limit > alloc
                {
                    new_limit = alloc;
                    cap_note = format!(" (capped at the largest node's allocatable, {node}: {q})");
                }
                let new_q = fmt_memory(new_limit);
                let mut res = json!({ "limits": { "memory": new_q } });
                // A request above the new limit would be refused; keep request ≤ limit.
                if request.as_ref().is_some_and(|r| r.1 > new_limit) {
                    res["requests"] = json!({ "memory": new_q });
                }
                let patch = container_patch(ns, w, cname, init, json!({ "resources": res }));
                let current = limit
                    .as_ref()
                    .map(|l| l.0.clone())
                    .unwrap_or_else(|| "none set".into());
                // Raising a limit that already is the biggest node's memory changes nothing.
                let rem = if limit.as_ref().is_some_and(|l| new_limit <= l.1) {
                    format!(
                        "The kernel killed `{cname}` at its memory limit ({current}), which is already as large as the biggest node allows{cap_note}. Raising it cannot help: reduce what the container holds in memory (heap size flags such as -Xmx or GOMEMLIMIT below the limit, smaller caches or batches), split the work, or add a node pool with more memory."
                    )
                } else {
                    format!(
                        "The kernel killed `{cname}` at its memory limit ({current}). Raise the limit to {new_q}{cap_note}:\n\n{patch}\n\nIf memory climbs without bound between restarts, this only buys time: look for the leak in the logs and heap profiles. A runtime with its own heap limit (JVM -Xmx, GOMEMLIMIT, Node --max-old-space-size) must be raised with it."
                    )
                };
                push(
                    OOMKILLED,
                    String::new(),
                    format!("{}: {which} {cname} is OOMKilled and restarting", w.label()),
                    facts,
                    log_excerpt(s, pname, cname),
                    mine.clone(),
                    rem,
                    "CrashLoopBackOff (OOMKilled)",
                );
            } else if !liveness.is_empty() {
                let lp = spec.and_then(|c| c.liveness_probe.as_ref());
                facts.push((
                    "liveness probe".into(),
                    lp.map(probe_desc).unwrap_or_default(),
                ));
                let failures: i32 = liveness.iter().map(|e| event_count(e)).sum();
                facts.push(("liveness failures".into(), failures.to_string()));
                // How long the container ran before it was killed, longest seen: a start
                // slower than the probe's grace is the classic cause.
                let ran = t.and_then(|t| {
                    Some(secs(t.finished_at.as_ref()?) - secs(t.started_at.as_ref()?))
                });
                let grace = lp.map(|p| {
                    p.initial_delay_seconds.unwrap_or(0) as i64
                        + p.period_seconds.unwrap_or(10) as i64
                            * p.failure_threshold.unwrap_or(3) as i64
                });
                let mut rem = format!(
                    "The kubelet restarts `{cname}` because its liveness probe fails ({}).",
                    liveness[0]
                        .message
                        .as_deref()
                        .map(|m| clip(m, 200))
                        .unwrap_or_default()
                );
                if let Some(p) = lp {
                    if let Some(missing) = spec.and_then(|c| probe_port_missing(c, p)) {
                        rem.push_str(&format!(" The probe's port `{missing}` is not a port the container declares: name the right port."));
                    }
                    // A startup probe that allows a slow start: period 10 s, threshold
                    // covering twice the longest run seen (at least 60 s).
                    let need = ran.unwrap_or(0).max(grace.unwrap_or(0)).max(30) * 2;
                    let threshold = ((need + 9) / 10).clamp(6, 60);
                    let mut sp = serde_json::to_value(p).unwrap_or(json!({}));
                    if let Value::Object(m) = &mut sp {
                        m.remove("initialDelaySeconds");
                        m.insert("periodSeconds".into(), json!(10));
                        m.insert("failureThreshold".into(), json!(threshold));
                    }
                    let patch = container_patch(ns, w, cname, init, json!({ "startupProbe": sp }));
                    rem.push_str(&format!(
                        " If the application is slow to start (it ran {} before the kill; the probe allows {}), give it a startup probe that waits up to {}s, after which liveness takes over:\n\n{patch}\n\nIf it was up, the endpoint itself is failing: liveness should check the process, not its dependencies.",
                        ran.map(dur).unwrap_or_else(|| "?".into()),
                        grace.map(dur).unwrap_or_else(|| "?".into()),
                        threshold * 10
                    ));
                }
                push(
                    LIVENESS,
                    String::new(),
                    format!(
                        "{}: {which} {cname} is restarted by its failing liveness probe",
                        w.label()
                    ),
                    facts,
                    log_excerpt(s, pname, cname),
                    liveness,
                    rem,
                    "CrashLoopBackOff (liveness)",
                );
            } else {
                let code = t.map(|t| t.exit_code).unwrap_or(0);
                let hint = match code {
                    1 => {
                        "exit 1 is the application's own error: the log lines below say which (configuration, a dependency down, a failed migration)"
                    }
                    2 => "exit 2 is usually a usage error: check `args`",
                    126 => {
                        "exit 126: the command is not executable (permissions, wrong architecture)"
                    }
                    127 => {
                        "exit 127: the command is not found in the image: check `command`/`args` against the image's entrypoint"
                    }
                    137 => {
                        "exit 137 (SIGKILL) without OOMKilled: killed from outside (a liveness probe, a preStop timeout)"
                    }
                    139 => {
                        "exit 139 (SIGSEGV): the process crashed (native code, wrong architecture)"
                    }
                    143 => "exit 143 (SIGTERM): stopped by Kubernetes or itself",
                    _ => "read the log lines below",
                };
                let logs_note = match s.logs.get(&(pname.to_string(), cname.to_string())) {
                    Some(Err(e)) => {
                        format!("\n\nThe previous container's logs could not be read: {e}.")
                    }
                    None => String::new(),
                    _ => String::new(),
                };
                push(
                    CRASH_EXIT,
                    format!("exit {code}"),
                    format!(
                        "{}: {which} {cname} crashes with exit code {code}",
                        w.label()
                    ),
                    facts,
                    log_excerpt(s, pname, cname),
                    mine.iter()
                        .copied()
                        .filter(|e| e.reason.as_deref() == Some("BackOff"))
                        .collect(),
                    format!(
                        "`{cname}` exits with code {code}: {hint}. Fix the cause, then the pods recover on their own (or `kubectl -n {ns} rollout restart {}`).{logs_note}",
                        w.label()
                    ),
                    "CrashLoopBackOff",
                );
            }
        }
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
            let image = spec
                .map(|c| c.image.clone().unwrap_or_default())
                .unwrap_or_else(|| cs.image.clone());
            let pull: Vec<&Event> = mine
                .iter()
                .copied()
                .filter(|e| {
                    e.reason.as_deref() == Some("Failed")
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.contains("pull") || m.contains("image"))
                })
                .collect();
            let text = pull
                .iter()
                .filter_map(|e| e.message.clone())
                .chain([wmsg.clone()])
                .collect::<Vec<_>>()
                .join("\n");
            let lower = text.to_ascii_lowercase();
            let policy = spec
                .and_then(|c| c.image_pull_policy.clone())
                .unwrap_or_else(|| "IfNotPresent".into());
            let secrets: Vec<String> = pod
                .spec
                .as_ref()
                .and_then(|s| s.image_pull_secrets.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect();
            let mut facts = vec![
                ("image".to_string(), image.clone()),
                ("pull policy".to_string(), policy.clone()),
                (
                    "imagePullSecrets".to_string(),
                    if secrets.is_empty() {
                        "(none)".into()
                    } else {
                        secrets.join(", ")
                    },
                ),
            ];
            if !wmsg.is_empty() {
                facts.push(("kubelet's message".into(), clip(&wmsg, 300)));
            }
            let registry = image
                .split('/')
                .next()
                .filter(|h| {
                    image.contains('/') && (h.contains('.') || h.contains(':') || *h == "localhost")
                })
                .unwrap_or("docker.io")
                .to_string();
            let unauthorized = [
                "unauthorized",
                "authentication required",
                "401",
                "403",
                "forbidden",
                "denied",
                "no basic auth credentials",
            ]
            .iter()
            .any(|n| lower.contains(n));
            let not_found = [
                "not found",
                "manifest unknown",
                "notfound",
                "does not exist",
                "name unknown",
            ]
            .iter()
            .any(|n| lower.contains(n));
            if reason == "ErrImageNeverPull" {
                push(
                    PULL_FAILED,
                    image.clone(),
                    format!(
                        "{}: image {image} is not on the node and the pull policy is Never",
                        w.label()
                    ),
                    facts,
                    None,
                    pull,
                    format!(
                        "`imagePullPolicy: Never` only runs images already on the node. Let the kubelet pull it:\n\n{}",
                        container_patch(
                            ns,
                            w,
                            cname,
                            init,
                            json!({ "imagePullPolicy": "IfNotPresent" })
                        )
                    ),
                    reason,
                );
            } else if unauthorized
                && !(not_found
                    && lower.contains("may require authorization")
                    && !secrets.is_empty())
            {
                let secret_name = format!(
                    "{}-pull",
                    registry
                        .split(':')
                        .next()
                        .unwrap_or("registry")
                        .replace('.', "-")
                );
                let patch = pod_level_patch(
                    ns,
                    w,
                    json!({ "imagePullSecrets": [ { "name": secret_name } ] }),
                );
                let have = if secrets.is_empty() {
                    "The pod has no imagePullSecrets.".to_string()
                } else {
                    format!(
                        "The pod's imagePullSecrets ({}) are missing, for another registry, or expired: check them with `kubectl -n {ns} get secret {} -o jsonpath='{{.data.\\.dockerconfigjson}}' | base64 -d`.",
                        secrets.join(", "),
                        secrets[0]
                    )
                };
                push(
                    PULL_UNAUTHORIZED,
                    image.clone(),
                    format!(
                        "{}: the registry {registry} refuses to serve {image} without valid credentials",
                        w.label()
                    ),
                    facts,
                    None,
                    pull,
                    format!(
                        "{have} Create a pull secret for {registry} and reference it:\n\n```\nkubectl -n {ns} create secret docker-registry {secret_name} --docker-server={registry} --docker-username=USER --docker-password=TOKEN\n```\n\n{patch}"
                    ),
                    reason,
                );
            } else if not_found || reason == "InvalidImageName" {
                let code = if reason == "InvalidImageName" {
                    PULL_FAILED
                } else {
                    PULL_NOT_FOUND
                };
                let tag_note = if image.ends_with(":latest")
                    || !image.rsplit('/').next().unwrap_or("").contains([':', '@'])
                {
                    " The image has no pinned tag; once fixed, pin a version or digest."
                } else {
                    ""
                };
                push(
                    code,
                    image.clone(),
                    format!(
                        "{}: image {image} {}",
                        w.label(),
                        if reason == "InvalidImageName" {
                            "is not a valid image name"
                        } else {
                            "does not exist in the registry"
                        }
                    ),
                    facts,
                    None,
                    pull,
                    format!(
                        "The registry has no `{image}`: fix the repository or tag (a typo, or a tag CI never pushed — `crane ls` / the registry UI lists the tags), then `kubectl -n {ns} set image {} {cname}=<image>`.{tag_note}",
                        w.label()
                    ),
                    reason,
                );
            } else {
                let hint = if lower.contains("toomanyrequests") || lower.contains("rate limit") {
                    "The registry rate-limits anonymous pulls: add credentials (imagePullSecrets) or use a mirror."
                } else if lower.contains("timeout")
                    || lower.contains("dial tcp")
                    || lower.contains("no such host")
                    || lower.contains("i/o timeout")
                {
                    "The node cannot reach the registry: check DNS and egress from the node (firewall, proxy)."
                } else {
                    "Read the kubelet's message above."
                };
                push(
                    PULL_FAILED,
                    image.clone(),
                    format!("{}: image {image} cannot be pulled", w.label()),
                    facts,
                    None,
                    pull,
                    hint.into(),
                    reason,
                );
            }
        }
        "CreateContainerConfigError" => {
            let (what, obj, key) = parse_config_error(&wmsg);
            let mut facts = vec![("kubelet's message".to_string(), clip(&wmsg, 300))];
            if !obj.is_empty() {
                facts.push((what.clone(), obj.clone()));
            }
            if let Some(k) = &key {
                facts.push(("missing key".into(), k.clone()));
            }
            let lower_what = what.to_ascii_lowercase();
            let create = match (lower_what.as_str(), &key) {
                ("configmap", None) => {
                    format!("kubectl -n {ns} create configmap {obj} --from-literal=KEY=VALUE")
                }
                ("secret", None) => {
                    format!("kubectl -n {ns} create secret generic {obj} --from-literal=KEY=VALUE")
                }
                ("configmap", Some(k)) => format!(
                    "kubectl -n {ns} patch configmap {obj} --type merge -p '{{\"data\":{{\"{k}\":\"VALUE\"}}}}'"
                ),
                ("secret", Some(k)) => format!(
                    "kubectl -n {ns} patch secret {obj} --type merge -p '{{\"stringData\":{{\"{k}\":\"VALUE\"}}}}'"
                ),
                _ => String::new(),
            };
            push(
                CONFIG_MISSING,
                format!("{what} {obj} {}", key.clone().unwrap_or_default()),
                if obj.is_empty() {
                    format!(
                        "{}: {which} {cname} cannot be created (CreateContainerConfigError)",
                        w.label()
                    )
                } else {
                    format!(
                        "{}: {which} {cname} needs {} {obj}{}, which does not exist",
                        w.label(),
                        lower_what,
                        key.as_ref()
                            .map(|k| format!(" key {k}"))
                            .unwrap_or_default()
                    )
                },
                facts,
                None,
                mine.clone(),
                if create.is_empty() {
                    "Read the kubelet's message: it names what the container references.".into()
                } else {
                    format!(
                        "Create it in namespace {ns} (with the real values):\n\n```\n{create}\n```\n\nThe pods start on their own once it exists. If the application copes without it, mark the reference `optional: true` instead."
                    )
                },
                reason,
            );
        }
        "CreateContainerError" => {
            push(
                CREATE_FAILED,
                clip(&wmsg, 80),
                format!("{}: the runtime cannot create {which} {cname}", w.label()),
                vec![("runtime's message".into(), clip(&wmsg, 400))],
                None,
                mine.clone(),
                "Fix the container spec the message names (command, volume mount, securityContext).".into(),
                reason,
            );
        }
        _ => {
            let running = cs.state.as_ref().and_then(|s| s.running.as_ref());
            // Stuck in init.
            if init && (running.is_some() || !reason.is_empty()) {
                let since = pod
                    .status
                    .as_ref()
                    .and_then(|st| st.start_time.as_ref())
                    .map(secs)
                    .unwrap_or(s.now);
                if s.now - since >= l.init_stuck_s {
                    push(
                        INIT_STUCK,
                        String::new(),
                        format!(
                            "{}: pods stuck in init container {cname} for {}",
                            w.label(),
                            dur(s.now - since)
                        ),
                        term_facts(cs),
                        log_excerpt(s, pname, cname),
                        mine.clone(),
                        format!(
                            "Read the init container's output: `kubectl -n {ns} logs {pname} -c {cname}`. It usually waits for a dependency (a database, a migration, DNS) that is not there."
                        ),
                        "Init",
                    );
                    return;
                }
            }
            if init {
                return;
            }
            // Running but not ready.
            if running.is_some() && !cs.ready && spec.is_some_and(|c| c.readiness_probe.is_some()) {
                let rp = spec.and_then(|c| c.readiness_probe.as_ref());
                let fails = unhealthy("Readiness probe failed");
                if !fails.is_empty() {
                    let msg = fails[0].message.clone().unwrap_or_default();
                    let lower = msg.to_ascii_lowercase();
                    let failures: i32 = fails.iter().map(|e| event_count(e)).sum();
                    let started = running.and_then(|r| r.started_at.as_ref()).map(secs);
                    let mut facts = vec![
                        (
                            "readiness probe".to_string(),
                            rp.map(probe_desc).unwrap_or_default(),
                        ),
                        ("failures".to_string(), failures.to_string()),
                        ("last failure".to_string(), clip(&msg, 300)),
                    ];
                    if let Some(st) = started {
                        facts.push(("running for".into(), dur(s.now - st)));
                    }
                    let rem = if let Some(missing) =
                        spec.zip(rp).and_then(|(c, p)| probe_port_missing(c, p))
                    {
                        format!(
                            "The probe asks for port `{missing}`, which the container does not declare. Name a declared port (or declare it)."
                        )
                    } else if lower.contains("connection refused") {
                        let port = rp
                            .and_then(|p| {
                                p.http_get
                                    .as_ref()
                                    .map(|h| port_str(&h.port))
                                    .or(p.tcp_socket.as_ref().map(|t| port_str(&t.port)))
                            })
                            .unwrap_or_default();
                        let declared: Vec<String> = spec
                            .and_then(|c| c.ports.clone())
                            .unwrap_or_default()
                            .iter()
                            .map(|p| p.container_port.to_string())
                            .collect();
                        format!(
                            "Nothing listens on the probe's port {port} (connection refused){}. Point the probe at the port the application listens on, or fix the application's listen address (it must listen on 0.0.0.0, not 127.0.0.1).",
                            if declared.is_empty() {
                                String::new()
                            } else {
                                format!("; the container declares {}", declared.join(", "))
                            }
                        )
                    } else if lower.contains("timeout") || lower.contains("deadline exceeded") {
                        let t = rp.and_then(|p| p.timeout_seconds).unwrap_or(1);
                        let patch = container_patch(
                            ns,
                            w,
                            cname,
                            false,
                            json!({ "readinessProbe": { "timeoutSeconds": (t * 3).max(3) } }),
                        );
                        format!(
                            "The endpoint answers slower than `timeoutSeconds` ({t}s). If it is slow under load, give it more time:\n\n{patch}"
                        )
                    } else {
                        "The endpoint answers but reports not-ready: it usually checks a dependency (database, cache). The log lines and the dependency's health say which.".into()
                    };
                    push(
                        NOT_READY,
                        String::new(),
                        format!("{}: container {cname} is running but not ready", w.label()),
                        facts,
                        None,
                        fails,
                        rem,
                        "Running, not ready",
                    );
                    return;
                }
            }
            if cs.restart_count >= l.restarts {
                push(
                    RESTARTS,
                    String::new(),
                    format!(
                        "{}: container {cname} has restarted {} times",
                        w.label(),
                        cs.restart_count
                    ),
                    term_facts(cs),
                    log_excerpt(s, pname, cname),
                    mine.clone(),
                    format!(
                        "It runs now, but it restarted {} times: the last termination above says how it ended; `kubectl -n {ns} logs {pname} -c {cname} --previous` shows its last lines.",
                        cs.restart_count
                    ),
                    "Running (restarts)",
                );
            }
        }
    }
}

/// `configmap "app-config" not found` → ("ConfigMap", "app-config", None);
/// `couldn't find key password in Secret payments/db` → ("Secret", "db", Some("password")).
pub fn parse_config_error(msg: &str) -> (String, String, Option<String>) {
    let lower = msg.to_ascii_lowercase();
    for (needle, kind) in [("configmap \"", "ConfigMap"), ("secret \"", "Secret")] {
        if let Some(i) = lower.find(needle) {
            let rest = &msg[i + needle.len()..];
            if let Some(end) = rest.find('"') {
                return (kind.into(), rest[..end].to_string(), None);
            }
        }
    }
    if let Some(i) = lower.find("couldn't find key ") {
        let rest = &msg[i + "couldn't find key ".len()..];
        let mut words = rest.split_whitespace();
        let key = words.next().unwrap_or("").to_string();
        let _in = words.next();
        let kind = words.next().unwrap_or("");
        let obj = words.next().unwrap_or("");
        let obj = obj
            .rsplit('/')
            .next()
            .unwrap_or(obj)
            .trim_end_matches(['.', ',']);
        let kind = if kind.eq_ignore_ascii_case("configmap") {
            "ConfigMap"
        } else {
            "Secret"
        };
        return (kind.into(), obj.to_string(), Some(key));
    }
    ("object".into(), String::new(), None)
}

fn schedule_rule(
    s: &Snapshot,
    pod: &Pod,
    w: &Workload,
    msg: &str,
    evs: &[&Event],
    hits: &mut Vec<Hit>,
) {
    let ns = s.namespace.as_str();
    let lower = msg.to_ascii_lowercase();
    let fs: Vec<&Event> = evs
        .iter()
        .copied()
        .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .collect();
    let mut facts = vec![("scheduler's message".to_string(), clip(msg, 400))];
    let spec = pod.spec.as_ref();
    // With the nodes read, a node selector that no node satisfies, or whose nodes all
    // carry taints the pod does not tolerate, is the cause, whatever else the message
    // lists for the other nodes.
    let node_sel = spec
        .and_then(|s| s.node_selector.clone())
        .unwrap_or_default();
    let mut node_taints: Vec<String> = vec![];
    let forced = match &s.nodes {
        Some(nodes) if !node_sel.is_empty() => {
            let matching: Vec<&Node> = nodes
                .iter()
                .filter(|n| {
                    selector_matches(&node_sel, &n.metadata.labels.clone().unwrap_or_default())
                })
                .collect();
            let untolerated: Vec<Vec<String>> = matching
                .iter()
                .map(|n| untolerated_taints(n, pod))
                .collect();
            if matching.is_empty() {
                Some("affinity")
            } else if untolerated.iter().all(|t| !t.is_empty()) {
                node_taints = untolerated
                    .into_iter()
                    .flatten()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                Some("taint")
            } else {
                None
            }
        }
        _ => None,
    };
    let is_resources = forced.is_none()
        && (lower.contains("insufficient cpu") || lower.contains("insufficient memory"));
    let is_taint = forced == Some("taint")
        || forced.is_none() && (lower.contains("untolerated taint") || lower.contains("had taint"));
    let is_affinity = forced == Some("affinity")
        || forced.is_none()
            && (lower.contains("node affinity")
                || lower.contains("node selector")
                || lower.contains("nodeselector"));
    let (code, rem, key) = if is_resources {
        let mut lines = vec![];
        let mut changes = vec![];
        for res in ["cpu", "memory"] {
            if !lower.contains(&format!("insufficient {res}")) {
                continue;
            }
            let big = largest_allocatable(s, res);
            for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
                let Some((q, v)) = resource(c, "requests", res) else {
                    continue;
                };
                let fmt = |x: f64| {
                    if res == "cpu" {
                        fmt_cpu(x)
                    } else {
                        fmt_memory(x)
                    }
                };
                facts.push((format!("{} request ({res})", c.name), q.clone()));
                if let Some((node, alloc, aq)) = &big {
                    facts.push((
                        format!("largest node allocatable ({res})"),
                        format!("{aq} on {node}"),
                    ));
                    if v > *alloc {
                        // Fit the largest node with 10% headroom for the node's daemons.
                        let fit = fmt(alloc * 0.9);
                        lines.push(format!("`{}` requests {q} {res}, more than any node has ({aq} on {node}): it can never be scheduled as is.", c.name));
                        changes.push((c.name.clone(), res, fit));
                    } else {
                        lines.push(format!("`{}` requests {q} {res}; the largest node has {aq} allocatable but not that much free: other pods hold it.", c.name));
                    }
                }
            }
        }
        let mut rem = lines.join(" ");
        if !changes.is_empty() {
            let mut containers: BTreeMap<String, Value> = BTreeMap::new();
            for (c, res, fit) in &changes {
                let e = containers
                    .entry(c.clone())
                    .or_insert_with(|| json!({ "name": c, "resources": { "requests": {} } }));
                e["resources"]["requests"][*res] = json!(fit);
            }
            let patch = pod_level_patch(
                ns,
                w,
                json!({ "containers": containers.into_values().collect::<Vec<_>>() }),
            );
            rem.push_str(&format!(" Lower the request to what fits (measure real use first: `kubectl top pod`):\n\n{patch}\n\nor add a node pool with bigger nodes."));
        } else if rem.is_empty() {
            rem = "No node has that much free: lower the requests, or add capacity (cluster autoscaler, a bigger node pool).".into();
        } else {
            rem.push_str(" Free capacity (scale down idle workloads) or add nodes; or lower the request if the container does not need it.");
        }
        (UNSCHED_RESOURCES, rem, String::new())
    } else if is_taint {
        let taints = if node_taints.is_empty() {
            extract_braced(msg)
        } else {
            node_taints
        };
        facts.push(("taints".into(), taints.join(", ")));
        let tolerations: Vec<Value> = taints
            .iter()
            .filter_map(|t| {
                let (k, v) = t
                    .split_once(':')
                    .map(|(k, v)| (k.trim(), v.trim()))
                    .unwrap_or((t.trim(), ""));
                (!k.is_empty()).then(|| {
                    if v.is_empty() {
                        json!({ "key": k, "operator": "Exists" })
                    } else {
                        json!({ "key": k, "operator": "Equal", "value": v })
                    }
                })
            })
            .collect();
        let patch = pod_level_patch(ns, w, json!({ "tolerations": tolerations }));
        (
            UNSCHED_TAINT,
            format!(
                "The nodes with room are tainted ({}). If this workload belongs there, tolerate the taint:\n\n{patch}\n\nOtherwise free capacity on untainted nodes.",
                taints.join(", ")
            ),
            taints.join(","),
        )
    } else if is_affinity {
        let sel: Vec<String> = spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !sel.is_empty() {
            facts.push(("nodeSelector".into(), sel.join(", ")));
        }
        let node_note = match &s.nodes {
            Some(nodes) if !sel.is_empty() => {
                let matching = nodes
                    .iter()
                    .filter(|n| {
                        let labels = n.metadata.labels.clone().unwrap_or_default();
                        spec.and_then(|s| s.node_selector.as_ref())
                            .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
                    })
                    .count();
                format!(
                    " {matching} of {} nodes carry all of {}.",
                    nodes.len(),
                    sel.join(", ")
                )
            }
            _ => String::new(),
        };
        (
            UNSCHED_AFFINITY,
            format!(
                "The pod's node selector or affinity matches no node that can take it.{node_note} Fix the selector, or label a node: `kubectl label node NODE {}`.",
                sel.first().cloned().unwrap_or_else(|| "KEY=VALUE".into())
            ),
            sel.join(","),
        )
    } else if lower.contains("persistentvolumeclaim") || lower.contains("unbound") {
        let claims: Vec<String> = spec
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
            .collect();
        facts.push(("claims".into(), claims.join(", ")));
        (
            UNSCHED_PVC,
            format!(
                "A claim is not bound: `kubectl -n {ns} describe pvc {}` shows why (no StorageClass, the provisioner failing, no matching PersistentVolume).",
                claims.first().cloned().unwrap_or_default()
            ),
            claims.join(","),
        )
    } else {
        (
            UNSCHED_OTHER,
            "Read the scheduler's message above.".into(),
            String::new(),
        )
    };
    let title = match code.code {
        "K8S_UNSCHEDULABLE_RESOURCES" => {
            "pods cannot be scheduled: no node has the CPU/memory they request"
        }
        "K8S_UNSCHEDULABLE_TAINT" => {
            "pods cannot be scheduled: the nodes carry taints they do not tolerate"
        }
        "K8S_UNSCHEDULABLE_AFFINITY" => {
            "pods cannot be scheduled: their node selector/affinity matches no node"
        }
        "K8S_UNSCHEDULABLE_PVC" => "pods cannot be scheduled: a PersistentVolumeClaim is not bound",
        _ => "pods cannot be scheduled",
    };
    hits.push(Hit {
        code,
        workload: w.clone(),
        container: String::new(),
        key,
        title: format!("{}: {title}", w.label()),
        facts,
        excerpt: None,
        events: if fs.is_empty() {
            vec![]
        } else {
            vec![events_table(s, &fs)]
        },
        remediation: rem,
        pod_row: pod_row(s, pod, "Pending (unschedulable)"),
    });
}

/// A node's NoSchedule/NoExecute taints the pod does not tolerate, as `key: value`.
fn untolerated_taints(n: &Node, pod: &Pod) -> Vec<String> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect != "PreferNoSchedule")
        .filter(|t| {
            !tolerations.iter().any(|tol| {
                let key_ok = match tol.key.as_deref() {
                    None | Some("") => tol.operator.as_deref() == Some("Exists"),
                    Some(k) => k == t.key,
                };
                let value_ok = tol.operator.as_deref() == Some("Exists")
                    || tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("");
                let effect_ok = tol
                    .effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == t.effect);
                key_ok && value_ok && effect_ok
            })
        })
        .map(|t| format!("{}: {}", t.key, t.value.unwrap_or_default()))
        .collect()
}

/// `… untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }` → the taints.
fn extract_braced(msg: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut rest = msg;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else { break };
        out.insert(after[..j].trim().to_string());
        rest = &after[j + 1..];
    }
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

// ---------- workload rules ----------

/// A non-empty equality selector all of whose labels the object carries.
pub(super) fn selector_matches(
    sel: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn deployment_rules(
    s: &Snapshot,
    codes_by_workload: &BTreeMap<String, BTreeSet<&'static str>>,
    out: &mut Vec<Finding>,
) {
    let ns = &s.namespace;
    for d in &s.deployments {
        let dname = name(&d.metadata);
        let st = d.status.clone().unwrap_or_default();
        let stuck = st.conditions.iter().flatten().find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        let Some(cond) = stuck else { continue };
        // The new ReplicaSet: the one with the highest revision this Deployment owns.
        let mut owned: Vec<(&ReplicaSet, i64)> = s
            .replica_sets
            .iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Deployment" && o.name == dname)
            })
            .map(|rs| {
                let rev = rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                (rs, rev)
            })
            .collect();
        owned.sort_by_key(|(_, r)| std::cmp::Reverse(*r));
        let new_rs = owned.first();
        let prev = owned.get(1);
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let mut f = Finding::new(
            ROLLOUT_STUCK.code,
            Severity::Critical,
            format!("deployment/{dname}: the rollout is stuck (ProgressDeadlineExceeded)"),
        )
        .fact("message", clip(cond.message.as_deref().unwrap_or(""), 300))
        .fact(
            "replicas",
            format!(
                "{desired} desired, {} updated, {} available, {} unavailable",
                st.updated_replicas.unwrap_or(0),
                st.available_replicas.unwrap_or(0),
                st.unavailable_replicas.unwrap_or(0)
            ),
        );
        if let Some(pd) = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds) {
            f = f.fact("progressDeadlineSeconds", pd);
        }
        let mut t = Table::new(
            "ReplicaSets",
            &["ReplicaSet", "Revision", "Image", "Ready / desired"],
        );
        for (rs, rev) in owned.iter().take(5) {
            let image = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let rst = rs.status.clone().unwrap_or_default();
            t.row(vec![
                name(&rs.metadata).into(),
                rev.to_string(),
                image,
                format!(
                    "{} / {}",
                    rst.ready_replicas.unwrap_or(0),
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
                ),
            ]);
        }
        if !t.rows.is_empty() {
            f = f.table(t);
        }
        let causes = codes_by_workload
            .get(&format!("deployment/{dname}"))
            .map(|c| c.iter().copied().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let mut rem = String::new();
        if let Some((rs, rev)) = new_rs {
            rem.push_str(&format!(
                "The new ReplicaSet `{}` (revision {rev}) does not become available",
                name(&rs.metadata)
            ));
            if causes.is_empty() {
                rem.push_str(". ");
            } else {
                rem.push_str(&format!(
                    ": its pods fail with {causes} (see those findings). "
                ));
            }
        }
        rem.push_str("Fix the cause and the rollout resumes; or go back to the last working revision:\n\n```\n");
        match prev {
            Some((_, prev_rev)) => rem.push_str(&format!(
                "kubectl -n {ns} rollout undo deployment/{dname} --to-revision={prev_rev}\n```"
            )),
            None => rem.push_str(&format!(
                "kubectl -n {ns} rollout undo deployment/{dname}\n```"
            )),
        }
        f = f
            .remediation(rem)
            .command(format!("kubectl -n {ns} rollout status deployment/{dname}"));
        out.push(f);
    }
}

/// The CronJob that made a Job, if any.
fn cron_of(j: &Job) -> Option<&str> {
    j.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "CronJob")
        .map(|o| o.name.as_str())
}

/// How a Job ended: `Some(true)` complete, `Some(false)` failed (with the reason), `None`
/// still running.
fn job_outcome(j: &Job) -> (Option<bool>, String) {
    let conds = j.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conds.into_iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return (Some(true), "Complete".into()),
            "Failed" => {
                return (
                    Some(false),
                    c.reason.clone().unwrap_or_else(|| "Failed".into()),
                );
            }
            _ => {}
        }
    }
    (None, "running".into())
}

fn job_started(j: &Job) -> i64 {
    j.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(j.metadata.creation_timestamp.as_ref())
        .map(secs)
        .unwrap_or(0)
}

fn cronjob_rules(
    s: &Snapshot,
    codes_by_workload: &BTreeMap<String, BTreeSet<&'static str>>,
    out: &mut Vec<Finding>,
) {
    let ns = &s.namespace;
    for cj in &s.cron_jobs {
        let cname = name(&cj.metadata);
        let spec = cj.spec.clone().unwrap_or_default();
        let st = cj.status.clone().unwrap_or_default();
        let last_schedule = st
            .last_schedule_time
            .as_ref()
            .map(|t| ago(s.now, secs(t)))
            .unwrap_or_else(|| "never".into());
        let last_success = st
            .last_successful_time
            .as_ref()
            .map(|t| ago(s.now, secs(t)))
            .unwrap_or_else(|| "never".into());
        if spec.suspend == Some(true) {
            out.push(
                Finding::new(
                    CRONJOB_SUSPENDED.code,
                    Severity::Info,
                    format!("cronjob/{cname} is suspended: it makes no new runs"),
                )
                .fact("schedule", spec.schedule.clone())
                .fact("last scheduled", last_schedule.clone())
                .remediation(format!(
                    "If the suspension is over: `kubectl -n {ns} patch cronjob {cname} -p '{{\"spec\":{{\"suspend\":false}}}}'`."
                )),
            );
        }
        let mut runs: Vec<&Job> = s
            .jobs
            .iter()
            .filter(|j| cron_of(j) == Some(cname))
            .collect();
        runs.sort_by_key(|j| std::cmp::Reverse(job_started(j)));
        // The most recent finished runs, while they failed.
        let finished: Vec<(&Job, bool, String)> = runs
            .iter()
            .filter_map(|j| {
                let (o, why) = job_outcome(j);
                o.map(|ok| (*j, ok, why))
            })
            .collect();
        let failed_in_a_row = finished.iter().take_while(|(_, ok, _)| !ok).count();
        if failed_in_a_row == 0 {
            continue;
        }
        let latest = name(&finished[0].0.metadata);
        let mut t = Table::new("Runs kept", &["Job", "Started", "Result", "Failed pods"]);
        for j in runs.iter().take(10) {
            let (_, why) = job_outcome(j);
            t.row(vec![
                name(&j.metadata).into(),
                ago(s.now, job_started(j)),
                why,
                j.status
                    .as_ref()
                    .and_then(|s| s.failed)
                    .unwrap_or(0)
                    .to_string(),
            ]);
        }
        let causes = codes_by_workload
            .get(&format!("cronjob/{cname}"))
            .map(|c| {
                c.iter()
                    .copied()
                    .filter(|c| *c != CRONJOB_FAILING.code)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let every = match (failed_in_a_row, failed_in_a_row == finished.len()) {
            (1, true) => "its only run kept failed".to_string(),
            (1, false) => "the last run failed".to_string(),
            (n, true) => format!("all {n} runs kept failed"),
            (n, false) => format!("the last {n} runs failed"),
        };
        let mut rem =
            format!("Read the latest failed run's logs: `kubectl -n {ns} logs job/{latest}`.");
        if !causes.is_empty() {
            rem.push_str(&format!(
                " Its pods fail with {causes} (see those findings: their patches change the CronJob's jobTemplate, so the next run gets the fix)."
            ));
        }
        rem.push_str(&format!(
            " Once fixed, try a run now instead of waiting for the schedule:\n\n```\nkubectl -n {ns} create job --from=cronjob/{cname} {}-check\n```",
            cname.chars().take(46).collect::<String>()
        ));
        if spec.failed_jobs_history_limit == Some(0) {
            rem.push_str("\n\n`failedJobsHistoryLimit: 0` deletes failed runs at once: keep a few (the default is 1) so their pods can be read.");
        }
        out.push(
            Finding::new(
                CRONJOB_FAILING.code,
                Severity::Warning,
                format!("cronjob/{cname}: {every} (last success {last_success})"),
            )
            .fact("workload", format!("cronjob/{cname}"))
            .fact("schedule", spec.schedule.clone())
            .fact("last scheduled", last_schedule)
            .fact("last successful", last_success)
            .fact("latest failure", format!("job/{latest}: {}", finished[0].2))
            .fact(
                "runs kept",
                format!(
                    "{} succeeded, {} failed at most (successfulJobsHistoryLimit, failedJobsHistoryLimit)",
                    spec.successful_jobs_history_limit.unwrap_or(3),
                    spec.failed_jobs_history_limit.unwrap_or(1)
                ),
            )
            .fact(
                "active runs",
                st.active.as_ref().map(|a| a.len()).unwrap_or(0),
            )
            .table(t)
            .remediation(rem)
            .command(format!(
                "kubectl -n {ns} get jobs -l batch.kubernetes.io/cronjob-name={cname}"
            )),
        );
    }
}

/// A set whose rollout is stuck: (kind, name, new revision, facts, the new revision's pods
/// stuck, the kind's own remedy).
type StuckSet<'a> = (
    &'static str,
    &'a str,
    String,
    Vec<(String, String)>,
    Vec<&'a Pod>,
    String,
);

/// A StatefulSet's or DaemonSet's pods of the revision being rolled out that are not Ready
/// `rollout_stuck_s` after they were made: the rollout waits on them for ever (neither kind
/// has a progress deadline).
fn set_rollout_rules(
    s: &Snapshot,
    l: &Limits,
    codes_by_workload: &BTreeMap<String, BTreeSet<&'static str>>,
    out: &mut Vec<Finding>,
) {
    let ns = &s.namespace;
    let owned_by = |p: &Pod, kind: &str, n: &str| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == kind && o.name == n)
    };
    let label = |p: &Pod, key: &str| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let age = |p: &Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| s.now - secs(t))
            .unwrap_or(0)
    };
    let mut stuck: Vec<StuckSet> = vec![];
    for st in &s.stateful_sets {
        let n = name(&st.metadata);
        let status = st.status.clone().unwrap_or_default();
        let (Some(update), current) = (
            status.update_revision.clone(),
            status.current_revision.clone(),
        ) else {
            continue;
        };
        let spec = st.spec.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        // Only a rollout: a scale-up whose new pods fail is told by the pod findings.
        if current.as_deref() == Some(update.as_str()) {
            continue;
        }
        let pods: Vec<&Pod> = s
            .pods
            .iter()
            .filter(|p| owned_by(p, "StatefulSet", n))
            .filter(|p| label(p, "controller-revision-hash") == update)
            .filter(|p| !pod_ready(p) && age(p) >= l.rollout_stuck_s)
            .collect();
        if pods.is_empty() {
            continue;
        }
        let strategy = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.clone())
            .unwrap_or_else(|| "RollingUpdate".into());
        let mut facts = vec![
            (
                "replicas".to_string(),
                format!(
                    "{desired} desired, {updated} on the new revision, {} ready",
                    status.ready_replicas.unwrap_or(0)
                ),
            ),
            ("current revision".into(), current.unwrap_or_default()),
            ("update revision".into(), update.clone()),
            (
                "pod management".into(),
                spec.pod_management_policy
                    .unwrap_or_else(|| "OrderedReady".into()),
            ),
            ("update strategy".into(), strategy),
        ];
        if let Some(p) = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .filter(|p| *p > 0)
        {
            facts.push(("partition".into(), p.to_string()));
        }
        let names: Vec<&str> = pods.iter().map(|p| name(&p.metadata)).collect();
        let extra = format!(
            " A StatefulSet does not replace a pod that never became Ready, even after its template is fixed or rolled back: delete the pods stuck on the bad revision once the template is right (the documented forced rollback):\n\n```\nkubectl -n {ns} delete pod {}\n```",
            names.join(" ")
        );
        stuck.push(("StatefulSet", n, update, facts, pods, extra));
    }
    for ds in &s.daemon_sets {
        let n = name(&ds.metadata);
        let status = ds.status.clone().unwrap_or_default();
        let Some(generation) = ds
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deprecated.daemonset.template.generation"))
            .cloned()
        else {
            continue;
        };
        let desired = status.desired_number_scheduled;
        let updated = status.updated_number_scheduled.unwrap_or(0);
        let unavailable = status.number_unavailable.unwrap_or(0);
        if updated >= desired && unavailable == 0 {
            continue;
        }
        let pods: Vec<&Pod> = s
            .pods
            .iter()
            .filter(|p| owned_by(p, "DaemonSet", n))
            .filter(|p| label(p, "pod-template-generation") == generation)
            .filter(|p| !pod_ready(p) && age(p) >= l.rollout_stuck_s)
            .collect();
        if pods.is_empty() {
            continue;
        }
        let max_unavailable = ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
            .map(port_str)
            .unwrap_or_else(|| "1".into());
        let facts = vec![
            (
                "nodes".to_string(),
                format!(
                    "{desired} desired, {updated} on the new template, {unavailable} unavailable"
                ),
            ),
            ("template generation".into(), generation.clone()),
            ("maxUnavailable".into(), max_unavailable.clone()),
        ];
        let extra = format!(
            " The rolling update replaces at most maxUnavailable ({max_unavailable}) pods at a time, so it waits on these for ever; once the template is fixed or rolled back the controller replaces them."
        );
        stuck.push(("DaemonSet", n, generation, facts, pods, extra));
    }
    for (kind, n, rev, facts, pods, extra) in stuck {
        let lower = kind.to_ascii_lowercase();
        let oldest = pods.iter().map(|p| age(p)).max().unwrap_or(0);
        let mut f = Finding::new(
            ROLLOUT_STUCK.code,
            Severity::Critical,
            format!(
                "{lower}/{n}: the rollout is stuck: {} pod{} of the new revision not Ready for {}",
                pods.len(),
                if pods.len() == 1 { "" } else { "s" },
                dur(oldest)
            ),
        )
        .fact("workload", format!("{lower}/{n}"));
        for (k, v) in facts {
            f = f.fact(&k, v);
        }
        let mut t = Table::new("Pods of the new revision", POD_COLUMNS);
        for p in pods.iter().take(50) {
            let state = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| {
                    cs.iter().find_map(|c| {
                        c.state.as_ref().and_then(|st| {
                            st.waiting
                                .as_ref()
                                .and_then(|w| w.reason.clone())
                                .or_else(|| st.terminated.as_ref().and_then(|t| t.reason.clone()))
                        })
                    })
                })
                .unwrap_or_else(|| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_else(|| "not Ready".into())
                });
            t.row(pod_row(s, p, &state));
        }
        f = f.table(t);
        let causes = codes_by_workload
            .get(&format!("{lower}/{n}"))
            .map(|c| c.iter().copied().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let mut rem = format!("Revision `{rev}` does not become Ready");
        if causes.is_empty() {
            rem.push_str(". ");
        } else {
            rem.push_str(&format!(
                ": its pods fail with {causes} (see those findings). "
            ));
        }
        rem.push_str(&format!(
            "Fix the cause, or go back to the previous revision:\n\n```\nkubectl -n {ns} rollout undo {lower}/{n}\n```\n"
        ));
        rem.push_str(&extra);
        out.push(
            f.remediation(rem)
                .command(format!("kubectl -n {ns} rollout status {lower}/{n}")),
        );
    }
}

fn pdb_rules(s: &Snapshot, out: &mut Vec<Finding>) {
    let ns = &s.namespace;
    for p in &s.pdbs {
        let Some(st) = &p.status else { continue };
        if st.disruptions_allowed > 0 || st.expected_pods == 0 {
            continue;
        }
        let pname = name(&p.metadata);
        let spec = p.spec.clone().unwrap_or_default();
        let min = spec.min_available.as_ref().map(port_str);
        let max = spec.max_unavailable.as_ref().map(port_str);
        let mut f = Finding::new(
            PDB_BLOCKS.code,
            Severity::Warning,
            format!("poddisruptionbudget/{pname} allows 0 disruptions: drains will hang"),
        )
        .fact(
            "minAvailable",
            min.clone().unwrap_or_else(|| "(unset)".into()),
        )
        .fact(
            "maxUnavailable",
            max.clone().unwrap_or_else(|| "(unset)".into()),
        )
        .fact(
            "healthy",
            format!(
                "{} of {} expected (needs {})",
                st.current_healthy, st.expected_pods, st.desired_healthy
            ),
        );
        let rem = if st.current_healthy < st.expected_pods {
            format!(
                "{} of {} pods are unhealthy, so no voluntary disruption is allowed: fix them first (the other findings).",
                st.expected_pods - st.current_healthy,
                st.expected_pods
            )
        } else {
            let patch = json!({ "spec": { "minAvailable": null, "maxUnavailable": 1 } });
            format!(
                "The budget needs every pod up ({}), so no pod may ever be evicted: a node drain or cluster upgrade waits forever. Allow one at a time:\n\n```yaml\n{}```\n\n```\nkubectl -n {ns} patch pdb {pname} --type merge -p '{}'\n```\n\nor run more replicas than the budget keeps.",
                min.map(|m| format!("minAvailable {m}"))
                    .or(max.map(|m| format!("maxUnavailable {m}")))
                    .unwrap_or_default(),
                to_yaml(&patch),
                patch
            )
        };
        f = f.remediation(rem);
        out.push(f);
    }
}

fn hpa_rules(s: &Snapshot, out: &mut Vec<Finding>) {
    for h in &s.hpas {
        let hname = name(&h.metadata);
        let Some(st) = &h.status else { continue };
        let max = h.spec.as_ref().map(|s| s.max_replicas).unwrap_or(0);
        let target = h
            .spec
            .as_ref()
            .map(|s| {
                format!(
                    "{}/{}",
                    s.scale_target_ref.kind.to_ascii_lowercase(),
                    s.scale_target_ref.name
                )
            })
            .unwrap_or_default();
        let conds = st.conditions.clone().unwrap_or_default();
        if let Some(c) = conds
            .iter()
            .find(|c| c.type_ == "ScalingActive" && c.status == "False")
        {
            out.push(
                Finding::new(HPA_NO_METRICS.code, Severity::Warning, format!("horizontalpodautoscaler/{hname} cannot read its metrics, so {target} does not scale"))
                    .fact("reason", c.reason.clone().unwrap_or_default())
                    .fact("message", clip(c.message.as_deref().unwrap_or(""), 300))
                    .remediation("Check that metrics-server (or the metrics adapter) runs and serves the metric (`kubectl get --raw /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods`), and that the target's containers set the resource requests a utilisation target is relative to."),
            );
        } else if st.current_replicas.unwrap_or(0) >= max && st.desired_replicas >= max && max > 0 {
            let limited = conds
                .iter()
                .any(|c| c.type_ == "ScalingLimited" && c.status == "True");
            out.push(
                Finding::new(HPA_AT_MAX.code, Severity::Warning, format!("horizontalpodautoscaler/{hname} is at its maximum of {max} replicas"))
                    .fact("target", target.clone())
                    .fact("replicas", format!("{} current, {} desired, max {max}", st.current_replicas.unwrap_or(0), st.desired_replicas))
                    .fact("scaling limited", limited)
                    .remediation(format!("If the cluster has room, raise the ceiling: `kubectl -n {} patch hpa {hname} --type merge -p '{{\"spec\":{{\"maxReplicas\":{}}}}}'`; if load per pod rose, find why first (a slow dependency, a retry storm).", s.namespace, max + (max + 1) / 2)),
            );
        }
    }
}

fn service_rules(s: &Snapshot, out: &mut Vec<Finding>) {
    let ns = &s.namespace;
    for svc in &s.services {
        let sname = name(&svc.metadata);
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(sel) = spec.selector.clone().filter(|m| !m.is_empty()) else {
            continue;
        };
        let matching: Vec<&Pod> = s
            .pods
            .iter()
            .filter(|p| selector_matches(&sel, &p.metadata.labels.clone().unwrap_or_default()))
            .collect();
        let slices: Vec<&EndpointSlice> = s
            .endpoint_slices
            .iter()
            .filter(|e| {
                e.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .map(String::as_str)
                    == Some(sname)
            })
            .collect();
        let ready = slices
            .iter()
            .flat_map(|e| e.endpoints.iter())
            .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count();
        let sel_text = sel
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        // Port check: every targetPort must be a port of the matching pods.
        let mut bad_ports = vec![];
        for sp in spec.ports.iter().flatten() {
            let tp = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
            let found = matching.iter().any(|p| {
                p.spec.as_ref().is_some_and(|ps| {
                    ps.containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .any(|cp| match &tp {
                            IntOrString::Int(n) => cp.container_port == *n,
                            IntOrString::String(n) => cp.name.as_deref() == Some(n.as_str()),
                        })
                })
            });
            let declares_any = matching.iter().any(|p| {
                p.spec.as_ref().is_some_and(|ps| {
                    ps.containers
                        .iter()
                        .any(|c| c.ports.as_ref().is_some_and(|v| !v.is_empty()))
                })
            });
            if !matching.is_empty() && declares_any && !found {
                bad_ports.push((sp.port, port_str(&tp)));
            }
        }
        let (why, rem) = if matching.is_empty() {
            // The closest pods: those sharing most selector labels.
            let mut near: Vec<(usize, String, String)> = s
                .pods
                .iter()
                .map(|p| {
                    let labels = p.metadata.labels.clone().unwrap_or_default();
                    let hits = sel
                        .iter()
                        .filter(|(k, v)| labels.get(*k) == Some(*v))
                        .count();
                    (
                        hits,
                        name(&p.metadata).to_string(),
                        labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    )
                })
                .filter(|(h, _, _)| *h > 0)
                .collect();
            near.sort_by_key(|n| std::cmp::Reverse(n.0));
            let hint = near
                .first()
                .map(|(_, p, l)| format!(" The closest pod, {p}, has labels {l}."))
                .unwrap_or_default();
            (
                format!("its selector {sel_text} matches no pod"),
                format!(
                    "No pod in {ns} carries all of {sel_text}.{hint} Fix the Service's selector (or the pod template's labels) so they agree: `kubectl -n {ns} get pods -l {sel_text}` must list the pods."
                ),
            )
        } else if !bad_ports.is_empty() {
            let declared: BTreeSet<String> = matching
                .iter()
                .filter_map(|p| p.spec.as_ref())
                .flat_map(|ps| ps.containers.iter().flat_map(|c| c.ports.iter().flatten()))
                .map(|cp| match &cp.name {
                    Some(n) => format!("{} ({n})", cp.container_port),
                    None => cp.container_port.to_string(),
                })
                .collect();
            let first_port = matching
                .iter()
                .filter_map(|p| p.spec.as_ref())
                .flat_map(|ps| ps.containers.iter().flat_map(|c| c.ports.iter().flatten()))
                .map(|cp| cp.container_port)
                .next()
                .unwrap_or(0);
            let ports: Vec<Value> = spec
                .ports
                .iter()
                .flatten()
                .map(|sp| {
                    let mut v = json!({ "port": sp.port });
                    if let Some(n) = &sp.name {
                        v["name"] = json!(n);
                    }
                    if bad_ports.iter().any(|(p, _)| *p == sp.port) {
                        v["targetPort"] = json!(first_port);
                    } else if let Some(tp) = &sp.target_port {
                        v["targetPort"] = serde_json::to_value(tp).unwrap_or(Value::Null);
                    }
                    v
                })
                .collect();
            let patch = json!({ "spec": { "ports": ports } });
            (
                format!(
                    "its targetPort {} is not a port of the pods",
                    bad_ports
                        .iter()
                        .map(|b| b.1.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "The pods declare {}. Point the Service at the port the application listens on:\n\n```yaml\n{}```\n\n```\nkubectl -n {ns} patch service {sname} --type merge -p '{}'\n```",
                    declared.into_iter().collect::<Vec<_>>().join(", "),
                    to_yaml(&patch),
                    patch
                ),
            )
        } else if ready == 0 && (!slices.is_empty() || matching.iter().all(|p| !pod_ready(p))) {
            (
                format!("none of its {} pods is ready", matching.len()),
                "The selector matches pods, but none is Ready, so the Service sends traffic nowhere: the pods' own findings say why.".into(),
            )
        } else {
            continue;
        };
        let mut f = Finding::new(
            SVC_NO_ENDPOINTS.code,
            Severity::Critical,
            format!("service/{sname} has no ready endpoints: {why}"),
        )
        .fact("selector", sel_text.clone())
        .fact("matching pods", matching.len())
        .fact("ready endpoints", ready)
        .command(format!(
            "kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={sname}"
        ));
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}→{}",
                    p.port,
                    p.target_port
                        .as_ref()
                        .map(port_str)
                        .unwrap_or_else(|| p.port.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        if !ports.is_empty() {
            f = f.fact("ports", ports);
        }
        out.push(f.remediation(rem));
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn job_rules(s: &Snapshot, out: &mut Vec<Finding>) {
    let ns = &s.namespace;
    for j in &s.jobs {
        let jname = name(&j.metadata);
        // A CronJob's runs are told about together (K8S_CRONJOB_FAILING).
        if cron_of(j).is_some_and(|c| s.cron_jobs.iter().any(|cj| name(&cj.metadata) == c)) {
            continue;
        }
        let Some(st) = &j.status else { continue };
        let Some(c) = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True")
        else {
            continue;
        };
        out.push(
            Finding::new(JOB_FAILED.code, Severity::Warning, format!("job/{jname} failed: {}", c.reason.as_deref().unwrap_or("Failed")))
                .fact("message", clip(c.message.as_deref().unwrap_or(""), 300))
                .fact("failed pods", st.failed.unwrap_or(0))
                .fact("backoffLimit", j.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6))
                .remediation(format!("Read a failed pod's logs (`kubectl -n {ns} logs job/{jname}`). A Job's template cannot be patched: fix it, then `kubectl -n {ns} delete job {jname}` and apply it again.")),
        );
    }
}

fn node_rules(s: &Snapshot, out: &mut Vec<Finding>) {
    let Some(nodes) = &s.nodes else { return };
    let used: BTreeSet<&str> = s
        .pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
        .collect();
    for n in nodes {
        let nname = name(&n.metadata);
        if !used.contains(nname) {
            continue;
        }
        let conds = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let pods_here: Vec<&str> = s
            .pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(nname))
            .map(|p| name(&p.metadata))
            .collect();
        if let Some(c) = conds
            .iter()
            .find(|c| c.type_ == "Ready" && c.status != "True")
        {
            out.push(
                Finding::new(NODE_NOT_READY.code, Severity::Critical, format!("node/{nname} is NotReady ({} of the examined pods run there)", pods_here.len()))
                    .fact("Ready", format!("{} ({})", c.status, c.reason.as_deref().unwrap_or("")))
                    .fact("message", clip(c.message.as_deref().unwrap_or(""), 300))
                    .fact("pods", clip(&pods_here.join(", "), 300))
                    .remediation(format!("Look at the node's kubelet and container runtime (`kubectl describe node {nname}`); pods on a NotReady node are evicted after their toleration (300 s by default).")),
            );
        }
        let pressure: Vec<String> = conds
            .iter()
            .filter(|c| {
                matches!(
                    c.type_.as_str(),
                    "MemoryPressure" | "DiskPressure" | "PIDPressure"
                ) && c.status == "True"
            })
            .map(|c| c.type_.clone())
            .collect();
        if !pressure.is_empty() {
            out.push(
                Finding::new(NODE_PRESSURE.code, Severity::Warning, format!("node/{nname} reports {}", pressure.join(", ")))
                    .fact("pods", clip(&pods_here.join(", "), 300))
                    .remediation(format!("Under pressure the kubelet evicts pods (BestEffort first). Free the resource on the node or move workloads: `kubectl describe node {nname}` shows what uses it.")),
            );
        }
    }
}

/// The overview: pods by workload with their states, and the codes raised on each.
fn summary(s: &Snapshot, codes: &BTreeMap<String, BTreeSet<&'static str>>) -> Finding {
    #[derive(Default)]
    struct Row {
        pods: usize,
        ready: usize,
        pending: usize,
        failing: usize,
        restarts: i64,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for p in &s.pods {
        let r = rows.entry(owner(s, p).label()).or_default();
        r.pods += 1;
        let st = p.status.as_ref();
        let phase = st.and_then(|s| s.phase.as_deref()).unwrap_or("");
        let waiting_bad = st
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        .is_some_and(|r| r != "ContainerCreating" && r != "PodInitializing")
                })
            });
        if pod_ready(p) {
            r.ready += 1;
        } else if phase == "Pending" && !waiting_bad {
            r.pending += 1;
        } else {
            r.failing += 1;
        }
        r.restarts += st
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count as i64).sum::<i64>())
            .unwrap_or(0);
    }
    let total = s.pods.len();
    let ready: usize = rows.values().map(|r| r.ready).sum();
    let mut t = Table::new(
        "Pods by workload",
        &[
            "Workload", "Pods", "Ready", "Pending", "Failing", "Restarts", "Findings",
        ],
    );
    for (w, r) in &rows {
        t.row(vec![
            w.clone(),
            r.pods.to_string(),
            r.ready.to_string(),
            r.pending.to_string(),
            r.failing.to_string(),
            r.restarts.to_string(),
            codes
                .get(w)
                .map(|c| c.iter().copied().collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ]);
    }
    Finding::new(
        SUMMARY.code,
        Severity::Info,
        format!(
            "{}: {total} pods in {} workloads, {ready} ready",
            s.scope,
            rows.len()
        ),
    )
    .fact("pods", total)
    .fact("ready", ready)
    .fact("events read", s.events.len())
    .table(t)
    .remediation(SUMMARY.remediation)
}

/// Every finding for the snapshot, most severe first.
pub fn evaluate(s: &Snapshot, l: &Limits) -> Vec<Finding> {
    let mut out = vec![];
    for (what, lost) in &s.denied {
        out.push(
            Finding::new(PERMISSION_MISSING.code, Severity::Warning, format!("Lookout may not {what}: {lost} were not examined"))
                .fact("missing", what.clone())
                .remediation("Grant the read-only ClusterRole from the README (it lists exactly the reads the probe makes)."),
        );
    }
    if s.pods.is_empty() {
        out.push(
            Finding::new(NOTHING_SELECTED.code, Severity::Warning, format!("no pods match {}", s.scope))
                .remediation("Check the namespace and the workload's name (`kubectl get deploy,sts,ds -n NS`); a workload scaled to 0 has no pods."),
        );
    }
    if let Some(total) = s.pods_capped {
        out.push(
            Finding::new(
                PODS_CAPPED.code,
                Severity::Info,
                format!("{} of {total} pods examined", s.pods.len()),
            )
            .remediation("Narrow the scope to a workload or label selector, or raise max_pods."),
        );
    }
    let mut hits = vec![];
    let idx = pod_events(s);
    for p in &s.pods {
        pod_rules(s, &idx, p, l, &mut hits);
    }
    // Merge hits: same code, workload, container and key → one finding with every pod.
    let mut groups: BTreeMap<(&str, Workload, String, String), Vec<Hit>> = BTreeMap::new();
    for h in hits {
        groups
            .entry((
                h.code.code,
                h.workload.clone(),
                h.container.clone(),
                h.key.clone(),
            ))
            .or_default()
            .push(h);
    }
    let mut codes_by_workload: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for ((code, w, _, _), hs) in groups {
        codes_by_workload.entry(w.label()).or_default().insert(code);
        let first = &hs[0];
        let mut f = Finding::new(
            first.code.code,
            first.code.severity,
            if hs.len() > 1 {
                format!("{} ({} pods)", first.title, hs.len())
            } else {
                first.title.clone()
            },
        );
        f.facts = first.facts.clone();
        f.facts.insert(0, ("workload".into(), w.label()));
        if let Some(e) = &first.excerpt {
            f = f.excerpt(format!(
                "previous container's last lines ({}):\n{}",
                first.pod_row[0], e
            ));
        }
        let mut t = Table::new("Pods", POD_COLUMNS);
        for h in hs.iter().take(50) {
            t.row(h.pod_row.clone());
        }
        f = f.table(t);
        for e in &first.events {
            f = f.table(e.clone());
        }
        f = f.remediation(first.remediation.clone());
        if !first.container.is_empty() && !first.pod_row.is_empty() {
            f = f.command(format!(
                "kubectl -n {} describe pod {}",
                s.namespace, first.pod_row[0]
            ));
        }
        out.push(f);
    }
    // Logs that could not be read.
    let unreadable: Vec<String> = s
        .logs
        .iter()
        .filter_map(|((p, c), r)| r.as_ref().err().map(|e| format!("{p}/{c}: {e}")))
        .collect();
    if !unreadable.is_empty() {
        out.push(
            Finding::new(LOGS_UNAVAILABLE.code, Severity::Info, format!("the previous logs of {} containers could not be read", unreadable.len()))
                .fact("why", clip(&unreadable.join("; "), 600))
                .remediation("Grant `get` on `pods/log`; when the kubelet is unreachable the node is the problem. The rest of the diagnosis does not depend on logs."),
        );
    }
    if !s.pods.is_empty() {
        out.push(summary(s, &codes_by_workload));
    }
    deployment_rules(s, &codes_by_workload, &mut out);
    set_rollout_rules(s, l, &codes_by_workload, &mut out);
    cronjob_rules(s, &codes_by_workload, &mut out);
    pdb_rules(s, &mut out);
    hpa_rules(s, &mut out);
    service_rules(s, &mut out);
    job_rules(s, &mut out);
    node_rules(s, &mut out);
    out.sort_by_key(|f| f.severity);
    out
}

#[cfg(test)]
mod tests;
