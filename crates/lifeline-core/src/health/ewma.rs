//! Peak-EWMA latency, the balancer's cost signal.
//!
//! A sample above the current estimate replaces it at once (a slowdown
//! registers immediately); one below decays towards it with time constant
//! `tau` (recovery is smoothed). This is Finagle's and tower's `PeakEwma`;
//! see `../shared/reference/resilience-formulas.md`.
//!
//! The balancer's [`PeakEwma::cost`] follows them in two more ways, without
//! which power of two choices over two deployments locks onto whichever was
//! measured first, however slow: a deployment not yet measured costs nothing
//! while idle (it gets one request, then `DEFAULT_RTT` per request in
//! flight, so it is not flooded before its first answer), and the estimate
//! decays towards zero with the time since its last sample, so a deployment
//! the balancer stopped choosing (say after one failure, priced at 1 s) is
//! tried again eventually instead of never.

use std::time::Duration;

use tokio::time::Instant;

/// The estimate before any sample: pessimistic enough that a new deployment
/// is tried without being flooded.
const DEFAULT_RTT: Duration = Duration::from_millis(500);
const TAU: Duration = Duration::from_secs(10);

/// Peak-sensitive exponentially weighted moving average of latency.
#[derive(Debug, Clone)]
pub struct PeakEwma {
    nanos: f64,
    stamp: Instant,
    measured: bool,
}

impl PeakEwma {
    /// A fresh estimate.
    pub fn new(now: Instant) -> Self {
        Self {
            nanos: DEFAULT_RTT.as_nanos() as f64,
            stamp: now,
            measured: false,
        }
    }

    /// Adds one latency sample.
    pub fn observe(&mut self, now: Instant, rtt: Duration) {
        let sample = rtt.as_nanos() as f64;
        // The first sample replaces the placeholder default outright.
        if sample > self.nanos || !self.measured {
            self.nanos = sample;
            self.measured = true;
        } else {
            let elapsed = now.saturating_duration_since(self.stamp).as_nanos() as f64;
            let w = (-elapsed / TAU.as_nanos() as f64).exp();
            self.nanos = self.nanos * w + sample * (1.0 - w);
        }
        self.stamp = now;
    }

    /// Whether any sample was observed.
    pub fn measured(&self) -> bool {
        self.measured
    }

    /// The current estimate in nanoseconds (the placeholder until measured).
    pub fn nanos(&self) -> f64 {
        self.nanos
    }

    /// The balancer's cost of one more request with `pending` in flight, of
    /// which `awaiting` have not been answered yet.
    ///
    /// The estimate decays towards zero with the time since the last sample
    /// (so an idle deployment is tried again), but while requests await
    /// their answer it is at least that time: a deployment that has work
    /// waiting and has answered nothing for two seconds is at least two
    /// seconds slow. That prices a frozen server out of the balancer within
    /// moments, long before its requests time out, while a server busy with
    /// long streams (answered, so not awaiting) is not penalised. Before any
    /// sample, the estimate is `DEFAULT_RTT` per pending request (nothing
    /// while idle, so a new deployment gets its first request).
    pub fn cost(&self, now: Instant, pending: u32, awaiting: u32) -> f64 {
        let silent = if awaiting > 0 {
            now.saturating_duration_since(self.stamp).as_nanos() as f64
        } else {
            0.0
        };
        if !self.measured {
            return (DEFAULT_RTT.as_nanos() as f64).max(silent) * f64::from(pending);
        }
        let idle = now.saturating_duration_since(self.stamp).as_nanos() as f64;
        let decayed = self.nanos * (-idle / TAU.as_nanos() as f64).exp();
        decayed.max(silent) * f64::from(pending + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_deployment_with_pending_work_prices_itself_out() {
        let t0 = Instant::now();
        let mut frozen = PeakEwma::new(t0);
        let mut healthy = PeakEwma::new(t0);
        frozen.observe(t0, Duration::from_millis(50));
        healthy.observe(t0, Duration::from_millis(50));
        let later = t0 + Duration::from_secs(2);
        healthy.observe(later, Duration::from_millis(50));
        // Same work in flight; the frozen one has answered nothing for 2 s.
        assert!(frozen.cost(later, 5, 5) > 10.0 * healthy.cost(later, 5, 5));
        // Idle, the frozen one's old estimate still decays: it will be tried again.
        assert!(frozen.cost(t0 + Duration::from_secs(60), 0, 0) < healthy.cost(later, 0, 0));
        // Busy with answered (streaming) work only: no silence penalty.
        assert!(frozen.cost(later, 5, 0) < healthy.cost(later, 5, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn peaks_register_at_once_and_decay_slowly() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe(t0, Duration::from_secs(2));
        assert_eq!(e.nanos(), 2e9);
        e.observe(t0 + Duration::from_secs(1), Duration::from_millis(10));
        assert!(e.nanos() > 1e9 && e.nanos() < 2e9, "{}", e.nanos());
        for s in 2..60 {
            e.observe(t0 + Duration::from_secs(s), Duration::from_millis(10));
        }
        assert!(e.nanos() < 20e6, "{}", e.nanos());
    }

    #[tokio::test(start_paused = true)]
    async fn unmeasured_is_tried_once_and_stale_estimates_decay() {
        let t0 = Instant::now();
        let mut fresh = PeakEwma::new(t0);
        assert_eq!(fresh.cost(t0, 0, 0), 0.0);
        assert!(fresh.cost(t0, 1, 1) >= 4e8);
        // The first sample is taken as is, below the default too.
        fresh.observe(t0, Duration::from_millis(2));
        assert_eq!(fresh.nanos(), 2e6);
        let mut failed = PeakEwma::new(t0);
        failed.observe(t0, Duration::from_secs(1));
        assert_eq!(failed.cost(t0, 0, 0), 1e9);
        let later = t0 + Duration::from_secs(70);
        assert!(
            failed.cost(later, 0, 0) < 2e6,
            "{}",
            failed.cost(later, 0, 0)
        );
    }
}
