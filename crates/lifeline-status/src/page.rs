//! The page: everything the status side shows, at one moment, in memory.
//!
//! The engine ([`crate`]'s status logic) builds a [`Page`] whenever
//! something changes; the renderers (JSON, HTML, feeds, badges, static
//! export) read only a `Page`, never the store or the gateway, so a request
//! for `/status` or `/api/v2/summary.json` costs no database query. The shape
//! follows Atlassian Statuspage's model (page, components with groups,
//! incidents with updates, scheduled maintenances) plus what only Lifeline
//! knows: effective and upstream availability, SLO budgets, latency charts,
//! restoration estimates and the providers' own reports.
//!
//! Times are unix milliseconds (UTC), as in the store; rendering them is the
//! renderers' job. Ids are strings, as Statuspage's are: components and
//! groups have the ids the config (or the default layout) gives them;
//! incidents and maintenances render the store's integer id in decimal.

use std::time::Duration;

use lifeline_store::{IncidentWithUpdates, ScheduledMaintenance};

use crate::eta::Eta;

/// A component's status, with Statuspage's spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentStatus {
    /// Working normally.
    Operational,
    /// Slower than its objective, or a few errors.
    DegradedPerformance,
    /// Failing for part of the traffic.
    PartialOutage,
    /// Failing for most or all of the traffic.
    MajorOutage,
    /// In a maintenance window.
    UnderMaintenance,
}

impl ComponentStatus {
    /// The spelling in Statuspage's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::DegradedPerformance => "degraded_performance",
            Self::PartialOutage => "partial_outage",
            Self::MajorOutage => "major_outage",
            Self::UnderMaintenance => "under_maintenance",
        }
    }

    /// Severity for "the worst of": operational 0, maintenance 1,
    /// degraded 2, partial 3, major 4.
    pub fn severity(self) -> u8 {
        match self {
            Self::Operational => 0,
            Self::UnderMaintenance => 1,
            Self::DegradedPerformance => 2,
            Self::PartialOutage => 3,
            Self::MajorOutage => 4,
        }
    }
}

/// The whole page at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Page id (Statuspage's `page.id`).
    pub id: String,
    /// Page title ("Acme AI status").
    pub name: String,
    /// Public URL of the page, without a trailing slash
    /// ("https://status.acme.ai"); links in feeds, webhooks and shortlinks
    /// are built on it.
    pub url: String,
    /// When anything on the page last changed (unix ms).
    pub updated_at: i64,
    /// When this snapshot was built (unix ms).
    pub generated_at: i64,
    /// Component groups, in page order.
    pub groups: Vec<Group>,
    /// Every component (not groups), in page order.
    pub components: Vec<Component>,
    /// Published incidents (drafts left out), newest first, at most 50.
    pub incidents: Vec<IncidentView>,
    /// Scheduled maintenances, latest `scheduled_for` first, at most 50.
    pub maintenances: Vec<ScheduledMaintenance>,
    /// What the upstream providers publish about themselves (empty when
    /// polling is off).
    pub providers: Vec<ProviderReport>,
    /// `Some(since)` when the page's history is behind because the store
    /// cannot be written (locked, unwritable, disk full) since `since`
    /// (unix ms); the page says so. Nothing is lost: writes are retried.
    pub history_behind_since: Option<i64>,
}

/// A group of components ("Chat Completions", "Upstream providers").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Stable id (slug).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ids of its components, in page order.
    pub components: Vec<String>,
}

/// One line of the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Stable id (slug), also the badge's name: `/badge/{id}.svg`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One-line description, if any.
    pub description: Option<String>,
    /// The group it belongs to, if any.
    pub group_id: Option<String>,
    /// Current status (after hysteresis and maintenance).
    pub status: ComponentStatus,
    /// No traffic and no probe result for too long: the status above is
    /// the last one known, and the page must say "no recent data" instead
    /// of showing it as current.
    pub no_recent_data: bool,
    /// When the component first appeared (unix ms).
    pub created_at: i64,
    /// When its status last changed (unix ms).
    pub updated_at: i64,
    /// Its objectives and what is left of their budgets, if it has any.
    pub slo: Option<SloView>,
    /// Up to 90 daily bars, oldest first, ending today (UTC days).
    pub uptime: Vec<DayBar>,
    /// The last 24 hours of latency, oldest first (one point per interval
    /// with traffic; gaps are missing points).
    pub latency: Vec<LatencyPoint>,
    /// Effective availability over the last 24 hours (what clients saw
    /// after failover), `None` without traffic.
    pub effective_24h: Option<f64>,
    /// Upstream availability over the last 24 hours (attempts to the
    /// providers that succeeded), `None` without attempts.
    pub upstream_24h: Option<f64>,
    /// Minutes in the last 24 hours during which upstream attempts mostly
    /// failed (for "the upstream was down for 40 minutes").
    pub upstream_down_minutes_24h: u32,
}

#[cfg(test)]
impl Component {
    /// Tests' component: operational, ungrouped, without description or
    /// history, created at `created_at`, last changed at `updated_at`.
    pub(crate) fn fixture(id: &str, name: &str, created_at: i64, updated_at: i64) -> Self {
        Component {
            id: id.into(),
            name: name.into(),
            description: None,
            group_id: None,
            status: ComponentStatus::Operational,
            no_recent_data: false,
            created_at,
            updated_at,
            slo: None,
            uptime: vec![],
            latency: vec![],
            effective_24h: None,
            upstream_24h: None,
            upstream_down_minutes_24h: 0,
        }
    }
}

/// A component's objectives and budgets over the SLO period.
#[derive(Debug, Clone, PartialEq)]
pub struct SloView {
    /// The period (e.g. 30 days).
    pub period: Duration,
    /// Availability objective, e.g. 0.999.
    pub availability_target: f64,
    /// Availability measured over the period so far.
    pub availability: Option<f64>,
    /// Fraction of the availability error budget left: 1.0 untouched,
    /// 0.0 spent, negative overspent.
    pub availability_budget_left: f64,
    /// Latency objective: this fraction of requests ...
    pub latency_target: Option<f64>,
    /// ... answers (first token, for streams) within this threshold.
    pub latency_threshold: Option<Duration>,
    /// Fraction of the latency error budget left.
    pub latency_budget_left: Option<f64>,
    /// Burn-rate alerts firing now.
    pub alerts: Vec<BurnAlert>,
}

/// A multi-window burn-rate alert that is firing.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnAlert {
    /// "page" or "ticket" (SRE workbook severities).
    pub severity: &'static str,
    /// "availability" or "latency".
    pub objective: &'static str,
    /// Long window.
    pub long_window: Duration,
    /// Short window.
    pub short_window: Duration,
    /// Burn rate over the long window.
    pub burn_rate: f64,
    /// The threshold it crossed.
    pub threshold: f64,
}

/// One day of a component's uptime history.
#[derive(Debug, Clone, PartialEq)]
pub struct DayBar {
    /// Midnight UTC of the day (unix ms).
    pub day: i64,
    /// Share of good requests through Lifeline (or of good minutes, when
    /// idle minutes were probed); `None` for a day without data.
    pub effective: Option<f64>,
    /// Share of upstream attempts that succeeded; `None` without attempts.
    pub upstream: Option<f64>,
    /// Requests that day.
    pub requests: u64,
    /// Published incidents that touched the component that day, by id.
    pub incidents: Vec<i64>,
    /// The worst status the component had that day.
    pub worst: ComponentStatus,
}

/// One point of a latency chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyPoint {
    /// Start of the interval (unix ms).
    pub at: i64,
    /// Median answer time, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile answer time, milliseconds.
    pub p99_ms: Option<f64>,
    /// Median time to first token of streams, milliseconds.
    pub ttft_p50_ms: Option<f64>,
}

/// An incident as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentView {
    /// The incident and its timeline, from the store.
    pub incident: IncidentWithUpdates,
    /// The restoration estimate, for an unresolved incident.
    pub eta: Option<EtaView>,
}

/// A restoration estimate and what it was computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtaView {
    /// The estimate.
    pub eta: Eta,
    /// How long the incident had lasted when it was computed.
    pub elapsed: Duration,
}

/// What an upstream provider's own status page says.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderReport {
    /// Provider name as in the config.
    pub provider: String,
    /// Where it was read from.
    pub source_url: String,
    /// `None` when the source could not be read or parsed lately ("source
    /// unknown", never an outage).
    pub indicator: Option<String>,
    /// The provider's own description ("Partially Degraded Service").
    pub description: Option<String>,
    /// Its unresolved incidents: name, status and since when (unix ms).
    pub incidents: Vec<ProviderIncident>,
    /// When it was last read successfully (unix ms).
    pub fetched_at: Option<i64>,
}

impl ProviderReport {
    /// `source_url` as the page may publish it: without user information,
    /// query string or fragment (which may carry credentials, such as a
    /// private page's `?api_key=`).
    pub fn public_source_url(&self) -> String {
        public_url(&self.source_url)
    }
}

/// A URL without user information, query string or fragment:
/// `https://user:pw@host/path?key=k#x` → `https://host/path`.
pub fn public_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// One unresolved incident on a provider's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIncident {
    /// Its title.
    pub name: String,
    /// Its status (the provider's spelling).
    pub status: String,
    /// When it started (unix ms).
    pub started_at: i64,
    /// Link to it, if the source gives one.
    pub url: Option<String>,
}

impl Page {
    /// The page indicator and its description (Statuspage's `status`
    /// object), from the components and the unresolved incidents.
    ///
    /// Rollup (documented for one component; for several, the conservative
    /// reading of the reference notes): any major outage on all components
    /// is `critical` / "Major System Outage"; a major outage on some is
    /// `major` / "Partial System Outage"; a partial outage is `minor` /
    /// "Minor Service Outage"; degraded on all is `minor` / "Degraded
    /// System Service", on some `minor` / "Partially Degraded Service";
    /// maintenance only is `maintenance` / "Service Under Maintenance".
    /// An unresolved incident's impact raises the indicator to at least
    /// that impact (a page with no components still shows its incidents).
    pub fn indicator(&self) -> (&'static str, &'static str) {
        let statuses: Vec<ComponentStatus> = self.components.iter().map(|c| c.status).collect();
        let all = |s: ComponentStatus| !statuses.is_empty() && statuses.iter().all(|&x| x == s);
        let any = |s: ComponentStatus| statuses.contains(&s);
        let from_components = if all(ComponentStatus::MajorOutage) {
            ("critical", "Major System Outage")
        } else if any(ComponentStatus::MajorOutage) {
            ("major", "Partial System Outage")
        } else if any(ComponentStatus::PartialOutage) {
            ("minor", "Minor Service Outage")
        } else if all(ComponentStatus::DegradedPerformance) {
            ("minor", "Degraded System Service")
        } else if any(ComponentStatus::DegradedPerformance) {
            ("minor", "Partially Degraded Service")
        } else if any(ComponentStatus::UnderMaintenance) {
            ("maintenance", "Service Under Maintenance")
        } else {
            ("none", "All Systems Operational")
        };
        let rank = |i: &str| match i {
            "critical" => 4,
            "major" => 3,
            "minor" => 2,
            "maintenance" => 1,
            _ => 0,
        };
        let worst_incident = self
            .incidents
            .iter()
            .filter(|i| i.incident.incident.status.is_open())
            .map(|i| i.incident.incident.impact.as_str())
            .max_by_key(|i| rank(i));
        match worst_incident {
            Some("critical") if rank(from_components.0) < 4 => ("critical", "Major System Outage"),
            Some("major") if rank(from_components.0) < 3 => ("major", "Partial System Outage"),
            Some("minor") if rank(from_components.0) < 2 => ("minor", "Minor Service Outage"),
            _ => from_components,
        }
    }

    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeline_store::{Impact, Incident, IncidentStatus};

    fn component(id: &str, status: ComponentStatus) -> Component {
        Component {
            status,
            ..Component::fixture(id, id, 0, 0)
        }
    }

    fn page(statuses: &[ComponentStatus]) -> Page {
        Page {
            id: "p".into(),
            name: "P".into(),
            url: "http://x".into(),
            updated_at: 0,
            generated_at: 0,
            groups: vec![],
            components: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| component(&format!("c{i}"), *s))
                .collect(),
            incidents: vec![],
            maintenances: vec![],
            providers: vec![],
            history_behind_since: None,
        }
    }

    #[test]
    fn indicator_rollup() {
        use ComponentStatus::*;
        assert_eq!(page(&[]).indicator().0, "none");
        assert_eq!(page(&[Operational, Operational]).indicator().0, "none");
        assert_eq!(
            page(&[MajorOutage]).indicator(),
            ("critical", "Major System Outage")
        );
        assert_eq!(
            page(&[MajorOutage, Operational]).indicator(),
            ("major", "Partial System Outage")
        );
        assert_eq!(
            page(&[PartialOutage, Operational]).indicator(),
            ("minor", "Minor Service Outage")
        );
        assert_eq!(
            page(&[DegradedPerformance, DegradedPerformance]).indicator(),
            ("minor", "Degraded System Service")
        );
        assert_eq!(
            page(&[DegradedPerformance, Operational]).indicator(),
            ("minor", "Partially Degraded Service")
        );
        assert_eq!(
            page(&[UnderMaintenance, Operational]).indicator(),
            ("maintenance", "Service Under Maintenance")
        );
    }

    #[test]
    fn an_open_incident_raises_the_indicator() {
        let mut p = page(&[]);
        p.incidents.push(IncidentView {
            incident: IncidentWithUpdates {
                incident: Incident {
                    id: 1,
                    name: "x".into(),
                    status: IncidentStatus::Investigating,
                    impact: Impact::Major,
                    created_at: 0,
                    updated_at: 0,
                    resolved_at: None,
                    components: vec![],
                    automatic: false,
                    draft: false,
                    cause: None,
                    expected_resolved_at: None,
                },
                incident_updates: vec![],
            },
            eta: None,
        });
        assert_eq!(p.indicator(), ("major", "Partial System Outage"));
        p.incidents[0].incident.incident.status = IncidentStatus::Resolved;
        assert_eq!(p.indicator().0, "none");
    }
}
