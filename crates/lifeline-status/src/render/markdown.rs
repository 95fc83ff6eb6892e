//! Incident and maintenance bodies: a safe Markdown subset to HTML.
//!
//! `pulldown-cmark` parses; raw HTML in the source is shown as text, images
//! become their alt text and headings become bold paragraphs (they would
//! break the page's heading outline). `ammonia` then keeps only a short
//! list of tags and attributes and only `http`, `https` and `mailto` links
//! (relative ones are dropped), and marks links `noopener noreferrer
//! nofollow`. Everything else on the page (titles, names) is escaped by the
//! templates, never passed through here.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::empty();
    b.tags(HashSet::from([
        "a",
        "p",
        "br",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    ]))
    .tag_attributes(std::collections::HashMap::from([
        ("a", HashSet::from(["href"])),
        ("ol", HashSet::from(["start"])),
    ]))
    .url_schemes(HashSet::from(["http", "https", "mailto"]))
    .url_relative(ammonia::UrlRelative::Deny)
    .link_rel(Some("noopener noreferrer nofollow"));
    b
});

/// Every body of a page, rendered once per build and shared by the pages
/// of every language and the feeds (sanitizing is the costly part of a
/// build).
pub(crate) struct Bodies<'a>(HashMap<&'a str, String>);

impl<'a> Bodies<'a> {
    /// Renders the bodies of every incident update and maintenance.
    pub(crate) fn new(page: &'a crate::page::Page) -> Self {
        let mut map = HashMap::new();
        let updates = page
            .incidents
            .iter()
            .flat_map(|i| &i.incident.incident_updates);
        for body in updates
            .map(|u| u.body.as_str())
            .chain(page.maintenances.iter().map(|m| m.body.as_str()))
        {
            map.entry(body).or_insert_with(|| to_html(body));
        }
        Bodies(map)
    }

    /// Safe HTML for `body` (rendered now if it was not part of the page).
    pub(crate) fn html(&self, body: &str) -> String {
        self.0.get(body).cloned().unwrap_or_else(|| to_html(body))
    }
}

/// Safe HTML for a Markdown body.
pub fn to_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TABLES);
    let events = Parser::new_ext(markdown, options).flat_map(|event| -> Vec<Event<'_>> {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => vec![Event::Text(raw)],
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => vec![],
            Event::Start(Tag::Heading { .. }) => {
                vec![Event::Start(Tag::Paragraph), Event::Start(Tag::Strong)]
            }
            Event::End(TagEnd::Heading(_)) => {
                vec![Event::End(TagEnd::Strong), Event::End(TagEnd::Paragraph)]
            }
            other => vec![other],
        }
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2 + 16);
    pulldown_cmark::html::push_html(&mut html, events);
    CLEANER.clean(&html).to_string()
}

/// The plain text of a Markdown body (for feed summaries): its text and
/// code, markup dropped, whitespace collapsed.
pub fn to_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for event in Parser::new(markdown) {
        match event {
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                out.push_str(&t);
            }
            Event::SoftBreak | Event::HardBreak | Event::End(_) => out.push(' '),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_safe_subset() {
        let html =
            to_html("**bold** _it_ `code` [docs](https://example.com/a?b=1&c=2)\n\n- one\n- two");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<em>it</em>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">docs</a>"#),
            "{html}"
        );
        assert!(html.contains("<li>one</li>"), "{html}");
        assert!(to_html("mail [us](mailto:ops@example.com)")
            .contains("href=\"mailto:ops@example.com\""));
    }

    #[test]
    fn hostile_input_is_inert() {
        let cases = [
            "<script>alert(1)</script>",
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "\"><img src=x onerror=alert(1)>",
            "![pic](https://evil.example/track.png)",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=https://evil.example></iframe>",
            "<div onclick=alert(1)>x</div>",
            "[rel](/admin)",
            "# heading",
        ];
        for case in cases {
            let html = to_html(case);
            crate::render::tests::assert_inert(case, &html, 0);
            assert!(!html.contains("<h1"), "{case:?} gave {html:?}");
            assert!(!html.contains("href=\"/admin"), "{case:?} gave {html:?}");
        }
        // Raw HTML is shown as text, not dropped silently.
        assert!(to_html("<script>alert(1)</script>").contains("&lt;script&gt;"));
        // Images leave their alt text.
        assert!(to_html("![pic](https://evil.example/track.png)").contains("pic"));
    }

    #[test]
    fn plain_text() {
        assert_eq!(
            to_text("**Fixed** the [link](https://x.y)\nnow"),
            "Fixed the link now"
        );
    }
}
