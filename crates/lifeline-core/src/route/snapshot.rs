//! Point-in-time views of a [`Deployment`]: its health as a status page
//! shows it, and the fuller view operators get (admin API, `lifeline status`).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{BreakerState, Deployment, DeploymentStatus};

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
    /// Takes no new attempts (drained by an operator, or for maintenance).
    pub drained: bool,
    /// Drained for a maintenance window (by the status side).
    pub maintenance: bool,
    /// Attempts in flight.
    pub in_flight: u32,
    /// The in-flight limit now (adaptive, at most the provider's
    /// `max_concurrency`); `None` when there is none.
    pub concurrency_limit: Option<u32>,
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
    /// Early warning's weight factor: 1 at its full share of traffic,
    /// lower while demoted.
    pub early_warning_factor: f64,
    /// The signal that demoted it (`latency`, `first_token`,
    /// `error_ratio`, `rate_limited_ratio`), while it is demoted.
    pub early_warning: Option<&'static str>,
}

impl Deployment {
    /// The deployment's health as a status page shows it.
    pub fn status(&self) -> DeploymentStatus {
        let rec = self.record_lock();
        DeploymentStatus {
            id: self.id.clone(),
            provider: self.upstream.name.clone(),
            model: self.model.clone(),
            breaker: rec.state(),
            drained: self.is_drained(),
            demoted: self.demoted(),
            since: SystemTime::UNIX_EPOCH
                + Duration::from_millis(self.since_ms.load(Ordering::Relaxed)),
        }
    }

    /// A view for operators.
    pub fn snapshot(&self) -> DeploymentSnapshot {
        let now = Instant::now();
        let early_warning = self.demoted_by();
        let rec = self.record_lock();
        let (ok, bad) = rec.counts(now);
        let total = ok + bad;
        DeploymentSnapshot {
            id: self.id.to_string(),
            provider: self.upstream.name.to_string(),
            model: self.model.clone(),
            breaker: rec.state(),
            drained: self.is_drained(),
            maintenance: self.in_maintenance(),
            in_flight: self.in_flight(),
            concurrency_limit: self.concurrency_limit(),
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
            early_warning_factor: self.early_warning_factor(),
            early_warning,
        }
    }
}
