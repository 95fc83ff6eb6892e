//! The status side's loop: sample, decide, write, drain, notify, render.
//!
//! Runs once a second (and at once after an operator's change). Nothing in
//! it is on the data plane's path: the gateway's counters are read, never
//! locked, and every store call runs on a blocking thread while the loop
//! waits for it, so a slow or failing store delays only the next tick.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lifeline_core::{Config, Gateway};
use lifeline_status::engine::{Breaker, DeploymentState, Engine, Event, TickInput, Writer};
use lifeline_status::page::{Page, ProviderReport};
use lifeline_status::render::{export, Rendered};
use lifeline_status::upstream::{self, Kind, Poller, Reading, SourceConfig};
use lifeline_status::webhook::{
    self, ComponentChange, IncidentChange, Links, MaintenanceChange, WorkerHandle,
};
use lifeline_store::sli::{DAY_MS, DEFAULT_MINUTE_RETENTION_DAYS};
use lifeline_store::StatusStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::sampler::Sampler;
use super::settings::engine_settings;
use super::Shared;

/// How often the loop runs (real time).
pub const TICK: Duration = Duration::from_secs(1);

/// How often the store's view is read back when nothing was written.
const REFRESH: Duration = Duration::from_secs(10);

/// How often old SLI minutes, days and finished deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Finished webhook deliveries are kept this long in the delivery log.
const DELIVERY_LOG_DAYS: i64 = 30;

/// Starts one poller per `[[status.upstream]]`; returns their readings.
pub fn start_pollers(
    config: &Config,
    shared: &Arc<Shared>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Vec<watch::Receiver<Reading>>> {
    use lifeline_core::config::StatusFeedFormat as F;
    let mut readings = Vec::new();
    for u in &config.status.upstream {
        let kind = match u.format {
            F::Statuspage => Kind::Statuspage,
            F::Incidentio => Kind::IncidentIo,
            F::Atom | F::Rss => Kind::Feed,
        };
        let mut source = SourceConfig::new(u.provider.clone(), kind, u.url.clone());
        source.interval = u.interval;
        let (poller, rx) = Poller::new(source, shared.store.clone())
            .map_err(|e| anyhow::anyhow!("status poller for {}: {e}", u.provider))?;
        tasks.push(tokio::spawn(poller.run()));
        readings.push(rx);
    }
    Ok(readings)
}

/// The loop's state.
pub struct Driver {
    gw: Gateway,
    shared: Arc<Shared>,
    engine: Engine,
    writer: Writer,
    sampler: Sampler,
    pollers: Vec<watch::Receiver<Reading>>,
    upstream_providers: Vec<String>,
    webhooks: WorkerHandle,
    links: Links,
    static_dir: Option<PathBuf>,
    retention_days: u32,
    drained_by_us: BTreeSet<String>,
    last_flush: Option<Instant>,
    last_prune: Option<Instant>,
    last_upstream_history: Option<Instant>,
    page: Option<Page>,
    export_failing: bool,
    store_failing: bool,
    /// Events not yet queued for webhooks (the store refused them); retried
    /// every tick, oldest first.
    unsent: Vec<Event>,
}

/// Most events kept for webhooks while the store refuses them.
const MAX_UNSENT: usize = 10_000;

impl Driver {
    /// Builds the engine, reads the history back from the store, and runs a
    /// first step so the page exists before the first request for it.
    pub async fn new(
        gw: Gateway,
        config: &Config,
        shared: Arc<Shared>,
        pollers: Vec<watch::Receiver<Reading>>,
        webhooks: WorkerHandle,
    ) -> anyhow::Result<Driver> {
        let now = shared.clock.now_ms();
        let mut engine = Engine::new(engine_settings(config), now);
        let store = shared.store.clone();
        let history = tokio::task::spawn_blocking(move || load_history(&*store, now)).await?;
        match history {
            Ok(history) => {
                for (id, days, minutes) in history {
                    engine.load_history(&id, &days, &minutes);
                }
            }
            Err(e) => tracing::warn!(
                message = "Cannot read the SLI history back; the page starts without it.",
                error = %e
            ),
        }
        let mut driver = Driver {
            gw,
            shared,
            engine,
            writer: Writer::new(),
            sampler: Sampler::default(),
            pollers,
            upstream_providers: config
                .status
                .upstream
                .iter()
                .map(|u| u.provider.clone())
                .collect(),
            webhooks,
            links: Links::for_page(&config.status.page_url),
            static_dir: config.status.static_dir.clone(),
            retention_days: config.store.sli_retention_days,
            drained_by_us: BTreeSet::new(),
            last_flush: None,
            last_prune: None,
            last_upstream_history: None,
            page: None,
            export_failing: false,
            store_failing: false,
            unsent: Vec::new(),
        };
        // Read the store's view (open incidents, maintenance in progress)
        // before the first evaluation, so a restart takes up what is there.
        let events = driver.flush().await;
        driver.unsent.extend(events);
        driver.step(true).await;
        Ok(driver)
    }

    /// Runs until `stop`, then flushes what is queued once more.
    pub async fn run(mut self, stop: CancellationToken) {
        let shared = self.shared.clone();
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let poked = tokio::select! {
                () = stop.cancelled() => break,
                _ = interval.tick() => false,
                () = shared.poke.notified() => true,
            };
            self.step(poked).await;
        }
        self.last_step().await;
    }

    /// At shutdown: the minute in progress is evaluated and written (the
    /// engine's clock moves to its end), queued writes are flushed, events
    /// queued, and the deployments drained for maintenance given back.
    async fn last_step(&mut self) {
        let now = self.shared.clock.now_ms();
        let totals = self.gw.sli_totals();
        let (mut traffic, deltas) = self.sampler.sample(&totals, now);
        let mut at = now;
        if let Some((start, open)) = self.sampler.take_open() {
            traffic.extend(open);
            at = at.max(start + lifeline_store::sli::MINUTE_MS);
        }
        let deployments = self.states(&totals, &deltas);
        let out = self.engine.tick(TickInput {
            now_ms: at,
            traffic,
            deployments,
            providers: None,
        });
        self.writer.push(out.writes);
        let mut events = out.events;
        events.extend(self.flush().await);
        self.notify(events).await;
        for id in std::mem::take(&mut self.drained_by_us) {
            self.gw.set_maintenance(&id, false).await;
        }
    }

    /// Every deployment's state for the engine, with its counts since the
    /// last sample.
    fn states(
        &self,
        totals: &lifeline_core::telemetry::sli::SliTotals,
        deltas: &std::collections::HashMap<String, super::sampler::DeploymentDelta>,
    ) -> Vec<DeploymentState> {
        let live = self.gw.live();
        live.deployments
            .iter()
            .map(|d| {
                let st = d.status();
                let delta = deltas.get(&*st.id).cloned().unwrap_or_default();
                let models = totals
                    .deployments
                    .iter()
                    .find(|t| t.id == *st.id)
                    .map(|t| t.public_models.clone())
                    .unwrap_or_default();
                DeploymentState {
                    id: st.id.to_string(),
                    provider: st.provider.to_string(),
                    models,
                    breaker: Breaker::parse(st.breaker.as_str()).unwrap_or_default(),
                    drained: st.drained,
                    demoted: st.demoted,
                    attempts: delta.attempts,
                    ok: delta.ok,
                    failures: delta.failures,
                }
            })
            .collect()
    }

    /// One pass: sample, tick, write, drain, notify, render.
    async fn step(&mut self, poked: bool) {
        let now = self.shared.clock.now_ms();
        if self
            .last_upstream_history
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(600))
            && !self.upstream_providers.is_empty()
        {
            self.refresh_upstream_history().await;
        }
        let totals = self.gw.sli_totals();
        let (traffic, deltas) = self.sampler.sample(&totals, now);
        let deployments = self.states(&totals, &deltas);
        let providers = (!self.pollers.is_empty()).then(|| {
            self.pollers
                .iter()
                .map(|rx| rx.borrow().report.clone())
                .collect::<Vec<ProviderReport>>()
        });
        let out = self.engine.tick(TickInput {
            now_ms: now,
            traffic,
            deployments,
            providers,
        });
        self.writer.push(out.writes);
        let mut events = out.events;
        let due = self.last_flush.is_none_or(|t| t.elapsed() >= REFRESH);
        if self.writer.pending() > 0 || poked || due {
            events.extend(self.flush().await);
        }
        self.drain(&out.drain).await;
        let built = self.engine.build_page(now);
        if built.changed || self.page.is_none() {
            self.publish(built.page).await;
        }
        self.notify(events).await;
        self.shared
            .components
            .store(Arc::new(self.engine.component_ids()));
        if self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            self.prune(now).await;
        }
    }

    /// Writes what is queued and reads the store's view back.
    async fn flush(&mut self) -> Vec<Event> {
        let now = self.shared.clock.now_ms();
        let mut writer = std::mem::take(&mut self.writer);
        let store = self.shared.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let outcome = writer.flush(&*store, now);
            (writer, outcome)
        })
        .await;
        self.last_flush = Some(Instant::now());
        match result {
            Ok((writer, outcome)) => {
                self.writer = writer;
                // Logged when the store starts and stops failing, not on
                // every tick of a long store outage.
                let failing = outcome.behind_since.is_some();
                if failing && !self.store_failing {
                    tracing::warn!(
                        message = "Status history is behind: the store cannot be written; writes are queued and retried.",
                        error = %outcome.errors.join("; "),
                        queued = outcome.pending
                    );
                } else if !failing && self.store_failing {
                    tracing::info!(
                        message = "The store can be written again; status history caught up."
                    );
                } else if !outcome.errors.is_empty() && !failing {
                    for e in &outcome.errors {
                        tracing::warn!(message = "A status store write was refused.", error = %e);
                    }
                }
                self.store_failing = failing;
                self.engine.apply_flush(outcome)
            }
            Err(e) => {
                // The blocking task panicked: its queue is lost with it.
                tracing::error!(message = "The store writer failed.", error = %e);
                Vec::new()
            }
        }
    }

    /// Drains what maintenance asks for and gives back what it no longer
    /// does, with the gateway's maintenance drain, which is separate from an
    /// operator's: a deployment an operator drained stays drained after the
    /// window, whenever they drained it. One a reload re-created during its
    /// window is drained again.
    async fn drain(&mut self, wanted: &BTreeSet<String>) {
        for id in wanted {
            let held = self
                .gw
                .live()
                .deployments
                .iter()
                .find(|d| &*d.id == id.as_str())
                .map(|d| d.in_maintenance());
            if held == Some(false)
                && self.gw.set_maintenance(id, true).await.is_some()
                && self.drained_by_us.insert(id.clone())
            {
                tracing::info!(message = "Drained for maintenance.", deployment = %id);
            }
        }
        let done: Vec<String> = self
            .drained_by_us
            .iter()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in done {
            self.gw.set_maintenance(&id, false).await;
            tracing::info!(message = "Maintenance over: taking traffic again.", deployment = %id);
            self.drained_by_us.remove(&id);
        }
    }

    /// Renders the new page, serves it, and writes the static copy.
    async fn publish(&mut self, page: Page) {
        // Rendering a large page takes milliseconds: on the blocking pool,
        // so a one-thread runtime keeps serving the data plane meanwhile.
        let copy = page.clone();
        match tokio::task::spawn_blocking(move || Rendered::build(&copy)).await {
            Ok(Ok(r)) => self.shared.rendered.store(Some(Arc::new(r))),
            Ok(Err(e)) => tracing::error!(message = "Cannot render the status page.", error = %e),
            Err(e) => tracing::error!(message = "Rendering the status page failed.", error = %e),
        }
        if let Some(dir) = self.static_dir.clone() {
            let copy = page.clone();
            let result = tokio::task::spawn_blocking(move || export(&copy, &dir)).await;
            let failed = !matches!(result, Ok(Ok(())));
            if failed != self.export_failing {
                match &result {
                    Ok(Err(e)) => {
                        tracing::warn!(message = "Cannot write the static status page.", error = %e)
                    }
                    Err(e) => {
                        tracing::warn!(message = "Cannot write the static status page.", error = %e)
                    }
                    Ok(Ok(())) => {
                        tracing::info!(message = "The static status page is written again.")
                    }
                }
                self.export_failing = failed;
            }
        }
        self.page = Some(page);
    }

    /// Queues webhook notifications for `events` and wakes the worker.
    ///
    /// Queued at the wall clock's time, not the status clock's: the worker
    /// runs on real time (its retries, and the signature's timestamp that
    /// receivers check against their own clock), so under a faster status
    /// clock (`clock_speed`) a delivery stamped with status time would only
    /// fall due once real time caught up with it.
    /// Queues webhook notifications for the events not yet queued and
    /// `events`, in order, and wakes the worker. Events the store refuses
    /// (read-only, full, locked) stay for the next tick: none is dropped
    /// unless more than [`MAX_UNSENT`] pile up.
    async fn notify(&mut self, events: Vec<Event>) {
        self.unsent.extend(events);
        if self.unsent.is_empty() {
            return;
        }
        let Some(page) = self.page.clone() else {
            return;
        };
        let now = super::wall_ms();
        let store = self.shared.store.clone();
        let links = self.links.clone();
        let events = std::mem::take(&mut self.unsent);
        let result = tokio::task::spawn_blocking(move || {
            let mut queued = 0;
            for (k, e) in events.iter().enumerate() {
                let event = match e {
                    Event::IncidentCreated(i) => {
                        webhook::Event::Incident(IncidentChange::Created, i)
                    }
                    Event::IncidentUpdated { incident: i, .. } => {
                        webhook::Event::Incident(IncidentChange::Updated, i)
                    }
                    Event::IncidentResolved { incident: i, .. } => {
                        webhook::Event::Incident(IncidentChange::Resolved, i)
                    }
                    Event::MaintenanceStarted(m) => {
                        webhook::Event::Maintenance(MaintenanceChange::Started, m)
                    }
                    Event::MaintenanceCompleted(m) => {
                        webhook::Event::Maintenance(MaintenanceChange::Completed, m)
                    }
                    Event::ComponentStatusChanged {
                        component,
                        from,
                        to,
                        at_ms,
                    } => match page.component(component) {
                        Some(c) => webhook::Event::Component(ComponentChange {
                            component: c,
                            old_status: *from,
                            new_status: *to,
                            at_ms: *at_ms,
                        }),
                        None => continue,
                    },
                };
                match webhook::enqueue(&*store, &page, &event, &links, now) {
                    Ok(d) => queued += d.len(),
                    Err(e) => {
                        let rest = events[k..].to_vec();
                        return (queued, rest, Some(e));
                    }
                }
            }
            (queued, Vec::new(), None)
        })
        .await;
        match result {
            Ok((queued, rest, error)) => {
                if queued > 0 {
                    self.webhooks.wake();
                }
                if let Some(e) = error {
                    if self.unsent.is_empty() && rest.len() < 2 {
                        tracing::warn!(message = "Cannot queue webhook notifications yet; they wait for the store.", error = %e);
                    }
                    self.unsent = rest;
                    if self.unsent.len() > MAX_UNSENT {
                        let dropped = self.unsent.len() - MAX_UNSENT;
                        self.unsent.drain(..dropped);
                        tracing::error!(message = "Dropped the oldest webhook notifications: the store refused them for too long.", dropped);
                    }
                }
            }
            Err(e) => {
                tracing::error!(message = "Queueing webhook notifications failed.", error = %e)
            }
        }
    }

    async fn refresh_upstream_history(&mut self) {
        self.last_upstream_history = Some(Instant::now());
        let store = self.shared.store.clone();
        let providers = self.upstream_providers.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for p in &providers {
                all.extend(upstream::past_incidents(&store.upstream_incidents(p)?));
            }
            Ok::<_, lifeline_store::StoreError>(all)
        })
        .await;
        if let Ok(Ok(history)) = result {
            self.engine.set_upstream_history(history);
        }
    }

    async fn prune(&mut self, now: i64) {
        self.last_prune = Some(Instant::now());
        let store = self.shared.store.clone();
        let days = self.retention_days;
        // The delivery log is on the worker's clock, real time (see notify).
        let wall = super::wall_ms();
        let result = tokio::task::spawn_blocking(move || {
            store.prune(now, DEFAULT_MINUTE_RETENTION_DAYS.min(days), days)?;
            store.prune_deliveries(wall - DELIVERY_LOG_DAYS * DAY_MS)
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::warn!(message = "Cannot prune old status history.", error = %e);
        }
    }
}

/// Every component's stored SLI history: 90 days of day sums and the last
/// three days of minutes (the longest burn-rate window).
#[allow(clippy::type_complexity)]
fn load_history(
    store: &dyn StatusStore,
    now: i64,
) -> lifeline_store::Result<
    Vec<(
        String,
        Vec<lifeline_store::sli::SliDay>,
        Vec<lifeline_store::sli::SliMinute>,
    )>,
> {
    let mut out = Vec::new();
    for id in store.sli_components()? {
        let days = store.days(&id, now - 91 * DAY_MS, now + DAY_MS)?;
        let minutes = store.minutes(&id, now - 3 * DAY_MS, now + DAY_MS)?;
        out.push((id, days, minutes));
    }
    Ok(out)
}
