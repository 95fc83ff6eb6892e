//! Parsing a provider's published status into one shape, [`Snapshot`].
//!
//! - **Statuspage v2 JSON** (`summary.json`, `incidents.json`) and
//!   **incident.io's v2-compatible JSON** (same shape; only the latest 50
//!   incidents, components sometimes missing from `summary.json` and from
//!   incidents): every field is optional, unknown fields are ignored and
//!   enumerations are kept as the provider's strings, so an unknown value
//!   (`full_outage`, `maintenance`) is carried, never an error. An incident
//!   without an id or without any timestamp is skipped.
//! - **Atom and RSS** (Statuspage's `history.atom`/`history.rss`,
//!   incident.io's `feed.atom`/`feed.rss`, Google's and AWS's feeds): one
//!   entry is one incident. Feeds carry no status field, so it is inferred
//!   (see [`feed`]).

use serde::Deserialize;

/// What one read of a source said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The page indicator (`none`, `minor`, `major`, `critical`,
    /// `maintenance`, or whatever the provider says).
    pub indicator: Option<String>,
    /// The provider's description of it.
    pub description: Option<String>,
    /// Components and their statuses (JSON sources only).
    pub components: Vec<UpstreamComponent>,
    /// Incidents, resolved and not, as listed.
    pub incidents: Vec<UpstreamIncident>,
}

/// A component on the provider's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamComponent {
    /// Its name ("Claude API", "Chat Completions").
    pub name: String,
    /// Its status, in the provider's spelling (`operational`,
    /// `degraded_performance`, `partial_outage`, `major_outage`,
    /// `full_outage`, …).
    pub status: String,
}

/// An incident on the provider's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamIncident {
    /// The provider's id (Statuspage id, incident.io ULID, feed entry id).
    pub id: String,
    /// Its title.
    pub name: String,
    /// Its status, lowercase, in the provider's spelling (`investigating`,
    /// …, `resolved`, `postmortem`; for feeds the inferred word).
    pub status: String,
    /// Its impact (`none`, `minor`, `major`, `critical`), if given.
    pub impact: Option<String>,
    /// Names of the components it affects, if given.
    pub components: Vec<String>,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it started, if the provider says (Statuspage `started_at`).
    pub started_at: Option<i64>,
    /// When it was resolved (unix ms), if it is.
    pub resolved_at: Option<i64>,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// Link to it.
    pub shortlink: Option<String>,
}

impl UpstreamIncident {
    /// Whether it is over: a `resolved_at`, or a status of `resolved`,
    /// `postmortem` or `completed`.
    pub fn is_resolved(&self) -> bool {
        self.resolved_at.is_some() || is_resolved_word(&self.status)
    }
}

fn is_resolved_word(status: &str) -> bool {
    matches!(status, "resolved" | "postmortem" | "completed")
}

/// Why a body could not be read as the expected format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// RFC 3339 (any offset) to unix ms.
pub(crate) fn rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// RFC 2822 (RSS `pubDate`) to unix ms; a wrong day of the week, which
/// some feeds carry, is ignored; RFC 3339 is accepted too.
fn rfc2822(s: &str) -> Option<i64> {
    let s = s.trim();
    let without_weekday = s.split_once(", ").map_or(s, |(_, rest)| rest);
    chrono::DateTime::parse_from_rfc2822(s)
        .or_else(|_| chrono::DateTime::parse_from_rfc2822(without_weekday))
        .ok()
        .map(|t| t.timestamp_millis())
        .or_else(|| rfc3339(s))
}

// === Statuspage v2 and incident.io's compatible JSON ===

#[derive(Deserialize, Default)]
#[serde(default)]
struct V2Document {
    status: Option<V2Status>,
    components: Option<Vec<V2Component>>,
    incidents: Option<Vec<V2Incident>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct V2Status {
    indicator: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct V2Component {
    name: Option<String>,
    status: Option<String>,
    group: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct V2Incident {
    id: Option<serde_json::Value>,
    name: Option<String>,
    status: Option<String>,
    impact: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    started_at: Option<String>,
    resolved_at: Option<String>,
    shortlink: Option<String>,
    components: Option<Vec<V2Component>>,
}

/// Parses a Statuspage v2 (or incident.io v2-compatible) `summary.json`,
/// `status.json`, `components.json` or `incidents.json`. Fails only when
/// the body is not a JSON object with at least one of `status`,
/// `components` or `incidents` (an HTML page, a challenge, garbage).
pub fn v2_json(body: &[u8]) -> Result<Snapshot, ParseError> {
    let doc: V2Document =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("not v2 JSON: {e}")))?;
    if doc.status.is_none() && doc.components.is_none() && doc.incidents.is_none() {
        return Err(ParseError(
            "JSON without status, components or incidents".into(),
        ));
    }
    let status = doc.status.unwrap_or_default();
    Ok(Snapshot {
        indicator: status.indicator.map(|s| s.to_ascii_lowercase()),
        description: status.description,
        components: doc
            .components
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.group != Some(true))
            .filter_map(|c| {
                Some(UpstreamComponent {
                    name: c.name?,
                    status: c.status.unwrap_or_default().to_ascii_lowercase(),
                })
            })
            .collect(),
        incidents: doc
            .incidents
            .unwrap_or_default()
            .into_iter()
            .filter_map(v2_incident)
            .collect(),
    })
}

fn v2_incident(i: V2Incident) -> Option<UpstreamIncident> {
    let id = match i.id? {
        serde_json::Value::String(s) if !s.is_empty() => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let started_at = i.started_at.as_deref().and_then(rfc3339);
    let updated_at = i.updated_at.as_deref().and_then(rfc3339);
    let created_at = i
        .created_at
        .as_deref()
        .and_then(rfc3339)
        .or(started_at)
        .or(updated_at)?;
    let status = i.status.unwrap_or_default().to_ascii_lowercase();
    Some(UpstreamIncident {
        id,
        name: i.name.unwrap_or_default(),
        impact: i.impact.map(|s| s.to_ascii_lowercase()),
        components: i
            .components
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.name)
            .collect(),
        created_at,
        started_at,
        resolved_at: i.resolved_at.as_deref().and_then(rfc3339),
        updated_at: updated_at.unwrap_or(created_at),
        shortlink: i.shortlink,
        status,
    })
}

// === Atom and RSS ===

/// Status words in an entry's text, and whether each means the incident
/// is over. Matched as whole words, case-insensitively.
const STATUS_WORDS: [(&str, bool); 11] = [
    ("resolved", true),
    ("completed", true),
    ("postmortem", true),
    ("operating normally", true),
    ("investigating", false),
    ("identified", false),
    ("monitoring", false),
    ("update", false),
    ("in progress", false),
    ("verifying", false),
    ("scheduled", false),
];

/// Status markers in an entry's title (AWS, Google), which state the
/// latest status; a title's other words are its name ("Scheduled database
/// maintenance" is not a status).
const TITLE_MARKERS: [(&str, &str, bool); 7] = [
    ("[resolved]", "resolved", true),
    ("resolved:", "resolved", true),
    ("operating normally", "resolved", true),
    ("[investigating]", "investigating", false),
    ("update:", "update", false),
    ("informational message", "informational", false),
    ("service degradation", "degraded", false),
];

/// Parses an Atom or RSS feed (whichever it is) into incidents, with
/// `now_ms` for the age rule below.
///
/// **Heuristic.** A feed entry has no status field, so its status is read
/// from its *latest* text:
///
/// 1. a status marker in the title, as AWS and Google write them:
///    `[RESOLVED]`, `RESOLVED:`, `operating normally` (over);
///    `[INVESTIGATING]`, `UPDATE:`, `Informational message`, `Service
///    degradation` (not over);
/// 2. else the first status word in the content (or summary/description)
///    with markup removed. Statuspage and incident.io list an entry's
///    updates newest first, so the first word is the latest status:
///    `resolved`, `completed`, `postmortem`, `operating normally` (over);
///    `investigating`, `identified`, `monitoring`, `update`, `in progress`,
///    `verifying`, `scheduled` (not over);
/// 3. else the status is `unknown`: open while the entry's last change is
///    under 24 hours old, over after that, so an old entry a feed keeps
///    listing cannot hold a provider "degraded" forever.
///
/// Times: Atom's `published` (else `updated`) is when it began and
/// `updated` its last change, which for an entry found over is taken as its
/// resolution. RSS has only `pubDate`, taken as all three, so resolved RSS
/// incidents have no duration (restoration estimates drop them). The
/// feed's indicator is `minor` with an open entry and `none` otherwise;
/// feeds say nothing of severity.
pub fn feed(body: &[u8], now_ms: i64) -> Result<Snapshot, ParseError> {
    let entries = match atom_syndication::Feed::read_from(body) {
        Ok(feed) => atom_entries(&feed),
        Err(atom_error) => match rss::Channel::read_from(body) {
            Ok(channel) => rss_entries(&channel),
            Err(rss_error) => {
                return Err(ParseError(format!(
                    "neither Atom ({atom_error}) nor RSS ({rss_error})"
                )))
            }
        },
    };
    let incidents: Vec<UpstreamIncident> = entries
        .into_iter()
        .map(|e| feed_incident(e, now_ms))
        .collect();
    let open = incidents.iter().any(|i| !i.is_resolved());
    Ok(Snapshot {
        indicator: Some(if open { "minor" } else { "none" }.into()),
        description: None,
        components: Vec::new(),
        incidents,
    })
}

struct FeedEntry {
    id: String,
    title: String,
    text: String,
    published: Option<i64>,
    updated: Option<i64>,
    link: Option<String>,
}

fn atom_entries(feed: &atom_syndication::Feed) -> Vec<FeedEntry> {
    feed.entries()
        .iter()
        .map(|e| {
            let text = e
                .content()
                .and_then(|c| c.value())
                .map(str::to_owned)
                .or_else(|| e.summary().map(|s| s.value.clone()))
                .unwrap_or_default();
            let link = e
                .links()
                .iter()
                .find(|l| l.rel() == "alternate")
                .or_else(|| e.links().first())
                .map(|l| l.href().to_owned());
            FeedEntry {
                id: e.id().to_owned(),
                title: e.title().value.clone(),
                text,
                published: e.published().map(|t| t.timestamp_millis()),
                updated: Some(e.updated().timestamp_millis()).filter(|&t| t > 0),
                link,
            }
        })
        .collect()
}

fn rss_entries(channel: &rss::Channel) -> Vec<FeedEntry> {
    channel
        .items()
        .iter()
        .map(|i| {
            let date = i.pub_date().and_then(rfc2822);
            let link = i.link().map(str::to_owned);
            FeedEntry {
                id: i
                    .guid()
                    .map(|g| g.value().to_owned())
                    .or_else(|| link.clone())
                    .or_else(|| i.title().map(str::to_owned))
                    .unwrap_or_default(),
                title: i.title().unwrap_or_default().to_owned(),
                text: i
                    .content()
                    .or_else(|| i.description())
                    .unwrap_or_default()
                    .to_owned(),
                published: date,
                updated: date,
                link,
            }
        })
        .collect()
}

fn feed_incident(e: FeedEntry, now_ms: i64) -> UpstreamIncident {
    let updated_at = e.updated.or(e.published).unwrap_or(now_ms);
    let created_at = e.published.unwrap_or(updated_at).min(updated_at);
    let title = e.title.to_ascii_lowercase();
    let marker = TITLE_MARKERS
        .iter()
        .find(|(marker, _, _)| title.contains(marker))
        .map(|(_, status, over)| ((*status).to_owned(), *over));
    let (status, over) = marker.unwrap_or_else(|| {
        let text = strip_markup(&e.text).to_ascii_lowercase();
        STATUS_WORDS
            .iter()
            .filter_map(|(word, over)| find_word(&text, word).map(|at| (at, *word, *over)))
            .min_by_key(|(at, _, _)| *at)
            .map_or_else(
                || ("unknown".to_owned(), now_ms - updated_at > 24 * 3_600_000),
                |(_, word, over)| (word.to_owned(), over),
            )
    });
    UpstreamIncident {
        id: e.id,
        name: e.title,
        status,
        impact: None,
        components: Vec::new(),
        created_at,
        started_at: None,
        resolved_at: over.then_some(updated_at),
        updated_at,
        shortlink: e.link,
    }
}

/// Byte offset of `word` in `text` as a whole word.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let end = at + word.len();
        let before = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let after = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
        before && after
    })
}

/// Text of an HTML fragment: tags dropped, the common entities decoded.
fn strip_markup(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
