//! The eight Statuspage-compatible `/api/v2/` documents.
//!
//! Field names and enumerations are Atlassian Statuspage's, as recorded in
//! the reference model (`statuspage-api.md`), so the many tools that read
//! that format (aggregators, chat bots, deploy gates, widgets) work
//! unchanged. Choices the reference leaves open:
//!
//! - Components are listed group first, then the group's children; a
//!   group's status is the worst of its children's, its `created_at` the
//!   earliest and its `updated_at` the latest. Positions count from 1 among
//!   the top level (groups and ungrouped components) and within a group.
//! - A component with no recent data keeps its last known status here (the
//!   enumeration has no value for "unknown"); the HTML page says "no recent
//!   data" instead.
//! - `incident_updates` are newest first; `display_at` and `updated_at`
//!   equal `created_at`; `affected_components` is `null` (the store does
//!   not record per-update component transitions); `deliver_notifications`
//!   is true (every published update is announced).
//! - `started_at` is `created_at`; `monitoring_at` is the time of the latest
//!   update that moved the incident to monitoring.
//! - A scheduled maintenance has `impact` `none`, one update carrying its
//!   announcement (id `maintenance-{id}`, status the maintenance's), and
//!   `resolved_at` its last change once completed.
//! - `shortlink` is the incident's page (`{url}/status/incidents/{id}`),
//!   or the maintenance's anchor on the page (`incident_link`,
//!   `maintenance_link`).
//!
//! The webhook's Statuspage envelope ([`crate::webhook::payload`]) reuses
//! these objects (`Builder`): its `incident` is the object `incidents.json` (or, for a
//! maintenance, `scheduled-maintenances.json`) lists, and its `component`
//! the object `components.json` lists.

use lifeline_store::{IncidentWithUpdates, MaintenanceStatus, ScheduledMaintenance};
use serde::Serialize;

use super::time::{date, rfc3339_ms};
use crate::page::{Component, ComponentStatus, Group, Page};

/// `page` object.
#[derive(Debug, Serialize)]
struct PageJson<'a> {
    id: &'a str,
    name: &'a str,
    url: &'a str,
    time_zone: &'static str,
    updated_at: String,
}

/// `status` object.
#[derive(Debug, Serialize)]
struct StatusJson {
    indicator: &'static str,
    description: &'static str,
}

/// A component (or a group component).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ComponentJson<'a> {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<Vec<&'a str>>,
}

/// An entry of `incident_updates`.
#[derive(Debug, Serialize)]
struct UpdateJson<'a> {
    id: String,
    status: &'static str,
    body: &'a str,
    incident_id: String,
    created_at: String,
    updated_at: String,
    display_at: String,
    affected_components: Option<Vec<AffectedJson>>,
    deliver_notifications: bool,
    custom_tweet: Option<String>,
    tweet_id: Option<String>,
}

/// An entry of `affected_components` (never produced: see the module docs;
/// kept so the type says what the field holds).
#[derive(Debug, Serialize)]
struct AffectedJson {
    code: String,
    name: String,
    old_status: &'static str,
    new_status: &'static str,
}

/// An incident.
#[derive(Debug, Serialize)]
pub(crate) struct IncidentJson<'a> {
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
    incident_updates: Vec<UpdateJson<'a>>,
    components: Vec<ComponentJson<'a>>,
}

/// A scheduled maintenance.
#[derive(Debug, Serialize)]
pub(crate) struct MaintenanceJson<'a> {
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
    scheduled_for: String,
    scheduled_until: String,
    incident_updates: Vec<UpdateJson<'a>>,
    components: Vec<ComponentJson<'a>>,
}

/// `summary.json`.
#[derive(Debug, Serialize)]
struct SummaryJson<'a> {
    page: PageJson<'a>,
    status: StatusJson,
    components: Vec<ComponentJson<'a>>,
    incidents: Vec<IncidentJson<'a>>,
    scheduled_maintenances: Vec<MaintenanceJson<'a>>,
}

/// `status.json`.
#[derive(Debug, Serialize)]
struct StatusDoc<'a> {
    page: PageJson<'a>,
    status: StatusJson,
}

/// `components.json`.
#[derive(Debug, Serialize)]
struct ComponentsDoc<'a> {
    page: PageJson<'a>,
    components: Vec<ComponentJson<'a>>,
}

/// `incidents.json` and `incidents/unresolved.json`.
#[derive(Debug, Serialize)]
struct IncidentsDoc<'a> {
    page: PageJson<'a>,
    incidents: Vec<IncidentJson<'a>>,
}

/// `scheduled-maintenances*.json`.
#[derive(Debug, Serialize)]
struct MaintenancesDoc<'a> {
    page: PageJson<'a>,
    scheduled_maintenances: Vec<MaintenanceJson<'a>>,
}

/// The eight documents, in [`PATHS`] order.
pub(crate) struct Documents {
    /// Serialized bodies, one per path of [`PATHS`].
    pub(crate) bodies: [Vec<u8>; 8],
}

/// The paths of the eight documents under `/api/v2/`, in [`Documents`]
/// order.
pub const PATHS: [&str; 8] = [
    "summary.json",
    "status.json",
    "components.json",
    "incidents.json",
    "incidents/unresolved.json",
    "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json",
    "scheduled-maintenances/active.json",
];

/// Builds all eight documents.
pub(crate) fn documents(page: &Page) -> Result<Documents, serde_json::Error> {
    let b = Builder::new(page);
    let (indicator, description) = page.indicator();
    let status = || StatusJson {
        indicator,
        description,
    };
    let all_incidents = || page.incidents.iter().map(|i| b.incident(&i.incident));
    let unresolved = || {
        page.incidents
            .iter()
            .filter(|i| i.incident.incident.status.is_open())
            .map(|i| b.incident(&i.incident))
            .collect::<Vec<_>>()
    };
    let maintenances = |keep: &dyn Fn(MaintenanceStatus) -> bool| {
        page.maintenances
            .iter()
            .filter(|m| keep(m.status))
            .map(|m| b.maintenance(m))
            .collect::<Vec<_>>()
    };
    let upcoming = |s: MaintenanceStatus| s == MaintenanceStatus::Scheduled;
    let active = |s: MaintenanceStatus| {
        matches!(
            s,
            MaintenanceStatus::InProgress | MaintenanceStatus::Verifying
        )
    };
    let bodies = [
        serde_json::to_vec(&SummaryJson {
            page: b.page(),
            status: status(),
            components: b.components.clone(),
            incidents: unresolved(),
            scheduled_maintenances: maintenances(&|s| upcoming(s) || active(s)),
        })?,
        serde_json::to_vec(&StatusDoc {
            page: b.page(),
            status: status(),
        })?,
        serde_json::to_vec(&ComponentsDoc {
            page: b.page(),
            components: b.components.clone(),
        })?,
        serde_json::to_vec(&IncidentsDoc {
            page: b.page(),
            incidents: all_incidents().collect(),
        })?,
        serde_json::to_vec(&IncidentsDoc {
            page: b.page(),
            incidents: unresolved(),
        })?,
        serde_json::to_vec(&MaintenancesDoc {
            page: b.page(),
            scheduled_maintenances: maintenances(&|_| true),
        })?,
        serde_json::to_vec(&MaintenancesDoc {
            page: b.page(),
            scheduled_maintenances: maintenances(&upcoming),
        })?,
        serde_json::to_vec(&MaintenancesDoc {
            page: b.page(),
            scheduled_maintenances: maintenances(&active),
        })?,
    ];
    Ok(Documents { bodies })
}

/// The link to an incident's page, its `shortlink`.
pub(crate) fn incident_link(page_url: &str, id: i64) -> String {
    format!("{page_url}/status/incidents/{id}")
}

/// The link to a maintenance window's place on the page, its `shortlink`.
pub(crate) fn maintenance_link(page_url: &str, id: i64) -> String {
    format!("{page_url}/status#maintenance-{id}")
}

impl ComponentJson<'_> {
    /// The same object with another status (a webhook's component as it
    /// changed).
    pub(crate) fn with_status(mut self, status: ComponentStatus) -> Self {
        self.status = status.as_str();
        self
    }
}

/// The objects of one page: the page object and the component list
/// (computed once, looked up by id for incidents and maintenances), and
/// the incident, maintenance and component objects built from them.
pub(crate) struct Builder<'a> {
    page: &'a Page,
    components: Vec<ComponentJson<'a>>,
}

impl<'a> Builder<'a> {
    /// Computes the page's component objects.
    pub(crate) fn new(page: &'a Page) -> Self {
        Builder {
            page,
            components: components(page),
        }
    }

    fn page(&self) -> PageJson<'a> {
        PageJson {
            id: &self.page.id,
            name: &self.page.name,
            url: &self.page.url,
            time_zone: "Etc/UTC",
            updated_at: rfc3339_ms(self.page.updated_at),
        }
    }

    /// Full component objects for these ids (unknown ids are left out).
    fn lookup(&self, ids: &[String]) -> Vec<ComponentJson<'a>> {
        ids.iter()
            .filter_map(|id| self.components.iter().find(|c| c.id == id.as_str()))
            .cloned()
            .collect()
    }

    /// The object of component `c`, as `components.json` lists it (one not
    /// on the page stands alone, at position 1).
    pub(crate) fn component(&self, c: &'a Component) -> ComponentJson<'a> {
        self.components
            .iter()
            .find(|j| !j.group && j.id == c.id.as_str())
            .cloned()
            .unwrap_or_else(|| component_json(self.page, c, 1))
    }

    /// The object of an incident, as `incidents.json` lists it.
    pub(crate) fn incident(&self, i: &'a IncidentWithUpdates) -> IncidentJson<'a> {
        let inc = &i.incident;
        let id = inc.id.to_string();
        let mut updates: Vec<UpdateJson<'a>> = i
            .incident_updates
            .iter()
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
            .collect();
        updates.reverse();
        let monitoring_at = i
            .incident_updates
            .iter()
            .filter(|u| u.status == lifeline_store::IncidentStatus::Monitoring)
            .map(|u| u.created_at)
            .max()
            .map(rfc3339_ms);
        IncidentJson {
            shortlink: incident_link(&self.page.url, inc.id),
            id,
            name: &inc.name,
            status: inc.status.as_str(),
            impact: inc.impact.as_str(),
            created_at: rfc3339_ms(inc.created_at),
            updated_at: rfc3339_ms(inc.updated_at),
            monitoring_at,
            resolved_at: inc.resolved_at.map(rfc3339_ms),
            started_at: rfc3339_ms(inc.created_at),
            page_id: &self.page.id,
            incident_updates: updates,
            components: self.lookup(&inc.components),
        }
    }

    /// The object of a maintenance window, as
    /// `scheduled-maintenances.json` lists it.
    pub(crate) fn maintenance(&self, m: &'a ScheduledMaintenance) -> MaintenanceJson<'a> {
        let id = m.id.to_string();
        let update = UpdateJson {
            id: format!("maintenance-{id}"),
            status: m.status.as_str(),
            body: &m.body,
            incident_id: id.clone(),
            created_at: rfc3339_ms(m.created_at),
            updated_at: rfc3339_ms(m.updated_at),
            display_at: rfc3339_ms(m.created_at),
            affected_components: None,
            deliver_notifications: true,
            custom_tweet: None,
            tweet_id: None,
        };
        MaintenanceJson {
            shortlink: maintenance_link(&self.page.url, m.id),
            id,
            name: &m.name,
            status: m.status.as_str(),
            impact: "none",
            created_at: rfc3339_ms(m.created_at),
            updated_at: rfc3339_ms(m.updated_at),
            monitoring_at: None,
            resolved_at: (m.status == MaintenanceStatus::Completed)
                .then(|| rfc3339_ms(m.updated_at)),
            started_at: rfc3339_ms(m.created_at),
            page_id: &self.page.id,
            scheduled_for: rfc3339_ms(m.scheduled_for),
            scheduled_until: rfc3339_ms(m.scheduled_until),
            incident_updates: vec![update],
            components: self.lookup(&m.components),
        }
    }
}

fn component_json<'a>(page: &'a Page, c: &'a Component, position: usize) -> ComponentJson<'a> {
    ComponentJson {
        id: &c.id,
        name: &c.name,
        status: c.status.as_str(),
        created_at: rfc3339_ms(c.created_at),
        updated_at: rfc3339_ms(c.updated_at),
        position,
        description: c.description.as_deref(),
        showcase: true,
        start_date: Some(date(c.created_at)),
        group_id: c.group_id.as_deref(),
        page_id: &page.id,
        group: false,
        only_show_if_degraded: false,
        components: None,
    }
}

/// A group's children: the components it lists, in its order, then any
/// other component naming it as its group, in page order.
pub(crate) fn group_children<'a>(page: &'a Page, g: &Group) -> Vec<&'a Component> {
    let mut children: Vec<&Component> = g
        .components
        .iter()
        .filter_map(|id| page.component(id))
        .collect();
    for c in &page.components {
        if c.group_id.as_deref() == Some(g.id.as_str()) && !children.iter().any(|x| x.id == c.id) {
            children.push(c);
        }
    }
    children
}

/// Every component object, each group in the place of its first
/// component, followed by its children; groups without components last.
fn components<'a>(page: &'a Page) -> Vec<ComponentJson<'a>> {
    let groups: Vec<(&'a Group, Vec<&'a Component>)> = page
        .groups
        .iter()
        .map(|g| (g, group_children(page, g)))
        .collect();
    let group_of = |c: &Component| {
        groups
            .iter()
            .position(|(_, children)| children.iter().any(|x| x.id == c.id))
    };
    let mut out = Vec::with_capacity(page.components.len() + page.groups.len());
    let mut top = 0;
    let mut done = vec![false; groups.len()];
    let emit_group = |out: &mut Vec<ComponentJson<'a>>, index: usize, top: usize| {
        let (g, children) = &groups[index];
        let status = children
            .iter()
            .map(|c| c.status)
            .max_by_key(|s| s.severity())
            .unwrap_or(ComponentStatus::Operational);
        let created = children.iter().map(|c| c.created_at).min();
        let updated = children.iter().map(|c| c.updated_at).max();
        out.push(ComponentJson {
            id: &g.id,
            name: &g.name,
            status: status.as_str(),
            created_at: rfc3339_ms(created.unwrap_or(page.updated_at)),
            updated_at: rfc3339_ms(updated.unwrap_or(page.updated_at)),
            position: top,
            description: None,
            showcase: false,
            start_date: None,
            group_id: None,
            page_id: &page.id,
            group: true,
            only_show_if_degraded: false,
            components: Some(children.iter().map(|c| c.id.as_str()).collect()),
        });
        for (i, child) in children.iter().enumerate() {
            let mut json = component_json(page, child, i + 1);
            json.group_id = Some(&g.id);
            out.push(json);
        }
    };
    for c in &page.components {
        match group_of(c) {
            None => {
                top += 1;
                out.push(component_json(page, c, top));
            }
            Some(index) if !done[index] => {
                done[index] = true;
                top += 1;
                emit_group(&mut out, index, top);
            }
            Some(_) => {}
        }
    }
    for (index, done) in done.iter().enumerate() {
        if !done {
            top += 1;
            emit_group(&mut out, index, top);
        }
    }
    out
}
