//! A finding as a card: evidence (facts, tables, the command that produced it, a raw
//! excerpt), remediation with copyable commands, and the status controls.

use crate::components::time::LocalTime;
use crate::incident_fns::SetFindingStatus;
use domain::incidents::Finding;
use leptos::prelude::*;

/// A button that copies `text` (`components::enhance` handles `data-copy`).
#[component]
pub fn CopyButton(text: String, #[prop(into)] label: String) -> impl IntoView {
    view! { <button type="button" class="copy" data-copy=text>{label}</button> }
}

/// A finding in a long list (the incident page): code, severity (by its group and colour),
/// status, title and source in one line; the code links to the finding's own page
/// (evidence, remediation, status controls). The incident page stays light with hundreds.
#[component]
pub fn FindingSummary(f: Finding) -> impl IntoView {
    let href = f
        .incident_key
        .as_ref()
        .map(|k| format!("/incidents/{k}/findings/{}", f.id));
    let source = match (&f.source.probe, &f.source.target) {
        (Some(p), Some(t)) => format!("probe {p} on {t}"),
        _ => "entered by hand".to_string(),
    };
    let status = f.status.as_str();
    view! {
        <article class=format!("finding summary fsev-{} fstatus-{status}", f.severity.as_str()) id=format!("finding-{}", f.id)>
            <a href=href class="code"><code>{f.code}</code></a>
            <span class=format!("badge fstatus fstatus-{status}")>{status}</span>
            <span class="title">{f.title}</span>
            <span class="muted">{source}</span>
            {f.status_reason.map(|r| view! { <span class="reason">"Reason: "{r}</span> })}
        </article>
    }
}

/// The checklist item a finding suggests, added to a template in one click: the template
/// (its newest version) and the section are chosen here, the server adds the item as a new
/// version and shows that version's diff. Shown to approvers only (who may edit templates).
#[component]
fn AddToTemplate(item: String) -> impl IntoView {
    let add = ServerAction::<crate::deployment_fns::AddTemplateItem>::new();
    let templates = Resource::new(|| (), |_| crate::deployment_fns::templates_to_add_to());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let item = item.clone();
                Suspend::new(async move {
                    let list = templates.await.unwrap_or_default();
                    (!list.is_empty()).then(|| view! {
                        <ActionForm action=add attr:class="inline add-item" attr:data-pending="Adding…">
                            <input type="hidden" name="item" value=item/>
                            <label>"Add this check to "
                                <select name="template_id" aria-label="Checklist template">
                                    {list.into_iter().map(|t| view! {
                                        <option value=t.template_id.clone()>{format!("{} ({} v{})", t.name, t.template_id, t.latest_version)}</option>
                                    }).collect_view()}
                                </select>
                            </label>
                            <label>" in "
                                <select name="section" aria-label="Section">
                                    <option value="post" selected>"post-deploy"</option>
                                    <option value="during">"during the rollout"</option>
                                    <option value="pre">"pre-deploy"</option>
                                </select>
                            </label>
                            <button type="submit">"Add to checklist"</button>
                        </ActionForm>
                    })
                })
            }}
        </Suspense>
    }
}

#[component]
pub fn FindingCard(f: Finding, fstatus: ServerAction<SetFindingStatus>) -> impl IntoView {
    let id = f.id;
    let source = match (&f.source.probe, &f.source.target) {
        (Some(p), Some(t)) => format!("probe {p} on {t}"),
        _ => "entered by hand".to_string(),
    };
    view! {
        <article class=format!("panel finding fsev-{} fstatus-{}", f.severity.as_str(), f.status.as_str()) id=format!("finding-{id}")>
            <header>
                <a href=format!("#finding-{id}") class="code"><code>{f.code.clone()}</code></a>
                <span class=format!("badge fstatus fstatus-{}", f.status.as_str())>{f.status.as_str()}</span>
            </header>
            <h4>{f.title.clone()}</h4>
            <p class="muted">{source}" · "<LocalTime at=f.created_at/>" · updated by "{f.updated_by.clone()}</p>
            {f.status_reason.clone().map(|r| view! { <p class="reason">"Reason: "{r}</p> })}
            {(!f.evidence.facts.is_empty()).then(|| view! {
                <table class="data evidence">
                    <thead><tr><th>"Evidence"</th><th>"Value"</th></tr></thead>
                    <tbody>
                    {f.evidence.facts.iter().cloned().map(|x| view! { <tr><td>{x.name}</td><td>{x.value}</td></tr> }).collect_view()}
                    </tbody>
                </table>
            })}
            {f.evidence.tables.iter().cloned().map(|t| view! {
                <div class="table-wrap evidence-table">
                    <crate::components::sortable::SortableTable caption=t.title columns=t.columns rows=t.rows/>
                </div>
            }).collect_view()}
            {f.evidence.charts.iter().cloned().map(|c| view! { <crate::components::charts::EvidenceChartView chart=c/> }).collect_view()}
            {f.evidence.command.clone().map(|c| view! {
                <div class="command"><span class="muted">"Produced by"</span><pre><code>{c.clone()}</code></pre></div>
            })}
            {f.evidence.excerpt.clone().map(|x| view! { <details><summary>"Raw excerpt"</summary><pre>{x}</pre></details> })}
            // The rendered remediation (pages receive it without its markdown source).
            {(!f.remediation_html.trim().is_empty()).then(|| view! {
                <div class="remediation"><h5>"Remediation"</h5><div class="md" inner_html=f.remediation_html.clone()></div></div>
            })}
            {(!f.commands.is_empty()).then(|| view! {
                <div class="commands">
                    {f.commands.iter().cloned().map(|c| {
                        let suggested = domain::deployments::is_suggested_item(&c).then(|| view! { <AddToTemplate item=c.clone()/> });
                        view! {
                            <div class="cmd"><code>{c.clone()}</code><CopyButton text=c label="Copy"/></div>
                            {suggested}
                        }
                    }).collect_view()}
                </div>
            })}
            {f.doc_link.clone().map(|l| view! { <p><a href=l rel="noopener noreferrer" target="_blank">"Documentation"</a></p> })}
            {f.incident_key.is_some().then(|| view! {
            <div class="finding-actions">
                <ActionForm action=fstatus attr:class="inline">
                    <input type="hidden" name="finding_id" value=id.to_string()/>
                    <input type="hidden" name="status" value="confirmed"/>
                    <input type="hidden" name="reason" value=""/>
                    <button type="submit">"Confirm"</button>
                </ActionForm>
                <ActionForm action=fstatus attr:class="inline">
                    <input type="hidden" name="finding_id" value=id.to_string()/>
                    <input type="hidden" name="status" value="fixed"/>
                    <input type="hidden" name="reason" value=""/>
                    <button type="submit">"Fixed"</button>
                </ActionForm>
                <details class="fp">
                    <summary>"False positive…"</summary>
                    <ActionForm action=fstatus attr:class="inline fp-form">
                        <input type="hidden" name="finding_id" value=id.to_string()/>
                        <input type="hidden" name="status" value="false_positive"/>
                        <input type="text" name="reason" required placeholder="why it is not a problem" aria-label="Reason"/>
                        <button type="submit">"Mark false positive"</button>
                    </ActionForm>
                </details>
            </div>
            })}
        </article>
    }
}
