//! The engine's writes to the store, queued, and what it reads back.
//!
//! The engine never calls the store: [`Engine::tick`](super::Engine::tick)
//! returns [`Write`]s, which the driver hands to a [`Writer`]. The driver
//! runs [`Writer::flush`] on a blocking thread (the store is synchronous and
//! may wait on its lock or the disk) and gives the [`FlushOutcome`] back to
//! [`Engine::apply_flush`](super::Engine::apply_flush). A store that is
//! locked, unwritable or full ([`StoreError::Unavailable`]) therefore never
//! holds up evaluation: writes stay queued in order and are retried at the
//! next flush, and the outcome says since when the history is behind (the
//! page shows it). A write the store refuses for good (a row an operator
//! deleted, an invalid value) is dropped and reported, so that one bad
//! write cannot hold back the rest.
//!
//! Updates and edits of automatic incidents are written only if they are
//! still current ([`Store::add_update_if_current`]): a write queued while
//! the store was unavailable, stamped with the minute it was decided in,
//! is dropped when the incident was resolved meanwhile or changed later by
//! an operator; the engine then follows the store (it lets a resolved
//! incident go, and takes up an operator's newer status).
//!
//! Incidents the engine opens have no store id until their creation is
//! written; the engine names them by a handle meanwhile ([`Target`]), and
//! the writer resolves the handle when it writes their updates.

use std::collections::{HashMap, VecDeque};

use lifeline_store::sli::MinuteRecord;
use lifeline_store::{
    Incident, IncidentEdit, IncidentStatus, IncidentWithUpdates, KnownComponent, MaintenanceStatus,
    NewIncident, ScheduledMaintenance, SliStore, Store, StoreError,
};

use crate::page::ComponentStatus;
use crate::sli::Minute;

/// Incidents read back for restoration estimates, day bars and adoption.
pub const HISTORY_LIMIT: usize = 1000;
/// Incidents and maintenances on the page.
pub const PAGE_LIMIT: usize = 50;

/// Which incident a write is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A stored incident.
    Id(i64),
    /// An incident the engine opened, by its handle, whose id the writer
    /// learns when it creates it.
    Handle(u64),
}

/// One component's minute with the status it showed, for the SLI history.
#[derive(Debug, Clone, PartialEq)]
pub struct SliRow {
    /// The component.
    pub component: String,
    /// Its traffic (`at`: the minute's start).
    pub minute: Minute,
    /// The status it showed that minute.
    pub status: ComponentStatus,
}

/// One write the engine asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Open an automatic incident.
    CreateIncident {
        /// The engine's handle for it.
        handle: u64,
        /// What to create.
        new: NewIncident,
    },
    /// Post an update to an automatic incident.
    AddUpdate {
        /// The incident.
        target: Target,
        /// Its new status.
        status: IncidentStatus,
        /// The text.
        body: String,
        /// When (unix ms).
        at_ms: i64,
    },
    /// Change an automatic incident's components or impact.
    EditIncident {
        /// The incident.
        target: Target,
        /// The change.
        edit: IncidentEdit,
        /// When (unix ms).
        at_ms: i64,
    },
    /// Move a maintenance window forward to a new status.
    MaintenanceStatus {
        /// The window.
        id: i64,
        /// Its new status.
        status: MaintenanceStatus,
        /// When (unix ms).
        at_ms: i64,
    },
    /// Keep components' minutes (idempotent per component and minute).
    Minutes(Vec<SliRow>),
    /// Register a component seen now (its `created_at` survives restarts).
    TouchComponent {
        /// Its id.
        id: String,
        /// Its display name.
        name: String,
        /// When (unix ms).
        at_ms: i64,
    },
}

/// What the store holds, as the engine needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreView {
    /// Published incidents with their updates: the newest
    /// [`PAGE_LIMIT`], plus every unresolved one, plus any of the previous
    /// view's that changed since (once). Newest first.
    pub incidents: Vec<IncidentWithUpdates>,
    /// The newest [`HISTORY_LIMIT`] incidents and every unresolved one,
    /// drafts included, newest first.
    pub recent: Vec<Incident>,
    /// The [`PAGE_LIMIT`] maintenance windows with the latest start, and
    /// every window scheduled, in progress or verifying; latest start
    /// first.
    pub maintenances: Vec<ScheduledMaintenance>,
    /// The component registry.
    pub components: Vec<KnownComponent>,
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq)]
pub struct FlushOutcome {
    /// When it ran (unix ms).
    pub at_ms: i64,
    /// Incidents created: the engine's handle and the store's id.
    pub created: Vec<(u64, i64)>,
    /// Incident creations the store refused for good (by handle).
    pub refused: Vec<u64>,
    /// Writes still queued.
    pub pending: usize,
    /// Since when writes or reads fail, `None` when all is written.
    pub behind_since: Option<i64>,
    /// The errors of this flush (the retried one, and any write dropped).
    pub errors: Vec<String>,
    /// The store's contents, when they could be read.
    pub view: Option<StoreView>,
}

/// The queue of writes, and the reader of the view.
#[derive(Debug, Default)]
pub struct Writer {
    queue: VecDeque<Write>,
    ids: HashMap<u64, i64>,
    behind_since: Option<i64>,
    cache: HashMap<i64, IncidentWithUpdates>,
}

/// A failure worth retrying: the store is there but cannot take it now.
fn retryable(e: &StoreError) -> bool {
    e.is_unavailable() || matches!(e, StoreError::Poisoned)
}

impl Writer {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues writes, in order, after those already queued.
    pub fn push(&mut self, writes: impl IntoIterator<Item = Write>) {
        self.queue.extend(writes);
    }

    /// Writes still queued.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Writes what is queued, in order, stopping at the first failure to
    /// retry, then reads the view back. Blocking: run it on a blocking
    /// thread.
    pub fn flush<S: Store + SliStore + ?Sized>(&mut self, store: &S, now_ms: i64) -> FlushOutcome {
        let mut created = Vec::new();
        let mut refused = Vec::new();
        let mut errors = Vec::new();
        let mut stuck = false;
        while let Some(write) = self.queue.front() {
            match self.apply(store, write) {
                Ok(Some(pair)) => {
                    self.ids.insert(pair.0, pair.1);
                    created.push(pair);
                }
                Ok(None) | Err(StoreError::NotFound { .. }) => {}
                Err(e) if retryable(&e) => {
                    errors.push(e.to_string());
                    stuck = true;
                    break;
                }
                Err(e) => {
                    if let Write::CreateIncident { handle, .. } = write {
                        refused.push(*handle);
                    }
                    errors.push(format!("dropped a write the store refused: {e}"));
                }
            }
            self.queue.pop_front();
        }
        let view = match self.read(store) {
            Ok(view) => Some(view),
            Err(e) => {
                errors.push(e.to_string());
                stuck = true;
                None
            }
        };
        if stuck {
            self.behind_since.get_or_insert(now_ms);
        } else {
            self.behind_since = None;
        }
        FlushOutcome {
            at_ms: now_ms,
            created,
            refused,
            pending: self.queue.len(),
            behind_since: self.behind_since,
            errors,
            view,
        }
    }

    fn id(&self, target: Target) -> Option<i64> {
        match target {
            Target::Id(id) => Some(id),
            // The creation comes first in the queue, so the id is known
            // unless the creation was refused.
            Target::Handle(h) => self.ids.get(&h).copied(),
        }
    }

    fn apply<S: Store + SliStore + ?Sized>(
        &self,
        store: &S,
        write: &Write,
    ) -> lifeline_store::Result<Option<(u64, i64)>> {
        match write {
            Write::CreateIncident { handle, new } => {
                let created = store.create_incident(new)?;
                return Ok(Some((*handle, created.incident.id)));
            }
            Write::AddUpdate {
                target,
                status,
                body,
                at_ms,
            } => {
                if let Some(id) = self.id(*target) {
                    store.add_update_if_current(id, *status, body, *at_ms)?;
                }
            }
            Write::EditIncident {
                target,
                edit,
                at_ms,
            } => {
                if let Some(id) = self.id(*target) {
                    store.edit_incident_if_current(id, edit, *at_ms)?;
                }
            }
            Write::MaintenanceStatus { id, status, at_ms } => {
                store.set_maintenance_status(*id, *status, *at_ms)?;
            }
            Write::Minutes(rows) => {
                let records: Vec<MinuteRecord<'_>> = rows
                    .iter()
                    .map(|r| MinuteRecord {
                        component: &r.component,
                        minute: &r.minute,
                        status: r.status.as_str(),
                    })
                    .collect();
                store.write_minutes(&records)?;
            }
            Write::TouchComponent { id, name, at_ms } => {
                store.touch_component(id, name, *at_ms)?;
            }
        }
        Ok(None)
    }

    fn read<S: Store + ?Sized>(&mut self, store: &S) -> lifeline_store::Result<StoreView> {
        let mut recent = store.list_incidents(HISTORY_LIMIT)?;
        for open in store.list_unresolved()? {
            if !recent.iter().any(|r| r.id == open.id) {
                recent.push(open);
            }
        }
        recent.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        // The newest published ones, every unresolved one, and any in the
        // previous view that changed since (an old incident just resolved:
        // its resolution must reach the events once).
        let changed = |row: &Incident| self.cache.get(&row.id).is_some_and(|c| c.incident != *row);
        let mut wanted: Vec<Incident> = Vec::new();
        for i in recent.iter().filter(|i| !i.draft) {
            if wanted.len() < PAGE_LIMIT || i.status.is_open() || changed(i) {
                wanted.push(i.clone());
            }
        }
        // Beyond the history read back: ask for them one by one.
        let gone: Vec<i64> = self
            .cache
            .keys()
            .filter(|id| !recent.iter().any(|r| r.id == **id))
            .copied()
            .collect();
        let mut fetched = Vec::new();
        for id in gone {
            match store.incident(id)? {
                Some(full) if !full.incident.draft && changed(&full.incident) => {
                    wanted.push(full.incident.clone());
                    fetched.push(full);
                }
                _ => {}
            }
        }
        for full in fetched {
            self.cache.insert(full.incident.id, full);
        }
        wanted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let mut incidents = Vec::with_capacity(wanted.len());
        for row in wanted {
            let fresh = self.cache.get(&row.id).is_some_and(|c| c.incident == row);
            if !fresh {
                match store.incident(row.id)? {
                    Some(full) => {
                        self.cache.insert(row.id, full);
                    }
                    None => continue,
                }
            }
            if let Some(full) = self.cache.get(&row.id) {
                incidents.push(full.clone());
            }
        }
        let kept: std::collections::HashSet<i64> =
            incidents.iter().map(|i| i.incident.id).collect();
        self.cache.retain(|id, _| kept.contains(id));
        // The latest windows for the lists, and every window not completed
        // (however many lie ahead: the nearest must start on time).
        let mut maintenances = store.list_maintenances(PAGE_LIMIT)?;
        for w in store.list_maintenances_by_status(&[
            MaintenanceStatus::Scheduled,
            MaintenanceStatus::InProgress,
            MaintenanceStatus::Verifying,
        ])? {
            if !maintenances.iter().any(|m| m.id == w.id) {
                maintenances.push(w);
            }
        }
        maintenances.sort_by(|a, b| b.scheduled_for.cmp(&a.scheduled_for).then(b.id.cmp(&a.id)));
        Ok(StoreView {
            incidents,
            recent,
            maintenances,
            components: store.known_components()?,
        })
    }
}
