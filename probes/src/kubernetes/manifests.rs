//! Static checks on Kubernetes manifests (multi-document YAML, as `kubectl apply -f` takes
//! it): pure functions from the text to findings that name the object, the container and
//! the line, each with a stable id and the fragment that fixes it. The same checks back the
//! manifest-check page, its API and (later) pre-deploy checklist items.
//!
//! Parsing is bounded: at most [`MAX_MANIFEST_BYTES`], the YAML parser's budget (aliases,
//! depth 64, 1,024 documents, 250,000 nodes) refuses bombs, and a document that is not a
//! Kubernetes object (no `apiVersion`/`kind`) is an error that names it.

use super::rules::selector_matches;
use crate::framework::{CodeDoc, Severity};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The largest manifest text accepted.
pub const MAX_MANIFEST_BYTES: usize = 2 * 1024 * 1024;

macro_rules! check {
    ($name:ident, $code:literal, $sev:ident, $meaning:literal, $rem:literal) => {
        pub const $name: CodeDoc = CodeDoc {
            code: $code,
            severity: Severity::$sev,
            meaning: $meaning,
            remediation: $rem,
        };
    };
}

check!(
    RESOURCES,
    "K8S_MF_RESOURCES",
    Warning,
    "A container sets no CPU/memory requests or no memory limit: the scheduler packs it blindly and it can take a node's memory.",
    "Set `resources.requests` (cpu, memory) near measured use and a `resources.limits.memory`."
);
check!(
    PROBES,
    "K8S_MF_PROBES",
    Warning,
    "A long-running container has no readiness probe (traffic reaches it before it is ready) or no liveness probe.",
    "Add a `readinessProbe` on the endpoint that says the process can serve, and a `livenessProbe` that checks the process only."
);
check!(
    PROBE_TIMING,
    "K8S_MF_PROBE_TIMING",
    Warning,
    "A probe's timeoutSeconds is not shorter than its periodSeconds, so checks overlap.",
    "Keep `timeoutSeconds` below `periodSeconds`."
);
check!(
    SAME_PROBES,
    "K8S_MF_SAME_PROBES",
    Warning,
    "Readiness and liveness call the same endpoint: a dependency outage then restarts every pod instead of taking them out of rotation.",
    "Point liveness at a cheap process check (`/livez`) and readiness at the dependency-aware one (`/readyz`)."
);
check!(
    IMAGE_TAG,
    "K8S_MF_IMAGE_TAG",
    Warning,
    "An image has no tag or the `latest` tag: what runs changes without a deploy, and rollbacks do not roll back.",
    "Pin a version tag, or better a digest (`image@sha256:…`)."
);
check!(
    PULL_POLICY,
    "K8S_MF_PULL_POLICY",
    Info,
    "A mutable tag (`latest`, or none) with `imagePullPolicy` other than Always: nodes run whatever they cached.",
    "Pin the tag; with a mutable tag set `imagePullPolicy: Always`."
);
check!(
    SERVICE_ACCOUNT,
    "K8S_MF_SERVICE_ACCOUNT",
    Info,
    "The pod runs as the namespace's `default` service account, with its API token mounted.",
    "Give the workload its own service account, and `automountServiceAccountToken: false` unless it calls the API."
);
check!(
    RUN_AS_ROOT,
    "K8S_MF_RUN_AS_ROOT",
    Warning,
    "A container may run as root (no `runAsNonRoot: true`, or `runAsUser: 0`).",
    "Set `securityContext.runAsNonRoot: true` (and a non-zero `runAsUser`) on the pod or container."
);
check!(
    PRIVILEGE,
    "K8S_MF_PRIVILEGE",
    Critical,
    "A container is privileged or may gain privileges (`privileged: true`, `allowPrivilegeEscalation` not false).",
    "Set `securityContext.allowPrivilegeEscalation: false` and drop `privileged`."
);
check!(
    READONLY_ROOT,
    "K8S_MF_READONLY_ROOT",
    Info,
    "A container's root filesystem is writable.",
    "Set `securityContext.readOnlyRootFilesystem: true`, with an `emptyDir` for the paths it writes."
);
check!(
    NO_PDB,
    "K8S_MF_NO_PDB",
    Warning,
    "A multi-replica workload has no PodDisruptionBudget in the manifests: a node drain can take all its pods at once.",
    "Add a PodDisruptionBudget with `maxUnavailable: 1` selecting its pods."
);
check!(
    PDB_BLOCKS,
    "K8S_MF_PDB_BLOCKS",
    Warning,
    "A PodDisruptionBudget allows no disruption (`maxUnavailable: 0`, or `minAvailable` equal to the replicas): drains hang.",
    "Use `maxUnavailable: 1`."
);
check!(
    SPREAD,
    "K8S_MF_SPREAD",
    Info,
    "A multi-replica workload has no pod anti-affinity or topology spread: all replicas may land on one node or zone.",
    "Add `topologySpreadConstraints` over `kubernetes.io/hostname` (and the zone)."
);
check!(
    SERVICE_SELECTOR,
    "K8S_MF_SERVICE_SELECTOR",
    Critical,
    "A Service's selector matches no pod template in the manifests (a typo sends traffic nowhere), or its targetPort is not a port of the pods it selects.",
    "Make the selector and the pod template's labels agree, and the targetPort a declared container port (or its name)."
);

check!(
    REQUESTS_EXCEED_NODE,
    "K8S_MF_REQUESTS_EXCEED_NODE",
    Critical,
    "A container requests more CPU or memory than the cluster's largest node can allocate: its pods can never be scheduled (checked when the manifests are read from a cluster).",
    "Lower the request below the largest node's allocatable (with room for the node's daemons), or add a node pool with bigger nodes."
);

pub const CODES: &[CodeDoc] = &[
    RESOURCES,
    PROBES,
    PROBE_TIMING,
    SAME_PROBES,
    IMAGE_TAG,
    PULL_POLICY,
    SERVICE_ACCOUNT,
    RUN_AS_ROOT,
    PRIVILEGE,
    READONLY_ROOT,
    NO_PDB,
    PDB_BLOCKS,
    SPREAD,
    SERVICE_SELECTOR,
    REQUESTS_EXCEED_NODE,
];

/// One problem in the manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestFinding {
    pub code: &'static str,
    pub severity: Severity,
    /// `Deployment/api` (namespace not included).
    pub object: String,
    pub container: Option<String>,
    /// 1-based line of the object (or its container) in the text.
    pub line: usize,
    pub message: String,
    /// A YAML fragment that fixes it (merged into the object).
    pub fix: String,
}

/// One parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: String,
    pub name: String,
    pub value: Value,
    /// 1-based line where the document starts.
    pub line: usize,
}

/// The documents of a manifest text, or an error naming the bad one.
pub fn parse(text: &str) -> Result<Vec<Document>, String> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "the manifests are {} KiB; at most {} KiB are checked at once",
            text.len() / 1024,
            MAX_MANIFEST_BYTES / 1024
        ));
    }
    let values: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let m = e.to_string();
        format!(
            "the manifests do not parse as YAML: {}",
            m.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>()
        )
    })?;
    // Where each document starts: after each `---` line (the first at line 1).
    let mut starts = vec![1usize];
    let mut first_content = None;
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("---") {
            if first_content.is_none() {
                starts[0] = i + 2;
            } else {
                starts.push(i + 2);
            }
        } else if first_content.is_none()
            && !l.trim().is_empty()
            && !l.trim_start().starts_with('#')
        {
            first_content = Some(i);
        }
    }
    let mut docs = vec![];
    let mut n = 0;
    for v in values {
        if v.is_null() {
            n += 1;
            continue;
        }
        let line = starts.get(n).copied().unwrap_or(1);
        n += 1;
        let (Some(kind), Some(_)) = (v["kind"].as_str(), v["apiVersion"].as_str()) else {
            return Err(format!(
                "the document at line {line} is not a Kubernetes object (it has no apiVersion and kind)"
            ));
        };
        if kind == "List" {
            for item in v["items"].as_array().cloned().unwrap_or_default() {
                docs.push(Document {
                    kind: item["kind"].as_str().unwrap_or("").to_string(),
                    name: item["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    value: item,
                    line,
                });
            }
            continue;
        }
        docs.push(Document {
            kind: kind.to_string(),
            name: v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            value: v,
            line,
        });
    }
    if docs.is_empty() {
        return Err("no Kubernetes objects in the text".into());
    }
    Ok(docs)
}

/// The pod template of a workload document, with its replica count.
pub(super) fn pod_template(d: &Document) -> Option<(&Value, &Value, i64)> {
    let v = &d.value;
    match d.kind.as_str() {
        "Deployment" | "StatefulSet" | "ReplicaSet" => Some((
            &v["spec"]["template"]["metadata"],
            &v["spec"]["template"]["spec"],
            v["spec"]["replicas"].as_i64().unwrap_or(1),
        )),
        "DaemonSet" => Some((
            &v["spec"]["template"]["metadata"],
            &v["spec"]["template"]["spec"],
            1,
        )),
        "Job" => Some((
            &v["spec"]["template"]["metadata"],
            &v["spec"]["template"]["spec"],
            1,
        )),
        "CronJob" => Some((
            &v["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
            &v["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            1,
        )),
        "Pod" => Some((&v["metadata"], &v["spec"], 1)),
        _ => None,
    }
}

/// A map of strings (labels, a selector) from its JSON; other values are left out.
pub(super) fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn labels(meta: &Value) -> BTreeMap<String, String> {
    string_map(&meta["labels"])
}

/// The line of `name: <container>` at or after the document's start.
fn container_line(text_lines: &[&str], from: usize, name: &str) -> usize {
    let want = [
        format!("name: {name}"),
        format!("name: \"{name}\""),
        format!("name: '{name}'"),
    ];
    text_lines
        .iter()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim();
            want.iter().any(|w| t == w)
        })
        .map(|(i, _)| i + 1)
        .unwrap_or(from)
}

fn mutable_tag(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => true,
        Some((_, tag)) => tag == "latest",
    }
}

fn probe_handler(p: &Value) -> Option<String> {
    if let Some(h) = p.get("httpGet") {
        return Some(format!(
            "http {} {}",
            h["path"].as_str().unwrap_or("/"),
            h["port"]
        ));
    }
    if let Some(t) = p.get("tcpSocket") {
        return Some(format!("tcp {}", t["port"]));
    }
    if let Some(g) = p.get("grpc") {
        return Some(format!("grpc {}", g["port"]));
    }
    p.get("exec").map(|e| format!("exec {}", e["command"]))
}

fn yaml(v: &Value) -> String {
    super::rules::to_yaml(v)
}

/// Every check over the documents.
pub fn check(text: &str, docs: &[Document]) -> Vec<ManifestFinding> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut templates: Vec<(&Document, BTreeMap<String, String>, &Value)> = vec![];
    for d in docs {
        let Some((meta, spec, replicas)) = pod_template(d) else {
            continue;
        };
        let object = format!("{}/{}", d.kind, d.name);
        templates.push((d, labels(meta), spec));
        let long_running = !matches!(d.kind.as_str(), "Job" | "CronJob");
        let pod_sc = &spec["securityContext"];
        let mut push =
            |code: CodeDoc, container: Option<&str>, line: usize, message: String, fix: Value| {
                out.push(ManifestFinding {
                    code: code.code,
                    severity: code.severity,
                    object: object.clone(),
                    container: container.map(str::to_string),
                    line,
                    message,
                    fix: yaml(&fix),
                });
            };
        // Pod-level.
        let sa = spec["serviceAccountName"].as_str().unwrap_or("default");
        if sa == "default" && spec["automountServiceAccountToken"] != json!(false) {
            push(
                SERVICE_ACCOUNT,
                None,
                d.line,
                format!("{object} runs as the default service account with its token mounted"),
                json!({ "serviceAccountName": d.name, "automountServiceAccountToken": false }),
            );
        }
        let pod_non_root = pod_sc["runAsNonRoot"] == json!(true);
        for c in spec["containers"].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or("");
            let line = container_line(&lines, d.line, cname);
            let res = &c["resources"];
            let has_req = res["requests"]["cpu"].is_string() || res["requests"]["cpu"].is_number();
            let has_mem_req = !res["requests"]["memory"].is_null();
            let has_mem_limit = !res["limits"]["memory"].is_null();
            if !(has_req && has_mem_req && has_mem_limit) {
                let mut missing = vec![];
                if !has_req {
                    missing.push("requests.cpu");
                }
                if !has_mem_req {
                    missing.push("requests.memory");
                }
                if !has_mem_limit {
                    missing.push("limits.memory");
                }
                push(
                    RESOURCES,
                    Some(cname),
                    line,
                    format!("container {cname} sets no {}", missing.join(", ")),
                    json!({ "name": cname, "resources": { "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "memory": "256Mi" } } }),
                );
            }
            if long_running {
                let rp = c.get("readinessProbe");
                let lp = c.get("livenessProbe");
                if rp.is_none() || lp.is_none() {
                    let which = match (rp.is_none(), lp.is_none()) {
                        (true, true) => "no readiness and no liveness probe",
                        (true, false) => "no readiness probe",
                        _ => "no liveness probe",
                    };
                    push(
                        PROBES,
                        Some(cname),
                        line,
                        format!("container {cname} has {which}"),
                        json!({ "name": cname, "readinessProbe": { "httpGet": { "path": "/readyz", "port": 8080 }, "periodSeconds": 10 },
                                "livenessProbe": { "httpGet": { "path": "/livez", "port": 8080 }, "periodSeconds": 10 } }),
                    );
                }
                if let (Some(r), Some(l)) = (rp, lp)
                    && let (Some(a), Some(b)) = (probe_handler(r), probe_handler(l))
                    && a == b
                {
                    push(
                        SAME_PROBES,
                        Some(cname),
                        line,
                        format!("container {cname}'s readiness and liveness probes both call {a}"),
                        json!({ "name": cname, "livenessProbe": { "httpGet": { "path": "/livez" } } }),
                    );
                }
                for (kind, p) in [
                    ("readinessProbe", rp),
                    ("livenessProbe", lp),
                    ("startupProbe", c.get("startupProbe")),
                ] {
                    let Some(p) = p else { continue };
                    let period = p["periodSeconds"].as_i64().unwrap_or(10);
                    let timeout = p["timeoutSeconds"].as_i64().unwrap_or(1);
                    if timeout >= period {
                        push(
                            PROBE_TIMING,
                            Some(cname),
                            line,
                            format!(
                                "container {cname}'s {kind} times out after {timeout}s but runs every {period}s"
                            ),
                            json!({ "name": cname, kind: { "timeoutSeconds": (period - 1).max(1), "periodSeconds": period.max(2) } }),
                        );
                    }
                }
            }
            let image = c["image"].as_str().unwrap_or("");
            if mutable_tag(image) {
                push(
                    IMAGE_TAG,
                    Some(cname),
                    line,
                    format!(
                        "container {cname}'s image {image:?} is not pinned (no tag, or latest)"
                    ),
                    json!({ "name": cname, "image": format!("{}:<version>", image.trim_end_matches(":latest")) }),
                );
                let policy = c["imagePullPolicy"].as_str().unwrap_or(
                    if image.ends_with(":latest")
                        || !image.rsplit('/').next().unwrap_or("").contains(':')
                    {
                        "Always"
                    } else {
                        "IfNotPresent"
                    },
                );
                if policy != "Always" {
                    push(
                        PULL_POLICY,
                        Some(cname),
                        line,
                        format!(
                            "container {cname} uses a mutable tag with imagePullPolicy {policy}"
                        ),
                        json!({ "name": cname, "imagePullPolicy": "Always" }),
                    );
                }
            }
            let sc = &c["securityContext"];
            let non_root = sc["runAsNonRoot"] == json!(true)
                || (pod_non_root && sc["runAsNonRoot"] != json!(false));
            let uid0 = sc["runAsUser"] == json!(0)
                || (sc["runAsUser"].is_null() && pod_sc["runAsUser"] == json!(0));
            if !non_root || uid0 {
                push(
                    RUN_AS_ROOT,
                    Some(cname),
                    line,
                    format!("container {cname} may run as root"),
                    json!({ "name": cname, "securityContext": { "runAsNonRoot": true, "runAsUser": 10001 } }),
                );
            }
            if sc["privileged"] == json!(true) || sc["allowPrivilegeEscalation"] != json!(false) {
                push(
                    PRIVILEGE,
                    Some(cname),
                    line,
                    if sc["privileged"] == json!(true) {
                        format!("container {cname} is privileged")
                    } else {
                        format!(
                            "container {cname} may escalate privileges (allowPrivilegeEscalation is not false)"
                        )
                    },
                    json!({ "name": cname, "securityContext": { "privileged": false, "allowPrivilegeEscalation": false } }),
                );
            }
            if sc["readOnlyRootFilesystem"] != json!(true) {
                push(
                    READONLY_ROOT,
                    Some(cname),
                    line,
                    format!("container {cname}'s root filesystem is writable"),
                    json!({ "name": cname, "securityContext": { "readOnlyRootFilesystem": true } }),
                );
            }
        }
        if replicas > 1 && matches!(d.kind.as_str(), "Deployment" | "StatefulSet") {
            let tl = labels(meta);
            let has_pdb = docs.iter().any(|p| {
                p.kind == "PodDisruptionBudget"
                    && selector_matches(
                        &string_map(&p.value["spec"]["selector"]["matchLabels"]),
                        &tl,
                    )
            });
            if !has_pdb {
                let sel = tl
                    .iter()
                    .next()
                    .map(|(k, v)| json!({ k: v }))
                    .unwrap_or(json!({}));
                push(
                    NO_PDB,
                    None,
                    d.line,
                    format!("{object} has {replicas} replicas and no PodDisruptionBudget"),
                    json!({ "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": { "name": d.name },
                            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": sel } } }),
                );
            }
            let spread = spec["affinity"]["podAntiAffinity"].is_object()
                || spec["topologySpreadConstraints"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
            if !spread {
                let sel = tl
                    .iter()
                    .next()
                    .map(|(k, v)| json!({ k: v }))
                    .unwrap_or(json!({}));
                push(
                    SPREAD,
                    None,
                    d.line,
                    format!(
                        "{object} has {replicas} replicas and no anti-affinity or topology spread"
                    ),
                    json!({ "topologySpreadConstraints": [{ "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": { "matchLabels": sel } }] }),
                );
            }
        }
    }
    // Budgets that block, and Services that select nothing.
    for d in docs {
        let object = format!("{}/{}", d.kind, d.name);
        if d.kind == "PodDisruptionBudget" {
            let spec = &d.value["spec"];
            let sel = string_map(&spec["selector"]["matchLabels"]);
            let replicas = templates
                .iter()
                .filter(|(_, l, _)| selector_matches(&sel, l))
                .map(|(t, _, _)| t.value["spec"]["replicas"].as_i64().unwrap_or(1))
                .max();
            let blocks = spec["maxUnavailable"] == json!(0)
                || spec["maxUnavailable"] == json!("0%")
                || spec["minAvailable"] == json!("100%")
                || replicas.is_some_and(|r| spec["minAvailable"].as_i64().is_some_and(|m| m >= r));
            if blocks {
                out.push(ManifestFinding {
                    code: PDB_BLOCKS.code,
                    severity: PDB_BLOCKS.severity,
                    object: object.clone(),
                    container: None,
                    line: d.line,
                    message: format!(
                        "{object} allows no disruption{}",
                        replicas
                            .map(|r| format!(" ({r} replicas)"))
                            .unwrap_or_default()
                    ),
                    fix: yaml(&json!({ "spec": { "minAvailable": null, "maxUnavailable": 1 } })),
                });
            }
        }
        if d.kind == "Service" {
            let spec = &d.value["spec"];
            let sel = string_map(&spec["selector"]);
            if sel.is_empty() {
                continue;
            }
            let matching: Vec<&(&Document, BTreeMap<String, String>, &Value)> = templates
                .iter()
                .filter(|(_, l, _)| selector_matches(&sel, l))
                .collect();
            let sel_text = sel
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            if matching.is_empty() {
                let closest = templates
                    .iter()
                    .max_by_key(|(_, l, _)| {
                        sel.iter().filter(|(k, v)| l.get(*k) == Some(v)).count()
                    })
                    .map(|(t, l, _)| {
                        format!(
                            " (closest: {}/{} with {})",
                            t.kind,
                            t.name,
                            l.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        )
                    })
                    .unwrap_or_default();
                out.push(ManifestFinding {
                    code: SERVICE_SELECTOR.code,
                    severity: SERVICE_SELECTOR.severity,
                    object: object.clone(),
                    container: None,
                    line: d.line,
                    message: format!("{object}'s selector {sel_text} matches no pod template in these manifests{closest}"),
                    fix: String::new(),
                });
                continue;
            }
            for p in spec["ports"].as_array().into_iter().flatten() {
                let tp = p
                    .get("targetPort")
                    .cloned()
                    .unwrap_or_else(|| p["port"].clone());
                let found = matching.iter().any(|(_, _, s)| {
                    s["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                        .any(|cp| cp["containerPort"] == tp || (tp.is_string() && cp["name"] == tp))
                });
                let declares = matching.iter().any(|(_, _, s)| {
                    s["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["ports"].as_array().is_some_and(|a| !a.is_empty()))
                });
                if declares && !found {
                    out.push(ManifestFinding {
                        code: SERVICE_SELECTOR.code,
                        severity: SERVICE_SELECTOR.severity,
                        object: object.clone(),
                        container: None,
                        line: d.line,
                        message: format!("{object}'s targetPort {tp} is not a port of the pods it selects ({sel_text})"),
                        fix: String::new(),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.line.cmp(&b.line).then(a.severity.cmp(&b.severity)));
    out
}

/// Requests above the largest node's allocatable: `largest` is (cpu cores, memory bytes,
/// the node's name) for each resource, from the cluster's nodes.
pub fn check_against_nodes(
    text: &str,
    docs: &[Document],
    largest_cpu: Option<(f64, String)>,
    largest_memory: Option<(f64, String)>,
) -> Vec<ManifestFinding> {
    use super::rules::{fmt_cpu, fmt_memory, parse_quantity};
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for d in docs {
        let Some((_, spec, _)) = pod_template(d) else {
            continue;
        };
        for c in spec["containers"].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or("");
            for (res, largest) in [("cpu", &largest_cpu), ("memory", &largest_memory)] {
                let Some((max, node)) = largest else { continue };
                let q = &c["resources"]["requests"][res];
                let Some(v) = q
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| q.as_f64().map(|f| f.to_string()))
                    .and_then(|t| parse_quantity(&t))
                else {
                    continue;
                };
                if v > *max {
                    let (asked, have, fit) = if res == "cpu" {
                        (fmt_cpu(v), fmt_cpu(*max), fmt_cpu(max * 0.9))
                    } else {
                        (fmt_memory(v), fmt_memory(*max), fmt_memory(max * 0.9))
                    };
                    out.push(ManifestFinding {
                        code: REQUESTS_EXCEED_NODE.code,
                        severity: REQUESTS_EXCEED_NODE.severity,
                        object: format!("{}/{}", d.kind, d.name),
                        container: Some(cname.to_string()),
                        line: container_line(&lines, d.line, cname),
                        message: format!("container {cname} requests {asked} {res}; the largest node ({node}) has {have} allocatable"),
                        fix: yaml(&json!({ "name": cname, "resources": { "requests": { res: fit } } })),
                    });
                }
            }
        }
    }
    out
}

/// Parses and checks.
pub fn check_text(text: &str) -> Result<(Vec<Document>, Vec<ManifestFinding>), String> {
    let docs = parse(text)?;
    let findings = check(text, &docs);
    Ok((docs, findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      serviceAccountName: api
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: api}}}
      containers:
      - name: app
        image: registry.example.com/api:1.4.2
        ports: [{containerPort: 8080, name: http}]
        resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}
        readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 10, timeoutSeconds: 2}
        livenessProbe: {httpGet: {path: /livez, port: http}, periodSeconds: 10, timeoutSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: api}}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
"#;

    #[test]
    fn a_good_manifest_raises_nothing() {
        let (docs, f) = check_text(GOOD).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(f, vec![], "{f:#?}");
    }

    #[test]
    fn checks_table() {
        let cases: Vec<(&str, String, &str, &str)> = vec![
            ("no resources", GOOD.replace("        resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}\n", ""), "K8S_MF_RESOURCES", "sets no requests.cpu, requests.memory, limits.memory"),
            ("no readiness", GOOD.replace("        readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 10, timeoutSeconds: 2}\n", ""), "K8S_MF_PROBES", "no readiness probe"),
            ("same probes", GOOD.replace("/livez", "/readyz"), "K8S_MF_SAME_PROBES", "both call http /readyz"),
            ("timeout ≥ period", GOOD.replace("periodSeconds: 10, timeoutSeconds: 2}\n        livenessProbe", "periodSeconds: 5, timeoutSeconds: 5}\n        livenessProbe"), "K8S_MF_PROBE_TIMING", "times out after 5s but runs every 5s"),
            ("latest", GOOD.replace("api:1.4.2", "api:latest"), "K8S_MF_IMAGE_TAG", "is not pinned"),
            ("default sa", GOOD.replace("      serviceAccountName: api\n      automountServiceAccountToken: false\n", ""), "K8S_MF_SERVICE_ACCOUNT", "default service account"),
            ("root", GOOD.replace("runAsNonRoot: true, runAsUser: 10001", "runAsUser: 0"), "K8S_MF_RUN_AS_ROOT", "may run as root"),
            ("escalation", GOOD.replace("allowPrivilegeEscalation: false, ", ""), "K8S_MF_PRIVILEGE", "may escalate privileges"),
            ("rw root", GOOD.replace(", readOnlyRootFilesystem: true", ""), "K8S_MF_READONLY_ROOT", "writable"),
            ("no pdb", GOOD.replace("kind: PodDisruptionBudget", "kind: ConfigMap"), "K8S_MF_NO_PDB", "3 replicas and no PodDisruptionBudget"),
            ("pdb blocks", GOOD.replace("  maxUnavailable: 1\n", "  minAvailable: 3\n"), "K8S_MF_PDB_BLOCKS", "allows no disruption (3 replicas)"),
            ("no spread", GOOD.replace("      topologySpreadConstraints:\n      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: api}}}\n", ""), "K8S_MF_SPREAD", "no anti-affinity"),
            ("selector typo", GOOD.replace("  selector: {app: api}", "  selector: {app: apj}"), "K8S_MF_SERVICE_SELECTOR", "matches no pod template"),
            ("port typo", GOOD.replace("targetPort: http", "targetPort: 9090"), "K8S_MF_SERVICE_SELECTOR", "targetPort 9090 is not a port"),
        ];
        for (name, text, code, words) in cases {
            let (_, f) = check_text(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let codes: Vec<&str> = f.iter().map(|f| f.code).collect();
            assert!(
                codes
                    .iter()
                    .all(|c| *c == code
                        || (code == "K8S_MF_IMAGE_TAG" && *c == "K8S_MF_PULL_POLICY")),
                "{name}: only {code}, got {codes:?}"
            );
            let hit = f
                .iter()
                .find(|f| f.code == code)
                .unwrap_or_else(|| panic!("{name}: {codes:?}"));
            assert!(hit.message.contains(words), "{name}: {}", hit.message);
            if hit.container.is_some() {
                assert_eq!(hit.line, 19, "{name}: the container's line");
            }
        }
    }

    #[test]
    fn requests_are_checked_against_the_largest_node() {
        let text = GOOD.replace("cpu: 100m, memory: 128Mi", "cpu: \"12\", memory: 40Gi");
        let docs = parse(&text).unwrap();
        let f = check_against_nodes(
            &text,
            &docs,
            Some((8.0, "n1".into())),
            Some((32.0 * 1024f64.powi(3), "n2".into())),
        );
        let msgs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            msgs,
            vec![
                "container app requests 12 cpu; the largest node (n1) has 8 allocatable",
                "container app requests 40Gi memory; the largest node (n2) has 32Gi allocatable",
            ]
        );
        assert!(f[0].fix.contains("cpu: 7200m"), "{}", f[0].fix);
        // Next to the container's own line, as the static checks are.
        let app_line = text
            .lines()
            .position(|l| l.trim_start().trim_start_matches("- ") == "name: app")
            .unwrap()
            + 1;
        assert_eq!((f[0].line, f[1].line), (app_line, app_line));
        assert!(
            check_against_nodes(GOOD, &parse(GOOD).unwrap(), Some((8.0, "n1".into())), None)
                .is_empty()
        );
    }

    #[test]
    fn bad_text_is_refused_by_name() {
        for (text, want) in [
            ("a: [", "do not parse"),
            ("just: text\n", "line 1 is not a Kubernetes object"),
            (
                "apiVersion: v1\nkind: ConfigMap\n---\nfoo: bar\n",
                "line 4 is not a Kubernetes object",
            ),
            ("", "no Kubernetes objects"),
        ] {
            let e = check_text(text).err().unwrap_or_default();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 0..9u8 {
            let (p, n) = ((b'a' + i) as char, (b'a' + i + 1) as char);
            bomb.push_str(&format!(
                "{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            ));
        }
        let t0 = std::time::Instant::now();
        assert!(check_text(&bomb).is_err());
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
        assert!(check_text(&format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000))).is_err());
        assert!(
            check_text(&"x".repeat(MAX_MANIFEST_BYTES + 1))
                .unwrap_err()
                .contains("at most")
        );
    }
}
