//! Maintenance windows on time, without an operator.
//!
//! A window's status is the further of what the store says and what the
//! clock says (scheduled before `scheduled_for`, in progress until
//! `scheduled_until`, completed after), in the order scheduled → in
//! progress → verifying → completed; so an operator may complete a window
//! early or hold it in verifying, and the clock completes it at its end.
//! When that differs from the store, the engine writes the new status
//! (once) and announces the start or the end.
//!
//! While a window is in progress or verifying, its components show
//! under_maintenance and the deployments serving them are drained: those of
//! the components' models, or of the provider for a provider component. A
//! component covering every model (the gateway) drains nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lifeline_store::{MaintenanceStatus, ScheduledMaintenance};

use super::components::Layout;
use super::evidence::Tracked;
use super::writer::Write;

fn rank(s: MaintenanceStatus) -> u8 {
    match s {
        MaintenanceStatus::Scheduled => 0,
        MaintenanceStatus::InProgress => 1,
        MaintenanceStatus::Verifying => 2,
        MaintenanceStatus::Completed => 3,
    }
}

/// What the clock says about a window at `now`.
fn by_clock(m: &ScheduledMaintenance, now: i64) -> MaintenanceStatus {
    if now < m.scheduled_for {
        MaintenanceStatus::Scheduled
    } else if now < m.scheduled_until {
        MaintenanceStatus::InProgress
    } else {
        MaintenanceStatus::Completed
    }
}

/// A window's status at `now`.
pub(crate) fn status(m: &ScheduledMaintenance, now: i64) -> MaintenanceStatus {
    let clock = by_clock(m, now);
    if rank(clock) > rank(m.status) {
        clock
    } else {
        m.status
    }
}

/// A start or an end the engine saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    Started(ScheduledMaintenance),
    Completed(ScheduledMaintenance),
}

/// The windows the store holds, and what the engine did about them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Maintenances {
    windows: Vec<ScheduledMaintenance>,
    /// The status each window was last seen or moved to.
    last: HashMap<i64, MaintenanceStatus>,
    /// The status the engine last wrote for each window.
    written: HashMap<i64, MaintenanceStatus>,
}

impl Maintenances {
    /// Takes the store's list.
    pub fn replace(&mut self, windows: Vec<ScheduledMaintenance>) {
        for w in &windows {
            self.last.entry(w.id).or_insert(w.status);
        }
        self.last
            .retain(|id, _| windows.iter().any(|w| w.id == *id));
        self.written.retain(|id, s| {
            windows
                .iter()
                .any(|w| w.id == *id && rank(w.status) < rank(*s))
        });
        self.windows = windows;
    }

    /// Moves windows on time: the writes and the transitions.
    pub fn step(&mut self, now: i64) -> (Vec<Write>, Vec<Transition>) {
        let mut writes = Vec::new();
        let mut transitions = Vec::new();
        for w in &self.windows {
            let s = status(w, now);
            if s != w.status && self.written.get(&w.id) != Some(&s) {
                self.written.insert(w.id, s);
                writes.push(Write::MaintenanceStatus {
                    id: w.id,
                    status: s,
                    at_ms: now,
                });
            }
            let before = self.last.insert(w.id, s).unwrap_or(w.status);
            if before == s {
                continue;
            }
            let shown = ScheduledMaintenance {
                status: s,
                updated_at: now,
                ..w.clone()
            };
            if rank(before) < rank(MaintenanceStatus::InProgress)
                && s == MaintenanceStatus::InProgress
            {
                transitions.push(Transition::Started(shown));
            } else if s == MaintenanceStatus::Completed {
                transitions.push(Transition::Completed(shown));
            }
        }
        (writes, transitions)
    }

    /// The windows as the page shows them at `now`: latest start first.
    pub fn shown(&self, now: i64) -> Vec<ScheduledMaintenance> {
        let mut out: Vec<ScheduledMaintenance> = self
            .windows
            .iter()
            .map(|w| {
                let s = status(w, now);
                if s == w.status {
                    w.clone()
                } else {
                    let at = match s {
                        MaintenanceStatus::InProgress => w.scheduled_for,
                        MaintenanceStatus::Completed => w.scheduled_until.min(now),
                        _ => now,
                    };
                    ScheduledMaintenance {
                        status: s,
                        updated_at: at.max(w.updated_at),
                        ..w.clone()
                    }
                }
            })
            .collect();
        out.sort_by(|a, b| b.scheduled_for.cmp(&a.scheduled_for).then(b.id.cmp(&a.id)));
        out
    }

    /// Components under maintenance at `now`.
    pub fn components(&self, now: i64) -> BTreeSet<String> {
        self.windows
            .iter()
            .filter(|w| {
                matches!(
                    status(w, now),
                    MaintenanceStatus::InProgress | MaintenanceStatus::Verifying
                )
            })
            .flat_map(|w| w.components.iter().cloned())
            .collect()
    }

    /// Deployments to drain at `now`.
    pub fn drains(
        &self,
        now: i64,
        layout: &Layout,
        deployments: &BTreeMap<String, Tracked>,
    ) -> BTreeSet<String> {
        let components = self.components(now);
        let defs: Vec<_> = components
            .iter()
            .filter_map(|id| layout.get(id))
            .filter(|c| !c.is_everything())
            .collect();
        deployments
            .iter()
            .filter(|(_, d)| {
                defs.iter()
                    .any(|c| c.served_by(&d.state.provider, &d.state.models))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}
