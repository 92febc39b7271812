//! Kafka consumer-lag rules, as pure functions (no I/O; used by the lag probe and, through
//! `domain::services::kafka_lag`, by the sampler):
//! Burrow-style partition and group verdicts over a window of samples, the catch-up
//! estimate, and time lag interpolated from the log-end history.
//!
//! Where this departs from Burrow, on purpose:
//! - Burrow's window holds the group's *commits*; when consumers commit faster than Burrow
//!   evaluates, ten commits span seconds and lag noise means WARN never fires. Here the
//!   window holds *samples* taken at a fixed interval, so it always spans the same time.
//! - Burrow's lag is the lag stored with the last commit, so a stopped partition shows the
//!   lag it had when it stopped. Here lag is recomputed from every sample's log end, so a
//!   stopped partition's lag keeps growing, as it really does.
//! - Kafka does not say *when* an offset was committed. STALL (the consumer is alive but its
//!   offset does not move) and STOP (nobody commits any more) are told apart by whether a
//!   live group member owns the partition, and by how long the offset has not changed.
//! - Transactional producers write a commit marker after each transaction; it occupies an
//!   offset no consumer ever reads, so an idle exactly-once consumer sits at lag 1–2 for
//!   ever. A lag of at most [`MARKER_TOLERANCE`] on a partition whose log end did not move is
//!   counted as zero.

use crate::framework::group_i as n;
use serde::{Deserialize, Serialize};

/// The finding the lag sampler's alerts add to an incident.
pub const ALERT_CODE: crate::framework::CodeDoc = crate::framework::CodeDoc {
    code: "KAFKA_LAG_ALERT",
    severity: crate::framework::Severity::Critical,
    meaning: "A consumer group stayed in WARN (warning) or ERR (critical: STALL, STOP, REWIND) for longer than the configured time (LOOKOUT_KAFKA_ALERT_AFTER_SECS, or the target's kafka-alert-after-secs label).",
    remediation: "Open the group's page for its verdict, graph and partitions; scale or restart the consumers, or investigate the stalled partition's owner. Recovery is recorded on the incident.",
};

/// Samples in a full evaluation window.
pub const WINDOW: usize = 10;
/// Lag this small on an idle partition is commit markers, not unread messages.
pub const MARKER_TOLERANCE: i64 = 2;

/// One observation of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The group's committed offset; `None` when the group never committed here.
    pub committed: Option<i64>,
    /// The log-end offset (high watermark).
    pub end: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Fewer samples than a full window: no verdict yet.
    Incomplete,
    /// No committed offset at all.
    NoOffset,
    Warn,
    Stall,
    Stop,
    Rewind,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Incomplete => "INCOMPLETE",
            Status::NoOffset => "NO_OFFSET",
            Status::Warn => "WARN",
            Status::Stall => "STALL",
            Status::Stop => "STOP",
            Status::Rewind => "REWIND",
        }
    }
    /// STALL, STOP and REWIND make the group ERR.
    pub fn is_error(self) -> bool {
        matches!(self, Status::Stall | Status::Stop | Status::Rewind)
    }
}

/// What is known about a partition besides its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// A live group member has this partition assigned.
    pub owned: bool,
    /// When the committed offset last changed, from the longer history (ms); `None` when it
    /// has not changed since history began.
    pub last_change_ms: Option<i64>,
    /// Now (ms).
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub partition: i32,
    pub status: Status,
    /// One sentence, with numbers.
    pub reason: String,
    /// Effective lag at the newest sample (commit markers discounted).
    pub lag: Option<i64>,
}

/// "45 s", "5 min", "2.5 h", "3.0 d".
pub fn span(ms: i64) -> String {
    let s = ms.max(0) as f64 / 1000.0;
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// Lag of one sample with commit markers discounted: `prev_end` is the previous sample's
/// log end (the partition is idle when it did not move).
fn effective_lag(s: &Sample, prev_end: Option<i64>) -> Option<i64> {
    let c = s.committed?;
    let lag = (s.end - c).max(0);
    let idle = prev_end.is_none_or(|p| p == s.end);
    Some(if idle && lag <= MARKER_TOLERANCE {
        0
    } else {
        lag
    })
}

/// The verdict for one partition over its window (oldest sample first).
pub fn evaluate(partition: i32, window: &[Sample], ctx: Context) -> Verdict {
    let v = |status, reason: String, lag| Verdict {
        partition,
        status,
        reason,
        lag,
    };
    let Some(last) = window.last() else {
        return v(
            Status::Incomplete,
            format!("partition {partition}: no samples yet"),
            None,
        );
    };
    // REWIND first: it is an error even in an incomplete window.
    for w in window.windows(2) {
        if let (Some(a), Some(b)) = (w[0].committed, w[1].committed)
            && b < a
        {
            return v(
                Status::Rewind,
                format!(
                    "REWIND: partition {partition}'s committed offset went back from {} to {} ({} messages will be read again)",
                    n(a),
                    n(b),
                    n(a - b)
                ),
                effective_lag(last, None),
            );
        }
    }
    if last.committed.is_none() {
        return v(
            Status::NoOffset,
            format!(
                "NO_OFFSET: the group has never committed an offset on partition {partition} (log end {})",
                n(last.end)
            ),
            None,
        );
    }
    if window.len() < WINDOW {
        return v(
            Status::Incomplete,
            format!(
                "INCOMPLETE: only {} of {WINDOW} samples of partition {partition} so far; no verdict yet",
                window.len()
            ),
            effective_lag(last, window.iter().rev().nth(1).map(|s| s.end)),
        );
    }
    let lags: Vec<Option<i64>> = window
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // The first sample has no previous one: it is idle if the next did not move.
            let neighbour = if i == 0 {
                window.get(1)
            } else {
                window.get(i - 1)
            };
            effective_lag(s, neighbour.map(|x| x.end))
        })
        .collect();
    let lag_now = lags.last().copied().flatten();
    let first = &window[0];
    let span_ms = last.at_ms - first.at_ms;
    let grew = last.end - first.end;
    if lags.contains(&Some(0)) {
        let zeros = lags.iter().filter(|l| **l == Some(0)).count();
        return v(
            Status::Ok,
            format!(
                "OK: partition {partition} was caught up in {zeros} of {} samples (lag now {})",
                window.len(),
                n(lag_now.unwrap_or(0))
            ),
            lag_now,
        );
    }
    let (Some(c0), Some(c1)) = (first.committed, last.committed) else {
        // Commits appeared within the window.
        return v(
            Status::Ok,
            format!("OK: partition {partition} started committing within the window"),
            lag_now,
        );
    };
    if c0 == c1 {
        let since = ctx.last_change_ms.unwrap_or(first.at_ms).min(first.at_ms);
        let quiet = ctx.now_ms - since;
        if !ctx.owned && quiet > span_ms {
            return v(
                Status::Stop,
                format!(
                    "STOP: no commit on partition {partition} for {} (longer than the {} window) and no consumer owns it; offset {}, lag {} and the log end grew by {}",
                    span(quiet),
                    span(span_ms),
                    n(c1),
                    n(lag_now.unwrap_or(0)),
                    n(grew)
                ),
                lag_now,
            );
        }
        return v(
            Status::Stall,
            format!(
                "STALL: partition {partition}'s committed offset {} unchanged for {} samples ({}) while the log end grew by {}",
                n(c1),
                window.len(),
                span(span_ms),
                n(grew)
            ),
            lag_now,
        );
    }
    let never_decreasing = lags
        .windows(2)
        .all(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if b >= a));
    if never_decreasing {
        return v(
            Status::Warn,
            format!(
                "WARN: partition {partition}'s consumer is moving (committed +{}) but lag grew from {} to {} over {} samples ({})",
                n(c1 - c0),
                n(lags[0].unwrap_or(0)),
                n(lag_now.unwrap_or(0)),
                window.len(),
                span(span_ms)
            ),
            lag_now,
        );
    }
    v(
        Status::Ok,
        format!(
            "OK: partition {partition} is consuming (committed +{} over {}), lag {} → {}",
            n(c1 - c0),
            span(span_ms),
            n(lags[0].unwrap_or(0)),
            n(lag_now.unwrap_or(0))
        ),
        lag_now,
    )
}

/// The group's status: the worst partition's, and whether it counts as ERR.
pub fn group_status(verdicts: &[Verdict]) -> (Status, &'static str) {
    let worst = verdicts
        .iter()
        .map(|v| v.status)
        .max()
        .unwrap_or(Status::Incomplete);
    let label = match worst {
        s if s.is_error() => "ERR",
        Status::Warn | Status::NoOffset => "WARN",
        Status::Incomplete => "INCOMPLETE",
        _ => "OK",
    };
    (worst, label)
}

/// Catch-up estimate from consume and produce rates over the window (summed over the
/// group's partitions: first and last sample of each).
#[derive(Debug, Clone, PartialEq)]
pub enum CatchUp {
    /// Lag is zero.
    CaughtUp,
    /// Seconds to zero at the current rates.
    CatchingUp {
        secs: f64,
        net_rate: f64,
    },
    /// Messages per second the lag grows by.
    FallingBehind {
        rate: f64,
    },
    Steady,
    /// Lag, but nothing consumed or produced in the window.
    NotMoving,
    Unknown,
}

impl CatchUp {
    pub fn sentence(&self) -> String {
        match self {
            CatchUp::CaughtUp => "caught up".into(),
            CatchUp::CatchingUp { secs, .. } => format!(
                "catching up: ~{} to zero at the current rates",
                span((*secs * 1000.0) as i64)
            ),
            CatchUp::FallingBehind { rate } => format!("falling behind by {rate:.0} msg/s"),
            CatchUp::Steady => "lag steady: consuming as fast as producing".into(),
            CatchUp::NotMoving => "not moving: nothing consumed or produced in the window".into(),
            CatchUp::Unknown => "not enough samples for an estimate".into(),
        }
    }
}

/// `first` and `last` are (at_ms, committed, end) summed over the group's partitions.
pub fn catch_up(first: (i64, i64, i64), last: (i64, i64, i64)) -> CatchUp {
    let secs = (last.0 - first.0) as f64 / 1000.0;
    let lag = (last.2 - last.1).max(0);
    if lag <= MARKER_TOLERANCE {
        return CatchUp::CaughtUp;
    }
    if secs <= 0.0 {
        return CatchUp::Unknown;
    }
    let consume = (last.1 - first.1) as f64 / secs;
    let produce = (last.2 - first.2) as f64 / secs;
    let net = consume - produce;
    if consume == 0.0 && produce == 0.0 {
        CatchUp::NotMoving
    } else if net.abs() < 0.01 {
        CatchUp::Steady
    } else if net > 0.0 {
        CatchUp::CatchingUp {
            secs: lag as f64 / net,
            net_rate: net,
        }
    } else {
        CatchUp::FallingBehind { rate: -net }
    }
}

/// Time lag from the log-end history (oldest first, `(at_ms, end_offset)`): when did the
/// log end pass `committed`? Interpolated between the two samples around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeLag {
    /// Seconds behind, interpolated (an estimate).
    Estimated(f64),
    /// At least this many seconds: the committed offset is older than the history, and the
    /// estimate is capped there instead of extrapolated.
    AtLeast(f64),
    CaughtUp,
    Unknown,
}

pub fn time_lag(history: &[(i64, i64)], committed: i64, now_ms: i64) -> TimeLag {
    let Some(&(_, newest_end)) = history.last() else {
        return TimeLag::Unknown;
    };
    if committed >= newest_end {
        return TimeLag::CaughtUp;
    }
    let (first_at, first_end) = history[0];
    if committed < first_end {
        return TimeLag::AtLeast((now_ms - first_at).max(0) as f64 / 1000.0);
    }
    for w in history.windows(2) {
        let ((t0, e0), (t1, e1)) = (w[0], w[1]);
        if committed >= e0 && committed < e1 {
            // The message after `committed` was written between t0 and t1.
            let frac = (committed + 1 - e0) as f64 / (e1 - e0) as f64;
            let at = t0 as f64 + frac.clamp(0.0, 1.0) * (t1 - t0) as f64;
            return TimeLag::Estimated(((now_ms as f64 - at) / 1000.0).max(0.0));
        }
    }
    // committed == an end offset that did not move afterwards.
    TimeLag::CaughtUp
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// A window of samples 30 s apart: `(committed, end)` pairs.
    fn win(points: &[(Option<i64>, i64)]) -> Vec<Sample> {
        points
            .iter()
            .enumerate()
            .map(|(i, (c, e))| Sample {
                at_ms: i as i64 * 30_000,
                committed: *c,
                end: *e,
            })
            .collect()
    }

    fn ctx(owned: bool, last_change_ms: Option<i64>) -> Context {
        Context {
            owned,
            last_change_ms,
            now_ms: 9 * 30_000,
        }
    }

    #[test]
    fn every_rule_in_a_table() {
        let moving_lag_up: Vec<_> = (0..10)
            .map(|i| (Some(1000 + i * 10), 1100 + i * 30))
            .collect();
        let moving_lag_down: Vec<_> = (0..10)
            .map(|i| (Some(1000 + i * 50), 1500 + i * 10))
            .collect();
        let stuck: Vec<_> = (0..10).map(|i| (Some(18_400), 18_500 + i * 237)).collect();
        let caught_once: Vec<_> = (0..10)
            .map(|i| (Some(100 + i * 10), if i == 4 { 140 } else { 150 + i * 10 }))
            .collect();
        let mut rewind: Vec<_> = (0..10).map(|i| (Some(1000 + i * 10), 2000)).collect();
        rewind[6].0 = Some(500);
        let idle_markers: Vec<_> = (0..10).map(|_| (Some(998), 1000)).collect();
        let busy_small_lag: Vec<_> = (0..10)
            .map(|i| (Some(1000 + i * 100), 1002 + i * 100 + i))
            .collect();
        let no_commit: Vec<_> = (0..10).map(|i| (None, 50 + i)).collect();
        type Case<'a> = (&'a str, Vec<(Option<i64>, i64)>, Context, Status, &'a str);
        let cases: Vec<Case> = vec![
            (
                "moving but lag never decreasing",
                moving_lag_up,
                ctx(true, None),
                Status::Warn,
                "WARN: partition 3's consumer is moving (committed +90) but lag grew from 100 to 280 over 10 samples (4 min)",
            ),
            (
                "moving and lag decreasing",
                moving_lag_down,
                ctx(true, None),
                Status::Ok,
                "OK: partition 3 is consuming",
            ),
            (
                "offset unchanged, member alive",
                stuck.clone(),
                ctx(true, Some(-5 * MIN)),
                Status::Stall,
                "STALL: partition 3's committed offset 18,400 unchanged for 10 samples (4 min) while the log end grew by 2,133",
            ),
            (
                "offset unchanged, nobody owns it, quiet longer than the window",
                stuck.clone(),
                ctx(false, Some(-5 * MIN)),
                Status::Stop,
                "STOP: no commit on partition 3 for 10 min (longer than the 4 min window) and no consumer owns it",
            ),
            (
                "offset unchanged, nobody owns it, quiet exactly the window",
                stuck,
                ctx(false, None),
                Status::Stall,
                "STALL",
            ),
            (
                "lag zero once in the window",
                caught_once,
                ctx(true, None),
                Status::Ok,
                "OK: partition 3 was caught up in 1 of 10 samples",
            ),
            (
                "offset went backwards",
                rewind,
                ctx(true, None),
                Status::Rewind,
                "REWIND: partition 3's committed offset went back from 1,050 to 500 (550 messages will be read again)",
            ),
            (
                "idle exactly-once consumer behind commit markers",
                idle_markers,
                ctx(true, None),
                Status::Ok,
                "caught up in 10 of 10",
            ),
            (
                "never committed",
                no_commit,
                ctx(false, None),
                Status::NoOffset,
                "NO_OFFSET: the group has never committed an offset on partition 3 (log end 59)",
            ),
            (
                "busy partition, small real lag still counts",
                busy_small_lag,
                ctx(true, None),
                Status::Warn,
                "WARN",
            ),
        ];
        for (name, points, c, want, reason) in cases {
            let v = evaluate(3, &win(&points), c);
            assert_eq!(v.status, want, "{name}: {}", v.reason);
            assert!(
                v.reason.starts_with(reason) || v.reason.contains(reason),
                "{name}: {}",
                v.reason
            );
        }
    }

    #[test]
    fn an_incomplete_window_is_not_ok_but_rewind_shows_at_once() {
        let v = evaluate(
            0,
            &win(&[(Some(10), 100), (Some(10), 200)]),
            ctx(false, None),
        );
        assert_eq!(v.status, Status::Incomplete);
        assert!(v.reason.contains("only 2 of 10 samples"));
        let v = evaluate(0, &win(&[(Some(10), 100), (Some(5), 200)]), ctx(true, None));
        assert_eq!(v.status, Status::Rewind);
        assert_eq!(evaluate(0, &[], ctx(true, None)).status, Status::Incomplete);
    }

    #[test]
    fn burrow_mistake_warn_fires_with_frequent_commits() {
        // Consumers commit every few hundred ms; the window is samples 30 s apart, so the
        // trend over 4.5 minutes is what counts — lag rises at every sample.
        let points: Vec<_> = (0..10)
            .map(|i| (Some(10_000 + i * 1_000), 10_500 + i * 1_400))
            .collect();
        let v = evaluate(1, &win(&points), ctx(true, None));
        assert_eq!(v.status, Status::Warn, "{}", v.reason);
    }

    #[test]
    fn burrow_mistake_stopped_partition_lag_is_current() {
        // Stopped at offset 500 while the log end keeps growing: the lag reported is the
        // newest (end − committed), not the lag at the last commit.
        let points: Vec<_> = (0..10).map(|i| (Some(500), 600 + i * 100)).collect();
        let v = evaluate(2, &win(&points), ctx(false, Some(-10 * MIN)));
        assert_eq!(v.status, Status::Stop);
        assert_eq!(v.lag, Some(1000));
        assert!(v.reason.contains("lag 1,000"), "{}", v.reason);
    }

    #[test]
    fn group_status_is_the_worst_partition() {
        let mk = |s| Verdict {
            partition: 0,
            status: s,
            reason: String::new(),
            lag: None,
        };
        assert_eq!(
            group_status(&[mk(Status::Ok), mk(Status::Warn)]),
            (Status::Warn, "WARN")
        );
        assert_eq!(
            group_status(&[mk(Status::Ok), mk(Status::Stall), mk(Status::Warn)]),
            (Status::Stall, "ERR")
        );
        assert_eq!(
            group_status(&[mk(Status::Rewind), mk(Status::Stop)]).1,
            "ERR"
        );
        assert_eq!(
            group_status(&[mk(Status::Ok), mk(Status::Ok)]),
            (Status::Ok, "OK")
        );
        assert_eq!(
            group_status(&[mk(Status::Ok), mk(Status::Incomplete)]),
            (Status::Incomplete, "INCOMPLETE")
        );
        assert_eq!(group_status(&[]).1, "INCOMPLETE");
    }

    #[test]
    fn catch_up_estimates() {
        // Consuming 200/s, producing 100/s, 84,000 behind → 14 min.
        let c = catch_up((0, 0, 84_000), (60_000, 12_000, 90_000));
        match c {
            CatchUp::CatchingUp { secs, .. } => assert!((secs - 780.0).abs() < 1.0, "{secs}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.sentence(),
            "catching up: ~13 min to zero at the current rates"
        );
        assert_eq!(
            catch_up((0, 0, 1000), (10_000, 0, 2200)).sentence(),
            "falling behind by 120 msg/s"
        );
        assert_eq!(
            catch_up((0, 100, 101), (10_000, 200, 201)),
            CatchUp::CaughtUp
        );
        assert_eq!(catch_up((0, 0, 500), (10_000, 100, 600)), CatchUp::Steady);
        assert_eq!(catch_up((0, 0, 500), (10_000, 0, 500)), CatchUp::NotMoving);
        assert_eq!(catch_up((0, 0, 500), (0, 0, 500)), CatchUp::Unknown);
    }

    #[test]
    fn time_lag_interpolates_and_never_extrapolates() {
        let h = [(0, 100), (60_000, 700), (120_000, 1300)];
        // Offset 399: the next message (400) was written half-way through the first minute.
        match time_lag(&h, 399, 120_000) {
            TimeLag::Estimated(s) => assert!((s - 90.0).abs() < 0.5, "{s}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(time_lag(&h, 1300, 120_000), TimeLag::CaughtUp);
        assert_eq!(time_lag(&h, 5, 120_000), TimeLag::AtLeast(120.0));
        assert_eq!(time_lag(&[], 5, 0), TimeLag::Unknown);
    }

    #[test]
    fn numbers_and_spans_for_people() {
        assert_eq!(n(18_400), "18,400");
        assert_eq!(n(-2_130), "-2,130");
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(5 * MIN), "5 min");
        assert_eq!(span(150 * MIN), "2.5 h");
    }
}
