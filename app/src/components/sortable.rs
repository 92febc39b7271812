//! A table of text cells that sorts by any column once the page is enhanced (click a
//! header; again to reverse; `components::enhance`). Numbers sort as numbers, including "1,024", "35%", "1.5 MiB", "90 s" and
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

/// Rendered in the given order; `components::enhance` sorts it in the browser.
#[component]
pub fn SortableTable(
    #[prop(into)] caption: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
) -> impl IntoView {
    // Each cell carries its column's name: stacked on a narrow screen, it is shown as the
    // cell's label.
    let labels = columns.clone();
    view! {
        <table class="data evidence sortable">
            <caption>{caption}</caption>
            <thead><tr>
                {columns.into_iter().map(|c| view! {
                    <th><button type="button" class="sort">{c}<span class="mark"></span></button></th>
                }).collect_view()}
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|r| view! {
                    <tr>{r.into_iter().enumerate().map(|(i, c)| view! {
                        <td data-label=labels.get(i).cloned().unwrap_or_default()>{c}</td>
                    }).collect_view()}</tr>
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
