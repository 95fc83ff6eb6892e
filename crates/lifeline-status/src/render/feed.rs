//! `/history.atom` and `/history.rss`: one entry per published incident
//! and per scheduled maintenance, newest change first, each linking to its
//! page, its summary the latest update (status and text), its content the
//! whole timeline as sanitized HTML. English, like Statuspage's feeds.
//! Text is escaped by the feed writers (`atom_syndication`, `rss`).

use atom_syndication::{Content, Entry, Feed, FixedDateTime, Link, Person, Text};
use lifeline_store::MaintenanceStatus;

use super::html::escape;
use super::markdown::{self, Bodies};
use super::time::{human, rfc2822, rfc3339_ms};
use crate::page::Page;

/// One feed entry, before it is written in either format.
struct Item {
    id: String,
    link: String,
    title: String,
    summary: String,
    content_html: String,
    published: i64,
    updated: i64,
}

fn items(page: &Page, bodies: &Bodies<'_>) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::with_capacity(page.incidents.len() + page.maintenances.len());
    for view in &page.incidents {
        let inc = &view.incident.incident;
        let link = super::json::incident_link(&page.url, inc.id);
        let latest = view
            .incident
            .incident_updates
            .iter()
            .max_by_key(|u| (u.created_at, u.id));
        let summary = match latest {
            Some(u) => format!(
                "{} - {}",
                capitalized(u.status.as_str()),
                markdown::to_text(&u.body)
            ),
            None => capitalized(inc.status.as_str()),
        };
        let mut content_html = String::new();
        for u in view.incident.incident_updates.iter().rev() {
            content_html.push_str(&format!(
                "<p><small>{}</small><br><strong>{}</strong></p>{}",
                escape(&human(u.created_at)),
                escape(&capitalized(u.status.as_str())),
                bodies.html(&u.body)
            ));
        }
        items.push(Item {
            id: link.clone(),
            link,
            title: inc.name.clone(),
            summary,
            content_html,
            published: inc.created_at,
            updated: inc.updated_at,
        });
    }
    for m in &page.maintenances {
        let link = format!("{}/status#maintenance-{}", page.url, m.id);
        let window = format!(
            "THIS IS A SCHEDULED EVENT {} - {}",
            human(m.scheduled_for),
            human(m.scheduled_until)
        );
        let status = match m.status {
            MaintenanceStatus::Scheduled => "Scheduled",
            MaintenanceStatus::InProgress => "In progress",
            MaintenanceStatus::Verifying => "Verifying",
            MaintenanceStatus::Completed => "Completed",
        };
        items.push(Item {
            id: link.clone(),
            link,
            title: m.name.clone(),
            summary: format!("{status} - {window}. {}", markdown::to_text(&m.body)),
            content_html: format!(
                "<p><strong>{}</strong> - {}</p>{}",
                escape(status),
                escape(&window),
                bodies.html(&m.body)
            ),
            published: m.created_at,
            updated: m.updated_at,
        });
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.updated));
    items
}

/// "in_progress" → "In progress".
fn capitalized(status: &str) -> String {
    let s = status.replace('_', " ");
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

fn datetime(ms: i64) -> FixedDateTime {
    FixedDateTime::parse_from_rfc3339(&rfc3339_ms(ms)).unwrap_or_default()
}

/// The Atom feed.
pub(crate) fn atom(page: &Page, bodies: &Bodies<'_>) -> Result<Vec<u8>, atom_syndication::Error> {
    let entries = items(page, bodies)
        .into_iter()
        .map(|item| Entry {
            id: item.id,
            title: Text::plain(item.title),
            updated: datetime(item.updated),
            published: Some(datetime(item.published)),
            links: vec![Link {
                href: item.link,
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Link::default()
            }],
            summary: Some(Text::plain(item.summary)),
            content: Some(Content {
                value: Some(item.content_html),
                content_type: Some("html".into()),
                ..Content::default()
            }),
            ..Entry::default()
        })
        .collect();
    let feed = Feed {
        id: format!("{}/history.atom", page.url),
        title: Text::plain(format!("{} - Incident History", page.name)),
        updated: datetime(page.updated_at),
        authors: vec![Person {
            name: page.name.clone(),
            uri: Some(format!("{}/status", page.url)),
            ..Person::default()
        }],
        links: vec![
            Link {
                href: format!("{}/status", page.url),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Link::default()
            },
            Link {
                href: format!("{}/history.atom", page.url),
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Link::default()
            },
        ],
        lang: Some("en".into()),
        entries,
        ..Feed::default()
    };
    feed.write_to(Vec::new())
}

/// The RSS 2.0 feed.
pub(crate) fn rss(page: &Page, bodies: &Bodies<'_>) -> Result<Vec<u8>, rss::Error> {
    let items = items(page, bodies)
        .into_iter()
        .map(|item| rss::Item {
            title: Some(item.title),
            link: Some(item.link),
            description: Some(item.content_html),
            guid: Some(rss::Guid {
                value: item.id,
                permalink: true,
            }),
            pub_date: Some(rfc2822(item.updated)),
            ..rss::Item::default()
        })
        .collect();
    let channel = rss::Channel {
        title: format!("{} Status - Incident History", page.name),
        link: format!("{}/status", page.url),
        description: format!("Statuspage of {}", page.name),
        language: Some("en".into()),
        pub_date: Some(rfc2822(page.updated_at)),
        last_build_date: Some(rfc2822(page.generated_at)),
        items,
        ..rss::Channel::default()
    };
    channel.write_to(Vec::new())
}
