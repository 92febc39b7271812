//! Where a trace spent its time: the critical path, its time by category, each span's self
//! time, and the patterns worth a finding (N+1 queries, sequential calls that could run in
//! parallel, retries, errors, broken context propagation). Pure: spans in, analysis out —
//! the same code whether the trace came from Jaeger or Tempo.

use std::collections::{BTreeMap, HashMap};

/// One span, times in microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Span {
    pub span_id: String,
    pub parent_id: Option<String>,
    pub trace_id: String,
    pub service: String,
    pub name: String,
    /// `client`, `server`, `producer`, `consumer`, `internal` (or empty).
    pub kind: String,
    pub start: i64,
    pub duration: i64,
    pub error: bool,
    pub attrs: BTreeMap<String, String>,
}

impl Span {
    pub fn end(&self) -> i64 {
        self.start + self.duration.max(0)
    }
}

/// What a span's time counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Database,
    Llm,
    Http,
    Messaging,
    /// The service's own code (server and internal spans' self time).
    Own,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Database => "database",
            Category::Llm => "LLM",
            Category::Http => "outbound HTTP/gRPC",
            Category::Messaging => "messaging",
            Category::Own => "own code",
        }
    }
    pub const ALL: [Category; 5] = [
        Category::Database,
        Category::Llm,
        Category::Http,
        Category::Messaging,
        Category::Own,
    ];
}

/// A span's category from its attributes (OpenTelemetry semantic conventions, old and new
/// names): `db.system`/`db.system.name` → database; any `gen_ai.*` → LLM;
/// `messaging.system` → messaging; a client span with an HTTP or RPC attribute → outbound;
/// anything else → the service's own code.
pub fn category(s: &Span) -> Category {
    let has = |k: &str| s.attrs.contains_key(k);
    if has("db.system") || has("db.system.name") {
        Category::Database
    } else if s.attrs.keys().any(|k| k.starts_with("gen_ai.")) {
        Category::Llm
    } else if has("messaging.system") {
        Category::Messaging
    } else if s.kind == "client"
        && (has("http.request.method")
            || has("http.method")
            || has("rpc.system")
            || has("url.full")
            || has("http.url")
            || has("server.address"))
    {
        Category::Http
    } else {
        Category::Own
    }
}

/// A stretch of the critical path: `span` (an index) was the one working from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub span: usize,
    pub from: i64,
    pub to: i64,
}

/// A trace made ready for analysis: spans, children by parent, the root.
pub struct Tree<'a> {
    pub spans: &'a [Span],
    pub children: Vec<Vec<usize>>,
    /// Spans whose parent is not in the trace (a root, or an orphan).
    pub tops: Vec<usize>,
    pub root: Option<usize>,
}

pub fn tree(spans: &[Span]) -> Tree<'_> {
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children = vec![vec![]; spans.len()];
    let mut tops = vec![];
    for (i, s) in spans.iter().enumerate() {
        match s.parent_id.as_deref().and_then(|p| index.get(p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => tops.push(i),
        }
    }
    // The root: a top without a parent id, the longest if several; else the longest top.
    let root = tops
        .iter()
        .copied()
        .filter(|&i| spans[i].parent_id.as_deref().is_none_or(str::is_empty))
        .max_by_key(|&i| (spans[i].duration, std::cmp::Reverse(spans[i].start)))
        .or_else(|| tops.iter().copied().max_by_key(|&i| spans[i].duration));
    Tree {
        spans,
        children,
        tops,
        root,
    }
}

/// The critical path under `root`: the chain of work that decided when it ended. From the
/// end backwards, the child that finished last before the cursor was what the parent waited
/// for; the time no child covered is the parent's own. Iterative (deep traces cannot
/// overflow the stack) and linear in the spans after sorting each span's children.
pub fn critical_path(t: &Tree<'_>, root: usize) -> Vec<Segment> {
    let spans = t.spans;
    let mut out = vec![];
    // Children of each span sorted by end, latest first (once per span).
    let mut sorted: HashMap<usize, Vec<usize>> = HashMap::new();
    // (span, cursor, next child to look at, floor): the span is walked backwards from the
    // cursor down to the floor (its start, or its parent's when the child started earlier).
    let mut frames: Vec<(usize, i64, usize, i64)> =
        vec![(root, spans[root].end(), 0, spans[root].start)];
    while let Some(&(s, cur, next, floor)) = frames.last() {
        let kids = sorted.entry(s).or_insert_with(|| {
            let mut k = t.children[s].clone();
            k.sort_by_key(|&c| std::cmp::Reverse(spans[c].end()));
            k
        });
        // The next child still running before the cursor.
        let mut i = next;
        let mut picked = None;
        while i < kids.len() {
            let c = kids[i];
            i += 1;
            if spans[c].start < cur && spans[c].end() > floor {
                picked = Some(c);
                break;
            }
        }
        match picked {
            Some(c) => {
                let c_end = spans[c].end().min(cur);
                if cur > c_end {
                    out.push(Segment {
                        span: s,
                        from: c_end,
                        to: cur,
                    });
                }
                let c_floor = spans[c].start.max(floor);
                if let Some(f) = frames.last_mut() {
                    *f = (s, c_floor, i, floor);
                }
                // Walk the child now (depth first), then come back to `s`.
                frames.push((c, c_end, 0, c_floor));
            }
            None => {
                if cur > floor {
                    out.push(Segment {
                        span: s,
                        from: floor,
                        to: cur,
                    });
                }
                frames.pop();
            }
        }
    }
    out.sort_by_key(|g| g.from);
    out
}

/// Each span's self time: its duration minus the union of its children's (clipped to it).
pub fn self_times(t: &Tree<'_>) -> Vec<i64> {
    t.spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut iv: Vec<(i64, i64)> = t.children[i]
                .iter()
                .map(|&c| (t.spans[c].start.max(s.start), t.spans[c].end().min(s.end())))
                .filter(|(a, b)| b > a)
                .collect();
            iv.sort();
            let mut covered = 0;
            let mut cur: Option<(i64, i64)> = None;
            for (a, b) in iv {
                match cur {
                    Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
                    Some((ca, cb)) => {
                        covered += cb - ca;
                        cur = Some((a, b));
                    }
                    None => cur = Some((a, b)),
                }
            }
            if let Some((a, b)) = cur {
                covered += b - a;
            }
            (s.duration - covered).max(0)
        })
        .collect()
}

/// Microseconds on the critical path by category.
pub fn by_category(t: &Tree<'_>, path: &[Segment]) -> BTreeMap<Category, i64> {
    let mut out = BTreeMap::new();
    for g in path {
        *out.entry(category(&t.spans[g.span])).or_insert(0) += g.to - g.from;
    }
    out
}

/// A SQL statement's shape: literals (numbers, quoted strings) and `IN (…)` lists replaced
/// by `?`, whitespace folded, so the same query with other values is the same shape.
pub fn statement_shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            // A quoted string ('' inside is a quote).
            while let Some(d) = chars.next() {
                if d == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        continue;
                    }
                    break;
                }
            }
            out.push('?');
            prev_word = false;
        } else if c.is_ascii_digit() && !prev_word {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
            out.push('?');
        } else if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('?');
            prev_word = false;
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            prev_word = false;
        } else {
            out.push(c);
            prev_word = c.is_alphanumeric() || c == '_';
        }
    }
    // `IN (?, ?, ?)` → `IN (?)`
    let mut s = out.trim().to_string();
    while let Some(i) = s.find("?, ?") {
        s.replace_range(i..i + 4, "?");
    }
    while let Some(i) = s.find("?,?") {
        s.replace_range(i..i + 3, "?");
    }
    s
}

/// The statement of a database span (`db.query.text`, `db.statement`), if any.
pub fn statement(s: &Span) -> Option<&str> {
    s.attrs
        .get("db.query.text")
        .or_else(|| s.attrs.get("db.statement"))
        .map(String::as_str)
}

/// N+1: under one parent, the same statement shape run at least `min` times. Returns
/// (parent, shape, count, total µs) for each.
pub fn n_plus_one(t: &Tree<'_>, min: usize) -> Vec<(usize, String, usize, i64)> {
    let mut out = vec![];
    for (p, kids) in t.children.iter().enumerate() {
        let mut shapes: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        for &c in kids {
            if let Some(sql) = statement(&t.spans[c]) {
                let e = shapes.entry(statement_shape(sql)).or_insert((0, 0));
                e.0 += 1;
                e.1 += t.spans[c].duration;
            }
        }
        for (shape, (n, total)) in shapes {
            if n >= min {
                out.push((p, shape, n, total));
            }
        }
    }
    out.sort_by_key(|x| std::cmp::Reverse(x.3));
    out
}

/// Sequential calls: under one parent, at least `min` outbound calls (database, LLM, HTTP,
/// messaging) of which none overlaps another, together at least `share` of the parent —
/// candidates to run in parallel. Returns (parent, calls, their total µs, the longest µs):
/// run in parallel they would take about the longest.
pub fn sequential(t: &Tree<'_>, min: usize, share: f64) -> Vec<(usize, Vec<usize>, i64, i64)> {
    let mut out = vec![];
    for (p, kids) in t.children.iter().enumerate() {
        let mut calls: Vec<usize> = kids
            .iter()
            .copied()
            .filter(|&c| category(&t.spans[c]) != Category::Own)
            .collect();
        if calls.len() < min {
            continue;
        }
        calls.sort_by_key(|&c| t.spans[c].start);
        let disjoint = calls
            .windows(2)
            .all(|w| t.spans[w[0]].end() <= t.spans[w[1]].start);
        if !disjoint {
            continue;
        }
        // The same statement shape again and again is N+1, reported as such.
        let shapes: std::collections::BTreeSet<String> = calls
            .iter()
            .map(|&c| {
                statement(&t.spans[c])
                    .map(statement_shape)
                    .unwrap_or_else(|| t.spans[c].name.clone())
            })
            .collect();
        if shapes.len() < min {
            continue;
        }
        let total: i64 = calls.iter().map(|&c| t.spans[c].duration).sum();
        let longest = calls
            .iter()
            .map(|&c| t.spans[c].duration)
            .max()
            .unwrap_or(0);
        if (total as f64) >= share * t.spans[p].duration as f64 {
            out.push((p, calls, total, longest));
        }
    }
    out
}

/// Retries: under one parent, calls with the same name to the same peer where at least one
/// failed before a later one — (parent, the attempts in order, failed attempts' µs).
pub fn retries(t: &Tree<'_>) -> Vec<(usize, Vec<usize>, i64)> {
    let mut out = vec![];
    for (p, kids) in t.children.iter().enumerate() {
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for &c in kids {
            let s = &t.spans[c];
            if category(s) == Category::Own {
                continue;
            }
            let peer = [
                "server.address",
                "net.peer.name",
                "db.system",
                "gen_ai.provider.name",
                "gen_ai.system",
            ]
            .iter()
            .find_map(|k| s.attrs.get(*k).cloned())
            .unwrap_or_default();
            groups.entry((s.name.clone(), peer)).or_default().push(c);
        }
        for (_, mut g) in groups {
            if g.len() < 2 {
                continue;
            }
            g.sort_by_key(|&c| t.spans[c].start);
            let failed_before_last = g[..g.len() - 1].iter().any(|&c| t.spans[c].error);
            if failed_before_last {
                let wasted = g[..g.len() - 1]
                    .iter()
                    .filter(|&&c| t.spans[c].error)
                    .map(|&c| t.spans[c].duration)
                    .sum();
                out.push((p, g, wasted));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span: id, parent, start and duration in ms, attributes.
    fn sp(id: &str, parent: &str, start_ms: i64, dur_ms: i64, attrs: &[(&str, &str)]) -> Span {
        Span {
            span_id: id.into(),
            parent_id: (!parent.is_empty()).then(|| parent.to_string()),
            trace_id: "t".into(),
            service: "checkout".into(),
            name: id.into(),
            kind: if attrs.iter().any(|(k, _)| {
                k.starts_with("http") || k.starts_with("gen_ai") || k.starts_with("db")
            }) {
                "client".into()
            } else {
                "internal".into()
            },
            start: start_ms * 1000,
            duration: dur_ms * 1000,
            error: false,
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn ms_by_cat(spans: &[Span]) -> Vec<(&'static str, i64)> {
        let t = tree(spans);
        let path = critical_path(&t, t.root.unwrap());
        by_category(&t, &path)
            .into_iter()
            .map(|(c, us)| (c.as_str(), us / 1000))
            .collect()
    }

    #[test]
    fn critical_path_cases() {
        let db = [("db.system", "postgresql")];
        let llm = [("gen_ai.operation.name", "chat")];
        let http = [("http.request.method", "GET")];
        // (name, spans, critical path by category in ms)
        type Case = (&'static str, Vec<Span>, Vec<(&'static str, i64)>);
        let cases: Vec<Case> = vec![
            (
                "sequential children: every child on the path, gaps are own code",
                vec![
                    sp("root", "", 0, 1000, &[]),
                    sp("q1", "root", 100, 200, &db),
                    sp("chat", "root", 300, 500, &llm),
                    sp("call", "root", 850, 100, &http),
                ],
                vec![
                    ("database", 200),
                    ("LLM", 500),
                    ("outbound HTTP/gRPC", 100),
                    ("own code", 200),
                ],
            ),
            (
                "parallel children: only the one that ended last counts",
                vec![
                    sp("root", "", 0, 600, &[]),
                    sp("q1", "root", 0, 300, &db),
                    sp("chat", "root", 0, 500, &llm),
                ],
                vec![("LLM", 500), ("own code", 100)],
            ),
            (
                "nested: the child's own children split its time",
                vec![
                    sp("root", "", 0, 1000, &[]),
                    sp("handler", "root", 0, 900, &[]),
                    sp("q1", "handler", 100, 300, &db),
                    sp("chat", "handler", 400, 400, &llm),
                ],
                vec![("database", 300), ("LLM", 400), ("own code", 300)],
            ),
            (
                "a child running past its parent is clipped to it",
                vec![
                    sp("root", "", 0, 500, &[]),
                    sp("async", "root", 400, 600, &http),
                ],
                vec![("outbound HTTP/gRPC", 100), ("own code", 400)],
            ),
            (
                "a lone span is all own code",
                vec![sp("root", "", 0, 50, &[])],
                vec![("own code", 50)],
            ),
        ];
        for (name, spans, want) in cases {
            assert_eq!(ms_by_cat(&spans), want, "{name}");
            // The path covers the root exactly once: its segments add up to its duration.
            let t = tree(&spans);
            let root = t.root.unwrap();
            let path = critical_path(&t, root);
            let total: i64 = path.iter().map(|g| g.to - g.from).sum();
            assert_eq!(total, spans[root].duration, "{name}");
            assert!(
                path.windows(2).all(|w| w[0].to <= w[1].from),
                "{name}: overlapping segments"
            );
        }
    }

    #[test]
    fn self_times_and_orphans() {
        let spans = vec![
            sp("root", "", 0, 1000, &[]),
            sp("a", "root", 100, 300, &[]),
            sp("b", "root", 200, 400, &[]),
            sp("orphan", "missing", 0, 10, &[]),
        ];
        let t = tree(&spans);
        assert_eq!(self_times(&t)[0], 500 * 1000, "1000 − the union 100..600");
        assert_eq!(t.root, Some(0));
        assert_eq!(t.tops, vec![0, 3], "the orphan is a top of its own");
        // A cycle or a self-parent never loops.
        let weird = vec![sp("x", "x", 0, 10, &[])];
        let t = tree(&weird);
        assert_eq!(critical_path(&t, t.root.unwrap()).len(), 1);
    }

    #[test]
    fn statements_and_patterns() {
        for (sql, shape) in [
            (
                "SELECT * FROM items WHERE id = 42",
                "SELECT * FROM items WHERE id = ?",
            ),
            (
                "select  *\n from items where id=$1",
                "select * from items where id=?",
            ),
            (
                "SELECT name FROM t WHERE code = 'it''s' AND n IN (1, 2, 3)",
                "SELECT name FROM t WHERE code = ? AND n IN (?)",
            ),
            ("SELECT col2 FROM t3", "SELECT col2 FROM t3"),
        ] {
            assert_eq!(statement_shape(sql), shape, "{sql}");
        }
        let mut spans = vec![sp("root", "", 0, 2000, &[])];
        for i in 0..10 {
            let stmt = format!("SELECT * FROM items WHERE id = {i}");
            spans.push(sp(
                &format!("q{i}"),
                "root",
                10 + i * 20,
                15,
                &[("db.system", "postgresql"), ("db.statement", &stmt)],
            ));
        }
        let t = tree(&spans);
        let n1 = n_plus_one(&t, 5);
        assert_eq!(n1.len(), 1);
        assert_eq!((n1[0].0, n1[0].2, n1[0].3), (0, 10, 150_000));
        assert!(
            sequential(&t, 3, 0.3).is_empty(),
            "N+1 is not also 'sequential'"
        );

        // Three different calls one after another: parallel candidates.
        let spans = vec![
            sp("root", "", 0, 1000, &[]),
            sp("users", "root", 0, 200, &[("http.request.method", "GET")]),
            sp(
                "prices",
                "root",
                200,
                300,
                &[("http.request.method", "GET")],
            ),
            sp("stock", "root", 500, 400, &[("db.system", "redis")]),
        ];
        let t = tree(&spans);
        let s = sequential(&t, 3, 0.3);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].2, s[0].3), (900_000, 400_000));

        // A failed call retried: the failed attempt's time is the retry's cost.
        let mut a1 = sp(
            "POST /charge",
            "root",
            0,
            300,
            &[("http.request.method", "POST"), ("server.address", "pay")],
        );
        a1.error = true;
        let mut a2 = a1.clone();
        a2.span_id = "a2".into();
        a2.start = 400_000;
        a2.duration = 100_000;
        a2.error = false;
        a1.span_id = "a1".into();
        let spans = vec![sp("root", "", 0, 1000, &[]), a1, a2];
        let t = tree(&spans);
        let r = retries(&t);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].1.len(), r[0].2), (2, 300_000));
    }
}
