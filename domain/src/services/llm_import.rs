//! Usage records from files: JSON Lines or CSV with the documented fields (docs/llm-costs.md),
//! through the page and the API. Every line is checked before anything is written: one bad
//! line is a 422 naming it (and the field), and nothing is stored. Idempotent by record id:
//! importing the same file twice adds nothing.

use crate::accounts::{Principal, Role};
use crate::error::{DomainError, DomainResult};
use crate::llm::prices::billing_tier;
use crate::llm::spans::{NONE, canonical_provider};
use crate::llm::tokens::{Convention, RawUsage, normalise};
use crate::services::llm::{IngestResult, Window, store_rows};
use crate::storage::llm::UsageRow;
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The most records one import may hold.
pub const MAX_RECORDS: usize = 100_000;

/// One record as a file gives it (JSONL objects; CSV columns of the same names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRecord {
    pub id: String,
    pub started_at: String,
    #[serde(default)]
    pub duration_ms: Option<f64>,
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub request_model: Option<String>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub feature: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub span_id: Option<String>,
    #[serde(default)]
    pub parent_span_id: Option<String>,
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    #[serde(default)]
    pub cache_read_tokens: Option<i64>,
    #[serde(default)]
    pub cache_write_tokens: Option<i64>,
    #[serde(default)]
    pub cache_write_1h_tokens: Option<i64>,
    #[serde(default)]
    pub reasoning_tokens: Option<i64>,
    /// `otel` (the default: cache inside input, reasoning inside output) or `provider` (the
    /// provider's own counting, e.g. Anthropic's input without the cache).
    #[serde(default)]
    pub usage_convention: Option<String>,
}

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

fn hex_ok(v: &Option<String>, len: usize, field: &str) -> Result<Option<String>, String> {
    match text(v) {
        None => Ok(None),
        Some(s) if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(format!("{field}: {len} hexadecimal digits")),
    }
}

/// Checks one record and turns it into a row.
pub fn to_row(r: &ImportRecord) -> Result<UsageRow, String> {
    let id = r.id.trim();
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err("id: 1 to 200 characters".into());
    }
    let started_at = OffsetDateTime::parse(r.started_at.trim(), &Rfc3339)
        .map_err(|_| "started_at: an RFC 3339 time (2026-11-23T10:00:00Z)".to_string())?;
    if r.provider.trim().is_empty() || r.provider.len() > 100 {
        return Err("provider: 1 to 100 characters".into());
    }
    if r.model.trim().is_empty() || r.model.len() > 200 {
        return Err("model: 1 to 200 characters".into());
    }
    let duration_ms = r.duration_ms.unwrap_or(0.0);
    if !(0.0..=86_400_000.0).contains(&duration_ms) {
        return Err("duration_ms: from 0 to 86400000".into());
    }
    let ok = match r.status.as_deref().map(str::trim) {
        None | Some("") | Some("ok") => true,
        Some("error") => false,
        Some(_) => return Err("status: ok or error".into()),
    };
    let provider = canonical_provider(&r.provider);
    let conv = match r.usage_convention.as_deref().map(str::trim) {
        None | Some("") | Some("otel") => Convention::INCLUSIVE,
        Some("provider") => Convention::of(&provider),
        Some(_) => return Err("usage_convention: otel or provider".into()),
    };
    let raw = RawUsage {
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cache_read_tokens: r.cache_read_tokens,
        cache_write_tokens: r.cache_write_tokens,
        cache_write_1h_tokens: r.cache_write_1h_tokens,
        reasoning_tokens: r.reasoning_tokens,
    };
    let buckets = normalise(&raw, conv).map_err(|e| e.to_string())?;
    let trace_id = hex_ok(&r.trace_id, 32, "trace_id")?;
    let span_id = hex_ok(&r.span_id, 16, "span_id")?;
    let parent_span_id = hex_ok(&r.parent_span_id, 16, "parent_span_id")?;
    if parent_span_id.is_some() && trace_id.is_none() {
        return Err(
            "parent_span_id without trace_id: a parent span is known only within its trace".into(),
        );
    }
    Ok(UsageRow {
        record_id: format!("import:{id}"),
        trace_id,
        span_id,
        parent_span_id,
        started_at,
        duration_ms,
        provider,
        model: r.model.trim().to_string(),
        request_model: text(&r.request_model),
        operation: text(&r.operation).unwrap_or_else(|| "chat".into()),
        service: text(&r.service).unwrap_or_else(|| NONE.into()),
        feature: text(&r.feature).unwrap_or_else(|| NONE.into()),
        tenant: text(&r.tenant).unwrap_or_else(|| NONE.into()),
        service_tier: billing_tier(r.service_tier.as_deref()).to_string(),
        ok,
        error_type: text(&r.error_type),
        buckets,
        raw,
        price_id: None,
        cost: None,
    })
}

/// Splits CSV text into records of fields (RFC 4180: quoted fields, `""` inside quotes, line
/// breaks inside quotes). Returns each record with the line it starts on.
pub fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let (mut line, mut start_line) = (1usize, 1usize);
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            '"' => return Err(format!("line {line}: a quote inside an unquoted field")),
            ',' => {
                record.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    out.push((start_line, std::mem::take(&mut record)));
                }
                record.clear();
                line += 1;
                start_line = line;
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err(format!("line {start_line}: a quoted field is never closed"));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push((start_line, record));
    }
    Ok(out)
}

/// Parses a file: `jsonl` or `csv`. All errors, first ten, each naming its line.
pub fn parse(format: &str, text: &str) -> DomainResult<Vec<UsageRow>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut push = |line: usize, r: Result<UsageRow, String>, rows: &mut Vec<UsageRow>| match r {
        Ok(row) => rows.push(row),
        Err(e) => {
            if errors.len() < 10 {
                errors.push(format!("line {line}: {e}"));
            }
        }
    };
    match format {
        "jsonl" => {
            for (i, l) in text.lines().enumerate() {
                if l.trim().is_empty() {
                    continue;
                }
                let r = serde_json::from_str::<ImportRecord>(l)
                    .map_err(|e| e.to_string())
                    .and_then(|r| to_row(&r));
                push(i + 1, r, &mut rows);
                if rows.len() > MAX_RECORDS {
                    break;
                }
            }
        }
        "csv" => {
            let recs = csv_records(text).map_err(DomainError::Invalid)?;
            let Some((_, header)) = recs.first() else {
                return Err(DomainError::invalid(
                    "the CSV is empty: a header line, then records",
                ));
            };
            let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
            for (line, fields) in recs.iter().skip(1) {
                if fields.len() != header.len() {
                    push(
                        *line,
                        Err(format!(
                            "{} fields, the header has {}",
                            fields.len(),
                            header.len()
                        )),
                        &mut rows,
                    );
                    continue;
                }
                // Each cell becomes a JSON value of the field's type, so CSV and JSONL share
                // one set of checks (and unknown columns are refused the same way).
                let mut obj = serde_json::Map::new();
                let mut bad = None;
                for (h, v) in header.iter().zip(fields) {
                    let v = v.trim();
                    if v.is_empty() {
                        continue;
                    }
                    let value = if h.ends_with("_tokens") {
                        match v.parse::<i64>() {
                            Ok(n) => serde_json::Value::from(n),
                            Err(_) => {
                                bad = Some(format!("{h}: a whole number, not {v:?}"));
                                break;
                            }
                        }
                    } else if h == "duration_ms" {
                        match v.parse::<f64>() {
                            Ok(n) if n.is_finite() => serde_json::Value::from(n),
                            _ => {
                                bad = Some(format!("{h}: a number, not {v:?}"));
                                break;
                            }
                        }
                    } else {
                        serde_json::Value::from(v)
                    };
                    obj.insert(h.clone(), value);
                }
                let r = match bad {
                    Some(e) => Err(e),
                    None => serde_json::from_value::<ImportRecord>(serde_json::Value::Object(obj))
                        .map_err(|e| e.to_string())
                        .and_then(|r| to_row(&r)),
                };
                push(*line, r, &mut rows);
                if rows.len() > MAX_RECORDS {
                    break;
                }
            }
        }
        _ => return Err(DomainError::invalid("format: jsonl or csv")),
    }
    if rows.len() > MAX_RECORDS {
        return Err(DomainError::invalid(format!(
            "at most {MAX_RECORDS} records per import"
        )));
    }
    if !errors.is_empty() {
        return Err(DomainError::Invalid(format!(
            "nothing was imported: {}",
            errors.join("; ")
        )));
    }
    if rows.is_empty() {
        return Err(DomainError::invalid("no records in the file"));
    }
    Ok(rows)
}

/// Imports a file (approvers and admins): all lines checked first, then stored and priced
/// like ingested spans, idempotent by record id.
pub async fn import(
    pool: &PgPool,
    who: &Principal,
    format: &str,
    text: &str,
    window: Window,
) -> DomainResult<IngestResult> {
    who.require(Role::Approver)?;
    let rows = parse(format, text)?;
    // The window refuses records outside it; for an import that is an error of the file.
    let now = OffsetDateTime::now_utc();
    let oldest = now - time::Duration::days(window.retention_days);
    if let Some(r) = rows
        .iter()
        .find(|r| r.started_at < oldest || r.started_at > now + time::Duration::days(1))
    {
        return Err(DomainError::invalid(format!(
            "record {}: started_at {} is outside the last {} days (LOOKOUT_LLM_RETENTION_DAYS); nothing was imported",
            r.record_id.trim_start_matches("import:"),
            r.started_at.date(),
            window.retention_days
        )));
    }
    store_rows(pool, rows, IngestResult::default(), window).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_follow_rfc_4180() {
        let t = "a,b,c\n1,\"x, y\",\"he said \"\"hi\"\"\"\r\n2,\"two\nlines\",3\n\n4,,\n";
        let r = csv_records(t).unwrap();
        assert_eq!(r[0], (1, vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(
            r[1],
            (2, vec!["1".into(), "x, y".into(), "he said \"hi\"".into()])
        );
        assert_eq!(r[2], (3, vec!["2".into(), "two\nlines".into(), "3".into()]));
        assert_eq!(r[3], (6, vec!["4".into(), "".into(), "".into()]));
        assert!(
            csv_records("a,\"b\nc")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(csv_records("a,b\"c\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn both_formats_give_the_same_rows_and_name_bad_lines() {
        let jsonl = r#"{"id": "r1", "started_at": "2026-11-23T10:00:00Z", "provider": "openai", "model": "gpt-4.1", "input_tokens": 2006, "cache_read_tokens": 1920, "output_tokens": 300, "feature": "search"}
{"id": "r2", "started_at": "2026-11-23T11:00:00Z", "provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 48, "cache_read_tokens": 1800, "output_tokens": 10, "usage_convention": "provider", "status": "error", "error_type": "overloaded"}
"#;
        let csv = "id,started_at,provider,model,input_tokens,cache_read_tokens,output_tokens,feature,usage_convention,status,error_type\n\
                   r1,2026-11-23T10:00:00Z,openai,gpt-4.1,2006,1920,300,search,,,\n\
                   r2,2026-11-23T11:00:00Z,anthropic,claude-sonnet-4-5,48,1800,10,,provider,error,overloaded\n";
        let a = parse("jsonl", jsonl).unwrap();
        let b = parse("csv", csv).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].buckets.input, 86);
        assert_eq!(
            a[1].buckets.input, 48,
            "Anthropic's own counting: cache beside input"
        );
        assert_eq!(a[1].buckets.cache_read, 1800);
        assert!(!a[1].ok);
        assert_eq!(a[0].record_id, "import:r1");
        for (format, text, want) in [
            ("jsonl", "{\"id\": \"x\"}\n", "line 1: missing field"),
            (
                "jsonl",
                "{\"id\": \"x\", \"started_at\": \"2026-11-23T10:00:00Z\", \"provider\": \"openai\", \"model\": \"m\", \"colour\": 1}\n",
                "line 1: unknown field `colour`",
            ),
            (
                "jsonl",
                "\n\n{\"id\": \"x\", \"started_at\": \"yesterday\", \"provider\": \"openai\", \"model\": \"m\"}\n",
                "line 3: started_at",
            ),
            (
                "csv",
                "id,started_at,provider,model,input_tokens\nx,2026-11-23T10:00:00Z,openai,m,-5\n",
                "line 2: input tokens is negative",
            ),
            (
                "csv",
                "id,started_at,provider,model,input_tokens\nx,2026-11-23T10:00:00Z,openai,m,many\n",
                "line 2: input_tokens: a whole number",
            ),
            (
                "csv",
                "id,started_at,provider,model\nx,2026-11-23T10:00:00Z,openai\n",
                "line 2: 3 fields, the header has 4",
            ),
            (
                "csv",
                "id,started_at,provider,model,colour\nx,2026-11-23T10:00:00Z,openai,m,red\n",
                "unknown field `colour`",
            ),
            ("xml", "<x/>", "format: jsonl or csv"),
            ("csv", "", "empty"),
        ] {
            let e = parse(format, text).unwrap_err().to_string();
            assert!(e.contains(want), "{format}: {e} / {want}");
        }
    }
}
