//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Written by hand next to the
//! handlers it describes; a test checks that every `/api/v1` route appears in it.

use axum::Json;

pub fn spec() -> serde_json::Value {
    let err = serde_json::json!({ "$ref": "#/components/responses/Error" });
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
        "/api/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } }
      },
      "components": {
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        "responses": { "Error": { "description": "An error", "content": { "application/json": { "schema": {
          "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
            "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } } } } } },
        "schemas": {
          "Role": { "type": "string", "enum": ["viewer", "responder", "approver", "admin"] },
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
            "username": { "type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{1,62}$" }, "display_name": { "type": "string", "maxLength": 100 },
            "role": { "$ref": "#/components/schemas/Role" }, "password": { "type": "string", "minLength": 12 } } },
          "UserPatch": { "type": "object", "additionalProperties": false, "properties": {
            "role": { "$ref": "#/components/schemas/Role" }, "disabled": { "type": "boolean" }, "password": { "type": "string", "minLength": 12 } } },
          "Token": { "type": "object", "properties": {
            "id": { "type": "integer" }, "name": { "type": "string" }, "prefix": { "type": "string" },
            "role": { "$ref": "#/components/schemas/Role" }, "created_by": { "type": ["string", "null"] },
            "created_at": { "type": "string", "format": "date-time" },
            "last_used_at": { "type": ["string", "null"], "format": "date-time" },
            "revoked_at": { "type": ["string", "null"], "format": "date-time" } } },
          "NewTokenRequest": { "type": "object", "required": ["name", "role"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 100 }, "role": { "$ref": "#/components/schemas/Role" } } },
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
