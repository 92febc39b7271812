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
