//! The authorization matrix: every protected route family and server function × every role
//! and anonymous, with sessions and with API tokens.

mod common;

use common::{TestApp, call_fn};
use domain::Role;
use reqwest::{Client, Method};
use sqlx::PgPool;

/// What a caller of a given role should get.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// No credentials needed.
    Public,
    /// Any signed-in role.
    Any,
    /// At least this role.
    Role(Role),
    /// No role: only an ingest token (tested in llm_ingest.rs); every session and every
    /// ordinary token is refused.
    IngestToken,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Page,
    Json,
    ServerFn,
    /// A plain HTML form post handled by the server itself (no wasm).
    Form,
}

struct Case {
    method: Method,
    path: &'static str,
    kind: Kind,
    need: Need,
    /// Form fields for server functions; JSON body for API posts.
    form: &'static [(&'static str, &'static str)],
    json: Option<&'static str>,
    /// The success status (defaults to 200).
    ok: u16,
}

const fn page(path: &'static str, need: Need) -> Case {
    Case {
        method: Method::GET,
        path,
        kind: Kind::Page,
        need,
        form: &[],
        json: None,
        ok: 200,
    }
}
const fn get_json(path: &'static str, need: Need) -> Case {
    Case {
        method: Method::GET,
        path,
        kind: Kind::Json,
        need,
        form: &[],
        json: None,
        ok: 200,
    }
}
const fn server_fn(
    path: &'static str,
    need: Need,
    form: &'static [(&'static str, &'static str)],
    ok: u16,
) -> Case {
    Case {
        method: Method::POST,
        path,
        kind: Kind::ServerFn,
        need,
        form,
        json: None,
        ok,
    }
}

const fn json(method: Method, path: &'static str, need: Need, json: &'static str, ok: u16) -> Case {
    Case {
        method,
        path,
        kind: Kind::Json,
        need,
        form: &[],
        json: Some(json),
        ok,
    }
}

/// Rows for a route family whose resource does not exist: the allowed roles get 404 (the
/// role is checked first, so the others get 403 and learn nothing).
fn missing_resources() -> Vec<Case> {
    use Need::*;
    let r = Role(domain::Role::Responder);
    let a = Role(domain::Role::Admin);
    vec![
        Case {
            ok: 200,
            ..get_json("/healthz", Public)
        },
        Case {
            ok: 200,
            ..get_json("/readyz", Public)
        },
        Case {
            ok: 200,
            ..page("/login", Public)
        },
        Case {
            method: Method::POST,
            path: "/auth/login",
            kind: Kind::Form,
            need: Public,
            form: &[("username", ""), ("password", "")],
            json: None,
            ok: 303,
        },
        Case {
            ok: 404,
            ..page("/incidents/INC-999999", Any)
        },
        Case {
            ok: 404,
            ..page("/incidents/INC-999999/findings/1", Any)
        },
        json(
            Method::POST,
            "/api/v1/users",
            a,
            r#"{"username":"matrix-u","role":"viewer","password":"short"}"#,
            422,
        ),
        json(
            Method::POST,
            "/api/v1/incidents",
            r,
            r#"{"title":"","severity":"SEV4","services":["x"],"environment":"t"}"#,
            422,
        ),
        json(
            Method::PATCH,
            "/api/v1/incidents/INC-999999",
            r,
            r#"{"severity":"SEV1"}"#,
            404,
        ),
        json(
            Method::POST,
            "/api/v1/incidents/INC-999999/notes",
            r,
            r#"{"body":"x"}"#,
            404,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/incidents/INC-999999/findings", Any)
        },
        json(
            Method::POST,
            "/api/v1/incidents/INC-999999/findings",
            r,
            r#"{"code":"X_Y","severity":"info","title":"t"}"#,
            404,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/incidents/INC-999999/action-items", Any)
        },
        json(
            Method::POST,
            "/api/v1/incidents/INC-999999/action-items",
            r,
            r#"{"title":"t"}"#,
            404,
        ),
        json(
            Method::PATCH,
            "/api/v1/incidents/INC-999999/action-items/1",
            r,
            r#"{"status":"done"}"#,
            404,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/incidents/INC-999999/postmortem.md", Any)
        },
        Case {
            method: Method::POST,
            ok: 404,
            ..get_json("/api/v1/incidents/INC-999999/postmortem.md", Any)
        },
        json(
            Method::PATCH,
            "/api/v1/timeline/999999",
            r,
            r#"{"pinned":true}"#,
            404,
        ),
        json(
            Method::PATCH,
            "/api/v1/findings/999999",
            r,
            r#"{"status":"confirmed"}"#,
            404,
        ),
        json(
            Method::POST,
            "/api/v1/webhooks/alertmanager",
            r,
            r#"{"version":"4","groupKey":"matrix","status":"firing","alerts":[]}"#,
            422,
        ),
        json(
            Method::POST,
            "/api/v1/targets",
            a,
            r#"{"name":"","kind":"redis","connection":"redis://x:6379","environment":"t"}"#,
            422,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/targets/999999", Any)
        },
        json(
            Method::PATCH,
            "/api/v1/targets/999999",
            a,
            r#"{"name":"x"}"#,
            404,
        ),
        Case {
            method: Method::DELETE,
            ok: 404,
            ..get_json("/api/v1/targets/999999", a)
        },
        Case {
            method: Method::POST,
            ok: 404,
            ..get_json("/api/v1/targets/999999/test", r)
        },
        Case {
            ok: 404,
            ..get_json("/api/v1/incidents/INC-999999/stream", Any)
        },
        Case {
            ok: 404,
            ..get_json("/api/v1/probe-runs/999999/stream", Any)
        },
        server_fn("/api/fn/incidents/get", Any, &[("key", "INC-999999")], 404),
        server_fn(
            "/api/fn/incidents/finding-detail",
            Any,
            &[("key", "INC-999999"), ("finding_id", "1")],
            404,
        ),
        server_fn(
            "/api/fn/incidents/status",
            r,
            &[
                ("key", "INC-999999"),
                ("status", "investigating"),
                ("reason", ""),
            ],
            404,
        ),
        server_fn(
            "/api/fn/incidents/severity",
            r,
            &[("key", "INC-999999"), ("severity", "SEV1")],
            404,
        ),
        server_fn(
            "/api/fn/incidents/roles",
            r,
            &[
                ("key", "INC-999999"),
                ("commander", ""),
                ("scribe", ""),
                ("responders", ""),
            ],
            404,
        ),
        server_fn(
            "/api/fn/incidents/note",
            r,
            &[("key", "INC-999999"), ("body", "x")],
            404,
        ),
        server_fn(
            "/api/fn/incidents/note-edit",
            r,
            &[("event_id", "999999"), ("body", "x")],
            404,
        ),
        server_fn(
            "/api/fn/incidents/pin",
            r,
            &[("event_id", "999999"), ("pinned", "true")],
            404,
        ),
        server_fn(
            "/api/fn/incidents/finding",
            r,
            &[
                ("key", "INC-999999"),
                ("code", "X_Y"),
                ("severity", "info"),
                ("title", "t"),
                ("facts", ""),
                ("command", ""),
                ("remediation", ""),
            ],
            404,
        ),
        server_fn(
            "/api/fn/findings/status",
            r,
            &[
                ("finding_id", "999999"),
                ("status", "confirmed"),
                ("reason", ""),
            ],
            404,
        ),
        server_fn(
            "/api/fn/incidents/action-item",
            r,
            &[
                ("key", "INC-999999"),
                ("title", "t"),
                ("owner", ""),
                ("due_date", ""),
            ],
            404,
        ),
        server_fn(
            "/api/fn/incidents/action-item-status",
            r,
            &[("key", "INC-999999"), ("item_id", "1"), ("status", "done")],
            404,
        ),
        server_fn("/api/fn/kafka/groups", Any, &[("target_id", "999999")], 404),
        server_fn("/api/fn/costs/review", Any, &[("week", "2026-W01")], 200),
        server_fn("/api/fn/costs/budgets", Any, &[], 200),
        server_fn("/api/fn/costs/prices", Any, &[], 200),
        server_fn(
            "/api/fn/costs/prices/change",
            Role(domain::Role::Admin),
            &[("model", "m"), ("input", "cheap"), ("output", "1")],
            422,
        ),
        server_fn(
            "/api/fn/costs/import",
            Role(domain::Role::Approver),
            &[("format", "xml"), ("data", "x")],
            422,
        ),
        server_fn(
            "/api/fn/costs/budgets/create",
            Role(domain::Role::Approver),
            &[
                ("scope", "service"),
                ("name", "x"),
                ("period", "week"),
                ("amount", "lots"),
            ],
            422,
        ),
        server_fn(
            "/api/fn/costs/week-review",
            Any,
            &[("week", "2026-W01")],
            200,
        ),
        server_fn(
            "/api/fn/costs/save-review",
            r,
            &[("week", "2026-W99"), ("notes", "x")],
            422,
        ),
        get_json("/api/v1/llm/review/csv?week=2026-W01", Any),
        get_json("/api/v1/llm/review/markdown?week=2026-W01", Any),
        get_json("/api/v1/llm/reviews/2026-W01", Any),
        get_json("/api/v1/llm/budgets", Any),
        json(
            Method::POST,
            "/api/v1/llm/usage/import?format=xml",
            Role(domain::Role::Approver),
            "x",
            422,
        ),
        json(
            Method::POST,
            "/api/v1/llm/budgets",
            Role(domain::Role::Approver),
            r#"{"scope":"service","name":"x","period":"day","amount":1}"#,
            422,
        ),
        Case {
            method: Method::DELETE,
            ok: 404,
            ..get_json("/api/v1/llm/budgets/999999", Role(domain::Role::Approver))
        },
        Case {
            ok: 404,
            ..get_json("/api/v1/llm/traces/0123456789abcdef0123456789abcdef", Any)
        },
        server_fn(
            "/api/fn/costs/trace",
            Any,
            &[("trace", "0123456789abcdef0123456789abcdef")],
            404,
        ),
        json(
            Method::PUT,
            "/api/v1/llm/reviews/2026-W01",
            r,
            r#"{"notes":"matrix"}"#,
            200,
        ),
        get_json("/api/v1/llm/review", Any),
        get_json("/api/v1/llm/prices", Any),
        get_json("/api/v1/llm/prices/litellm", Any),
        json(Method::POST, "/api/v1/llm/prices", a, r#"{}"#, 422),
        json(Method::POST, "/api/v1/llm/prices/litellm", a, r#"{}"#, 422),
        json(
            Method::POST,
            "/v1/traces",
            Need::IngestToken,
            r#"{"resourceSpans":[]}"#,
            200,
        ),
        server_fn(
            "/api/fn/kafka/group",
            Any,
            &[("target_id", "999999"), ("group", "g")],
            404,
        ),
        server_fn(
            "/api/fn/kafka/lag",
            Any,
            &[
                ("target_id", "999999"),
                ("group", "g"),
                ("range_secs", "3600"),
            ],
            404,
        ),
        server_fn(
            "/api/fn/kafka/topic",
            Any,
            &[("target_id", "999999"), ("topic", "t")],
            404,
        ),
        server_fn("/api/fn/targets/test", r, &[("target_id", "999999")], 404),
        server_fn(
            "/api/fn/users/create",
            a,
            &[
                ("username", "matrix-u"),
                ("display_name", ""),
                ("role", "viewer"),
                ("password", "short"),
            ],
            422,
        ),
        server_fn(
            "/api/fn/targets/create",
            a,
            &[
                ("name", ""),
                ("kind", "redis"),
                ("connection", "redis://x:6379"),
                ("username", ""),
                ("secret", ""),
                ("environment", "t"),
            ],
            422,
        ),
    ]
}

fn cases() -> Vec<Case> {
    let mut all = listed_cases();
    all.extend(missing_resources());
    // Last: signing out ends a session caller's session.
    all.push(Case {
        method: Method::POST,
        path: "/auth/logout",
        kind: Kind::Form,
        need: Need::Any,
        form: &[],
        json: None,
        ok: 303,
    });
    all
}

fn listed_cases() -> Vec<Case> {
    use Need::*;
    vec![
        page("/", Any),
        page("/incidents", Any),
        page("/incidents/new", Any),
        get_json("/api/v1/incidents", Any),
        get_json("/api/v1/incidents/stats", Any),
        get_json("/api/v1/targets", Any),
        get_json("/api/v1/deployment-templates", Any),
        server_fn("/api/fn/deployments/templates", Any, &[], 200),
        server_fn("/api/fn/deployments/list", Any, &[], 200),
        server_fn(
            "/api/fn/deployments/create",
            Role(domain::Role::Responder),
            &[
                ("template", "no-such-template"),
                ("service", "checkout"),
                ("environment", "test"),
                ("version", "1"),
                ("description", ""),
                ("commit", ""),
                ("pipeline_url", ""),
                ("targets", ""),
            ],
            404,
        ),
        server_fn(
            "/api/fn/deployments/item",
            Role(domain::Role::Responder),
            &[("key", "DEP-999999"), ("item", "x"), ("action", "check")],
            404,
        ),
        server_fn(
            "/api/fn/deployments/transition",
            Role(domain::Role::Responder),
            &[("key", "DEP-999999"), ("to", "awaiting_approval")],
            404,
        ),
        server_fn(
            "/api/fn/deployments/decide",
            Role(domain::Role::Approver),
            &[("key", "DEP-999999"), ("decision", "approve")],
            404,
        ),
        server_fn(
            "/api/fn/deployments/open-incident",
            Role(domain::Role::Responder),
            &[("key", "DEP-999999"), ("severity", "SEV2")],
            404,
        ),
        server_fn(
            "/api/fn/deployments/template",
            Any,
            &[("id", "no-such-template")],
            404,
        ),
        server_fn(
            "/api/fn/deployments/template-save",
            Role(domain::Role::Approver),
            &[("edit_of", ""), ("yaml", "")],
            422,
        ),
        server_fn("/api/fn/deployments/templates-to-add-to", Any, &[], 200),
        server_fn(
            "/api/fn/deployments/template-add-item",
            Role(domain::Role::Approver),
            &[
                ("template_id", "no-such-template"),
                ("section", "post"),
                ("item", "- id: x\n  kind: manual\n  text: x"),
            ],
            404,
        ),
        server_fn(
            "/api/fn/deployments/get",
            Any,
            &[("key", "DEP-999999")],
            404,
        ),
        get_json("/api/v1/deployments", Any),
        Case {
            ok: 404,
            ..get_json("/api/v1/deployments/DEP-999999/incidents", Any)
        },
        json(
            Method::POST,
            "/api/v1/deployments/DEP-999999/incidents",
            Role(domain::Role::Responder),
            "{}",
            404,
        ),
        json(
            Method::POST,
            "/api/v1/deployments",
            Role(domain::Role::Responder),
            r#"{"service":"","environment":"production","version":"1","template":"x"}"#,
            422,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/deployments/DEP-999999", Any)
        },
        Case {
            ok: 404,
            ..get_json("/api/v1/deployments/DEP-999999/events", Any)
        },
        Case {
            ok: 404,
            ..get_json("/api/v1/deployments/DEP-999999/gate?phase=pre", Any)
        },
        Case {
            method: Method::POST,
            ok: 404,
            ..get_json("/api/v1/deployments/DEP-999999/export.md", Any)
        },
        Case {
            method: Method::POST,
            ok: 404,
            ..get_json("/api/v1/deployments/DEP-999999/export.json", Any)
        },
        json(
            Method::POST,
            "/api/v1/deployments/DEP-999999/items/x",
            Role(domain::Role::Responder),
            r#"{"action":"uncheck"}"#,
            404,
        ),
        json(
            Method::POST,
            "/api/v1/deployments/DEP-999999/events",
            Role(domain::Role::Responder),
            r#"{"event":"started"}"#,
            404,
        ),
        json(
            Method::POST,
            "/api/v1/deployments/DEP-999999/transition",
            Role(domain::Role::Responder),
            r#"{"to":"cancelled","reason":"x"}"#,
            404,
        ),
        json(
            Method::POST,
            "/api/v1/deployments/DEP-999999/approvals",
            Role(domain::Role::Approver),
            r#"{"decision":"approve"}"#,
            404,
        ),
        // An empty template: refused (422) for approvers, 403 below them.
        json(
            Method::POST,
            "/api/v1/deployment-templates",
            Role(domain::Role::Approver),
            r#"{"yaml":""}"#,
            422,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/deployment-templates/no-such", Any)
        },
        json(
            Method::PUT,
            "/api/v1/deployment-templates/no-such",
            Role(domain::Role::Approver),
            r#"{"yaml":"id: no-such\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: t}\n"}"#,
            404,
        ),
        Case {
            ok: 404,
            ..get_json("/api/v1/deployment-templates/no-such/versions", Any)
        },
        server_fn("/api/fn/targets/list", Any, &[], 200),
        get_json("/api/v1/target-kinds", Any),
        // Manifest checks read and store nothing: any signed-in person.
        json(
            Method::POST,
            "/api/v1/kubernetes/manifest-checks",
            Any,
            r#"{"yaml":"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"}"#,
            200,
        ),
        server_fn("/api/fn/targets/kinds", Any, &[], 200),
        server_fn(
            "/api/fn/targets/delete",
            Role(domain::Role::Admin),
            &[("target_id", "999999")],
            404,
        ),
        server_fn("/api/fn/incidents/list", Any, &[], 200),
        server_fn("/api/fn/incidents/stats", Any, &[], 200),
        server_fn(
            "/api/fn/incidents/create",
            Role(domain::Role::Responder),
            &[
                ("title", "matrix"),
                ("severity", "SEV4"),
                ("services", "api"),
                ("environment", "test"),
                ("summary", ""),
            ],
            200,
        ),
        server_fn("/api/fn/markdown/preview", Any, &[("body", "**x**")], 200),
        page("/deployments", Any),
        page("/deployments/new", Any),
        page("/deployments/templates/new", Any),
        Case {
            ok: 404,
            ..page("/deployments/templates/no-such-template", Any)
        },
        Case {
            ok: 404,
            ..page("/deployments/DEP-999999", Any)
        },
        page("/kafka", Any),
        page("/costs", Any),
        page("/costs/prices", Any),
        Case {
            ok: 404,
            ..page("/costs/traces/0123456789abcdef0123456789abcdef", Any)
        },
        page("/targets", Any),
        page("/kubernetes/manifests", Any),
        Case {
            method: Method::POST,
            path: "/kubernetes/manifests",
            kind: Kind::Form,
            need: Any,
            form: &[(
                "yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            )],
            json: None,
            ok: 200,
        },
        Case {
            ok: 404,
            ..page("/kafka/999999", Any)
        },
        Case {
            ok: 404,
            ..page("/kafka/999999/groups/g", Any)
        },
        Case {
            ok: 404,
            ..page("/kafka/999999/topics/t", Any)
        },
        Case {
            ok: 404,
            ..page("/targets/999999", Any)
        },
        Case {
            ok: 404,
            ..page("/probe-runs/999999", Any)
        },
        page("/account", Any),
        page("/settings", Any),
        page("/settings/users", Role(domain::Role::Admin)),
        page("/settings/tokens", Role(domain::Role::Admin)),
        page("/settings/audit", Role(domain::Role::Admin)),
        get_json("/metrics", Any),
        get_json("/api/v1/whoami", Any),
        get_json("/api/v1/openapi.json", Any),
        get_json("/api/v1/users", Role(domain::Role::Admin)),
        get_json("/api/v1/tokens", Role(domain::Role::Admin)),
        get_json("/api/v1/audit", Role(domain::Role::Admin)),
        Case {
            method: Method::POST,
            path: "/api/v1/tokens",
            kind: Kind::Json,
            need: Role(domain::Role::Admin),
            form: &[],
            json: Some(r#"{"name":"matrix","role":"viewer"}"#),
            ok: 201,
        },
        Case {
            method: Method::PATCH,
            path: "/api/v1/users/999999",
            kind: Kind::Json,
            need: Role(domain::Role::Admin),
            form: &[],
            json: Some(r#"{"disabled":true}"#),
            ok: 404,
        },
        Case {
            method: Method::DELETE,
            path: "/api/v1/tokens/999999",
            kind: Kind::Json,
            need: Role(domain::Role::Admin),
            form: &[],
            json: None,
            ok: 404,
        },
        get_json("/api/v1/probes", Any),
        Case {
            method: Method::GET,
            path: "/api/v1/kafka/999999/groups",
            kind: Kind::Json,
            need: Any,
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::GET,
            path: "/api/v1/kafka/999999/groups/g",
            kind: Kind::Json,
            need: Any,
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::GET,
            path: "/api/v1/kafka/999999/groups/g/lag",
            kind: Kind::Json,
            need: Any,
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::GET,
            path: "/api/v1/probe-runs/999999",
            kind: Kind::Json,
            need: Any,
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::GET,
            path: "/api/v1/targets/999999/probe-runs",
            kind: Kind::Json,
            need: Any,
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::GET,
            path: "/api/v1/incidents/INC-999999/probe-runs",
            kind: Kind::Json,
            need: Any,
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::POST,
            path: "/api/v1/targets/999999/probe-runs",
            kind: Kind::Json,
            need: Role(domain::Role::Responder),
            form: &[],
            json: Some(r#"{"probe":"redis"}"#),
            ok: 404,
        },
        Case {
            method: Method::POST,
            path: "/api/v1/probe-runs/999999/cancel",
            kind: Kind::Json,
            need: Role(domain::Role::Responder),
            form: &[],
            json: None,
            ok: 404,
        },
        Case {
            method: Method::POST,
            path: "/api/v1/probe-runs/999999/attach",
            kind: Kind::Json,
            need: Role(domain::Role::Responder),
            form: &[],
            json: Some(r#"{"incident_key":"INC-999999"}"#),
            ok: 404,
        },
        server_fn("/api/fn/probes/catalogue", Any, &[], 200),
        server_fn("/api/fn/probe-runs/get", Any, &[("run_id", "999999")], 404),
        server_fn(
            "/api/fn/probe-runs/of-target",
            Any,
            &[("target_id", "999999")],
            200,
        ),
        server_fn(
            "/api/fn/probe-runs/of-incident",
            Any,
            &[("key", "INC-999999")],
            404,
        ),
        server_fn("/api/fn/targets/get", Any, &[("target_id", "999999")], 404),
        server_fn(
            "/api/fn/probe-runs/start",
            Role(domain::Role::Responder),
            &[("choice", "999999:redis")],
            404,
        ),
        server_fn(
            "/api/fn/probe-runs/cancel",
            Role(domain::Role::Responder),
            &[("run_id", "999999")],
            404,
        ),
        server_fn(
            "/api/fn/probe-runs/attach",
            Role(domain::Role::Responder),
            &[("run_id", "999999"), ("incident_key", "INC-999999")],
            404,
        ),
        server_fn(
            "/api/fn/targets/update",
            Role(domain::Role::Admin),
            &[
                ("target_id", "999999"),
                ("name", "x"),
                ("connection", "redis://x:6379"),
                ("username", ""),
                ("environment", "test"),
            ],
            404,
        ),
        server_fn("/api/fn/whoami", Any, &[], 200),
        server_fn("/api/fn/users/list", Role(domain::Role::Admin), &[], 200),
        server_fn("/api/fn/tokens/list", Role(domain::Role::Admin), &[], 200),
        server_fn("/api/fn/audit/list", Role(domain::Role::Admin), &[], 200),
        Case {
            method: Method::POST,
            path: "/settings/tokens",
            kind: Kind::Form,
            need: Role(domain::Role::Admin),
            form: &[("name", "matrix-form"), ("role", "viewer")],
            json: None,
            ok: 200,
        },
        server_fn(
            "/api/fn/tokens/create",
            Role(domain::Role::Admin),
            &[("name", "matrix-fn"), ("role", "viewer")],
            200,
        ),
        server_fn(
            "/api/fn/tokens/revoke",
            Role(domain::Role::Admin),
            &[("token_id", "999999")],
            404,
        ),
        server_fn(
            "/api/fn/users/role",
            Role(domain::Role::Admin),
            &[("user_id", "999999"), ("role", "viewer")],
            404,
        ),
        server_fn(
            "/api/fn/users/disabled",
            Role(domain::Role::Admin),
            &[("user_id", "999999"), ("disabled", "true")],
            404,
        ),
        server_fn(
            "/api/fn/users/reset-password",
            Role(domain::Role::Admin),
            &[
                ("user_id", "999999"),
                ("password", "a-long-enough-password"),
            ],
            404,
        ),
        // A wrong current password is a 422 for everyone allowed to try.
        server_fn(
            "/api/fn/account/password",
            Any,
            &[
                ("current", "wrong-password!"),
                ("new_password", "another-long-password"),
                ("confirm", "another-long-password"),
            ],
            422,
        ),
    ]
}

fn expected(case: &Case, role: Option<Role>) -> u16 {
    if let Need::Public = case.need {
        return case.ok;
    }
    match role {
        None => match case.kind {
            Kind::Page | Kind::Form => 303,
            Kind::Json | Kind::ServerFn => 401,
        },
        Some(r) => {
            let allowed = match case.need {
                Need::Public | Need::Any => true,
                Need::Role(needed) => r.allows(needed),
                Need::IngestToken => false,
            };
            if allowed { case.ok } else { 403 }
        }
    }
}

async fn send(
    client: &Client,
    app: &TestApp,
    case: &Case,
    bearer: Option<&str>,
) -> reqwest::Response {
    if let Kind::ServerFn = case.kind
        && bearer.is_none()
    {
        return call_fn(
            client,
            app,
            case.path.trim_start_matches("/api/fn/"),
            case.form,
        )
        .await;
    }
    let mut req = client.request(case.method.clone(), app.url(case.path));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Kind::ServerFn = case.kind {
        req = req.header("accept", "application/json").form(case.form);
    }
    if let Kind::Form = case.kind {
        req = req.header("accept", "text/html").form(case.form);
    }
    if let Some(body) = case.json {
        req = req.header("content-type", "application/json").body(body);
    }
    req.send().await.unwrap()
}

async fn run_matrix(app: &TestApp, callers: &[(Option<Role>, Client, Option<String>)]) {
    let mut failures = vec![];
    for case in cases() {
        for (role, client, bearer) in callers {
            let res = send(client, app, &case, bearer.as_deref()).await;
            let want = expected(&case, *role);
            let got = res.status().as_u16();
            if got != want {
                let body = res.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} {} as {:?} ({}): expected {want}, got {got}: {}",
                    case.method,
                    case.path,
                    role,
                    if bearer.is_some() { "token" } else { "session" },
                    body.chars().take(200).collect::<String>()
                ));
            } else if want == 303 && role.is_none() && !matches!(case.need, Need::Public) {
                // An anonymous caller is sent to sign in, and comes back afterwards.
                let loc = res.headers()["location"].to_str().unwrap();
                assert!(
                    loc.starts_with("/login?next="),
                    "{} redirects to {loc}",
                    case.path
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
}

/// The matrix is complete: every route the server registers (read from the router's own
/// construction), every server function (Leptos's registry) and every page (Leptos's route
/// list) has a row. A new route without its permission row fails here.
#[tokio::test]
async fn every_route_server_function_and_page_has_a_row() {
    let cases = cases();
    let covered = |method: &str, template: &str| {
        cases.iter().any(|c| {
            c.method.as_str().eq_ignore_ascii_case(method)
                && server::routes::template_matches(template, c.path)
        })
    };
    let mut missing = vec![];
    let mut seen = 0;
    for r in server::route_table() {
        // The JSON 404 for unknown API paths: nothing behind it to authorize.
        if r.path == "/api/v1/{*rest}" {
            continue;
        }
        for m in &r.methods {
            seen += 1;
            if !covered(m, r.path) {
                missing.push(format!("route {} {}", m.to_uppercase(), r.path));
            }
        }
    }
    let mut fns = 0;
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        fns += 1;
        if !covered(method.as_str(), path) {
            missing.push(format!("server function {method} {path}"));
        }
    }
    let mut pages = 0;
    for route in leptos_axum::generate_route_list(app::App) {
        pages += 1;
        if !covered("GET", route.path()) {
            missing.push(format!("page {}", route.path()));
        }
    }
    assert!(
        seen > 40 && fns > 40 && pages > 15,
        "{seen} routes, {fns} server functions, {pages} pages: the lists were not read"
    );
    assert!(
        missing.is_empty(),
        "no row in the authorization matrix for:\n{}",
        missing.join("\n")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn matrix_with_sessions(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut callers = vec![(None, app.browser(), None)];
    for role in Role::ALL {
        let c = app.signed_in(&format!("s-{role}"), role).await;
        callers.push((Some(role), c, None));
    }
    run_matrix(&app, &callers).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn matrix_with_tokens(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut callers = vec![];
    for role in Role::ALL {
        let t = app.create_token(&format!("t-{role}"), role).await;
        callers.push((Some(role), app.plain(), Some(t)));
    }
    // Server functions and pages with tokens: the same rules (except the password change,
    // which a token cannot do: 403 for every token).
    let mut failures = vec![];
    for case in cases() {
        for (role, client, bearer) in &callers {
            let res = send(client, &app, &case, bearer.as_deref()).await;
            let mut want = expected(&case, *role);
            if case.path == "/api/fn/account/password" {
                want = 403;
            }
            let got = res.status().as_u16();
            if got != want {
                failures.push(format!(
                    "{} {} as token {:?}: expected {want}, got {got}",
                    case.method, case.path, role
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "token matrix failures:\n{}",
        failures.join("\n")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_and_revoked_tokens_get_401(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let c = app.plain();
    for bad in ["lko_nope", "garbage", ""] {
        let res = c
            .get(app.url("/api/v1/whoami"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "token {bad:?}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    let t = app.create_token("to-revoke", Role::Admin).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'to-revoke'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let res = c
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a revoked token stops working at once");
}

#[sqlx::test(migrations = "../migrations")]
async fn csrf_rejects_cross_site_and_origin_less_cookie_posts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.signed_in("csrf-admin", Role::Admin).await;
    let before = app.count("users").await;
    let form = [
        ("username", "mallory"),
        ("display_name", ""),
        ("role", "admin"),
        ("password", "a-long-enough-password"),
    ];

    // The session cookie rides along, but the Origin is another site's.
    let res = admin
        .post(app.url("/api/fn/users/create"))
        .header("origin", "http://evil.example")
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf");

    // No Origin at all (and no Sec-Fetch-Site): refused too.
    let no_origin = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Sign this client in (the sign-in itself carries the Origin), then post without it.
    let res = no_origin
        .post(app.url("/auth/login"))
        .header("origin", app.base.clone())
        .form(&[("username", "csrf-admin"), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = no_origin
        .post(app.url("/api/fn/users/create"))
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = no_origin
        .post(app.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "even sign-out needs the Origin check");
    assert_eq!(app.count("users").await, before, "nothing was written");

    // Same request with a matching Origin works.
    let res = app_call(&admin, &app, &form).await;
    assert_eq!(res, 200);

    // A login form posted from another site gets no session.
    let c = app.plain();
    let res = c
        .post(app.url("/auth/login"))
        .header("origin", "http://evil.example")
        .form(&[("username", "csrf-admin"), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?error=csrf");
    assert!(res.headers().get("set-cookie").is_none());

    // Bearer tokens are not ambient credentials: no Origin needed.
    let t = app.create_token("csrf-token", Role::Admin).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"name": "from-ci", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn app_call(c: &Client, app: &TestApp, form: &[(&str, &str)]) -> u16 {
    call_fn(c, app, "users/create", form)
        .await
        .status()
        .as_u16()
}
