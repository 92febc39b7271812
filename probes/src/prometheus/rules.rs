//! The Prometheus probe's rules: pure functions from the numbers the queries returned to a
//! verdict, each with a table of cases below. No I/O here (`probe.rs` asks Prometheus).

use crate::framework::Severity;

/// A least-squares line through (t seconds, value) points and how well it fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Units per second.
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination, 0–1 (1: every point on the line).
    pub r2: f64,
    pub n: usize,
}

/// The fit through `points`, or `None` with fewer than 3 points or no spread in time.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mv = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let (mut stt, mut stv, mut svv) = (0.0, 0.0, 0.0);
    for (t, v) in points {
        stt += (t - mt) * (t - mt);
        stv += (t - mt) * (v - mv);
        svv += (v - mv) * (v - mv);
    }
    if stt <= 0.0 {
        return None;
    }
    let slope = stv / stt;
    let r2 = if svv <= 0.0 {
        // A flat line fits a flat series perfectly.
        1.0
    } else {
        (stv * stv / (stt * svv)).clamp(0.0, 1.0)
    };
    Some(Fit {
        slope,
        intercept: mv - slope * mt,
        r2,
        n,
    })
}

/// Splits a memory series where the process restarted: a drop of more than `drop` (a
/// share, e.g. 0.3) from one point to the next, or a gap in the samples longer than
/// `gap_s`.
pub fn segments(points: &[(f64, f64)], drop: f64, gap_s: f64) -> Vec<&[(f64, f64)]> {
    let mut out = vec![];
    let mut start = 0;
    for i in 1..points.len() {
        let (t0, v0) = points[i - 1];
        let (t1, v1) = points[i];
        if (v0 > 0.0 && v1 < v0 * (1.0 - drop)) || t1 - t0 > gap_s {
            out.push(&points[start..i]);
            start = i;
        }
    }
    if start < points.len() {
        out.push(&points[start..]);
    }
    out
}

/// The thresholds of the memory rule.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    /// A climb must fit a line at least this well (R²).
    pub min_r2: f64,
    /// …and grow at least this share of its current value per hour.
    pub min_growth_per_h: f64,
    /// Time to the limit at or under which a climb is critical.
    pub critical_within_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryVerdict {
    pub current: f64,
    /// The fit of the last stretch since a restart.
    pub fit: Option<Fit>,
    /// Stretches between restarts in the window.
    pub segments: usize,
    /// Of them, the ones that climbed (long enough to judge, steady, growing).
    pub climbing: usize,
    pub time_to_limit_s: Option<f64>,
    pub severity: Option<Severity>,
    pub reason: String,
}

fn climbs(seg: &[(f64, f64)], lim: &MemoryLimits) -> Option<Fit> {
    let f = fit(seg)?;
    let last = seg.last()?.1;
    let per_h = if last > 0.0 {
        f.slope * 3600.0 / last
    } else {
        0.0
    };
    (f.slope > 0.0 && f.r2 >= lim.min_r2 && per_h >= lim.min_growth_per_h).then_some(f)
}

/// Is this instance's memory leaking? A steady climb of the last stretch (fit ≥ `min_r2`,
/// growth ≥ `min_growth_per_h`), or a sawtooth (every stretch between restarts climbed, at
/// least two) is a leak sign; with a known limit, the time left at the current slope.
pub fn memory(
    points: &[(f64, f64)],
    limit: Option<f64>,
    lim: &MemoryLimits,
    gap_s: f64,
) -> MemoryVerdict {
    let segs = segments(points, 0.3, gap_s);
    let current = points.last().map(|p| p.1).unwrap_or(0.0);
    let n = segs.len();
    // The runs between restarts that ended (all but the last), long enough to judge.
    let completed: Vec<&[(f64, f64)]> = segs
        .iter()
        .take(n.saturating_sub(1))
        .copied()
        .filter(|s| s.len() >= 3)
        .collect();
    let last: &[(f64, f64)] = segs.last().copied().unwrap_or(&[]);
    let climbing = segs.iter().filter(|s| climbs(s, lim).is_some()).count();
    let last_climb = climbs(last, lim);
    let completed_climb =
        !completed.is_empty() && completed.iter().all(|s| climbs(s, lim).is_some());
    // A run that started only just now (under half as long as the ended ones) says nothing
    // yet: the ended runs decide. One that ran as long and stayed flat means the climb
    // stopped (a fix deployed, a cache filled up).
    let mean_completed =
        completed.iter().map(|s| s.len()).sum::<usize>() as f64 / completed.len().max(1) as f64;
    let last_short = (last.len() as f64) * 2.0 < mean_completed;
    let sawtooth = completed_climb && (last_climb.is_some() || last_short);
    // The slope that matters: the running climb, or the last ended run's.
    let judged: Option<Fit> = if last_climb.is_some() {
        last_climb
    } else if sawtooth {
        completed.last().and_then(|s| fit(s))
    } else {
        fit(last)
    };
    let last_fit = judged;
    let slope = judged.map(|f| f.slope).unwrap_or(0.0);
    let flagged = last_climb.is_some() || sawtooth;
    let time_to_limit_s = match limit {
        Some(l) if flagged && l > 0.0 && slope > 0.0 => Some(((l - current) / slope).max(0.0)),
        _ => None,
    };
    let (severity, reason) = if !flagged {
        let why = match last_fit {
            None => "too few samples to judge".to_string(),
            Some(f) if f.slope <= 0.0 => "flat or falling".to_string(),
            Some(f) if f.r2 < lim.min_r2 => {
                format!("no steady climb (fit R² {:.2} < {:.2})", f.r2, lim.min_r2)
            }
            Some(_) => "grows slower than the threshold".to_string(),
        };
        (None, why)
    } else {
        let shape = if sawtooth && completed.len() + usize::from(last_climb.is_some()) >= 2 {
            format!(
                "climbed in each of its runs between restarts ({climbing} of {n}; restarts reset it: a leak sign)"
            )
        } else if sawtooth {
            "climbed steadily until a restart reset it (a leak sign)".to_string()
        } else {
            "climbs steadily".to_string()
        };
        let sev = match time_to_limit_s {
            Some(t) if t <= lim.critical_within_s => Severity::Critical,
            _ => Severity::Warning,
        };
        (Some(sev), shape)
    };
    MemoryVerdict {
        current,
        fit: last_fit,
        segments: n,
        climbing,
        time_to_limit_s,
        severity,
        reason,
    }
}

/// Whether a response status (by the label it came in) counts as a server error.
pub fn is_server_error(label: &str, value: &str) -> bool {
    let v = value.trim();
    if label.contains("grpc") || label.starts_with("rpc_") {
        // gRPC codes that are the server's fault (by name or number).
        return matches!(
            v.to_ascii_lowercase().as_str(),
            "unknown"
                | "deadline_exceeded"
                | "deadlineexceeded"
                | "unimplemented"
                | "internal"
                | "unavailable"
                | "data_loss"
                | "dataloss"
                | "2"
                | "4"
                | "12"
                | "13"
                | "14"
                | "15"
        );
    }
    v.len() == 3 && v.starts_with('5') || v.eq_ignore_ascii_case("5xx")
}

/// Thresholds of the error and latency rules.
#[derive(Debug, Clone, Copy)]
pub struct RedLimits {
    /// Error ratio (0–1) at or over which the service is flagged.
    pub error_ratio: f64,
    /// p99 latency (seconds) at or over which the service is flagged.
    pub p99_s: f64,
}

/// A value now and in the same window a day and a week earlier.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Compared {
    pub now: Option<f64>,
    pub day: Option<f64>,
    pub week: Option<f64>,
}

impl Compared {
    fn baseline(&self) -> Option<f64> {
        match (self.day, self.week) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The error-ratio verdict: over the threshold (critical at four times it), or a rise to at
/// least twice the day- and week-earlier ratios by at least one percentage point.
pub fn error_verdict(r: &Compared, lim: &RedLimits) -> Option<(Severity, String)> {
    let now = r.now.filter(|v| v.is_finite())?;
    if now >= lim.error_ratio * 4.0 && now > 0.0 {
        return Some((
            Severity::Critical,
            format!(
                "{} of requests fail (threshold {})",
                pct(now),
                pct(lim.error_ratio)
            ),
        ));
    }
    if now >= lim.error_ratio && now > 0.0 {
        return Some((
            Severity::Warning,
            format!(
                "{} of requests fail (threshold {})",
                pct(now),
                pct(lim.error_ratio)
            ),
        ));
    }
    if let Some(base) = r.baseline().filter(|v| v.is_finite())
        && now >= base * 2.0
        && now - base >= 0.01
    {
        return Some((
            Severity::Warning,
            format!(
                "the error ratio rose to {} from {} in the same window earlier",
                pct(now),
                pct(base)
            ),
        ));
    }
    None
}

/// The latency verdict on p99 (seconds): over the threshold (critical at four times it), or
/// at least twice the day- and week-earlier p99.
pub fn latency_verdict(p99: &Compared, lim: &RedLimits) -> Option<(Severity, String)> {
    let now = p99.now.filter(|v| v.is_finite())?;
    if now >= lim.p99_s * 4.0 {
        return Some((
            Severity::Critical,
            format!("p99 is {} (threshold {})", ms(now), ms(lim.p99_s)),
        ));
    }
    if now >= lim.p99_s {
        return Some((
            Severity::Warning,
            format!("p99 is {} (threshold {})", ms(now), ms(lim.p99_s)),
        ));
    }
    if let Some(base) = p99.baseline().filter(|v| v.is_finite() && *v > 0.0)
        && now >= base * 2.0
    {
        return Some((
            Severity::Warning,
            format!(
                "p99 doubled: {} against {} in the same window earlier",
                ms(now),
                ms(base)
            ),
        ));
    }
    None
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
    /// It opened, but the app does not export the events that would say whether it closed.
    Unknown,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Unknown => "unknown",
        }
    }
}

/// opossum's state from its event counters. opossum-prometheus counts `open`, `halfOpen` and
/// `close` events since the process started (each open is followed by one half-open, which
/// ends in a close or another open), but creates a series only once an event happened, and
/// counts only events somebody listens to: a counter may be missing (`None`) because it
/// never happened or because it is not exported. What the breaker did lately decides then:
/// calls rejected in the last steps mean open; calls succeeding and none rejected, closed.
pub fn opossum_state(
    opens: f64,
    half_opens: Option<f64>,
    closes: Option<f64>,
    recent_rejects: f64,
    recent_successes: f64,
) -> BreakerState {
    if opens <= 0.0 {
        return BreakerState::Closed;
    }
    if closes.unwrap_or(0.0) >= opens {
        return BreakerState::Closed;
    }
    if half_opens.unwrap_or(0.0) >= opens {
        return BreakerState::HalfOpen;
    }
    if recent_rejects > 0.0 {
        return BreakerState::Open;
    }
    if recent_successes > 0.0 {
        return BreakerState::Closed;
    }
    if half_opens.is_none() && closes.is_none() {
        return BreakerState::Unknown;
    }
    BreakerState::Open
}

/// The breaker verdict: open is critical, half-open a warning, unknown after opening a
/// warning; a closed breaker that opened `flap` times or more in the window is flapping.
pub fn breaker_verdict(
    state: BreakerState,
    opens_in_window: f64,
    flap: f64,
) -> Option<(Severity, String)> {
    match state {
        BreakerState::Open => Some((Severity::Critical, "is open: calls are rejected".into())),
        BreakerState::HalfOpen => Some((
            Severity::Warning,
            "is half-open: trial calls decide whether it closes".into(),
        )),
        BreakerState::Unknown => Some((
            Severity::Warning,
            format!(
                "opened {} times in the window; its close events are not exported, so its state now is unknown",
                opens_in_window.round()
            ),
        )),
        BreakerState::Closed if opens_in_window >= flap => Some((
            Severity::Warning,
            format!(
                "is closed but opened {} times in the window (flapping)",
                opens_in_window.round()
            ),
        )),
        BreakerState::Closed => None,
    }
}

/// Saturation: a share at or over `warn` (CPU throttling, pool use) or a lag at or over it.
pub fn saturation(value: f64, warn: f64) -> Option<Severity> {
    (value.is_finite() && value >= warn).then_some(if value >= warn * 2.0 {
        Severity::Critical
    } else {
        Severity::Warning
    })
}

/// Counter increases along a series of raw counter values, counter resets handled as
/// Prometheus does (a drop means the counter restarted from zero).
pub fn increases(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .windows(2)
        .map(|w| {
            let d = w[1].1 - w[0].1;
            (w[1].0, if d < 0.0 { w[1].1 } else { d })
        })
        .collect()
}

/// When a counter last went up (the end of the step where it rose), if it did.
pub fn last_increase(points: &[(f64, f64)]) -> Option<f64> {
    increases(points)
        .into_iter()
        .rev()
        .find(|(_, d)| *d > 0.0)
        .map(|(t, _)| t)
}

pub fn pct(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p >= 10.0 || p == 0.0 {
        format!("{p:.0} %")
    } else if p >= 1.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.2} %")
    }
}

pub fn ms(seconds: f64) -> String {
    let m = seconds * 1000.0;
    if m >= 10_000.0 {
        format!("{:.1} s", seconds)
    } else if m >= 10.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

/// A duration for people: "3 h 20 min", "45 s".
pub fn span(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Checks a label selector (`job="checkout"`, `service=~"checkout|cart",env!="dev"`),
/// braces optional, and returns its inside. Label names are Prometheus's; values are
/// double-quoted with `\"` and `\\` escapes; at least one matcher must not match the empty
/// string (Prometheus refuses selectors that match everything).
pub fn selector(text: &str) -> Result<String, String> {
    let help = "write label matchers such as job=\"checkout\" or service=~\"checkout|cart\"";
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t)
        .trim();
    if t.is_empty() {
        return Err(format!("the selector is empty: {help}"));
    }
    let b = t.as_bytes();
    let mut i = 0;
    let mut parts = vec![];
    let mut non_empty = false;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let name = &t[start..i];
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(format!(
                "a label name is missing or invalid at {start}: {help}"
            ));
        }
        skip_ws(&mut i);
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| t[i..].starts_with(op))
            .ok_or_else(|| format!("expected =, !=, =~ or !~ after {name}: {help}"))?;
        i += op.len();
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'"' {
            return Err(format!(
                "the value of {name} must be in double quotes: {help}"
            ));
        }
        let vstart = i;
        i += 1;
        let mut value = String::new();
        let mut closed = false;
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() => {
                    // The escaped character, whole (it may be more than one byte).
                    let ch = t[i + 1..].chars().next().unwrap_or(' ');
                    value.push(ch);
                    i += 1 + ch.len_utf8();
                }
                b'"' => {
                    closed = true;
                    i += 1;
                    break;
                }
                _ => {
                    let ch = t[i..].chars().next().unwrap_or(' ');
                    value.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        if !closed {
            return Err(format!("the value of {name} has no closing quote"));
        }
        let matches_empty = match op {
            "=" => value.is_empty(),
            "!=" => !value.is_empty(),
            // A regex may match the empty string; only plain non-empty ones count.
            "=~" => {
                value.is_empty() || value == ".*" || value.ends_with('?') || value.ends_with('*')
            }
            _ => true,
        };
        non_empty |= !matches_empty;
        parts.push(format!("{name}{op}{}", &t[vstart..i]));
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        if b[i] != b',' {
            return Err(format!("expected a comma between matchers: {help}"));
        }
        i += 1;
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
    }
    if !non_empty {
        return Err(
            "the selector must have a matcher that does not match the empty string (e.g. job=\"checkout\")"
                .into(),
        );
    }
    Ok(parts.join(","))
}

/// A comma-separated list of metric names (each a valid Prometheus metric name).
pub fn metric_names(text: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    for n in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let ok = n.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        if !ok {
            return Err(format!("{n:?} is not a metric name"));
        }
        out.push(n.to_string());
    }
    Ok(out)
}

/// A comma-separated list of label names.
pub fn label_names(text: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    for n in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let ok = n
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
        if !ok {
            return Err(format!("{n:?} is not a label name"));
        }
        out.push(n.to_string());
    }
    Ok(out)
}

/// A Prometheus duration of one unit (`30s`, `15m`, `6h`, `1d`, `1w`) in seconds.
pub fn duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{t:?}: give a unit (s, m, h, d or w), e.g. 1h"))?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{t:?} is not a duration such as 30m or 6h"))?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{t:?}: the unit is s, m, h, d or w")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("{t:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, step: f64, start: f64, slope: f64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| (i as f64 * step, start + slope * i as f64 * step))
            .collect()
    }

    #[test]
    fn fits() {
        let f = fit(&line(10, 60.0, 100.0, 2.0)).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-9 && (f.r2 - 1.0).abs() < 1e-9);
        assert!((f.intercept - 100.0).abs() < 1e-6);
        assert_eq!(fit(&line(2, 1.0, 0.0, 1.0)), None);
        assert_eq!(fit(&[(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)]), None);
        let flat = fit(&line(5, 1.0, 7.0, 0.0)).unwrap();
        assert_eq!((flat.slope, flat.r2), (0.0, 1.0));
        // Noise around a flat line fits badly.
        let noisy = [(0.0, 1.0), (1.0, 9.0), (2.0, 2.0), (3.0, 8.0), (4.0, 1.5)];
        assert!(fit(&noisy).unwrap().r2 < 0.2);
    }

    #[test]
    fn memory_cases() {
        let lim = MemoryLimits {
            min_r2: 0.8,
            min_growth_per_h: 0.05,
            critical_within_s: 6.0 * 3600.0,
        };
        let mib = 1024.0 * 1024.0;
        // (name, points, limit, severity, climbing, time to limit within)
        let leak = line(60, 60.0, 200.0 * mib, 100.0 * 1024.0); // +100 KiB/s from 200 MiB
        // Each run climbs 200 → ~420 MiB, then a restart drops it back.
        let mut saw = line(20, 60.0, 200.0 * mib, 200.0 * 1024.0);
        saw.extend(
            line(20, 60.0, 200.0 * mib, 200.0 * 1024.0)
                .into_iter()
                .map(|(t, v)| (t + 1200.0, v)),
        );
        let mut climbed_then_new = line(40, 60.0, 200.0 * mib, 200.0 * 1024.0);
        climbed_then_new.extend(
            line(4, 60.0, 200.0 * mib, 0.0)
                .into_iter()
                .map(|(t, v)| (t + 2400.0, v)),
        );
        let mut climbed_then_flat = line(30, 60.0, 200.0 * mib, 200.0 * 1024.0);
        climbed_then_flat.extend(
            line(30, 60.0, 200.0 * mib, 0.0)
                .into_iter()
                .map(|(t, v)| (t + 1800.0, v)),
        );
        let flat = line(60, 60.0, 300.0 * mib, 0.0);
        let slow = line(60, 60.0, 300.0 * mib, 10.0); // 36 KB/h of 300 MiB: far under 5 %/h
        let noisy: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                (
                    i as f64 * 60.0,
                    300.0 * mib + if i % 2 == 0 { 40.0 * mib } else { 0.0 },
                )
            })
            .collect();
        type Case = (
            &'static str,
            Vec<(f64, f64)>,
            Option<f64>,
            Option<Severity>,
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                "steady leak, limit far",
                leak.clone(),
                Some(64.0 * 1024.0 * mib),
                Some(Severity::Warning),
                1,
            ),
            (
                "steady leak, limit near",
                leak.clone(),
                Some(700.0 * mib),
                Some(Severity::Critical),
                1,
            ),
            (
                "steady leak, no limit",
                leak,
                None,
                Some(Severity::Warning),
                1,
            ),
            (
                "sawtooth reset by a restart",
                saw,
                None,
                Some(Severity::Warning),
                2,
            ),
            (
                "climbed, restarted just now",
                climbed_then_new.clone(),
                None,
                Some(Severity::Warning),
                1,
            ),
            (
                "climbed, restarted, flat since (fixed)",
                climbed_then_flat,
                None,
                None,
                1,
            ),
            ("flat", flat, Some(512.0 * mib), None, 0),
            ("slow growth", slow, None, None, 0),
            ("noisy", noisy, None, None, 0),
            ("two points", line(2, 60.0, 1.0, 1.0), None, None, 0),
            ("empty", vec![], None, None, 0),
        ];
        for (name, pts, limit, sev, climbing) in cases {
            let v = memory(&pts, limit, &lim, 600.0);
            assert_eq!(v.severity, sev, "{name}: {v:?}");
            assert_eq!(v.climbing, climbing, "{name}: {v:?}");
        }
        let v = memory(
            &line(60, 60.0, 200.0 * mib, 100.0 * 1024.0),
            Some(700.0 * mib),
            &lim,
            600.0,
        );
        // (700 − (200 + 100 KiB/s × 3540 s ≈ 345.7 MiB)) / 100 KiB/s
        let left = v.time_to_limit_s.unwrap();
        assert!(
            (left - (700.0 * mib - v.current) / (100.0 * 1024.0)).abs() < 1.0,
            "{left}"
        );
        // A gap in the samples (a scrape outage, a new pod) splits the stretches too.
        let mut gap = line(10, 60.0, 100.0, 0.0);
        gap.extend(
            line(10, 60.0, 100.0, 0.0)
                .into_iter()
                .map(|(t, v)| (t + 5000.0, v)),
        );
        assert_eq!(segments(&gap, 0.3, 600.0).len(), 2);
    }

    #[test]
    fn server_errors() {
        for (label, value, yes) in [
            ("status_code", "503", true),
            ("http_response_status_code", "500", true),
            ("code", "200", false),
            ("code", "404", false),
            ("status", "5xx", true),
            ("status", "", false),
            ("grpc_code", "Unavailable", true),
            ("grpc_code", "NotFound", false),
            ("rpc_grpc_status_code", "14", true),
            ("rpc_grpc_status_code", "5", false),
            ("status_code", "5000", false),
        ] {
            assert_eq!(is_server_error(label, value), yes, "{label}={value}");
        }
    }

    #[test]
    fn red_cases() {
        let lim = RedLimits {
            error_ratio: 0.05,
            p99_s: 1.0,
        };
        let c = |now, day, week| Compared { now, day, week };
        for (name, r, sev) in [
            ("quiet", c(Some(0.001), Some(0.001), None), None),
            (
                "over threshold",
                c(Some(0.08), None, None),
                Some(Severity::Warning),
            ),
            (
                "four times over",
                c(Some(0.25), Some(0.01), Some(0.01)),
                Some(Severity::Critical),
            ),
            (
                "rose from yesterday",
                c(Some(0.03), Some(0.005), Some(0.004)),
                Some(Severity::Warning),
            ),
            (
                "rose but under a point",
                c(Some(0.008), Some(0.001), None),
                None,
            ),
            ("no traffic (NaN)", c(Some(f64::NAN), Some(0.1), None), None),
            ("no data", c(None, Some(0.5), None), None),
        ] {
            assert_eq!(error_verdict(&r, &lim).map(|v| v.0), sev, "{name}");
        }
        for (name, r, sev) in [
            ("fast", c(Some(0.2), Some(0.19), None), None),
            ("slow", c(Some(1.5), None, None), Some(Severity::Warning)),
            (
                "very slow",
                c(Some(4.0), None, None),
                Some(Severity::Critical),
            ),
            (
                "doubled",
                c(Some(0.5), Some(0.2), Some(0.1)),
                Some(Severity::Warning),
            ),
            ("a bit slower", c(Some(0.3), Some(0.2), None), None),
            ("baseline zero", c(Some(0.3), Some(0.0), None), None),
        ] {
            assert_eq!(latency_verdict(&r, &lim).map(|v| v.0), sev, "{name}");
        }
    }

    #[test]
    fn breaker_cases() {
        use BreakerState::*;
        // (opens, half-opens, closes, recent rejects, recent successes) → state
        for (opens, half, close, rej, ok, want) in [
            (0.0, None, None, 0.0, 5.0, Closed),
            (1.0, None, None, 12.0, 0.0, Open),
            (1.0, Some(0.0), Some(0.0), 0.0, 0.0, Open),
            (1.0, Some(1.0), None, 0.0, 0.0, HalfOpen),
            (1.0, Some(1.0), Some(1.0), 0.0, 3.0, Closed),
            (3.0, Some(3.0), Some(2.0), 0.0, 0.0, HalfOpen),
            (3.0, Some(2.0), Some(2.0), 4.0, 0.0, Open),
            (2.0, None, None, 0.0, 0.0, Unknown),
            (2.0, None, None, 0.0, 9.0, Closed),
            (2.0, None, Some(1.0), 0.0, 0.0, Open),
            (2.0, None, Some(2.0), 0.0, 0.0, Closed),
        ] {
            assert_eq!(
                opossum_state(opens, half, close, rej, ok),
                want,
                "{opens} {half:?} {close:?} {rej} {ok}"
            );
        }

        assert_eq!(
            breaker_verdict(Open, 1.0, 3.0).unwrap().0,
            Severity::Critical
        );
        assert_eq!(
            breaker_verdict(HalfOpen, 1.0, 3.0).unwrap().0,
            Severity::Warning
        );
        assert_eq!(
            breaker_verdict(Unknown, 1.0, 3.0).unwrap().0,
            Severity::Warning
        );
        assert!(
            breaker_verdict(Closed, 3.0, 3.0)
                .unwrap()
                .1
                .contains("flapping")
        );
        assert_eq!(breaker_verdict(Closed, 1.0, 3.0), None);
    }

    #[test]
    fn counters() {
        let pts = [(0.0, 5.0), (1.0, 7.0), (2.0, 7.0), (3.0, 1.0), (4.0, 1.0)];
        assert_eq!(
            increases(&pts),
            vec![(1.0, 2.0), (2.0, 0.0), (3.0, 1.0), (4.0, 0.0)]
        );
        assert_eq!(last_increase(&pts), Some(3.0));
        assert_eq!(last_increase(&[(0.0, 1.0), (1.0, 1.0)]), None);
        assert_eq!(saturation(0.3, 0.25), Some(Severity::Warning));
        assert_eq!(saturation(0.5, 0.25), Some(Severity::Critical));
        assert_eq!(saturation(0.1, 0.25), None);
        assert_eq!(saturation(f64::NAN, 0.25), None);
    }

    #[test]
    fn selectors() {
        for (input, ok) in [
            (r#"job="checkout""#, Some(r#"job="checkout""#)),
            (
                r#"{ service=~"checkout|cart" , env!="dev" }"#,
                Some(r#"service=~"checkout|cart",env!="dev""#),
            ),
            (r#"job="a\"b""#, Some(r#"job="a\"b""#)),
            (r#"job="checkout","#, Some(r#"job="checkout""#)),
            ("job=\"\\é\"", Some("job=\"\\é\"")),
            (
                r#"job = "checkout" ,env=~ "a b""#,
                Some(r#"job="checkout",env=~"a b""#),
            ),
            ("", None),
            ("job=checkout", None),
            (r#"job="open"#, None),
            (r#"job!="x""#, None),
            (r#"job=~".*""#, None),
            (r#"job="""#, None),
            (r#"job="a" or vector(1)"#, None),
            (r#"job="a"} or up{"#, None),
            (r#"1job="a""#, None),
            (r#"job="a";drop"#, None),
        ] {
            assert_eq!(selector(input).ok().as_deref(), ok, "{input}");
        }
        assert_eq!(metric_names(" a_b:c , x1 ,").unwrap(), vec!["a_b:c", "x1"]);
        assert!(metric_names("up{x=\"1\"}").is_err());
        assert!(metric_names("1up").is_err());
        assert!(label_names("a:b").is_err());
        for (d, s) in [
            ("30s", Some(30)),
            ("15m", Some(900)),
            ("6h", Some(21_600)),
            ("1d", Some(86_400)),
            ("2w", Some(1_209_600)),
            ("1h30m", None),
            ("h", None),
            ("10", None),
            ("99999999999999999999d", None),
        ] {
            assert_eq!(duration(d).ok(), s, "{d}");
        }
        assert_eq!(span(45.0), "45 s");
        assert_eq!(span(3600.0 * 3.0 + 1200.0), "3 h 20 min");
        assert_eq!(pct(0.0534), "5.3 %");
        assert_eq!(ms(0.25), "250 ms");
    }
}
