//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Written by hand next to the
//! handlers it describes; a test checks that every `/api/v1` route appears in it.

use axum::Json;

pub fn spec() -> serde_json::Value {
    let mut doc = document_as_written();
    complete_error_responses(&mut doc);
    doc
}

/// Errors any operation can answer, whatever its handler does, added to every operation
/// that does not list them itself (Schemathesis checks that each status Lookout answers is
/// documented): 401 without credentials; 403 for a token whose scope stops short of the
/// route (a CI or ingest token) or a role below the operation's; 429 when a throttle is hit;
/// 503 while the database is unreachable (the request is refused, nothing is written).
/// An operation with path parameters answers 400 for one that does not parse (`/targets/x`)
/// and 404 for one that names nothing; one with query parameters 400/422 for a malformed
/// or out-of-range one; one with a body 400 (not the declared JSON), 413 (over the body
/// limit), 415 (another content type) and 422 (valid JSON, invalid values). JSON request
/// bodies refuse properties they do not declare (`deny_unknown_fields` on every request
/// type), so each object schema of a JSON request body says `additionalProperties: false`.
fn complete_error_responses(doc: &mut serde_json::Value) {
    let err = serde_json::json!({ "$ref": "#/components/responses/Error" });
    let mut closed_components: Vec<String> = Vec::new();
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let path_params = item
            .get("parameters")
            .and_then(|p| p.as_array())
            .map(|p| p.to_vec())
            .unwrap_or_default();
        for (method, op) in item.iter_mut() {
            if method == "parameters" {
                continue;
            }
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let params: Vec<serde_json::Value> = path_params
                .iter()
                .chain(
                    op.get("parameters")
                        .and_then(|p| p.as_array())
                        .into_iter()
                        .flatten(),
                )
                .cloned()
                .collect();
            let in_ = |place: &str| {
                params
                    .iter()
                    .any(|p| p.get("in").and_then(|i| i.as_str()) == Some(place))
            };
            let mut codes = vec!["401", "403", "429", "503"];
            if in_("path") {
                codes.extend(["400", "404", "422"]);
            }
            if in_("query") {
                codes.extend(["400", "422"]);
            }
            if let Some(body) = op.get_mut("requestBody") {
                codes.extend(["400", "413", "415", "422"]);
                if let Some(schema) = body.pointer_mut("/content/application~1json/schema") {
                    if let Some(name) = schema
                        .get("$ref")
                        .and_then(|r| r.as_str())
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        closed_components.push(name.to_string());
                    } else {
                        close_object(schema);
                    }
                }
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(responses) = responses.as_object_mut() {
                for code in codes {
                    responses.entry(code).or_insert_with(|| err.clone());
                }
            }
        }
    }
    for name in closed_components {
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            close_object(schema);
        }
    }
}

fn close_object(schema: &mut serde_json::Value) {
    if let Some(obj) = schema.as_object_mut()
        && obj.contains_key("properties")
    {
        obj.entry("additionalProperties")
            .or_insert(serde_json::Value::Bool(false));
    }
}

fn document_as_written() -> serde_json::Value {
    let err = serde_json::json!({ "$ref": "#/components/responses/Error" });
    // The kinds this server supports, from their registry.
    let kinds: Vec<&str> = domain::kinds::all().iter().map(|k| k.name()).collect();
    serde_json::json!({
      "openapi": "3.1.0",
      "info": {
        "title": "Lookout API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "JSON API of Lookout, the SRE console. Authenticate with `Authorization: Bearer <token>` (tokens are created by admins in Settings → API tokens) or a browser session. Roles are ordered viewer < responder < approver < admin. Errors are `{\"error\": {\"code\", \"message\"}}`."
      },
      "security": [{ "bearer": [] }],
      "paths": {
        "/api/v1/whoami": { "get": {
            "summary": "The caller's identity and role",
            "responses": { "200": { "description": "The caller", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Principal" } } } }, "401": err }
        } },
        "/api/v1/users": {
          "get": { "summary": "List users (admin)", "responses": {
            "200": { "description": "Users", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/User" } } } } },
            "401": err, "403": err } },
          "post": { "summary": "Create a user (admin)",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewUser" } } } },
            "responses": { "201": { "description": "Created", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/User" } } } },
              "400": err, "401": err, "403": err, "409": err, "422": err } }
        },
        "/api/v1/users/{id}": { "patch": {
            "summary": "Change a user's role, enable/disable, or reset the password (admin)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/UserPatch" } } } },
            "responses": { "200": { "description": "Updated", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/User" } } } },
              "400": err, "401": err, "403": err, "404": err, "409": err, "422": err }
        } },
        "/api/v1/tokens": {
          "get": { "summary": "List API tokens (admin; secrets are never returned)", "responses": {
            "200": { "description": "Tokens", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Token" } } } } },
            "401": err, "403": err } },
          "post": { "summary": "Create an API token (admin); the secret is in this response only",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewTokenRequest" } } } },
            "responses": { "201": { "description": "Created", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewToken" } } } },
              "400": err, "401": err, "403": err, "422": err } }
        },
        "/api/v1/tokens/{id}": { "delete": {
            "summary": "Revoke an API token (admin)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": { "200": { "description": "Revoked", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Token" } } } },
              "401": err, "403": err, "404": err, "409": err }
        } },
        "/api/v1/audit": { "get": {
            "summary": "The audit log, newest first, keyset-paginated (admin)",
            "parameters": [
              { "name": "actor", "in": "query", "schema": { "type": "string" } },
              { "name": "action", "in": "query", "description": "prefix, e.g. `auth.`", "schema": { "type": "string" } },
              { "name": "before_id", "in": "query", "schema": { "type": "integer" } },
              { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }
            ],
            "responses": { "200": { "description": "A page", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/AuditPage" } } } },
              "400": err, "401": err, "403": err, "422": err }
        } },
        "/api/v1/incidents": {
          "get": { "summary": "List incidents: open first by severity, then newest; keyset-paginated (viewer)",
            "parameters": [
              { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/IncidentStatus" } },
              { "name": "open", "in": "query", "schema": { "type": "boolean" } },
              { "name": "severity", "in": "query", "schema": { "$ref": "#/components/schemas/Severity" } },
              { "name": "service", "in": "query", "schema": { "type": "string" } },
              { "name": "environment", "in": "query", "schema": { "type": "string" } },
              { "name": "label", "in": "query", "description": "key=value", "schema": { "type": "string" } },
              { "name": "q", "in": "query", "description": "an incident key (INC-42) or words of the title", "schema": { "type": "string" } },
              { "name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": { "type": "string" } },
              { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200 } }
            ],
            "responses": { "200": { "description": "A page", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IncidentPage" } } } }, "400": err, "401": err, "422": err } },
          "post": { "summary": "Open an incident (responder)",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewIncident" } } } },
            "responses": { "201": { "description": "The incident with its key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IncidentDetail" } } } }, "400": err, "401": err, "403": err, "422": err } }
        },
        "/api/v1/incidents/stats": { "get": { "summary": "Open incidents and MTTA/MTTM/MTTR (seconds) per severity over 30 and 90 days",
            "responses": { "200": { "description": "One row per severity" }, "401": err } } },
        "/api/v1/incidents/{key}": {
          "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "example": "INC-42" } }],
          "get": { "summary": "An incident with its timeline, findings and action items (viewer)",
            "responses": { "200": { "description": "The incident", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IncidentDetail" } } } }, "401": err, "404": err } },
          "patch": { "summary": "Change status, severity, roles, title, summary or stage times. Severity, roles, close and cancel need the commander, an approver or an admin; re-opening a closed incident needs an admin.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IncidentPatch" } } } },
            "responses": { "200": { "description": "The incident", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IncidentDetail" } } } }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } }
        },
        "/api/v1/incidents/{key}/notes": { "post": { "summary": "Add a note (markdown, responder)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["body"], "properties": { "body": { "type": "string", "maxLength": 20000 } } } } } },
            "responses": { "201": { "description": "The timeline event" }, "400": err, "401": err, "403": err, "404": err, "422": err } } },
        "/api/v1/incidents/{key}/findings": {
          "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
          "get": { "summary": "The incident's findings", "responses": { "200": { "description": "Findings" }, "401": err, "404": err } },
          "post": { "summary": "Record a finding (responder)",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewFinding" } } } },
            "responses": { "201": { "description": "The finding" }, "400": err, "401": err, "403": err, "404": err, "422": err } }
        },
        "/api/v1/incidents/{key}/action-items": {
          "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
          "get": { "summary": "The incident's action items", "responses": { "200": { "description": "Action items" }, "401": err, "404": err } },
          "post": { "summary": "Add an action item (responder)",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["title"], "properties": {
              "title": { "type": "string" }, "owner": { "type": "string", "description": "username" }, "due_date": { "type": "string", "format": "date" } } } } } },
            "responses": { "201": { "description": "The action item" }, "400": err, "401": err, "403": err, "404": err, "422": err } }
        },
        "/api/v1/incidents/{key}/action-items/{id}": { "patch": { "summary": "Change an action item's status (responder)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["open", "in_progress", "done", "wont_do"] } } } } } },
            "responses": { "200": { "description": "All action items" }, "400": err, "401": err, "403": err, "404": err } } },
        "/api/v1/incidents/{key}/postmortem.md": {
          "get": { "summary": "The postmortem as Markdown (a download; read only)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "Markdown", "content": { "text/markdown": {} } }, "401": err, "404": err } },
          "post": { "summary": "Export the postmortem: the same Markdown, and the export is recorded on the timeline",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "Markdown", "content": { "text/markdown": {} } }, "401": err, "403": err, "404": err } } },
        "/api/v1/incidents/{key}/stream": { "get": { "summary": "Server-sent events: `changed` whenever the incident's timeline changes",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "text/event-stream" }, "401": err, "404": err } } },
        "/api/v1/timeline/{id}": { "patch": { "summary": "Edit your own note (history kept) or pin/unpin an event (responder)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": { "body": { "type": "string" }, "pinned": { "type": "boolean" } } } } } },
            "responses": { "200": { "description": "The event" }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/findings/{id}": { "patch": { "summary": "Change a finding's status; false_positive needs a reason (responder)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["status"], "properties": {
              "status": { "type": "string", "enum": ["open", "confirmed", "false_positive", "fixed"] }, "reason": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The finding" }, "400": err, "401": err, "403": err, "404": err, "422": err } } },
        "/api/v1/webhooks/alertmanager": { "post": { "summary": "Alertmanager webhook (payload version 4). Authenticate with an API token (responder+) via http_config.authorization. A firing group opens an incident (severity from LOOKOUT_ALERT_SEVERITY_MAPPING) or adds an event to the open incident of the same groupKey; resolved alerts add a resolved event.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["version", "groupKey", "status", "alerts"] } } } },
            "responses": { "200": { "description": "What was done: {incident, created, firing, resolved}" }, "400": err, "401": err, "403": err, "413": err, "422": err } } },
        "/api/v1/deployment-templates": {
          "get": { "summary": "Deployment checklist templates, each at its newest version (any role)", "responses": {
            "200": { "description": "Templates", "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/TemplateSummary" } } } } },
            "401": err } },
          "post": { "summary": "Create a template from its YAML (approver): `curl -X POST --data-binary @checklist.yaml -H 'Content-Type: application/yaml' -H \"Authorization: Bearer $TOKEN\" $LOOKOUT/api/v1/deployment-templates`. Errors give the line and column (`line 7, column 7: unknown field …`); nothing is saved.",
            "requestBody": { "required": true, "content": {
              "application/yaml": { "schema": { "type": "string", "maxLength": 65536 } },
              "application/json": { "schema": { "type": "object", "required": ["yaml"], "additionalProperties": false, "properties": { "yaml": { "type": "string" } } } } } },
            "responses": { "201": { "description": "Version 1", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Template" } } } },
              "400": err, "401": err, "403": err, "409": err, "413": err, "415": err, "422": err } }
        },
        "/api/v1/deployment-templates/{id}": {
          "get": { "summary": "A template at its newest version, or `?version=N` (any role)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                           { "name": "version", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1 } }],
            "responses": { "200": { "description": "The template", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Template" } } } }, "400": err, "401": err, "404": err } },
          "put": { "summary": "Save a new version (approver). The YAML's `id` must be this id; a `version:` in it must be the version this save creates (409 otherwise, e.g. when someone saved meanwhile). Old versions never change.",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
            "requestBody": { "required": true, "content": {
              "application/yaml": { "schema": { "type": "string", "maxLength": 65536 } },
              "application/json": { "schema": { "type": "object", "required": ["yaml"], "additionalProperties": false, "properties": { "yaml": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The new version", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Template" } } } },
              "400": err, "401": err, "403": err, "404": err, "409": err, "413": err, "415": err, "422": err } }
        },
        "/api/v1/deployment-templates/{id}/versions": { "get": {
            "summary": "A template's versions, newest first (any role)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "Versions", "content": { "application/json": { "schema": { "type": "array", "items": { "type": "object", "properties": {
              "version": { "type": "integer" }, "created_by": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" } } } } } } },
              "401": err, "404": err }
        } },
        "/api/v1/deployments": {
          "get": { "summary": "Deployments, newest first, 50 at a time (any role); filters service, environment, status; `before` = the number of the last key seen",
            "parameters": [{ "name": "service", "in": "query", "schema": { "type": "string" } }, { "name": "environment", "in": "query", "schema": { "type": "string" } },
                           { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/DeploymentStatus" } }, { "name": "before", "in": "query", "schema": { "type": "integer" } }],
            "responses": { "200": { "description": "Deployments", "content": { "application/json": { "schema": { "type": "array", "items": { "type": "object" } } } } }, "400": err, "401": err, "422": err } },
          "post": { "summary": "Open a deployment from a template (responder; CI with a responder token): `curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' $LOOKOUT/api/v1/deployments -d '{\"service\":\"checkout\",\"environment\":\"production\",\"version\":\"1.4.2\",\"template\":\"web-release\",\"commit\":\"9f2c1ab\"}'` → 201 with the key (DEP-12) and `Location`",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["service", "environment", "version", "template"], "additionalProperties": false, "properties": {
              "service": { "type": "string" }, "environment": { "type": "string" }, "version": { "type": "string", "maxLength": 100 }, "template": { "type": "string" },
              "template_version": { "type": "integer", "description": "default: the newest" }, "description": { "type": "string", "maxLength": 5000 },
              "commit": { "type": "string" }, "pipeline_url": { "type": "string", "format": "uri" },
              "targets": { "type": "object", "additionalProperties": { "type": "string", "maxLength": 200 }, "description": "binding → a Prometheus target's name or a label selector matching exactly one (`service=checkout, environment=production`); every binding the template's metric items name, and only those" },
              "parameters": { "type": "object", "additionalProperties": { "oneOf": [{ "type": "number" }, { "type": "string" }] }, "description": "values for the template's parameters (name → number or string; the others take their defaults), filled in wherever `{{name}}` appears in its items; a value of the wrong shape, an unknown parameter, or a value that makes an item invalid is a 422 naming it, and nothing is written" } } } } } },
            "responses": { "201": { "description": "Opened (draft)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeploymentDetail" } } } }, "400": err, "401": err, "403": err, "404": err, "422": err } }
        },
        "/api/v1/deployments/{key}": { "get": { "summary": "A deployment: status, items with their state, approvals (with snapshots), what blocks it (any role)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }], "responses": { "200": { "description": "The deployment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeploymentDetail" } } } }, "401": err, "404": err } } },
        "/api/v1/deployments/{key}/events": {
          "get": { "summary": "Its append-only record, oldest first (any role)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }], "responses": { "200": { "description": "Events", "content": { "application/json": { "schema": { "type": "array", "items": { "type": "object" } } } } }, "401": err, "404": err } },
          "post": { "summary": "What the pipeline reports (responder): `started` (→ in_progress; needs approved), `progress` with `percent` 0–100 and a `message` (while in_progress), `finished` (→ verifying), `rolled_back` with a `reason`",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["event"], "properties": {
              "event": { "type": "string", "enum": ["started", "progress", "finished", "rolled_back"] }, "percent": { "type": "integer", "minimum": 0, "maximum": 100 },
              "message": { "type": "string" }, "reason": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The deployment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeploymentDetail" } } } }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/deployments/{key}/incidents": {
          "get": { "summary": "The incidents opened from this deployment (any role): [{key, title, status, severity}]",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }], "responses": { "200": { "description": "Incidents" }, "401": err, "404": err } },
          "post": { "summary": "Open an incident for it (responder): its service and environment, its failed and inconclusive items as findings with their evidence, linked both ways. 201 {incident}; 200 with the open incident already linked",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
              "severity": { "type": "string", "enum": ["SEV1", "SEV2", "SEV3", "SEV4"], "description": "default SEV2" } } } } } },
            "responses": { "200": { "description": "The open incident already linked" }, "201": { "description": "Opened" }, "400": err, "401": err, "403": err, "404": err } } },
        "/api/v1/deployments/{key}/items/{item}": { "post": { "summary": "Check (responder; a note when the item requires one) or uncheck a manual item, re-run an automated (metric) item (a new run), or waive any item (approver, with a reason) of the open section. Changing a pre-deploy item after sign-off voids the approvals.",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }, { "name": "item", "in": "path", "required": true, "schema": { "type": "string" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["action"], "properties": {
              "action": { "type": "string", "enum": ["check", "uncheck", "waive", "rerun"] }, "note": { "type": "string" }, "reason": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The deployment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeploymentDetail" } } } }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/deployments/{key}/transition": { "post": { "summary": "Move on (responder): awaiting_approval (submit), in_progress (start), verifying, done; or end it: cancelled, rolled_back (with a reason). 409 with the reason when not allowed or blocked.",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["to"], "additionalProperties": false, "properties": {
              "to": { "$ref": "#/components/schemas/DeploymentStatus" }, "reason": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The deployment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeploymentDetail" } } } }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/deployments/{key}/approvals": { "post": { "summary": "Sign off (approver, signed in as a person: tokens cannot): approve, or reject with a reason. Never one's own deployment; one standing decision per person; the decision keeps a snapshot of every item and its SHA-256.",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["decision"], "additionalProperties": false, "properties": {
              "decision": { "type": "string", "enum": ["approve", "reject"] }, "reason": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The deployment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeploymentDetail" } } } }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/deployments/{key}/export.md": { "post": { "summary": "Export as Markdown: items, sign-off with snapshot hashes, the record (any role; audited, hence POST)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }], "responses": { "200": { "description": "Markdown", "content": { "text/markdown": { "schema": { "type": "string" } } } }, "401": err, "404": err } } },
        "/api/v1/deployments/{key}/export.json": { "post": { "summary": "Export as JSON: the deployment as GET returns it plus its record (any role; audited)",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }], "responses": { "200": { "description": "JSON", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": err, "404": err } } },
        "/api/v1/deployments/{key}/gate": { "get": { "summary": "The CI gate (any role): `{\"allowed\": true}` only when everything required for the phase is done or waived and sign-off is complete (pre: approved or later; post: done), else `{\"allowed\": false, \"blocking\": […]}`. `wait=SECONDS` (≤ 60) answers as soon as it is allowed or the deployment has ended.",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "examples": ["DEP-12"] } }, { "name": "phase", "in": "query", "required": true, "schema": { "type": "string", "enum": ["pre", "post"] } },
                           { "name": "wait", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": 60 } }],
            "responses": { "200": { "description": "The answer", "content": { "application/json": { "schema": { "type": "object", "properties": {
              "allowed": { "type": "boolean" }, "status": { "$ref": "#/components/schemas/DeploymentStatus" }, "blocking": { "type": "array", "items": { "type": "string" } } } } } } },
              "400": err, "401": err, "404": err } } },
        "/api/v1/targets": {
          "get": { "summary": "List targets (viewer). Secrets are never returned, only secret_set.", "responses": { "200": { "description": "Targets" }, "401": err } },
          "post": { "summary": "Create a target (admin). The secret is encrypted with LOOKOUT_SECRET_KEY before it is stored.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewTarget" } } } },
            "responses": { "201": { "description": "The target" }, "400": err, "401": err, "403": err, "409": err, "422": err } }
        },
        "/api/v1/kubernetes/manifest-checks": {
          "post": { "summary": "Static checks on Kubernetes manifests (viewer): the YAML as the body (application/yaml) or JSON {yaml}; answers {documents, objects, findings: [{code, severity, object, container, line, message, fix}]}; nothing is stored. With ?target=ID (a Kubernetes target; responder) the requests are also checked against its largest node and `cluster` says {target_id, target, nodes, largest_cpu, largest_memory, error}",
            "parameters": [ { "name": "target", "in": "query", "required": false, "schema": { "type": "integer", "format": "int64" } } ],
            "requestBody": { "required": true, "content": { "application/yaml": { "schema": { "type": "string" } }, "application/json": { "schema": { "type": "object" } } } },
            "responses": { "200": { "description": "The findings by line" }, "400": err, "401": err, "403": err, "404": err, "413": err, "415": err, "422": err } }
        },
        "/api/v1/target-kinds": {
          "get": { "summary": "The target kinds this server supports (viewer), each with what its connection field holds: [{kind, connection_help}]", "responses": { "200": { "description": "Kinds" }, "401": err } }
        },
        "/api/v1/targets/{id}": {
          "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
          "get": { "summary": "One target (viewer)", "responses": { "200": { "description": "The target" }, "401": err, "404": err } },
          "patch": { "summary": "Change a target (admin): name, connection, username, environment, labels; secret replaces, clear_secret removes",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
            "responses": { "200": { "description": "The target" }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } },
          "delete": { "summary": "Delete a target (admin)", "responses": { "204": { "description": "Deleted" }, "401": err, "403": err, "404": err } }
        },
        "/api/v1/targets/{id}/test": { "post": { "summary": "Test the connection (responder): the server's version and facts, or the exact failure, within 10 s",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": { "200": { "description": "{ok, summary, latency_ms, facts}" }, "401": err, "403": err, "404": err, "409": err } } },
        "/api/v1/targets/{id}/probe-runs": {
          "post": { "summary": "Start a probe run (responder); returns 202 at once with the run and a Location header. At most LOOKOUT_PROBE_RUNS_PER_TARGET runs per target at once (429 beyond).",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartRun" } } } },
            "responses": { "202": { "description": "The run (status running)" }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err, "429": err } },
          "get": { "summary": "The target's probe runs, newest first",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } },
                           { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200 } }],
            "responses": { "200": { "description": "Runs" }, "401": err, "404": err } }
        },
        "/api/v1/probes": { "get": { "summary": "The probe catalogue: probes, their parameters (type, range, default), steps and finding codes",
            "responses": { "200": { "description": "[{name, kind, title, description, params, steps, codes, run_timeout_s}]" }, "401": err } } },
        "/api/v1/probe-runs/{id}": { "get": { "summary": "A probe run: status (running, ok, failed, cancelled, timed_out), steps with progress, elapsed time, and its findings and raw evidence once done",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": { "200": { "description": "{run, findings, evidence}" }, "401": err, "404": err } } },
        "/api/v1/probe-runs/{id}/cancel": { "post": { "summary": "Cancel a running probe run (responder)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": { "202": { "description": "Cancel requested; the run ends as cancelled" }, "401": err, "403": err, "404": err, "409": err } } },
        "/api/v1/probe-runs/{id}/attach": { "post": { "summary": "Attach a standalone run and its findings to an open incident (responder)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["incident_key"], "additionalProperties": false, "properties": { "incident_key": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The run" }, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/probe-runs/{id}/stream": { "get": { "summary": "Server-sent events: `changed` whenever the run's progress or status changes",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": { "200": { "description": "text/event-stream" }, "401": err, "404": err } } },
        "/api/v1/incidents/{key}/probe-runs": { "get": { "summary": "The probe runs attached to an incident, newest first",
            "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "Runs" }, "401": err, "404": err } } },
        "/api/v1/llm/review": { "get": { "summary": "The weekly LLM cost review (docs/llm-costs.md): the ISO week against the one before (cost exact, calls, every token bucket, unpriced calls, cache savings, failed attempts), the change split into volume, mix, price, cache and tokens-per-call effects that add up to it (overall and per service, one sentence each), a breakdown by a dimension (cost, calls, cost per call, change), the 13-week trend and the 20 most expensive traces. Read from the hourly rollups. Filters drill down (service, then feature, then model).",
            "parameters": [{ "name": "week", "in": "query", "schema": { "type": "string", "pattern": "^([0-9]{4}-W[0-9]{2})?$" }, "description": "empty or absent: the last complete week (UTC)" },
                           { "name": "by", "in": "query", "schema": { "type": "string", "enum": ["", "provider", "model", "service", "feature", "tenant", "operation"] }, "description": "empty or absent: model" },
                           { "name": "provider", "in": "query", "schema": { "type": "string" } },
                           { "name": "model", "in": "query", "schema": { "type": "string" } },
                           { "name": "service", "in": "query", "schema": { "type": "string" } },
                           { "name": "feature", "in": "query", "schema": { "type": "string" } },
                           { "name": "tenant", "in": "query", "schema": { "type": "string" } },
                           { "name": "operation", "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": { "description": "{week, prev_week, from, to, by, filters, cur, prev, overall, services, rows, trend, top_traces}" }, "400": err, "401": err, "422": err } } },
        "/api/v1/llm/review/csv": { "get": { "summary": "The week and the one before as CSV: one line per breakdown key × model × price version × status, with every token bucket (input, cache read, cache write 5 min and 1 h, output, reasoning) and the exact cost (empty for unpriced lines); a field a spreadsheet would run as a formula is neutralised. Same parameters as /api/v1/llm/review.",
            "parameters": [{ "name": "week", "in": "query", "schema": { "type": "string" } }, { "name": "by", "in": "query", "schema": { "type": "string" } },
                           { "name": "provider", "in": "query", "schema": { "type": "string" } }, { "name": "model", "in": "query", "schema": { "type": "string" } },
                           { "name": "service", "in": "query", "schema": { "type": "string" } }, { "name": "feature", "in": "query", "schema": { "type": "string" } },
                           { "name": "tenant", "in": "query", "schema": { "type": "string" } }, { "name": "operation", "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": { "description": "text/csv (attachment)" }, "400": err, "401": err, "422": err } } },
        "/api/v1/llm/review/markdown": { "get": { "summary": "The review as Markdown: totals against the week before, the explanation (effects per service, one sentence each), the breakdowns by service and by model, the most expensive traces, the notes and who marked it reviewed",
            "parameters": [{ "name": "week", "in": "query", "schema": { "type": "string" } },
                           { "name": "service", "in": "query", "schema": { "type": "string" } }, { "name": "feature", "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": { "description": "text/markdown (attachment)" }, "400": err, "401": err, "422": err } } },
        "/api/v1/llm/traces/{trace}": { "get": { "summary": "The LLM calls recorded in one trace (the spans behind a row of the most expensive traces): attribution, model, status, duration, every bucket, cost and price version, the usage as received",
            "parameters": [{ "name": "trace", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } }],
            "responses": { "200": { "description": "[{span_id, parent_span_id, started_at, duration_ms, service, feature, tenant, operation, provider, model, request_model, status, error_type, input, cache_read, cache_write, output, reasoning, cost, price_version, raw_usage}]" }, "401": err, "404": err, "422": err } } },
        "/api/v1/llm/usage/import": { "post": { "summary": "Import usage records from a file (approver+): JSON Lines or CSV with the documented fields (docs/llm-costs.md: id, started_at, provider, model, the token counts, attribution, status, usage_convention). Every line is checked first: a bad line is a 422 naming it and the field, and nothing is written. Priced and rolled up like ingested spans; idempotent by id (importing the same file twice adds nothing).",
            "parameters": [{ "name": "format", "in": "query", "required": true, "schema": { "type": "string", "enum": ["jsonl", "csv"] } }],
            "requestBody": { "required": true, "content": { "text/plain": { "schema": { "type": "string" } } } },
            "responses": { "200": { "description": "{stored, duplicates}" }, "400": err, "401": err, "403": err, "413": err, "422": err } } },
        "/api/v1/llm/budgets": {
          "get": { "summary": "Every LLM budget with its current period's spend, forecast (once a fifth of the period has passed) and the thresholds raised this period",
            "responses": { "200": { "description": "[{id, scope, name, period, amount, period_start, spent, forecast, spent_percent, forecast_percent, raised, created_by}]" }, "401": err } },
          "post": { "summary": "Create a budget (approver+): a weekly (ISO week, UTC) or monthly amount in dollars for a service, feature or tenant. Crossing 80% or 100% of it, spent or forecast, opens an incident for the scope or adds a finding (LLM_BUDGET_80, LLM_BUDGET_100) to its open one, once per period and threshold.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "required": ["scope", "name", "period", "amount"], "properties": {
              "scope": { "type": "string", "enum": ["service", "feature", "tenant"] }, "name": { "type": "string", "maxLength": 200 },
              "period": { "type": "string", "enum": ["week", "month"] }, "amount": { "type": ["number", "string"], "exclusiveMinimum": 0 } } } } } },
            "responses": { "201": { "description": "{id}" }, "400": err, "401": err, "403": err, "409": err, "422": err } } },
        "/api/v1/llm/budgets/{id}": {
          "delete": { "summary": "Delete a budget (approver+)",
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }],
            "responses": { "204": { "description": "Deleted" }, "401": err, "403": err, "404": err } } },
        "/api/v1/llm/reviews/{week}": {
          "get": { "summary": "A week's review record: notes, who marked it reviewed and when",
            "parameters": [{ "name": "week", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$" } }],
            "responses": { "200": { "description": "{week, notes, reviewed_by, reviewed_at, updated_by, updated_at}" }, "401": err, "422": err } },
          "put": { "summary": "Write the notes on a week and mark it reviewed (responder+); the first reviewer and time are kept; recorded in the audit log",
            "parameters": [{ "name": "week", "in": "path", "required": true, "schema": { "type": "string" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
              "notes": { "type": "string", "maxLength": 20000 }, "reviewed": { "type": "boolean" } } } } } },
            "responses": { "200": { "description": "the record" }, "400": err, "401": err, "403": err, "422": err } } },
        "/api/v1/llm/prices": {
          "get": { "summary": "The price book: every row, live and retired (a retired row still prices the records it priced), with its source and how many records it priced. Rates are dollars per million tokens, exact decimal text.",
            "responses": { "200": { "description": "[{id, provider, model, service_tier, min_prompt_tokens, effective_from, input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, source, created_at, retired_at, records}]" }, "401": err } },
          "post": { "summary": "Change the price book (admin): add rows and retire rows (a changed price or date is both, in one change). The stored records the change affects are re-priced and their rollups rebuilt in the same transaction. With dry_run=true nothing is written and the answer is exactly what applying would do: records re-priced, newly priced or unpriced, cost before and after, per ISO week and model.",
            "parameters": [{ "name": "dry_run", "in": "query", "schema": { "type": "boolean" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
              "add": { "type": "array", "maxItems": 5000, "items": { "type": "object", "additionalProperties": false, "required": ["provider", "model", "effective_from", "input", "output"], "properties": {
                "provider": { "type": "string" }, "model": { "type": "string", "description": "exact name or a pattern with *" },
                "service_tier": { "type": "string", "enum": ["default", "batch", "flex", "priority"] },
                "min_prompt_tokens": { "type": "integer", "minimum": 0, "description": "applies when the prompt has more tokens than this (200000 = the above-200k tier)" },
                "effective_from": { "type": "string", "description": "RFC 3339 or a date" },
                "input": { "type": ["number", "string"] }, "cache_read": { "type": ["number", "string"] }, "cache_write_5m": { "type": ["number", "string"] },
                "cache_write_1h": { "type": ["number", "string"] }, "output": { "type": ["number", "string"] }, "reasoning": { "type": ["number", "string"] },
                "source": { "type": "string", "maxLength": 500 } } } },
              "retire": { "type": "array", "items": { "type": "integer" } } } } } } },
            "responses": { "200": { "description": "{applied, added, retired, diff: {records, newly_priced, newly_unpriced, cost_before, cost_after, change, rows: [{week, model, records, before, after, change}], ignored}}" }, "400": err, "401": err, "403": err, "404": err, "409": err, "422": err } } },
        "/api/v1/llm/prices/litellm": {
          "get": { "summary": "The prices in effect now in LiteLLM's model_prices_and_context_window.json format (per-token costs; the above-200k and batch tiers as LiteLLM names them)",
            "responses": { "200": { "description": "{model: {litellm_provider, mode, input_cost_per_token, output_cost_per_token, cache_read_input_token_cost, ...}}" }, "401": err } },
          "post": { "summary": "Import LiteLLM's model_prices_and_context_window.json (admin): its prices from effective_from, as one price change (dry_run=true to see the re-pricing first). Cost fields Lookout does not price (audio, image, ...) and models it cannot map are listed in diff.ignored; a malformed cost names the model and field.",
            "parameters": [{ "name": "effective_from", "in": "query", "required": true, "schema": { "type": "string" } },
                           { "name": "dry_run", "in": "query", "schema": { "type": "boolean" } }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
            "responses": { "200": { "description": "as POST /api/v1/llm/prices" }, "400": err, "401": err, "403": err, "409": err, "413": err, "422": err } } },
        "/api/v1/kafka/{target}/groups": { "get": { "summary": "Every consumer group's latest sampled state: total lag (over committed partitions; lag_unknown_partitions, lag_unknown_messages and lag_upper_bound say what partitions never committed add), time lag (exact, estimated or at least), verdict, members, trend; sorted by any column (sort=lag|group|status|time_lag|members|state, order=asc|desc) and keyset-paged (cursor, limit ≤ 500). Also the newest sampling round (ok, or why it was skipped).",
            "parameters": [{ "name": "target", "in": "path", "required": true, "schema": { "type": "integer" } },
                           { "name": "sort", "in": "query", "schema": { "type": "string", "enum": ["lag", "group", "status", "time_lag", "members", "state"] } },
                           { "name": "order", "in": "query", "schema": { "type": "string", "enum": ["asc", "desc"] } },
                           { "name": "cursor", "in": "query", "schema": { "type": "string" } },
                           { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500 } }],
            "responses": { "200": { "description": "{groups, next_cursor, last_round}" }, "400": err, "401": err, "404": err, "422": err } } },
        "/api/v1/kafka/{target}/groups/{group}": { "get": { "summary": "One group: state, members and assignment, per-partition committed/start/end offsets, lag (total_lag over committed partitions, plus lag_unknown_partitions / lag_unknown_messages / lag_upper_bound for the never-committed ones), time lag with its kind (exact | estimated | at_least), Burrow-style verdict with its reason, the catch-up estimate, rebalances in the last hour and dead-letter topics with their growth",
            "parameters": [{ "name": "target", "in": "path", "required": true, "schema": { "type": "integer" } },
                           { "name": "group", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "The group" }, "401": err, "404": err } } },
        "/api/v1/kafka/{target}/groups/{group}/lag": { "get": { "summary": "The series behind the lag graphs (from, to: RFC 3339; default the last hour; at most 400 days): total lag, log end and committed per point, lag per partition aligned with the points (the bucket peak for rollups), incidents about the group or its target that overlap the range (annotations), and the resolution used (raw, 1m, 10m or 1h, chosen from the range)",
            "parameters": [{ "name": "target", "in": "path", "required": true, "schema": { "type": "integer" } },
                           { "name": "group", "in": "path", "required": true, "schema": { "type": "string" } },
                           { "name": "from", "in": "query", "schema": { "type": "string", "format": "date-time" } },
                           { "name": "to", "in": "query", "schema": { "type": "string", "format": "date-time" } }],
            "responses": { "200": { "description": "{rollup, points: [{at, lag, end, committed}]}" }, "400": err, "401": err, "404": err, "422": err } } },
        "/api/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } }
      },
      "components": {
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        "responses": { "Error": { "description": "An error", "content": { "application/json": { "schema": {
          "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
            "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } } } } } },
        "schemas": {
          "DeploymentStatus": { "type": "string", "enum": ["draft", "awaiting_approval", "approved", "in_progress", "verifying", "done", "rejected", "rolled_back", "cancelled"] },
          "DeploymentDetail": { "type": "object", "properties": {
            "deployment": { "type": "object", "properties": { "key": { "type": "string" }, "service": { "type": "string" }, "environment": { "type": "string" }, "version": { "type": "string" },
              "requester": { "type": "string" }, "template_id": { "type": "string" }, "template_version": { "type": "integer" }, "status": { "$ref": "#/components/schemas/DeploymentStatus" } } },
            "items": { "type": "array", "items": { "type": "object", "properties": { "item_id": { "type": "string" }, "section": { "type": "string", "enum": ["pre", "during", "post"] },
              "kind": { "type": "string", "enum": ["manual", "approval", "metric", "probe", "kafka_lag"] },
              "kafka_lag": { "$ref": "#/components/schemas/KafkaLagCheck" },
              "probe": { "$ref": "#/components/schemas/ProbeCheck" }, "probe_run": { "type": "integer", "description": "the probe item's current or last run (/api/v1/probe-runs/{id})" },
              "state": { "type": "string", "enum": ["pending", "running", "passed", "failed", "inconclusive", "waived", "checked"] }, "required": { "type": "boolean" }, "set_by": { "type": ["string", "null"] }, "note": { "type": ["string", "null"] },
              "metric": { "$ref": "#/components/schemas/MetricCheck" }, "target": { "type": "string", "description": "the Prometheus target it was bound to" }, "run": { "type": "integer", "description": "0: never run; each re-run is a new one" },
              "measurements": { "type": "array", "description": "the newest 60, oldest first", "items": { "type": "object", "properties": {
                "run": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "phase": { "type": "string", "enum": ["successful", "failed", "inconclusive"] },
                "values": { "type": "array", "items": { "type": "object", "properties": { "labels": { "type": "object" }, "value": { "type": "string", "description": "as Prometheus writes it: 0.25, NaN, +Inf" } } } },
                "series": { "type": "integer" }, "message": { "type": "string" } } } } } } },
            "approvals": { "type": "array", "items": { "type": "object", "properties": { "approver": { "type": "string" }, "decision": { "type": "string" }, "snapshot": { "type": "string" }, "snapshot_sha256": { "type": "string" }, "voided_at": { "type": ["string", "null"] } } } },
            "approvals_needed": { "type": "integer" }, "approvals_given": { "type": "integer" }, "blocking": { "type": "array", "items": { "type": "string" } } } },
          "TemplateItem": { "type": "object", "properties": {
            "id": { "type": "string" }, "kind": { "type": "string", "enum": ["manual", "approval", "metric", "probe", "kafka_lag"] }, "text": { "type": "string" },
            "help": { "type": "string", "description": "markdown" }, "requires_note": { "type": "boolean" }, "required": { "type": "boolean" },
            "metric": { "$ref": "#/components/schemas/MetricCheck" }, "probe": { "$ref": "#/components/schemas/ProbeCheck" }, "kafka_lag": { "$ref": "#/components/schemas/KafkaLagCheck" } } },
          "KafkaLagCheck": { "type": "object", "description": "A kafka_lag item's check: the Kafka sampler's verdict on the group no worse than max_state for duration_secs", "properties": {
            "target": { "type": "string" }, "group": { "type": "string" }, "duration_secs": { "type": "integer" },
            "max_state": { "type": "string", "enum": ["ok", "warn"] }, "interval_secs": { "type": "integer" } } },
          "ProbeCheck": { "type": "object", "description": "A probe item's check: fails on a finding at or above max_severity (among codes, when listed); a run that could not examine the target is inconclusive", "properties": {
            "target": { "type": "string", "description": "the binding" }, "probe": { "type": "string" }, "target_kind": { "type": "string" },
            "params": { "type": "object", "additionalProperties": { "type": "string" } }, "max_severity": { "type": "string", "enum": ["critical", "warning", "info"] },
            "codes": { "type": "array", "items": { "type": "string" } } } },
          "MetricCheck": { "type": "object", "description": "A metric item's check (Argo Rollouts' analysis rules)", "properties": {
            "target": { "type": "string", "description": "the binding" }, "query": { "type": "string", "description": "PromQL, instant" },
            "success": { "type": "string", "examples": ["result < 0.001", "all(result < 500)"] }, "failure": { "type": ["string", "null"] },
            "interval_secs": { "type": "integer" }, "count": { "type": "integer" }, "failure_limit": { "type": "integer" }, "inconclusive_limit": { "type": "integer" } } },
          "Template": { "type": "object", "properties": {
            "template_id": { "type": "string" }, "version": { "type": "integer" }, "name": { "type": "string" }, "description": { "type": "string" },
            "yaml": { "type": "string", "description": "as saved" }, "built_in": { "type": "boolean" },
            "created_by": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" },
            "spec": { "type": "object", "properties": { "id": { "type": "string" }, "name": { "type": "string" }, "description": { "type": "string" },
              "sections": { "type": "object", "properties": {
                "pre": { "type": "array", "items": { "$ref": "#/components/schemas/TemplateItem" } },
                "during": { "type": "array", "items": { "$ref": "#/components/schemas/TemplateItem" } },
                "post": { "type": "array", "items": { "$ref": "#/components/schemas/TemplateItem" } } } } } } } },
          "TemplateSummary": { "type": "object", "properties": {
            "template_id": { "type": "string" }, "latest_version": { "type": "integer" }, "name": { "type": "string" }, "description": { "type": "string" },
            "built_in": { "type": "boolean" }, "items": { "type": "integer" }, "updated_at": { "type": "string", "format": "date-time" }, "updated_by": { "type": "string" } } },
          "NewTarget": { "type": "object", "required": ["name", "kind", "connection", "environment"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,62}$" },
            "kind": { "type": "string", "enum": kinds, "description": "see GET /api/v1/target-kinds" },
            "connection": { "type": "string", "description": "URL (no password) or Kafka bootstrap servers" },
            "username": { "type": "string" }, "secret": { "type": "string", "description": "password or token; write-only" },
            "environment": { "type": "string" }, "labels": { "type": "object", "additionalProperties": { "type": "string" } } } },
          "StartRun": { "type": "object", "required": ["probe"], "additionalProperties": false, "properties": {
            "probe": { "type": "string", "description": "a name from GET /api/v1/probes" },
            "params": { "type": "object", "additionalProperties": { "type": ["string", "integer", "boolean"] }, "description": "unknown names, wrong types and out-of-range values → 422; missing ones take their defaults" },
            "incident_key": { "type": "string", "description": "attach the run and its findings to this open incident" } } },
          "Severity": { "type": "string", "enum": ["SEV1", "SEV2", "SEV3", "SEV4"] },
          "IncidentStatus": { "type": "string", "enum": ["triage", "investigating", "mitigated", "resolved", "closed", "cancelled"] },
          "NewIncident": { "type": "object", "required": ["title", "severity", "services", "environment"], "additionalProperties": false, "properties": {
            "title": { "type": "string", "maxLength": 200, "pattern": "\\S", "description": "not blank" }, "severity": { "$ref": "#/components/schemas/Severity" },
            "services": { "type": "array", "items": { "$ref": "#/components/schemas/Name" }, "minItems": 1, "maxItems": 20 }, "environment": { "$ref": "#/components/schemas/Name" },
            "summary": { "type": "string", "maxLength": 20000 }, "labels": { "type": "object", "maxProperties": 30, "propertyNames": { "$ref": "#/components/schemas/Name" }, "additionalProperties": { "type": "string", "maxLength": 200 } },
            "commander": { "type": ["string", "null"], "description": "username; empty, null or absent: the creator" } } },
          "IncidentPatch": { "type": "object", "additionalProperties": false, "properties": {
            "status": { "$ref": "#/components/schemas/IncidentStatus" }, "severity": { "$ref": "#/components/schemas/Severity" },
            "title": { "type": "string" }, "summary": { "type": "string" },
            "commander": { "type": "string" }, "scribe": { "type": "string" }, "responders": { "type": "array", "items": { "type": "string" } },
            "corrections": { "type": "object", "properties": {
              "detected_at": { "type": "string", "format": "date-time" }, "acknowledged_at": { "type": "string", "format": "date-time" },
              "mitigated_at": { "type": "string", "format": "date-time" }, "resolved_at": { "type": "string", "format": "date-time" },
              "closed_at": { "type": "string", "format": "date-time" } } },
            "reason": { "type": "string" } } },
          "IncidentSummary": { "type": "object", "properties": {
            "id": { "type": "integer" }, "key": { "type": "string" }, "title": { "type": "string" },
            "severity": { "$ref": "#/components/schemas/Severity" }, "status": { "$ref": "#/components/schemas/IncidentStatus" },
            "services": { "type": "array", "items": { "type": "string" } }, "environment": { "type": "string" },
            "labels": { "type": "object" }, "commander": { "type": ["string", "null"] },
            "detected_at": { "type": "string", "format": "date-time" }, "acknowledged_at": { "type": ["string", "null"] },
            "mitigated_at": { "type": ["string", "null"] }, "resolved_at": { "type": ["string", "null"] }, "closed_at": { "type": ["string", "null"] } } },
          "IncidentPage": { "type": "object", "properties": {
            "incidents": { "type": "array", "items": { "$ref": "#/components/schemas/IncidentSummary" } },
            "next_cursor": { "type": ["string", "null"] } } },
          "IncidentDetail": { "allOf": [{ "$ref": "#/components/schemas/IncidentSummary" }, { "type": "object", "properties": {
            "summary": { "type": "string" }, "scribe": { "type": ["string", "null"] }, "responders": { "type": "array", "items": { "type": "string" } },
            "timeline": { "type": "array", "items": { "type": "object" } }, "findings": { "type": "array", "items": { "type": "object" } },
            "action_items": { "type": "array", "items": { "type": "object" } } } }] },
          "NewFinding": { "type": "object", "required": ["code", "severity", "title"], "additionalProperties": false, "properties": {
            "code": { "type": "string", "pattern": "^[A-Z][A-Z0-9_]{2,79}$" }, "severity": { "type": "string", "enum": ["critical", "warning", "info"] },
            "title": { "type": "string" }, "remediation": { "type": "string", "description": "markdown" }, "doc_link": { "type": "string", "format": "uri" },
            "evidence": { "type": "object", "properties": {
              "facts": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" }, "value": { "type": "string" } } } },
              "command": { "type": "string" }, "excerpt": { "type": "string", "description": "capped at 16 KiB" } } } } },
          "Role": { "type": "string", "enum": ["viewer", "responder", "approver", "admin"] },
          "Name": { "type": "string", "pattern": "^[A-Za-z0-9._/:-]{1,64}$", "description": "a service, environment or label key: 1–64 letters, digits, '.', '-', '_', '/' or ':'" },
          "Principal": { "type": "object", "properties": {
            "user_id": { "type": ["integer", "null"] }, "name": { "type": "string" },
            "role": { "$ref": "#/components/schemas/Role" }, "method": { "type": "string", "enum": ["session", "token"] },
            "token_id": { "type": ["integer", "null"] } } },
          "User": { "type": "object", "properties": {
            "id": { "type": "integer" }, "username": { "type": "string" }, "display_name": { "type": "string" },
            "role": { "$ref": "#/components/schemas/Role" }, "disabled": { "type": "boolean" },
            "created_at": { "type": "string", "format": "date-time" },
            "last_login_at": { "type": ["string", "null"], "format": "date-time" } } },
          "NewUser": { "type": "object", "required": ["username", "role", "password"], "additionalProperties": false, "properties": {
            "username": { "type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{1,62}$" }, "display_name": { "type": "string", "maxLength": 100, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$" },
            "role": { "$ref": "#/components/schemas/Role" }, "password": { "type": "string", "minLength": 12 } } },
          "UserPatch": { "type": "object", "additionalProperties": false, "properties": {
            "role": { "$ref": "#/components/schemas/Role" }, "disabled": { "type": "boolean" }, "password": { "type": "string", "minLength": 12 } } },
          "Token": { "type": "object", "properties": {
            "id": { "type": "integer" }, "name": { "type": "string" }, "prefix": { "type": "string" },
            "role": { "$ref": "#/components/schemas/Role" }, "created_by": { "type": ["string", "null"] },
            "deploy_services": { "type": ["array", "null"], "items": { "type": "string" } },
            "scope": { "type": ["string", "null"], "enum": ["ingest", null], "description": "ingest: only sends OTLP traces to /v1/traces" },
            "created_at": { "type": "string", "format": "date-time" },
            "last_used_at": { "type": ["string", "null"], "format": "date-time" },
            "revoked_at": { "type": ["string", "null"], "format": "date-time" } } },
          "NewTokenRequest": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 100 }, "role": { "$ref": "#/components/schemas/Role", "description": "required unless deploy_services is given" },
            "deploy_services": { "type": "array", "minItems": 1, "maxItems": 50, "items": { "type": "string" }, "description": "a CI token limited to deployments of these services: responder role (never approves or waives), refused outside /api/v1/deployments (and reading /api/v1/deployment-templates, /api/v1/whoami)" },
            "scope": { "type": "string", "enum": ["ingest"], "description": "an ingest token: sends OTLP traces to /v1/traces and nothing else (no role, no deploy_services); the only kind of token /v1/traces accepts" } } },
          "NewToken": { "type": "object", "properties": {
            "token": { "$ref": "#/components/schemas/Token" }, "secret": { "type": "string", "description": "shown once" } } },
          "AuditPage": { "type": "object", "properties": {
            "entries": { "type": "array", "items": { "type": "object", "properties": {
              "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "actor_name": { "type": "string" },
              "action": { "type": "string" }, "target": { "type": "string" }, "details": { "type": "string" },
              "client_ip": { "type": "string" }, "request_id": { "type": "string" } } } },
            "next_before_id": { "type": ["integer", "null"] } } }
        }
      }
    })
}

pub async fn document() -> Json<serde_json::Value> {
    Json(spec())
}
