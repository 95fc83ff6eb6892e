//! The Statuspage webhook envelope: `meta`, `page`, and either `incident`
//! (the full incident with `incident_updates`) or `component` +
//! `component_update`; and the [`Event`] a notification is about.
//!
//! The `incident` and `component` objects are the `/api/v2` renderer's
//! ([`crate::render::json`]): an incident goes out exactly as
//! `incidents.json` lists it, a maintenance exactly as
//! `scheduled-maintenances.json` lists it (its status `scheduled`,
//! `in_progress`, `verifying` or `completed`, impact `none`,
//! `scheduled_for` and `scheduled_until`, as Statuspage sends them), and a
//! component as `components.json` lists it, with its new status. Field
//! names, enumerations, timestamps (RFC 3339, UTC, milliseconds) and the
//! choices the reference leaves open are documented there. The envelope's
//! own fields are `meta` (`unsubscribe`, `documentation`, `generated_at`),
//! `page` (`id`, `status_indicator`, `status_description`) and
//! `component_update`.

use lifeline_store::{IncidentWithUpdates, ScheduledMaintenance};
use serde::Serialize;

use crate::page::{Component, ComponentStatus, Page};
use crate::render::json::{Builder, ComponentJson, IncidentJson, MaintenanceJson};
use crate::render::time::rfc3339_ms;

/// What a notification is about.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// An incident was opened, updated or resolved (which one: the
    /// [`IncidentChange`]): the incident as it is now, with its whole
    /// timeline.
    Incident(IncidentChange, &'a IncidentWithUpdates),
    /// A maintenance window started or ended (which one: the
    /// [`MaintenanceChange`]): the window as it is now.
    Maintenance(MaintenanceChange, &'a ScheduledMaintenance),
    /// A component's status changed.
    Component(ComponentChange<'a>),
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentChange {
    /// A published incident appeared (opened, or a draft published).
    Created,
    /// A published incident got an update (not a resolution).
    Updated,
    /// The incident was resolved (or got its postmortem).
    Resolved,
}

/// What happened to a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceChange {
    /// The window began.
    Started,
    /// The window ended.
    Completed,
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
            Event::Incident(_, i) => &i.incident.components,
            Event::Maintenance(_, m) => &m.components,
            Event::Component(c) => std::slice::from_ref(&c.component.id),
        }
    }

    /// The delivery log's name of the event (a delivery's `event`):
    /// `incident.created`, `incident.updated`, `incident.resolved`,
    /// `maintenance.started`, `maintenance.completed` or
    /// `component.updated`.
    pub fn label(&self) -> &'static str {
        match self {
            Event::Incident(IncidentChange::Created, _) => "incident.created",
            Event::Incident(IncidentChange::Updated, _) => "incident.updated",
            Event::Incident(IncidentChange::Resolved, _) => "incident.resolved",
            Event::Maintenance(MaintenanceChange::Started, _) => "maintenance.started",
            Event::Maintenance(MaintenanceChange::Completed, _) => "maintenance.completed",
            Event::Component(_) => "component.updated",
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    meta: Meta<'a>,
    page: PageBlock<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<IncidentBlock<'a>>,
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

/// The envelope's `incident`: an incident, or a maintenance window.
#[derive(Serialize)]
#[serde(untagged)]
enum IncidentBlock<'a> {
    Incident(IncidentJson<'a>),
    Maintenance(MaintenanceJson<'a>),
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
    let objects = Builder::new(page);
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
        Event::Incident(_, i) => {
            envelope.incident = Some(IncidentBlock::Incident(objects.incident(i)));
        }
        Event::Maintenance(_, m) => {
            envelope.incident = Some(IncidentBlock::Maintenance(objects.maintenance(m)));
        }
        Event::Component(change) => {
            envelope.component = Some(
                objects
                    .component(change.component)
                    .with_status(change.new_status),
            );
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
