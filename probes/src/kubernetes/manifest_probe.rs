//! The manifest checks on what runs: the `kubernetes-manifests` probe reads a namespace's
//! workloads (or one), with their PodDisruptionBudgets and Services, from the cluster and
//! runs the static checks of `manifests.rs` on them. As a probe it runs from an incident
//! and, bound to a Kubernetes target, as a pre-deploy checklist item (`kind: probe`,
//! `probe: kubernetes-manifests`). Read-only: the same list calls as the diagnosis.

use super::config;
use super::manifests::{self, Document, ManifestFinding};
use super::probe::{Reader, scope};
use super::{access_review, classify};
use crate::ProbeError;
use crate::framework::{
    BoxFuture, Connection, Ctx, Finding, ParamKind, ParamSpec, Params, Probe, ProbeSpec, Table,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

pub struct ManifestProbe;

const STEPS: &[&str] = &["Connect", "Check permissions", "Read workloads", "Check"];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "namespace",
        label: "Namespace",
        help: "The namespace whose workloads are checked; empty: the target's.",
        kind: ParamKind::Text { max_len: 63 },
        default: "",
    },
    ParamSpec {
        name: "workload",
        label: "Workload",
        help: "One workload (deployment/api, statefulset/db, daemonset/agent, job/migrate, cronjob/report); empty: every workload of the namespace.",
        kind: ParamKind::Text { max_len: 280 },
        default: "",
    },
];

static SPEC: ProbeSpec = ProbeSpec {
    name: "kubernetes-manifests",
    kind: "kubernetes",
    title: "Kubernetes manifest checks (live)",
    description: "The static manifest checks (resources, probes, image tags, service accounts, security context, disruption budgets, spread, Service selectors and ports) on the workloads as they run in the cluster — for an incident, or as a pre-deploy checklist item. Each finding lists every object and container it concerns, with the fragment that fixes it. The same codes are raised on YAML by `POST /api/v1/kubernetes/manifest-checks`, with the line of each (see docs/kubernetes.md).",
    params: PARAMS,
    steps: STEPS,
    codes: manifests::CODES,
    run_timeout_s: 60,
    check: None,
};

impl Probe for ManifestProbe {
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

/// An object as a document (typed objects serialize with their apiVersion and kind).
fn doc<K: serde::Serialize>(kind: &str, name: Option<&String>, obj: &K) -> Document {
    let mut value = serde_json::to_value(obj).unwrap_or(Value::Null);
    value["kind"] = json!(kind);
    Document {
        kind: kind.into(),
        name: name.cloned().unwrap_or_default(),
        value,
        line: 0,
    }
}

/// One finding per code: every object and container it concerns in a table, and the first
/// one's fix.
pub fn group(ns: &str, found: Vec<ManifestFinding>) -> Vec<Finding> {
    let mut by: BTreeMap<&'static str, Vec<ManifestFinding>> = BTreeMap::new();
    for f in found {
        by.entry(f.code).or_default().push(f);
    }
    let mut out = vec![];
    for (code, fs) in by {
        let doc = manifests::CODES.iter().find(|c| c.code == code);
        let first = &fs[0];
        let mut t = Table::new("Where", &["Object", "Container", "Problem"]);
        for f in fs.iter().take(200) {
            t.row(vec![
                f.object.clone(),
                f.container.clone().unwrap_or_default(),
                f.message.clone(),
            ]);
        }
        let title = if fs.len() == 1 {
            first.message.clone()
        } else {
            format!(
                "{} ({} places)",
                doc.map(|d| d.meaning).unwrap_or(code).trim_end_matches('.'),
                fs.len()
            )
        };
        let mut rem = doc.map(|d| d.remediation.to_string()).unwrap_or_default();
        if !first.fix.is_empty() {
            let (kind, name) = first.object.split_once('/').unwrap_or(("", ""));
            let patchable = matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet");
            rem.push_str(&format!(
                "\n\nFor `{}`{}:\n\n```yaml\n{}```",
                first.object,
                first
                    .container
                    .as_ref()
                    .map(|c| format!(" (container `{c}`)"))
                    .unwrap_or_default(),
                first.fix
            ));
            if patchable && first.container.is_some() {
                rem.push_str(&format!(
                    "\n\n(merged into the container of the same name: `kubectl -n {ns} edit {} {name}`, or in the manifest in your repository)",
                    kind.to_ascii_lowercase()
                ));
            }
        }
        out.push(
            Finding::new(code, first.severity, title)
                .fact("places", fs.len())
                .table(t)
                .remediation(rem),
        );
    }
    out.sort_by_key(|f| f.severity);
    out
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let start = Instant::now();
    ctx.phase("Connect");
    let session = config::open(&conn.url, ctx.step_timeout()).await?;
    let target = session.target.server.clone();
    let client = session.client.clone();
    let (ns, workload) = scope(params, &session)?;
    let r = Reader {
        ctx,
        target: target.clone(),
        start,
    };
    ctx.phase("Check permissions");
    let needed: Vec<super::Permission> = super::PERMISSIONS
        .iter()
        .copied()
        .filter(|p| {
            matches!(
                p.resource,
                "deployments"
                    | "statefulsets"
                    | "daemonsets"
                    | "jobs"
                    | "cronjobs"
                    | "poddisruptionbudgets"
                    | "services"
                    | "nodes"
            )
        })
        .collect();
    ctx.pace(needed.len() as u64).await?;
    let review = ctx
        .net(&target, access_review(&client, &ns, &needed), |e| {
            classify(&target, e, start.elapsed())
        })
        .await?;
    let denied: Vec<&super::Permission> = review
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(p, _, _)| p)
        .collect();
    for p in &denied {
        ctx.finding(
            Finding::new(
                super::rules::PERMISSION_MISSING.code,
                super::rules::PERMISSION_MISSING.severity,
                format!(
                    "Lookout may not {} in {ns}: those objects were not checked",
                    p.label()
                ),
            )
            .remediation("Grant the read-only ClusterRole from the README."),
        );
    }
    let ok = |res: &str| !denied.iter().any(|p| p.resource == res);

    ctx.phase("Read workloads");
    const CAP: usize = 5000;
    let lp = ListParams::default();
    let mut docs: Vec<Document> = vec![];
    if ok("deployments") {
        for o in r
            .list(
                &Api::<Deployment>::namespaced(client.clone(), &ns),
                &lp,
                CAP,
            )
            .await?
            .0
        {
            docs.push(doc("Deployment", o.metadata.name.as_ref(), &o));
        }
    }
    if ok("statefulsets") {
        for o in r
            .list(
                &Api::<StatefulSet>::namespaced(client.clone(), &ns),
                &lp,
                CAP,
            )
            .await?
            .0
        {
            docs.push(doc("StatefulSet", o.metadata.name.as_ref(), &o));
        }
    }
    if ok("daemonsets") {
        for o in r
            .list(&Api::<DaemonSet>::namespaced(client.clone(), &ns), &lp, CAP)
            .await?
            .0
        {
            docs.push(doc("DaemonSet", o.metadata.name.as_ref(), &o));
        }
    }
    if ok("jobs") {
        for o in r
            .list(&Api::<Job>::namespaced(client.clone(), &ns), &lp, CAP)
            .await?
            .0
        {
            // Jobs a CronJob made are its template's copies: only standalone Jobs are checked.
            if o.metadata
                .owner_references
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            {
                continue;
            }
            docs.push(doc("Job", o.metadata.name.as_ref(), &o));
        }
    }
    if ok("cronjobs") {
        for o in r
            .list(&Api::<CronJob>::namespaced(client.clone(), &ns), &lp, CAP)
            .await?
            .0
        {
            docs.push(doc("CronJob", o.metadata.name.as_ref(), &o));
        }
    }
    let mut others: Vec<Document> = vec![];
    if ok("poddisruptionbudgets") {
        for o in r
            .list(
                &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
                &lp,
                CAP,
            )
            .await?
            .0
        {
            others.push(doc("PodDisruptionBudget", o.metadata.name.as_ref(), &o));
        }
    }
    if ok("services") {
        for o in r
            .list(&Api::<Service>::namespaced(client.clone(), &ns), &lp, CAP)
            .await?
            .0
        {
            others.push(doc("Service", o.metadata.name.as_ref(), &o));
        }
    }
    if let Some((kind, name)) = &workload {
        docs.retain(|d| d.kind == *kind && d.name == *name);
        if docs.is_empty() {
            return Err(ProbeError::InvalidTarget(format!(
                "there is no {} {name:?} in namespace {ns}",
                kind.to_ascii_lowercase()
            )));
        }
        // Only the Services that select this workload's pods (the others belong to others).
        let labels = manifests::pod_template(&docs[0])
            .map(|(meta, _, _)| manifests::string_map(&meta["labels"]))
            .unwrap_or_default();
        others.retain(|d| {
            d.kind != "Service"
                || super::rules::selector_matches(
                    &manifests::string_map(&d.value["spec"]["selector"]),
                    &labels,
                )
        });
    }
    ctx.detail(format!(
        "{} workloads, {} budgets and services",
        docs.len(),
        others.len()
    ));
    docs.extend(others);

    // The cluster's largest node, for requests that could never be scheduled.
    let nodes_ok = !denied.iter().any(|p| p.resource == "nodes");
    let largest = if nodes_ok {
        largest_allocatable(&r.list(&Api::<Node>::all(client.clone()), &lp, CAP).await?.0)
    } else {
        [None, None]
    };

    ctx.phase("Check");
    let mut found = manifests::check("", &docs);
    let [cpu, memory] = largest;
    found.extend(manifests::check_against_nodes("", &docs, cpu, memory));
    for f in group(&ns, found) {
        ctx.finding(f);
    }
    Ok(())
}

/// The largest allocatable (cpu cores, memory bytes) among nodes, each with its node's name.
pub type Largest = [Option<(f64, String)>; 2];

pub fn largest_allocatable(nodes: &[Node]) -> Largest {
    let mut largest: Largest = [None, None];
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        let Some(alloc) = n.status.as_ref().and_then(|s| s.allocatable.as_ref()) else {
            continue;
        };
        for (res, slot) in ["cpu", "memory"].into_iter().zip(largest.iter_mut()) {
            if let Some(v) = alloc
                .get(res)
                .and_then(|q| super::rules::parse_quantity(&q.0))
                && slot.as_ref().is_none_or(|(m, _)| v > *m)
            {
                *slot = Some((v, name.clone()));
            }
        }
    }
    largest
}

/// The cluster's nodes, for checking pasted manifests against them: at most 5,000 nodes in
/// pages of 500, each request under `limit`, the whole under `4 × limit`. Read-only.
pub async fn read_nodes(
    address: &str,
    limit: std::time::Duration,
) -> Result<(Largest, usize), ProbeError> {
    let start = Instant::now();
    let session = config::open(address, limit).await?;
    let target = session.target.server.clone();
    let api: Api<Node> = Api::all(session.client.clone());
    let mut nodes: Vec<Node> = vec![];
    let mut token: Option<String> = None;
    let all = async {
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = tokio::time::timeout(limit, api.list(&lp))
                .await
                .map_err(|_| ProbeError::TimedOut {
                    target: target.clone(),
                    limit: crate::secs(limit),
                })?
                .map_err(|e| classify(&target, e, start.elapsed()))?;
            nodes.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(t) if nodes.len() < 5000 => token = Some(t),
                _ => return Ok::<(), ProbeError>(()),
            }
        }
    };
    tokio::time::timeout(limit * 4, all)
        .await
        .map_err(|_| ProbeError::TimedOut {
            target: target.clone(),
            limit: crate::secs(limit * 4),
        })??;
    Ok((largest_allocatable(&nodes), nodes.len()))
}
