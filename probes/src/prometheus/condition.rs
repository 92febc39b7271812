//! The conditions of a metric check, as in Argo Rollouts' `successCondition` /
//! `failureCondition`, on an instant query's result: `result < 0.001` (the query must return
//! one value: a scalar or a single series), `all(result < 500)` and `any(result > 0)` (every
//! or some series). Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`. Pure: parsed once when the
//! template is saved, evaluated on every measurement.

use super::QueryValue;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// Over which values of the result the comparison must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quantifier {
    /// The result is one value.
    One,
    All,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub quantifier: Quantifier,
    pub op: Op,
    pub threshold: f64,
}

/// What a condition says about one result.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    True,
    False,
    /// Nothing to judge: an empty result, or NaN (e.g. 0/0 when there was no traffic).
    NoData(String),
    /// The result does not fit the condition (several series for a one-value condition).
    Unfit(String),
}

impl Condition {
    /// Parses `result OP number`, `all(result OP number)` or `any(result OP number)`.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let t = text.trim();
        let help = "write result < 0.001, all(result < 500) or any(result > 0)";
        if t.is_empty() {
            return Err(format!("the condition is empty: {help}"));
        }
        if t.len() > 200 {
            return Err("the condition is too long: at most 200 characters".into());
        }
        let (quantifier, inner) = if let Some(rest) = strip_call(t, "all") {
            (Quantifier::All, rest)
        } else if let Some(rest) = strip_call(t, "any") {
            (Quantifier::Any, rest)
        } else {
            (Quantifier::One, t)
        };
        let rest = inner
            .trim()
            .strip_prefix("result")
            .ok_or_else(|| format!("{t:?}: {help}"))?
            .trim_start();
        let (op, number) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|n| (op, n.trim())))
        .ok_or_else(|| format!("{t:?}: expected one of < <= > >= == != after `result`; {help}"))?;
        let threshold: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| format!("{t:?}: {number:?} is not a number; {help}"))?;
        Ok(Condition {
            quantifier,
            op,
            threshold,
        })
    }

    /// Whether the condition holds for a query's result.
    pub fn eval(&self, value: &QueryValue) -> Truth {
        let values: Vec<f64> = match value {
            QueryValue::Scalar(v) => vec![*v],
            QueryValue::Vector(series) => series.iter().map(|s| s.value).collect(),
        };
        if values.is_empty() {
            return Truth::NoData("the query returned no series".into());
        }
        if values.iter().any(|v| v.is_nan()) {
            return Truth::NoData(
                "the query returned NaN (a division by zero: was there any traffic?)".into(),
            );
        }
        let holds = |v: &f64| self.op.holds(*v, self.threshold);
        let ok = match self.quantifier {
            Quantifier::One if values.len() > 1 => {
                return Truth::Unfit(format!(
                    "the query returned {} series: aggregate it (e.g. sum(…)) or write all(…) / any(…)",
                    values.len()
                ));
            }
            Quantifier::One | Quantifier::All => values.iter().all(holds),
            Quantifier::Any => values.iter().any(holds),
        };
        if ok { Truth::True } else { Truth::False }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = format!("result {} {}", self.op.as_str(), self.threshold);
        match self.quantifier {
            Quantifier::One => f.write_str(&inner),
            Quantifier::All => write!(f, "all({inner})"),
            Quantifier::Any => write!(f, "any({inner})"),
        }
    }
}

fn strip_call<'a>(t: &'a str, name: &str) -> Option<&'a str> {
    let rest = t.strip_prefix(name)?.trim_start();
    rest.strip_prefix('(')?.strip_suffix(')')
}

/// One measurement's phase, as in Argo Rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Successful,
    Failed,
    Inconclusive,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Successful => "successful",
            Phase::Failed => "failed",
            Phase::Inconclusive => "inconclusive",
        }
    }
}

/// A measurement's phase from the result and the conditions (Argo's rules): the failure
/// condition true → failed; else the success condition true → successful; else with a
/// failure condition → inconclusive, without one → failed. No data, NaN or a result that
/// does not fit → inconclusive, never successful. The text says why.
pub fn judge(
    success: &Condition,
    failure: Option<&Condition>,
    value: &QueryValue,
) -> (Phase, String) {
    if let Some(f) = failure {
        match f.eval(value) {
            Truth::True => return (Phase::Failed, format!("{f} holds")),
            Truth::NoData(m) | Truth::Unfit(m) => return (Phase::Inconclusive, m),
            Truth::False => {}
        }
    }
    match success.eval(value) {
        Truth::True => (Phase::Successful, format!("{success} holds")),
        Truth::False if failure.is_some() => (
            Phase::Inconclusive,
            format!(
                "neither {success} nor {} holds",
                failure.map(|f| f.to_string()).unwrap_or_default()
            ),
        ),
        Truth::False => (Phase::Failed, format!("{success} does not hold")),
        Truth::NoData(m) | Truth::Unfit(m) => (Phase::Inconclusive, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::Sample;

    fn vector(values: &[f64]) -> QueryValue {
        QueryValue::Vector(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| Sample {
                    labels: [("instance".to_string(), format!("i{i}"))].into(),
                    value: *v,
                })
                .collect(),
        )
    }

    #[test]
    fn parsing() {
        for (text, ok) in [
            ("result < 0.001", Some("result < 0.001")),
            ("  result<0.001 ", Some("result < 0.001")),
            ("all(result < 500)", Some("all(result < 500)")),
            ("any( result >= 1e3 )", Some("any(result >= 1000)")),
            ("result == 0", Some("result == 0")),
            ("result != -1.5", Some("result != -1.5")),
            ("result <= 2", Some("result <= 2")),
            ("result > 2", Some("result > 2")),
            ("", None),
            ("result", None),
            ("result < ", None),
            ("result < abc", None),
            ("result < NaN", None),
            ("result < inf", None),
            ("value < 1", None),
            ("all(result < 1", None),
            ("none(result < 1)", None),
            ("result < 1 and result > 0", None),
            ("result =< 1", None),
        ] {
            let got = Condition::parse(text).map(|c| c.to_string());
            assert_eq!(got.as_deref().ok(), ok, "{text:?}: {got:?}");
        }
        assert!(Condition::parse(&"result < 1".repeat(50)).is_err());
    }

    #[test]
    fn evaluation() {
        let c = |s: &str| Condition::parse(s).unwrap();
        for (cond, value, want) in [
            ("result < 0.001", QueryValue::Scalar(0.0005), Truth::True),
            ("result < 0.001", QueryValue::Scalar(0.001), Truth::False),
            ("result < 0.001", vector(&[0.0001]), Truth::True),
            ("all(result < 500)", vector(&[100.0, 499.0]), Truth::True),
            ("all(result < 500)", vector(&[100.0, 500.0]), Truth::False),
            ("any(result > 0)", vector(&[0.0, 0.0, 3.0]), Truth::True),
            ("any(result > 0)", vector(&[0.0, 0.0]), Truth::False),
            (
                "result >= 1",
                QueryValue::Scalar(f64::INFINITY),
                Truth::True,
            ),
        ] {
            assert_eq!(c(cond).eval(&value), want, "{cond} {value:?}");
        }
        assert!(matches!(
            c("result < 1").eval(&vector(&[])),
            Truth::NoData(_)
        ));
        assert!(matches!(
            c("all(result < 1)").eval(&vector(&[])),
            Truth::NoData(_)
        ));
        assert!(matches!(
            c("result < 1").eval(&QueryValue::Scalar(f64::NAN)),
            Truth::NoData(_)
        ));
        assert!(matches!(
            c("result < 1").eval(&vector(&[0.1, 0.2])),
            Truth::Unfit(m) if m.contains("2 series")
        ));
    }

    #[test]
    fn measurement_phases() {
        let s = Condition::parse("result < 0.01").unwrap();
        let f = Condition::parse("result >= 0.05").unwrap();
        for (failure, value, want) in [
            (None, QueryValue::Scalar(0.001), Phase::Successful),
            (None, QueryValue::Scalar(0.02), Phase::Failed),
            (Some(&f), QueryValue::Scalar(0.001), Phase::Successful),
            (Some(&f), QueryValue::Scalar(0.02), Phase::Inconclusive),
            (Some(&f), QueryValue::Scalar(0.06), Phase::Failed),
            (None, vector(&[]), Phase::Inconclusive),
            (Some(&f), vector(&[]), Phase::Inconclusive),
            (None, QueryValue::Scalar(f64::NAN), Phase::Inconclusive),
            (None, vector(&[0.001, 0.002]), Phase::Inconclusive),
        ] {
            assert_eq!(judge(&s, failure, &value).0, want, "{failure:?} {value:?}");
        }
    }
}
