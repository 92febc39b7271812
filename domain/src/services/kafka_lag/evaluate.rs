//! The pure evaluation of a round: the samples of the last [`rules::WINDOW`] rounds and the
//! state the previous round left in; each partition's Burrow-style verdict, its time lag
//! (exact from the record at the committed offset, estimated from the stored log-end
//! history, or "at least" when older than the history), the group's state and its signs
//! (rebalances, dead letters) out. The I/O around it (reading the window and the history,
//! writing the states) is `round::evaluate_groups`; nothing here touches a database, so
//! every step is table-tested.

use super::ms;
use crate::error::{DomainError, DomainResult};
use crate::kafka::{KafkaMember, PartitionState};
use crate::storage::kafka_lag::{GroupRows, HistRow, Lookups, WindowSample};
use probes::kafka::lag::{GroupSnap, Snapshot};
use probes::kafka::rules::{self, Context, Sample, TimeLag};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The write time (ms) of the record at a committed offset, by ((topic, partition), offset).
pub(super) type Exact = HashMap<((String, i32), i64), i64>;

/// What the sampler carries per group from round to round besides the verdicts.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Signs {
    /// The member ids at the last round, sorted.
    #[serde(default)]
    pub(super) member_ids: Vec<String>,
    /// The group epoch at the last round (consumer protocol).
    #[serde(default)]
    pub(super) generation: Option<i32>,
    /// When a rebalance was seen (ms), the last 20.
    #[serde(default)]
    pub(super) rebalances: Vec<i64>,
    /// The group was rebalancing at the last round (one rebalance is counted once however
    /// many rounds catch it).
    #[serde(default)]
    pub(super) rebalancing: bool,
    /// Messages per dead-letter topic at the last round.
    #[serde(default)]
    pub(super) dlq: BTreeMap<String, i64>,
    /// The same, as the pages show it.
    #[serde(default)]
    pub(super) dlq_view: Vec<crate::kafka::DlqState>,
}

impl Signs {
    /// This round's signs from the previous ones: a rebalance when the member set changed
    /// (members joined, left or were replaced — a new generation) or the group is caught
    /// rebalancing; each DLQ's size and growth since the previous round.
    pub(super) fn next(prev: Option<&Signs>, g: &GroupSnap, s: &Snapshot) -> Signs {
        let mut ids: Vec<String> = g.members.iter().map(|m| m.id.clone()).collect();
        ids.sort();
        let mut rebalances = prev.map(|p| p.rebalances.clone()).unwrap_or_default();
        // A new generation: other members, or (consumer protocol) another group epoch.
        let changed = prev.is_some_and(|p| {
            p.member_ids != ids || (g.generation.is_some() && p.generation != g.generation)
        });
        let rebalancing = g.is_rebalancing();
        let new_rebalance = rebalancing && !prev.is_some_and(|p| p.rebalancing);
        if changed || new_rebalance {
            rebalances.push(s.at_ms);
            let n = rebalances.len();
            if n > 20 {
                rebalances.drain(..n - 20);
            }
        }
        let read: std::collections::BTreeSet<&String> =
            g.committed.keys().map(|(t, _)| t).collect();
        let mut dlq = BTreeMap::new();
        let mut dlq_view = vec![];
        for source in read {
            for d in s.dlq.get(source).into_iter().flatten() {
                let parts = s.topics.get(d).copied().unwrap_or(0);
                let messages: i64 = (0..parts)
                    .filter_map(|p| s.offsets.get(&(d.clone(), p)))
                    .map(|(start, end)| (end - start).max(0))
                    .sum();
                let growth = prev
                    .and_then(|p| p.dlq.get(d))
                    .map(|before| messages - before);
                dlq.insert(d.clone(), messages);
                dlq_view.push(crate::kafka::DlqState {
                    topic: d.clone(),
                    source: source.clone(),
                    messages,
                    growth,
                });
            }
        }
        Signs {
            member_ids: ids,
            generation: g.generation,
            rebalances,
            rebalancing,
            dlq,
            dlq_view,
        }
    }
}

/// A group's evaluation, for the alert policy.
pub(super) struct Evaluated {
    pub(super) name: String,
    pub(super) label: &'static str,
    /// 0 OK, 1 INCOMPLETE, 2 WARN, 3 ERR.
    pub(super) rank: i16,
    pub(super) worst: String,
    pub(super) reason: String,
    pub(super) total: i64,
}

/// Key of one partition of one group.
pub(super) type GroupTp = (String, String, i32);

/// What the previous round left per group: its partition states and its signs.
#[derive(Default)]
pub(super) struct Previous {
    pub(super) states: HashMap<String, Vec<PartitionState>>,
    pub(super) signs: HashMap<String, Signs>,
}

/// Each partition's window, oldest sample first.
pub(super) fn windows(rows: Vec<WindowSample>) -> HashMap<GroupTp, Vec<Sample>> {
    let mut windows: HashMap<GroupTp, Vec<Sample>> = HashMap::new();
    for (g, t, p, at, committed, end) in rows {
        windows.entry((g, t, p)).or_default().push(Sample {
            at_ms: ms(at),
            committed,
            end,
        });
    }
    windows
}

/// Since when each committed offset has had its value (ms): carried from the previous
/// state when it tracked it (the value unchanged: the carried time; changed: now); a new
/// group or partition starts now. The rest (states written before the carry existed) must
/// be searched in the history: returned as lookups.
pub(super) fn carry_since(
    s: &Snapshot,
    prev: &Previous,
) -> (HashMap<GroupTp, Option<i64>>, Lookups) {
    let now = s.at_ms;
    let mut since: HashMap<GroupTp, Option<i64>> = HashMap::new();
    let mut lookups = Lookups::default();
    for g in &s.groups {
        let before: HashMap<(&str, i32), &PartitionState> = prev
            .states
            .get(&g.name)
            .map(|v| {
                v.iter()
                    .map(|p| ((p.topic.as_str(), p.partition), p))
                    .collect()
            })
            .unwrap_or_default();
        let carried = prev
            .states
            .get(&g.name)
            .is_none_or(|v| v.iter().any(|p| p.tracked));
        for ((topic, part), committed) in &g.committed {
            let key = (g.name.clone(), topic.clone(), *part);
            match before.get(&(topic.as_str(), *part)) {
                Some(p) if p.tracked => {
                    let v = if p.committed == *committed {
                        p.committed_since_ms
                    } else {
                        Some(now)
                    };
                    since.insert(key, v);
                }
                // A new group or partition: its history begins now (the first sample is
                // the first time its committed value was seen).
                None if carried => {
                    since.insert(key, Some(now));
                }
                _ => lookups.push(&g.name, topic, *part, committed.unwrap_or(-1)),
            }
        }
    }
    (since, lookups)
}

/// One partition's verdict and what its state is made of.
pub(super) struct Part<'a> {
    tp: &'a (String, i32),
    committed: Option<i64>,
    since: Option<i64>,
    v: rules::Verdict,
    window: Vec<Sample>,
}

/// Every partition's verdict over its window (groups in snapshot order), and the lagging
/// partitions without an exact time whose time lag needs the history (as lookups).
pub(super) fn judge<'a>(
    s: &'a Snapshot,
    mut windows: HashMap<GroupTp, Vec<Sample>>,
    since: &HashMap<GroupTp, Option<i64>>,
    exact: &Exact,
) -> (Vec<Vec<Part<'a>>>, Lookups) {
    let now = s.at_ms;
    let mut judged: Vec<Vec<Part>> = Vec::with_capacity(s.groups.len());
    let mut lookups = Lookups::default();
    for g in &s.groups {
        let owned: BTreeSet<&(String, i32)> = if g.state == "Stable" {
            g.members.iter().flat_map(|m| m.parts.iter()).collect()
        } else {
            Default::default()
        };
        let mut parts = Vec::with_capacity(g.committed.len());
        for (tp, committed) in &g.committed {
            let key = (g.name.clone(), tp.0.clone(), tp.1);
            let window = windows.remove(&key).unwrap_or_default();
            let last_change = since.get(&key).copied().flatten();
            let v = rules::evaluate(
                tp.1,
                &window,
                Context {
                    owned: owned.contains(tp),
                    last_change_ms: last_change,
                    now_ms: now,
                },
            );
            if let Some(c) = committed
                && v.lag.unwrap_or(0) > 0
                && !exact.contains_key(&(tp.clone(), *c))
            {
                lookups.push(&g.name, &tp.0, tp.1, *c);
            }
            parts.push(Part {
                tp,
                committed: *committed,
                since: last_change,
                v,
                window,
            });
        }
        judged.push(parts);
    }
    (judged, lookups)
}

/// A partition's time lag in seconds and how it is known (`exact`, `estimated`,
/// `at_least`), or unknown.
fn time_lag(
    now: i64,
    committed: Option<i64>,
    lag: Option<i64>,
    exact: Option<&i64>,
    hist: Option<&HistRow>,
) -> (Option<f64>, Option<&'static str>) {
    let tl = match committed {
        None => TimeLag::Unknown,
        // Caught up (commit markers discounted).
        Some(_) if lag.unwrap_or(0) == 0 => TimeLag::CaughtUp,
        Some(c) => match hist {
            None => TimeLag::Unknown,
            // Older than the history: never extrapolate, cap at its start.
            Some(h) if h.a_at.is_none() && h.b_at.is_some() => TimeLag::AtLeast(
                h.first_at
                    .map(|f| (now - ms(f)) as f64 / 1000.0)
                    .unwrap_or(0.0),
            ),
            Some(h) => {
                let mut history = vec![];
                if let (Some(at), Some(e)) = (h.a_at, h.a_end) {
                    history.push((ms(at), e));
                }
                if let (Some(at), Some(e)) = (h.b_at, h.b_end) {
                    history.push((ms(at), e));
                }
                rules::time_lag(&history, c, now)
            }
        },
    };
    match (exact, tl) {
        // The record at the committed offset says when it was written: exact.
        (Some(t), _) if lag.unwrap_or(0) > 0 => {
            (Some(((now - t) as f64 / 1000.0).max(0.0)), Some("exact"))
        }
        (_, TimeLag::Estimated(x)) => (Some(x), Some("estimated")),
        (_, TimeLag::AtLeast(x)) => (Some(x), Some("at_least")),
        (_, TimeLag::CaughtUp) => (Some(0.0), Some("estimated")),
        (_, TimeLag::Unknown) => (None, None),
    }
}

/// The groups' states (one row each, to store) and their evaluations (for the alerts).
pub(super) fn states(
    s: &Snapshot,
    judged: Vec<Vec<Part>>,
    hist: &HashMap<GroupTp, HistRow>,
    prev: &Previous,
    exact: &Exact,
) -> DomainResult<(GroupRows, Vec<Evaluated>)> {
    let now = s.at_ms;
    let mut out = Vec::with_capacity(s.groups.len());
    let mut rows = GroupRows::default();
    for (g, parts) in s.groups.iter().zip(judged) {
        let mut verdicts = vec![];
        let mut states = vec![];
        let (mut total, mut first_sum, mut last_sum) =
            (0i64, (0i64, 0i64, 0i64), (0i64, 0i64, 0i64));
        let mut worst_time: Option<(f64, &'static str)> = None;
        for p in parts {
            let tp = p.tp;
            let v = p.v;
            let (start, end) = s.offsets.get(tp).copied().unwrap_or((0, 0));
            if let Some(l) = v.lag {
                total += l;
            }
            if let (Some(f), Some(l)) = (p.window.first(), p.window.last())
                && let (Some(fc), Some(lc)) = (f.committed, l.committed)
            {
                first_sum = (f.at_ms, first_sum.1 + fc, first_sum.2 + f.end);
                last_sum = (l.at_ms, last_sum.1 + lc, last_sum.2 + l.end);
            }
            let (tls, tlk) = time_lag(
                now,
                p.committed,
                v.lag,
                p.committed.and_then(|c| exact.get(&(tp.clone(), c))),
                hist.get(&(g.name.clone(), tp.0.clone(), tp.1)),
            );
            if let (Some(x), Some(k)) = (tls, tlk)
                && worst_time.is_none_or(|(w, _)| x > w)
            {
                worst_time = Some((x, k));
            }
            states.push(PartitionState {
                topic: tp.0.clone(),
                partition: tp.1,
                status: v.status.as_str().to_string(),
                reason: v.reason.clone(),
                committed: p.committed,
                end,
                start,
                lag: v.lag,
                time_lag_s: tls,
                time_lag_kind: tlk.map(str::to_string),
                committed_since_ms: p.since,
                tracked: true,
            });
            verdicts.push(v);
        }
        let (worst, label) = rules::group_status(&verdicts);
        let reason = verdicts
            .iter()
            .find(|v| v.status == worst)
            .map(|v| v.reason.clone())
            .unwrap_or_else(|| "no partitions".into());
        let members: Vec<KafkaMember> = g
            .members
            .iter()
            .map(|m| KafkaMember {
                id: m.id.clone(),
                client_id: m.client_id.clone(),
                host: m.host.clone(),
                parts: m.parts.clone(),
            })
            .collect();
        let rank = super::read::rank_of_status(label);
        rows.name.push(g.name.clone());
        rows.state.push(g.state.clone());
        rows.protocol.push(g.protocol.clone());
        rows.members
            .push(serde_json::to_value(&members).map_err(DomainError::internal)?);
        rows.partitions.push(g.committed.len() as i32);
        rows.total.push(total);
        rows.time_lag.push(worst_time.map(|w| w.0));
        rows.time_kind.push(worst_time.map(|w| w.1.to_string()));
        rows.status.push(label.to_string());
        rows.worst.push(worst.as_str().to_string());
        rows.reason.push(reason.clone());
        rows.catch_up
            .push(rules::catch_up(first_sum, last_sum).sentence());
        rows.verdicts
            .push(serde_json::to_value(&states).map_err(DomainError::internal)?);
        rows.rank.push(rank);
        rows.member_count.push(g.members.len() as i32);
        rows.signs.push(
            serde_json::to_value(Signs::next(prev.signs.get(&g.name), g, s))
                .map_err(DomainError::internal)?,
        );
        out.push(Evaluated {
            name: g.name.clone(),
            label,
            rank,
            worst: worst.as_str().to_string(),
            reason,
            total,
        });
    }
    Ok((rows, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::kafka::lag::Member;

    fn group(state: &str, members: &[&str]) -> GroupSnap {
        GroupSnap {
            name: "g".into(),
            state: state.into(),
            protocol: "range".into(),
            members: members
                .iter()
                .map(|id| Member {
                    id: id.to_string(),
                    client_id: "c".into(),
                    host: "/h".into(),
                    parts: vec![],
                })
                .collect(),
            committed: [(("orders".to_string(), 0), Some(5))].into_iter().collect(),
            generation: None,
        }
    }

    fn snap(at_ms: i64, dlq_end: i64) -> Snapshot {
        Snapshot {
            at_ms,
            groups: vec![],
            offsets: [
                (("orders".to_string(), 0), (0, 10)),
                (("orders.dlq".to_string(), 0), (2, dlq_end)),
            ]
            .into_iter()
            .collect(),
            topics: [("orders".to_string(), 1), ("orders.dlq".to_string(), 1)]
                .into_iter()
                .collect(),
            dlq: [("orders".to_string(), vec!["orders.dlq".to_string()])]
                .into_iter()
                .collect(),
            requests: 0,
        }
    }

    fn state(
        partition: i32,
        committed: Option<i64>,
        since: Option<i64>,
        tracked: bool,
    ) -> PartitionState {
        PartitionState {
            topic: "orders".into(),
            partition,
            status: "OK".into(),
            reason: String::new(),
            committed,
            end: 10,
            start: 0,
            lag: Some(0),
            time_lag_s: None,
            time_lag_kind: None,
            committed_since_ms: since,
            tracked,
        }
    }

    /// A snapshot at `now` of group `g` reading orders/0..n with these committed offsets
    /// (log end 100 everywhere).
    fn round(now: i64, committed: &[Option<i64>]) -> Snapshot {
        let mut g = group("Stable", &["a"]);
        g.committed = committed
            .iter()
            .enumerate()
            .map(|(p, c)| (("orders".to_string(), p as i32), *c))
            .collect();
        g.members[0].parts = g.committed.keys().cloned().collect();
        let mut s = snap(now, 2);
        s.offsets = (0..committed.len() as i32)
            .map(|p| (("orders".to_string(), p), (0, 100)))
            .collect();
        s.groups = vec![g];
        s
    }

    #[test]
    fn committed_since_is_carried_or_looked_up() {
        let now = 1_000_000;
        let s = round(now, &[Some(5), Some(7), Some(9)]);
        let key = |p: i32| ("g".to_string(), "orders".to_string(), p);
        // No previous state: a new group, its history begins now.
        let (since, l) = carry_since(&s, &Previous::default());
        assert!(l.is_empty());
        assert!((0..3).all(|p| since[&key(p)] == Some(now)));
        // Tracked: unchanged keeps its time, changed starts now, a new partition starts now.
        let mut prev = Previous::default();
        prev.states.insert(
            "g".into(),
            vec![
                state(0, Some(5), Some(400), true),
                state(1, Some(6), Some(400), true),
            ],
        );
        let (since, l) = carry_since(&s, &prev);
        assert!(l.is_empty());
        assert_eq!(
            (since[&key(0)], since[&key(1)], since[&key(2)]),
            (Some(400), Some(now), Some(now))
        );
        // Written before the carry existed: every partition is looked up in the history
        // (no committed offset is looked up as -1).
        prev.states
            .insert("g".into(), vec![state(0, Some(5), None, false)]);
        let s = round(now, &[Some(5), None]);
        let (since, l) = carry_since(&s, &prev);
        assert!(since.is_empty());
        assert_eq!(
            (l.partition.clone(), l.committed.clone()),
            (vec![0, 1], vec![5, -1])
        );
    }

    #[test]
    fn lagging_partitions_without_an_exact_time_need_the_history() {
        let now = 1_000_000;
        // orders/0 lags (5 of 100), orders/1 is caught up, orders/2 lags with an exact time.
        let s = round(now, &[Some(5), Some(100), Some(50)]);
        let windows: HashMap<GroupTp, Vec<Sample>> = (0..3)
            .map(|p| {
                let c = s.groups[0].committed[&("orders".to_string(), p)];
                let w = (0..rules::WINDOW as i64)
                    .map(|i| Sample {
                        at_ms: now - (9 - i) * 30_000,
                        committed: c,
                        end: 100,
                    })
                    .collect();
                (("g".to_string(), "orders".to_string(), p), w)
            })
            .collect();
        let exact: Exact = [((("orders".to_string(), 2), 50), now - 42_000)]
            .into_iter()
            .collect();
        let (since, _) = carry_since(&s, &Previous::default());
        let (judged, l) = judge(&s, windows, &since, &exact);
        assert_eq!(
            l.partition,
            vec![0],
            "only the lagging one without an exact time"
        );
        assert_eq!(
            judged[0].iter().map(|p| p.v.lag).collect::<Vec<_>>(),
            vec![Some(95), Some(0), Some(50)]
        );
        let (rows, ev) = states(&s, judged, &HashMap::new(), &Previous::default(), &exact).unwrap();
        // The group's worst time lag is the exact one (orders/0's is unknown without history).
        assert_eq!(rows.time_lag, vec![Some(42.0)]);
        assert_eq!(rows.time_kind, vec![Some("exact".to_string())]);
        assert_eq!(rows.total, vec![145]);
        assert_eq!(
            (ev[0].total, ev[0].rank),
            (145, super::super::read::rank_of_status(ev[0].label))
        );
        assert_eq!(rows.name, vec!["g".to_string()]);
        let verdicts: Vec<PartitionState> =
            serde_json::from_value(rows.verdicts[0].clone()).unwrap();
        assert!(
            verdicts
                .iter()
                .all(|v| v.tracked && v.committed_since_ms == Some(now))
        );
    }

    #[test]
    fn time_lag_per_source() {
        let now = 10_000_000;
        let t = |ms: i64| super::super::ts(ms);
        let hist = |a: Option<(i64, i64)>, b: Option<(i64, i64)>, first: i64| HistRow {
            a_at: a.map(|x| t(x.0)),
            a_end: a.map(|x| x.1),
            b_at: b.map(|x| t(x.0)),
            b_end: b.map(|x| x.1),
            first_at: Some(t(first)),
            ..HistRow::default()
        };
        let older = hist(None, Some((now - 50_000, 80)), now - 600_000);
        let between = hist(
            Some((now - 60_000, 40)),
            Some((now - 30_000, 60)),
            now - 600_000,
        );
        for (committed, lag, exact, h, want) in [
            (None, None, None, None, (None, None)),
            (
                Some(100),
                Some(0),
                None,
                None,
                (Some(0.0), Some("estimated")),
            ),
            (
                Some(50),
                Some(50),
                Some(now - 42_000),
                None,
                (Some(42.0), Some("exact")),
            ),
            // An exact time in the future (clock skew) is 0, not negative.
            (
                Some(50),
                Some(50),
                Some(now + 5_000),
                None,
                (Some(0.0), Some("exact")),
            ),
            (Some(50), Some(50), None, None, (None, None)),
            (
                Some(50),
                Some(50),
                None,
                Some(&older),
                (Some(600.0), Some("at_least")),
            ),
            // 49 of 40..60: the next message was written 10/20 of the way from -60 s to -30 s.
            (
                Some(49),
                Some(51),
                None,
                Some(&between),
                (Some(45.0), Some("estimated")),
            ),
        ] {
            assert_eq!(
                time_lag(now, committed, lag, exact.as_ref(), h),
                want,
                "{committed:?} {lag:?} {exact:?}"
            );
        }
    }

    #[test]
    fn rebalances_count_once_and_dead_letters_grow() {
        let s1 = Signs::next(None, &group("Stable", &["a"]), &snap(1_000, 2));
        assert!(
            s1.rebalances.is_empty(),
            "the first round has nothing to compare"
        );
        assert_eq!(s1.dlq_view[0].messages, 0);
        assert_eq!(s1.dlq_view[0].growth, None);
        // Caught rebalancing in two rounds in a row: one rebalance.
        let s2 = Signs::next(
            Some(&s1),
            &group("PreparingRebalance", &["a"]),
            &snap(2_000, 7),
        );
        let s3 = Signs::next(
            Some(&s2),
            &group("CompletingRebalance", &["a"]),
            &snap(3_000, 9),
        );
        assert_eq!(s3.rebalances, vec![2_000]);
        assert_eq!(
            (s2.dlq_view[0].messages, s2.dlq_view[0].growth),
            (5, Some(5))
        );
        assert_eq!(s3.dlq_view[0].growth, Some(2));
        // A member replaced (same count, new id): a new generation.
        let s4 = Signs::next(Some(&s3), &group("Stable", &["b"]), &snap(4_000, 9));
        assert_eq!(s4.rebalances, vec![2_000, 4_000]);
        let s5 = Signs::next(Some(&s4), &group("Stable", &["b"]), &snap(5_000, 9));
        assert_eq!(s5.rebalances.len(), 2, "unchanged members: no rebalance");
        // Consumer protocol: another group epoch with the same members is a new generation.
        let mut e1 = group("Stable", &["b"]);
        e1.generation = Some(3);
        let s6 = Signs::next(Some(&s5), &e1, &snap(6_000, 9));
        assert_eq!(s6.rebalances.len(), 3, "the first epoch seen after none");
        let s7 = Signs::next(Some(&s6), &e1, &snap(7_000, 9));
        assert_eq!(s7.rebalances.len(), 3, "same epoch: nothing");
        let mut e2 = group("Stable", &["b"]);
        e2.generation = Some(4);
        let s8 = Signs::next(Some(&s7), &e2, &snap(8_000, 9));
        assert_eq!(s8.rebalances.last(), Some(&8_000));
        // Only the last 20 are kept.
        let mut s = s8;
        for i in 0..30 {
            let id = format!("m{i}");
            s = Signs::next(Some(&s), &group("Stable", &[&id]), &snap(10_000 + i, 9));
        }
        assert_eq!(s.rebalances.len(), 20);
        assert_eq!(s.rebalances.last(), Some(&10_029));
    }
}
