//! GenAI spans (OpenTelemetry semantic conventions) turned into usage records. Pure: the OTLP
//! decoding happens in the server, which hands over [`SpanInput`]s.

use super::tokens::{Convention, RawUsage, UsageError, normalise};
use crate::storage::llm::UsageRow;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// An attribute value as OTLP carries it (arrays and maps are kept only as "other").
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Other,
}

/// A decoded span with what the extraction needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanInput {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// The span's status is ERROR.
    pub error: bool,
    pub attrs: BTreeMap<String, AttrValue>,
    pub resource: BTreeMap<String, AttrValue>,
}

/// Where the attribution comes from (configurable; docs/llm-costs.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// Span or resource attributes naming the feature, first found wins.
    pub feature_keys: Vec<String>,
    pub tenant_keys: Vec<String>,
    /// Providers whose spans carry the provider's own counting (e.g. an instrumentation that
    /// passes Anthropic's `input_tokens` through, without the cache tokens) rather than the
    /// OpenTelemetry convention's.
    pub provider_counting: Vec<String>,
}

impl Default for Attribution {
    fn default() -> Self {
        Attribution {
            feature_keys: vec!["app.feature".into(), "feature".into()],
            tenant_keys: vec!["tenant.id".into(), "app.tenant".into()],
            provider_counting: vec![],
        }
    }
}

/// The grouping value for a span without the attribute: grouped, never dropped.
pub const NONE: &str = "(none)";
const MAX_TEXT: usize = 200;

/// Why a GenAI span was refused (counted in `partial_success`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("span {span}: {attr} is not a whole non-negative number")]
    NotANumber { span: String, attr: String },
    #[error("span {span}: {source}")]
    Usage { span: String, source: UsageError },
    #[error("span {span}: bad trace or span id")]
    BadId { span: String },
    #[error("span {span}: start time {detail}")]
    BadTime { span: String, detail: String },
}

/// The provider name, with the deprecated `gen_ai.system` values mapped to the current ones.
pub fn canonical_provider(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "vertex_ai" | "vertexai" => "gcp.vertex_ai".into(),
        "gemini" | "google_genai" => "gcp.gemini".into(),
        "az.ai.openai" | "azure_openai" => "azure.ai.openai".into(),
        "az.ai.inference" => "azure.ai.inference".into(),
        "aws_bedrock" | "bedrock" => "aws.bedrock".into(),
        "" => "unknown".into(),
        _ => n,
    }
}

fn text(v: Option<&AttrValue>) -> Option<String> {
    match v? {
        AttrValue::Str(s) if !s.trim().is_empty() => {
            Some(s.trim().chars().take(MAX_TEXT).collect())
        }
        AttrValue::Int(i) => Some(i.to_string()),
        AttrValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A token count: an int, a whole double (JavaScript SDKs), or a string of digits.
fn count(span: &SpanInput, keys: &[&str]) -> Result<Option<i64>, SpanError> {
    let Some((key, v)) = keys
        .iter()
        .find_map(|k| span.attrs.get(*k).map(|v| (*k, v)))
    else {
        return Ok(None);
    };
    let bad = || SpanError::NotANumber {
        span: span.span_id.clone(),
        attr: key.to_string(),
    };
    match v {
        AttrValue::Int(i) => Ok(Some(*i)),
        AttrValue::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Ok(Some(*d as i64)),
        AttrValue::Str(s) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The usage record of a GenAI span, `None` for a span that is not a GenAI call.
pub fn usage_from_span(span: &SpanInput, cfg: &Attribution) -> Result<Option<UsageRow>, SpanError> {
    let Some(operation) = text(span.attrs.get("gen_ai.operation.name")) else {
        return Ok(None);
    };
    if !is_hex(&span.trace_id, 32) || !is_hex(&span.span_id, 16) {
        return Err(SpanError::BadId {
            span: span.span_id.chars().take(32).collect(),
        });
    }
    let provider = canonical_provider(
        &text(span.attrs.get("gen_ai.provider.name"))
            .or_else(|| text(span.attrs.get("gen_ai.system")))
            .unwrap_or_default(),
    );
    let request_model = text(span.attrs.get("gen_ai.request.model"));
    let model = text(span.attrs.get("gen_ai.response.model"))
        .or_else(|| request_model.clone())
        .unwrap_or_else(|| "unknown".into());
    let raw = RawUsage {
        input_tokens: count(
            span,
            &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"],
        )?,
        output_tokens: count(
            span,
            &[
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
            ],
        )?,
        cache_read_tokens: count(
            span,
            &[
                "gen_ai.usage.cache_read.input_tokens",
                "gen_ai.usage.cache_read_input_tokens",
            ],
        )?,
        cache_write_tokens: count(
            span,
            &[
                "gen_ai.usage.cache_creation.input_tokens",
                "gen_ai.usage.cache_creation_input_tokens",
            ],
        )?,
        cache_write_1h_tokens: count(
            span,
            &["gen_ai.usage.cache_creation.ephemeral_1h.input_tokens"],
        )?,
        reasoning_tokens: count(
            span,
            &[
                "gen_ai.usage.reasoning.output_tokens",
                "gen_ai.usage.output_tokens.reasoning",
                "gen_ai.usage.reasoning_tokens",
            ],
        )?,
    };
    let conv = if cfg.provider_counting.contains(&provider) {
        Convention::of(&provider)
    } else {
        Convention::INCLUSIVE
    };
    let buckets = normalise(&raw, conv).map_err(|source| SpanError::Usage {
        span: span.span_id.clone(),
        source,
    })?;
    let started_at = i128::from(span.start_unix_nano);
    let started_at = OffsetDateTime::from_unix_timestamp_nanos(started_at)
        .ok()
        .filter(|_| span.start_unix_nano > 0)
        .ok_or_else(|| SpanError::BadTime {
            span: span.span_id.clone(),
            detail: "is missing".into(),
        })?;
    let duration_ms = span.end_unix_nano.saturating_sub(span.start_unix_nano) as f64 / 1e6;
    let pick = |keys: &[String]| {
        keys.iter()
            .find_map(|k| text(span.attrs.get(k)).or_else(|| text(span.resource.get(k))))
            .unwrap_or_else(|| NONE.to_string())
    };
    let error_type = text(span.attrs.get("error.type"));
    let tier = text(span.attrs.get("openai.response.service_tier"))
        .or_else(|| text(span.attrs.get("openai.request.service_tier")));
    Ok(Some(UsageRow {
        record_id: format!("{}:{}", span.trace_id, span.span_id),
        trace_id: Some(span.trace_id.clone()),
        span_id: Some(span.span_id.clone()),
        parent_span_id: span.parent_span_id.clone().filter(|p| is_hex(p, 16)),
        started_at,
        duration_ms,
        provider,
        model,
        request_model,
        operation,
        service: text(span.resource.get("service.name")).unwrap_or_else(|| NONE.to_string()),
        feature: pick(&cfg.feature_keys),
        tenant: pick(&cfg.tenant_keys),
        service_tier: super::prices::billing_tier(tier.as_deref()).to_string(),
        ok: !span.error && error_type.is_none(),
        error_type: error_type.or_else(|| span.error.then(|| "error".to_string())),
        buckets,
        raw,
        price_id: None,
        cost: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tokens::Buckets;

    fn s(v: &str) -> AttrValue {
        AttrValue::Str(v.into())
    }

    fn span(attrs: &[(&str, AttrValue)]) -> SpanInput {
        SpanInput {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_span_id: Some("00f067aa0ba902b7".into()),
            start_unix_nano: 1_764_460_800_000_000_000,
            end_unix_nano: 1_764_460_801_250_000_000,
            error: false,
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            resource: [
                ("service.name".to_string(), s("checkout")),
                ("tenant.id".into(), s("acme")),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn a_chat_span_becomes_a_record() {
        let sp = span(&[
            ("gen_ai.operation.name", s("chat")),
            ("gen_ai.provider.name", s("openai")),
            ("gen_ai.request.model", s("gpt-4.1")),
            ("gen_ai.response.model", s("gpt-4.1-2025-04-14")),
            ("gen_ai.usage.input_tokens", AttrValue::Int(2006)),
            ("gen_ai.usage.output_tokens", AttrValue::Double(300.0)),
            ("gen_ai.usage.cache_read.input_tokens", s("1920")),
            ("openai.response.service_tier", s("default")),
            ("app.feature", s("search")),
        ]);
        let r = usage_from_span(&sp, &Attribution::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.model, "gpt-4.1-2025-04-14", "the response model wins");
        assert_eq!(r.request_model.as_deref(), Some("gpt-4.1"));
        assert_eq!(r.provider, "openai");
        assert_eq!(
            (r.service.as_str(), r.feature.as_str(), r.tenant.as_str()),
            ("checkout", "search", "acme")
        );
        assert_eq!(
            r.buckets,
            Buckets {
                input: 86,
                cache_read: 1920,
                output: 300,
                ..Default::default()
            }
        );
        assert_eq!(r.duration_ms, 1250.0);
        assert!(r.ok);
        assert_eq!(
            r.record_id,
            "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331"
        );
    }

    #[test]
    fn deprecated_names_missing_attribution_and_errors() {
        let mut sp = span(&[
            ("gen_ai.operation.name", s("text_completion")),
            ("gen_ai.system", s("vertex_ai")),
            ("gen_ai.request.model", s("gemini-2.5-pro")),
            ("gen_ai.usage.prompt_tokens", AttrValue::Int(10)),
            ("gen_ai.usage.completion_tokens", AttrValue::Int(4)),
            ("error.type", s("429")),
        ]);
        sp.resource.clear();
        let r = usage_from_span(&sp, &Attribution::default())
            .unwrap()
            .unwrap();
        assert_eq!(r.provider, "gcp.vertex_ai");
        assert_eq!(r.model, "gemini-2.5-pro");
        assert_eq!(
            (r.service.as_str(), r.feature.as_str(), r.tenant.as_str()),
            (NONE, NONE, NONE)
        );
        assert_eq!(
            r.buckets,
            Buckets {
                input: 10,
                output: 4,
                ..Default::default()
            }
        );
        assert!(!r.ok);
        assert_eq!(r.error_type.as_deref(), Some("429"));
    }

    #[test]
    fn other_spans_are_not_usage_and_bad_ones_are_refused() {
        assert_eq!(
            usage_from_span(&span(&[("http.method", s("GET"))]), &Attribution::default()),
            Ok(None)
        );
        let cases: Vec<(Vec<(&str, AttrValue)>, &str)> = vec![
            (
                vec![("gen_ai.usage.input_tokens", AttrValue::Int(-3))],
                "input tokens is negative",
            ),
            (
                vec![("gen_ai.usage.input_tokens", AttrValue::Int(1_000_000_000))],
                "above",
            ),
            (
                vec![("gen_ai.usage.input_tokens", AttrValue::Double(1.5))],
                "not a whole",
            ),
            (
                vec![("gen_ai.usage.output_tokens", s("lots"))],
                "not a whole",
            ),
            (
                vec![
                    ("gen_ai.usage.input_tokens", AttrValue::Int(5)),
                    ("gen_ai.usage.cache_read.input_tokens", AttrValue::Int(6)),
                ],
                "exceed the input",
            ),
        ];
        for (attrs, want) in cases {
            let mut a = attrs.clone();
            a.push(("gen_ai.operation.name", s("chat")));
            let e = usage_from_span(&span(&a), &Attribution::default()).unwrap_err();
            assert!(e.to_string().contains(want), "{e} / {want}");
        }
        let mut bad = span(&[("gen_ai.operation.name", s("chat"))]);
        bad.trace_id = "xyz".into();
        assert!(matches!(
            usage_from_span(&bad, &Attribution::default()),
            Err(SpanError::BadId { .. })
        ));
    }

    #[test]
    fn provider_counting_is_a_setting() {
        let sp = span(&[
            ("gen_ai.operation.name", s("chat")),
            ("gen_ai.provider.name", s("anthropic")),
            ("gen_ai.usage.input_tokens", AttrValue::Int(2048)),
            ("gen_ai.usage.cache_read.input_tokens", AttrValue::Int(1800)),
            ("gen_ai.usage.output_tokens", AttrValue::Int(503)),
        ]);
        let otel = usage_from_span(&sp, &Attribution::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            otel.buckets.input, 248,
            "the convention: cache inside input"
        );
        let cfg = Attribution {
            provider_counting: vec!["anthropic".into()],
            ..Default::default()
        };
        let own = usage_from_span(&sp, &cfg).unwrap().unwrap();
        assert_eq!(
            own.buckets.input, 2048,
            "Anthropic's own counting: cache beside input"
        );
        assert_eq!(own.buckets.total(), 2048 + 1800 + 503);
    }
}
