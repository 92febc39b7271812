//! Deployment checklists (issue 12), as far as they are built: **templates** — the YAML
//! format, its validation with the line and column of every error, and its versions (every
//! edit is a new version; a version never changes). Deployments, item states, sign-off and
//! the CI gate are still to come and will build on these types.
//!
//! ```yaml
//! id: web-release            # [a-z0-9][a-z0-9-]*, at most 63
//! name: Web release
//! version: 3                 # optional: when given, must be the version this save creates
//! description: Checklist for the web tier.
//! sections:
//!   pre:
//!     - id: tests-green
//!       kind: manual
//!       text: All tests pass on the release commit
//!       help: "CI must be **green**, not skipped."
//!       requires_note: true  # checking it needs a comment (default false)
//!       required: true       # default true
//!   during: []
//!   post: []
//! ```
//!
//! Item kinds: `manual` is supported. `probe`, `metric`, `kafka_lag` and `approval` are the
//! kinds issue 12 names; a template that uses them is refused with a message saying they
//! are not available yet (never accepted and silently ignored).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The largest template accepted, in bytes of YAML.
pub const TEMPLATE_YAML_MAX: usize = 64 * 1024;
/// The most items in one template (all sections together).
pub const TEMPLATE_ITEMS_MAX: usize = 200;
pub const TEMPLATE_NAME_MAX: usize = 100;
pub const TEMPLATE_DESCRIPTION_MAX: usize = 2_000;
pub const ITEM_TEXT_MAX: usize = 500;
pub const ITEM_HELP_MAX: usize = 5_000;

/// When in a deployment a section's items apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Pre,
    During,
    Post,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Pre, Section::During, Section::Post];
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Pre => "pre",
            Section::During => "during",
            Section::Post => "post",
        }
    }
}

/// What checks an item. Only `manual` exists so far (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A person checks it (with a note when `requires_note`).
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateItem {
    pub id: String,
    pub kind: ItemKind,
    pub text: String,
    /// Markdown shown next to the item.
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub requires_note: bool,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TemplateSections {
    #[serde(default)]
    pub pre: Vec<TemplateItem>,
    #[serde(default)]
    pub during: Vec<TemplateItem>,
    #[serde(default)]
    pub post: Vec<TemplateItem>,
}

impl TemplateSections {
    pub fn section(&self, s: Section) -> &[TemplateItem] {
        match s {
            Section::Pre => &self.pre,
            Section::During => &self.during,
            Section::Post => &self.post,
        }
    }
    pub fn len(&self) -> usize {
        self.pre.len() + self.during.len() + self.post.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A template as parsed and validated (what a deployment will be created from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub sections: TemplateSections,
}

/// One stored version of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub template_id: String,
    pub version: i32,
    pub name: String,
    pub description: String,
    /// As its author wrote it.
    pub yaml: String,
    pub spec: TemplateSpec,
    pub built_in: bool,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A template in the list: its newest version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSummary {
    pub template_id: String,
    pub latest_version: i32,
    pub name: String,
    pub description: String,
    pub built_in: bool,
    pub items: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

/// A template or item id: lower-case letters, digits and dashes, starting with a letter or
/// digit, at most 63 characters.
pub fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(feature = "server")]
pub use parse::{ParsedTemplate, parse_template};

#[cfg(feature = "server")]
mod parse {
    use super::*;
    use serde::de::IgnoredAny;

    /// A template as its YAML says, and the version it claims (if any).
    #[derive(Debug)]
    pub struct ParsedTemplate {
        pub spec: TemplateSpec,
        pub version: Option<i32>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawTemplate {
        id: String,
        name: String,
        #[serde(default)]
        version: Option<i32>,
        #[serde(default)]
        description: String,
        #[serde(default)]
        sections: RawSections,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawSections {
        #[serde(default)]
        pre: Vec<RawItem>,
        #[serde(default)]
        during: Vec<RawItem>,
        #[serde(default)]
        post: Vec<RawItem>,
    }

    fn yes() -> bool {
        true
    }

    /// Every key any item kind has, so an unknown key is reported where it is and a key of
    /// a kind that is not available yet leads to the kind's own message.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct RawItem {
        id: String,
        kind: String,
        text: String,
        #[serde(default)]
        help: String,
        #[serde(default)]
        requires_note: bool,
        #[serde(default = "yes")]
        required: bool,
        // probe
        probe: Option<IgnoredAny>,
        target: Option<IgnoredAny>,
        params: Option<IgnoredAny>,
        max_severity: Option<IgnoredAny>,
        codes: Option<IgnoredAny>,
        // metric
        query: Option<IgnoredAny>,
        success: Option<IgnoredAny>,
        failure: Option<IgnoredAny>,
        interval: Option<IgnoredAny>,
        count: Option<IgnoredAny>,
        failure_limit: Option<IgnoredAny>,
        inconclusive_limit: Option<IgnoredAny>,
        // kafka_lag
        group: Option<IgnoredAny>,
        duration: Option<IgnoredAny>,
        max_state: Option<IgnoredAny>,
    }

    const NOT_YET: [&str; 4] = ["probe", "metric", "kafka_lag", "approval"];

    /// serde_yaml's message without its own " at line L column C" (we put the position first).
    fn yaml_error(e: &serde_yaml_ng::Error) -> String {
        let msg = e.to_string();
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        match e.location() {
            Some(l) => format!("line {}, column {}: {msg}", l.line(), l.column()),
            None => msg,
        }
    }

    fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
        if s.chars().count() > max {
            return Err(format!("{what} is too long: at most {max} characters"));
        }
        Ok(())
    }

    /// Parses and validates a template. Errors say where: `line L, column C: …` for YAML
    /// syntax, wrong types and unknown keys; `sections.pre[2] (id): …` for rules about
    /// values. Bounded: the YAML's size, its nesting (the parser's recursion limit) and
    /// alias expansion (the parser's repetition limit) are all capped.
    pub fn parse_template(yaml: &str) -> Result<ParsedTemplate, String> {
        if yaml.len() > TEMPLATE_YAML_MAX {
            return Err(format!(
                "the template is {} bytes: at most {TEMPLATE_YAML_MAX}",
                yaml.len()
            ));
        }
        if yaml.trim().is_empty() {
            return Err("the template is empty".into());
        }
        let raw: RawTemplate = serde_yaml_ng::from_str(yaml).map_err(|e| yaml_error(&e))?;
        if !valid_id(&raw.id) {
            return Err(format!(
                "id {:?}: use lower-case letters, digits and dashes (at most 63, e.g. web-release)",
                raw.id
            ));
        }
        let name = raw.name.trim().to_string();
        if name.is_empty() {
            return Err("name: a template needs a name".into());
        }
        check_len("name", &name, TEMPLATE_NAME_MAX)?;
        check_len("description", &raw.description, TEMPLATE_DESCRIPTION_MAX)?;
        if let Some(v) = raw.version
            && v < 1
        {
            return Err(format!("version {v}: versions start at 1"));
        }
        let mut seen: Vec<String> = Vec::new();
        let mut convert = |section: Section,
                           items: Vec<RawItem>|
         -> Result<Vec<TemplateItem>, String> {
            items
                .into_iter()
                .enumerate()
                .map(|(i, it)| {
                    let at = format!("sections.{}[{i}]", section.as_str());
                    if !valid_id(&it.id) {
                        return Err(format!(
                            "{at}: id {:?}: use lower-case letters, digits and dashes (at most 63)",
                            it.id
                        ));
                    }
                    let at = format!("{at} ({})", it.id);
                    if seen.contains(&it.id) {
                        return Err(format!("{at}: the id is used twice; item ids are unique in a template"));
                    }
                    seen.push(it.id.clone());
                    let kind = match it.kind.as_str() {
                        "manual" => ItemKind::Manual,
                        k if NOT_YET.contains(&k) => {
                            return Err(format!(
                                "{at}: items of kind `{k}` are not available yet (this version of Lookout checks `manual` items)"
                            ));
                        }
                        k => {
                            return Err(format!(
                                "{at}: unknown kind `{k}`: one of manual, probe, metric, kafka_lag, approval"
                            ));
                        }
                    };
                    let text = it.text.trim().to_string();
                    if text.is_empty() {
                        return Err(format!("{at}: text: an item needs a text"));
                    }
                    check_len(&format!("{at}: text"), &text, ITEM_TEXT_MAX)?;
                    check_len(&format!("{at}: help"), &it.help, ITEM_HELP_MAX)?;
                    Ok(TemplateItem {
                        id: it.id,
                        kind,
                        text,
                        help: it.help,
                        requires_note: it.requires_note,
                        required: it.required,
                    })
                })
                .collect()
        };
        let count = raw.sections.pre.len() + raw.sections.during.len() + raw.sections.post.len();
        if count > TEMPLATE_ITEMS_MAX {
            return Err(format!(
                "sections: {count} items: at most {TEMPLATE_ITEMS_MAX} in a template"
            ));
        }
        let sections = TemplateSections {
            pre: convert(Section::Pre, raw.sections.pre)?,
            during: convert(Section::During, raw.sections.during)?,
            post: convert(Section::Post, raw.sections.post)?,
        };
        if sections.is_empty() {
            return Err("sections: a template needs at least one item".into());
        }
        Ok(ParsedTemplate {
            spec: TemplateSpec {
                id: raw.id,
                name,
                description: raw.description,
                sections,
            },
            version: raw.version,
        })
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    const GOOD: &str = "id: web-release
name: Web release
description: The web tier.
sections:
  pre:
    - id: tests-green
      kind: manual
      text: All tests pass
      requires_note: true
  post:
    - id: smoke
      kind: manual
      text: Smoke test the checkout
      required: false
";

    #[test]
    fn a_good_template_parses() {
        let p = parse_template(GOOD).unwrap();
        assert_eq!(p.spec.id, "web-release");
        assert_eq!(p.version, None);
        assert_eq!(p.spec.sections.pre[0].kind, ItemKind::Manual);
        assert!(p.spec.sections.pre[0].requires_note && p.spec.sections.pre[0].required);
        assert!(!p.spec.sections.post[0].required, "required: false is kept");
        assert!(p.spec.sections.during.is_empty());
    }

    /// Each bad template and the start of the message it must give (position first).
    #[test]
    fn errors_say_what_and_where() {
        let cases: &[(&str, &str)] = &[
            // YAML syntax and types: line and column.
            (
                "id: a\nname: [unclosed\n",
                "line 2, column 7: name: invalid type",
            ),
            (
                "id: a\nname: 'unclosed\n",
                "line 3, column 1: found unexpected end of stream",
            ),
            (
                "id: a\n  name: x\n",
                "line 2, column 7: mapping values are not allowed",
            ),
            // An unknown key, where it is.
            (
                "id: a\nname: A\nsections:\n  pre:\n    - id: x\n      kind: manual\n      txt: hi\n",
                "line 7, column 7: sections.pre[0]: unknown field `txt`",
            ),
            (
                "id: a\nname: A\ncolour: red\n",
                "line 3, column 1: unknown field `colour`",
            ),
            // A wrong type.
            (
                "id: a\nname: A\nversion: two\n",
                "line 3, column 10: version: invalid type",
            ),
            ("id: a\n", "missing field `name`"),
            ("id: A_B\nname: A\n", "id \"A_B\": use lower-case"),
            ("id: a\nname: '  '\n", "name: a template needs a name"),
            (
                "id: a\nname: A\nversion: 0\n",
                "version 0: versions start at 1",
            ),
            (
                "id: a\nname: A\n",
                "sections: a template needs at least one item",
            ),
            (
                "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: a}\n    - {id: x, kind: manual, text: b}\n",
                "sections.pre[1] (x): the id is used twice",
            ),
            (
                "id: a\nname: A\nsections:\n  during:\n    - {id: x, kind: probe, text: a, probe: redis}\n",
                "sections.during[0] (x): items of kind `probe` are not available yet",
            ),
            (
                "id: a\nname: A\nsections:\n  post:\n    - {id: x, kind: shell, text: a}\n",
                "sections.post[0] (x): unknown kind `shell`",
            ),
            (
                "id: a\nname: A\nsections:\n  pre:\n    - {id: x, kind: manual, text: ''}\n",
                "sections.pre[0] (x): text: an item needs a text",
            ),
            ("", "the template is empty"),
            ("[1, 2]", "invalid type: sequence"),
        ];
        for (yaml, want) in cases {
            match parse_template(yaml) {
                Ok(_) => panic!("accepted: {yaml:?}"),
                Err(e) => assert!(e.starts_with(want) || e.contains(want), "{yaml:?}: {e}"),
            }
        }
    }

    #[test]
    fn bombs_and_huge_templates_are_refused_quickly() {
        let t = std::time::Instant::now();
        // Billion laughs: aliases of aliases.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..12 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            bomb.push_str(&format!("{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        assert!(parse_template(&bomb).is_err());
        // Deep nesting.
        let deep = format!(
            "id: a\nname: A\ndescription: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let e = parse_template(&deep).unwrap_err();
        assert!(
            e.contains("recursion limit") || e.contains("invalid type"),
            "{e}"
        );
        // Too big.
        let big = format!(
            "id: a\nname: A\ndescription: {}\n",
            "x".repeat(TEMPLATE_YAML_MAX)
        );
        assert!(parse_template(&big).unwrap_err().contains("at most 65536"));
        // Too many items.
        let mut many = String::from("id: a\nname: A\nsections:\n  pre:\n");
        for i in 0..=TEMPLATE_ITEMS_MAX {
            many.push_str(&format!("    - {{id: i{i}, kind: manual, text: t}}\n"));
        }
        assert!(parse_template(&many).unwrap_err().contains("at most 200"));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn ids() {
        for ok in ["a", "web-release", "0day", &"a".repeat(63)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
