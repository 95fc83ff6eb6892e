//! Public model → tiers of deployments.
//!
//! A [`Deployment`] (one provider + one upstream model) is the unit that is
//! balanced, health-tracked and drained. Deployments outlive config
//! reloads: the gateway keeps them by id and reuses them when the provider's
//! settings did not change, so a reload does not forget health or disturb
//! in-flight attempts.
//!
//! A deployment publishes its health events (breaker transitions, drains) on
//! the gateway's [`HealthBus`], and shares one active probe at a time among
//! whoever needs it (the prober, requests waiting on a slow answer).
//!
//! Each deployment has an in-flight limit ([`Limiter`]) that follows its
//! latency and overload answers, under the provider's `max_concurrency`
//! (which, shared by the provider's deployments, is also kept as a
//! semaphore). A lease reserves a slot under both; a request that finds
//! every deployment full waits for a slot ([`Deployment::wait_for_slot`]):
//! a lease given back wakes one waiter of its deployment, a provider
//! permit given back goes to the next in the semaphore's queue.
//!
//! Early warning (`early.rs`) watches each deployment's latency, time to
//! first token, error and 429 ratios for drift out of their normal band
//! ([`crate::health::drift`]) and lowers its weight factor while it drifts.
//!
//! A deployment a reload rebuilt or removed is *retired*
//! ([`Deployment::retire`]): requests still in flight on it record their
//! outcomes into its own record, but it publishes nothing more (no breaker
//! or drain events, no gauges), since its id now names its replacement or
//! nothing.

mod early;
mod lease;
mod snapshot;

pub use lease::Lease;
pub use snapshot::DeploymentSnapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::concurrency::{Limiter, RttKind, WaitRoom};
use crate::config::{ConcurrencyConfig, HealthConfig, RequestPolicy};
use crate::degraded::AnswerCache;
use crate::health::latency::{Latencies, LatencyKind};
use crate::health::{
    Availability, BreakerState, Change, DeploymentStatus, HealthBus, HealthRecord, Outcome,
    OutcomeClass, Ticket, Transition,
};
use crate::providers::{probe, Endpoint, HttpClient, Upstream};
use crate::retry::RetryBudget;
use crate::telemetry::{DeploymentSli, Metrics, ModelSli};

/// What [`Deployment::wait_for_slot`] came back with.
pub enum Freed {
    /// A slot may have freed: pick again.
    Again,
    /// A permit of the provider's cap came free, and the attempt is
    /// reserved on this deployment.
    Lease(Lease),
}

/// A waiter's registration on a deployment, withdrawn on drop.
struct Registered<'a>(&'a AtomicU32);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One provider + one upstream model.
pub struct Deployment {
    /// `provider/model`.
    pub id: Arc<str>,
    /// How to reach it.
    pub upstream: Arc<Upstream>,
    /// The upstream model name.
    pub model: String,
    /// `model`, JSON-encoded, ready to splice into request bodies.
    pub model_json: Bytes,
    /// Upstream URL per endpoint ([`Endpoint::index`]), built once: cloning a
    /// `Uri` is a reference-count bump, building one is a format and a parse.
    uris: [Result<http::Uri, String>; Endpoint::ALL.len()],
    health: Mutex<HealthRecord>,
    health_cfg: HealthConfig,
    /// Recent latency percentiles, for adaptive deadlines.
    latencies: Latencies,
    /// The p99 gauges, by [`LatencyKind::index`], looked up once each (the
    /// series appears with the first p99, not before).
    p99_gauges: [std::sync::OnceLock<
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >; 3],
    in_flight: AtomicU32,
    /// The in-flight limit (adaptive, under the provider's cap).
    limiter: Limiter,
    /// `lifeline_deployment_concurrency_limit`, when there is a limit.
    limit_gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    /// Requests waiting for a slot under `limiter`, and how they are woken.
    waiters: AtomicU32,
    freed: Notify,
    /// Attempts not yet answered (a subset of `in_flight`): what tells a
    /// frozen deployment from one busy with long streams.
    awaiting: AtomicU32,
    /// Who drained it: [`DRAIN_OPERATOR`] and/or [`DRAIN_MAINTENANCE`]
    /// bits; drained while any is set. Two owners, so that a maintenance
    /// window ending never gives back an operator's own drain.
    drained: AtomicU8,
    /// Rebuilt or removed by a reload: publishes no more events or gauges
    /// (set under the health lock).
    retired: AtomicBool,
    /// Answered an assistant prefill with a 400 about it: not asked for one
    /// again until a reload.
    prefill_rejected: AtomicBool,
    /// Wall-clock milliseconds since the Unix epoch of the last change of
    /// the breaker state or the drain (changed under the health lock).
    since_ms: AtomicU64,
    /// The latest active probe, shared by whoever needs one meanwhile.
    probe: Mutex<Option<SharedProbe>>,
    events: Arc<HealthBus>,
    metrics: Arc<Metrics>,
    gauge: prometheus_client::metrics::gauge::Gauge,
    /// The status side's counters, shared with the deployment this one
    /// replaces ([`Self::keep_counters_of`]).
    sli: Arc<DeploymentSli>,
    /// Early warning: drift detection and the weight factor (`early.rs`);
    /// shared with the deployment a reload rebuilt this one from
    /// ([`Self::keep_early_warning_of`]).
    early: Arc<early::EarlyWarning>,
}

/// One probe of a deployment, which everyone who asks while it runs (or
/// shortly after it finished) shares: with `probe_completion` a probe is a
/// paid completion, and a hundred requests waiting on a slow deployment
/// need one answer to "is it alive?", not a hundred.
///
/// The prober records a probe's result into the breaker, so it takes each
/// probe at most once ([`Deployment::probe_since`]): a result counted twice
/// would be two failures for one.
/// A shared probe's result: `None` while running; then whether it passed,
/// and when it finished.
type ProbeWatch = watch::Receiver<Option<(bool, Instant)>>;

struct SharedProbe {
    started: Instant,
    /// The breaker's epoch when it started ([`HealthRecord::probe_result_from`]).
    epoch: u64,
    /// A prober round took this probe's result to record it.
    recorded: bool,
    /// `None` while running; then whether it passed, and when it finished.
    result: watch::Receiver<Option<(bool, Instant)>>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The operator's drain bit (admin API, `lifeline status`).
const DRAIN_OPERATOR: u8 = 1;
/// The maintenance drain bit (the status side's windows).
const DRAIN_MAINTENANCE: u8 = 2;

impl Deployment {
    /// A new, healthy deployment.
    pub fn new(
        upstream: Arc<Upstream>,
        model: &str,
        health_cfg: HealthConfig,
        events: Arc<HealthBus>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let id: Arc<str> = format!("{}/{}", upstream.name, model).into();
        let model_json = Bytes::from(serde_json::Value::from(model).to_string());
        metrics.breaker(&id, 0);
        let gauge = metrics.deployment_in_flight(&id);
        let early = Arc::new(early::EarlyWarning::new(
            health_cfg.early_warning,
            &id,
            &metrics,
        ));
        let cap = upstream.config.max_concurrency;
        let limiter = Limiter::new(&ConcurrencyConfig::default(), cap, Instant::now());
        let uris = Endpoint::ALL.map(|e| {
            upstream
                .uri(e, model)
                .map_err(|err| format!("bad upstream URL: {err}"))
        });
        Self {
            uris,
            health: Mutex::new(HealthRecord::new(Instant::now(), &health_cfg)),
            health_cfg,
            latencies: Latencies::default(),
            p99_gauges: Default::default(),
            upstream,
            model: model.to_string(),
            model_json,
            in_flight: AtomicU32::new(0),
            limiter,
            limit_gauge: None,
            waiters: AtomicU32::new(0),
            freed: Notify::new(),
            awaiting: AtomicU32::new(0),
            drained: AtomicU8::new(0),
            retired: AtomicBool::new(false),
            prefill_rejected: AtomicBool::new(false),
            since_ms: AtomicU64::new(unix_ms(SystemTime::now())),
            probe: Mutex::new(None),
            events,
            metrics,
            gauge,
            sli: Arc::default(),
            early,
            id,
        }
    }

    /// With the in-flight limit of `cfg` (`[server]`'s concurrency keys)
    /// under the provider's `max_concurrency`, and its gauge.
    #[must_use]
    pub fn with_concurrency(mut self, cfg: &ConcurrencyConfig) -> Self {
        let cap = self.upstream.config.max_concurrency;
        self.limiter = Limiter::new(cfg, cap, Instant::now());
        self.limit_gauge = self.limiter.current().map(|limit| {
            let g = self.metrics.deployment_concurrency_limit(&self.id);
            g.set(i64::from(limit));
            g
        });
        self
    }

    /// Counts on into the SLI counters of `previous`, the deployment a
    /// reload replaces with this one (same id), so that they stay monotonic.
    pub fn keep_counters_of(&mut self, previous: &Deployment) {
        self.sli = previous.sli.clone();
    }

    /// Carries on the early-warning state of `previous`, the deployment a
    /// reload replaces with this one (same id), when the early-warning
    /// settings are unchanged: the tally (which requests still in flight on
    /// `previous` add to), the detector with its learnt baselines, the
    /// factor and its cause. A demoted deployment stays demoted, and does
    /// not relearn a drifted baseline as normal. Returns whether it did; with
    /// changed settings the state starts afresh (factor 1, warm-up).
    pub fn keep_early_warning_of(&mut self, previous: &Deployment) -> bool {
        let same = previous.early.same_settings(&self.early);
        if same {
            self.early = previous.early.clone();
        }
        same
    }

    /// The status side's counters of this deployment.
    pub fn sli(&self) -> &DeploymentSli {
        &self.sli
    }

    fn record_lock(&self) -> MutexGuard<'_, HealthRecord> {
        // A panic while holding this lock leaves a consistent record (every
        // method updates fields in place), so a poisoned lock is still usable.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn probes(&self) -> bool {
        self.upstream.probes_enabled()
    }

    /// Whether the deployment could take an attempt now.
    pub fn availability(&self, now: Instant) -> Availability {
        if self.is_drained() {
            return Availability::Until(now + self.health_cfg.probe_interval);
        }
        self.record_lock()
            .availability(now, &self.health_cfg, self.probes())
    }

    /// The upstream URL for `endpoint`.
    pub fn uri(&self, endpoint: Endpoint) -> Result<http::Uri, String> {
        self.uris[endpoint.index()].clone()
    }

    /// When the deployment last answered successfully (an answer, or a
    /// stream's first content), if ever. Failures and timeouts do not count:
    /// this is the evidence that it is working.
    pub fn last_success(&self) -> Option<Instant> {
        self.record_lock().last_success()
    }

    /// Whether the breaker is open now.
    pub fn is_open(&self) -> bool {
        self.record_lock().state() == BreakerState::Open
    }

    /// The recent p99 of `kind`, without a lock; `None` until enough samples.
    pub fn latency_p99(&self, kind: LatencyKind) -> Option<std::time::Duration> {
        self.latencies.p99(kind)
    }

    /// The recent p95 of `kind`, without a lock; `None` until enough
    /// samples (what a hedged request waits before its second attempt).
    pub fn latency_p95(&self, kind: LatencyKind) -> Option<std::time::Duration> {
        self.latencies.p95(kind)
    }

    /// Records a latency sample for adaptive deadlines; the p99 gauge follows
    /// each time the p99 is recomputed.
    pub fn observe_latency(&self, kind: LatencyKind, sample: std::time::Duration) {
        if let Some(p99) = self.latencies.observe(kind, sample) {
            if self.is_retired() {
                return;
            }
            self.p99_gauges[kind.index()]
                .get_or_init(|| self.metrics.latency_p99_gauge(&self.id, kind.label()))
                .set(p99.as_secs_f64());
        }
    }

    /// Timeout of one active probe of this deployment.
    pub fn probe_timeout(&self) -> std::time::Duration {
        self.health_cfg.probe_timeout
    }

    /// Attempts in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The balancer's cost: latency × (in-flight + 1), see
    /// [`crate::health::PeakEwma::cost`].
    pub fn load(&self) -> f64 {
        let pending = self.in_flight();
        let awaiting = self.awaiting.load(Ordering::Relaxed);
        self.record_lock()
            .latency_cost(Instant::now(), pending, awaiting)
    }

    /// The in-flight limit now; `None` when there is none.
    pub fn concurrency_limit(&self) -> Option<u32> {
        self.limiter.current()
    }

    /// Whether the deployment's in-flight limit is reached.
    fn at_limit(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) >= self.limiter.limit()
    }

    /// Whether the provider's concurrency cap is reached.
    fn provider_full(&self) -> bool {
        self.upstream
            .limit
            .as_ref()
            .is_some_and(|s| s.available_permits() == 0)
    }

    /// Whether the deployment's in-flight limit or its provider's
    /// concurrency cap is reached.
    pub fn saturated(&self) -> bool {
        self.at_limit() || self.provider_full()
    }

    /// Reserves an attempt; `None` if the breaker, a drain, the in-flight
    /// limit or the provider's concurrency cap says no.
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        if self.is_drained() {
            return None;
        }
        let generation = self.limiter.reserve(&self.in_flight)?;
        let permit = match &self.upstream.limit {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.release();
                    return None;
                }
            },
            None => None,
        };
        self.lease_with(permit, generation)
    }

    /// Waits, without polling, until this saturated deployment may have a
    /// slot: at its own limit, until a lease of it is given back (then
    /// [`Freed::Again`]: pick again); at its provider's cap, for a permit in
    /// the provider's (fair) queue, with which it reserves the attempt
    /// itself ([`Freed::Lease`]). Returns at once when neither is full.
    pub async fn wait_for_slot(self: &Arc<Self>) -> Freed {
        if self.at_limit() {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let _registered = Registered(&self.waiters);
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Registered before this check, so a lease given back after it
            // sees the waiter and wakes it ([`Self::release`]).
            if !self.at_limit() {
                return Freed::Again;
            }
            notified.await;
            return Freed::Again;
        }
        if let Some(sem) = self
            .upstream
            .limit
            .as_ref()
            .filter(|_| self.provider_full())
        {
            if let Ok(permit) = sem.clone().acquire_owned().await {
                if let Some(lease) = self.lease_with_permit(permit) {
                    return Freed::Lease(lease);
                }
            }
        }
        Freed::Again
    }

    /// Reserves an attempt with a permit of the provider's cap in hand
    /// (given back if the attempt cannot be reserved).
    fn lease_with_permit(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Option<Lease> {
        if self.is_drained() {
            return None;
        }
        let generation = self.limiter.reserve(&self.in_flight)?;
        self.lease_with(Some(permit), generation)
    }

    /// Gives back a slot reserved under the limiter, and wakes a waiter.
    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// The limiter moved the limit (`Some`): its gauge follows.
    fn limit_moved(&self, limit: Option<u32>) {
        if let (Some(limit), Some(g)) = (limit, &self.limit_gauge) {
            if !self.is_retired() {
                g.set(i64::from(limit));
            }
        }
    }

    /// With a slot reserved under the limiter (and the provider's permit,
    /// if it has a cap): the breaker's say, then the lease.
    fn lease_with(
        self: &Arc<Self>,
        permit: Option<OwnedSemaphorePermit>,
        generation: u32,
    ) -> Option<Lease> {
        let now = Instant::now();
        let mut rec = self.record_lock();
        let Some((ticket, transition)) = rec.acquire(now, &self.health_cfg, self.probes()) else {
            drop(rec);
            drop(permit);
            self.release();
            return None;
        };
        self.published(rec, transition);
        self.awaiting.fetch_add(1, Ordering::Relaxed);
        self.gauge.inc();
        Some(Lease {
            deployment: self.clone(),
            ticket,
            finished: false,
            awaiting: true,
            last_event: None,
            max_gap: std::time::Duration::ZERO,
            permit,
            generation,
            sampled: false,
            overloaded: false,
            rate_limited: false,
        })
    }

    fn record(&self, ticket: Ticket, outcome: Outcome) {
        let now = Instant::now();
        let mut rec = self.record_lock();
        let transition = rec.record(now, ticket, outcome, &self.health_cfg);
        self.published(rec, transition);
    }

    /// Starts an active probe if one is due.
    pub fn start_probe(&self, now: Instant) -> bool {
        self.probes() && !self.is_drained() && self.record_lock().start_probe(now, &self.health_cfg)
    }

    /// Whether the deployment answers a probe ([`crate::providers::probe`]):
    /// `true` on a 2xx within `limit`.
    ///
    /// Joins the probe of this deployment already running (started by the
    /// prober or a waiting request), or takes the result of one that
    /// finished within the last `probe_interval`; starts one (bounded by
    /// `probe_timeout`, whoever waits for it) only when there is neither.
    pub async fn probe(&self, client: &HttpClient, limit: std::time::Duration) -> bool {
        Self::probe_passed(self.shared_probe(client, None).map(|(rx, _)| rx), limit).await
    }

    /// The prober's probe, whose result it records into the breaker
    /// ([`Self::probe_result`]); `since` is the instant [`Self::start_probe`]
    /// said a probe was due.
    ///
    /// Joins a probe still running, or takes the result of one that started
    /// at or after `since`, but never one an earlier round already recorded:
    /// each real probe counts once. A result that finished before `since`
    /// answered an earlier round, and reusing it (as waiting requests may)
    /// would count one failure twice.
    ///
    /// Also returns the breaker epoch the probe began in, for
    /// [`Self::probe_result`]: a joined probe may have begun before a
    /// transition, and its result then is stale.
    pub async fn probe_since(
        &self,
        client: &HttpClient,
        limit: std::time::Duration,
        since: Instant,
    ) -> (bool, u64) {
        let shared = self.shared_probe(client, Some(since));
        let epoch = match &shared {
            Some((_, epoch)) => *epoch,
            None => self.record_lock().epoch(),
        };
        (
            Self::probe_passed(shared.map(|(rx, _)| rx), limit).await,
            epoch,
        )
    }

    async fn probe_passed(
        result: Option<watch::Receiver<Option<(bool, Instant)>>>,
        limit: std::time::Duration,
    ) -> bool {
        let Some(mut result) = result else {
            return false;
        };
        let passed = async move {
            result
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|r| *r)
                .is_some_and(|(ok, _)| ok)
        };
        tokio::time::timeout(limit, passed).await.unwrap_or(false)
    }

    /// The probe to wait for: a current one, or a new one. `record` is the
    /// prober's `since` ([`Self::probe_since`]); `None` for a waiting request.
    fn shared_probe(
        &self,
        client: &HttpClient,
        record: Option<Instant>,
    ) -> Option<(ProbeWatch, u64)> {
        let now = Instant::now();
        let cfg = &self.health_cfg;
        // Read before the probe slot's lock: the two are never held together.
        let epoch = self.record_lock().epoch();
        let mut slot = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = slot.as_mut() {
            let finished = p.result.borrow().map(|(_, at)| at);
            let current = match (finished, record) {
                (None, _) => now < p.started + cfg.probe_timeout,
                (Some(at), None) => now < at + cfg.probe_interval,
                (Some(_), Some(since)) => p.started >= since,
            };
            match record {
                None if current => return Some((p.result.clone(), p.epoch)),
                Some(_) if current && !p.recorded => {
                    p.recorded = true;
                    return Some((p.result.clone(), p.epoch));
                }
                _ => {}
            }
        }
        let req = self.upstream.probe_request(&self.model, &self.model_json)?;
        let (tx, rx) = watch::channel(None);
        let (client, limit) = (client.clone(), cfg.probe_timeout);
        // Its own task: it finishes (and its result serves the others) even
        // when whoever started it stops waiting.
        tokio::spawn(async move {
            let ok = probe::send(&client, req, limit).await;
            // Nobody waiting any more is fine: the slot keeps the result.
            let _ = tx.send(Some((ok, Instant::now())));
        });
        *slot = Some(SharedProbe {
            started: now,
            epoch,
            recorded: record.is_some(),
            result: rx.clone(),
        });
        Some((rx, epoch))
    }

    /// Records an active probe's result; `began` is the breaker epoch its
    /// probe began in ([`Self::probe_since`]): a stale result is neutral.
    pub fn probe_result(&self, ok: bool, began: u64) {
        let now = Instant::now();
        let mut rec = self.record_lock();
        let transition = rec.probe_result_from(now, ok, began, &self.health_cfg);
        self.published(rec, transition);
    }

    /// Publishes a breaker transition made under `rec` (the event and the
    /// gauge) while still holding it, so that one deployment's events enter
    /// the channel in the order they happened, and a reload that retires it
    /// ([`Self::retire`]) cuts off everything after; then releases it and logs.
    fn published(&self, rec: MutexGuard<'_, HealthRecord>, transition: Option<Transition>) {
        let Some(t) = transition else {
            return;
        };
        if self.is_retired() {
            return;
        }
        self.since_ms
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        self.events.publish(
            self.id.clone(),
            Change::Breaker {
                from: t.from,
                to: t.to,
                reason: t.reason.clone(),
            },
        );
        self.metrics.breaker(&self.id, t.to.gauge());
        drop(rec);
        tracing::warn!(message = "Breaker changed state.", deployment = %self.id, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason);
    }

    /// An operator stops new attempts (in-flight ones finish), or resumes
    /// them; a change of the deployment's drain is published as a health
    /// event. A maintenance drain ([`Self::set_maintenance`]) is separate:
    /// the deployment takes traffic only when neither holds it.
    pub fn set_drained(&self, drained: bool) {
        self.set_drain_bit(DRAIN_OPERATOR, drained);
        tracing::info!(message = if drained { "Deployment drained." } else { "Deployment undrained." }, deployment = %self.id);
    }

    /// The status side drains the deployment for a maintenance window, or
    /// gives it back when the window ends; an operator's drain stays.
    pub fn set_maintenance(&self, on: bool) {
        self.set_drain_bit(DRAIN_MAINTENANCE, on);
    }

    fn set_drain_bit(&self, bit: u8, on: bool) {
        // Under the health lock: drains and breaker transitions of one
        // deployment are published in the order they happened.
        let _rec = self.record_lock();
        let before = if on {
            self.drained.fetch_or(bit, Ordering::Relaxed)
        } else {
            self.drained.fetch_and(!bit, Ordering::Relaxed)
        };
        let after = if on { before | bit } else { before & !bit };
        let (was, is) = (before != 0, after != 0);
        if was != is && !self.is_retired() {
            self.since_ms
                .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
            self.events
                .publish(self.id.clone(), Change::Drain { drained: is });
        }
    }

    /// Takes the drain of `previous`, the deployment a reload replaces with
    /// this one, without an event: the reload announces the deployment
    /// whole, after this.
    pub fn keep_drain_of(&self, previous: &Deployment) {
        self.drained
            .store(previous.drained.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Marks a deployment a reload rebuilt or removed (called once the new
    /// state serves, before the reload's events): from now on it publishes
    /// no breaker or drain events and sets no gauges, whose id now belongs
    /// to its replacement or to nothing. Requests still in flight on it go on
    /// recording their outcomes into its own record, which nothing routes by.
    pub fn retire(&self) {
        let _rec = self.record_lock();
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Whether it rejected an assistant prefill since the last reload.
    pub fn prefill_rejected(&self) -> bool {
        self.prefill_rejected.load(Ordering::Relaxed)
    }

    /// Remembers that it rejects an assistant prefill (or forgets it).
    pub fn set_prefill_rejected(&self, rejected: bool) {
        self.prefill_rejected.store(rejected, Ordering::Relaxed);
    }

    /// Whether a reload retired it ([`Self::retire`]).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Sets the breaker gauge to the current state, and the concurrency
    /// limit gauge to the current limit (a rebuilt deployment's, once the
    /// one it replaces is retired and no longer sets them).
    pub fn publish_breaker_gauge(&self) {
        let rec = self.record_lock();
        if !self.is_retired() {
            self.metrics.breaker(&self.id, rec.state().gauge());
            if let (Some(limit), Some(g)) = (self.limiter.current(), &self.limit_gauge) {
                g.set(i64::from(limit));
            }
            self.early.gauge().set(self.early_warning_factor());
        }
    }

    /// Whether it takes no new attempts (an operator's or a maintenance
    /// drain).
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed) != 0
    }

    /// Whether a maintenance window drains it.
    pub fn in_maintenance(&self) -> bool {
        self.drained.load(Ordering::Relaxed) & DRAIN_MAINTENANCE != 0
    }
}

/// A deployment's place in a tier.
#[derive(Debug, Clone)]
pub struct Member {
    /// The deployment.
    pub deployment: Arc<Deployment>,
    /// Its weight in this tier.
    pub weight: u32,
    /// The upstream model's context window in tokens, if configured.
    pub context_window: Option<u32>,
    /// Whether it takes an assistant prefill (the entry's `prefill`, else
    /// its provider's), for continuing broken streams.
    pub prefill: bool,
}

/// A public model, ready to route.
pub struct Model {
    /// Public name.
    pub name: Arc<str>,
    /// Tiers in order of preference.
    pub tiers: Vec<Vec<Member>>,
    /// Timeouts and retries.
    pub policy: RequestPolicy,
    /// Whether broken chat streams are continued (`continuation`).
    pub continuation: bool,
    /// Retries left to spend; carried over by a reload that keeps the
    /// model's budget settings.
    pub budget: Arc<RetryBudget>,
    /// Upstream client (pool shared by models with the same connect timeout).
    pub client: HttpClient,
    /// The status side's counters, per endpoint family; carried over by a
    /// reload that keeps the model.
    pub sli: Arc<ModelSli>,
    /// Requests waiting for a slot when every deployment is at its limit.
    pub waiting: WaitRoom,
    /// With `hedge = true`: hedges allowed, as `hedge_budget_percent` of
    /// recent requests (a [`RetryBudget`] without floor); carried over by a
    /// reload that keeps the percentage.
    pub hedge_budget: Option<Arc<RetryBudget>>,
    /// With `degraded = true`: the gateway's cache of recent answers
    /// ([`crate::degraded`]), shared by every model.
    pub answers: Option<Arc<AnswerCache>>,
}

/// All public models.
#[derive(Default)]
pub struct RouteTable {
    /// By public name.
    pub models: HashMap<String, Arc<Model>>,
    /// `GET /v1/models` body, built once per config.
    pub models_json: Bytes,
    /// `created` of every model object (when this config was applied).
    pub created: u64,
    /// The degraded-mode cache, when a model uses it; carried over by a
    /// reload that keeps `degraded_cache_bytes`.
    pub answers: Option<Arc<AnswerCache>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
