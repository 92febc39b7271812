//! Markdown for notes, summaries and remediation: rendered to HTML on the server and
//! sanitized (ammonia: no scripts, no event-handler attributes, no `javascript:` URLs), so
//! the browser only ever receives safe HTML.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

pub fn render(md: &str) -> String {
    let mut html = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(md, options()));
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html)
        .to_string()
}

/// The contents of fenced or indented code blocks: the copyable commands of a remediation.
pub fn code_blocks(md: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current: Option<String> = None;
    for ev in Parser::new_ext(md, options()) {
        match ev {
            Event::Start(Tag::CodeBlock(_)) => {
                current = Some(String::new());
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some(c) = current.take() {
                    let c = c.trim_end().to_string();
                    if !c.is_empty() {
                        out.push(c);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_javascript_links_are_removed() {
        let evil = "hello <script>alert(1)</script> <img src=x onerror=\"alert(2)\"> \
                    [click](javascript:alert(3)) <a href=\"javascript:alert(4)\">x</a> \
                    <iframe src=\"https://e.example\"></iframe> <b onclick=\"alert(5)\">b</b>";
        let html = render(evil);
        for bad in [
            "<script",
            "onerror",
            "javascript:",
            "<iframe",
            "onclick",
            "alert(1)",
        ] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
        assert!(html.contains("hello"));
    }

    #[test]
    fn markdown_features_survive() {
        let html = render(
            "# T\n\n**bold** `code` [ok](https://example.com)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("href=\"https://example.com\""));
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""));
        assert!(html.contains("<table>"));
    }

    #[test]
    fn commands_are_extracted_from_code_blocks() {
        let md = "Do this:\n\n```sh\nredis-cli CONFIG SET maxmemory-policy allkeys-lru\n```\n\nthen\n\n    kubectl rollout restart deploy/api\n";
        assert_eq!(
            code_blocks(md),
            vec![
                "redis-cli CONFIG SET maxmemory-policy allkeys-lru",
                "kubectl rollout restart deploy/api"
            ]
        );
    }
}
