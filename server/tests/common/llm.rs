//! GenAI spans for the LLM cost tests: OTLP requests built with `opentelemetry-proto`, an
//! ingest token, and a sender that answers like an exporter sees it.
#![allow(dead_code)]

use super::TestApp;
use domain::Role;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use time::OffsetDateTime;

pub fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}
pub fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}
pub fn i(v: i64) -> Value {
    Value::IntValue(v)
}

/// A span with the given attributes, started at `at`, lasting 1.5 s; its trace id is
/// `trace` repeated, its span id `id` repeated.
pub fn span(trace: u8, id: u8, at: OffsetDateTime, attrs: Vec<KeyValue>) -> Span {
    let start = at.unix_timestamp_nanos() as u64;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: vec![0xaa; 8],
        name: "chat".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_500_000_000,
        attributes: attrs,
        ..Default::default()
    }
}

/// A chat call: `model` with `input` prompt tokens of which `cached` read from the cache,
/// and `output` tokens, for `feature`.
pub fn chat(
    trace: u8,
    id: u8,
    at: OffsetDateTime,
    model: &str,
    (input, cached, output): (i64, i64, i64),
    feature: &str,
) -> Span {
    span(
        trace,
        id,
        at,
        vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.provider.name", s("openai")),
            kv("gen_ai.request.model", s(model)),
            kv("gen_ai.response.model", s(model)),
            kv("gen_ai.usage.input_tokens", i(input)),
            kv("gen_ai.usage.cache_read.input_tokens", i(cached)),
            kv("gen_ai.usage.output_tokens", i(output)),
            kv("app.feature", s(feature)),
        ],
    )
}

/// One resource (`service`, tenant acme) with `spans`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service)), kv("tenant.id", s("acme"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// An ingest token, created through the API by an admin token.
pub async fn ingest_token(app: &TestApp) -> String {
    let admin = app.create_token("llm-admin", Role::Admin).await;
    let res = app
        .plain()
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "name": "otel-collector", "scope": "ingest" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token"]["scope"], "ingest");
    assert_eq!(body["token"]["role"], "viewer");
    body["secret"].as_str().unwrap().to_string()
}

/// Sends `req` as OTLP/HTTP protobuf; the status.
pub async fn export(app: &TestApp, token: &str, req: &ExportTraceServiceRequest) -> u16 {
    app.plain()
        .post(app.url("/v1/traces"))
        .bearer_auth(token)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
