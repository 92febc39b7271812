//! OTLP/HTTP trace ingest (`POST /v1/traces`): GenAI spans become LLM usage records
//! (`domain::llm::spans`, `domain::services::llm`). Protobuf or JSON, optionally gzip, decoded
//! with the `opentelemetry-proto` crate. Answers per the OTLP specification: 200 only after
//! the records are committed (with `partial_success` counting refused spans), 400 for a body
//! that cannot be decoded, 415 for another content type, 429/503 with `Retry-After` when
//! Lookout cannot take the batch now (the exporter retries; nothing was written).

use crate::state::Shared;
use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::DomainError;
use domain::Principal;
use domain::llm::spans::{AttrValue, Attribution, SpanInput, usage_from_span};
use domain::services::llm::{IngestResult, Window};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// The largest body after gzip is undone (a small gzip body may inflate enormously).
pub const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// How many batches are decoded and written at once; more → 429 (the exporter retries).
pub const CONCURRENT_BATCHES: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the body of an OTLP error response.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn respond(format: Format, status: StatusCode, body: Vec<u8>) -> Response {
    let ct = match format {
        Format::Protobuf => "application/x-protobuf",
        Format::Json => "application/json",
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
        body,
    )
        .into_response()
}

fn error(format: Format, status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    // gRPC codes: INVALID_ARGUMENT 3, RESOURCE_EXHAUSTED 8, UNAVAILABLE 14, PERMISSION_DENIED 7.
    let code = match status.as_u16() {
        400 | 413 | 415 => 3,
        401 => 16,
        403 => 7,
        429 => 8,
        _ => 14,
    };
    let body = match format {
        Format::Protobuf => RpcStatus {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Format::Json => {
            serde_json::to_vec(&serde_json::json!({ "code": code, "message": message }))
                .unwrap_or_default()
        }
    };
    let mut res = respond(format, status, body);
    if let Some(s) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    res
}

fn inflate(body: &[u8]) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut out = Vec::new();
    let mut d = flate2::read::GzDecoder::new(body).take(MAX_INFLATED_BYTES + 1);
    d.read_to_end(&mut out).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the gzip body is corrupt: {e}"),
        )
    })?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body inflates past {MAX_INFLATED_BYTES} bytes"),
        ));
    }
    Ok(out)
}

/// OTLP/JSON encodes 64-bit integers as strings, but proto3's JSON mapping also allows
/// numbers: the crate accepts only strings for the timestamps, so numbers become strings.
fn stringify_times(v: &mut serde_json::Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k.ends_with("UnixNano") && x.is_number() {
                    *x = serde_json::Value::String(x.to_string());
                } else {
                    stringify_times(x, depth + 1);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| stringify_times(x, depth + 1)),
        _ => {}
    }
}

fn decode(format: Format, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string()),
        Format::Json => {
            let mut v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| e.to_string())?;
            stringify_times(&mut v, 0);
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
    }
}

fn value(v: &Option<AnyValue>) -> AttrValue {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
        _ => AttrValue::Other,
    }
}

fn attrs(list: &[KeyValue]) -> BTreeMap<String, AttrValue> {
    list.iter()
        .map(|kv| (kv.key.clone(), value(&kv.value)))
        .collect()
}

/// Every GenAI span of the request (`gen_ai.operation.name` set), flattened with its
/// resource's attributes; other spans are skipped before their attributes are copied.
pub fn spans(req: &ExportTraceServiceRequest) -> Vec<SpanInput> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                if !s
                    .attributes
                    .iter()
                    .any(|kv| kv.key == "gen_ai.operation.name")
                {
                    continue;
                }
                out.push(SpanInput {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                    error: s.status.as_ref().is_some_and(|st| st.code == 2),
                    attrs: attrs(&s.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// What the configuration says about attribution.
pub fn attribution(c: &crate::config::Config) -> Attribution {
    let list = |s: &str| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
    };
    Attribution {
        feature_keys: list(&c.llm_feature_keys),
        tenant_keys: list(&c.llm_tenant_keys),
        provider_counting: list(&c.llm_provider_counting),
    }
}

/// Decodes, extracts and stores one export; the pure part of the handler.
pub async fn export(
    shared: &Shared,
    who: &Principal,
    req: &ExportTraceServiceRequest,
) -> Result<IngestResult, DomainError> {
    let cfg = attribution(&shared.config);
    let mut result = IngestResult::default();
    let mut rows = Vec::new();
    for s in spans(req) {
        match usage_from_span(&s, &cfg) {
            Ok(Some(r)) => rows.push(r),
            Ok(None) => {}
            Err(e) => {
                result.rejected += 1;
                if result.messages.len() < 5 {
                    result.messages.push(e.to_string());
                }
            }
        }
    }
    let window = Window {
        retention_days: i64::from(shared.config.llm_retention_days),
    };
    domain::services::llm::ingest(&shared.pool, who, rows, result, window).await
}

/// `POST /v1/traces`.
pub async fn traces(
    Extension(shared): Extension<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format =
        if ct.starts_with("application/x-protobuf") || ct.starts_with("application/protobuf") {
            Format::Protobuf
        } else if ct.starts_with("application/json") {
            Format::Json
        } else {
            return error(
                Format::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type: application/x-protobuf or application/json",
                None,
            );
        };
    if !who.ingest {
        return error(
            format,
            StatusCode::FORBIDDEN,
            "only an ingest token may send traces (Settings → API tokens, scope ingest)",
            None,
        );
    }
    let Ok(_slot) = shared.ingest_slots.clone().try_acquire_owned() else {
        return error(
            format,
            StatusCode::TOO_MANY_REQUESTS,
            "Lookout is busy with other exports; retry shortly",
            Some(1),
        );
    };
    let gz = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let inflated;
    let raw: &[u8] = match gz.as_deref() {
        None | Some("") | Some("identity") => &body,
        Some("gzip") => match inflate(&body) {
            Ok(b) => {
                inflated = b;
                &inflated
            }
            Err((status, msg)) => return error(format, status, &msg, None),
        },
        Some(other) => {
            return error(
                format,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Content-Encoding {other:?}: gzip or none"),
                None,
            );
        }
    };
    let req = match decode(format, raw) {
        Ok(r) => r,
        Err(e) => {
            let msg: String = format!("the body is not an OTLP ExportTraceServiceRequest: {e}")
                .chars()
                .take(300)
                .collect();
            return error(format, StatusCode::BAD_REQUEST, &msg, None);
        }
    };
    match export(&shared, &who, &req).await {
        Ok(r) => {
            shared
                .metrics
                .llm_ingested(r.stored, r.duplicates, r.rejected);
            let partial = (r.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: r.rejected,
                error_message: r.messages.join("; "),
            });
            let resp = ExportTraceServiceResponse {
                partial_success: partial,
            };
            let body = match format {
                Format::Protobuf => resp.encode_to_vec(),
                Format::Json => serde_json::to_vec(&resp).unwrap_or_default(),
            };
            respond(format, StatusCode::OK, body)
        }
        Err(DomainError::Forbidden(m)) => error(format, StatusCode::FORBIDDEN, &m, None),
        Err(e) => {
            // The database is away or failing: nothing was committed, so the exporter must
            // retry the whole batch.
            tracing::error!(error = %e, cause = ?e, "trace export not stored");
            error(
                format,
                StatusCode::SERVICE_UNAVAILABLE,
                "Lookout could not store the batch just now; retry",
                Some(5),
            )
        }
    }
}

/// OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) on its own port
/// (`LOOKOUT_OTLP_GRPC_ADDR`): the same extraction and storage as `/v1/traces`, the ingest
/// token in the `authorization` metadata (`Bearer …`), gzip accepted. Refusals use the gRPC
/// codes the OTLP exporters act on: UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT (not
/// retried), UNAVAILABLE (retried: busy, or the database cannot take the batch).
pub mod grpc {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use tonic::codec::CompressionEncoding;

    pub struct Ingest {
        pub shared: Arc<Shared>,
    }

    #[tonic::async_trait]
    impl TraceService for Ingest {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let secret = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(|s| s.trim().to_string())
                .ok_or_else(|| {
                    tonic::Status::unauthenticated(
                        "send an ingest token: authorization: Bearer lko_…",
                    )
                })?;
            let who = domain::services::auth::token_principal(&self.shared.pool, &secret)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, cause = ?e, "token lookup failed (gRPC ingest)");
                    tonic::Status::unavailable("Lookout could not check the token just now; retry")
                })?
                .ok_or_else(|| tonic::Status::unauthenticated("the token is unknown or revoked"))?;
            if !who.ingest {
                return Err(tonic::Status::permission_denied(
                    "only an ingest token may send traces (Settings → API tokens, scope ingest)",
                ));
            }
            let Ok(_slot) = self.shared.ingest_slots.clone().try_acquire_owned() else {
                return Err(tonic::Status::unavailable(
                    "Lookout is busy with other exports; retry shortly",
                ));
            };
            match super::export(&self.shared, &who, req.get_ref()).await {
                Ok(r) => {
                    self.shared
                        .metrics
                        .llm_ingested(r.stored, r.duplicates, r.rejected);
                    Ok(tonic::Response::new(ExportTraceServiceResponse {
                        partial_success: (r.rejected > 0).then(|| ExportTracePartialSuccess {
                            rejected_spans: r.rejected,
                            error_message: r.messages.join("; "),
                        }),
                    }))
                }
                Err(DomainError::Forbidden(m)) => Err(tonic::Status::permission_denied(m)),
                Err(e) => {
                    tracing::error!(error = %e, cause = ?e, "trace export not stored (gRPC)");
                    Err(tonic::Status::unavailable(
                        "Lookout could not store the batch just now; retry",
                    ))
                }
            }
        }
    }

    /// Serves OTLP/gRPC on `listener` until `shutdown` resolves.
    pub async fn serve(
        listener: tokio::net::TcpListener,
        shared: Arc<Shared>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), String> {
        let max = (shared.config.max_body_bytes as usize).max(4 << 20);
        let svc = TraceServiceServer::new(Ingest { shared })
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max);
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown,
            )
            .await
            .map_err(|e| format!("OTLP/gRPC server: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every GenAI span of whatever decoded, through the usage mapping.
    fn map_all(req: &ExportTraceServiceRequest) {
        let cfg = Attribution::default();
        for s in spans(req) {
            let _ = usage_from_span(&s, &cfg);
        }
    }

    /// A valid OTLP/protobuf body with one GenAI span, to mutate.
    fn valid() -> Vec<u8> {
        use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![7; 16],
                        span_id: vec![8; 8],
                        start_time_unix_nano: 1_764_460_800_000_000_000,
                        end_time_unix_nano: 1_764_460_801_000_000_000,
                        attributes: vec![
                            kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                            kv("gen_ai.provider.name", Value::StringValue("openai".into())),
                            kv(
                                "gen_ai.response.model",
                                Value::StringValue("gpt-4.1".into()),
                            ),
                            kv("gen_ai.usage.input_tokens", Value::IntValue(1000)),
                            kv("gen_ai.usage.output_tokens", Value::IntValue(-5)),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    // `fuzz_` in the names: the TEST command runs these again with more cases.
    proptest! {
        /// OTLP/protobuf bodies: arbitrary bytes, and a valid body with bytes overwritten,
        /// inserted or cut — decoded or refused, and whatever decodes maps to usage without
        /// a panic.
        #[test]
        fn fuzz_otlp_protobuf(
            noise in prop::collection::vec(any::<u8>(), 0..512),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
        ) {
            if let Ok(req) = decode(Format::Protobuf, &noise) {
                map_all(&req);
            }
            let mut body = valid();
            for (at, byte, op) in edits {
                let i = at.index(body.len() + 1);
                match op {
                    0 if i < body.len() => body[i] = byte,
                    1 => body.insert(i, byte),
                    _ => body.truncate(i),
                }
            }
            if let Ok(req) = decode(Format::Protobuf, &body) {
                map_all(&req);
            }
        }

        /// OTLP/JSON bodies of the format's own pieces (timestamps as numbers and strings,
        /// deep nesting, huge numbers).
        #[test]
        fn fuzz_otlp_json(parts in prop::collection::vec(prop::sample::select(&[
            "{", "}", "[", "]", ",", ":", "\"resourceSpans\"", "\"scopeSpans\"", "\"spans\"",
            "\"traceId\"", "\"spanId\"", "\"0102030405060708090a0b0c0d0e0f10\"",
            "\"startTimeUnixNano\"", "\"endTimeUnixNano\"", "1764460800000000000", "1e400",
            "-1", "\"attributes\"", "\"key\"", "\"value\"", "\"stringValue\"", "\"intValue\"",
            "\"gen_ai.operation.name\"", "\"chat\"", "\"gen_ai.usage.input_tokens\"", "\"10\"",
            "null", "true", "\"\\u0000\"",
        ][..]), 0..60)) {
            let body = parts.concat();
            if let Ok(req) = decode(Format::Json, body.as_bytes()) {
                map_all(&req);
            }
        }

        /// gzip bodies: arbitrary bytes, and a valid gzip stream cut or corrupted.
        #[test]
        fn fuzz_gzip_bodies(
            noise in prop::collection::vec(any::<u8>(), 0..256),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let _ = inflate(&noise);
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, &valid()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut gz = z.finish().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let i = flip.index(gz.len());
            gz[i] ^= 0x5a;
            gz.truncate(cut.index(gz.len() + 1));
            let _ = inflate(&gz);
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_not_a_stack_overflow() {
        let body = "[".repeat(100_000);
        assert!(decode(Format::Json, body.as_bytes()).is_err());
        let mut v = serde_json::json!(1);
        for _ in 0..100 {
            v = serde_json::json!({ "a": v });
        }
        stringify_times(&mut v, 0);
    }
}
