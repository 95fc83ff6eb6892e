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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Name {
    model: Arc<str>,
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
    duration: Family<Name, Histogram, fn() -> Histogram>,
    ttft: Family<Name, Histogram, fn() -> Histogram>,
    retries: Family<Name, Counter>,
    budget_refusals: Family<Name, Counter>,
    in_flight: Gauge,
    deployment_in_flight: Family<Dep, Gauge>,
    breaker: Family<Dep, Gauge>,
    latency_p99: Family<DepKind, Gauge<f64, AtomicU64>>,
    admission: super::admission::AdmissionMetrics,
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
            duration: Family::new_with_constructor(latency_histogram),
            ttft: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            budget_refusals: Family::default(),
            in_flight: Gauge::default(),
            deployment_in_flight: Family::default(),
            breaker: Family::default(),
            latency_p99: Family::default(),
            admission: super::admission::AdmissionMetrics::new(&mut registry),
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
        Self { registry, ..m }
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
        for &kind in p99_kinds {
            self.latency_p99.remove(&DepKind {
                deployment: deployment.clone(),
                kind,
            });
        }
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
        let text = m.encode();
        for name in [
            "lifeline_requests_total{model=\"gpt-4o\",status=\"200\"} 1",
            "lifeline_attempts_total{deployment=\"p/gpt-4o\",outcome=\"success\"} 1",
            "lifeline_breaker_state{deployment=\"p/gpt-4o\"} 2",
            "lifeline_retries_total{model=\"gpt-4o\"} 1",
            "lifeline_request_duration_seconds_bucket",
            "lifeline_deployment_latency_p99_seconds{deployment=\"p/gpt-4o\",kind=\"first_content\"} 0.25",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
