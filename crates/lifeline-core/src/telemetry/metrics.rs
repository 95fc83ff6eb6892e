//! The metric registry and every metric Lifeline exports.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{model, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Public model name (or `-` when the request named none).
    pub model: Arc<str>,
    /// HTTP status sent to the client.
    pub status: u16,
}

/// `{deployment, outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// Deployment id.
    pub deployment: Arc<str>,
    /// `success`, or a failure's kind ([`crate::attempt::FailureKind::label`]): `connect`, `reset`, `timeout`, `rate_limited`, `status_error`, `client_error`, `context_length`, ...
    pub outcome: &'static str,
}

/// `{model, outcome}` for streams.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// Public model name.
    pub model: Arc<str>,
    /// `complete`, `broken`, `cancelled`.
    pub outcome: &'static str,
}

/// `{model, method, outcome}` of `lifeline_stream_continuations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContinuationLabels {
    model: Arc<str>,
    /// `prefill`, `instruction`, `replay`.
    method: &'static str,
    /// `continued`, `failed`.
    outcome: &'static str,
}

/// `{listener, reason}` of `lifeline_listener_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `data`, `admin` or `status`.
    pub listener: &'static str,
    /// Which limit refused: `connection_limit`, `tls_handshake`, `idle`,
    /// `header_timeout`, `header_too_large`, `malformed`, `body_timeout`,
    /// `body_too_large`, `json_depth`, `write_stall`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Name {
    model: Arc<str>,
}

/// `{model, reason}` of a request refused at the concurrency cap.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapRefusal {
    model: Arc<str>,
    /// `waiters` (too many waiting already) or `timeout` (no slot in time).
    reason: &'static str,
}

/// `{model, outcome}` of `lifeline_hedges_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HedgeLabels {
    model: Arc<str>,
    /// `won`, `lost` or `refused_budget`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dep {
    deployment: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepKind {
    deployment: Arc<str>,
    kind: &'static str,
}

/// `{key}`: a client key's name (`-` for requests without a key).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Key {
    key: Arc<str>,
}

/// `{key, kind}`: a rate-limit refusal (`requests`, `tokens`, `too_large`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyKind {
    key: Arc<str>,
    kind: &'static str,
}

/// One client key's counters, fetched once and kept by the per-key limiter
/// ([`crate::telemetry`] users call [`Metrics::key_counters`]), so that a
/// request counts without a label lookup.
#[derive(Clone, Debug, Default)]
pub struct KeyCounters {
    /// `lifeline_key_requests_total{key}`: requests admitted.
    pub admitted: Counter,
    /// `lifeline_rate_limited_total{key,kind="requests"}`.
    pub limited_requests: Counter,
    /// `lifeline_rate_limited_total{key,kind="tokens"}`.
    pub limited_tokens: Counter,
    /// `lifeline_rate_limited_total{key,kind="too_large"}`.
    pub too_large: Counter,
    /// `lifeline_key_tokens_total{key}`: tokens used, as reconciled.
    pub tokens: Counter,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<ModelLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    streams: Family<StreamLabels, Counter>,
    continuations: Family<ContinuationLabels, Counter>,
    duration: Family<Name, Histogram, fn() -> Histogram>,
    ttft: Family<Name, Histogram, fn() -> Histogram>,
    retries: Family<Name, Counter>,
    budget_refusals: Family<Name, Counter>,
    in_flight: Gauge,
    deployment_in_flight: Family<Dep, Gauge>,
    breaker: Family<Dep, Gauge>,
    latency_p99: Family<DepKind, Gauge<f64, AtomicU64>>,
    admission: super::admission::AdmissionMetrics,
    quota: super::quota::QuotaMetrics,
    key_requests: Family<Key, Counter>,
    rate_limited: Family<KeyKind, Counter>,
    key_tokens: Family<Key, Counter>,
    auth_failures: Counter,
    admin_auth_failures: Counter,
    ip_rate_limited: Family<Reason, Counter>,
    concurrency_limit: Family<Dep, Gauge>,
    capacity_waits: Family<Name, Counter>,
    capacity_refusals: Family<CapRefusal, Counter>,
    listener_refusals: Family<RefusalLabels, Counter>,
    hedges: Family<HedgeLabels, Counter>,
    degraded_answers: Family<Name, Counter>,
    early_warning_demotions: Family<DepSignal, Counter>,
    early_warning_factor: Family<Dep, Gauge<f64, AtomicU64>>,
}

/// `{deployment, signal}` of an early-warning demotion.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepSignal {
    deployment: Arc<str>,
    signal: &'static str,
}

/// `{reason}` of a per-IP refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lifeline");
        let m = Self {
            requests: Family::default(),
            attempts: Family::default(),
            streams: Family::default(),
            continuations: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            ttft: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            budget_refusals: Family::default(),
            in_flight: Gauge::default(),
            deployment_in_flight: Family::default(),
            breaker: Family::default(),
            latency_p99: Family::default(),
            admission: super::admission::AdmissionMetrics::new(&mut registry),
            quota: super::quota::QuotaMetrics::new(&mut registry),
            auth_failures: Counter::default(),
            admin_auth_failures: Counter::default(),
            ip_rate_limited: Family::default(),
            key_requests: Family::default(),
            rate_limited: Family::default(),
            key_tokens: Family::default(),
            concurrency_limit: Family::default(),
            capacity_waits: Family::default(),
            capacity_refusals: Family::default(),
            listener_refusals: Family::default(),
            hedges: Family::default(),
            degraded_answers: Family::default(),
            early_warning_demotions: Family::default(),
            early_warning_factor: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Client requests by public model and response status",
            m.requests.clone(),
        );
        registry.register(
            "attempts",
            "Upstream attempts by deployment and outcome",
            m.attempts.clone(),
        );
        registry.register(
            "streams",
            "Streamed responses by model and how they ended",
            m.streams.clone(),
        );
        registry.register(
            "stream_continuations",
            "Continuation attempts of streams that broke after content, by model, method (prefill, instruction, replay) and outcome (continued, failed)",
            m.continuations.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the full response (non-streaming) or to the end of the stream",
            m.duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from request to the first content sent to the client (streams)",
            m.ttft.clone(),
        );
        registry.register(
            "retries",
            "Attempts after the first, by model",
            m.retries.clone(),
        );
        registry.register(
            "retry_budget_refusals",
            "Retries not made because the retry budget was spent",
            m.budget_refusals.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Client requests being served",
            m.in_flight.clone(),
        );
        registry.register(
            "deployment_in_flight",
            "Attempts in flight per deployment",
            m.deployment_in_flight.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open",
            m.breaker.clone(),
        );
        registry.register(
            "deployment_latency_p99_seconds",
            "Recent p99 latency per deployment, the base of its adaptive deadlines: kind first_content (streams), answer (non-streaming), stream_gap (longest silence in a completed stream)",
            m.latency_p99.clone(),
        );
        registry.register(
            "auth_failures",
            "Data-plane requests with a wrong client key",
            m.auth_failures.clone(),
        );
        registry.register(
            "admin_auth_failures",
            "Admin API requests with a wrong admin token",
            m.admin_auth_failures.clone(),
        );
        registry.register(
            "ip_rate_limited",
            "Requests refused by a per-client-IP limit, by reason: auth_failures (locked out after wrong keys), admin_auth_failures (locked out after wrong admin tokens), requests (ip_requests_per_minute)",
            m.ip_rate_limited.clone(),
        );
        registry.register(
            "key_requests",
            "Data-plane requests admitted, by client key name (- without a key)",
            m.key_requests.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a client key's limit, by key name and kind (requests, tokens, too_large)",
            m.rate_limited.clone(),
        );
        registry.register(
            "key_tokens",
            "Tokens used by client key name: the provider's usage where it reported one, else the admission estimate",
            m.key_tokens.clone(),
        );
        registry.register(
            "deployment_concurrency_limit",
            "In-flight limit per deployment: adaptive (latency, 429s), at most the provider's max_concurrency",
            m.concurrency_limit.clone(),
        );
        registry.register(
            "capacity_waits",
            "Requests that waited for a slot because every deployment of their model was at its limit",
            m.capacity_waits.clone(),
        );
        registry.register(
            "capacity_refusals",
            "Requests answered 503 at the concurrency limit: reason waiters (too many waiting) or timeout (no slot in time)",
            m.capacity_refusals.clone(),
        );
        registry.register(
            "listener_refusals",
            "Connections and requests refused by a listener limit, by listener and reason",
            m.listener_refusals.clone(),
        );
        registry.register(
            "hedges",
            "Hedged attempts by model and outcome: won (the hedge answered first), lost (the first attempt did), refused_budget (due, but over the hedge or retry budget)",
            m.hedges.clone(),
        );
        registry.register(
            "degraded_answers",
            "Requests answered from the degraded-mode cache (x-lifeline-cache: stale) after every deployment failed",
            m.degraded_answers.clone(),
        );
        registry.register(
            "early_warning_demotions",
            "Deployments demoted by early warning (drifting out of their normal band), by the signal that drifted",
            m.early_warning_demotions.clone(),
        );
        registry.register(
            "early_warning_factor",
            "Each deployment's early-warning weight factor: 1 at its full share of traffic, lower while demoted",
            m.early_warning_factor.clone(),
        );
        Self { registry, ..m }
    }

    /// A data-plane request with a wrong client key.
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// An admin API request with a wrong admin token.
    pub fn admin_auth_failure(&self) {
        self.admin_auth_failures.inc();
    }

    /// A request refused by a per-IP limit (`reason`: `auth_failures`,
    /// `admin_auth_failures`, `requests`).
    pub fn ip_rate_limited(&self, reason: &'static str) {
        self.ip_rate_limited.get_or_create(&Reason { reason }).inc();
    }

    /// The counters of the client key named `key`, to keep (see
    /// [`KeyCounters`]). Label sets are bounded by the configured and
    /// stored keys.
    pub fn key_counters(&self, key: &Arc<str>) -> KeyCounters {
        let kind = |kind| {
            self.rate_limited.get_or_create_owned(&KeyKind {
                key: key.clone(),
                kind,
            })
        };
        KeyCounters {
            admitted: self
                .key_requests
                .get_or_create_owned(&Key { key: key.clone() }),
            limited_requests: kind("requests"),
            limited_tokens: kind("tokens"),
            too_large: kind("too_large"),
            tokens: self
                .key_tokens
                .get_or_create_owned(&Key { key: key.clone() }),
        }
    }

    /// The in-flight limit gauge of one deployment.
    pub fn deployment_concurrency_limit(&self, deployment: &Arc<str>) -> Gauge {
        self.concurrency_limit.get_or_create_owned(&Dep {
            deployment: deployment.clone(),
        })
    }

    /// A request of `model` waits for a slot at the concurrency limit.
    pub fn capacity_wait(&self, model: &Arc<str>) {
        self.capacity_waits
            .get_or_create(&Name {
                model: model.clone(),
            })
            .inc();
    }

    /// A request of `model` was refused at the concurrency limit;
    /// `reason` is `waiters` or `timeout`.
    pub fn capacity_refusal(&self, model: &Arc<str>, reason: &'static str) {
        self.capacity_refusals
            .get_or_create(&CapRefusal {
                model: model.clone(),
                reason,
            })
            .inc();
    }

    /// A hedge of a request of `model`: `won`, `lost` or `refused_budget`.
    pub fn hedge(&self, model: &Arc<str>, outcome: &'static str) {
        self.hedges
            .get_or_create(&HedgeLabels {
                model: model.clone(),
                outcome,
            })
            .inc();
    }

    /// A request of `model` answered from the degraded-mode cache.
    pub fn degraded_answer(&self, model: &Arc<str>) {
        self.degraded_answers
            .get_or_create(&Name {
                model: model.clone(),
            })
            .inc();
    }

    /// The refusal counter of one listener and reason (kept by the
    /// listener: refusals are counted without a label lookup).
    pub fn listener_refusal(&self, listener: &'static str, reason: &'static str) -> Counter {
        self.listener_refusals
            .get_or_create(&RefusalLabels { listener, reason })
            .clone()
    }

    /// A finished client request.
    pub fn request(&self, model: &Arc<str>, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&ModelLabels {
                model: model.clone(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&Name {
                model: model.clone(),
            })
            .observe(seconds);
    }

    /// A finished attempt.
    pub fn attempt(&self, deployment: &Arc<str>, outcome: &'static str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                deployment: deployment.clone(),
                outcome,
            })
            .inc();
    }

    /// A stream that ended.
    pub fn stream(&self, model: &Arc<str>, outcome: &'static str) {
        self.streams
            .get_or_create(&StreamLabels {
                model: model.clone(),
                outcome,
            })
            .inc();
    }

    /// A continuation attempt of a broken stream, and whether it continued it.
    pub fn continuation(&self, model: &Arc<str>, method: &'static str, outcome: &'static str) {
        self.continuations
            .get_or_create(&ContinuationLabels {
                model: model.clone(),
                method,
                outcome,
            })
            .inc();
    }

    /// First content of a stream reached the client.
    pub fn ttft(&self, model: &Arc<str>, seconds: f64) {
        self.ttft
            .get_or_create(&Name {
                model: model.clone(),
            })
            .observe(seconds);
    }

    /// A retry was made.
    pub fn retry(&self, model: &Arc<str>) {
        self.retries
            .get_or_create(&Name {
                model: model.clone(),
            })
            .inc();
    }

    /// A retry was refused by the budget.
    pub fn budget_refusal(&self, model: &Arc<str>) {
        self.budget_refusals
            .get_or_create(&Name {
                model: model.clone(),
            })
            .inc();
    }

    /// The client-request in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The in-flight gauge of one deployment.
    pub fn deployment_in_flight(&self, deployment: &Arc<str>) -> Gauge {
        self.deployment_in_flight.get_or_create_owned(&Dep {
            deployment: deployment.clone(),
        })
    }

    /// Drops the state gauges of a deployment the config no longer has (its
    /// breaker state and latency p99s would otherwise be exported, frozen
    /// at their last values, for the life of the process). Its counters
    /// stay, as counters do, and its in-flight gauge falls to 0 as the
    /// requests still on it finish.
    ///
    /// `p99_kinds` are the `kind` labels of its p99 series.
    pub fn forget_deployment(&self, deployment: &Arc<str>, p99_kinds: &[&'static str]) {
        self.breaker.remove(&Dep {
            deployment: deployment.clone(),
        });
        self.concurrency_limit.remove(&Dep {
            deployment: deployment.clone(),
        });
        self.early_warning_factor.remove(&Dep {
            deployment: deployment.clone(),
        });
        for &kind in p99_kinds {
            self.latency_p99.remove(&DepKind {
                deployment: deployment.clone(),
                kind,
            });
        }
    }

    /// A deployment was demoted by early warning because of `signal`.
    pub fn early_warning_demotion(&self, deployment: &Arc<str>, signal: &'static str) {
        self.early_warning_demotions
            .get_or_create(&DepSignal {
                deployment: deployment.clone(),
                signal,
            })
            .inc();
    }

    /// A deployment's early-warning weight factor gauge, kept by the deployment.
    pub fn early_warning_factor(&self, deployment: &Arc<str>) -> Gauge<f64, AtomicU64> {
        self.early_warning_factor
            .get_or_create(&Dep {
                deployment: deployment.clone(),
            })
            .clone()
    }

    /// Sets a deployment's breaker gauge.
    pub fn breaker(&self, deployment: &Arc<str>, value: i64) {
        self.breaker
            .get_or_create(&Dep {
                deployment: deployment.clone(),
            })
            .set(value);
    }

    /// Sets a deployment's recent p99 latency of one kind (see
    /// [`crate::health::latency`]).
    pub fn latency_p99(&self, deployment: &Arc<str>, kind: &'static str, seconds: f64) {
        self.latency_p99_gauge(deployment, kind).set(seconds);
    }

    /// The gauge [`Self::latency_p99`] sets, for a caller that keeps it
    /// (a label lookup hashes the deployment id every time).
    pub fn latency_p99_gauge(
        &self,
        deployment: &Arc<str>,
        kind: &'static str,
    ) -> Gauge<f64, AtomicU64> {
        self.latency_p99
            .get_or_create(&DepKind {
                deployment: deployment.clone(),
                kind,
            })
            .clone()
    }

    /// Global admission's and the memory budget's metrics.
    pub fn admission(&self) -> &super::admission::AdmissionMetrics {
        &self.admission
    }

    /// The quota forecast's metrics.
    pub fn quota(&self) -> &super::quota::QuotaMetrics {
        &self.quota
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_documented_names() {
        let m = Metrics::new();
        let model: Arc<str> = "gpt-4o".into();
        let dep: Arc<str> = "p/gpt-4o".into();
        m.request(&model, 200, 0.01);
        m.attempt(&dep, "success");
        m.breaker(&dep, 2);
        m.retry(&model);
        m.latency_p99(&dep, "first_content", 0.25);
        m.auth_failure();
        m.ip_rate_limited("auth_failures");
        m.deployment_concurrency_limit(&dep).set(12);
        m.capacity_wait(&model);
        m.capacity_refusal(&model, "waiters");
        m.hedge(&model, "won");
        m.degraded_answer(&model);
        let text = m.encode();
        for name in [
            "lifeline_requests_total{model=\"gpt-4o\",status=\"200\"} 1",
            "lifeline_attempts_total{deployment=\"p/gpt-4o\",outcome=\"success\"} 1",
            "lifeline_breaker_state{deployment=\"p/gpt-4o\"} 2",
            "lifeline_retries_total{model=\"gpt-4o\"} 1",
            "lifeline_request_duration_seconds_bucket",
            "lifeline_deployment_latency_p99_seconds{deployment=\"p/gpt-4o\",kind=\"first_content\"} 0.25",
            "lifeline_auth_failures_total 1",
            "lifeline_ip_rate_limited_total{reason=\"auth_failures\"} 1",
            "lifeline_deployment_concurrency_limit{deployment=\"p/gpt-4o\"} 12",
            "lifeline_capacity_waits_total{model=\"gpt-4o\"} 1",
            "lifeline_capacity_refusals_total{model=\"gpt-4o\",reason=\"waiters\"} 1",
            "lifeline_hedges_total{model=\"gpt-4o\",outcome=\"won\"} 1",
            "lifeline_degraded_answers_total{model=\"gpt-4o\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
