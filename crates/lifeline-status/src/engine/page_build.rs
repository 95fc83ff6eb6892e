//! Building the [`Page`] from the engine's state and the store's view.
//!
//! Incidents: the published ones (drafts left out), newest first: the 50
//! newest and every unresolved one, however old, each unresolved one with
//! its restoration estimate: Kaplan–Meier over
//! Lifeline's own past incidents from the store (resolved ones by their
//! duration, open ones censored at their age; pooled by the first affected
//! component and the cause class) and, kept apart, the upstream history the
//! binary supplies; an operator's override (the incident's
//! `expected_resolved_at`, as time left from now) wins. Elapsed times are whole
//! minutes, so a page rebuilt within the same minute is unchanged.
//!
//! Upstream providers' own reports (`[[status.upstream]]`): only with
//! `show_providers` (like the providers' names), each source link without
//! user information, query string or fragment.
//!
//! Maintenance windows: every one not completed (however many are
//! scheduled), then the latest completed ones, up to 50 in all.
//!
//! Uptime bars: 90 UTC days, oldest first; a day's worst status is the
//! worst shown that day, raised to match the impact of a published incident
//! that touched the component that day (minor → degraded, major → partial
//! outage, critical → major outage).

use std::time::Duration;

use lifeline_store::{Impact, Incident, MaintenanceStatus};

use super::components::ComponentDef;
use super::history::BAR_DAYS;
use super::settings::{day_floor, minute_floor, ms, DAY_MS, MINUTE_MS};
use super::writer::PAGE_LIMIT;
use super::{slo, BuiltPage, ComponentState, Engine};
use crate::eta::{self, Current, Observed, PastIncident, Source};
use crate::page::{
    Component, ComponentStatus, DayBar, EtaView, IncidentView, Page, ProviderReport,
};

fn impact_status(impact: Impact) -> ComponentStatus {
    match impact {
        Impact::Critical => ComponentStatus::MajorOutage,
        Impact::Major => ComponentStatus::PartialOutage,
        Impact::Minor => ComponentStatus::DegradedPerformance,
        Impact::None => ComponentStatus::Operational,
    }
}

/// The cause class an incident pools by ("unknown" without one).
fn cause(incident: &Incident) -> &str {
    incident.cause.as_deref().unwrap_or("unknown")
}

/// The component an incident pools by: its first.
fn component(incident: &Incident) -> &str {
    incident.components.first().map_or("", String::as_str)
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Engine {
    /// Builds the page at `now_ms` and says whether it changed since the
    /// last build (`updated_at` moves only then).
    pub fn build_page(&mut self, now_ms: i64) -> BuiltPage {
        let incidents: Vec<IncidentView> = self
            .view
            .as_ref()
            .map(|v| {
                v.incidents
                    .iter()
                    .enumerate()
                    .filter(|(k, i)| *k < PAGE_LIMIT || i.incident.status.is_open())
                    .map(|(_, i)| IncidentView {
                        incident: i.clone(),
                        eta: i
                            .incident
                            .status
                            .is_open()
                            .then(|| self.eta(&i.incident, now_ms)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let components = self
            .layout
            .components
            .iter()
            .filter_map(|def| {
                let state = self.states.get(&def.id)?;
                Some(self.component(def, state, now_ms))
            })
            .collect();
        // Every window not completed, and the latest completed ones up to
        // the page's limit.
        let mut completed = 0;
        let mut maintenances = self.maintenance.shown(now_ms);
        let open = maintenances
            .iter()
            .filter(|m| m.status != MaintenanceStatus::Completed)
            .count();
        maintenances.retain(|m| {
            m.status != MaintenanceStatus::Completed || {
                completed += 1;
                open + completed <= PAGE_LIMIT
            }
        });
        let mut page = Page {
            id: self.settings.page_id.clone(),
            name: self.settings.page_name.clone(),
            url: self.settings.page_url.clone(),
            updated_at: 0,
            generated_at: 0,
            groups: self
                .layout
                .groups
                .iter()
                .filter(|g| !g.components.is_empty())
                .cloned()
                .collect(),
            components,
            incidents,
            maintenances,
            providers: if self.settings.show_providers {
                self.providers
                    .iter()
                    .map(|p| ProviderReport {
                        source_url: p.public_source_url(),
                        ..p.clone()
                    })
                    .collect()
            } else {
                Vec::new()
            },
            history_behind_since: self.behind_since,
        };
        let changed = self.last_page.as_ref() != Some(&page);
        if changed {
            self.last_updated_at = now_ms;
            self.last_page = Some(page.clone());
        }
        page.updated_at = self.last_updated_at;
        page.generated_at = now_ms;
        BuiltPage { page, changed }
    }

    fn component(&self, def: &ComponentDef, state: &ComponentState, now: i64) -> Component {
        let end = minute_floor(now);
        let th = &self.settings.thresholds;
        let last_data = state
            .history
            .last_data_at()
            .map_or(state.created_at, |at| at + MINUTE_MS);
        let under = state.shown == ComponentStatus::UnderMaintenance;
        let day = state.history.window(end, DAY_MS);
        Component {
            id: def.id.clone(),
            name: def.name.clone(),
            description: def.description.clone(),
            group_id: def.group_id.clone(),
            status: state.shown,
            no_recent_data: !under && now - last_data > ms(th.no_data_after),
            created_at: state.created_at,
            updated_at: state.shown_since,
            slo: def
                .provider
                .is_none()
                .then(|| slo::view(&state.history, now, &def.slo, &state.alerts)),
            uptime: self.bars(def, state, now),
            latency: state.history.latency_points(end),
            effective_24h: day.availability(),
            upstream_24h: day.upstream_availability(),
            upstream_down_minutes_24h: state
                .history
                .upstream_down_minutes(end, th.upstream_down_ratio),
        }
    }

    fn bars(&self, def: &ComponentDef, state: &ComponentState, now: i64) -> Vec<DayBar> {
        let today = day_floor(now);
        let touching: Vec<&Incident> = self
            .view
            .as_ref()
            .map(|v| {
                v.recent
                    .iter()
                    .filter(|i| !i.draft && i.components.contains(&def.id))
                    .collect()
            })
            .unwrap_or_default();
        (0..BAR_DAYS)
            .rev()
            .map(|k| {
                let start = today - k * DAY_MS;
                let end = start + DAY_MS;
                let stored = state.history.day(start);
                let mut worst = stored
                    .and_then(|d| d.worst)
                    .unwrap_or(ComponentStatus::Operational);
                let mut ids = Vec::new();
                for i in &touching {
                    let until = i.resolved_at.unwrap_or(now);
                    if i.created_at < end && until >= start {
                        ids.push(i.id);
                        let s = impact_status(i.impact);
                        if s.severity() > worst.severity() {
                            worst = s;
                        }
                    }
                }
                ids.sort_unstable();
                DayBar {
                    day: start,
                    effective: stored.and_then(|d| d.effective()),
                    upstream: stored.and_then(|d| d.traffic.upstream_availability()),
                    requests: stored.map_or(0, |d| d.traffic.requests),
                    incidents: ids,
                    worst,
                }
            })
            .collect()
    }

    /// The restoration estimate of an unresolved incident at `now`.
    fn eta(&self, incident: &Incident, now: i64) -> EtaView {
        let elapsed = duration((now - incident.created_at).div_euclid(MINUTE_MS) * MINUTE_MS);
        let mut history: Vec<PastIncident> = self
            .view
            .as_ref()
            .map(|v| {
                v.recent
                    .iter()
                    .filter(|r| !r.draft && r.id != incident.id)
                    .map(|r| PastIncident {
                        component: component(r).to_string(),
                        cause: cause(r).to_string(),
                        source: Source::Local,
                        observed: match r.resolved_at {
                            Some(end) if !r.status.is_open() => {
                                Observed::Resolved(duration(end - r.created_at))
                            }
                            _ => Observed::OpenFor(duration(now - r.created_at)),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        history.extend(self.upstream_history.iter().cloned());
        let current = Current {
            component: component(incident),
            cause: cause(incident),
            elapsed,
        };
        EtaView {
            eta: eta::estimate(
                &history,
                &current,
                incident
                    .expected_resolved_at
                    .map(|at| duration(at - minute_floor(now))),
            ),
            elapsed,
        }
    }
}
