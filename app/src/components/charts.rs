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

/// A line chart: x is time (ms), up to two series sharing the y axis.
#[component]
pub fn LineChart(
    #[prop(into)] title: String,
    xs: Vec<f64>,
    a: (String, Vec<f64>),
    #[prop(optional)] b: Option<(String, Vec<f64>)>,
    #[prop(into)] unit: String,
) -> impl IntoView {
    let (w, h) = (720.0, 200.0);
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
    }
}
