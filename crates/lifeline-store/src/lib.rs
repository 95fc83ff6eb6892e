//! Lifeline's store: everything the status side remembers (incidents, their
//! updates, scheduled maintenance), behind the [`Store`] trait so that a
//! PostgreSQL implementation can be added for clusters later. SQLite is the
//! default ([`SqliteStore`]).
//!
//! The shapes follow Atlassian Statuspage's model (`incident`,
//! `incident_update`, `scheduled_maintenance`) with its exact enumerations, so
//! the status side can render `/api/v2/*.json` from them field by field.
//!
//! **Timestamps** are unix milliseconds (UTC) as `i64` everywhere: in the
//! types, in the trait and in the database. Callers pass the time of every
//! write explicitly, so a controllable clock works in tests; rendering to
//! RFC 3339 is the status side's job.
//!
//! **Blocking.** The methods are synchronous and may wait on disk (`fsync`)
//! or on SQLite's lock for up to the busy timeout. Callers on an async runtime
//! run them on a blocking thread (`tokio::task::spawn_blocking`). The data
//! plane never calls the store: it serves from memory, and only the status
//! side and the admin API write here.
//!
//! This crate imports nothing from `lifeline-core` (the request path); the
//! dependency only ever points the other way.

mod error;
mod migrate;
mod model;
pub mod sli;
mod sqlite;

#[cfg(test)]
mod tests;

pub use error::{Result, StoreError};
pub use migrate::LATEST_VERSION;
pub use model::{
    Impact, Incident, IncidentStatus, IncidentUpdate, IncidentWithUpdates, MaintenanceStatus,
    NewIncident, NewMaintenance, ScheduledMaintenance,
};
pub use sqlite::SqliteStore;

use std::path::Path;

/// What the status side needs from a store. Every method is a complete,
/// acknowledged operation: when it returns `Ok`, the change is on disk.
///
/// Synchronous on purpose (see the crate docs): call it from a blocking
/// thread, never from the data plane.
pub trait Store: Send + Sync {
    /// Opens an incident together with its first update (whose status and
    /// body are the incident's opening status and `body`), atomically.
    fn create_incident(&self, new: &NewIncident) -> Result<IncidentWithUpdates>;

    /// Posts an update to an incident and moves the incident to the update's
    /// status. `resolved` (and `postmortem`, if the incident was not resolved
    /// before) sets `resolved_at`; a move back to an open status clears it.
    /// [`StoreError::NotFound`] if there is no such incident.
    fn add_update(
        &self,
        incident_id: i64,
        status: IncidentStatus,
        body: &str,
        at_ms: i64,
    ) -> Result<IncidentUpdate>;

    /// One incident with its updates, oldest update first; `None` if absent.
    fn incident(&self, id: i64) -> Result<Option<IncidentWithUpdates>>;

    /// The `limit` most recent incidents (by `created_at`, then id), newest
    /// first, drafts included (the caller decides what to publish).
    fn list_incidents(&self, limit: usize) -> Result<Vec<Incident>>;

    /// Incidents whose status is investigating, identified or monitoring,
    /// newest first.
    fn list_unresolved(&self) -> Result<Vec<Incident>>;

    /// Schedules a maintenance window.
    fn create_maintenance(&self, new: &NewMaintenance) -> Result<ScheduledMaintenance>;

    /// The `limit` maintenance windows with the latest `scheduled_for`,
    /// latest first, completed ones included.
    fn list_maintenances(&self, limit: usize) -> Result<Vec<ScheduledMaintenance>>;

    /// Cancels (deletes) a maintenance window, as Statuspage does: a
    /// cancelled window does not appear in its lists. Returns whether it
    /// existed.
    fn cancel_maintenance(&self, id: i64) -> Result<bool>;

    /// Writes a consistent copy of the whole store to `path` while other
    /// threads and processes keep writing. The copy is itself a store that
    /// [`SqliteStore::open`] accepts. An existing file at `path` is replaced.
    fn backup(&self, path: &Path) -> Result<()>;
}
