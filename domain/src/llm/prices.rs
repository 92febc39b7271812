//! The price book's rules: which price applies to a call, and what the call costs. Money is
//! exact decimal ([`Decimal`]); prices are per million tokens.
//!
//! A price is one row per (provider, model, service tier, effective date, prompt-size tier).
//! For a call at time `t`:
//! 1. the rows of the call's provider and service tier whose model matches: the exact model
//!    name wins over patterns (`gpt-4.1*`), and a longer pattern over a shorter one;
//! 2. of those, the latest effective date not after `t` (a price applies from its date until
//!    the next one);
//! 3. of that date's rows, the highest prompt-size tier the call's prompt is *above*
//!    (`min_prompt_tokens` 0 is the base price, 200000 the "above 200k tokens" price).
//!
//! No row → the call is **unpriced** (never $0).

use super::tokens::Buckets;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Per-million-token rates. A missing cache or reasoning rate means the provider bills those
/// tokens at the plain rate (cache read/write → input, 1-hour write → 5-minute write,
/// reasoning → output).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub input: Decimal,
    pub cache_read: Option<Decimal>,
    pub cache_write_5m: Option<Decimal>,
    pub cache_write_1h: Option<Decimal>,
    pub output: Decimal,
    pub reasoning: Option<Decimal>,
}

/// What each bucket costs (exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCosts {
    pub input: Decimal,
    pub cache_read: Decimal,
    pub cache_write_5m: Decimal,
    pub cache_write_1h: Decimal,
    pub output: Decimal,
    pub reasoning: Decimal,
}

impl BucketCosts {
    pub fn total(&self) -> Decimal {
        self.input
            + self.cache_read
            + self.cache_write_5m
            + self.cache_write_1h
            + self.output
            + self.reasoning
    }
    pub fn add(&mut self, o: &BucketCosts) {
        self.input += o.input;
        self.cache_read += o.cache_read;
        self.cache_write_5m += o.cache_write_5m;
        self.cache_write_1h += o.cache_write_1h;
        self.output += o.output;
        self.reasoning += o.reasoning;
    }
}

impl Rates {
    pub fn cache_read(&self) -> Decimal {
        self.cache_read.unwrap_or(self.input)
    }
    pub fn cache_write_5m(&self) -> Decimal {
        self.cache_write_5m.unwrap_or(self.input)
    }
    pub fn cache_write_1h(&self) -> Decimal {
        self.cache_write_1h.unwrap_or_else(|| self.cache_write_5m())
    }
    pub fn reasoning(&self) -> Decimal {
        self.reasoning.unwrap_or(self.output)
    }

    /// The cost of `b` at these rates, per bucket.
    pub fn cost(&self, b: &Buckets) -> BucketCosts {
        let m = Decimal::from(1_000_000);
        let f = |tokens: i64, rate: Decimal| Decimal::from(tokens) * rate / m;
        BucketCosts {
            input: f(b.input, self.input),
            cache_read: f(b.cache_read, self.cache_read()),
            cache_write_5m: f(b.cache_write_5m, self.cache_write_5m()),
            cache_write_1h: f(b.cache_write_1h, self.cache_write_1h()),
            output: f(b.output, self.output),
            reasoning: f(b.reasoning, self.reasoning()),
        }
    }
}

/// One row of the price book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub id: i64,
    pub provider: String,
    /// An exact model name, or a pattern where `*` matches any run of characters.
    pub model: String,
    /// `default`, `batch`, `flex`, `priority`.
    pub service_tier: String,
    /// This row applies when the call's prompt has *more* tokens than this (0 = always).
    pub min_prompt_tokens: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub rates: Rates,
}

/// Whether `name` matches `pattern` (`*` = any run of characters, everything else literal).
pub fn model_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// How specific a model entry is: an exact name beats any pattern; a pattern with more literal
/// characters beats one with fewer.
fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.contains('*'), pattern.replace('*', "").len())
}

/// The service tier a call is billed at: OpenAI's `auto` and an absent tier are `default`.
pub fn billing_tier(reported: Option<&str>) -> &str {
    match reported {
        None | Some("") | Some("auto") | Some("standard") | Some("on_demand") => "default",
        Some(t) => t,
    }
}

/// The price that applies to a call, per the rules at the top of this module.
pub fn find<'a>(
    book: &'a [Price],
    provider: &str,
    model: &str,
    service_tier: &str,
    at: OffsetDateTime,
    prompt_tokens: i64,
) -> Option<&'a Price> {
    let candidates = book.iter().filter(|p| {
        p.provider == provider
            && p.service_tier == service_tier
            && p.effective_from <= at
            && model_matches(&p.model, model)
    });
    let best_model = candidates.clone().map(|p| specificity(&p.model)).max()?;
    let same_model = candidates.filter(|p| specificity(&p.model) == best_model);
    // Two patterns of equal specificity (`gpt-*` and `*-mini`) are ordered by text, so the
    // choice is stable.
    let model_name = same_model.clone().map(|p| p.model.as_str()).min()?;
    let same_model = same_model.filter(|p| p.model == model_name);
    let from = same_model.clone().map(|p| p.effective_from).max()?;
    same_model
        .filter(|p| p.effective_from == from)
        .filter(|p| p.min_prompt_tokens == 0 || prompt_tokens > p.min_prompt_tokens)
        .max_by_key(|p| p.min_prompt_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use time::macros::datetime;

    fn price(
        id: i64,
        model: &str,
        tier: &str,
        min: i64,
        from: OffsetDateTime,
        input: Decimal,
    ) -> Price {
        Price {
            id,
            provider: "openai".into(),
            model: model.into(),
            service_tier: tier.into(),
            min_prompt_tokens: min,
            effective_from: from,
            rates: Rates {
                input,
                output: input * dec!(4),
                ..Default::default()
            },
        }
    }

    #[test]
    fn patterns_match() {
        let cases = [
            ("gpt-4.1", "gpt-4.1", true),
            ("gpt-4.1", "gpt-4.1-mini", false),
            ("gpt-4.1*", "gpt-4.1-mini", true),
            ("gpt-4.1*", "gpt-4", false),
            ("*-mini", "gpt-4.1-mini", true),
            ("gpt-*-mini", "gpt-4.1-mini", true),
            ("gpt-*-mini", "gpt-mini", false),
            ("claude-*-4*", "claude-sonnet-4-5-20250929", true),
            ("*", "anything", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(model_matches(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn the_applicable_price() {
        let d1 = datetime!(2026-01-01 00:00 UTC);
        let d2 = datetime!(2026-06-01 00:00 UTC);
        let book = vec![
            price(1, "gpt-4.1*", "default", 0, d1, dec!(1)),
            price(2, "gpt-4.1", "default", 0, d1, dec!(2)),
            price(3, "gpt-4.1", "default", 0, d2, dec!(3)),
            price(4, "gpt-4.1", "default", 200_000, d2, dec!(6)),
            price(5, "gpt-4.1", "batch", 0, d1, dec!(1)),
            price(6, "gpt-4.1-mini", "default", 0, d2, dec!(0.4)),
        ];
        type Case<'a> = (&'a str, &'a str, &'a str, OffsetDateTime, i64, Option<i64>);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("exact beats pattern", "gpt-4.1", "default", datetime!(2026-03-01 00:00 UTC), 10, Some(2)),
            ("pattern for another name", "gpt-4.1-nano", "default", datetime!(2026-03-01 00:00 UTC), 10, Some(1)),
            ("the day before the change", "gpt-4.1", "default", datetime!(2026-05-31 23:59:59.999 UTC), 10, Some(2)),
            ("at the change's first instant", "gpt-4.1", "default", d2, 10, Some(3)),
            ("tier: at 200k exactly is not above", "gpt-4.1", "default", d2, 200_000, Some(3)),
            ("tier: above 200k", "gpt-4.1", "default", d2, 200_001, Some(4)),
            ("batch tier", "gpt-4.1", "batch", d2, 10, Some(5)),
            ("no flex price: unpriced", "gpt-4.1", "flex", d2, 10, None),
            ("before any price: unpriced", "gpt-4.1", "default", datetime!(2025-12-31 23:59 UTC), 10, None),
            ("mini before its own price uses the pattern", "gpt-4.1-mini", "default", d1, 10, Some(1)),
            ("mini after its own price", "gpt-4.1-mini", "default", d2, 10, Some(6)),
            ("another provider's model", "claude-sonnet-4", "default", d2, 10, None),
        ];
        for (name, model, tier, at, prompt, want) in cases {
            let got = find(&book, "openai", model, tier, at, prompt).map(|p| p.id);
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(find(&book, "anthropic", "gpt-4.1", "default", d2, 1), None);
    }

    #[test]
    fn cost_is_exact_and_defaults_missing_rates() {
        let r = Rates {
            input: dec!(2.00),
            cache_read: Some(dec!(0.50)),
            cache_write_5m: None,
            cache_write_1h: None,
            output: dec!(8.00),
            reasoning: None,
        };
        let b = Buckets {
            input: 86,
            cache_read: 1920,
            cache_write_5m: 10,
            cache_write_1h: 5,
            output: 300,
            reasoning: 7,
        };
        let c = r.cost(&b);
        assert_eq!(c.input, dec!(0.000172));
        assert_eq!(c.cache_read, dec!(0.00096));
        assert_eq!(c.cache_write_5m, dec!(0.00002)); // at the input rate
        assert_eq!(c.cache_write_1h, dec!(0.00001)); // at the 5-minute rate
        assert_eq!(c.output, dec!(0.0024));
        assert_eq!(c.reasoning, dec!(0.000056)); // at the output rate
        assert_eq!(c.total(), dec!(0.003618));
        // A million calls of it add up exactly (no float drift).
        let mut sum = BucketCosts::default();
        for _ in 0..1000 {
            sum.add(&c);
        }
        assert_eq!(sum.total(), dec!(3.618));
        assert_eq!(billing_tier(Some("auto")), "default");
        assert_eq!(billing_tier(None), "default");
        assert_eq!(billing_tier(Some("flex")), "flex");
    }
}
