//! The Statuspage webhook envelope: `meta`, `page`, and either `incident`
//! (the full incident with `incident_updates`) or `component` +
//! `component_update`.
//!
//! Field names and enumerations are Statuspage's (see the reference model):
//! timestamps are RFC 3339 in UTC with milliseconds
//! (`2026-08-23T10:04:00.000Z`), ids are strings (the store's integer ids in
//! decimal), `incident_updates` are newest first as in Statuspage's
//! `incidents.json`, and `incident.components` holds full component objects.
//! A maintenance goes out as an `incident` object with the maintenance's
//! status (`scheduled`, `in_progress`, `verifying`, `completed`), impact
//! `none`, `scheduled_for` and `scheduled_until`, as Statuspage sends them.
//!
//! The incident and component objects here are the webhook's own small
//! serializers; the `/api/v2` renderers write the same field names.

use lifeline_store::{IncidentStatus, IncidentWithUpdates, ScheduledMaintenance};
use serde::Serialize;

use crate::page::{Component, ComponentStatus, Page};

/// What a notification is about.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An incident was opened, updated or resolved: the incident as it is
    /// now, with its whole timeline.
    Incident(&'a IncidentWithUpdates),
    /// A maintenance window started or ended (or was scheduled): the window
    /// as it is now.
    Maintenance(&'a ScheduledMaintenance),
    /// A component's status changed.
    Component(ComponentChange<'a>),
}

/// A component's status change.
#[derive(Debug, Clone, Copy)]
pub struct ComponentChange<'a> {
    /// The component, with its new status.
    pub component: &'a Component,
    /// The status before.
    pub old_status: ComponentStatus,
    /// The status after.
    pub new_status: ComponentStatus,
    /// When it changed (unix ms).
    pub at_ms: i64,
}

impl Event<'_> {
    /// Ids of the components the event concerns; empty for an incident or
    /// maintenance that names none (it concerns the whole page).
    pub fn components(&self) -> &[String] {
        match self {
            Event::Incident(i) => &i.incident.components,
            Event::Maintenance(m) => &m.components,
            Event::Component(c) => std::slice::from_ref(&c.component.id),
        }
    }

    /// A short label for the delivery log: `incident 12 investigating`,
    /// `maintenance 3 in_progress`, `component chat major_outage`.
    pub fn label(&self) -> String {
        match self {
            Event::Incident(i) => {
                format!("incident {} {}", i.incident.id, i.incident.status.as_str())
            }
            Event::Maintenance(m) => format!("maintenance {} {}", m.id, m.status.as_str()),
            Event::Component(c) => {
                format!("component {} {}", c.component.id, c.new_status.as_str())
            }
        }
    }
}

/// Unix milliseconds as RFC 3339, UTC, with milliseconds.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        // Out of chrono's range (±262,000 years): not a time this page has.
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// The link to an incident (or maintenance) on the page, Statuspage's
/// `shortlink`.
pub(crate) fn incident_link(page: &Page, id: i64) -> String {
    format!("{}/status/incidents/{id}", page.url)
}

/// The link for a maintenance window: the page, which lists them.
pub(crate) fn maintenance_link(page: &Page) -> String {
    format!("{}/status", page.url)
}

#[derive(Serialize)]
struct Envelope<'a> {
    meta: Meta<'a>,
    page: PageBlock<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<IncidentJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<ComponentJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component_update: Option<ComponentUpdateJson<'a>>,
}

#[derive(Serialize)]
struct Meta<'a> {
    unsubscribe: &'a str,
    documentation: &'a str,
    generated_at: String,
}

#[derive(Serialize)]
struct PageBlock<'a> {
    id: &'a str,
    status_indicator: &'static str,
    status_description: &'static str,
}

#[derive(Serialize)]
struct IncidentJson<'a> {
    id: String,
    name: &'a str,
    status: &'static str,
    impact: &'static str,
    created_at: String,
    updated_at: String,
    monitoring_at: Option<String>,
    resolved_at: Option<String>,
    started_at: String,
    shortlink: String,
    page_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_until: Option<String>,
    incident_updates: Vec<UpdateJson<'a>>,
    components: Vec<ComponentJson<'a>>,
}

#[derive(Serialize)]
struct UpdateJson<'a> {
    id: String,
    status: &'static str,
    body: &'a str,
    incident_id: String,
    created_at: String,
    updated_at: String,
    display_at: String,
    affected_components: Option<()>,
    deliver_notifications: bool,
    custom_tweet: Option<()>,
    tweet_id: Option<()>,
}

#[derive(Serialize)]
struct ComponentJson<'a> {
    id: &'a str,
    name: &'a str,
    status: &'static str,
    created_at: String,
    updated_at: String,
    position: usize,
    description: Option<&'a str>,
    showcase: bool,
    start_date: Option<String>,
    group_id: Option<&'a str>,
    page_id: &'a str,
    group: bool,
    only_show_if_degraded: bool,
}

#[derive(Serialize)]
struct ComponentUpdateJson<'a> {
    old_status: &'static str,
    new_status: &'static str,
    created_at: String,
    component_type: &'static str,
    id: String,
    component_id: &'a str,
}

fn component_json<'a>(page: &'a Page, c: &'a Component) -> ComponentJson<'a> {
    // Position within its group (or among ungrouped components), from 1.
    let position = page
        .components
        .iter()
        .filter(|o| o.group_id == c.group_id)
        .position(|o| o.id == c.id)
        .map_or(1, |p| p + 1);
    ComponentJson {
        id: &c.id,
        name: &c.name,
        status: c.status.as_str(),
        created_at: rfc3339_ms(c.created_at),
        updated_at: rfc3339_ms(c.updated_at),
        position,
        description: c.description.as_deref(),
        showcase: true,
        start_date: chrono::DateTime::from_timestamp_millis(c.created_at)
            .map(|t| t.format("%Y-%m-%d").to_string()),
        group_id: c.group_id.as_deref(),
        page_id: &page.id,
        group: false,
        only_show_if_degraded: false,
    }
}

fn components_json<'a>(page: &'a Page, ids: &[String]) -> Vec<ComponentJson<'a>> {
    ids.iter()
        .filter_map(|id| page.component(id))
        .map(|c| component_json(page, c))
        .collect()
}

fn incident_json<'a>(page: &'a Page, i: &'a IncidentWithUpdates) -> IncidentJson<'a> {
    let inc = &i.incident;
    let id = inc.id.to_string();
    // The first move to monitoring, as Statuspage's `monitoring_at`.
    let monitoring_at = i
        .incident_updates
        .iter()
        .find(|u| u.status == IncidentStatus::Monitoring)
        .map(|u| rfc3339_ms(u.created_at));
    IncidentJson {
        name: &inc.name,
        status: inc.status.as_str(),
        impact: inc.impact.as_str(),
        created_at: rfc3339_ms(inc.created_at),
        updated_at: rfc3339_ms(inc.updated_at),
        monitoring_at,
        resolved_at: inc.resolved_at.map(rfc3339_ms),
        started_at: rfc3339_ms(inc.created_at),
        shortlink: incident_link(page, inc.id),
        page_id: &page.id,
        scheduled_for: None,
        scheduled_until: None,
        incident_updates: i
            .incident_updates
            .iter()
            .rev()
            .map(|u| UpdateJson {
                id: u.id.to_string(),
                status: u.status.as_str(),
                body: &u.body,
                incident_id: id.clone(),
                created_at: rfc3339_ms(u.created_at),
                updated_at: rfc3339_ms(u.created_at),
                display_at: rfc3339_ms(u.created_at),
                affected_components: None,
                deliver_notifications: true,
                custom_tweet: None,
                tweet_id: None,
            })
            .collect(),
        components: components_json(page, &inc.components),
        id,
    }
}

fn maintenance_json<'a>(page: &'a Page, m: &'a ScheduledMaintenance) -> IncidentJson<'a> {
    let id = m.id.to_string();
    let completed = m.status == lifeline_store::MaintenanceStatus::Completed;
    IncidentJson {
        name: &m.name,
        status: m.status.as_str(),
        impact: "none",
        created_at: rfc3339_ms(m.created_at),
        updated_at: rfc3339_ms(m.updated_at),
        monitoring_at: None,
        resolved_at: completed.then(|| rfc3339_ms(m.updated_at)),
        started_at: rfc3339_ms(m.scheduled_for),
        shortlink: maintenance_link(page),
        page_id: &page.id,
        scheduled_for: Some(rfc3339_ms(m.scheduled_for)),
        scheduled_until: Some(rfc3339_ms(m.scheduled_until)),
        // The store keeps one text per window; it goes out as the one
        // update, carrying the window's current status.
        incident_updates: vec![UpdateJson {
            id: format!("{id}-{}", m.status.as_str()),
            status: m.status.as_str(),
            body: &m.body,
            incident_id: id.clone(),
            created_at: rfc3339_ms(m.updated_at),
            updated_at: rfc3339_ms(m.updated_at),
            display_at: rfc3339_ms(m.updated_at),
            affected_components: None,
            deliver_notifications: true,
            custom_tweet: None,
            tweet_id: None,
        }],
        components: components_json(page, &m.components),
        id,
    }
}

/// The Statuspage webhook body for `event`, as JSON text.
///
/// `unsubscribe` is the subscriber's unsubscribe link and `documentation`
/// the link to the webhook documentation (the envelope's `meta`);
/// `generated_at_ms` is when the notification was made (unix ms).
pub fn statuspage(
    page: &Page,
    event: &Event<'_>,
    unsubscribe: &str,
    documentation: &str,
    generated_at_ms: i64,
) -> String {
    let (status_indicator, status_description) = page.indicator();
    let mut envelope = Envelope {
        meta: Meta {
            unsubscribe,
            documentation,
            generated_at: rfc3339_ms(generated_at_ms),
        },
        page: PageBlock {
            id: &page.id,
            status_indicator,
            status_description,
        },
        incident: None,
        component: None,
        component_update: None,
    };
    match event {
        Event::Incident(i) => envelope.incident = Some(incident_json(page, i)),
        Event::Maintenance(m) => envelope.incident = Some(maintenance_json(page, m)),
        Event::Component(change) => {
            let mut component = component_json(page, change.component);
            component.status = change.new_status.as_str();
            envelope.component = Some(component);
            envelope.component_update = Some(ComponentUpdateJson {
                old_status: change.old_status.as_str(),
                new_status: change.new_status.as_str(),
                created_at: rfc3339_ms(change.at_ms),
                component_type: "Component",
                id: format!("{}-{}", change.component.id, change.at_ms),
                component_id: &change.component.id,
            });
        }
    }
    // Serializing these plain structs to a String cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}
