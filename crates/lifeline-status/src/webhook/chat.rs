//! Slack- and Discord-compatible incoming-webhook bodies, the alternatives
//! to the Statuspage envelope for subscribers that post into a chat.
//!
//! Both carry the same summary: a title ("Investigating: Elevated errors on
//! Chat Completions"), the latest update's text, the affected components and
//! a link to the incident on the page.
//!
//! Text from incidents is untrusted (an operator or an upstream may write
//! anything), so it is escaped for each target:
//!
//! - **Slack** (`{"text", "blocks"}`, `mrkdwn` sections): `&`, `<` and `>`
//!   become `&amp;`, `&lt;`, `&gt;`, as Slack's formatting guide asks; that
//!   also disarms `<!channel>`, `<@U123>` and `<url|label>` links.
//! - **Discord** (`{"content", "embeds", "allowed_mentions"}`): Markdown
//!   characters are backslash-escaped (so no masked `[label](url)` link or
//!   formatting survives), every `@` is followed by a zero-width space (so
//!   `@everyone`, `@here` and `<@123>` mention no one), and
//!   `allowed_mentions.parse` is empty as a second guard.
//!
//! Lengths are cut to the targets' limits (Slack section 3,000 characters;
//! Discord content 2,000, embed title 256, description 4,096, field 1,024).

use lifeline_store::{Impact, IncidentStatus, MaintenanceStatus};
use serde_json::json;

use super::payload::Event;
use crate::page::{ComponentStatus, Page};
use crate::render::json::{incident_link, maintenance_link};
use crate::render::time::rfc3339_ms;

/// What both chat formats say about an event.
struct Summary {
    title: String,
    body: String,
    link: String,
    components: Vec<String>,
    colour: u32,
    at_ms: i64,
}

const GREEN: u32 = 0x2f_b3_44;
const YELLOW: u32 = 0xf1_c4_0f;
const ORANGE: u32 = 0xe6_7e_22;
const RED: u32 = 0xe7_4c_3c;
const BLUE: u32 = 0x34_98_db;

fn incident_word(s: IncidentStatus) -> &'static str {
    match s {
        IncidentStatus::Investigating => "Investigating",
        IncidentStatus::Identified => "Identified",
        IncidentStatus::Monitoring => "Monitoring",
        IncidentStatus::Resolved => "Resolved",
        IncidentStatus::Postmortem => "Postmortem",
    }
}

fn component_words(s: ComponentStatus) -> &'static str {
    match s {
        ComponentStatus::Operational => "operational",
        ComponentStatus::DegradedPerformance => "degraded performance",
        ComponentStatus::PartialOutage => "partial outage",
        ComponentStatus::MajorOutage => "major outage",
        ComponentStatus::UnderMaintenance => "under maintenance",
    }
}

fn component_colour(s: ComponentStatus) -> u32 {
    match s {
        ComponentStatus::Operational => GREEN,
        ComponentStatus::DegradedPerformance => YELLOW,
        ComponentStatus::PartialOutage => ORANGE,
        ComponentStatus::MajorOutage => RED,
        ComponentStatus::UnderMaintenance => BLUE,
    }
}

fn names(page: &Page, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            page.component(id)
                .map_or_else(|| id.clone(), |c| c.name.clone())
        })
        .collect()
}

fn summarize(page: &Page, event: &Event<'_>) -> Summary {
    match event {
        Event::Incident(_, i) => {
            let inc = &i.incident;
            let colour = if !inc.status.is_open() {
                GREEN
            } else {
                match inc.impact {
                    Impact::None | Impact::Minor => YELLOW,
                    Impact::Major => ORANGE,
                    Impact::Critical => RED,
                }
            };
            Summary {
                title: format!("{}: {}", incident_word(inc.status), inc.name),
                body: i
                    .incident_updates
                    .last()
                    .map(|u| u.body.clone())
                    .unwrap_or_default(),
                link: incident_link(&page.url, inc.id),
                components: names(page, &inc.components),
                colour,
                at_ms: inc.updated_at,
            }
        }
        Event::Maintenance(_, m) => {
            let (word, colour) = match m.status {
                MaintenanceStatus::Scheduled => ("Maintenance scheduled", BLUE),
                MaintenanceStatus::InProgress => ("Maintenance in progress", BLUE),
                MaintenanceStatus::Verifying => ("Maintenance verifying", BLUE),
                MaintenanceStatus::Completed => ("Maintenance completed", GREEN),
            };
            Summary {
                title: format!("{word}: {}", m.name),
                body: format!(
                    "{} to {}\n{}",
                    rfc3339_ms(m.scheduled_for),
                    rfc3339_ms(m.scheduled_until),
                    m.body
                ),
                link: maintenance_link(&page.url, m.id),
                components: names(page, &m.components),
                colour,
                at_ms: m.updated_at,
            }
        }
        Event::Component(c) => Summary {
            title: format!(
                "{} is {} (was {})",
                c.component.name,
                component_words(c.new_status),
                component_words(c.old_status)
            ),
            body: String::new(),
            link: format!("{}/status", page.url),
            components: vec![c.component.name.clone()],
            colour: component_colour(c.new_status),
            at_ms: c.at_ms,
        },
    }
}

/// Cuts `s` to at most `max` characters, ending in `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes text for Slack `mrkdwn` and plain `text`: `&`, `<`, `>`.
pub fn escape_slack(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for Discord: Markdown characters backslash-escaped, and a
/// zero-width space after every `@` so no mention resolves.
pub fn escape_discord(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '(' | ')' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200b}"),
            c => out.push(c),
        }
    }
    out
}

/// The Slack incoming-webhook body for `event`: `text` (the notification's
/// fallback) and `blocks` (a section with the title and text, a context line
/// with the components and the link).
pub fn slack(page: &Page, event: &Event<'_>) -> String {
    let s = summarize(page, event);
    let title = escape_slack(&s.title);
    let mut section = format!("*{}*", cut(&title, 500));
    if !s.body.is_empty() {
        section.push('\n');
        section.push_str(&escape_slack(&s.body));
    }
    let mut context = String::new();
    if !s.components.is_empty() {
        context.push_str("Affected: ");
        context.push_str(&escape_slack(&s.components.join(", ")));
        context.push_str(" · ");
    }
    context.push_str(&format!(
        "<{}|{}>",
        escape_slack(&s.link),
        escape_slack(&page.name)
    ));
    json!({
        "text": cut(&title, 3000),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(&section, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&context, 3000)}]},
        ],
    })
    .to_string()
}

/// The Discord incoming-webhook body for `event`: `content` (the title),
/// one embed (title, text, link, colour, time, affected components, the
/// page's name) and `allowed_mentions` that allows none.
pub fn discord(page: &Page, event: &Event<'_>) -> String {
    let s = summarize(page, event);
    let title = escape_discord(&s.title);
    let mut embed = json!({
        "title": cut(&title, 256),
        "url": s.link,
        "color": s.colour,
        "timestamp": rfc3339_ms(s.at_ms),
        "footer": {"text": cut(&escape_discord(&page.name), 2048)},
    });
    if !s.body.is_empty() {
        embed["description"] = json!(cut(&escape_discord(&s.body), 4096));
    }
    if !s.components.is_empty() {
        embed["fields"] = json!([{
            "name": "Affected components",
            "value": cut(&escape_discord(&s.components.join(", ")), 1024),
            "inline": false,
        }]);
    }
    json!({
        "content": cut(&title, 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    })
    .to_string()
}
