//! Statuspage's documents, field by field, and checks on the page's HTML
//! and feeds: what every test that reads them holds them to.

use serde_json::Value;

/// The eight Statuspage documents and the top-level keys each must have.
pub(super) const DOCUMENTS: [(&str, &[&str]); 8] = [
    (
        "summary.json",
        &[
            "page",
            "status",
            "components",
            "incidents",
            "scheduled_maintenances",
        ],
    ),
    ("status.json", &["page", "status"]),
    ("components.json", &["page", "components"]),
    ("incidents.json", &["page", "incidents"]),
    ("incidents/unresolved.json", &["page", "incidents"]),
    (
        "scheduled-maintenances.json",
        &["page", "scheduled_maintenances"],
    ),
    (
        "scheduled-maintenances/upcoming.json",
        &["page", "scheduled_maintenances"],
    ),
    (
        "scheduled-maintenances/active.json",
        &["page", "scheduled_maintenances"],
    ),
];

const COMPONENT_STATUSES: [&str; 5] = [
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
];
const INCIDENT_STATUSES: [&str; 5] = [
    "investigating",
    "identified",
    "monitoring",
    "resolved",
    "postmortem",
];
const IMPACTS: [&str; 4] = ["none", "minor", "major", "critical"];

pub(super) fn is_iso_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// A Statuspage component object, field by field.
fn check_component(c: &Value) {
    for key in [
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "position",
        "description",
        "showcase",
        "start_date",
        "group_id",
        "page_id",
        "group",
        "only_show_if_degraded",
    ] {
        assert!(c.get(key).is_some(), "component without `{key}`: {c:#}");
    }
    assert!(c["id"].is_string() && c["name"].is_string(), "{c:#}");
    let status = c["status"].as_str().unwrap_or("");
    assert!(COMPONENT_STATUSES.contains(&status), "{c:#}");
    assert!(
        is_iso_time(&c["created_at"]) && is_iso_time(&c["updated_at"]),
        "{c:#}"
    );
    assert!(c["position"].is_u64(), "{c:#}");
    assert!(
        c["group"].is_boolean() && c["showcase"].is_boolean(),
        "{c:#}"
    );
    if c["group"] == true {
        assert!(c["components"].is_array(), "group without children: {c:#}");
    }
}

/// A Statuspage incident object (with its updates), field by field.
pub(super) fn check_incident(i: &Value) {
    for key in [
        "id",
        "name",
        "status",
        "impact",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "started_at",
        "shortlink",
        "page_id",
        "incident_updates",
        "components",
    ] {
        assert!(i.get(key).is_some(), "incident without `{key}`: {i:#}");
    }
    assert!(i["id"].is_string(), "{i:#}");
    let status = i["status"].as_str().unwrap_or("");
    assert!(INCIDENT_STATUSES.contains(&status), "{i:#}");
    let impact = i["impact"].as_str().unwrap_or("");
    assert!(IMPACTS.contains(&impact), "{i:#}");
    for u in i["incident_updates"].as_array().unwrap() {
        for key in [
            "id",
            "status",
            "body",
            "incident_id",
            "created_at",
            "updated_at",
            "display_at",
            "affected_components",
        ] {
            assert!(u.get(key).is_some(), "update without `{key}`: {u:#}");
        }
        assert_eq!(u["incident_id"], i["id"], "{u:#}");
        assert!(
            INCIDENT_STATUSES.contains(&u["status"].as_str().unwrap_or("")),
            "{u:#}"
        );
    }
    for c in i["components"].as_array().unwrap() {
        check_component(c);
    }
}

/// One of the eight documents: its keys and every object in it.
pub(super) fn check_document(path: &str, keys: &[&str], v: &Value) {
    for key in keys {
        assert!(v.get(*key).is_some(), "{path} without `{key}`: {v:#}");
    }
    let page = &v["page"];
    for key in ["id", "name", "url", "time_zone", "updated_at"] {
        assert!(page.get(key).is_some(), "{path}: page without `{key}`");
    }
    assert_eq!(page["name"], "Acme AI status", "{path}");
    assert!(is_iso_time(&page["updated_at"]), "{path}: {page}");
    if let Some(status) = v.get("status") {
        let indicator = status["indicator"].as_str().unwrap_or("");
        assert!(
            ["none", "minor", "major", "critical", "maintenance"].contains(&indicator),
            "{path}: {status}"
        );
        assert!(status["description"].is_string(), "{path}: {status}");
    }
    if let Some(list) = v.get("components") {
        for c in list.as_array().unwrap() {
            check_component(c);
        }
    }
    if let Some(list) = v.get("incidents") {
        for i in list.as_array().unwrap() {
            check_incident(i);
        }
    }
    if let Some(list) = v.get("scheduled_maintenances") {
        for m in list.as_array().unwrap() {
            assert!(is_iso_time(&m["scheduled_for"]), "{m:#}");
            assert!(is_iso_time(&m["scheduled_until"]), "{m:#}");
            assert!(
                ["scheduled", "in_progress", "verifying", "completed"]
                    .contains(&m["status"].as_str().unwrap_or("")),
                "{m:#}"
            );
        }
    }
}

pub(super) fn atom(body: &str) -> atom_syndication::Feed {
    body.parse()
        .unwrap_or_else(|e| panic!("Atom does not parse ({e}):\n{body}"))
}

pub(super) fn rss(body: &str) -> rss::Channel {
    body.parse()
        .unwrap_or_else(|e| panic!("RSS does not parse ({e}):\n{body}"))
}

/// Every tag of an HTML document (`<…>`), lower-cased; the source of a
/// `<script>` element is skipped.
fn tags(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start..];
        let end = after.find('>').map_or(after.len(), |e| e + 1);
        let tag = after[..end].to_ascii_lowercase();
        rest = &after[end..];
        if tag.starts_with("<script") {
            let close = rest.find("</script>").unwrap_or(rest.len());
            rest = &rest[close..];
        }
        out.push(tag);
    }
    out
}

/// No markup in `html` can run script: no `<script>` but the page's own
/// (inline, allowed by its hash), no event-handler attribute, no
/// `javascript:` URL, no `<img>`.
pub(super) fn assert_inert(what: &str, html: &str) {
    assert!(!html.contains("<script>alert"), "{what}: {html}");
    for tag in tags(html) {
        let handler = tag
            .trim_start_matches('<')
            .split(|c: char| c.is_ascii_whitespace())
            .skip(1)
            .filter_map(|a| a.split_once('=').map(|(name, _)| name))
            .find(|name| {
                name.len() > 2
                    && name.starts_with("on")
                    && name.chars().all(|c| c.is_ascii_lowercase())
            });
        assert!(handler.is_none(), "{what}: event handler in {tag}");
        assert!(!tag.contains("javascript:"), "{what}: script URL in {tag}");
        assert!(!tag.starts_with("<img"), "{what}: image tag {tag}");
        if tag.starts_with("<script") {
            assert_eq!(tag, "<script>", "{what}: a script with attributes");
        }
    }
}
