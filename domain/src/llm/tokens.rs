//! Token accounting: a provider's usage report turned into disjoint buckets, so that no token is
//! counted twice and none is lost (docs/llm-costs.md has a worked example per provider).
//!
//! Providers report the same call differently:
//! - **OpenAI** (and the OpenTelemetry GenAI convention, and DeepSeek): cached prompt tokens are
//!   counted *inside* the input tokens; reasoning tokens are counted *inside* the output tokens.
//! - **Anthropic**: `input_tokens` is only the uncached part; cache reads and cache writes are
//!   reported beside it; thinking is part of `output_tokens` with no separate count.
//! - **Gemini / Vertex AI**: `promptTokenCount` includes `cachedContentTokenCount`;
//!   `thoughtsTokenCount` is reported *beside* `candidatesTokenCount`, not inside it.
//!
//! [`Buckets`] are always disjoint: `input` is uncached input only, `output` excludes reasoning.

use serde::{Deserialize, Serialize};

/// The normalised, disjoint token counts of one call. Their sum is every billed token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    /// Input tokens neither read from nor written to a cache.
    pub input: i64,
    pub cache_read: i64,
    /// Written to a cache with the default (5-minute) lifetime.
    pub cache_write_5m: i64,
    /// Written to a cache with a 1-hour lifetime (Anthropic).
    pub cache_write_1h: i64,
    /// Visible output tokens (reasoning excluded).
    pub output: i64,
    pub reasoning: i64,
}

impl Buckets {
    /// Every token of the prompt: uncached, read from cache and written to cache.
    pub fn prompt(&self) -> i64 {
        self.input + self.cache_read + self.cache_write_5m + self.cache_write_1h
    }
    pub fn total(&self) -> i64 {
        self.prompt() + self.output + self.reasoning
    }
    pub fn add(&mut self, o: &Buckets) {
        self.input += o.input;
        self.cache_read += o.cache_read;
        self.cache_write_5m += o.cache_write_5m;
        self.cache_write_1h += o.cache_write_1h;
        self.output += o.output;
        self.reasoning += o.reasoning;
    }
}

/// The usage as the provider (or instrumentation) reported it, before normalisation. Kept on the
/// record as received. `None` = not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawUsage {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    /// All cache writes; `cache_write_1h_tokens` says how many of them have the 1-hour lifetime.
    pub cache_write_tokens: Option<i64>,
    pub cache_write_1h_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
}

/// How a provider's counts nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convention {
    /// Cache reads and writes are counted inside `input_tokens`.
    pub cache_in_input: bool,
    /// Reasoning tokens are counted inside `output_tokens`.
    pub reasoning_in_output: bool,
}

/// The largest token count one call may report (a call of 100M tokens is a bug, not a bill).
pub const MAX_TOKENS: i64 = 100_000_000;

impl Convention {
    /// The OpenTelemetry GenAI convention and OpenAI's API (DeepSeek follows it too).
    pub const INCLUSIVE: Convention = Convention {
        cache_in_input: true,
        reasoning_in_output: true,
    };

    /// The convention of a provider (`gen_ai.provider.name` / `gen_ai.system` values).
    pub fn of(provider: &str) -> Convention {
        match provider {
            "anthropic" | "aws.bedrock.anthropic" => Convention {
                cache_in_input: false,
                reasoning_in_output: true,
            },
            "gcp.gemini" | "gcp.vertex_ai" | "gcp.gen_ai" | "gemini" | "vertex_ai" | "google" => {
                Convention {
                    cache_in_input: true,
                    reasoning_in_output: false,
                }
            }
            _ => Convention::INCLUSIVE,
        }
    }
}

/// Why a usage report cannot be normalised (the span is rejected, counted in `partial_success`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("{0} is negative")]
    Negative(&'static str),
    #[error("{0} is above {MAX_TOKENS}")]
    Absurd(&'static str),
    #[error("cache tokens ({cached}) exceed the input tokens ({input}) that include them")]
    CacheAboveInput { cached: i64, input: i64 },
    #[error("reasoning tokens ({reasoning}) exceed the output tokens ({output}) that include them")]
    ReasoningAboveOutput { reasoning: i64, output: i64 },
    #[error("1-hour cache writes ({h1}) exceed all cache writes ({all})")]
    HourAboveWrites { h1: i64, all: i64 },
}

fn check(name: &'static str, v: Option<i64>) -> Result<i64, UsageError> {
    match v {
        None => Ok(0),
        Some(v) if v < 0 => Err(UsageError::Negative(name)),
        Some(v) if v > MAX_TOKENS => Err(UsageError::Absurd(name)),
        Some(v) => Ok(v),
    }
}

/// Normalises a report into disjoint buckets under the provider's convention.
pub fn normalise(raw: &RawUsage, conv: Convention) -> Result<Buckets, UsageError> {
    let input = check("input tokens", raw.input_tokens)?;
    let output = check("output tokens", raw.output_tokens)?;
    let read = check("cache read tokens", raw.cache_read_tokens)?;
    let write = check("cache write tokens", raw.cache_write_tokens)?;
    let write_1h = check("1-hour cache write tokens", raw.cache_write_1h_tokens)?;
    let reasoning = check("reasoning tokens", raw.reasoning_tokens)?;
    if write_1h > write {
        return Err(UsageError::HourAboveWrites {
            h1: write_1h,
            all: write,
        });
    }
    let uncached = if conv.cache_in_input {
        let cached = read + write;
        if cached > input {
            return Err(UsageError::CacheAboveInput { cached, input });
        }
        input - cached
    } else {
        input
    };
    let visible = if conv.reasoning_in_output {
        if reasoning > output {
            return Err(UsageError::ReasoningAboveOutput { reasoning, output });
        }
        output - reasoning
    } else {
        output
    };
    Ok(Buckets {
        input: uncached,
        cache_read: read,
        cache_write_5m: write - write_1h,
        cache_write_1h: write_1h,
        output: visible,
        reasoning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        input: i64,
        output: i64,
        read: Option<i64>,
        write: Option<i64>,
        write_1h: Option<i64>,
        reasoning: Option<i64>,
    ) -> RawUsage {
        RawUsage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_read_tokens: read,
            cache_write_tokens: write,
            cache_write_1h_tokens: write_1h,
            reasoning_tokens: reasoning,
        }
    }

    /// One row per provider example: what the provider reported, the buckets, and the total
    /// billed tokens (which must equal what the provider says it billed — nothing twice,
    /// nothing lost).
    #[test]
    fn each_providers_report_becomes_disjoint_buckets() {
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, RawUsage, Buckets, i64)> = vec![
            // OpenAI prompt caching guide: prompt_tokens 2006 with cached_tokens 1920,
            // completion_tokens 300, total_tokens 2306.
            ("openai caching", "openai", raw(2006, 300, Some(1920), None, None, Some(0)),
             Buckets { input: 86, cache_read: 1920, output: 300, ..Default::default() }, 2306),
            // OpenAI reasoning guide: input 75 (cached 0), output 1186 of which reasoning 1024,
            // total 1261.
            ("openai reasoning", "openai", raw(75, 1186, Some(0), None, None, Some(1024)),
             Buckets { input: 75, output: 162, reasoning: 1024, ..Default::default() }, 1261),
            // Anthropic: input_tokens is the uncached part; total input =
            // cache_read + cache_creation + input_tokens; cache_creation split 5m / 1h.
            ("anthropic cache", "anthropic", raw(2048, 503, Some(1800), Some(248), Some(100), None),
             Buckets { input: 2048, cache_read: 1800, cache_write_5m: 148, cache_write_1h: 100, output: 503, reasoning: 0 },
             2048 + 1800 + 248 + 503),
            // Gemini: promptTokenCount includes cachedContentTokenCount; thoughtsTokenCount is
            // beside candidatesTokenCount; total = prompt + candidates + thoughts.
            ("gemini thinking", "gcp.gemini", raw(1200, 300, Some(1000), None, None, Some(700)),
             Buckets { input: 200, cache_read: 1000, output: 300, reasoning: 700, ..Default::default() }, 2200),
            // DeepSeek: prompt_tokens = prompt_cache_hit_tokens + prompt_cache_miss_tokens;
            // reasoning (deepseek-reasoner) inside completion_tokens.
            ("deepseek", "deepseek", raw(1500, 900, Some(1280), None, None, Some(600)),
             Buckets { input: 220, cache_read: 1280, output: 300, reasoning: 600, ..Default::default() }, 2400),
            // The OTel convention for an unknown provider: inclusive, like OpenAI.
            ("otel default", "azure.ai.openai", raw(100, 10, Some(40), Some(20), None, None),
             Buckets { input: 40, cache_read: 40, cache_write_5m: 20, output: 10, ..Default::default() }, 110),
            // Nothing but input and output (older instrumentations).
            ("bare", "openai", RawUsage { input_tokens: Some(7), output_tokens: Some(3), ..Default::default() },
             Buckets { input: 7, output: 3, ..Default::default() }, 10),
            // Embeddings report no output at all.
            ("embeddings", "openai", RawUsage { input_tokens: Some(512), ..Default::default() },
             Buckets { input: 512, ..Default::default() }, 512),
        ];
        for (name, provider, r, want, total) in cases {
            let got = normalise(&r, Convention::of(provider)).unwrap();
            assert_eq!(got, want, "{name}");
            assert_eq!(got.total(), total, "{name}: billed total");
        }
    }

    #[test]
    fn impossible_reports_are_refused() {
        let inc = Convention::INCLUSIVE;
        let cases: Vec<(RawUsage, Convention, UsageError)> = vec![
            (
                raw(-1, 0, None, None, None, None),
                inc,
                UsageError::Negative("input tokens"),
            ),
            (
                raw(1, -5, None, None, None, None),
                inc,
                UsageError::Negative("output tokens"),
            ),
            (
                raw(MAX_TOKENS + 1, 0, None, None, None, None),
                inc,
                UsageError::Absurd("input tokens"),
            ),
            (
                raw(10, 0, Some(8), Some(3), None, None),
                inc,
                UsageError::CacheAboveInput {
                    cached: 11,
                    input: 10,
                },
            ),
            (
                raw(10, 5, None, None, None, Some(6)),
                inc,
                UsageError::ReasoningAboveOutput {
                    reasoning: 6,
                    output: 5,
                },
            ),
            (
                raw(10, 5, None, Some(2), Some(3), None),
                Convention::of("anthropic"),
                UsageError::HourAboveWrites { h1: 3, all: 2 },
            ),
        ];
        for (r, c, want) in cases {
            assert_eq!(normalise(&r, c), Err(want.clone()), "{want}");
        }
        // Anthropic's exclusive input may be smaller than its cache reads.
        assert!(
            normalise(
                &raw(5, 1, Some(900), None, None, None),
                Convention::of("anthropic")
            )
            .is_ok()
        );
    }
}
