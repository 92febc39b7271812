//! Deployment checklists (issue 12): templates so far. Reading is open to every signed-in
//! role; creating and editing templates (each edit a new version) needs the approver role,
//! as the people who own the release process. Every save is audited.

use crate::accounts::{Principal, RequestMeta, Role};
use crate::deployments::*;
use crate::error::{DomainError, DomainResult};
use crate::storage::{audit, deployments as store, is_unique_violation};
use sqlx::PgPool;

fn view(r: store::TemplateRow) -> DomainResult<Template> {
    let spec: TemplateSpec = serde_json::from_value(r.spec).map_err(DomainError::internal)?;
    Ok(Template {
        template_id: r.template_id,
        version: r.version,
        name: r.name,
        description: r.description,
        yaml: r.yaml,
        spec,
        built_in: r.built_in,
        created_by: r.created_by,
        created_at: r.created_at,
    })
}

fn not_found(id: &str) -> DomainError {
    DomainError::not_found(format!("no deployment template {id:?}"))
}

/// Every template, its newest version.
pub async fn list_templates(pool: &PgPool, who: &Principal) -> DomainResult<Vec<TemplateSummary>> {
    who.require(Role::Viewer)?;
    store::list_latest(pool)
        .await?
        .into_iter()
        .map(|r| {
            let t = view(r)?;
            Ok(TemplateSummary {
                items: t.spec.sections.len(),
                template_id: t.template_id,
                latest_version: t.version,
                name: t.name,
                description: t.description,
                built_in: t.built_in,
                updated_at: t.created_at,
                updated_by: t.created_by,
            })
        })
        .collect()
}

/// A template: its newest version, or the one asked for.
pub async fn get_template(
    pool: &PgPool,
    who: &Principal,
    template_id: &str,
    version: Option<i32>,
) -> DomainResult<Template> {
    who.require(Role::Viewer)?;
    let row = match version {
        Some(v) => store::version(pool, template_id, v).await?,
        None => store::latest(pool, template_id).await?,
    };
    match (row, version) {
        (Some(r), _) => view(r),
        (None, Some(v)) => match store::latest(pool, template_id).await? {
            Some(_) => Err(DomainError::not_found(format!(
                "template {template_id:?} has no version {v}"
            ))),
            None => Err(not_found(template_id)),
        },
        (None, None) => Err(not_found(template_id)),
    }
}

/// The versions of a template, newest first: (version, saved by, saved at).
pub async fn template_versions(
    pool: &PgPool,
    who: &Principal,
    template_id: &str,
) -> DomainResult<Vec<(i32, String, time::OffsetDateTime)>> {
    who.require(Role::Viewer)?;
    let v = store::versions(pool, template_id).await?;
    if v.is_empty() {
        return Err(not_found(template_id));
    }
    Ok(v)
}

/// Saves a template from its YAML: a new template (`edit_of` None; its id must be free) or
/// a new version of `edit_of` (the YAML's id must be that id). A `version:` in the YAML must
/// be the version this save creates (so two people editing the same version cannot both
/// win). Nothing is written when anything is wrong.
pub async fn save_template(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    edit_of: Option<&str>,
    yaml: &str,
) -> DomainResult<Template> {
    save(pool, who, meta, edit_of, yaml, None).await
}

/// Adds a checklist item a finding suggests (`item`: a YAML list of one item) at the end of
/// `section` of template `template_id`, as a new version (approvers). The rest of the YAML
/// stays as written; the version saved is the newest plus one, and if someone saved a
/// version meanwhile the add is refused rather than undoing theirs.
pub async fn add_template_item(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    template_id: &str,
    section: &str,
    item: &str,
) -> DomainResult<Template> {
    who.require(Role::Approver)?;
    let section = Section::parse(section.trim())
        .ok_or_else(|| DomainError::invalid("section: one of pre, during, post"))?;
    let latest = get_template(pool, who, template_id.trim(), None).await?;
    let (yaml, _) =
        add_item(&latest.yaml, section, item, latest.version + 1).map_err(DomainError::invalid)?;
    save(
        pool,
        who,
        meta,
        Some(&latest.template_id),
        &yaml,
        Some(latest.version),
    )
    .await
}

async fn save(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    edit_of: Option<&str>,
    yaml: &str,
    base: Option<i32>,
) -> DomainResult<Template> {
    who.require(Role::Approver)?;
    let parsed = parse_template(yaml).map_err(DomainError::invalid)?;
    let id = parsed.spec.id.clone();
    if let Some(path_id) = edit_of
        && path_id != id
    {
        return Err(DomainError::invalid(format!(
            "id {id:?}: this is template {path_id:?}; a template's id does not change (save it as a new template instead)"
        )));
    }
    let mut tx = pool.begin().await?;
    let latest = store::latest(&mut *tx, &id).await?;
    let next = match (&latest, edit_of) {
        (None, None) => 1,
        (Some(_), None) => {
            return Err(DomainError::conflict(format!(
                "template {id:?} exists: edit it to add a version"
            )));
        }
        (None, Some(_)) => return Err(not_found(&id)),
        (Some(l), Some(_)) => l.version + 1,
    };
    if let (Some(b), Some(l)) = (base, &latest)
        && l.version != b
    {
        return Err(DomainError::conflict(format!(
            "{id:?} is at version {} now (someone saved meanwhile): look at it and add the item again",
            l.version
        )));
    }
    if let Some(v) = parsed.version
        && v != next
    {
        return Err(DomainError::conflict(format!(
            "version {v}: this save would create version {next} (the template is at version {}); reload it and edit the newest version",
            next - 1
        )));
    }
    if let Some(l) = &latest
        && l.yaml == yaml
    {
        return Err(DomainError::invalid(
            "nothing changed: the YAML is the same as the newest version",
        ));
    }
    let spec_json = serde_json::to_value(&parsed.spec).map_err(DomainError::internal)?;
    let row = store::insert(
        &mut *tx,
        store::NewTemplate {
            template_id: &id,
            version: next,
            name: &parsed.spec.name,
            description: &parsed.spec.description,
            yaml,
            spec: spec_json,
            built_in: false,
            created_by: &who.name,
            created_by_id: who.user_id,
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::conflict(format!(
                "someone saved version {next} of {id:?} meanwhile; reload it and edit the newest version"
            ))
        } else {
            e.into()
        }
    })?;
    audit::append(
        &mut *tx,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: if next == 1 {
                "template.create"
            } else {
                "template.update"
            },
            target: &id,
            details: serde_json::json!({ "version": next, "items": parsed.spec.sections.len() }),
            meta,
        },
    )
    .await?;
    tx.commit().await?;
    view(row)
}

/// The built-in templates Lookout ships (`domain/templates/`, copied from seed 000).
pub const BUILT_IN_TEMPLATES: &[(&str, &str)] = &[
    (
        "deployment-checklist",
        include_str!("../../templates/deployment-checklist.yaml"),
    ),
    (
        "database-migration-safety",
        include_str!("../../templates/database-migration-safety.yaml"),
    ),
    (
        "redis-optimisation",
        include_str!("../../templates/redis-optimisation.yaml"),
    ),
    (
        "kafka-consumers",
        include_str!("../../templates/kafka-consumers.yaml"),
    ),
    (
        "kubernetes-health",
        include_str!("../../templates/kubernetes-health.yaml"),
    ),
    (
        "tracing-implementation",
        include_str!("../../templates/tracing-implementation.yaml"),
    ),
    (
        "llm-cost-optimisation",
        include_str!("../../templates/llm-cost-optimisation.yaml"),
    ),
    (
        "performance-debugging",
        include_str!("../../templates/performance-debugging.yaml"),
    ),
];

/// Installs the built-in templates at start-up (every replica may; the versions' unique key
/// settles races): a template that does not exist gets version 1, marked built in; one whose
/// newest version is still a built-in one that differs from what this Lookout ships gets a
/// new built-in version (deployments keep the version they were opened from). Once people
/// have saved their own version, it is theirs: it is never replaced. Returns the versions
/// written.
pub async fn install_built_in_templates(pool: &PgPool) -> DomainResult<usize> {
    let mut written = 0;
    for (id, yaml) in BUILT_IN_TEMPLATES {
        let parsed = parse_template(yaml)
            .map_err(|e| DomainError::internal(format!("built-in template {id}: {e}")))?;
        let latest = store::latest(pool, id).await?;
        let version = match &latest {
            None => 1,
            Some(l) if l.built_in && l.yaml != *yaml => l.version + 1,
            Some(_) => continue,
        };
        let res = store::insert(
            pool,
            store::NewTemplate {
                template_id: id,
                version,
                name: &parsed.spec.name,
                description: &parsed.spec.description,
                yaml,
                spec: serde_json::to_value(&parsed.spec).map_err(DomainError::internal)?,
                built_in: true,
                created_by: "lookout",
                created_by_id: None,
            },
        )
        .await;
        match res {
            Ok(_) => written += 1,
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

// ---- deployments ------------------------------------------------------------------------
//
// Responders create deployments and work their manual items; approvers waive items and
// sign (never their own deployment, and one standing decision each); every change holds
// the deployment's row lock and writes its event in the same transaction.

use crate::incidents::check_name;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

/// What `POST /api/v1/deployments` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub service: String,
    pub environment: String,
    pub version: String,
    /// A template id; its newest version unless `template_version` says which.
    pub template: String,
    #[serde(default)]
    pub template_version: Option<i32>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub pipeline_url: Option<String>,
    /// The template's target bindings: binding name → a target's name, or a label selector
    /// (`service=checkout, environment=production`) that matches exactly one target of the
    /// kind the binding needs.
    #[serde(default)]
    pub targets: std::collections::BTreeMap<String, String>,
    /// Values for the template's parameters (numbers or strings); the others take their
    /// defaults.
    #[serde(default)]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
}

/// What can be done to an item.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ItemAction {
    /// A person checks a manual item (with a note when the item requires one).
    Check {
        #[serde(default)]
        note: Option<String>,
    },
    /// Back to pending.
    Uncheck,
    /// An approver waives it, with a reason: shown as waived, never as passed.
    Waive { reason: String },
    /// An automated item is measured again from the start (a new run).
    Rerun,
}

fn dep_not_found(key: &str) -> DomainError {
    DomainError::not_found(format!("no deployment {key:?} (keys look like DEP-12)"))
}

fn text_field(what: &str, s: &str, max: usize, required: bool) -> DomainResult<String> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(DomainError::invalid(format!("{what} is required")));
    }
    if t.chars().count() > max {
        return Err(DomainError::invalid(format!(
            "{what} is too long: at most {max} characters"
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(DomainError::invalid(format!(
            "{what} has control characters"
        )));
    }
    Ok(t.to_string())
}

async fn locked(db: &mut PgConnection, key: &str) -> DomainResult<store::DeploymentRow> {
    let id = parse_deployment_key(key).ok_or_else(|| dep_not_found(key))?;
    store::deployment(&mut *db, id, true)
        .await?
        .ok_or_else(|| dep_not_found(key))
}

/// [`locked`], for a caller who must be allowed this deployment's service (a CI token
/// limited to deployments of others is refused).
async fn locked_for(
    db: &mut PgConnection,
    who: &Principal,
    key: &str,
) -> DomainResult<store::DeploymentRow> {
    let row = locked(db, key).await?;
    who.may_deploy(&row.service)?;
    Ok(row)
}

/// Ends a change: the deployment as it now stands, read in the same transaction, then the
/// commit.
async fn committed_detail(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    key: &str,
    policy: &ApprovalPolicy,
) -> DomainResult<DeploymentDetail> {
    let row = locked(&mut tx, key).await?;
    let d = detail(&mut tx, row, policy).await?;
    tx.commit().await?;
    Ok(d)
}

fn status_of(r: &store::DeploymentRow) -> DomainResult<DeploymentStatus> {
    DeploymentStatus::parse(&r.status)
        .ok_or_else(|| DomainError::internal(format!("unknown deployment status {:?}", r.status)))
}

fn item_view(r: store::ItemRow) -> DomainResult<DeploymentItem> {
    let kind = ItemKind::parse(&r.kind)
        .ok_or_else(|| DomainError::internal(format!("unknown item kind {:?}", r.kind)))?;
    let metric = match (&r.spec, kind) {
        (Some(spec), ItemKind::Metric) => Some(
            serde_json::from_value::<MetricCheck>(spec.clone()).map_err(DomainError::internal)?,
        ),
        _ => None,
    };
    let probe = match (&r.spec, kind) {
        (Some(spec), ItemKind::Probe) => Some(
            serde_json::from_value::<ProbeCheck>(spec.clone()).map_err(DomainError::internal)?,
        ),
        _ => None,
    };
    let kafka_lag = match (&r.spec, kind) {
        (Some(spec), ItemKind::KafkaLag) => Some(
            serde_json::from_value::<KafkaLagCheck>(spec.clone()).map_err(DomainError::internal)?,
        ),
        _ => None,
    };
    let section = match r.section.as_str() {
        "pre" => Section::Pre,
        "during" => Section::During,
        "post" => Section::Post,
        s => return Err(DomainError::internal(format!("unknown section {s:?}"))),
    };
    Ok(DeploymentItem {
        item_id: r.item_id,
        section,
        kind,
        metric,
        probe,
        kafka_lag,
        probe_run: r.probe_run_id,
        target: r.target_name,
        run: r.run,
        measurements: vec![],
        text: r.text,
        help: r.help,
        required: r.required,
        requires_note: r.requires_note,
        state: ItemState::parse(&r.state)
            .ok_or_else(|| DomainError::internal(format!("unknown item state {:?}", r.state)))?,
        set_by: r.set_by,
        set_at: r.set_at,
        note: r.note,
    })
}

/// The measurements shown per item.
pub const MEASUREMENTS_SHOWN: i64 = 60;

/// A deployment's items, in template order, with their newest measurements.
async fn items_of(db: &mut PgConnection, id: i64) -> DomainResult<Vec<DeploymentItem>> {
    let mut items: Vec<DeploymentItem> = store::items(&mut *db, id)
        .await?
        .into_iter()
        .map(item_view)
        .collect::<DomainResult<_>>()?;
    if items.iter().any(|i| i.kind.is_automated() && i.run > 0) {
        for m in store::measurements(&mut *db, id, MEASUREMENTS_SHOWN).await? {
            if let Some(it) = items.iter_mut().find(|i| i.item_id == m.item_id) {
                it.measurements.push(Measurement {
                    run: m.run,
                    at: m.at,
                    phase: m.phase,
                    values: serde_json::from_value(m.value).unwrap_or_default(),
                    series: m.series,
                    message: m.message,
                });
            }
        }
    }
    Ok(items)
}

/// A label selector (`k=v, k=v`), or `None` for a target name.
fn selector(s: &str) -> Option<Vec<(String, String)>> {
    s.contains('=').then(|| {
        s.split(',')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect()
    })
}

/// The target a binding names: by name, or the one target of `kind` a label selector
/// matches (`environment` matches the target's environment as well as its labels).
async fn bind_target(
    db: &mut PgConnection,
    binding: &str,
    wanted: &str,
    kind: &str,
) -> DomainResult<(i64, String)> {
    let all = crate::storage::targets::list(&mut *db).await?;
    let of_kind: Vec<_> = all.iter().filter(|t| t.kind == kind).collect();
    let found: Vec<_> = match selector(wanted) {
        None => of_kind.iter().filter(|t| t.name == wanted.trim()).collect(),
        Some(sel) => of_kind
            .iter()
            .filter(|t| {
                let labels = crate::storage::labels_from_json(&t.labels);
                sel.iter().all(|(k, v)| {
                    labels.get(k) == Some(v) || (k == "environment" && &t.environment == v)
                })
            })
            .collect(),
    };
    match found.as_slice() {
        [t] => Ok((t.id, t.name.clone())),
        [] => Err(DomainError::invalid(format!(
            "targets.{binding}: no {kind} target {} {wanted:?}{}",
            if selector(wanted).is_some() {
                "matches"
            } else {
                "is named"
            },
            if of_kind.is_empty() {
                format!(" (there are no {kind} targets: add one under Targets)")
            } else {
                format!(
                    " (the {kind} targets: {})",
                    of_kind
                        .iter()
                        .map(|t| t.name.as_str())
                        .take(10)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ))),
        many => Err(DomainError::invalid(format!(
            "targets.{binding}: {wanted:?} matches {} {kind} targets ({}): narrow the selector or name one",
            many.len(),
            many.iter()
                .map(|t| t.name.as_str())
                .take(10)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// After an item of a pre-deploy section changed state while the deployment awaits or has
/// sign-off: the approvals given before are voided, and an approved deployment goes back to
/// awaiting approval.
pub(crate) async fn pre_item_changed(
    db: &mut PgConnection,
    id: i64,
    status: DeploymentStatus,
    actor: &str,
    item_id: &str,
    from: ItemState,
    to: ItemState,
) -> DomainResult<()> {
    if !matches!(
        status,
        DeploymentStatus::AwaitingApproval | DeploymentStatus::Approved
    ) || from == to
    {
        return Ok(());
    }
    let why = format!(
        "pre item {item_id} changed from {} to {} after it was signed",
        from.as_str(),
        to.as_str()
    );
    let voided = store::void_approvals(&mut *db, id, &why).await?;
    if voided > 0 {
        store::insert_event(
            &mut *db,
            id,
            actor,
            "approvals_voided",
            &format!("{voided} approval(s) voided: {why}"),
            serde_json::json!({ "voided": voided }),
        )
        .await?;
    }
    if status == DeploymentStatus::Approved {
        store::set_status(&mut *db, id, DeploymentStatus::AwaitingApproval.as_str()).await?;
        store::insert_event(
            &mut *db,
            id,
            actor,
            "status",
            "Back to awaiting_approval: a pre-deploy item changed after sign-off",
            serde_json::json!({ "from": "approved", "to": "awaiting_approval" }),
        )
        .await?;
    }
    Ok(())
}

/// Starts the automated items of a section (or one item) and records it.
async fn start_section(
    db: &mut PgConnection,
    id: i64,
    actor: &str,
    section: Section,
    only: Option<&str>,
) -> DomainResult<Vec<(String, ItemState)>> {
    let started = store::start_automated(&mut *db, id, section.as_str(), only).await?;
    if !started.is_empty() {
        let names: Vec<&str> = started.iter().map(|(i, _)| i.as_str()).collect();
        store::insert_event(
            &mut *db,
            id,
            actor,
            "run",
            &format!(
                "{} {} item(s) started: {}",
                section.as_str(),
                started.len(),
                names.join(", ")
            ),
            serde_json::json!({ "section": section.as_str(), "items": names }),
        )
        .await?;
    }
    Ok(started
        .into_iter()
        .map(|(i, s)| (i, ItemState::parse(&s).unwrap_or(ItemState::Pending)))
        .collect())
}

/// Standing approvals by distinct people.
fn approvals_given(rows: &[store::ApprovalRow]) -> u32 {
    let mut who: Vec<i64> = rows
        .iter()
        .filter(|a| a.voided_at.is_none() && a.decision == "approved")
        .map(|a| a.approver_id)
        .collect();
    who.sort_unstable();
    who.dedup();
    who.len() as u32
}

async fn detail(
    db: &mut PgConnection,
    r: store::DeploymentRow,
    policy: &ApprovalPolicy,
) -> DomainResult<DeploymentDetail> {
    let status = status_of(&r)?;
    let (id, environment) = (r.id, r.environment.clone());
    let items = items_of(db, id).await?;
    let rows = store::approvals(&mut *db, id).await?;
    let given = approvals_given(&rows);
    let needed = policy.needed(&environment);
    Ok(DeploymentDetail {
        blocking: blocking(status, &items, needed, given),
        approvals_needed: needed,
        approvals_given: given,
        approvals: rows
            .into_iter()
            .map(|a| Approval {
                approver: a.approver,
                decision: a.decision,
                reason: a.reason,
                at: a.at,
                snapshot: a.snapshot,
                snapshot_sha256: a.snapshot_sha256,
                voided_at: a.voided_at,
                voided_reason: a.voided_reason,
            })
            .collect(),
        items,
        deployment: head(r)?,
    })
}

async fn event(
    db: &mut PgConnection,
    id: i64,
    who: &Principal,
    kind: &str,
    body: &str,
    details: serde_json::Value,
) -> DomainResult<()> {
    Ok(store::insert_event(&mut *db, id, &who.name, kind, body, details).await?)
}

/// Opens a deployment from a template version (its newest unless told): the items are
/// copied from that version and it keeps that version forever.
pub async fn create_deployment(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    n: NewDeployment,
) -> DomainResult<DeploymentDetail> {
    who.require(Role::Responder)?;
    let service = n.service.trim();
    check_name("service", service).map_err(DomainError::invalid)?;
    who.may_deploy(service)?;
    let environment = n.environment.trim();
    check_name("environment", environment).map_err(DomainError::invalid)?;
    let version = text_field("version", &n.version, 100, true)?;
    let description = text_field("description", &n.description, 5_000, false)?;
    let commit = match n.commit.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(c)
            if c.len() <= 100
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-/".contains(ch)) =>
        {
            Some(c.to_string())
        }
        Some(c) => {
            return Err(DomainError::invalid(format!(
                "commit {c:?}: a hash or ref (letters, digits, . _ - /; at most 100)"
            )));
        }
        None => None,
    };
    let pipeline_url = match n
        .pipeline_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(u) => {
            let parsed = url::Url::parse(u)
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https") && u.len() <= 2_000);
            match parsed {
                Some(p) => Some(p.to_string()),
                None => {
                    return Err(DomainError::invalid(
                        "pipeline_url: an http(s) URL of at most 2,000 characters",
                    ));
                }
            }
        }
        None => None,
    };
    let mut tx = pool.begin().await?;
    let template = match n.template_version {
        Some(v) => store::version(&mut *tx, &n.template, v).await?,
        None => store::latest(&mut *tx, &n.template).await?,
    }
    .ok_or_else(|| match n.template_version {
        Some(v) => DomainError::not_found(format!(
            "no deployment template {:?} version {v}",
            n.template
        )),
        None => not_found(&n.template),
    })?;
    let mut t = view(template)?;
    // The template again with the chosen parameter values filled in (checked, so a value
    // that makes an item invalid is refused with the item's path).
    let mut given = std::collections::BTreeMap::new();
    for (name, v) in &n.parameters {
        let text = match v {
            serde_json::Value::Number(x) => x.to_string(),
            serde_json::Value::String(x) => x.clone(),
            _ => {
                return Err(DomainError::invalid(format!(
                    "parameters.{name}: a number or a string"
                )));
            }
        };
        given.insert(name.clone(), text);
    }
    let parsed = crate::deployments::parse_template_with(&t.yaml, &given).map_err(|e| {
        DomainError::invalid(format!("template {} v{}: {e}", t.template_id, t.version))
    })?;
    t.spec = parsed.spec;
    let parameters = parsed.values;
    let id = store::insert_deployment(
        &mut *tx,
        store::NewDeployment {
            service,
            environment,
            version: &version,
            description: &description,
            requester: &who.name,
            requester_id: who.user_id,
            template_id: &t.template_id,
            template_version: t.version,
            commit_sha: commit.as_deref(),
            pipeline_url: pipeline_url.as_deref(),
            parameters: serde_json::to_value(&parameters).map_err(DomainError::internal)?,
        },
    )
    .await?;
    // Every binding the template's automated items use must be given, and only those.
    let mut used: Vec<(&str, &str)> = Vec::new();
    for section in Section::ALL {
        for it in t.spec.sections.section(section) {
            if let Some((b, kind)) = it.binding()
                && !used.iter().any(|(u, _)| *u == b)
            {
                used.push((b, kind));
            }
        }
    }
    if let Some(extra) = n.targets.keys().find(|k| !used.iter().any(|(u, _)| u == k)) {
        return Err(DomainError::invalid(format!(
            "targets.{extra}: template {} v{} has no binding {extra:?} ({})",
            t.template_id,
            t.version,
            if used.is_empty() {
                "it binds no targets".to_string()
            } else {
                format!(
                    "its bindings: {}",
                    used.iter().map(|(b, _)| *b).collect::<Vec<_>>().join(", ")
                )
            }
        )));
    }
    let mut bound: std::collections::BTreeMap<&str, (i64, String)> = Default::default();
    for (b, kind) in &used {
        let given = n
            .targets
            .get(*b)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty());
        // A binding only optional items use may be left out: those items are not run.
        let only_optional = Section::ALL.iter().all(|s| {
            t.spec
                .sections
                .section(*s)
                .iter()
                .filter(|i| i.binding().map(|x| x.0) == Some(*b))
                .all(|i| !i.required)
        });
        if given.is_none() && only_optional {
            continue;
        }
        let wanted = given.ok_or_else(|| {
            DomainError::invalid(format!(
                "targets.{b}: template {} v{} checks the {kind} target bound as {b:?}: give its name or a label selector, e.g. \"targets\": {{\"{b}\": \"service={service}, environment={environment}\"}}",
                t.template_id, t.version
            ))
        })?;
        if wanted.chars().count() > 200 {
            return Err(DomainError::invalid(format!(
                "targets.{b}: at most 200 characters"
            )));
        }
        bound.insert(b, bind_target(&mut tx, b, wanted, kind).await?);
    }
    for section in Section::ALL {
        for (i, it) in t.spec.sections.section(section).iter().enumerate() {
            let metric = it.metric.clone().map(|mut m| {
                m.query = fill_query(&m.query, service, environment, &version);
                m
            });
            let target = it.binding().and_then(|(b, _)| bound.get(b));
            let plain = |s: &str| fill_built_ins(s, service, environment, &version, str::to_string);
            let lag = it.kafka_lag.clone().map(|mut k| {
                k.group = plain(&k.group);
                k
            });
            let probe = it.probe.clone().map(|mut p| {
                for v in p.params.values_mut() {
                    *v = plain(v);
                }
                p
            });
            let text = plain(&it.text);
            let spec = match (&metric, &probe, &lag) {
                (Some(m), _, _) => Some(serde_json::to_value(m).map_err(DomainError::internal)?),
                (_, Some(p), _) => Some(serde_json::to_value(p).map_err(DomainError::internal)?),
                (_, _, Some(k)) => Some(serde_json::to_value(k).map_err(DomainError::internal)?),
                _ => None,
            };
            store::insert_item(
                &mut *tx,
                id,
                store::NewItem {
                    item_id: &it.id,
                    section: section.as_str(),
                    position: i as i32,
                    kind: it.kind.as_str(),
                    text: &text,
                    help: &it.help,
                    required: it.required,
                    requires_note: it.requires_note,
                    spec,
                    target_id: target.map(|t| t.0),
                    target_name: target.map(|t| t.1.as_str()),
                },
            )
            .await?;
        }
    }
    event(
        &mut tx,
        id,
        who,
        "created",
        &format!(
            "Opened {} for {service} {version} in {environment} from template {} v{}",
            deployment_key(id),
            t.template_id,
            t.version
        ),
        serde_json::json!({ "template": t.template_id, "template_version": t.version, "parameters": parameters,
            "targets": bound.iter().map(|(b, (_, name))| (b.to_string(), name.clone())).collect::<std::collections::BTreeMap<_, _>>() }),
    )
    .await?;
    start_section(&mut tx, id, "lookout", Section::Pre, None).await?;
    let row = store::deployment(&mut *tx, id, false)
        .await?
        .ok_or_else(|| DomainError::internal("the deployment just created is gone"))?;
    let d = detail(&mut tx, row, policy).await?;
    tx.commit().await?;
    Ok(d)
}

pub async fn get_deployment(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    key: &str,
) -> DomainResult<DeploymentDetail> {
    who.require(Role::Viewer)?;
    let id = parse_deployment_key(key).ok_or_else(|| dep_not_found(key))?;
    let mut db = pool.acquire().await?;
    let row = store::deployment(&mut *db, id, false)
        .await?
        .ok_or_else(|| dep_not_found(key))?;
    who.may_deploy(&row.service)?;
    detail(&mut db, row, policy).await
}

/// Filters of the deployment list (keyset paging by `before`, a DEP key's number).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFilter {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub status: Option<String>,
    pub before: Option<i64>,
}

/// Deployments per page of the list.
pub const LIST_PAGE: usize = 50;

pub async fn list_deployments(
    pool: &PgPool,
    who: &Principal,
    f: &DeploymentFilter,
) -> DomainResult<Vec<Deployment>> {
    who.require(Role::Viewer)?;
    if who.deploy_services.is_some() {
        // A scoped CI token lists one of its services at a time.
        who.may_deploy(f.service.as_deref().unwrap_or("(all services)"))?;
    }
    if let Some(s) = &f.status
        && DeploymentStatus::parse(s).is_none()
    {
        return Err(DomainError::invalid(format!("unknown status {s:?}")));
    }
    let mut db = pool.acquire().await?;
    let rows = store::list_deployments(
        &mut *db,
        f.service.as_deref(),
        f.environment.as_deref(),
        f.status.as_deref(),
        f.before,
        LIST_PAGE as i64,
    )
    .await?;
    rows.into_iter().map(head).collect()
}

/// The deployment itself, without its items and approvals.
fn head(r: store::DeploymentRow) -> DomainResult<Deployment> {
    Ok(Deployment {
        key: deployment_key(r.id),
        status: status_of(&r)?,
        service: r.service,
        environment: r.environment,
        version: r.version,
        description: r.description,
        requester: r.requester,
        template_id: r.template_id,
        template_version: r.template_version,
        commit: r.commit_sha,
        pipeline_url: r.pipeline_url,
        parameters: serde_json::from_value(r.parameters).unwrap_or_default(),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    })
}

/// The deployment's record, oldest first.
pub async fn deployment_events(
    pool: &PgPool,
    who: &Principal,
    key: &str,
) -> DomainResult<Vec<store::EventRow>> {
    who.require(Role::Viewer)?;
    let id = parse_deployment_key(key).ok_or_else(|| dep_not_found(key))?;
    let row = store::deployment(pool, id, false)
        .await?
        .ok_or_else(|| dep_not_found(key))?;
    who.may_deploy(&row.service)?;
    Ok(store::events(pool, id).await?)
}

/// Checks, unchecks or waives an item of the section that is open. A change to a pre-deploy
/// item voids the approvals given before it (and an approved deployment goes back to
/// awaiting approval).
pub async fn act_on_item(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    key: &str,
    item_id: &str,
    action: ItemAction,
) -> DomainResult<DeploymentDetail> {
    who.require(match action {
        ItemAction::Waive { .. } => Role::Approver,
        _ => Role::Responder,
    })?;
    let mut tx = pool.begin().await?;
    let row = locked_for(&mut tx, who, key).await?;
    let status = status_of(&row)?;
    let item = items_of(&mut tx, row.id)
        .await?
        .into_iter()
        .find(|i| i.item_id == item_id)
        .ok_or_else(|| DomainError::not_found(format!("{key} has no item {item_id:?}")))?;
    match status.open_section() {
        None => {
            return Err(DomainError::conflict(format!(
                "{key} is {status}: its items no longer change"
            )));
        }
        Some(open) if open != item.section => {
            return Err(DomainError::conflict(format!(
                "{key} is {status}: only its {} items can change now ({item_id} is a {} item)",
                open.as_str(),
                item.section.as_str()
            )));
        }
        Some(_) => {}
    }
    if item.kind == ItemKind::Approval
        && matches!(action, ItemAction::Check { .. } | ItemAction::Uncheck)
    {
        who.require(Role::Approver)?;
        if who.user_id.is_none() {
            return Err(DomainError::forbidden(format!(
                "{item_id} is an approval item: an approver signed in as a person checks it, not an API token"
            )));
        }
        if who.user_id == row.requester_id {
            return Err(DomainError::forbidden(format!(
                "{item_id} is an approval item: {} requested {key} and cannot sign it off; another approver must",
                who.name
            )));
        }
    }
    if item.kind.is_automated() && matches!(action, ItemAction::Check { .. } | ItemAction::Uncheck)
    {
        return Err(DomainError::conflict(format!(
            "{item_id} is a {} item: Lookout sets it from its measurements; re-run it, or waive it (approvers)",
            item.kind.as_str()
        )));
    }
    if let ItemAction::Rerun = action {
        if !item.kind.is_automated() {
            return Err(DomainError::conflict(format!(
                "{item_id} is a manual item: check or uncheck it; only automated items re-run"
            )));
        }
        if item.target.is_none() {
            return Err(DomainError::conflict(format!(
                "{item_id} is not bound to a target (it is optional and its binding was left out when {key} was opened): it does not run"
            )));
        }
        start_section(&mut tx, row.id, &who.name, item.section, Some(item_id)).await?;
        if item.section == Section::Pre {
            pre_item_changed(
                &mut tx,
                row.id,
                status,
                &who.name,
                item_id,
                item.state,
                ItemState::Running,
            )
            .await?;
        }
        return committed_detail(tx, key, policy).await;
    }
    let (state, note, verb) = match action {
        ItemAction::Rerun => return Err(DomainError::internal("re-run is handled above")),
        ItemAction::Check { note } => {
            let note = text_field(
                "note",
                note.as_deref().unwrap_or(""),
                2_000,
                item.requires_note,
            )?;
            (
                ItemState::Checked,
                (!note.is_empty()).then_some(note),
                "checked",
            )
        }
        ItemAction::Uncheck => (ItemState::Pending, None, "unchecked"),
        ItemAction::Waive { reason } => {
            let reason = text_field("reason", &reason, 2_000, true)?;
            (ItemState::Waived, Some(reason), "waived")
        }
    };
    let set_by = (state != ItemState::Pending).then_some(who.name.as_str());
    store::set_item_state(
        &mut *tx,
        row.id,
        item_id,
        state.as_str(),
        set_by,
        note.as_deref(),
    )
    .await?;
    event(
        &mut tx,
        row.id,
        who,
        "item",
        &format!(
            "{} {verb} {} item {item_id}{}",
            who.name,
            item.section.as_str(),
            note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
        ),
        serde_json::json!({ "item": item_id, "state": state.as_str(), "from": item.state.as_str() }),
    )
    .await?;
    if item.section == Section::Pre {
        pre_item_changed(
            &mut tx, row.id, status, &who.name, item_id, item.state, state,
        )
        .await?;
    }
    committed_detail(tx, key, policy).await
}

/// Moves a deployment on (submit for approval, start, verify, done) or ends it (cancel, roll
/// back — with a reason). A required item of the open section not done blocks moving on.
pub async fn transition(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    key: &str,
    to: DeploymentStatus,
    reason: Option<String>,
) -> DomainResult<DeploymentDetail> {
    who.require(Role::Responder)?;
    let mut tx = pool.begin().await?;
    let row = locked_for(&mut tx, who, key).await?;
    let from = status_of(&row)?;
    if let Some(e) = transition_error(from, to) {
        return Err(DomainError::conflict(format!("{key}: {e}")));
    }
    let reason = match to {
        DeploymentStatus::Cancelled | DeploymentStatus::RolledBack => Some(text_field(
            "reason",
            reason.as_deref().unwrap_or(""),
            2_000,
            true,
        )?),
        _ => reason
            .map(|r| text_field("reason", &r, 2_000, false))
            .transpose()?
            .filter(|r| !r.is_empty()),
    };
    let moving_on = !matches!(
        to,
        DeploymentStatus::Cancelled | DeploymentStatus::RolledBack
    );
    let needed = policy.needed(&row.environment);
    if moving_on {
        let items = items_of(&mut tx, row.id).await?;
        // Approvals are asked for by this move, so they do not block it.
        let open: Vec<String> = blocking(from, &items, 0, 0);
        if !open.is_empty() {
            return Err(DomainError::conflict(format!(
                "{key} cannot be {to} yet: {}",
                open.join("; ")
            )));
        }
    }
    // With no approvals needed in this environment, submitting approves.
    let to = if to == DeploymentStatus::AwaitingApproval && needed == 0 {
        DeploymentStatus::Approved
    } else {
        to
    };
    store::set_status(&mut *tx, row.id, to.as_str()).await?;
    event(
        &mut tx,
        row.id,
        who,
        "status",
        &format!(
            "{from} → {to}{}{}",
            if to == DeploymentStatus::Approved {
                " (no approvals needed in this environment)"
            } else {
                ""
            },
            reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "reason": reason }),
    )
    .await?;
    match to {
        DeploymentStatus::InProgress => {
            start_section(&mut tx, row.id, "lookout", Section::During, None).await?;
        }
        DeploymentStatus::Verifying => {
            start_section(&mut tx, row.id, "lookout", Section::Post, None).await?;
        }
        _ => {}
    }
    committed_detail(tx, key, policy).await
}

/// An approver signs: approve, or reject with a reason. Never the requester; one standing
/// decision per person; only while awaiting approval. The decision keeps a frozen snapshot
/// of every item and its SHA-256. Enough approvals approve the deployment; a rejection
/// rejects it.
pub async fn decide(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    key: &str,
    approve: bool,
    reason: Option<String>,
) -> DomainResult<DeploymentDetail> {
    who.require(Role::Approver)?;
    let mut tx = pool.begin().await?;
    let row = locked_for(&mut tx, who, key).await?;
    let Some(user_id) = who.user_id else {
        return Err(DomainError::forbidden(
            "sign-off is given by a person signed in, not by an API token",
        ));
    };
    let status = status_of(&row)?;
    if status != DeploymentStatus::AwaitingApproval {
        return Err(DomainError::conflict(format!(
            "{key} is {status}: sign-off is given while it awaits approval"
        )));
    }
    if row.requester_id == Some(user_id) || row.requester == who.name {
        return Err(DomainError::forbidden(format!(
            "you requested {key}: someone else signs it off (separation of duties)"
        )));
    }
    let reason = text_field("reason", reason.as_deref().unwrap_or(""), 2_000, !approve)?;
    let items = items_of(&mut tx, row.id).await?;
    let snapshot = serde_json::to_string(&serde_json::json!({
        "deployment": deployment_key(row.id),
        "status": status.as_str(),
        "template": row.template_id,
        "template_version": row.template_version,
        "items": items.iter().map(|i| serde_json::json!({
            "item": i.item_id, "section": i.section.as_str(), "state": i.state.as_str(),
            "set_by": i.set_by, "note": i.note,
        })).collect::<Vec<_>>(),
    }))
    .map_err(DomainError::internal)?;
    let sha = hex::encode(Sha256::digest(snapshot.as_bytes()));
    let decision = if approve { "approved" } else { "rejected" };
    store::insert_approval(
        &mut *tx,
        row.id,
        store::NewApproval {
            approver: &who.name,
            approver_id: user_id,
            decision,
            reason: (!reason.is_empty()).then_some(reason.as_str()),
            snapshot: &snapshot,
            snapshot_sha256: &sha,
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::conflict(format!(
                "your decision on {key} stands already (the same person counts once)"
            ))
        } else {
            e.into()
        }
    })?;
    event(
        &mut tx,
        row.id,
        who,
        decision,
        &format!(
            "{} {decision} (snapshot {}){}",
            who.name,
            &sha[..12],
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        ),
        serde_json::json!({ "sha256": sha }),
    )
    .await?;
    let given = approvals_given(&store::approvals(&mut *tx, row.id).await?);
    let needed = policy.needed(&row.environment);
    let next = if !approve {
        Some(DeploymentStatus::Rejected)
    } else if given >= needed {
        Some(DeploymentStatus::Approved)
    } else {
        None
    };
    if let Some(next) = next {
        store::set_status(&mut *tx, row.id, next.as_str()).await?;
        event(
            &mut tx,
            row.id,
            who,
            "status",
            &format!("{status} → {next} ({given} of {needed} approvals)"),
            serde_json::json!({ "from": status.as_str(), "to": next.as_str() }),
        )
        .await?;
    }
    committed_detail(tx, key, policy).await
}

/// The CI gate for `phase` (see [`crate::deployments::gate`]).
pub async fn gate_answer(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    key: &str,
    phase: Section,
) -> DomainResult<(bool, Vec<String>, DeploymentStatus)> {
    let d = get_deployment(pool, who, policy, key).await?;
    let (allowed, why) = gate(
        phase,
        d.deployment.status,
        &d.items,
        d.approvals_needed,
        d.approvals_given,
    );
    Ok((allowed, why, d.deployment.status))
}

/// A deployment's export: everything it is (items, approvals with their snapshots and
/// hashes, the record), as Markdown or JSON. Exporting is audited.
pub async fn export_deployment(
    pool: &PgPool,
    who: &Principal,
    meta: &RequestMeta,
    policy: &ApprovalPolicy,
    key: &str,
    markdown: bool,
) -> DomainResult<String> {
    let d = get_deployment(pool, who, policy, key).await?;
    let id = parse_deployment_key(key).ok_or_else(|| dep_not_found(key))?;
    let events = store::events(pool, id).await?;
    let out = if markdown {
        export_markdown(&d, &events)
    } else {
        serde_json::to_string_pretty(&serde_json::json!({ "deployment": d, "events": events }))
            .map_err(DomainError::internal)?
    };
    audit::append(
        pool,
        audit::NewEntry {
            actor_id: who.user_id,
            actor_name: &who.name,
            action: "deployment.export",
            target: &d.deployment.key,
            details: serde_json::json!({ "format": if markdown { "markdown" } else { "json" } }),
            meta,
        },
    )
    .await?;
    Ok(out)
}

/// Markdown of a deployment. Stored text is put in code spans or escaped so that it cannot
/// turn into markup where the export is rendered.
fn export_markdown(d: &DeploymentDetail, events: &[store::EventRow]) -> String {
    fn esc(s: &str) -> String {
        s.chars()
            .flat_map(|c| match c {
                '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' => vec!['\\', c],
                '\n' | '\r' => vec![' '],
                c => vec![c],
            })
            .collect()
    }
    let dep = &d.deployment;
    let mut md = format!(
        "# Deployment {}: {} {} to {}\n\n- Status: **{}**\n- Requested by: {}\n- Template: {} v{}\n- Opened: {}\n",
        dep.key,
        esc(&dep.service),
        esc(&dep.version),
        esc(&dep.environment),
        dep.status,
        esc(&dep.requester),
        esc(&dep.template_id),
        dep.template_version,
        dep.created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    );
    if let Some(c) = &dep.commit {
        md.push_str(&format!("- Commit: {}\n", esc(c)));
    }
    if !dep.parameters.is_empty() {
        md.push_str(&format!(
            "- Parameters: {}\n",
            dep.parameters
                .iter()
                .map(|(k, v)| format!("{} = {}", esc(k), esc(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !dep.description.is_empty() {
        md.push_str(&format!("\n{}\n", esc(&dep.description)));
    }
    for s in Section::ALL {
        md.push_str(&format!(
            "\n## {} items\n\n| item | state | required | by | note |\n|---|---|---|---|---|\n",
            s.as_str()
        ));
        for it in d.items.iter().filter(|i| i.section == s) {
            md.push_str(&format!(
                "| {} — {} | {} | {} | {} | {} |\n",
                esc(&it.item_id),
                esc(&it.text),
                it.state.as_str(),
                if it.required { "yes" } else { "no" },
                esc(it.set_by.as_deref().unwrap_or("")),
                esc(it.note.as_deref().unwrap_or("")),
            ));
        }
    }
    md.push_str(&format!(
        "\n## Sign-off ({} of {} approvals)\n\n",
        d.approvals_given, d.approvals_needed
    ));
    for a in &d.approvals {
        md.push_str(&format!(
            "- {} **{}**{}{} — snapshot SHA-256 `{}`\n",
            esc(&a.approver),
            a.decision,
            a.reason
                .as_deref()
                .map(|r| format!(": {}", esc(r)))
                .unwrap_or_default(),
            a.voided_reason
                .as_deref()
                .map(|r| format!(" (voided: {})", esc(r)))
                .unwrap_or_default(),
            a.snapshot_sha256,
        ));
    }
    md.push_str("\n## Record\n\n");
    for e in events {
        md.push_str(&format!(
            "- {} {} ({}): {}\n",
            e.at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            esc(&e.actor),
            e.kind,
            esc(&e.body)
        ));
    }
    md
}

/// What a pipeline reports (`POST …/events`): `started` (→ in_progress), `progress` (a
/// percentage and a message, while in progress), `finished` (→ verifying), `rolled_back`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum PipelineEvent {
    Started,
    Progress {
        percent: u8,
        #[serde(default)]
        message: Option<String>,
    },
    Finished,
    RolledBack {
        reason: String,
    },
}

pub async fn pipeline_event(
    pool: &PgPool,
    who: &Principal,
    policy: &ApprovalPolicy,
    key: &str,
    e: PipelineEvent,
) -> DomainResult<DeploymentDetail> {
    match e {
        PipelineEvent::Started => {
            transition(pool, who, policy, key, DeploymentStatus::InProgress, None).await
        }
        PipelineEvent::Finished => {
            transition(pool, who, policy, key, DeploymentStatus::Verifying, None).await
        }
        PipelineEvent::RolledBack { reason } => {
            transition(
                pool,
                who,
                policy,
                key,
                DeploymentStatus::RolledBack,
                Some(reason),
            )
            .await
        }
        PipelineEvent::Progress { percent, message } => {
            who.require(Role::Responder)?;
            if percent > 100 {
                return Err(DomainError::invalid("percent: 0 to 100"));
            }
            let message = text_field("message", message.as_deref().unwrap_or(""), 500, false)?;
            let mut tx = pool.begin().await?;
            let row = locked_for(&mut tx, who, key).await?;
            let status = status_of(&row)?;
            if status != DeploymentStatus::InProgress {
                return Err(DomainError::conflict(format!(
                    "{key} is {status}: progress is reported while it is in_progress"
                )));
            }
            event(
                &mut tx,
                row.id,
                who,
                "progress",
                &format!(
                    "{percent}%{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ),
                serde_json::json!({ "percent": percent }),
            )
            .await?;
            let d = detail(&mut tx, row, policy).await?;
            tx.commit().await?;
            Ok(d)
        }
    }
}

// ---- incidents -------------------------------------------------------------------------

/// The incidents opened from (linked to) a deployment.
pub async fn incidents_of(
    pool: &PgPool,
    who: &Principal,
    key: &str,
) -> DomainResult<Vec<LinkedIncident>> {
    who.require(Role::Viewer)?;
    let id = parse_deployment_key(key).ok_or_else(|| dep_not_found(key))?;
    let row = store::deployment(pool, id, false)
        .await?
        .ok_or_else(|| dep_not_found(key))?;
    who.may_deploy(&row.service)?;
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT i.number, i.title, i.status::text, i.severity::text
         FROM deployment_incidents l JOIN incidents i ON i.id = l.incident_id
         WHERE l.deployment_id = $1 ORDER BY l.linked_at",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(n, title, status, severity)| LinkedIncident {
            key: crate::incidents::incident_key(n),
            title,
            status,
            severity,
        })
        .collect())
}

/// The deployments an incident should show: those linked to it, and those of its services
/// in its environment that were open at any time from two hours before it was detected
/// until it was resolved (or now) — at most 20, newest first.
pub async fn deployments_near_incident(
    pool: &PgPool,
    who: &Principal,
    incident_key: &str,
) -> DomainResult<Vec<DeploymentNearIncident>> {
    who.require(Role::Viewer)?;
    let number = crate::incidents::parse_incident_key(incident_key)
        .ok_or_else(|| DomainError::not_found(format!("no incident {incident_key:?}")))?;
    #[derive(sqlx::FromRow)]
    struct Near {
        id: i64,
        service: String,
        version: String,
        status: String,
        created_at: time::OffsetDateTime,
        finished_at: Option<time::OffsetDateTime>,
        linked: bool,
    }
    let rows: Vec<Near> =
        sqlx::query_as::<_, Near>(
            "WITH inc AS (SELECT id, services, environment, detected_at, resolved_at FROM incidents WHERE number = $1)
             SELECT d.id, d.service, d.version, d.status, d.created_at, d.finished_at,
                    EXISTS (SELECT 1 FROM deployment_incidents l WHERE l.deployment_id = d.id AND l.incident_id = inc.id) AS linked
             FROM deployments d, inc
             WHERE EXISTS (SELECT 1 FROM deployment_incidents l WHERE l.deployment_id = d.id AND l.incident_id = inc.id)
                OR (d.environment = inc.environment AND d.service = ANY (inc.services)
                    AND d.created_at <= COALESCE(inc.resolved_at, now())
                    AND COALESCE(d.finished_at, now()) >= inc.detected_at - interval '2 hours')
             ORDER BY d.id DESC LIMIT 20",
        )
        .bind(number)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| DeploymentNearIncident {
            key: deployment_key(r.id),
            service: r.service,
            version: r.version,
            status: r.status,
            created_at: r.created_at,
            finished_at: r.finished_at,
            linked: r.linked,
        })
        .collect())
}

/// Opens an incident for a deployment that went wrong, in one transaction: the incident
/// (its service and environment, a summary that links back), one finding per failed or
/// inconclusive item with its evidence, and the link both ways with an event on each side.
/// A deployment with an open linked incident answers with that one instead of a second.
/// Returns the incident's key, and whether it was opened now.
pub async fn open_incident(
    pool: &PgPool,
    who: &Principal,
    key: &str,
    severity: crate::incidents::Severity,
) -> DomainResult<(String, bool)> {
    who.require(Role::Responder)?;
    let mut tx = pool.begin().await?;
    let row = locked_for(&mut tx, who, key).await?;
    let open: Option<i64> = sqlx::query_scalar(
        "SELECT i.number FROM deployment_incidents l JOIN incidents i ON i.id = l.incident_id
         WHERE l.deployment_id = $1 AND i.status IN ('triage', 'investigating', 'mitigated')
         ORDER BY l.linked_at DESC LIMIT 1",
    )
    .bind(row.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(n) = open {
        return Ok((crate::incidents::incident_key(n), false));
    }
    let dkey = deployment_key(row.id);
    let items = items_of(&mut tx, row.id).await?;
    let bad: Vec<&DeploymentItem> = items
        .iter()
        .filter(|i| matches!(i.state, ItemState::Failed | ItemState::Inconclusive))
        .collect();
    let title = format!(
        "{dkey}: {} {} in {} went wrong",
        row.service, row.version, row.environment
    );
    let mut summary = format!(
        "Opened from deployment [{dkey}](/deployments/{dkey}) — {} {} in {}, status {} when the incident was opened.\n",
        row.service, row.version, row.environment, row.status
    );
    if bad.is_empty() {
        summary.push_str("\nNo checklist item had failed.\n");
    } else {
        summary.push_str("\nChecklist items that failed or were inconclusive:\n\n");
        for i in &bad {
            summary.push_str(&format!(
                "- **{}** {} item `{}`: {}\n",
                i.state.as_str(),
                i.section.as_str(),
                i.item_id,
                i.text
            ));
        }
    }
    let new = crate::services::incidents::NewIncident {
        title: title.chars().take(200).collect(),
        severity,
        services: vec![row.service.clone()],
        environment: row.environment.clone(),
        summary,
        labels: [("deployment".to_string(), dkey.clone())].into(),
        commander: None,
    };
    let labels = serde_json::to_value(&new.labels).map_err(DomainError::internal)?;
    let (incident_id, number) = crate::services::incidents::create_in(
        &mut tx,
        who,
        &new,
        &new.title,
        &new.services,
        &new.environment,
        labels,
    )
    .await?;
    let ikey = crate::incidents::incident_key(number);
    for i in &bad {
        let mut facts = vec![
            ("deployment", dkey.clone()),
            (
                "item",
                format!("{} ({} {})", i.item_id, i.section.as_str(), i.kind.as_str()),
            ),
            ("state", i.state.as_str().to_string()),
        ];
        if let Some(t) = &i.target {
            facts.push(("target", t.clone()));
        }
        if let Some(m) = &i.metric {
            facts.push(("query", m.query.clone()));
            facts.push(("success", m.success.clone()));
        }
        if let Some(r) = i.probe_run {
            facts.push(("probe run", format!("/probe-runs/{r}")));
        }
        if let Some(m) = i.measurements.last() {
            facts.push(("last measurement", format!("{} — {}", m.phase, m.message)));
        }
        let finding = crate::services::incidents::NewFinding {
            code: if i.state == ItemState::Failed {
                "DEPLOY_ITEM_FAILED".into()
            } else {
                "DEPLOY_ITEM_INCONCLUSIVE".into()
            },
            severity: if i.state == ItemState::Failed && i.required {
                crate::incidents::FindingSeverity::Critical
            } else {
                crate::incidents::FindingSeverity::Warning
            },
            title: format!(
                "{dkey} {} item {} {}: {}",
                i.section.as_str(),
                i.item_id,
                i.state.as_str(),
                i.text
            )
            .chars()
            .take(300)
            .collect(),
            evidence: crate::incidents::Evidence {
                facts: facts
                    .into_iter()
                    .map(|(n, v)| crate::incidents::EvidenceFact {
                        name: n.to_string(),
                        value: v.chars().take(1_000).collect(),
                    })
                    .collect(),
                excerpt: i.note.clone(),
                ..Default::default()
            },
            remediation: format!(
                "Read the item's evidence on [{dkey}](/deployments/{dkey}); if the release caused it, roll back (POST /api/v1/deployments/{dkey}/events with `rolled_back` and a reason), then re-run the item to confirm."
            ),
            doc_link: None,
            source: None,
        };
        crate::services::incidents::validate_finding(&finding)?;
        crate::services::incidents::add_finding_in(&mut tx, who, incident_id, &finding).await?;
    }
    sqlx::query("INSERT INTO deployment_incidents (deployment_id, incident_id, linked_by) VALUES ($1, $2, $3)")
        .bind(row.id)
        .bind(incident_id)
        .bind(&who.name)
        .execute(&mut *tx)
        .await?;
    crate::services::incidents::event(
        &mut tx,
        incident_id,
        who,
        crate::incidents::TimelineKind::DeploymentLinked,
        &format!(
            "Linked to deployment {dkey} ({} {} in {}, {})",
            row.service, row.version, row.environment, row.status
        ),
        serde_json::json!({ "deployment": dkey }),
    )
    .await?;
    event(
        &mut tx,
        row.id,
        who,
        "incident",
        &format!(
            "{} opened {ikey} for this deployment ({} failing item(s) as findings)",
            who.name,
            bad.len()
        ),
        serde_json::json!({ "incident": ikey }),
    )
    .await?;
    tx.commit().await?;
    Ok((ikey, true))
}
