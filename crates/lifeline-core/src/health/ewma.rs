//! Peak-EWMA latency, the balancer's cost signal.
//!
//! A sample above the current estimate replaces it at once (a slowdown
//! registers immediately); one below decays towards it with time constant
//! `tau` (recovery is smoothed). This is Finagle's and tower's `PeakEwma`;
//! see `../shared/reference/resilience-formulas.md`.

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
}

impl PeakEwma {
    /// A fresh estimate.
    pub fn new(now: Instant) -> Self {
        Self {
            nanos: DEFAULT_RTT.as_nanos() as f64,
            stamp: now,
        }
    }

    /// Adds one latency sample.
    pub fn observe(&mut self, now: Instant, rtt: Duration) {
        let sample = rtt.as_nanos() as f64;
        if sample > self.nanos {
            self.nanos = sample;
        } else {
            let elapsed = now.saturating_duration_since(self.stamp).as_nanos() as f64;
            let w = (-elapsed / TAU.as_nanos() as f64).exp();
            self.nanos = self.nanos * w + sample * (1.0 - w);
        }
        self.stamp = now;
    }

    /// The current estimate in nanoseconds.
    pub fn nanos(&self) -> f64 {
        self.nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
