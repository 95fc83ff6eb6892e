//! Service-level indicators: what clients experienced, one minute at a time.
//!
//! The data plane counts every finished request in lock-free counters (in
//! `lifeline-core`); the status side samples them and turns the differences
//! into one [`Minute`] per component and minute, which the store keeps (the
//! type lives here, the lowest crate of the status side, so that the store
//! and `lifeline-status` share it). Everything the page says
//! about traffic (status, SLO budgets, burn rates, uptime bars, latency
//! charts) is computed from these.
//!
//! Latencies are kept as counts per bucket ([`LATENCY_BUCKETS_MS`]), so
//! minutes add up exactly and quantiles are read off the buckets.

/// Upper bounds of the latency buckets, milliseconds; a last, unbounded
/// bucket follows. The data plane's counters use the same bounds.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000,
];

/// Number of buckets, the unbounded one included.
pub const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// One component's traffic during one minute (or the sum of several).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Minute {
    /// Start of the minute (unix ms, a multiple of 60 000); for a sum, the
    /// first minute's.
    pub at: i64,
    /// Client requests that finished.
    pub requests: u64,
    /// Of those, answered without a server-side failure: everything but
    /// 5xx and the gateway's own 429s (client errors such as 400 or 404 are
    /// the client's, not the service's).
    pub good: u64,
    /// Answer time (whole answer, or first token for streams) per bucket.
    pub latency: [u64; BUCKETS],
    /// Time to first token of streams per bucket.
    pub ttft: [u64; BUCKETS],
    /// Streams that ended with their final event.
    pub streams_completed: u64,
    /// Streams that broke after their first byte.
    pub streams_broken: u64,
    /// Attempts sent upstream for this component's requests.
    pub upstream_attempts: u64,
    /// Of those, the ones that succeeded.
    pub upstream_ok: u64,
    /// Probe results for the component's deployments (used when there is
    /// no traffic): successes and failures.
    pub probes_ok: u64,
    /// Failed probes.
    pub probes_failed: u64,
}

impl Minute {
    /// Adds `other`'s counts to this one (keeps `self.at`).
    pub fn add(&mut self, other: &Minute) {
        self.requests += other.requests;
        self.good += other.good;
        for i in 0..BUCKETS {
            self.latency[i] += other.latency[i];
            self.ttft[i] += other.ttft[i];
        }
        self.streams_completed += other.streams_completed;
        self.streams_broken += other.streams_broken;
        self.upstream_attempts += other.upstream_attempts;
        self.upstream_ok += other.upstream_ok;
        self.probes_ok += other.probes_ok;
        self.probes_failed += other.probes_failed;
    }

    /// Share of good requests, `None` without requests.
    pub fn availability(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.good as f64 / self.requests as f64)
    }

    /// Share of upstream attempts that succeeded, `None` without attempts.
    pub fn upstream_availability(&self) -> Option<f64> {
        (self.upstream_attempts > 0)
            .then(|| self.upstream_ok as f64 / self.upstream_attempts as f64)
    }

    /// Requests answered within `threshold_ms` (rounded down to a bucket
    /// bound: only buckets whose upper bound is at most the threshold count).
    pub fn within(&self, threshold_ms: u64) -> u64 {
        LATENCY_BUCKETS_MS
            .iter()
            .zip(self.latency.iter())
            .take_while(|(bound, _)| **bound <= threshold_ms)
            .map(|(_, n)| n)
            .sum()
    }

    /// The `q`-quantile of answer time in milliseconds (the upper bound of
    /// the bucket it falls in; the unbounded bucket reads as twice the last
    /// bound), `None` without data.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latency, q)
    }

    /// The `q`-quantile of time to first token, as [`Self::latency_quantile_ms`].
    pub fn ttft_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.ttft, q)
    }
}

fn quantile(buckets: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let bound = LATENCY_BUCKETS_MS
                .get(i)
                .copied()
                .unwrap_or(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1] * 2);
            return Some(bound as f64);
        }
    }
    None
}

/// The bucket a latency of `ms` milliseconds falls in.
pub fn bucket_of(ms: u64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_quantiles_and_thresholds() {
        let mut m = Minute::default();
        for ms in [10, 60, 60, 300, 900, 200_000] {
            m.latency[bucket_of(ms)] += 1;
            m.requests += 1;
        }
        assert_eq!(m.within(100), 3);
        assert_eq!(m.within(99), 1);
        assert_eq!(m.latency_quantile_ms(0.5), Some(100.0));
        assert_eq!(m.latency_quantile_ms(1.0), Some(240_000.0));
        assert_eq!(Minute::default().latency_quantile_ms(0.5), None);
        let mut sum = Minute::default();
        sum.add(&m);
        sum.add(&m);
        assert_eq!(sum.requests, 12);
        assert_eq!(sum.within(100), 6);
    }
}
