//! Automatic incidents: opened from the evidence, kept up to date, never
//! silent, resolved when it is over.
//!
//! Evaluated once per closed minute, at its end:
//!
//! - **Open** when a component not under maintenance shows a status other
//!   than operational, the problem is current (its last window reads worse
//!   than operational, or still burns budget at a firing alert's rate), and
//!   either the spell has lasted longer than `open_after` (default 2 min) or
//!   a page-severity burn-rate alert has fired for `worsen_minutes`
//!   consecutive minutes. A blip does not: by the time it could, the window
//!   reads clean. Status investigating, impact from the worst status
//!   (degraded → minor, partial outage → major, major outage → critical),
//!   a title and a body from the evidence, the cause class in `cause`;
//!   a draft when `publish_automatic` is off.
//! - **One incident per ongoing problem**: a component that qualifies while
//!   an open automatic incident covers an overlapping component (one that
//!   sees the same traffic, such as the gateway and a model) joins that
//!   incident instead of opening another; components qualifying in the same
//!   minute open one incident together. Components that join, and an
//!   impact that grows, are written to the incident (never lowered).
//! - **An operator's incident covers its components**: a component named
//!   by an open, published incident an operator opened gets no automatic
//!   incident (nor joins one), and neither does a problem that incident
//!   explains: components that all see the traffic of a covered component
//!   that is not operational (the gateway, when the operator's incident
//!   names a model). The automation posts nothing to the operator's
//!   incident; once the operator resolves it, a problem that lasts gets an
//!   automatic incident again.
//! - **Identified** once the failing deployments are known; **monitoring**
//!   when all its components are operational again (an operational status
//!   counts only once it rests on evidence: traffic or probes read since
//!   the start, or the status taken up from the store after a restart, and
//!   no worse reading waiting for confirmation); **resolved** after
//!   `resolve_after` (default 10 min) of that; a relapse during monitoring
//!   goes back to identified on the same incident.
//! - **Never silent**: while open, an update with the current numbers at
//!   least every `update_interval` (default 30 min).
//!
//! Incidents made by operators are never touched. An automatic incident an
//! operator resolved is let go (its queued updates are dropped by the
//! writer, see [`super::writer`]); after a restart, open automatic incidents
//! in the store are taken up again, in the phase the store shows, with the
//! components' statuses taken up from their stored minutes (see
//! [`Engine::load_history`](super::Engine::load_history)). Nothing is
//! opened before the store has been read once, since an open incident it
//! holds could be duplicated.

use std::collections::BTreeMap;

use lifeline_store::{Impact, Incident, IncidentEdit, IncidentStatus, NewIncident};

use super::components::{ComponentDef, Layout};
use super::evidence::{Evidence, Tracked};
use super::settings::{ms, IncidentSettings};
use super::text::{self, Facts};
use super::writer::{Target, Write};
use crate::page::ComponentStatus;
use crate::sli::Minute;

/// What the automation needs to know of a component this minute.
#[derive(Debug, Clone)]
pub(crate) struct ComponentNow<'a> {
    pub def: &'a ComponentDef,
    /// Traffic status after hysteresis (maintenance not laid over).
    pub status: ComponentStatus,
    /// Start of the current non-operational spell.
    pub since: Option<i64>,
    /// The problem shows in the latest window.
    pub live: bool,
    /// The status rests on evidence since the start (or was taken up from
    /// the store) and no worse reading waits for confirmation: only then
    /// does an operational status count as a recovery.
    pub settled: bool,
    /// Consecutive minutes with a page alert firing.
    pub page_streak: u32,
    pub under_maintenance: bool,
    pub slow_only: bool,
    /// Its traffic over the last few minutes (since the onset, at most
    /// the widest evaluation window), for the numbers.
    pub window: Minute,
    /// That window's length in minutes.
    pub window_minutes: u32,
}

/// An automatic incident the engine is keeping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AutoIncident {
    pub handle: u64,
    pub id: Option<i64>,
    /// Component ids, the store's first, joined ones after.
    pub components: Vec<String>,
    pub phase: IncidentStatus,
    pub since: i64,
    pub last_update_at: i64,
    /// The latest time of any write for it (updates and edits): a newer
    /// `updated_at` in the store is an operator's.
    pub last_write_at: i64,
    pub recovered_at: Option<i64>,
    pub impact: Impact,
    /// The cause class as stored.
    pub cause: Option<String>,
}

fn rank(i: Impact) -> u8 {
    match i {
        Impact::None => 0,
        Impact::Minor => 1,
        Impact::Major => 2,
        Impact::Critical => 3,
    }
}

impl AutoIncident {
    fn target(&self) -> Target {
        match self.id {
            Some(id) => Target::Id(id),
            None => Target::Handle(self.handle),
        }
    }
}

/// The open automatic incidents.
#[derive(Debug, Clone, Default)]
pub(crate) struct Automation {
    pub open: Vec<AutoIncident>,
    next_handle: u64,
    /// The store has been read once: the open incidents it holds are
    /// known, so a new one cannot duplicate them.
    synced: bool,
    /// Components named by an open, published operator's incident.
    covered: Vec<String>,
}

/// The context of one minute's step.
pub(crate) struct Step<'a> {
    pub at: i64,
    pub layout: &'a Layout,
    pub components: &'a [ComponentNow<'a>],
    pub deployments: &'a BTreeMap<String, Tracked>,
    pub maintenance_drains: &'a std::collections::BTreeSet<String>,
    pub settings: &'a IncidentSettings,
    /// Name deployments in the texts (`show_providers`).
    pub name_deployments: bool,
    pub worsen_minutes: u32,
}

impl Step<'_> {
    fn find(&self, id: &str) -> Option<&ComponentNow<'_>> {
        self.components.iter().find(|c| c.def.id == id)
    }

    fn qualifies(&self, c: &ComponentNow<'_>) -> bool {
        let Some(since) = c.since else {
            return false;
        };
        !c.under_maintenance
            && c.status != ComponentStatus::Operational
            && c.live
            && (self.at - since > ms(self.settings.open_after)
                || c.page_streak >= self.worsen_minutes.max(1))
    }

    /// Names, worst status, evidence and cause of some components.
    fn facts<R>(&self, ids: &[String], f: impl FnOnce(&Facts<'_>) -> R) -> R {
        let now: Vec<&ComponentNow<'_>> = ids.iter().filter_map(|id| self.find(id)).collect();
        let names: Vec<String> = now
            .iter()
            .map(|c| c.def.long_name(&self.layout.groups))
            .collect();
        let worst = now.iter().max_by_key(|c| c.status.severity()).copied();
        let evidence = Evidence::gather(
            now.iter().map(|c| c.def),
            self.deployments,
            self.maintenance_drains,
        );
        let bad: Vec<&&ComponentNow<'_>> = now
            .iter()
            .filter(|c| c.status != ComponentStatus::Operational)
            .collect();
        let slow_only = !bad.is_empty() && bad.iter().all(|c| c.slow_only);
        let empty = Minute::default();
        let facts = Facts {
            names: &names,
            status: worst.map_or(ComponentStatus::Operational, |c| c.status),
            since: now.iter().filter_map(|c| c.since).min().unwrap_or(self.at),
            window: worst.map_or(&empty, |c| &c.window),
            window_minutes: worst.map_or(1, |c| c.window_minutes),
            threshold_ms: worst.map_or(0, |c| {
                u64::try_from(c.def.slo.latency_threshold.as_millis()).unwrap_or(u64::MAX)
            }),
            cause: evidence.cause(slow_only),
            evidence: &evidence,
            name_deployments: self.name_deployments,
        };
        f(&facts)
    }
}

/// Posts an update to `inc` at `at`.
fn post(
    writes: &mut Vec<Write>,
    at: i64,
    inc: &mut AutoIncident,
    status: IncidentStatus,
    body: String,
) {
    writes.push(Write::AddUpdate {
        target: inc.target(),
        status,
        body,
        at_ms: at,
    });
    inc.phase = status;
    inc.last_update_at = at;
    inc.last_write_at = at;
}

fn impact(status: ComponentStatus) -> Impact {
    match status {
        ComponentStatus::MajorOutage => Impact::Critical,
        ComponentStatus::PartialOutage => Impact::Major,
        ComponentStatus::DegradedPerformance => Impact::Minor,
        ComponentStatus::Operational | ComponentStatus::UnderMaintenance => Impact::None,
    }
}

impl Automation {
    /// One minute of automation: the writes it makes.
    pub fn step(&mut self, s: &Step<'_>) -> Vec<Write> {
        let mut writes = Vec::new();
        let (fresh, joined) = self.open_new(s, &mut writes);
        let mut done = Vec::new();
        for (i, inc) in self.open.iter_mut().enumerate() {
            if fresh.contains(&inc.handle) {
                continue;
            }
            let now: Vec<&ComponentNow<'_>> =
                inc.components.iter().filter_map(|id| s.find(id)).collect();
            let bad_now = now
                .iter()
                .any(|c| c.status != ComponentStatus::Operational && c.live);
            let all_ok = now
                .iter()
                .all(|c| c.status == ComponentStatus::Operational && c.settled);
            // Components that joined, or a worse impact: edit the incident.
            let worst = now
                .iter()
                .map(|c| impact(c.status))
                .max_by_key(|i| rank(*i))
                .unwrap_or(Impact::None);
            let mut edit = IncidentEdit::default();
            if rank(worst) > rank(inc.impact) {
                inc.impact = worst;
                edit.impact = Some(worst);
            }
            if joined.iter().any(|(h, _)| *h == inc.handle) {
                let mut ids = inc.components.clone();
                ids.sort();
                edit.components = Some(ids);
            }
            if edit != IncidentEdit::default() {
                writes.push(Write::EditIncident {
                    target: inc.target(),
                    edit,
                    at_ms: s.at,
                });
                inc.last_write_at = s.at;
            }
            let before = inc.last_update_at;
            match inc.phase {
                IncidentStatus::Investigating | IncidentStatus::Identified if all_ok => {
                    let body = s.facts(&inc.components, |f| text::monitoring(f, s.at));
                    inc.recovered_at = Some(s.at);
                    post(&mut writes, s.at, inc, IncidentStatus::Monitoring, body);
                }
                IncidentStatus::Investigating => {
                    let known = s.facts(&inc.components, |f| {
                        (!f.evidence.failing.is_empty())
                            .then(|| (text::identified(f), f.cause.as_str().to_string()))
                    });
                    if let Some((body, cause)) = known {
                        // The cause is clearer now: keep the store's in step
                        // (restoration estimates pool by it).
                        if inc.cause.as_deref() != Some(cause.as_str()) {
                            let edit = IncidentEdit {
                                cause: Some(Some(cause.clone())),
                                ..IncidentEdit::default()
                            };
                            writes.push(Write::EditIncident {
                                target: inc.target(),
                                edit,
                                at_ms: s.at,
                            });
                            inc.cause = Some(cause);
                        }
                        post(&mut writes, s.at, inc, IncidentStatus::Identified, body);
                    }
                }
                IncidentStatus::Monitoring if bad_now => {
                    let body = s.facts(&inc.components, |f| text::relapse(f, s.at));
                    inc.recovered_at = None;
                    post(&mut writes, s.at, inc, IncidentStatus::Identified, body);
                }
                IncidentStatus::Monitoring => {
                    let recovered = inc.recovered_at.unwrap_or(inc.last_update_at);
                    if all_ok && s.at - recovered >= ms(s.settings.resolve_after) {
                        let names: Vec<String> = now
                            .iter()
                            .map(|c| c.def.long_name(&s.layout.groups))
                            .collect();
                        let body = text::resolved(&names, inc.since, recovered, s.at - recovered);
                        post(&mut writes, s.at, inc, IncidentStatus::Resolved, body);
                        done.push(i);
                    }
                }
                _ => {}
            }
            let interval = ms(s.settings.update_interval);
            if inc.last_update_at == before && s.at - inc.last_update_at >= interval {
                let monitoring = (inc.phase == IncidentStatus::Monitoring)
                    .then_some(inc.recovered_at)
                    .flatten();
                let body = s.facts(&inc.components, |f| text::still(f, monitoring, interval));
                let phase = inc.phase;
                post(&mut writes, s.at, inc, phase, body);
            }
        }
        for i in done.into_iter().rev() {
            self.open.remove(i);
        }
        writes
    }

    /// Opens incidents for the components that qualify (or joins them to
    /// an open one); returns the handles opened, and the joins.
    fn open_new(
        &mut self,
        s: &Step<'_>,
        writes: &mut Vec<Write>,
    ) -> (Vec<u64>, Vec<(u64, String)>) {
        let mut clusters: Vec<Vec<String>> = Vec::new();
        let mut joined = Vec::new();
        if !self.synced {
            return (Vec::new(), joined);
        }
        for c in s.components.iter().filter(|c| s.qualifies(c)) {
            let id = &c.def.id;
            if self.open.iter().any(|inc| inc.components.contains(id)) || self.covered.contains(id)
            {
                continue;
            }
            let overlaps = |ids: &[String]| {
                ids.iter()
                    .filter_map(|x| s.layout.get(x))
                    .any(|d| d.overlaps(c.def))
            };
            if let Some(inc) = self.open.iter_mut().find(|inc| overlaps(&inc.components)) {
                inc.components.push(id.clone());
                joined.push((inc.handle, id.clone()));
                continue;
            }
            match clusters.iter_mut().find(|ids| overlaps(ids)) {
                Some(ids) => ids.push(id.clone()),
                None => clusters.push(vec![id.clone()]),
            }
        }
        // A problem an operator's incident explains: every component of
        // the cluster sees the traffic of a covered component that is not
        // operational (the gateway, when the operator's incident names a
        // model).
        let explained = |id: &String| {
            s.layout.get(id).is_some_and(|d| {
                self.covered.iter().any(|cov| {
                    s.find(cov).is_some_and(|c| {
                        c.status != ComponentStatus::Operational && c.def.overlaps(d)
                    })
                })
            })
        };
        clusters.retain(|ids| !ids.iter().all(explained));
        let mut fresh = Vec::new();
        for mut ids in clusters {
            // Name the specific components before the gateway.
            ids.sort_by_key(|id| s.layout.get(id).is_none_or(|d| d.is_everything()));
            let new = s.facts(&ids, |f| NewIncident {
                name: text::title(f),
                status: IncidentStatus::Investigating,
                impact: impact(f.status),
                body: text::opening(f),
                components: Vec::new(),
                automatic: true,
                draft: !s.settings.publish_automatic,
                cause: Some(f.cause.as_str().to_string()),
                at_ms: s.at,
            });
            let opened_impact = new.impact;
            let opened_cause = new.cause.clone();
            let since = ids
                .iter()
                .filter_map(|id| s.find(id).and_then(|c| c.since))
                .min()
                .unwrap_or(s.at);
            let mut sorted = ids.clone();
            sorted.sort();
            let handle = self.next_handle;
            self.next_handle += 1;
            writes.push(Write::CreateIncident {
                handle,
                new: NewIncident {
                    components: sorted,
                    ..new
                },
            });
            self.open.push(AutoIncident {
                handle,
                id: None,
                components: ids,
                phase: IncidentStatus::Investigating,
                since,
                last_update_at: s.at,
                last_write_at: s.at,
                recovered_at: None,
                impact: opened_impact,
                cause: opened_cause,
            });
            fresh.push(handle);
        }
        (fresh, joined)
    }

    /// Learns the store ids of incidents it opened, and forgets those the
    /// store refused (they open again if the problem lasts).
    pub fn learn(&mut self, created: &[(u64, i64)], refused: &[u64]) {
        for (handle, id) in created {
            if let Some(inc) = self.open.iter_mut().find(|i| i.handle == *handle) {
                inc.id = Some(*id);
            }
        }
        self.open.retain(|i| !refused.contains(&i.handle));
    }

    /// Follows the store: lets go of incidents no longer open there (an
    /// operator resolved or deleted them), follows an operator's newer
    /// status change, and takes up open automatic incidents it does not
    /// keep (after a restart).
    pub fn sync(&mut self, recent: &[Incident]) {
        self.synced = true;
        self.covered = recent
            .iter()
            .filter(|r| !r.automatic && !r.draft && r.status.is_open())
            .flat_map(|r| r.components.iter().cloned())
            .collect();
        self.open.retain_mut(|inc| {
            let Some(id) = inc.id else {
                return true;
            };
            match recent.iter().find(|r| r.id == id) {
                Some(r) if r.status.is_open() => {
                    if r.updated_at > inc.last_write_at && r.status != inc.phase {
                        // An operator posted an update: follow it.
                        inc.phase = r.status;
                        inc.last_update_at = r.updated_at;
                        inc.last_write_at = r.updated_at;
                        if r.status == IncidentStatus::Monitoring {
                            inc.recovered_at.get_or_insert(r.updated_at);
                        } else {
                            inc.recovered_at = None;
                        }
                    }
                    if rank(r.impact) > rank(inc.impact) {
                        inc.impact = r.impact;
                    }
                    true
                }
                _ => false,
            }
        });
        for r in recent.iter().filter(|r| r.automatic && r.status.is_open()) {
            if self.open.iter().any(|inc| inc.id == Some(r.id)) {
                continue;
            }
            let handle = self.next_handle;
            self.next_handle += 1;
            self.open.push(AutoIncident {
                handle,
                id: Some(r.id),
                components: r.components.clone(),
                phase: r.status,
                since: r.created_at,
                last_update_at: r.updated_at,
                last_write_at: r.updated_at,
                recovered_at: (r.status == IncidentStatus::Monitoring).then_some(r.updated_at),
                impact: r.impact,
                cause: r.cause.clone(),
            });
        }
    }
}
