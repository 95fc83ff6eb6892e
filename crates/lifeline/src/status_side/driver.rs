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
}

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
        };
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
        if self.writer.pending() > 0 {
            self.flush().await;
        }
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
        let live = self.gw.live();
        let deployments = live
            .deployments
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
                    attempts: delta.attempts,
                    ok: delta.ok,
                    failures: delta.failures,
                }
            })
            .collect();
        drop(live);
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
        if !events.is_empty() {
            self.notify(events).await;
        }
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
                for e in &outcome.errors {
                    tracing::warn!(message = "Status history is behind: a store write failed; it will be retried.", error = %e);
                }
                self.engine.apply_flush(outcome)
            }
            Err(e) => {
                // The blocking task panicked: its queue is lost with it.
                tracing::error!(message = "The store writer failed.", error = %e);
                Vec::new()
            }
        }
    }

    /// Drains what maintenance asks for and undrains what it no longer
    /// does. Deployments an operator drained are left alone.
    async fn drain(&mut self, wanted: &BTreeSet<String>) {
        for id in wanted.difference(&self.drained_by_us.clone()) {
            let already = self
                .gw
                .live()
                .deployments
                .iter()
                .any(|d| &*d.id == id.as_str() && d.status().drained);
            if already {
                continue;
            }
            if self.gw.set_drained(id, true).await.is_some() {
                tracing::info!(message = "Drained for maintenance.", deployment = %id);
                self.drained_by_us.insert(id.clone());
            }
        }
        let done: Vec<String> = self
            .drained_by_us
            .iter()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in done {
            self.gw.set_drained(&id, false).await;
            tracing::info!(message = "Maintenance over: taking traffic again.", deployment = %id);
            self.drained_by_us.remove(&id);
        }
    }

    /// Renders the new page, serves it, and writes the static copy.
    async fn publish(&mut self, page: Page) {
        match Rendered::build(&page) {
            Ok(r) => self.shared.rendered.store(Some(Arc::new(r))),
            Err(e) => tracing::error!(message = "Cannot render the status page.", error = %e),
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
    async fn notify(&mut self, events: Vec<Event>) {
        let Some(page) = self.page.clone() else {
            return;
        };
        let now = super::wall_ms();
        let store = self.shared.store.clone();
        let links = self.links.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut queued = 0;
            for e in &events {
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
                queued += webhook::enqueue(&*store, &page, &event, &links, now)?.len();
            }
            Ok::<usize, lifeline_store::StoreError>(queued)
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(_)) => self.webhooks.wake(),
            Ok(Err(e)) => {
                tracing::warn!(message = "Cannot queue webhook notifications.", error = %e)
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
