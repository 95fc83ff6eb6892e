//! Per-deployment health: circuit breaker, latency and active probes.
//!
//! Every attempt's classified [`Outcome`] (never a body) is recorded into
//! the deployment's [`HealthRecord`]. The record decides whether the
//! deployment may take traffic ([`Availability`]). Every breaker transition,
//! drain and reload change is published as a [`HealthEvent`] with a
//! wall-clock timestamp on the [`HealthBus`] (`events.rs`), which the
//! gateway turns into a snapshot-then-deltas feed for the status page.
//! [`quota`] forecasts when a provider's traffic reaches its `rpm`/`tpm`
//! and steers traffic away before it does (its warnings are health events
//! too).
//!
//! Early warning (`drift.rs`): each deployment's latency, time to first
//! token, error and 429 ratios are tallied on the request path and judged
//! once per window against their own baseline and spread; a deployment
//! drifting out of its band gets a weight factor below 1 (demoted).
//!
//! Nothing here imports the request path (routes, attempts, relay,
//! providers, gateway): health sees outcomes and publishes events, and the
//! layers above assemble what they need from it.
//!
//! The record sits behind a `std::sync::Mutex` held for a few hundred
//! nanoseconds and never across an `.await`: a task fed by a channel (the
//! other common design) would add a hand-off per attempt on the hot path
//! (DESIGN.md §5) for no gain in a single process.

mod breaker;
pub mod drift;
mod events;
mod ewma;
pub mod latency;
pub mod quota;
mod window;

use std::time::Duration;

pub use breaker::{Availability, BreakerState, HealthRecord, Ticket, Transition};
pub use events::{Change, DeploymentStatus, HealthBus, HealthEvent, CAPACITY};
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
