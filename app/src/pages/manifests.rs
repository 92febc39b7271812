//! Kubernetes manifest checks: paste YAML, get the findings next to the lines they are about.
//! The form posts to the server's own handler (`POST /kubernetes/manifests`), which answers
//! with this page and the result in its context — nothing is stored, and a pasted manifest
//! never travels in a URL (it may hold a Secret). Enhanced, the answer is shown in place.

use crate::components::common::FormError;
use crate::error::AppError;
use domain::manifests::{ManifestIssue, ManifestReport};
use leptos::prelude::*;
use leptos_meta::Title;

/// Set only when this page answers a form post: the text checked (the file's, when one was
/// chosen), the outcome, and the cluster (a Kubernetes target) it was checked against.
#[derive(Clone, Debug)]
pub struct ManifestFormPost(
    pub String,
    pub Result<ManifestReport, AppError>,
    pub Option<i64>,
);

/// Texts longer than this are not listed line by line (the findings table still is).
const MAX_LISTED_LINES: usize = 3000;

#[component]
pub fn ManifestsPage() -> impl IntoView {
    let posted = use_context::<ManifestFormPost>();
    let text = posted.as_ref().map(|p| p.0.clone()).unwrap_or_default();
    let chosen = posted.as_ref().and_then(|p| p.2);
    let result = posted.map(|p| p.1);
    let targets = Resource::new(|| (), |_| crate::target_fns::list_targets());
    view! {
        <Title text="Kubernetes manifest checks"/>
        <p class="crumbs"><a href="/targets">"Targets"</a>" › Kubernetes manifest checks"</p>
        <h1>"Kubernetes manifest checks"</h1>
        <p class="muted">
            "Paste manifests as " <code>"kubectl apply -f"</code> " takes them (several documents separated by "
            <code>"---"</code> "), or choose a file. Each finding sits under the line it is about, with the fragment that fixes it. "
            "Choose a cluster to also check the requests against its largest node. "
            "Nothing is stored. The same checks run on what is deployed with the "
            <code>"kubernetes-manifests"</code> " probe, and through "
            <code>"POST /api/v1/kubernetes/manifest-checks"</code> " (docs/kubernetes.md)."
        </p>
        <form method="post" action="/kubernetes/manifests" class="stack" id="manifest-form" data-enhance="page"
            enctype="multipart/form-data" data-pending="Checking…">
            <label>"Manifests (YAML)"
                <textarea name="yaml" rows="14" spellcheck="false" autocomplete="off"
                    placeholder="apiVersion: apps/v1\nkind: Deployment\n…">{crate::components::common::raw_element_text(&text)}</textarea>
            </label>
            <div class="filters">
                <label>"…or a file (replaces the text above; at most 2 MiB)"
                    <input type="file" name="file" accept=".yaml,.yml,.json,application/yaml,text/yaml,application/json"/>
                </label>
                <label>"Cluster (optional)"
                    <Suspense fallback=|| view! { <select name="target"><option value="">"None: static checks only"</option></select> }>
                        {move || targets.get().map(|r| {
                            let kube: Vec<_> = r.unwrap_or_default().into_iter().filter(|t| t.kind.as_str() == "kubernetes").collect();
                            view! {
                                <select name="target">
                                    <option value="">"None: static checks only"</option>
                                    {kube.into_iter().map(|t| {
                                        let selected = chosen == Some(t.id);
                                        view! { <option value=t.id.to_string() selected=selected>{format!("{} ({})", t.name, t.environment)}</option> }
                                    }).collect_view()}
                                </select>
                            }
                        })}
                    </Suspense>
                </label>
            </div>
            <p><button type="submit" class="primary">"Check"</button></p>
        </form>
        {result.map(|r| match r {
            Err(e) => view! { <FormError error=Some(e)/> }.into_any(),
            Ok(report) => view! { <Report report text/> }.into_any(),
        })}
    }
}

fn count(f: &[ManifestIssue], sev: &str) -> usize {
    f.iter().filter(|x| x.severity == sev).count()
}

#[component]
fn Report(report: ManifestReport, text: String) -> impl IntoView {
    let f = report.findings.clone();
    let summary = format!(
        "{} documents ({}); {} findings: {} critical, {} warning, {} info",
        report.documents,
        report
            .objects
            .join(", ")
            .chars()
            .take(300)
            .collect::<String>(),
        f.len(),
        count(&f, "critical"),
        count(&f, "warning"),
        count(&f, "info"),
    );
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let listed = lines.len() <= MAX_LISTED_LINES;
    let cluster = report.cluster.clone().map(|c| match c.error {
        Some(e) => view! {
            <p class="notice warn" id="manifest-cluster">
                {format!("The nodes of {} could not be read, so requests were not checked against them: {e}", c.target)}
            </p>
        }.into_any(),
        None => view! {
            <p class="muted" id="manifest-cluster">
                {format!(
                    "Checked against {}: {} nodes; the largest allocatable is {} CPU and {} memory.",
                    c.target,
                    c.nodes,
                    c.largest_cpu.unwrap_or_else(|| "unknown".into()),
                    c.largest_memory.unwrap_or_else(|| "unknown".into())
                )}
            </p>
        }.into_any(),
    });
    view! {
        <section class="panel" id="manifest-report">
            <h2>"Result"</h2>
            <p class="run-summary" role="status">{summary}</p>
            {cluster}
            {if f.is_empty() {
                view! { <p class="notice ok">"No findings: these manifests pass every check."</p> }.into_any()
            } else if listed {
                view! {
                    <ol class="manifest-listing">
                        {lines.into_iter().enumerate().map(|(i, l)| {
                            let n = i + 1;
                            let here: Vec<ManifestIssue> = f.iter().filter(|x| x.line == n).cloned().collect();
                            let flagged = !here.is_empty();
                            view! {
                                <li id=format!("L{n}") class:flagged=flagged><code>{l}</code>
                                    {here.into_iter().map(issue).collect_view()}
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                }.into_any()
            } else {
                view! {
                    <p class="muted">{format!("{} lines: too long to list; the findings by line:", lines.len())}</p>
                    <div class="manifest-issues">{f.into_iter().map(issue).collect_view()}</div>
                }.into_any()
            }}
        </section>
    }
}

fn issue(x: ManifestIssue) -> impl IntoView {
    let fix = (!x.fix.is_empty()).then(|| {
        let fix = x.fix.clone();
        view! {
            <details><summary>"Fix"</summary>
                <div class="cmd"><pre><code>{fix.clone()}</code></pre>
                <crate::components::findings::CopyButton text=fix label="Copy"/></div>
            </details>
        }
    });
    view! {
        <div class=format!("manifest-issue sev-{}", x.severity) data-code=x.code.clone()>
            <span class=format!("sev sev-{}", x.severity)>{x.severity.clone()}</span>" "
            <code>{x.code.clone()}</code>" "
            <span class="muted">{format!("line {} · {}{}", x.line, x.object, x.container.as_ref().map(|c| format!(" · {c}")).unwrap_or_default())}</span>
            <p>{x.message.clone()}</p>
            {fix}
        </div>
    }
}
