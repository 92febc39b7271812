//! A table of text cells that sorts by any column once hydrated (click a header; again to
//! reverse). Numbers sort as numbers, including "1,024", "35%", "1.5 MiB", "90 s" and
//! "2.5 min". Server-rendered in the given order, so it reads the same without JavaScript.

use leptos::prelude::*;

/// A sort key for a cell: numbers (with units) first by value, then text.
pub fn sort_key(cell: &str) -> (u8, f64, String) {
    let t = cell.trim().replace(',', "");
    let (num, rest): (String, String) = {
        let end = t
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && *c == '-')))
            .map(|(i, _)| i)
            .unwrap_or(t.len());
        (t[..end].to_string(), t[end..].trim().to_string())
    };
    let Ok(v) = num.parse::<f64>() else {
        return (1, 0.0, cell.to_ascii_lowercase());
    };
    let mult = match rest.split_whitespace().next().unwrap_or("") {
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0_f64.powi(4),
        "ms" => 0.001,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => 1.0,
    };
    (0, v * mult, String::new())
}

#[component]
pub fn SortableTable(
    #[prop(into)] caption: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
) -> impl IntoView {
    let order = RwSignal::new(None::<(usize, bool)>);
    let sorted = move || {
        let mut r = rows.clone();
        if let Some((col, desc)) = order.get() {
            r.sort_by(|a, b| {
                let ka = sort_key(a.get(col).map(String::as_str).unwrap_or(""));
                let kb = sort_key(b.get(col).map(String::as_str).unwrap_or(""));
                let o =
                    ka.0.cmp(&kb.0)
                        .then(ka.1.total_cmp(&kb.1))
                        .then(ka.2.cmp(&kb.2));
                if desc { o.reverse() } else { o }
            });
        }
        r
    };
    view! {
        <table class="data evidence sortable">
            <caption>{caption}</caption>
            <thead><tr>
                {columns.into_iter().enumerate().map(|(i, c)| {
                    let mark = move || match order.get() {
                        Some((k, false)) if k == i => " ▲",
                        Some((k, true)) if k == i => " ▼",
                        _ => "",
                    };
                    view! {
                        <th><button type="button" class="sort" on:click=move |_| {
                            order.update(|o| *o = match *o {
                                Some((k, false)) if k == i => Some((i, true)),
                                _ => Some((i, false)),
                            });
                        }>{c}{mark}</button></th>
                    }
                }).collect_view()}
            </tr></thead>
            <tbody>
                {move || sorted().into_iter().map(|r| view! {
                    <tr>{r.into_iter().map(|c| view! { <td>{c}</td> }).collect_view()}</tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::sort_key;

    #[test]
    fn numbers_with_units_sort_by_value() {
        assert!(sort_key("1.5 MiB").1 > sort_key("900 KiB").1);
        assert!(sort_key("2.5 min").1 > sort_key("90 s").1);
        assert_eq!(sort_key("18,400").1, 18_400.0);
        assert_eq!(sort_key("35%").1, 35.0);
        assert_eq!(sort_key("session:*").0, 1);
        assert!(sort_key("-3").1 < 0.0);
    }
}
