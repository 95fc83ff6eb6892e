//! The HTML pages: what they show, their structure and accessibility
//! habits, no external asset, and the colours' contrast.

use super::*;
use crate::render::html::{self, LinkMode};
use crate::render::markdown::Bodies;

fn status_page(page: &Page, lang: Lang, mode: LinkMode) -> Result<String, askama::Error> {
    html::status_page(page, lang, mode, &Bodies::new(page))
}

fn incident_page(
    page: &Page,
    i: &IncidentView,
    lang: Lang,
    mode: LinkMode,
) -> Result<String, askama::Error> {
    html::incident_page(page, i, lang, mode, &Bodies::new(page))
}
use crate::render::palette::{contrast, BADGE_LABEL, DARK, LIGHT};
use crate::render::Lang;

fn page_html(page: &Page, lang: Lang) -> String {
    status_page(page, lang, LinkMode::Live).unwrap()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn shows_everything_the_page_knows() {
    let html = page_html(&rich_page(), Lang::En);
    // Overall indicator, in words, and when the page changed.
    assert!(html.contains("Partially Degraded Service"), "indicator");
    assert!(
        html.contains(r#"<time datetime="2026-08-23T10:05:00.000Z">2026-08-23 10:05 UTC</time>"#)
    );
    // History behind notice.
    assert!(html.contains("The history on this page has been behind since"));
    // Groups and components with status words (not colour alone).
    assert!(html.contains("<h3 id=\"group-grpapis01\">APIs</h3>"));
    assert!(html.contains("<h4>Chat Completions</h4>"));
    assert!(html.contains("Degraded performance"));
    // No recent data instead of green.
    let embed = &html[html.find("<h4>Embeddings</h4>").unwrap()..];
    let embed_row = &embed[..embed.find("</div>").unwrap()];
    assert!(embed_row.contains("No recent data"), "{embed_row}");
    assert!(!embed_row.contains("Operational"), "{embed_row}");
    // SLO, error budget, burn alert.
    assert!(html.contains("Availability objective 99.9 % over 30 days: measured 99.95 %; 50 % of the error budget left"));
    assert!(html.contains(
        "Latency objective: 99 % of requests within 2.0 s; error budget overspent by 20 %"
    ));
    assert!(html.contains("Burn-rate alert (urgent, availability): the error budget is being spent 14.4× as fast as sustainable over the last 1 h."));
    // Upstream versus effective.
    assert!(html.contains("The upstream was down for 40 minutes in the last 24 hours; requests through Lifeline succeeded 99.97 % of the time."));
    // 90 focusable bars, each with its accessible text.
    let bars = count(&html, "class=\"bar ");
    assert_eq!(bars, 90);
    assert_eq!(count(&html, "tabindex=\"0\""), 90);
    assert!(html.contains("<span class=\"tip\">2026-08-23: 99.97 % available; 1204 requests; worst status: Degraded performance; incidents: Elevated latency on Chat Completions</span>"));
    assert!(
        html.contains("2026-06-05: no data; no incidents"),
        "a day without data"
    );
    assert!(html.contains("89 days ago") && html.contains("Today"));
    assert!(html.contains("99.97 % uptime over the last 90 days"));
    // The chart: inline SVG with title and description, a gap for the
    // missing points.
    assert!(html
        .contains("role=\"img\" aria-labelledby=\"chart-cmpchat001-title chart-cmpchat001-desc\""));
    assert!(html.contains("<title id=\"chart-cmpchat001-title\">Latency and time to first token of Chat Completions, last 24 hours</title>"));
    assert!(html.contains("Highest 99th percentile in the last 24 hours: 2.4 s at"));
    let p50 = &html[html.find("<path class=\"p50\" d=\"").unwrap()..];
    let p50 = &p50[..p50.find("\"/>").unwrap()];
    assert_eq!(count(p50, "M"), 2, "one gap in the line: {}", &p50[..80]);
    // Incidents newest first, with timeline, impact, components and ETA.
    let active = html
        .find("Elevated latency on Chat Completions</a>")
        .unwrap();
    let past = html.find("Errors on Embeddings</a>").unwrap();
    assert!(active < past);
    assert!(html.contains("Incidents like this that lasted 20 minutes were resolved within a median of 14 more minutes, 90 % within 55; based on 23 incidents."));
    assert!(html.contains("Impact: major"));
    assert!(html.contains("Affected: Embeddings"));
    // A past incident shows its latest update here, its timeline on its
    // own page.
    assert!(html[past..].contains("Resolved after a stable period."));
    assert!(!html[past..].contains("<strong>watching</strong>"));
    assert!(html.contains("href=\"/status/incidents/7?lang=en\""));
    // Maintenance in every state.
    assert!(html.contains("<h3>In progress</h3>") && html.contains("Provider migration"));
    assert!(html.contains("<h3>Upcoming</h3>") && html.contains("Database failover drill"));
    assert!(html.contains("<h3>Completed</h3>") && html.contains("Old drill"));
    assert!(html.contains("From <time datetime=\"2026-08-30T02:00:00.000Z\">"));
    // Providers' own reports as evidence; an unreadable one is "unknown".
    assert!(html.contains("openai") && html.contains("Elevated errors on Chat Completions"));
    assert!(html.contains("Source unknown"));
}

#[test]
fn structure_and_no_external_asset() {
    for lang in Lang::ALL {
        for html in [
            page_html(&rich_page(), lang),
            incident_page(
                &rich_page(),
                &rich_page().incidents[0],
                lang,
                LinkMode::Live,
            )
            .unwrap(),
        ] {
            assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\""));
            assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())));
            for landmark in [
                "<header>",
                "<main id=\"main\">",
                "<footer>",
                "<nav aria-label=",
            ] {
                assert!(html.contains(landmark), "{landmark}");
            }
            assert_eq!(count(&html, "<h1"), 1);
            assert!(html.contains("<meta name=\"viewport\""));
            assert!(html.contains("prefers-color-scheme:dark"));
            // Nothing loaded from anywhere: no external script, style,
            // image, font or frame.
            for bad in [
                "<script src",
                "<link rel=\"stylesheet\"",
                "<img",
                "@import",
                "url(http",
                "<iframe",
                "@font-face",
            ] {
                assert!(!html.contains(bad), "{bad}");
            }
            assert_eq!(count(&html, "<script>"), 1, "one inline script");
            assert!(html.contains("setInterval") && html.contains("querySelector(\"main\")"));
        }
    }
}

#[test]
fn works_in_every_language() {
    let de = page_html(&rich_page(), Lang::De);
    assert!(de.contains("Teilweise eingeschränkter Dienst"));
    assert!(de.contains("Eingeschränkte Leistung"));
    assert!(de.contains("99,97 %"));
    assert!(de.contains("Ähnliche Störungen, die 20 Minuten andauerten, wurden im Median nach weiteren 14 Minuten behoben, zu 90 % innerhalb von 55 Minuten; Grundlage: 23 Störungen."));
    assert!(de.contains("href=\"/status?lang=en\""));
    let zh = page_html(&rich_page(), Lang::Zh);
    assert!(zh.contains("部分服务性能下降"));
    assert!(zh.contains("99.97%"));
    assert!(zh.contains("暂无最新数据"));
}

#[test]
fn incident_page_shows_one_incident() {
    let page = rich_page();
    let html = incident_page(&page, &page.incidents[1], Lang::En, LinkMode::Live).unwrap();
    assert!(html.contains("<title>Errors on Embeddings – Acme AI Gateway</title>"));
    assert!(html.contains("<h1 id=\"incident-5-title\">Errors on Embeddings</h1>"));
    assert!(html.contains("href=\"/status?lang=en\""));
    assert!(html.contains("Resolved <time datetime=\"2026-08-20T08:30:00.000Z\">"));
    let resolved = html.find("Resolved after a stable period.").unwrap();
    let monitoring = html.find("<strong>watching</strong>").unwrap();
    let investigating = html.find("Errors from one provider.").unwrap();
    assert!(
        resolved < monitoring && monitoring < investigating,
        "updates newest first"
    );
    assert!(!html.contains("Elevated latency on Chat Completions</h"));
    // A resolved incident shows no restoration estimate.
    assert!(!html.contains("Estimated restoration"));
}

#[test]
fn static_links_are_relative() {
    let page = rich_page();
    let html = status_page(&page, Lang::De, LinkMode::Static).unwrap();
    assert!(html.contains("href=\"incidents/7.de.html\""));
    assert!(html.contains("href=\"index.zh.html\""));
    assert!(html.contains("href=\"../history.atom\""));
    assert!(html.contains("href=\"../api/v2/summary.json\""));
    let html = incident_page(&page, &page.incidents[0], Lang::En, LinkMode::Static).unwrap();
    assert!(html.contains("href=\"../index.html\""));
    assert!(html.contains("href=\"7.de.html\""));
    assert!(html.contains("href=\"../../history.rss\""));
}

#[test]
fn an_empty_page_renders() {
    let mut page = reference_page();
    page.groups.clear();
    page.components.clear();
    page.incidents.clear();
    page.maintenances.clear();
    let html = page_html(&page, Lang::En);
    assert!(html.contains("All Systems Operational"));
    assert!(html.contains("No incidents reported."));
    assert!(html.contains("No scheduled maintenance."));
}

#[test]
fn colours_meet_wcag_aa() {
    for (name, scheme) in [("light", LIGHT), ("dark", DARK)] {
        for (what, colour) in scheme.text_colours() {
            for bg in [scheme.bg, scheme.surface] {
                let ratio = contrast(colour, bg);
                assert!(ratio >= 4.5, "{name} {what} {colour} on {bg}: {ratio:.2}");
            }
        }
    }
    for colour in [
        LIGHT.operational,
        LIGHT.degraded,
        LIGHT.partial,
        LIGHT.major,
        LIGHT.maintenance,
        LIGHT.no_data,
        BADGE_LABEL,
    ] {
        assert!(contrast("#ffffff", colour) >= 4.5, "badge text on {colour}");
    }
    assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
}
