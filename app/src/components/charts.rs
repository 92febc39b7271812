//! Charts as SVG, rendered on the server (readable without JavaScript): a sparkline and a
//! line chart with up to two series.

use leptos::prelude::*;

/// Polyline points for `values` scaled into a `w`×`h` box (y grows downwards).
pub fn polyline(xs: &[f64], ys: &[f64], w: f64, h: f64, y_max: f64) -> String {
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let span = if x1 > x0 { x1 - x0 } else { 1.0 };
    let ym = if y_max > 0.0 { y_max } else { 1.0 };
    xs.iter()
        .zip(ys)
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                (x - x0) / span * w,
                h - (y / ym * h).clamp(0.0, h)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
pub fn Sparkline(values: Vec<i64>) -> impl IntoView {
    let xs: Vec<f64> = (0..values.len()).map(|i| i as f64).collect();
    let ys: Vec<f64> = values.iter().map(|v| *v as f64).collect();
    let max = ys.iter().copied().fold(0.0, f64::max);
    let pts = polyline(&xs, &ys, 80.0, 18.0, max);
    let label = format!(
        "lag over the last {} samples: {}",
        values.len(),
        values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    view! {
        <svg class="sparkline" viewBox="-1 -1 82 20" width="82" height="20" role="img" aria-label=label>
            <polyline points=pts fill="none" stroke="currentColor" stroke-width="1.5"/>
        </svg>
    }
}

/// A span marked on a chart's time axis (an incident): shaded from `from` to `to` (or the
/// chart's end), labelled, linked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartMark {
    pub from: f64,
    pub to: Option<f64>,
    pub label: String,
    pub title: String,
    pub href: String,
}

/// Where each mark falls in a `w`-wide chart over `xs` (None when outside the range).
pub fn mark_spans(xs: &[f64], marks: &[ChartMark], w: f64) -> Vec<(f64, f64, ChartMark)> {
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    if xs.len() < 2 || x1 <= x0 {
        return vec![];
    }
    let pos = |x: f64| ((x - x0) / (x1 - x0) * w).clamp(0.0, w);
    marks
        .iter()
        .filter(|m| m.from <= x1 && m.to.is_none_or(|t| t >= x0))
        .map(|m| (pos(m.from), pos(m.to.unwrap_or(x1)), m.clone()))
        .collect()
}

/// Keeps at most `n` points, each the highest of its stretch (peaks matter for lag).
pub fn downsample_max(xs: &[f64], ys: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    if xs.len() <= n || n == 0 {
        return (xs.to_vec(), ys.to_vec());
    }
    let step = xs.len().div_ceil(n);
    let mut ox = Vec::with_capacity(n);
    let mut oy = Vec::with_capacity(n);
    for (cx, cy) in xs.chunks(step).zip(ys.chunks(step)) {
        ox.push(cx[cx.len() / 2]);
        oy.push(cy.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }
    (ox, oy)
}

/// Small multiples: one small chart per series, all on the same x and y scales, so the one
/// that differs (the slow partition) stands out.
#[component]
pub fn SmallMultiples(
    xs: Vec<f64>,
    series: Vec<(String, Vec<f64>)>,
    #[prop(into)] unit: String,
) -> impl IntoView {
    let (w, h) = (150.0, 36.0);
    let max = series
        .iter()
        .flat_map(|s| s.1.iter())
        .copied()
        .fold(0.0, f64::max);
    let nice = nice_max(max);
    let cells: Vec<(String, String, f64)> = series
        .into_iter()
        .map(|(label, ys)| {
            let (dx, dy) = downsample_max(&xs, &ys, 150);
            let peak = ys.iter().copied().fold(0.0, f64::max);
            (label, polyline(&dx, &dy, w, h, nice), peak)
        })
        .collect();
    view! {
        <p class="muted">{format!("Same scale in every cell: 0 to {} {unit}.", fmt_num(nice))}</p>
        <div class="multiples">
            {cells.into_iter().map(|(label, pts, peak)| view! {
                <figure class=multiple_class(peak, nice) title=label.clone()>
                    <figcaption><span>{label.clone()}</span><span class="muted">{format!("↑{}", fmt_num(peak))}</span></figcaption>
                    <svg viewBox=format!("-1 -1 {} {}", w + 2.0, h + 2.0) role="img" aria-label=format!("{label}: highest {peak} {unit}")>
                        <line x1="0" x2=w.to_string() y1=h.to_string() y2=h.to_string() class="grid"/>
                        <polyline points=pts fill="none" class="series a"/>
                    </svg>
                </figure>
            }).collect_view()}
        </div>
    }
}

/// A cell whose peak reaches half the shared scale is highlighted.
fn multiple_class(peak: f64, scale: f64) -> &'static str {
    if peak > 0.0 && peak >= scale * 0.5 {
        "multiple hot"
    } else {
        "multiple"
    }
}

/// A line chart: x is time (ms), up to two series sharing the y axis.
#[component]
pub fn LineChart(
    #[prop(into)] title: String,
    xs: Vec<f64>,
    a: (String, Vec<f64>),
    #[prop(optional)] b: Option<(String, Vec<f64>)>,
    #[prop(into)] unit: String,
    #[prop(optional)] marks: Vec<ChartMark>,
    /// A strip under the x axis: (from, to, class) spans in the chart's x units.
    #[prop(optional)]
    band: Vec<(f64, f64, String)>,
) -> impl IntoView {
    let (w, h) = (720.0, 200.0);
    let spans = mark_spans(&xs, &marks, w);
    let strip: Vec<(f64, f64, String)> = mark_spans(
        &xs,
        &band
            .iter()
            .map(|(a, b, c)| ChartMark {
                from: *a,
                to: Some(*b),
                label: c.clone(),
                title: String::new(),
                href: String::new(),
            })
            .collect::<Vec<_>>(),
        w,
    )
    .into_iter()
    .map(|(x0, x1, m)| (x0, x1, m.label))
    .collect();
    let max =
        a.1.iter()
            .chain(b.iter().flat_map(|b| b.1.iter()))
            .copied()
            .fold(0.0, f64::max);
    let nice = nice_max(max);
    let pa = polyline(&xs, &a.1, w, h, nice);
    let pb = b.as_ref().map(|b| polyline(&xs, &b.1, w, h, nice));
    let empty = xs.len() < 2;
    let grid: Vec<(f64, String)> = (0..=4)
        .map(|i| (h - h * i as f64 / 4.0, fmt_num(nice * i as f64 / 4.0)))
        .collect();
    view! {
        <figure class="chart">
            <figcaption>{title}<span class="legend">
                <span class="key a">{a.0.clone()}</span>
                {b.as_ref().map(|b| view! { <span class="key b">{b.0.clone()}</span> })}
                <span class="muted">{format!(" ({unit})")}</span>
            </span></figcaption>
            {if empty {
                view! { <p class="muted">"Not enough samples in this range yet."</p> }.into_any()
            } else {
                view! {
                    <svg viewBox=format!("-60 -10 {} {}", w + 70.0, h + 30.0) class="linechart" role="img" aria-label=format!("{} chart", a.0)>
                        {grid.into_iter().map(|(y, label)| view! {
                            <line x1="0" x2=w.to_string() y1=format!("{y:.1}") y2=format!("{y:.1}") class="grid"/>
                            <text x="-6" y=format!("{:.1}", y + 4.0) text-anchor="end" class="tick">{label}</text>
                        }).collect_view()}
                        {spans.into_iter().map(|(x0, x1, m)| view! {
                            <a href=m.href.clone() class="mark">
                                <title>{format!("{} — {}", m.label, m.title)}</title>
                                <rect x=format!("{x0:.1}") y="0" width=format!("{:.1}", (x1 - x0).max(1.5)) height=h.to_string() class="mark-span"/>
                                <line x1=format!("{x0:.1}") x2=format!("{x0:.1}") y1="0" y2=h.to_string() class="mark-line"/>
                                <text x=format!("{:.1}", x0 + 3.0) y="10" class="mark-label">{m.label.clone()}</text>
                            </a>
                        }).collect_view()}
                        {strip.into_iter().map(|(x0, x1, status)| view! {
                            <rect x=format!("{x0:.1}") y=format!("{:.1}", h + 4.0) width=format!("{:.1}", (x1 - x0).max(1.0)) height="6"
                                class=format!("band band-{}", status.to_ascii_lowercase())>
                                <title>{status.clone()}</title>
                            </rect>
                        }).collect_view()}
                        <polyline points=pa class="series a" fill="none"/>
                        {pb.map(|p| view! { <polyline points=p class="series b" fill="none"/> })}
                    </svg>
                }.into_any()
            }}
        </figure>
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A count with thousands separators: 1,234,567.
pub fn fmt_count(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

pub fn fmt_num(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Dollars for an axis: `$1.2k`, `$12`, `$1.50`, `$0.025`.
pub fn fmt_usd(v: f64) -> String {
    if v >= 1e6 {
        format!("${:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("${:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("${v:.0}")
    } else if v >= 0.1 {
        format!("${v:.2}")
    } else {
        format!("${v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling() {
        assert_eq!(
            polyline(&[0.0, 10.0], &[0.0, 5.0], 100.0, 10.0, 10.0),
            "0.0,10.0 100.0,5.0"
        );
        assert_eq!(nice_max(830.0), 1000.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(fmt_num(25_000.0), "25k");
        assert_eq!(fmt_usd(0.075), "$0.075");
        assert_eq!(fmt_usd(0.5), "$0.50");
        assert_eq!(fmt_usd(412.0), "$412");
        assert_eq!(fmt_usd(12_500.0), "$12.5k");
        assert_eq!(fmt_count(2), "2");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_count(-1000), "-1,000");
    }

    #[test]
    fn downsampling_keeps_the_peaks() {
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut ys = vec![1.0; 1000];
        ys[517] = 99.0;
        let (dx, dy) = downsample_max(&xs, &ys, 100);
        assert_eq!(dx.len(), 100);
        assert!(dy.contains(&99.0), "the spike survives");
        let (dx, _) = downsample_max(&xs[..50], &ys[..50], 100);
        assert_eq!(dx.len(), 50, "short series are left alone");
    }

    #[test]
    fn marks_fall_where_their_time_is() {
        let m = |from: f64, to: Option<f64>| ChartMark {
            from,
            to,
            label: "INC-1".into(),
            title: "t".into(),
            href: "/incidents/INC-1".into(),
        };
        let xs = [100.0, 200.0];
        let got = mark_spans(
            &xs,
            &[m(150.0, Some(175.0)), m(50.0, None), m(300.0, None)],
            100.0,
        );
        assert_eq!(got.len(), 2, "the mark after the range is left out");
        assert_eq!((got[0].0, got[0].1), (50.0, 75.0));
        assert_eq!(
            (got[1].0, got[1].1),
            (0.0, 100.0),
            "open incident: to the end"
        );
    }
}

/// Vertical bars with a labelled dollar axis and a label under each bar (the weekly cost
/// trend). `highlight` marks one bar (the week on show); each bar links where `hrefs` says.
#[component]
pub fn BarChart(
    #[prop(into)] title: String,
    labels: Vec<String>,
    values: Vec<f64>,
    hrefs: Vec<String>,
    /// Shown in each bar's tooltip.
    texts: Vec<String>,
    #[prop(into)] unit: String,
    highlight: Option<usize>,
) -> impl IntoView {
    let (w, h) = (720.0, 180.0);
    let n = values.len().max(1) as f64;
    let max = nice_max(values.iter().copied().fold(0.0, f64::max));
    let slot = w / n;
    let grid: Vec<(f64, String)> = (0..=4)
        .map(|i| (h - h * i as f64 / 4.0, fmt_usd(max * i as f64 / 4.0)))
        .collect();
    let bars: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let bh = (v / max * h).max(if *v > 0.0 { 1.0 } else { 0.0 });
            (
                // Every other label (counting back from the last bar) may be hidden on a
                // narrow screen, where they would overlap.
                (values.len() - 1 - i) % 2 == 1,
                i as f64 * slot + slot * 0.15,
                h - bh,
                slot * 0.7,
                bh,
                labels.get(i).cloned().unwrap_or_default(),
                hrefs.get(i).cloned().unwrap_or_default(),
                texts.get(i).cloned().unwrap_or_default(),
                highlight == Some(i),
            )
        })
        .collect();
    view! {
        <figure class="chart">
            <figcaption>{title}<span class="muted">{format!(" ({unit})")}</span></figcaption>
            <svg viewBox=format!("-80 -10 {} {}", w + 90.0, h + 40.0) class="barchart" role="img" aria-label="bar chart">
                {grid.into_iter().map(|(y, label)| view! {
                    <line x1="0" x2=w.to_string() y1=format!("{y:.1}") y2=format!("{y:.1}") class="grid"/>
                    <text x="-6" y=format!("{:.1}", y + 4.0) text-anchor="end" class="tick">{label}</text>
                }).collect_view()}
                {bars.into_iter().map(|(alt, x, y, bw, bh, label, href, text, hi)| view! {
                    <a href=href>
                        <title>{format!("{label}: {text}")}</title>
                        <rect x=format!("{x:.1}") y=format!("{y:.1}") width=format!("{bw:.1}") height=format!("{bh:.1}")
                            class=if hi { "bar current" } else { "bar" }/>
                        <text x=format!("{:.1}", x + bw / 2.0) y=format!("{:.1}", h + 16.0) text-anchor="middle" class=if alt { "tick alt" } else { "tick" }>
                            {label.split_once("-W").map(|(_, w)| format!("W{w}")).unwrap_or(label.clone())}
                        </text>
                    </a>
                }).collect_view()}
            </svg>
        </figure>
    }
}

/// A value in a chart's unit for people: bytes in KiB/MiB/GiB, ratios in %, seconds in ms
/// or s, anything else as a number.
pub fn fmt_unit(v: f64, unit: &str) -> String {
    match unit {
        "bytes" => {
            let mut x = v.abs();
            let mut u = 0;
            const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
            while x >= 1024.0 && u < UNITS.len() - 1 {
                x /= 1024.0;
                u += 1;
            }
            let sign = if v < 0.0 { "-" } else { "" };
            if u == 0 {
                format!("{sign}{x:.0} B")
            } else {
                format!("{sign}{x:.1} {}", UNITS[u])
            }
        }
        "ratio" => format!("{:.1} %", v * 100.0),
        "seconds" if v.abs() < 1.0 => format!("{:.0} ms", v * 1000.0),
        "seconds" => format!("{v:.2} s"),
        _ => fmt_num(v),
    }
}

/// A relative time on an x axis: "−45 s", "−30 min", "−6 h", "end".
fn rel(s: f64) -> String {
    let s = s.round() as i64;
    match s {
        0 => "end".into(),
        1..=119 => format!("−{s} s"),
        120..=7199 => format!("−{} min", s / 60),
        7200..=172_799 => format!("−{} h", s / 3600),
        _ => format!("−{} d", s / 86_400),
    }
}

/// The chart of a finding's evidence (the series its query returned): up to eight series
/// over time, y ticks in the series' unit, x ticks relative to the chart's end, the start
/// and end as times the viewer's browser shows in their zone.
#[component]
pub fn EvidenceChartView(chart: domain::incidents::EvidenceChart) -> impl IntoView {
    let (w, h) = (640.0, 160.0);
    let unit = chart.unit.clone();
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (t0, t1) = pts.clone().fold((i64::MAX, i64::MIN), |(a, b), (t, _)| {
        (a.min(*t), b.max(*t))
    });
    let (lo, hi) = pts.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, v)| {
        (a.min(*v), b.max(*v))
    });
    if t0 >= t1 || !lo.is_finite() {
        return view! { <figure class="chart evidence-chart"><figcaption>{chart.title}</figcaption><p class="muted">"Too few points to draw."</p></figure> }.into_any();
    }
    // From zero when no value is negative, so a 0.2 % wobble never looks like a cliff.
    let floor = lo.min(0.0);
    let top = if hi > floor {
        floor + nice_max(hi - floor)
    } else {
        floor + 1.0
    };
    let span_t = (t1 - t0) as f64;
    let x = |t: i64| (t - t0) as f64 / span_t * w;
    let y = |v: f64| h - ((v - floor) / (top - floor) * h).clamp(0.0, h);
    let lines: Vec<(usize, String, String)> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = s
                .points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect::<Vec<_>>()
                .join(" ");
            (i, s.name.clone(), p)
        })
        .collect();
    let yticks: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            let v = floor + (top - floor) * i as f64 / 4.0;
            (y(v), fmt_unit(v, &unit))
        })
        .collect();
    let xticks: Vec<(f64, String)> = (0..=4)
        .map(|i| {
            let t = t0 as f64 + span_t * i as f64 / 4.0;
            ((t - t0 as f64) / span_t * w, rel(t1 as f64 - t))
        })
        .collect();
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).ok();
    let label = format!(
        "{}: {} series, {} to {}",
        chart.title,
        lines.len(),
        fmt_unit(lo, &unit),
        fmt_unit(hi, &unit)
    );
    view! {
        <figure class="chart evidence-chart">
            <figcaption>{chart.title.clone()}<span class="legend">
                {lines.iter().map(|(i, name, _)| view! { <span class=format!("key s{i}")>{name.clone()}</span> }).collect_view()}
                <span class="muted">{format!(" ({unit})")}</span>
            </span></figcaption>
            <svg viewBox=format!("-70 -8 {} {}", w + 80.0, h + 30.0) class="linechart" role="img" aria-label=label>
                {yticks.into_iter().map(|(yy, l)| view! {
                    <line x1="0" x2=w.to_string() y1=format!("{yy:.1}") y2=format!("{yy:.1}") class="grid"/>
                    <text x="-6" y=format!("{:.1}", yy + 4.0) text-anchor="end" class="tick">{l}</text>
                }).collect_view()}
                {xticks.into_iter().map(|(xx, l)| view! {
                    <line x1=format!("{xx:.1}") x2=format!("{xx:.1}") y1=h.to_string() y2=format!("{}", h + 4.0) class="grid"/>
                    <text x=format!("{xx:.1}") y=format!("{}", h + 16.0) text-anchor="middle" class="tick">{l}</text>
                }).collect_view()}
                {lines.into_iter().map(|(i, _, p)| view! { <polyline points=p class=format!("series s{i}") fill="none"/> }).collect_view()}
            </svg>
            <p class="muted chart-range">
                {at(t0).map(|t| view! { <crate::components::time::LocalTime at=t/> })}" – "
                {at(t1).map(|t| view! { <crate::components::time::LocalTime at=t/> })}
            </p>
        </figure>
    }
    .into_any()
}
