//! Why a week's LLM cost changed: the change split into effects that add up exactly to it.
//!
//! The calls of both weeks are grouped into *cells* (model × feature within a service, or
//! service × model × feature overall). With `N` calls in a week, `n_k` in cell `k`, its share
//! `s_k = n_k / N` and its cost per call `c_k`:
//! - **volume** `= (N₁ − N₀) · C₀/N₀` — the extra calls at last week's cost per call;
//! - **mix** `= Σ (n₁ₖ − n₀ₖ·N₁/N₀) · c₀ₖ` — this week's calls spread over the cells
//!   differently, at last week's cost per call of each cell (a cell new this week counts at its
//!   own cost per call at last week's rates, so a new model is all mix);
//! - **price** `= Σ (cost₁ₖ − cost₁ₖ at last week's rates)` — last week's rate of a bucket is
//!   what the cell paid per token of it (the cell's own rate this week when it had none);
//! - **cache** `= Σ prompt₁ₖ · (h₁ₖ − h₀ₖ) · (read rate₀ₖ − input rate₀ₖ)` — the hit rate `h`
//!   (cache-read tokens / prompt tokens) changed, at last week's rates;
//! - **tokens** — the rest: tokens per call changed (longer prompts or answers, more reasoning,
//!   cache writes).
//!
//! volume + mix + Σ(cost₁ₖ − n₁ₖ·c₀ₖ) = C₁ − C₀ algebraically, and tokens is computed as the
//! remainder of that last sum, so the five effects add up to the change exactly. Unpriced calls
//! are outside both weeks' costs (they are counted beside).

use super::prices::BucketCosts;
use super::tokens::Buckets;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One cell's priced calls in one week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellWeek {
    pub calls: i64,
    pub tokens: Buckets,
    pub cost: BucketCosts,
}

impl CellWeek {
    pub fn add(&mut self, o: &CellWeek) {
        self.calls += o.calls;
        self.tokens.add(&o.tokens);
        self.cost.add(&o.cost);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub key: String,
    pub prev: CellWeek,
    pub cur: CellWeek,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    pub total: Decimal,
    pub volume: Decimal,
    pub mix: Decimal,
    pub price: Decimal,
    pub cache: Decimal,
    pub tokens: Decimal,
}

impl Effects {
    pub fn sum(&self) -> Decimal {
        self.volume + self.mix + self.price + self.cache + self.tokens
    }
}

fn rate(cost: Decimal, tokens: i64) -> Option<Decimal> {
    (tokens > 0).then(|| cost / Decimal::from(tokens))
}

/// Last week's rate of each bucket for this cell (this week's where it had none).
fn old_rates(prev: &CellWeek, cur: &CellWeek) -> [Decimal; 6] {
    let pairs = |w: &CellWeek| {
        [
            (w.cost.input, w.tokens.input),
            (w.cost.cache_read, w.tokens.cache_read),
            (w.cost.cache_write_5m, w.tokens.cache_write_5m),
            (w.cost.cache_write_1h, w.tokens.cache_write_1h),
            (w.cost.output, w.tokens.output),
            (w.cost.reasoning, w.tokens.reasoning),
        ]
    };
    let (p, c) = (pairs(prev), pairs(cur));
    std::array::from_fn(|i| {
        rate(p[i].0, p[i].1)
            .or_else(|| rate(c[i].0, c[i].1))
            .unwrap_or_default()
    })
}

fn at_rates(t: &Buckets, r: &[Decimal; 6]) -> Decimal {
    Decimal::from(t.input) * r[0]
        + Decimal::from(t.cache_read) * r[1]
        + Decimal::from(t.cache_write_5m) * r[2]
        + Decimal::from(t.cache_write_1h) * r[3]
        + Decimal::from(t.output) * r[4]
        + Decimal::from(t.reasoning) * r[5]
}

fn hit_rate(t: &Buckets) -> Option<Decimal> {
    (t.prompt() > 0).then(|| Decimal::from(t.cache_read) / Decimal::from(t.prompt()))
}

/// The effects of the change from `prev` to `cur` over `cells`.
pub fn decompose(cells: &[Cell]) -> Effects {
    let n0: i64 = cells.iter().map(|c| c.prev.calls).sum();
    let n1: i64 = cells.iter().map(|c| c.cur.calls).sum();
    let c0: Decimal = cells.iter().map(|c| c.prev.cost.total()).sum();
    let c1: Decimal = cells.iter().map(|c| c.cur.cost.total()).sum();
    let total = c1 - c0;
    if n0 == 0 || n1 == 0 {
        // Nothing to compare with (or nothing left): the whole change is volume.
        return Effects {
            total,
            volume: total,
            ..Default::default()
        };
    }
    let (dn0, dn1) = (Decimal::from(n0), Decimal::from(n1));
    let volume = Decimal::from(n1 - n0) * c0 / dn0;
    let (mut mix, mut price, mut cache, mut per_call_change) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for cell in cells {
        let (p, c) = (&cell.prev, &cell.cur);
        let rates = old_rates(p, c);
        let cur_at_old = at_rates(&c.tokens, &rates);
        // Last week's cost per call of the cell; for a new cell, its own at last week's rates.
        let per_call0 = if p.calls > 0 {
            p.cost.total() / Decimal::from(p.calls)
        } else if c.calls > 0 {
            cur_at_old / Decimal::from(c.calls)
        } else {
            Decimal::ZERO
        };
        let (k0, k1) = (Decimal::from(p.calls), Decimal::from(c.calls));
        mix += (k1 - k0 * dn1 / dn0) * per_call0;
        if c.calls == 0 {
            continue;
        }
        per_call_change += c.cost.total() - k1 * per_call0;
        price += c.cost.total() - cur_at_old;
        if let (Some(h0), Some(h1)) = (hit_rate(&p.tokens), hit_rate(&c.tokens)) {
            cache += Decimal::from(c.tokens.prompt()) * (h1 - h0) * (rates[1] - rates[0]);
        }
    }
    // volume + mix + per_call_change is the total algebraically; the tokens effect is what the
    // per-call change leaves after price and cache, and the rounding of the divisions above
    // lands there too, so the five add up to the total exactly.
    let tokens = total - volume - mix - price - cache;
    let _ = per_call_change;
    Effects {
        total,
        volume,
        mix,
        price,
        cache,
        tokens,
    }
}

/// Rounds the effects to cents so that the rounded parts still add up to the rounded total
/// (the cent lost or gained in rounding goes to the largest effect).
pub fn to_cents(e: &Effects) -> Effects {
    to_places(e, 2)
}

/// [`to_cents`] with `dp` decimal places (tiny amounts are shown to 1/100 of a cent).
pub fn to_places(e: &Effects, dp: u32) -> Effects {
    let r = |d: Decimal| d.round_dp(dp);
    let mut out = Effects {
        total: r(e.total),
        volume: r(e.volume),
        mix: r(e.mix),
        price: r(e.price),
        cache: r(e.cache),
        tokens: r(e.tokens),
    };
    let diff = out.total - out.sum();
    if !diff.is_zero() {
        let parts = [
            &mut out.volume,
            &mut out.mix,
            &mut out.price,
            &mut out.cache,
            &mut out.tokens,
        ];
        if let Some(biggest) = parts.into_iter().max_by_key(|d| d.abs()) {
            *biggest += diff;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::prices::Rates;
    use rust_decimal_macros::dec;

    /// A cell-week of `calls` calls, each with `prompt` prompt tokens of which `read` come from
    /// the cache and `out` output tokens, at `rates`.
    fn week(calls: i64, prompt: i64, read: i64, out: i64, rates: &Rates) -> CellWeek {
        let t = Buckets {
            input: (prompt - read) * calls,
            cache_read: read * calls,
            output: out * calls,
            ..Default::default()
        };
        CellWeek {
            calls,
            tokens: t,
            cost: rates.cost(&t),
        }
    }

    fn rates(input: Decimal, read: Decimal, output: Decimal) -> Rates {
        Rates {
            input,
            cache_read: Some(read),
            output,
            ..Default::default()
        }
    }

    fn cell(key: &str, prev: CellWeek, cur: CellWeek) -> Cell {
        Cell {
            key: key.into(),
            prev,
            cur,
        }
    }

    #[test]
    fn each_pure_change_lands_in_its_own_effect() {
        // $1,000,000 per million tokens makes one token cost $1: easy to check by hand.
        let a = rates(dec!(1000000), dec!(250000), dec!(4000000));
        let b = rates(dec!(2000000), dec!(500000), dec!(8000000));
        let cheaper = rates(dec!(500000), dec!(125000), dec!(2000000));
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Cell>, Effects)> = vec![
            ("nothing changed",
             vec![cell("m", week(10, 100, 0, 10, &a), week(10, 100, 0, 10, &a))],
             Effects::default()),
            // 10 calls × (100 input + 10 output × 4) = $1,400; 15 calls = $2,100.
            ("volume only: 50% more calls",
             vec![cell("m", week(10, 100, 0, 10, &a), week(15, 100, 0, 10, &a))],
             Effects { total: dec!(700), volume: dec!(700), ..Default::default() }),
            // Same calls, the model's rates halve: 1400 → 700.
            ("price only",
             vec![cell("m", week(10, 100, 0, 10, &a), week(10, 100, 0, 10, &cheaper))],
             Effects { total: dec!(-700), price: dec!(-700), ..Default::default() }),
            // Same 20 calls, half moved from the cheap model to the dear one:
            // prev 10·140 + 10·280 = 4200; cur 5·140 + 15·280 = 4900.
            ("mix only",
             vec![cell("cheap", week(10, 100, 0, 10, &a), week(5, 100, 0, 10, &a)),
                  cell("dear", week(10, 100, 0, 10, &b), week(15, 100, 0, 10, &b))],
             Effects { total: dec!(700), mix: dec!(700), ..Default::default() }),
            // Hit rate 0% → 50% on 100-token prompts: 50 tokens per call at $0.25 instead of
            // $1 → −$37.50 per call, 10 calls → −$375.
            ("cache only",
             vec![cell("m", week(10, 100, 0, 10, &a), week(10, 100, 50, 10, &a))],
             Effects { total: dec!(-375), cache: dec!(-375), ..Default::default() }),
            // Answers twice as long: +10 output tokens × $4 × 10 calls = +$400.
            ("tokens per call only",
             vec![cell("m", week(10, 100, 0, 10, &a), week(10, 100, 0, 20, &a))],
             Effects { total: dec!(400), tokens: dec!(400), ..Default::default() }),
            // A model used for the first time is all mix (and volume for its extra calls).
            ("a new model",
             vec![cell("old", week(10, 100, 0, 10, &a), week(10, 100, 0, 10, &a)),
                  cell("new", CellWeek::default(), week(10, 100, 0, 10, &b))],
             Effects { total: dec!(2800), volume: dec!(1400), mix: dec!(1400), ..Default::default() }),
            ("no previous week: all volume",
             vec![cell("m", CellWeek::default(), week(10, 100, 0, 10, &a))],
             Effects { total: dec!(1400), volume: dec!(1400), ..Default::default() }),
            ("nothing this week: all volume",
             vec![cell("m", week(10, 100, 0, 10, &a), CellWeek::default())],
             Effects { total: dec!(-1400), volume: dec!(-1400), ..Default::default() }),
        ];
        for (name, cells, want) in cases {
            let got = decompose(&cells);
            assert_eq!(got, want, "{name}");
            assert_eq!(got.sum(), got.total, "{name}: effects add up");
        }
    }

    #[test]
    fn everything_at_once_still_adds_up_exactly() {
        let a = rates(dec!(2.00), dec!(0.50), dec!(8.00));
        let b = rates(dec!(0.40), dec!(0.10), dec!(1.60));
        let a2 = rates(dec!(1.75), dec!(0.40), dec!(7.00));
        let cells = vec![
            cell(
                "gpt-4.1|search",
                week(1200, 3000, 900, 400, &a),
                week(1700, 3300, 1500, 380, &a2),
            ),
            cell(
                "gpt-4.1-mini|search",
                week(9000, 2000, 0, 200, &b),
                week(7000, 2100, 200, 260, &b),
            ),
            cell(
                "gpt-4.1|summary",
                week(300, 9000, 4000, 800, &a),
                CellWeek::default(),
            ),
            cell("o3|plan", CellWeek::default(), week(50, 5000, 0, 3000, &a)),
        ];
        let e = decompose(&cells);
        assert_eq!(e.sum(), e.total);
        assert!(e.volume != Decimal::ZERO && e.mix != Decimal::ZERO);
        assert!(e.price < Decimal::ZERO, "gpt-4.1 got cheaper: {e:?}");
        assert!(e.cache < Decimal::ZERO, "hit rate rose: {e:?}");
        let cents = to_cents(&e);
        assert_eq!(cents.sum(), cents.total);
        assert_eq!(cents.total, e.total.round_dp(2));
    }

    #[test]
    fn rounding_to_cents_keeps_the_sum() {
        let e = Effects {
            total: dec!(0.03),
            volume: dec!(0.014),
            mix: dec!(0.014),
            price: dec!(0.002),
            cache: Decimal::ZERO,
            tokens: Decimal::ZERO,
        };
        let c = to_cents(&e);
        assert_eq!(c.sum(), dec!(0.03));
        assert_eq!(c.volume + c.mix, dec!(0.03));
    }
}
