//! Public model → tiers of deployments.
//!
//! A [`Deployment`] (one provider + one upstream model) is the unit that is
//! balanced, health-tracked and drained. Deployments outlive config
//! reloads: the gateway keeps them by id and reuses them when the provider's
//! settings did not change, so a reload does not forget health or disturb
//! in-flight attempts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::config::{HealthConfig, RequestPolicy};
use crate::health::latency::{Latencies, LatencyKind};
use crate::health::BreakerState;
use crate::health::{Availability, HealthEvent, HealthRecord, Outcome, OutcomeClass, Ticket};
use crate::providers::{probe, Endpoint, HttpClient, Upstream};
use crate::retry::RetryBudget;
use crate::telemetry::Metrics;

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
    uris: [Result<http::Uri, String>; 4],
    health: Mutex<HealthRecord>,
    health_cfg: HealthConfig,
    /// Recent latency percentiles, for adaptive deadlines.
    latencies: Latencies,
    in_flight: AtomicU32,
    /// Attempts not yet answered (a subset of `in_flight`): what tells a
    /// frozen deployment from one busy with long streams.
    awaiting: AtomicU32,
    drained: AtomicBool,
    events: broadcast::Sender<HealthEvent>,
    metrics: Arc<Metrics>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A point-in-time view of a deployment, for the admin API and `lifeline status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeploymentSnapshot {
    /// `provider/model`.
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Drained by an operator.
    pub drained: bool,
    /// Attempts in flight.
    pub in_flight: u32,
    /// Peak-EWMA latency in milliseconds; `None` until the first answer.
    pub latency_ms: Option<f64>,
    /// Successes in the health window.
    pub window_successes: u32,
    /// Failures in the health window.
    pub window_failures: u32,
    /// Failure rate in the window (0 when empty).
    pub error_rate: f64,
    /// Milliseconds until the breaker may admit traffic again, if open.
    pub open_for_ms: Option<u64>,
    /// Milliseconds until the upstream's `Retry-After` ends, if any.
    pub retry_after_ms: Option<u64>,
}

/// An attempt reserved on a deployment. Dropping it without [`Self::finish`]
/// records a neutral outcome (the client went away).
pub struct Lease {
    deployment: Arc<Deployment>,
    ticket: Ticket,
    finished: bool,
    /// Still waiting for the first byte of the answer (or a stream's first content).
    awaiting: bool,
    /// A stream's last event, once it sent one.
    last_event: Option<Instant>,
    /// A stream's longest silence between two events so far.
    max_gap: std::time::Duration,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Lease {
    /// The deployment.
    pub fn deployment(&self) -> &Arc<Deployment> {
        &self.deployment
    }

    /// Records the latency to a stream's first content, for the balancer,
    /// while the stream goes on.
    pub fn first_content(&mut self, latency: std::time::Duration) {
        self.answered();
        self.deployment
            .record_lock()
            .observe_latency(Instant::now(), latency);
        self.deployment
            .observe_latency(LatencyKind::FirstContent, latency);
    }

    /// A stream's event arrived at `now`: tracks the longest silence
    /// between events, recorded when the stream completes. No lock.
    pub fn activity(&mut self, now: Instant) {
        if let Some(last) = self.last_event {
            self.max_gap = self.max_gap.max(now.saturating_duration_since(last));
        }
        self.last_event = Some(now);
    }

    fn answered(&mut self) {
        if std::mem::take(&mut self.awaiting) {
            self.deployment.awaiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Records the attempt's outcome.
    pub fn finish(mut self, outcome: Outcome) {
        self.answered();
        self.finished = true;
        // A completed stream's longest silence is one sample of what a
        // healthy stream of this deployment looks like.
        if outcome.class == OutcomeClass::Success && self.last_event.is_some() {
            self.deployment
                .observe_latency(LatencyKind::StreamGap, self.max_gap);
        }
        self.deployment.record(self.ticket, outcome);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.answered();
        self.deployment.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.deployment.gauge.dec();
        if !self.finished {
            self.deployment
                .record(self.ticket, Outcome::neutral(std::time::Duration::ZERO));
        }
    }
}

impl Deployment {
    /// A new, healthy deployment.
    pub fn new(
        upstream: Arc<Upstream>,
        model: &str,
        health_cfg: HealthConfig,
        events: broadcast::Sender<HealthEvent>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let id: Arc<str> = format!("{}/{}", upstream.name, model).into();
        let model_json = Bytes::from(serde_json::Value::from(model).to_string());
        metrics.breaker(&id, 0);
        let gauge = metrics.deployment_in_flight(&id);
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
            upstream,
            model: model.to_string(),
            model_json,
            in_flight: AtomicU32::new(0),
            awaiting: AtomicU32::new(0),
            drained: AtomicBool::new(false),
            events,
            metrics,
            gauge,
            id,
        }
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

    /// Records a latency sample for adaptive deadlines; the p99 gauge follows
    /// each time the p99 is recomputed.
    pub fn observe_latency(&self, kind: LatencyKind, sample: std::time::Duration) {
        if let Some(p99) = self.latencies.observe(kind, sample) {
            self.metrics
                .latency_p99(&self.id, kind.label(), p99.as_secs_f64());
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

    /// Whether the provider's concurrency cap is reached.
    pub fn saturated(&self) -> bool {
        self.upstream
            .limit
            .as_ref()
            .is_some_and(|s| s.available_permits() == 0)
    }

    /// Reserves an attempt; `None` if the breaker, a drain or the provider's
    /// concurrency cap says no.
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        if self.is_drained() {
            return None;
        }
        let permit = match &self.upstream.limit {
            Some(s) => Some(s.clone().try_acquire_owned().ok()?),
            None => None,
        };
        self.lease_with(permit)
    }

    /// Waits for a slot under the provider's `max_concurrency` (returns at
    /// once when there is no cap), then reserves an attempt as [`Self::lease`].
    pub async fn lease_when_free(self: &Arc<Self>) -> Option<Lease> {
        let permit = match &self.upstream.limit {
            Some(s) => Some(s.clone().acquire_owned().await.ok()?),
            None => None,
        };
        if self.is_drained() {
            return None;
        }
        self.lease_with(permit)
    }

    fn lease_with(
        self: &Arc<Self>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Option<Lease> {
        let now = Instant::now();
        let (ticket, transition) =
            self.record_lock()
                .acquire(now, &self.health_cfg, self.probes())?;
        if let Some(t) = transition {
            self.publish(now, t);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.awaiting.fetch_add(1, Ordering::Relaxed);
        self.gauge.inc();
        Some(Lease {
            deployment: self.clone(),
            ticket,
            finished: false,
            awaiting: true,
            last_event: None,
            max_gap: std::time::Duration::ZERO,
            _permit: permit,
        })
    }

    fn record(&self, ticket: Ticket, outcome: Outcome) {
        let now = Instant::now();
        let transition = self
            .record_lock()
            .record(now, ticket, outcome, &self.health_cfg);
        if let Some(t) = transition {
            self.publish(now, t);
        }
    }

    /// Starts an active probe if one is due.
    pub fn start_probe(&self, now: Instant) -> bool {
        self.probes() && !self.is_drained() && self.record_lock().start_probe(now, &self.health_cfg)
    }

    /// Probes the deployment once ([`crate::providers::probe`]); `true` on a
    /// 2xx within `limit`.
    pub async fn probe(&self, client: &HttpClient, limit: std::time::Duration) -> bool {
        match self.upstream.probe_request(&self.model, &self.model_json) {
            Some(req) => probe::send(client, req, limit).await,
            None => false,
        }
    }

    /// Records an active probe's result.
    pub fn probe_result(&self, ok: bool) {
        let now = Instant::now();
        let transition = self.record_lock().probe_result(now, ok, &self.health_cfg);
        if let Some(t) = transition {
            self.publish(now, t);
        }
    }

    fn publish(&self, at: Instant, t: crate::health::Transition) {
        self.metrics.breaker(&self.id, t.to.gauge());
        tracing::warn!(message = "Breaker changed state.", deployment = %self.id, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason);
        // No subscriber is fine: the send result only says whether anyone listens.
        let _ = self.events.send(HealthEvent {
            deployment: self.id.clone(),
            from: t.from,
            to: t.to,
            reason: t.reason,
            at,
        });
    }

    /// Stops new attempts (in-flight ones finish).
    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
        tracing::info!(message = if drained { "Deployment drained." } else { "Deployment undrained." }, deployment = %self.id);
    }

    /// Whether an operator drained it.
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// A view for operators.
    pub fn snapshot(&self) -> DeploymentSnapshot {
        let now = Instant::now();
        let rec = self.record_lock();
        let (ok, bad) = rec.counts(now);
        let total = ok + bad;
        DeploymentSnapshot {
            id: self.id.to_string(),
            provider: self.upstream.name.to_string(),
            model: self.model.clone(),
            breaker: rec.state(),
            drained: self.is_drained(),
            in_flight: self.in_flight(),
            latency_ms: rec
                .latency_measured()
                .then(|| (rec.latency_nanos() / 1e4).round() / 100.0),
            window_successes: ok,
            window_failures: bad,
            error_rate: if total == 0 {
                0.0
            } else {
                f64::from(bad) / f64::from(total)
            },
            open_for_ms: rec
                .open_until()
                .map(|u| u.saturating_duration_since(now).as_millis() as u64),
            retry_after_ms: rec
                .not_before()
                .filter(|nb| *nb > now)
                .map(|nb| nb.saturating_duration_since(now).as_millis() as u64),
        }
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
}

/// A public model, ready to route.
pub struct Model {
    /// Public name.
    pub name: Arc<str>,
    /// Tiers in order of preference.
    pub tiers: Vec<Vec<Member>>,
    /// Timeouts and retries.
    pub policy: RequestPolicy,
    /// Retries left to spend.
    pub budget: RetryBudget,
    /// Upstream client (pool shared by models with the same connect timeout).
    pub client: HttpClient,
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
}
