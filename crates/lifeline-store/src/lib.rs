//! Lifeline's store: everything the status side remembers, behind traits
//! so that a PostgreSQL implementation can be added for clusters later.
//! SQLite is the default ([`SqliteStore`], which implements them all).
//!
//! - [`Store`]: incidents, their updates and scheduled maintenance, after
//!   Atlassian Statuspage's model (`incident`, `incident_update`,
//!   `scheduled_maintenance`) with its exact enumerations, so the status side
//!   can render `/api/v2/*.json` from them field by field; and the registry
//!   of components seen (their `created_at` survives restarts).
//! - [`SliStore`]: per-minute SLI rows ([`sli::Minute`] plus the component's
//!   status that minute) and their daily rollups, the uptime history.
//! - [`UpstreamStore`]: the archive of providers' published incidents, a
//!   basis for restoration-time estimates from the first day.
//! - [`WebhookStore`]: webhook subscriptions and a durable delivery outbox.
//! - [`KeyStore`]: virtual client keys (by SHA-256, never the key), which
//!   `lifeline keys` writes and a running gateway reads every second.
//! - [`AuditStore`]: the audit log of admin actions.
//! - [`StatusStore`]: all six, for one `Arc<dyn StatusStore>`.
//!
//! **Timestamps** are unix milliseconds (UTC) as `i64` everywhere: in the
//! types, in the traits and in the database. Callers pass the time of every
//! write explicitly, so a controllable clock works in tests; rendering to
//! RFC 3339 is the status side's job.
//!
//! **Blocking.** The methods are synchronous and may wait on disk (`fsync`)
//! or on SQLite's lock for up to the busy timeout. Callers on an async runtime
//! run them on a blocking thread (`tokio::task::spawn_blocking`). The data
//! plane never calls the store: it serves from memory, and only the status
//! side, the key sync, the admin API and the CLI touch it.
//!
//! **Failures.** A store that is locked by another writer, read-only, out of
//! disk space or failing I/O returns [`StoreError::Unavailable`] (nothing was
//! written; retry later, and meanwhile say that history is behind); other
//! errors are not cured by retrying. See [`StoreError`].
//!
//! **Durability.** When a write returns `Ok`, it is on disk (WAL with
//! `synchronous = FULL`): it survives `kill -9` and power loss. Schema
//! upgrades are versioned migrations that upgrade an existing file in place
//! (`migrate.rs`). [`Store::backup`] copies the live store consistently;
//! [`SqliteStore::restore_from`] brings a copy back, online.
//!
//! This crate imports nothing from `lifeline-core` (the request path) nor
//! from `lifeline-status`; the dependencies only ever point the other way.

#[macro_use]
mod macros;

pub mod audit;
mod error;
pub mod keys;
mod migrate;
mod model;
pub mod sli;
mod sqlite;
pub mod upstream;
pub mod webhook;

#[cfg(test)]
mod tests;

pub use error::{Result, StoreError};
pub use migrate::LATEST_VERSION;
pub use model::{
    Impact, Incident, IncidentEdit, IncidentStatus, IncidentUpdate, IncidentWithUpdates,
    KnownComponent, MaintenanceStatus, NewIncident, NewMaintenance, ScheduledMaintenance,
};
pub use sqlite::{SqliteOptions, SqliteStore, DEFAULT_BUSY_TIMEOUT};

use std::path::Path;

use audit::{AuditEntry, NewAuditEntry};
use keys::{ActiveKey, KeyInfo, NewKey};
use sli::{MinuteRecord, Pruned, SliDay, SliMinute};
use upstream::{ArchivedIncident, UpstreamIncident};
use webhook::{AttemptResult, Delivery, DueDelivery, NewDelivery, NewSubscription, Subscription};

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

    /// Changes an incident's name, impact, components, cause, draft flag or
    /// restoration override (whichever `edit` sets) and sets `updated_at` to
    /// `at_ms`; returns the incident as it now is. The status moves only
    /// with [`Store::add_update`]; a postmortem is an update with
    /// [`IncidentStatus::Postmortem`]. [`StoreError::NotFound`] if there is
    /// no such incident.
    fn edit_incident(&self, id: i64, edit: &IncidentEdit, at_ms: i64) -> Result<Incident>;

    /// [`Store::add_update`] for a write decided earlier (the status
    /// engine's, queued while the store was unavailable): written only
    /// while the incident is open (investigating, identified or monitoring)
    /// and its `updated_at` is not after `at_ms`; `Ok(None)`, nothing
    /// written, otherwise. So a late automatic update never reopens an
    /// incident an operator resolved meanwhile, nor undoes their later
    /// change. [`StoreError::NotFound`] if there is no such incident.
    ///
    /// The default reads, then writes; [`SqliteStore`] does both in one
    /// transaction.
    fn add_update_if_current(
        &self,
        incident_id: i64,
        status: IncidentStatus,
        body: &str,
        at_ms: i64,
    ) -> Result<Option<IncidentUpdate>> {
        match self.incident(incident_id)? {
            None => Err(StoreError::NotFound {
                what: "incident",
                id: incident_id,
            }),
            Some(i) if i.incident.is_current(at_ms) => {
                self.add_update(incident_id, status, body, at_ms).map(Some)
            }
            Some(_) => Ok(None),
        }
    }

    /// [`Store::edit_incident`] under the same condition as
    /// [`Store::add_update_if_current`].
    fn edit_incident_if_current(
        &self,
        id: i64,
        edit: &IncidentEdit,
        at_ms: i64,
    ) -> Result<Option<Incident>> {
        match self.incident(id)? {
            None => Err(StoreError::NotFound {
                what: "incident",
                id,
            }),
            Some(i) if i.incident.is_current(at_ms) => {
                self.edit_incident(id, edit, at_ms).map(Some)
            }
            Some(_) => Ok(None),
        }
    }

    /// Publishes a draft incident (an operator's one command).
    fn publish_incident(&self, id: i64, at_ms: i64) -> Result<Incident> {
        let edit = IncidentEdit {
            draft: Some(false),
            ..IncidentEdit::default()
        };
        self.edit_incident(id, &edit, at_ms)
    }

    /// Sets (or with `None` removes) an operator's restoration override:
    /// the time the incident is expected to be resolved (unix ms).
    fn set_expected_resolved_at(
        &self,
        id: i64,
        expected_resolved_at: Option<i64>,
        at_ms: i64,
    ) -> Result<Incident> {
        let edit = IncidentEdit {
            expected_resolved_at: Some(expected_resolved_at),
            ..IncidentEdit::default()
        };
        self.edit_incident(id, &edit, at_ms)
    }

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

    /// Maintenance windows whose status is one of `statuses`, earliest
    /// `scheduled_for` first (the engine asks for scheduled and in-progress
    /// ones to move them on time).
    fn list_maintenances_by_status(
        &self,
        statuses: &[MaintenanceStatus],
    ) -> Result<Vec<ScheduledMaintenance>>;

    /// Moves a maintenance window forward to `status` at `at_ms` (its
    /// `updated_at`). Forward only (scheduled, in progress, verifying,
    /// completed): a window already at or past `status` is returned
    /// unchanged, so the engine's on-time transitions are idempotent and
    /// never undo an operator's. [`StoreError::NotFound`] if there is no
    /// such window.
    fn set_maintenance_status(
        &self,
        id: i64,
        status: MaintenanceStatus,
        at_ms: i64,
    ) -> Result<ScheduledMaintenance>;

    /// Remembers a component seen now: returns its `created_at`, `at_ms` on
    /// the first sighting and the first sighting's time ever after (its
    /// name is updated if it changed). Writes only on a first sighting or a
    /// new name.
    fn touch_component(&self, id: &str, name: &str, at_ms: i64) -> Result<i64>;

    /// Every component the registry knows, by id.
    fn known_components(&self) -> Result<Vec<KnownComponent>>;

    /// Writes a consistent copy of the whole store to `path` while other
    /// threads and processes keep writing. The copy is itself a store that
    /// [`SqliteStore::open`] accepts. An existing file at `path` is replaced.
    fn backup(&self, path: &Path) -> Result<()>;
}

/// The status side's SLI history: one row per component and minute, and
/// one rollup per component and UTC day (see [`sli`]).
pub trait SliStore: Send + Sync {
    /// Writes a batch of minutes in one transaction, each with its day's
    /// rollup. Idempotent per (component, minute): writing a minute again
    /// replaces it, in the day too (a re-flush after a failure never double
    /// counts). The whole batch is checked first: every `minute.at` must be
    /// a multiple of [`sli::MINUTE_MS`] and every status one of
    /// [`sli::COMPONENT_STATUSES`], or nothing is written
    /// ([`StoreError::Invalid`]). Minutes older than what
    /// [`SliStore::prune`] already deleted are skipped. Returns how many
    /// were written.
    fn write_minutes(&self, rows: &[MinuteRecord<'_>]) -> Result<usize>;

    /// A component's minutes starting in `[from_ms, to_ms)`, oldest first.
    fn minutes(&self, component: &str, from_ms: i64, to_ms: i64) -> Result<Vec<SliMinute>>;

    /// A component's days (by midnight UTC) in `[from_ms, to_ms)`, oldest
    /// first; days without any minute written are absent.
    fn days(&self, component: &str, from_ms: i64, to_ms: i64) -> Result<Vec<SliDay>>;

    /// Every component id with SLI history, sorted.
    fn sli_components(&self) -> Result<Vec<String>>;

    /// Deletes minutes that started more than `minute_days` days before
    /// `now_ms`, and days that ended more than `day_days` days before it
    /// (defaults: [`sli::DEFAULT_MINUTE_RETENTION_DAYS`],
    /// [`sli::DEFAULT_DAY_RETENTION_DAYS`]).
    fn prune(&self, now_ms: i64, minute_days: u32, day_days: u32) -> Result<Pruned>;
}

/// The archive of upstream providers' published incidents (see
/// [`upstream`]).
pub trait UpstreamStore: Send + Sync {
    /// Archives what one poll saw at `seen_at_ms`, in one transaction:
    /// inserts incidents new to the archive and replaces known ones (by
    /// provider and external id), unless the archived copy has a later
    /// `updated_at` (then only `last_seen_at` moves).
    fn upsert_upstream_incidents(
        &self,
        incidents: &[UpstreamIncident],
        seen_at_ms: i64,
    ) -> Result<()>;

    /// Every archived incident of `provider`, oldest `created_at` first.
    fn upstream_incidents(&self, provider: &str) -> Result<Vec<ArchivedIncident>>;

    /// How many incidents of `provider` are archived.
    fn count_upstream_incidents(&self, provider: &str) -> Result<u64>;
}

/// Webhook subscriptions and the durable delivery outbox (see [`webhook`]).
pub trait WebhookStore: Send + Sync {
    /// Adds a subscriber. The secret is stored as given (it is needed to
    /// sign) and comes back only with its due deliveries.
    fn create_subscription(&self, new: &NewSubscription) -> Result<Subscription>;

    /// Every subscription, by id, without secrets.
    fn subscriptions(&self) -> Result<Vec<Subscription>>;

    /// Removes a subscription with its pending deliveries and its log.
    /// Returns whether it existed.
    fn delete_subscription(&self, id: i64) -> Result<bool>;

    /// Puts deliveries in the outbox, all or none, and returns them.
    /// [`StoreError::NotFound`] if a subscription does not exist.
    fn enqueue(&self, deliveries: &[NewDelivery]) -> Result<Vec<Delivery>>;

    /// Up to `limit` pending deliveries whose next attempt is due at
    /// `now_ms`, most overdue first, with what it takes to send them.
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<DueDelivery>>;

    /// Records one attempt: counts it, keeps its HTTP status and error, and
    /// marks the delivery delivered, due again at a later time, or given
    /// up. Returns the delivery as it now is. [`StoreError::NotFound`] for
    /// an unknown delivery, [`StoreError::Invalid`] for one that is no
    /// longer pending.
    fn record_attempt(&self, delivery_id: i64, result: &AttemptResult) -> Result<Delivery>;

    /// A subscription's delivery log: its latest `limit` deliveries, newest
    /// first, pending ones included.
    fn deliveries(&self, subscription_id: i64, limit: usize) -> Result<Vec<Delivery>>;

    /// Deletes deliveries that were delivered or given up before
    /// `before_ms` (pending ones are kept whatever their age). Returns how
    /// many.
    fn prune_deliveries(&self, before_ms: i64) -> Result<usize>;
}

/// Virtual client keys (see [`keys`]). Nothing here returns a key: only
/// its hash ([`KeyStore::active_keys`], for the gateway) or what an
/// operator may see ([`KeyInfo`]).
pub trait KeyStore: Send + Sync {
    /// Stores a new key (its hash, never the key). [`StoreError::Invalid`]
    /// for an unknown priority or a model name that is empty or holds a
    /// comma; a hash already stored is refused too.
    fn create_key(&self, new: &NewKey) -> Result<KeyInfo>;

    /// Up to `limit` keys, revoked and expired ones included, oldest first.
    fn list_keys(&self, limit: usize) -> Result<Vec<KeyInfo>>;

    /// Revokes a key at `at_ms` (a key already revoked keeps its first
    /// revocation time) and returns it. [`StoreError::NotFound`] if there
    /// is no such key.
    fn revoke_key(&self, id: i64, at_ms: i64) -> Result<KeyInfo>;

    /// The keys that work at `now_ms`: not revoked, not expired, oldest
    /// first, with their hashes.
    fn active_keys(&self, now_ms: i64) -> Result<Vec<ActiveKey>>;

    /// Records that the keys `ids` were used by `at_ms` (a later time
    /// already recorded is kept; unknown ids are skipped).
    fn mark_keys_used(&self, ids: &[i64], at_ms: i64) -> Result<()>;
}

/// The audit log of admin actions (see [`audit`]).
pub trait AuditStore: Send + Sync {
    /// Appends an entry.
    fn record_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry>;

    /// Up to `limit` entries, newest first; with `before_id`, only older
    /// ones than that entry (the next page).
    fn audit_log(&self, limit: usize, before_id: Option<i64>) -> Result<Vec<AuditEntry>>;

    /// The secret that keys the admin token's id in this store's audit log
    /// (so that a reader of the log cannot test token guesses offline): the
    /// stored one, or `fresh` (random bytes), stored, when there is none.
    fn actor_id_secret(&self, fresh: [u8; 16]) -> Result<[u8; 16]>;
}

/// Everything the status side stores, as one object
/// (`Arc<dyn StatusStore>`); implemented by every type that implements the
/// six traits.
pub trait StatusStore:
    Store + SliStore + UpstreamStore + WebhookStore + KeyStore + AuditStore
{
}

impl<T: Store + SliStore + UpstreamStore + WebhookStore + KeyStore + AuditStore> StatusStore for T {}
