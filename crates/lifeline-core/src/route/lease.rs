//! [`Lease`]: one attempt reserved on a deployment, and what it reports
//! back (first content, overload, outcome) when it ends: into the health
//! record, the in-flight limiter and early warning's tally.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Deployment, LatencyKind, Outcome, OutcomeClass, RttKind, Ticket};

/// An attempt reserved on a deployment. Dropping it without [`Self::finish`]
/// records a neutral outcome (the client went away).
pub struct Lease {
    pub(super) deployment: Arc<Deployment>,
    pub(super) ticket: Ticket,
    pub(super) finished: bool,
    /// Still waiting for the first byte of the answer (or a stream's first content).
    pub(super) awaiting: bool,
    /// A stream's last event, once it sent one.
    pub(super) last_event: Option<Instant>,
    /// A stream's longest silence between two events so far.
    pub(super) max_gap: std::time::Duration,
    /// The provider's cap, given back before waiters are woken.
    pub(super) permit: Option<OwnedSemaphorePermit>,
    /// The limiter's generation when the slot was reserved.
    pub(super) generation: u32,
    /// A latency sample went to the limiter (a stream's first content).
    pub(super) sampled: bool,
    /// Answered 429, an overload 503, or timed out.
    pub(super) overloaded: bool,
    /// Answered 429 (early warning's 429 ratio).
    pub(super) rate_limited: bool,
}

impl Lease {
    /// The deployment.
    pub fn deployment(&self) -> &Arc<Deployment> {
        &self.deployment
    }

    /// Records the latency to a stream's first content, for the balancer,
    /// while the stream goes on. A half-open trial is decided here, as a
    /// success ([`HealthRecord::first_content`]); how the stream ends is then
    /// recorded by [`Self::finish`] as an ordinary outcome.
    pub fn first_content(&mut self, latency: std::time::Duration) {
        self.answered();
        let dep = &self.deployment;
        let now = Instant::now();
        let mut rec = dep.record_lock();
        rec.observe_latency(now, latency);
        let (ticket, transition) = rec.first_content(now, self.ticket, &dep.health_cfg);
        self.ticket = ticket;
        dep.published(rec, transition);
        dep.observe_latency(LatencyKind::FirstContent, latency);
        dep.early_latency(true, latency);
        self.sampled = true;
        dep.limit_moved(dep.limiter.sample(RttKind::FirstContent, latency, now));
    }

    /// The attempt was answered 429 or with an overload 503 (or 529), or
    /// timed out: the limiter lowers the limit ([`Self::finish`] tells it).
    pub fn overloaded(&mut self) {
        self.overloaded = true;
    }

    /// The attempt was answered 429: counted in early warning's 429 ratio
    /// rather than its error ratio.
    pub fn rate_limited(&mut self) {
        self.rate_limited = true;
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
        let dep = &self.deployment;
        if self.overloaded {
            dep.limit_moved(dep.limiter.overloaded(self.generation));
        } else if outcome.class == OutcomeClass::Success && !self.sampled {
            // A non-streaming answer (a stream sampled its first content).
            let moved = dep
                .limiter
                .sample(RttKind::Answer, outcome.latency, Instant::now());
            dep.limit_moved(moved);
            dep.early_latency(false, outcome.latency);
        }
        if outcome.class != OutcomeClass::Neutral {
            dep.early_outcome(outcome.class == OutcomeClass::Failure, self.rate_limited);
        }
        dep.record(self.ticket, outcome);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.answered();
        if !self.finished {
            self.deployment
                .record(self.ticket, Outcome::neutral(std::time::Duration::ZERO));
        }
        self.deployment.gauge.dec();
        // The provider's permit first, so that a waiter woken next finds it.
        drop(self.permit.take());
        self.deployment.release();
    }
}
