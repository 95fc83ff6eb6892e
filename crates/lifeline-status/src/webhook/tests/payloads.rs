//! Webhook payloads: Statuspage's envelope field by field, and Slack and
//! Discord bodies with hostile text escaped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use lifeline_store::{IncidentStatus, MaintenanceStatus};
use serde_json::Value;

use super::{incident, maintenance, page, T0};
use crate::page::{ComponentStatus, IncidentView};
use crate::render::tests::json::doc;
use crate::webhook::{chat, payload, ComponentChange, Event, IncidentChange, MaintenanceChange};

#[test]
fn the_statuspage_envelope_has_statuspage_field_names() {
    let page = page();
    let inc = incident(
        "Elevated errors on Chat Completions",
        &[
            (IncidentStatus::Investigating, "Looking into it"),
            (IncidentStatus::Monitoring, "Fix deployed"),
            (IncidentStatus::Resolved, "All good"),
        ],
        &["chat"],
    );
    let body = payload::statuspage(
        &page,
        &Event::Incident(IncidentChange::Resolved, &inc),
        "https://u",
        "https://d",
        T0 + 1,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["meta"]["unsubscribe"], "https://u");
    assert_eq!(v["meta"]["documentation"], "https://d");
    assert_eq!(v["meta"]["generated_at"], "2026-08-23T10:24:00.001Z");
    assert_eq!(v["page"]["id"], "gw01page");
    assert_eq!(v["page"]["status_indicator"], "major");
    assert_eq!(v["page"]["status_description"], "Partial System Outage");
    let i = &v["incident"];
    assert_eq!(i["id"], "7");
    assert_eq!(i["status"], "resolved");
    assert_eq!(i["impact"], "major");
    assert_eq!(i["created_at"], "2026-08-23T10:24:00.000Z");
    assert_eq!(i["started_at"], "2026-08-23T10:24:00.000Z");
    assert_eq!(i["monitoring_at"], "2026-08-23T10:25:00.000Z");
    assert_eq!(i["resolved_at"], "2026-08-23T10:26:00.000Z");
    assert_eq!(i["updated_at"], "2026-08-23T10:26:00.000Z");
    assert_eq!(i["shortlink"], "https://status.acme.ai/status/incidents/7");
    assert_eq!(i["page_id"], "gw01page");
    assert!(i.get("scheduled_for").is_none());
    let updates = i["incident_updates"].as_array().unwrap();
    assert_eq!(updates.len(), 3);
    // Newest first, as Statuspage lists them.
    assert_eq!(updates[0]["status"], "resolved");
    assert_eq!(updates[0]["id"], "102");
    assert_eq!(updates[0]["incident_id"], "7");
    assert_eq!(updates[0]["body"], "All good");
    assert_eq!(updates[2]["display_at"], "2026-08-23T10:24:00.000Z");
    for key in ["affected_components", "custom_tweet", "tweet_id"] {
        assert!(updates[0][key].is_null(), "{key}");
    }
    assert_eq!(updates[0]["deliver_notifications"], true);
    let c = &i["components"][0];
    assert_eq!(c["id"], "chat");
    assert_eq!(c["name"], "Chat Completions");
    assert_eq!(c["status"], "major_outage");
    assert_eq!(c["group_id"], "apis");
    assert_eq!(c["page_id"], "gw01page");
    assert_eq!(c["position"], 1);
    assert_eq!(c["group"], false);
    assert_eq!(c["start_date"], "2026-08-22");
    assert!(c["description"].is_null());
    assert!(v.get("component_update").is_none());
}

#[test]
fn component_updates_and_maintenance_envelopes() {
    let page = page();
    let change = ComponentChange {
        component: page.component("embeddings").unwrap(),
        old_status: ComponentStatus::Operational,
        new_status: ComponentStatus::DegradedPerformance,
        at_ms: T0,
    };
    let v: Value = serde_json::from_str(&payload::statuspage(
        &page,
        &Event::Component(change),
        "u",
        "d",
        T0,
    ))
    .unwrap();
    assert!(v.get("incident").is_none());
    assert_eq!(v["component"]["id"], "embeddings");
    assert_eq!(v["component"]["status"], "degraded_performance");
    assert_eq!(v["component"]["position"], 2);
    let u = &v["component_update"];
    assert_eq!(u["old_status"], "operational");
    assert_eq!(u["new_status"], "degraded_performance");
    assert_eq!(u["created_at"], "2026-08-23T10:24:00.000Z");
    assert_eq!(u["component_type"], "Component");
    assert_eq!(u["component_id"], "embeddings");
    assert!(u["id"].is_string());

    let m = maintenance(MaintenanceStatus::InProgress, &["chat"], T0);
    let v: Value = serde_json::from_str(&payload::statuspage(
        &page,
        &Event::Maintenance(MaintenanceChange::Started, &m),
        "u",
        "d",
        T0,
    ))
    .unwrap();
    let i = &v["incident"];
    assert_eq!(i["id"], "3");
    assert_eq!(i["status"], "in_progress");
    assert_eq!(i["impact"], "none");
    assert_eq!(i["scheduled_for"], "2026-08-23T10:24:00.000Z");
    assert_eq!(i["scheduled_until"], "2026-08-23T10:54:00.000Z");
    assert!(i["resolved_at"].is_null());
    assert_eq!(i["incident_updates"][0]["status"], "in_progress");
    assert_eq!(i["components"][0]["id"], "chat");
    assert_eq!(i["started_at"], "2026-08-22T10:24:00.000Z");
    assert_eq!(
        i["shortlink"],
        "https://status.acme.ai/status#maintenance-3"
    );
}

#[test]
fn the_envelope_objects_are_the_api_v2_objects() {
    let mut page = page();
    let inc = incident(
        "Elevated errors on Chat Completions",
        &[
            (IncidentStatus::Investigating, "Looking into it"),
            (IncidentStatus::Monitoring, "Fix deployed"),
            (IncidentStatus::Investigating, "Errors are back"),
            (IncidentStatus::Monitoring, "Second fix deployed"),
        ],
        &["chat", "embeddings"],
    );
    let m = maintenance(
        MaintenanceStatus::Completed,
        &["embeddings"],
        T0 + 1_800_000,
    );
    page.incidents.push(IncidentView {
        incident: inc.clone(),
        eta: None,
    });
    page.maintenances.push(m.clone());
    let envelope = |event: Event<'_>| -> Value {
        serde_json::from_str(&payload::statuspage(&page, &event, "u", "d", T0)).unwrap()
    };

    let v = envelope(Event::Incident(IncidentChange::Updated, &inc));
    assert_eq!(v["incident"], doc(&page, "incidents.json")["incidents"][0]);
    // The latest move to monitoring, as `incidents.json` says.
    assert_eq!(v["incident"]["monitoring_at"], "2026-08-23T10:27:00.000Z");

    let v = envelope(Event::Maintenance(MaintenanceChange::Completed, &m));
    assert_eq!(
        v["incident"],
        doc(&page, "scheduled-maintenances.json")["scheduled_maintenances"][0]
    );

    let change = ComponentChange {
        component: page.component("embeddings").unwrap(),
        old_status: ComponentStatus::Operational,
        new_status: ComponentStatus::PartialOutage,
        at_ms: T0,
    };
    let v = envelope(Event::Component(change));
    let mut listed = doc(&page, "components.json")["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "embeddings")
        .unwrap()
        .clone();
    listed["status"] = "partial_outage".into();
    assert_eq!(v["component"], listed);
}

#[test]
fn delivery_events_are_named_by_kind() {
    let page = page();
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let m = maintenance(MaintenanceStatus::InProgress, &[], T0);
    let change = ComponentChange {
        component: page.component("chat").unwrap(),
        old_status: ComponentStatus::Operational,
        new_status: ComponentStatus::MajorOutage,
        at_ms: T0,
    };
    let labels: Vec<&str> = [
        Event::Incident(IncidentChange::Created, &inc),
        Event::Incident(IncidentChange::Updated, &inc),
        Event::Incident(IncidentChange::Resolved, &inc),
        Event::Maintenance(MaintenanceChange::Started, &m),
        Event::Maintenance(MaintenanceChange::Completed, &m),
        Event::Component(change),
    ]
    .iter()
    .map(Event::label)
    .collect();
    assert_eq!(
        labels,
        [
            "incident.created",
            "incident.updated",
            "incident.resolved",
            "maintenance.started",
            "maintenance.completed",
            "component.updated"
        ]
    );
}

const HOSTILE_NAME: &str = "<script>alert(1)</script> & @everyone <!channel>";
const HOSTILE_BODY: &str =
    "ping <@123456> and @here, see [login](javascript:alert(1)) *now* <https://evil.example|click>";

#[test]
fn slack_bodies_have_text_and_blocks_and_escape_hostile_text() {
    let page = page();
    let inc = incident(
        HOSTILE_NAME,
        &[(IncidentStatus::Identified, HOSTILE_BODY)],
        &["chat"],
    );
    let body = chat::slack(&page, &Event::Incident(IncidentChange::Created, &inc));
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Identified: &lt;script&gt;alert(1)&lt;/script&gt; &amp; @everyone &lt;!channel&gt;"
        ),
        "{text}"
    );
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert_eq!(blocks[1]["type"], "context");
    let section = blocks[0]["text"]["text"].as_str().unwrap();
    let context = blocks[1]["elements"][0]["text"].as_str().unwrap();
    // No raw `<` survives from the incident's text: no mention, no link.
    for t in [text, section] {
        assert!(!t.contains('<') && !t.contains('>'), "{t}");
    }
    assert!(section.contains("&lt;@123456&gt;"));
    assert!(section.contains("&lt;https://evil.example|click&gt;"));
    assert_eq!(
        context,
        "Affected: Chat Completions · <https://status.acme.ai/status/incidents/7|Acme AI status>"
    );
}

#[test]
fn discord_bodies_have_content_and_embeds_and_mention_no_one() {
    let page = page();
    let inc = incident(
        HOSTILE_NAME,
        &[(IncidentStatus::Identified, HOSTILE_BODY)],
        &["chat"],
    );
    let body = chat::discord(&page, &Event::Incident(IncidentChange::Created, &inc));
    let v: Value = serde_json::from_str(&body).unwrap();
    let content = v["content"].as_str().unwrap();
    let embed = &v["embeds"][0];
    let description = embed["description"].as_str().unwrap();
    assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
    for t in [content, embed["title"].as_str().unwrap(), description] {
        assert!(!t.contains("@everyone") && !t.contains("@here"), "{t}");
        // `<@123456>` is escaped and its `@` broken by a zero-width space.
        assert!(!t.contains("@1"), "{t}");
        assert!(!t.contains("]("), "{t}");
    }
    assert!(content.contains("@\u{200b}everyone"));
    assert!(
        description.contains("\\[login\\]\\(javascript:alert\\(1\\)\\)"),
        "{description}"
    );
    assert!(description.contains("\\*now\\*"));
    assert_eq!(embed["url"], "https://status.acme.ai/status/incidents/7");
    assert_eq!(embed["color"], 0xe6_7e_22);
    assert_eq!(embed["timestamp"], "2026-08-23T10:24:00.000Z");
    assert_eq!(embed["fields"][0]["value"], "Chat Completions");
    assert_eq!(embed["footer"]["text"], "Acme AI status");

    // Long text is cut to Discord's limits.
    let long = "x".repeat(5000);
    let inc = incident(
        &long,
        &[(IncidentStatus::Investigating, long.as_str())],
        &[],
    );
    let v: Value = serde_json::from_str(&chat::discord(
        &page,
        &Event::Incident(IncidentChange::Created, &inc),
    ))
    .unwrap();
    assert_eq!(v["content"].as_str().unwrap().chars().count(), 2000);
    assert_eq!(
        v["embeds"][0]["title"].as_str().unwrap().chars().count(),
        256
    );
    assert_eq!(
        v["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        4096
    );
    assert!(v["embeds"][0].get("fields").is_none());
}
