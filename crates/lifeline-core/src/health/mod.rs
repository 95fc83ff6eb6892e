//! Per-deployment health: circuit breaker, latency and active probes.
//!
//! Every attempt's classified [`Outcome`] (never a body) is recorded into
//! the deployment's [`HealthRecord`]. The record decides whether the
//! deployment may take traffic ([`Availability`]) and emits a
//! [`HealthEvent`] on every breaker transition, on a broadcast channel that
//! other parts (metrics today, the status page later) subscribe to.
//!
//! The record sits behind a `std::sync::Mutex` held for a few hundred
//! nanoseconds and never across an `.await`: a task fed by a channel (the
//! other common design) would add a hand-off per attempt on the hot path
//! (DESIGN.md §5) for no gain in a single process.

mod breaker;
mod ewma;
pub mod latency;
mod window;

use std::time::Duration;

use tokio::time::Instant;

pub use breaker::{Availability, BreakerState, HealthRecord, Ticket, Transition};
pub use ewma::PeakEwma;

/// How an attempt ended, as far as the deployment's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    /// The deployment did its job.
    Success,
    /// The deployment failed (connect error, reset, timeout, 5xx, 429, broken stream).
    Failure,
    /// Says nothing about the deployment: the client's own error (400), or the
    /// client went away.
    Neutral,
}

/// One attempt's result, as recorded into a [`HealthRecord`].
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Success, failure or neutral.
    pub class: OutcomeClass,
    /// Time to the response (non-streaming) or to the first content (streams).
    pub latency: Duration,
    /// A `Retry-After` the deployment sent (429 or 503).
    pub retry_after: Option<Duration>,
    /// 401/403 from upstream: the deployment is misconfigured; open at once.
    pub misconfigured: bool,
}

impl Outcome {
    /// A plain success.
    pub fn success(latency: Duration) -> Self {
        Self {
            class: OutcomeClass::Success,
            latency,
            retry_after: None,
            misconfigured: false,
        }
    }

    /// A plain failure.
    pub fn failure(latency: Duration) -> Self {
        Self {
            class: OutcomeClass::Failure,
            latency,
            retry_after: None,
            misconfigured: false,
        }
    }

    /// Neither success nor failure.
    pub fn neutral(latency: Duration) -> Self {
        Self {
            class: OutcomeClass::Neutral,
            latency,
            retry_after: None,
            misconfigured: false,
        }
    }
}

/// A breaker transition, published for whoever watches health.
#[derive(Debug, Clone)]
pub struct HealthEvent {
    /// Deployment id, `provider/model`.
    pub deployment: std::sync::Arc<str>,
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Why, in a few words ("failure rate 0.60 over 10 attempts", "probe ok").
    pub reason: String,
    /// When.
    pub at: Instant,
}
