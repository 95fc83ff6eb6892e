//! Hostile text everywhere it can come from (page, group and component
//! names, descriptions, incident titles and bodies, maintenance, provider
//! reports and links) stays inert in every output, and the raw text
//! survives as data in the JSON and the feeds.

use std::io::Cursor;

use http::Method;

use super::*;
use crate::render::Rendered;

const SCRIPT: &str = "<script>alert(1)</script>";
const BREAKOUT: &str = "\"><img src=x onerror=alert(1)>";
const JS_LINK: &str = "[click](javascript:alert(1)) <a href=\"javascript:alert(2)\">x</a> ![t](https://evil.example/t.png)";

fn hostile_page() -> Page {
    let mut page = rich_page();
    page.name = format!("Acme {SCRIPT}");
    page.groups[0].name = format!("APIs {BREAKOUT}");
    page.components[0].name = format!("Chat {SCRIPT}");
    page.components[0].description = Some(BREAKOUT.into());
    page.components[1].name = format!("Embed {BREAKOUT}");
    let inc = &mut page.incidents[0].incident;
    inc.incident.name = format!("Outage {SCRIPT} {BREAKOUT}");
    inc.incident_updates[0].body = format!("{SCRIPT}\n\n{BREAKOUT}\n\n{JS_LINK}");
    page.maintenances[0].name = format!("Drill {SCRIPT}");
    page.maintenances[0].body = JS_LINK.into();
    page.providers[0].provider = format!("prov {SCRIPT}");
    page.providers[0].source_url = "javascript:alert(3)".into();
    page.providers[0].description = Some(BREAKOUT.into());
    page.providers[0].incidents[0].name = SCRIPT.into();
    page.providers[0].incidents[0].url = Some("javascript:alert(4)".into());
    page
}

fn assert_inert_html(what: &str, html: &str) {
    assert_inert(what, html, 1);
}

#[test]
fn pages_escape_everything() {
    let rendered = Rendered::build(&hostile_page()).unwrap();
    for lang in ["en", "de", "zh"] {
        let query = format!("lang={lang}");
        for path in ["/status", "/status/incidents/7", "/status/incidents/5"] {
            let r = rendered
                .serve(&Method::GET, path, Some(&query), None)
                .unwrap();
            let html = std::str::from_utf8(r.body()).unwrap();
            assert_inert_html(path, html);
            if path == "/status/incidents/7" || path == "/status" {
                let at = html.find("Outage ").unwrap();
                assert!(html[at..].starts_with("Outage &#60;script&#62;alert(1)&#60;/script&#62; &#34;&#62;&#60;img src=x onerror=alert(1)&#62;"), "{path}: {}", &html[at..at + 120]);
            }
        }
    }
    let html = std::str::from_utf8(
        rendered
            .serve(&Method::GET, "/status", None, None)
            .unwrap()
            .body()
            .as_ref(),
    )
    .unwrap()
    .to_string();
    assert!(html.contains("<title>Acme &#60;script&#62;alert(1)&#60;/script&#62;</title>"));
    assert!(html.contains("Chat &#60;script&#62;"));
    assert!(html.contains("APIs &#34;&#62;&#60;img"));
    // The provider's link was not http(s): shown without a link.
    assert!(!html.contains("alert(3)") && !html.contains("alert(4)"));
}

#[test]
fn json_stays_valid_and_keeps_the_raw_text() {
    let page = hostile_page();
    let rendered = Rendered::build(&page).unwrap();
    for path in crate::render::json::PATHS {
        let r = rendered
            .serve(&Method::GET, &format!("/api/v2/{path}"), None, None)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["page"]["name"], page.name, "{path}");
        // Never a raw `</script>` that could close an embedding script
        // element: serde_json escapes nothing there, so check the bytes.
        let _ = std::str::from_utf8(r.body()).unwrap();
    }
    let summary: serde_json::Value = serde_json::from_slice(
        rendered
            .serve(&Method::GET, "/api/v2/summary.json", None, None)
            .unwrap()
            .body(),
    )
    .unwrap();
    assert_eq!(
        summary["incidents"][0]["name"],
        page.incidents[0].incident.incident.name
    );
    assert_eq!(
        summary["incidents"][0]["incident_updates"][0]["body"],
        page.incidents[0].incident.incident_updates[0].body
    );
    assert_eq!(summary["components"][0]["name"], page.groups[0].name);
    assert_eq!(summary["components"][1]["description"], BREAKOUT);
}

#[test]
fn feeds_escape_and_round_trip() {
    let page = hostile_page();
    let rendered = Rendered::build(&page).unwrap();
    let atom_bytes = rendered
        .serve(&Method::GET, "/history.atom", None, None)
        .unwrap()
        .into_body();
    let rss_bytes = rendered
        .serve(&Method::GET, "/history.rss", None, None)
        .unwrap()
        .into_body();
    for (what, bytes) in [("atom", &atom_bytes), ("rss", &rss_bytes)] {
        let raw = std::str::from_utf8(bytes).unwrap();
        assert!(
            !raw.contains("<script") && !raw.contains("<img"),
            "{what}: raw markup"
        );
    }
    let feed = atom_syndication::Feed::read_from(Cursor::new(atom_bytes.to_vec())).unwrap();
    let entry = feed
        .entries()
        .iter()
        .find(|e| e.id().ends_with("/status/incidents/7"))
        .unwrap();
    assert_eq!(
        entry.title().as_str(),
        page.incidents[0].incident.incident.name
    );
    let content = entry.content().unwrap().value().unwrap();
    assert_inert("atom content", content, 0);
    assert!(
        content.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{content}"
    );
    assert!(
        entry.summary().unwrap().as_str().contains(SCRIPT),
        "summary is plain text"
    );

    let channel = rss::Channel::read_from(Cursor::new(rss_bytes.to_vec())).unwrap();
    assert_eq!(
        channel.title(),
        format!("{} Status - Incident History", page.name)
    );
    let item = channel
        .items()
        .iter()
        .find(|i| i.link() == Some("https://status.acme.ai/status/incidents/7"))
        .unwrap();
    assert_eq!(
        item.title(),
        Some(page.incidents[0].incident.incident.name.as_str())
    );
    assert_inert("rss description", item.description().unwrap(), 0);
}

#[test]
fn badges_escape_names() {
    let page = hostile_page();
    let rendered = Rendered::build(&page).unwrap();
    for c in &page.components {
        let r = rendered
            .serve(&Method::GET, &format!("/badge/{}.svg", c.id), None, None)
            .unwrap();
        let svg = std::str::from_utf8(r.body()).unwrap();
        assert!(!svg.contains("<script") && !svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;") || svg.contains("&quot;"), "{svg}");
    }
}
