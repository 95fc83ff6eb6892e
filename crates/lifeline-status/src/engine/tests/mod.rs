//! The engine under a fake clock, against a real SQLite store in a
//! temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod incidents;
mod maintenance;
mod page;
mod slo;
mod status;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeline_store::sli::{MinuteRecord, Pruned};
use lifeline_store::{
    Incident, IncidentEdit, IncidentStatus, IncidentUpdate, IncidentWithUpdates, KnownComponent,
    MaintenanceStatus, NewIncident, NewMaintenance, ScheduledMaintenance, SliStore, SqliteOptions,
    SqliteStore, Store,
};

pub use std::time::Duration;

pub use lifeline_store::sli::{SliDay, SliMinute, StatusMinutes};

use super::*;
use crate::sli::bucket_of;

/// 2024-06-01 10:00 UTC: a minute (and hour) boundary.
pub const T0: i64 = 1_717_236_000_000;
pub const MIN: i64 = 60_000;

/// A store that can be made to fail for real: while `failing`, writes go
/// to a read-only connection to the same file (every write fails with
/// `StoreError::Unavailable`, as with a read-only or full disk).
pub struct FlakyStore {
    pub inner: SqliteStore,
    pub read_only: SqliteStore,
    pub failing: AtomicBool,
}

impl FlakyStore {
    fn w(&self) -> &SqliteStore {
        if self.failing.load(Ordering::SeqCst) {
            &self.read_only
        } else {
            &self.inner
        }
    }
}

impl Store for FlakyStore {
    fn create_incident(&self, new: &NewIncident) -> lifeline_store::Result<IncidentWithUpdates> {
        self.w().create_incident(new)
    }
    fn add_update(
        &self,
        id: i64,
        status: IncidentStatus,
        body: &str,
        at: i64,
    ) -> lifeline_store::Result<IncidentUpdate> {
        self.w().add_update(id, status, body, at)
    }
    fn edit_incident(
        &self,
        id: i64,
        edit: &IncidentEdit,
        at: i64,
    ) -> lifeline_store::Result<Incident> {
        self.w().edit_incident(id, edit, at)
    }
    fn add_update_if_current(
        &self,
        id: i64,
        status: IncidentStatus,
        body: &str,
        at: i64,
    ) -> lifeline_store::Result<Option<IncidentUpdate>> {
        self.w().add_update_if_current(id, status, body, at)
    }
    fn edit_incident_if_current(
        &self,
        id: i64,
        edit: &IncidentEdit,
        at: i64,
    ) -> lifeline_store::Result<Option<Incident>> {
        self.w().edit_incident_if_current(id, edit, at)
    }
    fn incident(&self, id: i64) -> lifeline_store::Result<Option<IncidentWithUpdates>> {
        self.inner.incident(id)
    }
    fn list_incidents(&self, n: usize) -> lifeline_store::Result<Vec<Incident>> {
        self.inner.list_incidents(n)
    }
    fn list_unresolved(&self) -> lifeline_store::Result<Vec<Incident>> {
        self.inner.list_unresolved()
    }
    fn create_maintenance(
        &self,
        new: &NewMaintenance,
    ) -> lifeline_store::Result<ScheduledMaintenance> {
        self.w().create_maintenance(new)
    }
    fn list_maintenances(&self, n: usize) -> lifeline_store::Result<Vec<ScheduledMaintenance>> {
        self.inner.list_maintenances(n)
    }
    fn cancel_maintenance(&self, id: i64) -> lifeline_store::Result<bool> {
        self.w().cancel_maintenance(id)
    }
    fn list_maintenances_by_status(
        &self,
        statuses: &[MaintenanceStatus],
    ) -> lifeline_store::Result<Vec<ScheduledMaintenance>> {
        self.inner.list_maintenances_by_status(statuses)
    }
    fn set_maintenance_status(
        &self,
        id: i64,
        status: MaintenanceStatus,
        at: i64,
    ) -> lifeline_store::Result<ScheduledMaintenance> {
        self.w().set_maintenance_status(id, status, at)
    }
    fn touch_component(&self, id: &str, name: &str, at: i64) -> lifeline_store::Result<i64> {
        self.w().touch_component(id, name, at)
    }
    fn known_components(&self) -> lifeline_store::Result<Vec<KnownComponent>> {
        self.inner.known_components()
    }
    fn backup(&self, path: &Path) -> lifeline_store::Result<()> {
        self.inner.backup(path)
    }
}

impl SliStore for FlakyStore {
    fn write_minutes(&self, rows: &[MinuteRecord<'_>]) -> lifeline_store::Result<usize> {
        self.w().write_minutes(rows)
    }
    fn minutes(&self, c: &str, from: i64, to: i64) -> lifeline_store::Result<Vec<SliMinute>> {
        self.inner.minutes(c, from, to)
    }
    fn days(&self, c: &str, from: i64, to: i64) -> lifeline_store::Result<Vec<SliDay>> {
        self.inner.days(c, from, to)
    }
    fn sli_components(&self) -> lifeline_store::Result<Vec<String>> {
        self.inner.sli_components()
    }
    fn prune(&self, now: i64, minute_days: u32, day_days: u32) -> lifeline_store::Result<Pruned> {
        self.w().prune(now, minute_days, day_days)
    }
}

/// `requests` chat requests of which `good` succeeded, all answered within
/// 100 ms, at minute `at`.
pub fn traffic(at: i64, requests: u64, good: u64) -> Minute {
    let mut m = Minute {
        at,
        requests,
        good,
        upstream_attempts: requests,
        upstream_ok: good,
        ..Minute::default()
    };
    m.latency[bucket_of(100)] = requests;
    m
}

/// One deployment's report for one minute.
pub fn deployment(
    id: &str,
    attempts: u64,
    ok: u64,
    kind: &str,
    breaker: Breaker,
) -> DeploymentState {
    let (provider, model) = id.split_once('/').unwrap();
    DeploymentState {
        id: id.to_string(),
        provider: provider.to_string(),
        models: vec![model.to_string()],
        breaker,
        drained: false,
        demoted: false,
        attempts,
        ok,
        failures: if attempts > ok {
            vec![(kind.to_string(), attempts - ok)]
        } else {
            Vec::new()
        },
    }
}

/// Settings with public models `m1` and `m2`.
pub fn settings() -> Settings {
    Settings {
        page_id: "p".into(),
        page_name: "Acme status".into(),
        page_url: "https://status.example".into(),
        public_models: vec!["m1".into(), "m2".into()],
        ..Settings::default()
    }
}

/// [`settings`] with burn-rate alerts off: thresholds and hysteresis
/// alone.
pub fn without_burn_alerts() -> Settings {
    Settings {
        burn_rules: Vec::new(),
        ..settings()
    }
}

/// An engine, a writer, a store and a clock.
pub struct H {
    pub engine: Engine,
    pub writer: Writer,
    pub store: FlakyStore,
    pub now: i64,
    pub events: Vec<Event>,
    pub drain: BTreeSet<String>,
    pub behind: Option<i64>,
    pub dir: tempfile::TempDir,
}

impl H {
    pub fn new(settings: Settings) -> H {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(dir.path().join("status.db")).unwrap();
        H::with_store(settings, inner, dir)
    }

    pub fn with_store(settings: Settings, inner: SqliteStore, dir: tempfile::TempDir) -> H {
        let read_only = SqliteStore::open_with(
            inner.path(),
            SqliteOptions {
                read_only: true,
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        let mut h = H {
            engine: Engine::new(settings, T0),
            writer: Writer::new(),
            store: FlakyStore {
                inner,
                read_only,
                failing: AtomicBool::new(false),
            },
            now: T0,
            events: Vec::new(),
            drain: BTreeSet::new(),
            behind: None,
            dir,
        };
        h.flush();
        h
    }

    /// Stops this engine and starts a new one on the same store at `now`,
    /// as the driver does: `Engine::new`, then every stored component's
    /// history (days of the last 91 days, minutes of the last 3), then a
    /// first tick without traffic and its flush.
    pub fn restart(self, settings: Settings, now: i64) -> H {
        let H { store, dir, .. } = self;
        let FlakyStore { inner, .. } = store;
        let mut h = H::with_store(settings.clone(), inner, dir);
        h.now = now;
        h.events.clear();
        h.writer = Writer::new();
        h.engine = Engine::new(settings, now);
        for id in h.store.inner.sli_components().unwrap() {
            let days = h
                .store
                .inner
                .days(&id, now - 91 * 86_400_000, now + 86_400_000)
                .unwrap();
            let minutes = h
                .store
                .inner
                .minutes(&id, now - 3 * 86_400_000, now + 86_400_000)
                .unwrap();
            h.engine.load_history(&id, &days, &minutes);
        }
        h.tick_at(now, Vec::new(), Vec::new());
        h
    }

    /// Writes what is queued and hands the outcome to the engine.
    pub fn flush(&mut self) {
        let outcome = self.writer.flush(&self.store, self.now);
        self.behind = outcome.behind_since;
        let events = self.engine.apply_flush(outcome);
        self.events.extend(events);
    }

    /// Ticks at `now` with this input, then flushes.
    pub fn tick_at(&mut self, now: i64, traffic: Vec<TrafficMinute>, deps: Vec<DeploymentState>) {
        self.now = now;
        let out = self.engine.tick(TickInput {
            now_ms: now,
            traffic,
            deployments: deps,
            providers: None,
        });
        self.writer.push(out.writes);
        self.events.extend(out.events);
        self.drain = out.drain;
        self.flush();
    }

    /// One minute passes with this chat traffic for `m1` and these
    /// deployment reports; the tick comes at the minute's end.
    pub fn minute(&mut self, requests: u64, good: u64, deps: Vec<DeploymentState>) {
        let at = self.now;
        let t = vec![TrafficMinute {
            family: Family::Chat,
            model: "m1".into(),
            minute: traffic(at, requests, good),
        }];
        self.tick_at(at + MIN, t, deps);
    }

    /// One minute with a custom minute for `m1`.
    pub fn minute_with(&mut self, m: Minute, deps: Vec<DeploymentState>) {
        let at = self.now;
        let t = vec![TrafficMinute {
            family: Family::Chat,
            model: "m1".into(),
            minute: Minute { at, ..m },
        }];
        self.tick_at(at + MIN, t, deps);
    }

    pub fn page(&mut self) -> Page {
        self.engine.build_page(self.now).page
    }

    pub fn status(&mut self, component: &str) -> ComponentStatus {
        self.page().component(component).unwrap().status
    }

    /// The stored maintenance window `id`.
    pub fn window(&self, id: i64) -> ScheduledMaintenance {
        self.store
            .inner
            .list_maintenances(100)
            .unwrap()
            .into_iter()
            .find(|w| w.id == id)
            .unwrap()
    }

    pub fn incidents(&self) -> Vec<IncidentWithUpdates> {
        self.store
            .inner
            .list_incidents(100)
            .unwrap()
            .into_iter()
            .map(|i| self.store.inner.incident(i.id).unwrap().unwrap())
            .collect()
    }

    /// The statuses of component `id`'s changes, in order.
    pub fn changes(&self, id: &str) -> Vec<ComponentStatus> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ComponentStatusChanged { component, to, .. } if component == id => Some(*to),
                _ => None,
            })
            .collect()
    }
}

/// A healthy pair of deployments for `m1`: `p1/m1` and `p2/m1`.
pub fn healthy() -> Vec<DeploymentState> {
    vec![
        deployment("p1/m1", 50, 50, "", Breaker::Closed),
        deployment("p2/m1", 50, 50, "", Breaker::Closed),
    ]
}

/// `p1/m1` failing with `kind` and its breaker open; `p2/m1` answering.
pub fn p1_failing(kind: &str) -> Vec<DeploymentState> {
    vec![
        deployment("p1/m1", 40, 0, kind, Breaker::Open),
        deployment("p2/m1", 70, 70, "", Breaker::Closed),
    ]
}
