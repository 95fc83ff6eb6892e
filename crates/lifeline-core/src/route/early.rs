//! Early warning on a deployment: the [`Tally`] its leases add to, the
//! [`Detector`] that judges it once per window, and the weight factor the
//! balancer reads ([`Deployment::early_warning_factor`], one atomic load).
//!
//! The prober's round calls [`Deployment::early_warning_tick`] for every
//! deployment; a tick closes the window once `early_warning_window_ms` has
//! passed. A change of the factor sets the gauge; a demotion (from 1) and
//! a promotion (back to 1) are logged, published as
//! [`Change::EarlyWarning`] health events, and a demotion is counted.
//!
//! A reload that rebuilds the deployment under the same id, with the same
//! `early_warning*` settings, shares this state with the rebuilt one
//! ([`Deployment::keep_early_warning_of`]); changed settings start afresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use super::{Change, Deployment};
use crate::config::EarlyWarningConfig;
use crate::health::drift::{Detector, Move, Signal, Step, Tally};
use crate::telemetry::Metrics;

/// A deployment's early-warning state.
pub(super) struct EarlyWarning {
    cfg: EarlyWarningConfig,
    /// What the leases add to.
    pub(super) tally: Tally,
    judge: Mutex<Judge>,
    /// The weight factor, as `f64` bits.
    factor: AtomicU64,
    gauge: Gauge<f64, AtomicU64>,
}

struct Judge {
    /// When the current window started.
    since: Instant,
    detector: Detector,
    /// What demoted it, while it is demoted.
    cause: Option<Signal>,
}

impl EarlyWarning {
    pub(super) fn new(
        cfg: EarlyWarningConfig,
        id: &std::sync::Arc<str>,
        metrics: &Metrics,
    ) -> Self {
        let gauge = metrics.early_warning_factor(id);
        gauge.set(1.0);
        Self {
            judge: Mutex::new(Judge {
                since: Instant::now(),
                detector: Detector::new(&cfg),
                cause: None,
            }),
            cfg,
            tally: Tally::default(),
            factor: AtomicU64::new(1.0_f64.to_bits()),
            gauge,
        }
    }

    /// Whether `other` runs on the same settings (a reload may share it).
    pub(super) fn same_settings(&self, other: &Self) -> bool {
        self.cfg == other.cfg
    }

    /// Whether samples are tallied and judged.
    pub(super) fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// The factor's gauge.
    pub(super) fn gauge(&self) -> &Gauge<f64, AtomicU64> {
        &self.gauge
    }

    fn judge(&self) -> MutexGuard<'_, Judge> {
        // Plain values, consistent after any panic.
        self.judge.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Deployment {
    /// The early-warning weight factor: 1 at the deployment's full share
    /// of traffic, down to `early_warning_min_factor` while it is demoted.
    /// The balancer multiplies the tier weight by it. No lock.
    pub fn early_warning_factor(&self) -> f64 {
        f64::from_bits(self.early.factor.load(Ordering::Relaxed))
    }

    /// Whether early warning has demoted it (its factor is below 1).
    pub fn demoted(&self) -> bool {
        self.early_warning_factor() < 1.0
    }

    /// The signal that demoted it, while it is demoted.
    pub fn demoted_by(&self) -> Option<&'static str> {
        self.early.judge().cause.map(Signal::label)
    }

    /// Closes the early-warning window if it is due and judges it (the
    /// prober's round calls this for every deployment). Never waits: a
    /// window already being judged is left to its judge.
    pub fn early_warning_tick(&self, now: Instant) {
        if !self.early.enabled() || self.is_retired() {
            return;
        }
        let Ok(mut judge) = self.early.judge.try_lock() else {
            return;
        };
        if now.saturating_duration_since(judge.since) < self.early.cfg.window {
            return;
        }
        judge.since = now;
        let window = self.early.tally.take(self.early.cfg.min_samples);
        let Some(step) = judge.detector.observe(&window) else {
            return;
        };
        self.early
            .factor
            .store(step.to.to_bits(), Ordering::Relaxed);
        self.early.gauge.set(step.to);
        let signal = match step.kind {
            Move::Demoted => {
                let s = step.reading.map_or(Signal::Latency, |r| r.signal);
                judge.cause = Some(s);
                s
            }
            _ => judge
                .cause
                .or(step.reading.map(|r| r.signal))
                .unwrap_or(Signal::Latency),
        };
        if step.kind == Move::Promoted {
            judge.cause = None;
        }
        drop(judge);
        self.early_warning_moved(&step, signal);
    }

    fn early_warning_moved(&self, step: &Step, signal: Signal) {
        let reason = step
            .reading
            .map_or_else(|| "no traffic to judge".to_string(), |r| r.to_string());
        let label = signal.label();
        match step.kind {
            Move::Demoted | Move::Promoted => {
                let demoted = step.kind == Move::Demoted;
                {
                    // Under the health lock, as breaker and drain events
                    // are, so that a retired deployment publishes nothing.
                    let _rec = self.record_lock();
                    if self.is_retired() {
                        return;
                    }
                    self.events.publish(
                        self.id.clone(),
                        Change::EarlyWarning {
                            demoted,
                            signal: label,
                            reason: reason.clone(),
                        },
                    );
                }
                if demoted {
                    self.metrics.early_warning_demotion(&self.id, label);
                    tracing::warn!(message = "Deployment demoted by early warning.", deployment = %self.id, signal = label, factor = step.to, %reason);
                } else {
                    tracing::info!(message = "Deployment promoted back by early warning.", deployment = %self.id, signal = label, factor = step.to, %reason);
                }
            }
            Move::Lowered | Move::Raised => {
                tracing::debug!(message = "Early-warning factor moved.", deployment = %self.id, signal = label, from = step.from, to = step.to, %reason);
            }
        }
    }

    /// A latency sample for early warning (a whole answer's, or a
    /// stream's first token). Atomics only.
    pub(super) fn early_latency(&self, first_token: bool, latency: std::time::Duration) {
        if self.early.enabled() {
            self.early.tally.latency(first_token, latency);
        }
    }

    /// An attempt's success or failure for early warning; `rate_limited`:
    /// it was answered 429. Atomics only.
    pub(super) fn early_outcome(&self, failed: bool, rate_limited: bool) {
        if self.early.enabled() {
            self.early.tally.outcome(failed, rate_limited);
        }
    }
}

#[cfg(test)]
mod tests;
