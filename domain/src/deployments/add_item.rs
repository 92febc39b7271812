//! Adding one item to a template's YAML as its author wrote it (a probe's finding suggests a
//! checklist item; "Add to checklist" puts it in a template in one click).
//!
//! The item's lines go at the end of the chosen section and everything else — comments,
//! order, quoting — stays as it was, so the template's version diff shows exactly the item.
//! The result is parsed and must be the old template plus that item (nothing else changed);
//! when the YAML is written in a shape the line edit does not handle (flow style, `post: []`,
//! …) the template is rewritten from its parsed form instead, and checked the same way.

use super::*;
use serde_yaml_ng::{Mapping, Value};

/// The largest suggested item accepted.
pub const SUGGESTED_ITEM_MAX: usize = 8 * 1024;

/// `template_yaml` with `item_block` (a YAML list of one item, as a finding suggests it) at
/// the end of `section`, its `version:` line (if it has one) set to `next_version`. A metric
/// item bound to another name than the template's metric items use takes theirs. Returns the
/// new YAML and the item's id; an error says why the item cannot go in (its id is taken, it
/// is not a valid item, the template's bindings clash).
pub fn add_item(
    template_yaml: &str,
    section: Section,
    item_block: &str,
    next_version: i32,
) -> Result<(String, String), String> {
    if item_block.len() > SUGGESTED_ITEM_MAX {
        return Err(format!(
            "the item is {} bytes: at most {SUGGESTED_ITEM_MAX}",
            item_block.len()
        ));
    }
    let old = parse_template(template_yaml)
        .map_err(|e| format!("the template's newest version does not parse: {e}"))?;
    let items: Vec<Value> =
        serde_yaml_ng::from_str(item_block).map_err(|e| format!("the item: {e}"))?;
    let [item] = <[Value; 1]>::try_from(items)
        .map_err(|v| format!("the item: one item expected, {} given", v.len()))?;
    let Value::Mapping(mut item) = item else {
        return Err("the item: a mapping (id, kind, text, …) expected".into());
    };
    let id = match item.get("id") {
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        _ => return Err("the item: id: lower-case letters, digits and dashes".into()),
    };
    if let Some(s) = Section::ALL
        .into_iter()
        .find(|s| old.spec.sections.section(*s).iter().any(|i| i.id == id))
    {
        return Err(format!(
            "the template already has an item {id:?} (in {}): it was added before, or rename one",
            s.as_str()
        ));
    }
    // The template's own name for its Prometheus target, if it has metric items.
    let bound = Section::ALL
        .into_iter()
        .flat_map(|s| old.spec.sections.section(s).iter())
        .find_map(|i| i.metric.as_ref().map(|m| m.target.clone()));
    let is_metric = item.get("kind").and_then(Value::as_str) == Some("metric");
    let mut block = item_block.trim_end().to_string();
    if let (true, Some(b)) = (is_metric, bound)
        && item.get("target").and_then(Value::as_str) != Some(b.as_str())
    {
        item.insert("target".into(), Value::String(b.clone()));
        block = serde_yaml_ng::to_string(&vec![Value::Mapping(item.clone())])
            .map_err(|e| format!("the item: {e}"))?
            .trim_end()
            .to_string();
    }
    let check = |yaml: &str| -> Result<(), String> {
        let new = parse_template(yaml)?;
        let mut expected = new.spec.clone();
        let list = match section {
            Section::Pre => &mut expected.sections.pre,
            Section::During => &mut expected.sections.during,
            Section::Post => &mut expected.sections.post,
        };
        match list.pop() {
            Some(last) if last.id == id => {}
            _ => return Err("the item did not land at the end of the section".into()),
        }
        let version_ok = match old.version {
            Some(_) => new.version == Some(next_version),
            None => new.version.is_none(),
        };
        if expected != old.spec || !version_ok {
            return Err("the edit changed more than the item".into());
        }
        Ok(())
    };
    let edited = edit_lines(template_yaml, section, &block, next_version);
    if let Some(y) = &edited
        && check(y).is_ok()
    {
        return Ok((y.clone(), id));
    }
    let rewritten = rewrite(template_yaml, section, Value::Mapping(item), next_version)?;
    match check(&rewritten) {
        Ok(()) => Ok((rewritten, id)),
        Err(e) => Err(format!("the item cannot go in this template: {e}")),
    }
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

fn is_content(l: &str) -> bool {
    let t = l.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Whether `l` is `key:` alone (a trailing comment allowed): a block mapping's key whose
/// value follows on the next lines.
fn is_key(l: &str, key: &str) -> bool {
    l.trim_start()
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix(':'))
        .is_some_and(|r| {
            r.trim().is_empty() || (r.starts_with([' ', '\t']) && r.trim_start().starts_with('#'))
        })
}

/// The line edit: the item at the end of the section (the section added to `sections:` if
/// missing), the `version:` line updated. `None` when the YAML is not in the block shape
/// this expects (the caller then rewrites it).
fn edit_lines(yaml: &str, section: Section, block: &str, next_version: i32) -> Option<String> {
    let mut lines: Vec<String> = yaml
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let s = lines
        .iter()
        .position(|l| indent(l) == 0 && is_key(l, "sections"))?;
    // The sections block: until the next line at column 0.
    let end = lines[s + 1..]
        .iter()
        .position(|l| is_content(l) && indent(l) == 0)
        .map_or(lines.len(), |p| s + 1 + p);
    let child = lines[s + 1..end]
        .iter()
        .find(|l| is_content(l))
        .map(|l| indent(l))?;
    if child == 0 {
        return None;
    }
    let reindent = |at: usize| -> Vec<String> {
        block
            .lines()
            .map(|l| format!("{}{l}", " ".repeat(at)))
            .collect()
    };
    let key = lines[s + 1..end]
        .iter()
        .position(|l| indent(l) == child && is_key(l, section.as_str()))
        .map(|p| s + 1 + p);
    match key {
        Some(k) => {
            // The section's items: deeper lines, or `- ` at the key's own indentation.
            let mut last = k;
            let mut item_at = None;
            for (i, l) in lines.iter().enumerate().take(end).skip(k + 1) {
                if !is_content(l) {
                    continue;
                }
                let d = indent(l);
                let dash = l.trim_start().starts_with('-');
                if d > child || (d == child && dash) {
                    if dash && item_at.is_none() {
                        item_at = Some(d);
                    }
                    last = i;
                } else {
                    break;
                }
            }
            let at = item_at.unwrap_or(child + 2);
            let tail = lines.split_off(last + 1);
            lines.extend(reindent(at));
            lines.extend(tail);
        }
        None => {
            let last = (s + 1..end).rev().find(|&i| is_content(&lines[i]))?;
            let tail = lines.split_off(last + 1);
            lines.push(format!("{}{}:", " ".repeat(child), section.as_str()));
            lines.extend(reindent(child + 2));
            lines.extend(tail);
        }
    }
    if let Some(v) = lines
        .iter()
        .position(|l| indent(l) == 0 && l.starts_with("version:"))
    {
        lines[v] = format!("version: {next_version}");
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Some(out)
}

/// The fallback: the template from its parsed form with the item pushed (comments lost).
fn rewrite(yaml: &str, section: Section, item: Value, next_version: i32) -> Result<String, String> {
    let mut doc: Value = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    let Value::Mapping(top) = &mut doc else {
        return Err("the template is not a mapping".into());
    };
    if top.contains_key("version") {
        top.insert("version".into(), Value::Number(next_version.into()));
    }
    let sections = top
        .entry("sections".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if sections.is_null() {
        *sections = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(sections) = sections else {
        return Err("sections: a mapping expected".into());
    };
    let list = sections
        .entry(section.as_str().into())
        .or_insert_with(|| Value::Sequence(vec![]));
    if list.is_null() {
        *list = Value::Sequence(vec![]);
    }
    let Value::Sequence(list) = list else {
        return Err(format!("sections.{}: a list expected", section.as_str()));
    };
    list.push(item);
    serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = "- id: checkout-5xx-ratio\n  kind: metric\n  text: 'checkout: 5xx ratio below 1%'\n  target: prometheus\n  query: 'sum(rate(http_requests_total{job=\"checkout\",code=~\"5..\"}[5m])) / sum(rate(http_requests_total{job=\"checkout\"}[5m]))'\n  success: result < 0.01";

    const BLOCK: &str = "id: web-release
name: Web release   # the name
version: 3
sections:
  pre:
    - id: tests-green
      kind: manual
      text: All tests pass
  # watched while it rolls out
  during:
    - id: error-rate
      kind: metric
      text: Error rate low
      target: metrics
      query: sum(rate(errors_total[5m]))
      success: result < 1
  post:
  - id: smoke
    kind: manual
    text: Smoke test   # by hand

    # trailing comment of post
";

    fn items(yaml: &str, s: Section) -> Vec<String> {
        parse_template(yaml)
            .unwrap()
            .spec
            .sections
            .section(s)
            .iter()
            .map(|i| i.id.clone())
            .collect()
    }

    #[test]
    fn the_item_goes_at_the_end_of_the_section_and_nothing_else_moves() {
        let (y, id) = add_item(BLOCK, Section::Post, ITEM, 4).unwrap();
        assert_eq!(id, "checkout-5xx-ratio");
        assert_eq!(items(&y, Section::Post), ["smoke", "checkout-5xx-ratio"]);
        // Comments stay, the version moves on, the item sits at the section's own indentation.
        assert!(y.contains("name: Web release   # the name"), "{y}");
        assert!(y.contains("  # watched while it rolls out"), "{y}");
        assert!(y.contains("    # trailing comment of post"), "{y}");
        assert!(y.contains("version: 4\n"), "{y}");
        assert!(
            y.contains("\n  - id: checkout-5xx-ratio\n    kind: metric\n"),
            "{y}"
        );
        // Bound to the template's own Prometheus binding.
        let p = parse_template(&y).unwrap();
        let m = p.spec.sections.post[1].metric.as_ref().unwrap();
        assert_eq!(m.target, "metrics");
        // The diff is the item and the version line only.
        let diff = line_diff(BLOCK, &y);
        let removed: Vec<&str> = diff
            .iter()
            .filter(|d| d.op == '-')
            .map(|d| d.text.as_str())
            .collect();
        let added: Vec<&str> = diff
            .iter()
            .filter(|d| d.op == '+')
            .map(|d| d.text.as_str())
            .collect();
        assert_eq!(removed, ["version: 3"]);
        assert_eq!(added.len(), 7, "{added:?}");
        assert_eq!(added[0], "version: 4");
        assert!(added[1..].iter().all(|l| l.starts_with("  ")), "{added:?}");
    }

    #[test]
    fn each_section_and_shape() {
        for s in Section::ALL {
            let (y, _) = add_item(BLOCK, s, ITEM, 4).unwrap();
            assert_eq!(
                items(&y, s).last().map(String::as_str),
                Some("checkout-5xx-ratio"),
                "{y}"
            );
        }
        // A missing section is added under `sections:`.
        let only_pre = "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: X}\n";
        let (y, _) = add_item(only_pre, Section::Post, ITEM, 2).unwrap();
        assert_eq!(items(&y, Section::Post), ["checkout-5xx-ratio"]);
        assert!(y.contains("    - {id: x, kind: manual, text: X}"), "{y}");
        // Kept as the finding wrote it (its binding is the template's).
        assert!(
            y.ends_with(&format!(
                "  post:\n{}\n",
                ITEM.lines()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            "{y}"
        );
        // `during: []` and flow style: rewritten from the parsed form (still the same spec).
        let flow =
            "id: a\nname: A\nsections: {pre: [{id: x, kind: manual, text: X}], during: []}\n";
        let (y, _) = add_item(flow, Section::During, ITEM, 2).unwrap();
        assert_eq!(items(&y, Section::During), ["checkout-5xx-ratio"]);
        assert_eq!(items(&y, Section::Pre), ["x"]);
        let empty = "id: a\nname: A\nsections:\n  pre:\n    - id: x\n      kind: manual\n      text: X\n  during: []\n";
        let (y, _) = add_item(empty, Section::During, ITEM, 2).unwrap();
        assert_eq!(items(&y, Section::During), ["checkout-5xx-ratio"]);
        // CRLF line ends.
        let crlf = only_pre.replace('\n', "\r\n");
        let (y, _) = add_item(&crlf, Section::Pre, ITEM, 2).unwrap();
        assert_eq!(items(&y, Section::Pre), ["x", "checkout-5xx-ratio"]);
        // No version line: none is added.
        assert!(!y.contains("version"), "{y}");
    }

    #[test]
    fn refused_with_a_reason() {
        let (y, _) = add_item(BLOCK, Section::Post, ITEM, 4).unwrap();
        let e = add_item(&y, Section::Pre, ITEM, 5).unwrap_err();
        assert!(
            e.contains("already has an item \"checkout-5xx-ratio\" (in post)"),
            "{e}"
        );
        for (bad, want) in [
            (
                "- id: a\n  kind: metric\n- id: b\n  kind: metric",
                "one item expected, 2 given",
            ),
            ("id: a", "the item:"),
            ("- 3", "a mapping"),
            ("- id: Bad Id\n  kind: manual\n  text: x", "id: lower-case"),
            (
                "- id: ok\n  kind: metric\n  text: x\n  target: p\n  query: up\n  success: '$(rm -rf /)'",
                "cannot go in",
            ),
            ("- id: ok\n  kind: nonsense\n  text: x", "unknown kind"),
            (
                "- id: ok\n  kind: manual\n  text: x\n  sneaky: 1",
                "cannot go in",
            ),
            ("- [", "the item:"),
        ] {
            let e = add_item(BLOCK, Section::Post, bad, 4).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        let huge = format!(
            "- id: a\n  kind: manual\n  text: {}",
            "x".repeat(SUGGESTED_ITEM_MAX)
        );
        assert!(
            add_item(BLOCK, Section::Post, &huge, 4)
                .unwrap_err()
                .contains("at most")
        );
        // A binding name the template uses for another kind of target.
        let probe = "id: a\nname: A\nsections:\n  pre:\n    - id: db\n      kind: probe\n      text: DB ok\n      target: prometheus\n      probe: postgres\n";
        let e = add_item(probe, Section::Post, ITEM, 2).unwrap_err();
        assert!(e.contains("binding"), "{e}");
        // A template that does not parse.
        assert!(
            add_item("id: [", Section::Post, ITEM, 2)
                .unwrap_err()
                .contains("does not parse")
        );
    }

    #[test]
    fn breakout_text_stays_data() {
        let item = "- id: evil\n  kind: manual\n  text: \"x\\nsections:\\n  pre: []\\n</textarea><svg onload=alert(1)>\"";
        let (y, _) = add_item(BLOCK, Section::Post, item, 4).unwrap();
        let p = parse_template(&y).unwrap();
        assert_eq!(p.spec.sections.pre.len(), 1);
        assert!(p.spec.sections.post[1].text.contains("</textarea>"));
    }
}
