//! The Kubernetes workload diagnosis probe: what an SRE does with `kubectl get`, `describe`
//! and `logs --previous` when pods misbehave, done in a few list calls.
//!
//! Read-only and bounded: it lists (with `limit`/`continue`, a cap per kind) pods, events,
//! workloads, budgets, autoscalers, services, endpoint slices and nodes, and reads the
//! previous container's last lines for crashing containers (`tailLines`, `limitBytes`, a
//! cap on containers). Each request is one step under the step limit; the number of API
//! requests is the run's command count. Reads the credentials may not make (asked first
//! with SelfSubjectAccessReview) are skipped and named in a finding.

use super::config::{self, is_dns_subdomain};
use super::rules::{self, Limits, Snapshot};
use super::{PERMISSIONS, access_review, classify};
use crate::ProbeError;
use crate::framework::{
    BoxFuture, Connection, Ctx, ParamKind, ParamSpec, Params, Probe, ProbeSpec,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, LogParams};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

pub struct KubernetesProbe;

/// A workload's pod selector and its pod template's labels.
type Found = (Option<LabelSelector>, Option<BTreeMap<String, String>>);

const STEPS: &[&str] = &[
    "Connect",
    "Check permissions",
    "Read workloads",
    "List pods",
    "Read events",
    "Read nodes",
    "Read logs",
    "Analyse",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "namespace",
        label: "Namespace",
        help: "The namespace to diagnose; empty: the target's (its connection's, else its kubeconfig context's, else default).",
        kind: ParamKind::Text { max_len: 63 },
        default: "",
    },
    ParamSpec {
        name: "workload",
        label: "Workload",
        help: "One workload, as kind/name: deployment/api, statefulset/db, daemonset/agent, job/migrate, cronjob/report, pod/x. Empty: every pod in the namespace.",
        kind: ParamKind::Text { max_len: 280 },
        default: "",
    },
    ParamSpec {
        name: "label_selector",
        label: "Label selector",
        help: "Only pods matching this selector (app=api,tier!=cache). Combined with the workload's own selector.",
        kind: ParamKind::Text { max_len: 500 },
        default: "",
    },
    ParamSpec {
        name: "max_pods",
        label: "Pods examined (at most)",
        help: "Pods beyond this are counted, not examined (the finding says so).",
        kind: ParamKind::Int {
            min: 1,
            max: 20_000,
        },
        default: "2000",
    },
    ParamSpec {
        name: "max_events",
        label: "Events read (at most)",
        help: "The namespace's events read, newest pages first as the API returns them.",
        kind: ParamKind::Int {
            min: 0,
            max: 50_000,
        },
        default: "10000",
    },
    ParamSpec {
        name: "log_lines",
        label: "Log lines",
        help: "Last lines of the previous container read for each crashing container (0: no logs).",
        kind: ParamKind::Int { min: 0, max: 200 },
        default: "20",
    },
    ParamSpec {
        name: "log_containers",
        label: "Containers whose logs are read",
        help: "At most this many crashing containers have their previous logs read.",
        kind: ParamKind::Int { min: 0, max: 50 },
        default: "10",
    },
    ParamSpec {
        name: "restart_threshold",
        label: "High restarts",
        help: "A running container restarted at least this often is flagged.",
        kind: ParamKind::Int {
            min: 1,
            max: 10_000,
        },
        default: "5",
    },
    ParamSpec {
        name: "rollout_stuck_s",
        label: "StatefulSet/DaemonSet rollout stuck after (s)",
        help: "Pods of a StatefulSet's or DaemonSet's new revision still not Ready this long after they were made mean the rollout is stuck (Deployments use their own progressDeadlineSeconds).",
        kind: ParamKind::Int {
            min: 1,
            max: 86_400,
        },
        default: "600",
    },
    ParamSpec {
        name: "init_stuck_s",
        label: "Stuck in init after (s)",
        help: "A pod still in an init container this long after it started is stuck.",
        kind: ParamKind::Int {
            min: 10,
            max: 86_400,
        },
        default: "300",
    },
];

static SPEC: ProbeSpec = ProbeSpec {
    name: "kubernetes",
    kind: "kubernetes",
    title: "Kubernetes workload diagnosis",
    description: "Why pods of a namespace or workload fail: unschedulable (with the scheduler's reason and the largest node), CrashLoopBackOff with the last termination (OOMKilled, exit codes, the previous container's last log lines), image pulls (not found vs unauthorized), missing ConfigMaps/Secrets, failing liveness/readiness probes, evictions, stuck init containers; stuck rollouts tied to their revision, PodDisruptionBudgets that block drains, autoscalers at their maximum, Services without endpoints, failed Jobs, node pressure. Each finding gives the exact change (a strategic merge patch and the kubectl command) — shown, never applied.",
    params: PARAMS,
    steps: STEPS,
    codes: rules::CODES,
    run_timeout_s: 120,
    check: None,
};

impl Probe for KubernetesProbe {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(run(ctx, conn, params))
    }
}

/// A workload as named in the parameters: its kind (`Deployment`) and name.
pub type Workload = (&'static str, String);

/// `deployment/api` → ("Deployment", "api").
pub fn parse_workload(w: &str) -> Result<Option<Workload>, String> {
    let w = w.trim();
    if w.is_empty() {
        return Ok(None);
    }
    let (kind, name) = w
        .split_once('/')
        .ok_or_else(|| format!("workload {w:?} is kind/name, e.g. deployment/api"))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "deployment" | "deploy" | "deployments" => "Deployment",
        "statefulset" | "sts" | "statefulsets" => "StatefulSet",
        "daemonset" | "ds" | "daemonsets" => "DaemonSet",
        "job" | "jobs" => "Job",
        "cronjob" | "cj" | "cronjobs" => "CronJob",
        "replicaset" | "rs" | "replicasets" => "ReplicaSet",
        "pod" | "po" | "pods" => "Pod",
        other => {
            return Err(format!(
                "unknown workload kind {:?}: deployment, statefulset, daemonset, job, cronjob, replicaset or pod",
                other.chars().take(30).collect::<String>()
            ));
        }
    };
    if !is_dns_subdomain(name) {
        return Err(format!(
            "{:?} is not a Kubernetes object name",
            name.chars().take(60).collect::<String>()
        ));
    }
    Ok(Some((kind, name.to_string())))
}

/// The `namespace` (empty: the target's) and `workload` parameters, checked.
pub(super) fn scope(
    params: &Params,
    session: &config::Session,
) -> Result<(String, Option<Workload>), ProbeError> {
    let ns = match params.text("namespace").trim() {
        "" => session.checked.namespace.clone(),
        n if config::is_dns_label(n) => n.to_string(),
        n => {
            return Err(ProbeError::InvalidTarget(format!(
                "namespace {:?} is not a Kubernetes namespace name",
                n.chars().take(70).collect::<String>()
            )));
        }
    };
    let workload = parse_workload(params.text("workload")).map_err(ProbeError::InvalidTarget)?;
    Ok((ns, workload))
}

/// A label selector as the list API takes it (`a=b,c in (d,e)`).
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({vals})", e.key),
            "NotIn" => format!("{} notin ({vals})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Label selectors: keys and values of letters, digits, `-_./`, operators `= == != in notin !`.
pub fn check_label_selector(s: &str) -> Result<(), String> {
    if s.chars()
        .any(|c| !(c.is_ascii_alphanumeric() || " -_./=!(),".contains(c)))
    {
        return Err(format!(
            "label selector {:?} has characters a selector cannot hold",
            s.chars().take(60).collect::<String>()
        ));
    }
    Ok(())
}

pub(super) struct Reader<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) target: String,
    pub(super) start: Instant,
}

impl Reader<'_> {
    /// Lists up to `cap` objects, page by page; `Some(total)` when there were more (the
    /// API's remaining count, when it gives one).
    pub(super) async fn list<K>(
        &self,
        api: &Api<K>,
        base: &ListParams,
        cap: usize,
    ) -> Result<(Vec<K>, Option<usize>), ProbeError>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut out: Vec<K> = vec![];
        let mut token: Option<String> = None;
        loop {
            let room = cap.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            let mut lp = base.clone().limit(room.min(500) as u32);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.ctx.pace(1).await?;
            let page = self
                .ctx
                .net(&self.target, api.list(&lp), |e| {
                    classify(&self.target, e, self.start.elapsed())
                })
                .await?;
            let remaining = page.metadata.remaining_item_count.unwrap_or(0).max(0) as usize;
            let more = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            out.extend(page.items);
            match more {
                Some(t) if out.len() < cap => token = Some(t),
                Some(_) => {
                    return Ok((out.clone(), Some(out.len() + remaining.max(1))));
                }
                None => return Ok((out, None)),
            }
        }
        Ok((out, None))
    }
}

fn allowed(denied: &BTreeSet<(&str, &str)>, group: &str, resource: &str) -> bool {
    !denied.contains(&(group, resource))
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let start = Instant::now();
    ctx.phase("Connect");
    let session = config::open(&conn.url, ctx.step_timeout()).await?;
    let target = session.target.server.clone();
    let client = session.client.clone();
    let r = Reader {
        ctx,
        target: target.clone(),
        start,
    };
    ctx.pace(1).await?;
    let version = ctx
        .net(&target, client.apiserver_version(), |e| {
            classify(&target, e, start.elapsed())
        })
        .await?;
    ctx.detail(format!("{} at {target}", version.git_version));

    let (ns, workload) = scope(params, &session)?;
    let user_selector = params.text("label_selector").trim().to_string();
    check_label_selector(&user_selector).map_err(ProbeError::InvalidTarget)?;

    ctx.phase("Check permissions");
    ctx.pace(PERMISSIONS.len() as u64).await?;
    let review = ctx
        .net(&target, access_review(&client, &ns, PERMISSIONS), |e| {
            classify(&target, e, start.elapsed())
        })
        .await?;
    let mut denied_set: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut snap = Snapshot {
        namespace: ns.clone(),
        now: k8s_openapi::jiff::Timestamp::now().as_second(),
        ..Default::default()
    };
    for (p, ok, _) in &review {
        if !ok {
            let res = if p.subresource.is_empty() {
                p.resource
            } else {
                "pods/log"
            };
            denied_set.insert((p.group, res));
            snap.denied.push((
                format!(
                    "{}{}",
                    p.label(),
                    if p.cluster {
                        " (cluster-wide)".to_string()
                    } else {
                        format!(" in {ns}")
                    }
                ),
                p.needed_for.to_string(),
            ));
        }
    }
    ctx.detail(format!(
        "{} of {} reads allowed",
        review.len() - snap.denied.len(),
        review.len()
    ));
    if !allowed(&denied_set, "", "pods") {
        // Without pods there is nothing to diagnose: say so as the finding, and stop.
        for f in rules::evaluate(
            &Snapshot {
                scope: format!("namespace {ns}"),
                pods: vec![],
                ..snap.clone()
            },
            &Limits::default(),
        )
        .into_iter()
        .filter(|f| f.code == rules::PERMISSION_MISSING.code)
        {
            ctx.finding(f);
        }
        return Err(ProbeError::Server {
            target,
            reason: format!("403 Forbidden: the credentials may not list pods in {ns}"),
        });
    }

    ctx.phase("Read workloads");
    const CAP: usize = 5000;
    macro_rules! read {
        ($ty:ty, $group:literal, $res:literal) => {
            if allowed(&denied_set, $group, $res) {
                let api: Api<$ty> = Api::namespaced(client.clone(), &ns);
                r.list(&api, &ListParams::default(), CAP).await?.0
            } else {
                vec![]
            }
        };
    }
    snap.deployments = read!(Deployment, "apps", "deployments");
    snap.replica_sets = read!(ReplicaSet, "apps", "replicasets");
    snap.stateful_sets = read!(StatefulSet, "apps", "statefulsets");
    snap.daemon_sets = read!(DaemonSet, "apps", "daemonsets");
    snap.jobs = read!(Job, "batch", "jobs");
    snap.cron_jobs = read!(CronJob, "batch", "cronjobs");
    snap.pdbs = read!(PodDisruptionBudget, "policy", "poddisruptionbudgets");
    snap.hpas = read!(
        HorizontalPodAutoscaler,
        "autoscaling",
        "horizontalpodautoscalers"
    );
    snap.services = read!(Service, "", "services");
    snap.endpoint_slices = read!(EndpointSlice, "discovery.k8s.io", "endpointslices");

    // The workload's pod selector (and its template labels, to find its Services, budgets).
    let mut selector = user_selector.clone();
    let mut field_selector = None;
    // A CronJob with no runs kept has no pods: nothing to list.
    let mut no_pods = false;
    let mut template_labels: Option<BTreeMap<String, String>> = None;
    let mut scope = format!("namespace {ns}");
    if let Some((kind, wname)) = &workload {
        scope = format!("{}/{wname} in {ns}", kind.to_ascii_lowercase());
        let found: Option<Found> = match *kind {
            "Deployment" => snap
                .deployments
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wname))
                .map(|d| {
                    let s = d.spec.clone().unwrap_or_default();
                    (Some(s.selector), s.template.metadata.and_then(|m| m.labels))
                }),
            "StatefulSet" => snap
                .stateful_sets
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wname))
                .map(|d| {
                    let s = d.spec.clone().unwrap_or_default();
                    (Some(s.selector), s.template.metadata.and_then(|m| m.labels))
                }),
            "DaemonSet" => snap
                .daemon_sets
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wname))
                .map(|d| {
                    let s = d.spec.clone().unwrap_or_default();
                    (Some(s.selector), s.template.metadata.and_then(|m| m.labels))
                }),
            "ReplicaSet" => snap
                .replica_sets
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wname))
                .map(|d| {
                    let s = d.spec.clone().unwrap_or_default();
                    (
                        Some(s.selector),
                        s.template.and_then(|t| t.metadata).and_then(|m| m.labels),
                    )
                }),
            "Job" => snap
                .jobs
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wname))
                .map(|d| {
                    let s = d.spec.clone().unwrap_or_default();
                    (s.selector, s.template.metadata.and_then(|m| m.labels))
                }),
            // A CronJob's pods are its Jobs' pods: those the Job controller labels with
            // the names of the runs it keeps.
            "CronJob" => snap
                .cron_jobs
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(wname))
                .map(|d| {
                    let runs: Vec<String> = snap
                        .jobs
                        .iter()
                        .filter(|j| {
                            j.metadata
                                .owner_references
                                .iter()
                                .flatten()
                                .any(|o| o.kind == "CronJob" && &o.name == wname)
                        })
                        .filter_map(|j| j.metadata.name.clone())
                        .collect();
                    if runs.is_empty() {
                        no_pods = true;
                    }
                    let sel = LabelSelector {
                        match_expressions: Some(vec![
                            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                                key: "job-name".into(),
                                operator: "In".into(),
                                values: Some(runs),
                            },
                        ]),
                        ..Default::default()
                    };
                    let labels = d
                        .spec
                        .as_ref()
                        .and_then(|s| s.job_template.spec.as_ref())
                        .and_then(|s| s.template.metadata.as_ref())
                        .and_then(|m| m.labels.clone());
                    (Some(sel), labels)
                }),
            _ => {
                field_selector = Some(format!("metadata.name={wname}"));
                Some((None, None))
            }
        };
        match found {
            None => {
                return Err(ProbeError::InvalidTarget(format!(
                    "there is no {} {wname:?} in namespace {ns}",
                    kind.to_ascii_lowercase()
                )));
            }
            Some((sel, labels)) => {
                if let Some(sel) = sel {
                    let s = selector_string(&sel);
                    selector = match (selector.is_empty(), s.is_empty()) {
                        (true, _) => s,
                        (false, true) => selector,
                        (false, false) => format!("{s},{selector}"),
                    };
                }
                template_labels = labels;
            }
        }
        // Keep only what concerns this workload.
        let labels = template_labels.clone().unwrap_or_default();
        let wname2 = wname.clone();
        match *kind {
            "Deployment" => {
                snap.deployments
                    .retain(|d| d.metadata.name.as_deref() == Some(&wname2));
                snap.replica_sets.retain(|rs| {
                    rs.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "Deployment" && o.name == wname2)
                });
            }
            _ => snap.deployments.clear(),
        }
        let sel_match = |sel: &BTreeMap<String, String>| rules::selector_matches(sel, &labels);
        snap.services.retain(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(sel_match)
        });
        snap.pdbs.retain(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(sel_match)
        });
        snap.hpas.retain(|h| {
            h.spec.as_ref().is_some_and(|s| {
                s.scale_target_ref.name == wname2 && s.scale_target_ref.kind == *kind
            })
        });
        snap.jobs.retain(|j| match *kind {
            "Job" => j.metadata.name.as_deref() == Some(&wname2),
            "CronJob" => j
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "CronJob" && o.name == wname2),
            _ => false,
        });
        snap.cron_jobs
            .retain(|c| *kind == "CronJob" && c.metadata.name.as_deref() == Some(&wname2));
        snap.stateful_sets
            .retain(|x| *kind == "StatefulSet" && x.metadata.name.as_deref() == Some(&wname2));
        snap.daemon_sets
            .retain(|x| *kind == "DaemonSet" && x.metadata.name.as_deref() == Some(&wname2));
    }
    snap.scope = scope;

    ctx.phase("List pods");
    let max_pods = params.int("max_pods").max(1) as usize;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut lp = ListParams::default();
    if !selector.is_empty() {
        lp = lp.labels(&selector);
    }
    if let Some(f) = &field_selector {
        lp = lp.fields(f);
    }
    let (pods, capped) = if no_pods {
        (vec![], None)
    } else {
        r.list(&pods_api, &lp, max_pods).await?
    };
    ctx.detail(match capped {
        Some(t) => format!("{} of {t} pods", pods.len()),
        None => format!("{} pods", pods.len()),
    });
    snap.pods = pods;
    snap.pods_capped = capped;
    if template_labels.is_none() && workload.is_none() && !user_selector.is_empty() {
        // A selector alone: Services and budgets are those selecting any examined pod.
        let pod_labels: Vec<BTreeMap<String, String>> = snap
            .pods
            .iter()
            .map(|p| p.metadata.labels.clone().unwrap_or_default())
            .collect();
        let any = |sel: &BTreeMap<String, String>| {
            pod_labels.iter().any(|l| rules::selector_matches(sel, l))
        };
        snap.services.retain(|s| {
            s.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(any)
        });
        snap.pdbs.retain(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(any)
        });
    }

    ctx.phase("Read events");
    let max_events = params.int("max_events").max(0) as usize;
    if max_events > 0 && allowed(&denied_set, "", "events") {
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        // One workload's pods: ask for pod events only; the namespace: everything.
        let lp = if workload.is_some() || !user_selector.is_empty() {
            ListParams::default().fields("involvedObject.kind=Pod")
        } else {
            ListParams::default()
        };
        let (events, more) = r.list(&api, &lp, max_events).await?;
        let names: BTreeSet<&str> = snap
            .pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let workload_objects: BTreeSet<String> = snap
            .deployments
            .iter()
            .map(|d| format!("Deployment/{}", d.metadata.name.as_deref().unwrap_or("")))
            .collect();
        let total = events.len();
        snap.events = events
            .into_iter()
            .filter(|e| {
                let o = &e.involved_object;
                let n = o.name.as_deref().unwrap_or("");
                (o.kind.as_deref() == Some("Pod") && names.contains(n))
                    || workload_objects
                        .contains(&format!("{}/{n}", o.kind.as_deref().unwrap_or("")))
            })
            .collect();
        ctx.detail(format!(
            "{} of {}{} events concern the pods examined",
            snap.events.len(),
            total,
            if more.is_some() { "+" } else { "" }
        ));
    }

    ctx.phase("Read nodes");
    if allowed(&denied_set, "", "nodes") {
        let api: Api<Node> = Api::all(client.clone());
        snap.nodes = Some(r.list(&api, &ListParams::default(), CAP).await?.0);
    }

    ctx.phase("Read logs");
    let lines = params.int("log_lines");
    let wanted = rules::wants_logs(&snap.pods);
    let max_logs = params.int("log_containers").max(0) as usize;
    if lines > 0 {
        for (pod, container) in wanted.into_iter().take(max_logs) {
            let res = if !allowed(&denied_set, "", "pods/log") {
                Err("no permission to get pods/log".to_string())
            } else {
                let lp = LogParams {
                    container: Some(container.clone()),
                    previous: true,
                    tail_lines: Some(lines),
                    limit_bytes: Some(16 * 1024),
                    ..Default::default()
                };
                ctx.pace(1).await?;
                let read = ctx
                    .net(&target, pods_api.logs(&pod, &lp), |e| {
                        classify(&target, e, start.elapsed())
                    })
                    .await;
                match read {
                    Ok(text) => Ok(text),
                    Err(ProbeError::Cancelled) => return Err(ProbeError::Cancelled),
                    Err(e) => Err(match e {
                        ProbeError::Server { reason, .. } => super::log_read_failure(&reason),
                        other => other.to_string(),
                    }),
                }
            };
            snap.logs.insert((pod, container), res);
        }
    }

    ctx.phase("Analyse");
    let limits = Limits {
        restarts: params.int("restart_threshold") as i32,
        init_stuck_s: params.int("init_stuck_s"),
        rollout_stuck_s: params.int("rollout_stuck_s"),
    };
    for f in rules::evaluate(&snap, &limits) {
        ctx.finding(f);
    }
    ctx.detail(format!("{} API requests", ctx.commands()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_and_selectors_are_checked() {
        assert_eq!(parse_workload("").unwrap(), None);
        assert_eq!(
            parse_workload("Deployment/api").unwrap(),
            Some(("Deployment", "api".into()))
        );
        assert_eq!(
            parse_workload("sts/db-0").unwrap(),
            Some(("StatefulSet", "db-0".into()))
        );
        for bad in [
            "api",
            "service/x",
            "deployment/",
            "deployment/API",
            "deployment/a b",
            "pod/../x",
        ] {
            assert!(parse_workload(bad).is_err(), "{bad}");
        }
        assert!(check_label_selector("app=api,tier!=cache,env in (a,b)").is_ok());
        assert!(check_label_selector("app=api&x=1").is_err());
        assert!(check_label_selector("app=\"x\"").is_err());
    }
}
