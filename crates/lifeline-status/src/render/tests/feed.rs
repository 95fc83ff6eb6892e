//! The feeds parse back with the crates' own readers (real XML parsers):
//! one entry per incident and maintenance, newest change first, linking to
//! the incident's page, summarizing the latest update.

use std::io::Cursor;

use super::*;
use crate::render::feed::{atom, rss};
use crate::render::markdown::Bodies;

#[test]
fn atom_round_trips() {
    let page = rich_page();
    let feed =
        atom_syndication::Feed::read_from(Cursor::new(atom(&page, &Bodies::new(&page)).unwrap()))
            .unwrap();
    assert_eq!(feed.title().as_str(), "Acme AI Gateway - Incident History");
    assert_eq!(feed.id(), "https://status.acme.ai/history.atom");
    assert_eq!(feed.updated().to_rfc3339(), "2026-08-23T10:05:00+00:00");
    let ids: Vec<&str> = feed.entries().iter().map(|e| e.id()).collect();
    assert_eq!(
        ids,
        [
            "https://status.acme.ai/status/incidents/7",
            "https://status.acme.ai/status#maintenance-3",
            "https://status.acme.ai/status#maintenance-4",
            "https://status.acme.ai/status#maintenance-2",
            "https://status.acme.ai/status/incidents/5",
        ]
    );
    let resolved = &feed.entries()[4];
    assert_eq!(resolved.title().as_str(), "Errors on Embeddings");
    assert_eq!(
        resolved.links()[0].href(),
        "https://status.acme.ai/status/incidents/5"
    );
    assert_eq!(
        resolved.summary().unwrap().as_str(),
        "Resolved - Resolved after a stable period."
    );
    assert_eq!(resolved.updated().to_rfc3339(), "2026-08-20T08:30:00+00:00");
    let content = resolved.content().unwrap().value().unwrap();
    assert!(
        content.find("Resolved after").unwrap()
            < content.find("<strong>watching</strong>").unwrap()
    );
    let maint = &feed.entries()[1];
    assert!(maint
        .summary()
        .unwrap()
        .as_str()
        .starts_with("Scheduled - THIS IS A SCHEDULED EVENT 2026-08-30 02:00 UTC"));
}

#[test]
fn rss_round_trips() {
    let page = rich_page();
    let channel =
        ::rss::Channel::read_from(Cursor::new(rss(&page, &Bodies::new(&page)).unwrap())).unwrap();
    assert_eq!(channel.link(), "https://status.acme.ai/status");
    assert_eq!(channel.items().len(), 5);
    let first = &channel.items()[0];
    assert_eq!(first.title(), Some("Elevated latency on Chat Completions"));
    assert_eq!(
        first.link(),
        Some("https://status.acme.ai/status/incidents/7")
    );
    assert_eq!(first.pub_date(), Some("Sun, 23 Aug 2026 10:04:00 +0000"));
    assert_eq!(
        first.guid().unwrap().value(),
        "https://status.acme.ai/status/incidents/7"
    );
    assert!(first.description().unwrap().contains("p95 latency is 2.4x"));
}
