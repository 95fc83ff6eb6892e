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
//!
//! The store keeps each minute with the component's status that minute
//! ([`MinuteRecord`], written through [`SliStore`](crate::SliStore)) for
//! [`DEFAULT_MINUTE_RETENTION_DAYS`], and one rolled-up [`SliDay`] per
//! component and UTC day for [`DEFAULT_DAY_RETENTION_DAYS`] (the uptime
//! bars).

/// Upper bounds of the latency buckets, milliseconds; a last, unbounded
/// bucket follows. The data plane's counters use the same bounds.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000,
];

/// Number of buckets, the unbounded one included.
pub const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// One minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// One day, in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// How long per-minute rows are kept by default (days): enough for the
/// 24-hour latency chart and the longest burn-rate window with room to
/// spare.
pub const DEFAULT_MINUTE_RETENTION_DAYS: u32 = 7;

/// How long daily rollups are kept by default (days): the page's 90 bars.
/// The configuration key `sli_retention_days` overrides it.
pub const DEFAULT_DAY_RETENTION_DAYS: u32 = 90;

/// A minute counts as "upstream down" when upstream attempts were made and
/// fewer than this share of them succeeded.
pub const UPSTREAM_DOWN_BELOW: f64 = 0.5;

/// Statuspage's component statuses, from least to most severe (the order
/// `lifeline-status` uses for "the worst of": maintenance ranks above
/// operational and below every failure).
pub const COMPONENT_STATUSES: [&str; 5] = [
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
];

/// The position of `status` in [`COMPONENT_STATUSES`] (its severity),
/// `None` for a spelling Statuspage does not have.
pub fn status_severity(status: &str) -> Option<usize> {
    COMPONENT_STATUSES.iter().position(|s| *s == status)
}

/// Midnight UTC (unix ms) of the day `at_ms` falls in.
pub fn day_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS) * DAY_MS
}

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

    /// Whether upstream attempts were made and fewer than
    /// [`UPSTREAM_DOWN_BELOW`] of them succeeded.
    pub fn upstream_down(&self) -> bool {
        self.upstream_availability()
            .is_some_and(|share| share < UPSTREAM_DOWN_BELOW)
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

/// One row to write: a component's minute and its status that minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRecord<'a> {
    /// The component's id.
    pub component: &'a str,
    /// Its traffic; `minute.at` is the start of the minute (a multiple of
    /// [`MINUTE_MS`]).
    pub minute: &'a Minute,
    /// Its Statuspage status that minute, one of [`COMPONENT_STATUSES`].
    pub status: &'a str,
}

/// A stored minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliMinute {
    /// The traffic.
    pub minute: Minute,
    /// The component's status that minute (one of [`COMPONENT_STATUSES`]).
    pub status: String,
}

/// Minutes per component status, in one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusMinutes {
    /// Minutes operational.
    pub operational: u64,
    /// Minutes under maintenance.
    pub under_maintenance: u64,
    /// Minutes with degraded performance.
    pub degraded_performance: u64,
    /// Minutes in partial outage.
    pub partial_outage: u64,
    /// Minutes in major outage.
    pub major_outage: u64,
}

impl StatusMinutes {
    /// The counts in [`COMPONENT_STATUSES`] order.
    pub fn as_array(&self) -> [u64; 5] {
        [
            self.operational,
            self.under_maintenance,
            self.degraded_performance,
            self.partial_outage,
            self.major_outage,
        ]
    }

    /// Builds the counts from [`COMPONENT_STATUSES`] order.
    pub fn from_array(counts: [u64; 5]) -> Self {
        let [operational, under_maintenance, degraded_performance, partial_outage, major_outage] =
            counts;
        Self {
            operational,
            under_maintenance,
            degraded_performance,
            partial_outage,
            major_outage,
        }
    }

    /// Minutes with `status` (`None` for an unknown spelling).
    pub fn get(&self, status: &str) -> Option<u64> {
        status_severity(status).map(|i| self.as_array()[i])
    }

    /// All minutes counted.
    pub fn total(&self) -> u64 {
        self.as_array().iter().sum()
    }

    /// The most severe status with at least one minute; `None` if empty.
    pub fn worst(&self) -> Option<&'static str> {
        let counts = self.as_array();
        (0..counts.len())
            .rev()
            .find(|i| counts[*i] > 0)
            .map(|i| COMPONENT_STATUSES[i])
    }
}

/// One component's UTC day, rolled up from its minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliDay {
    /// Midnight UTC of the day (unix ms).
    pub day: i64,
    /// The day's minutes summed (`totals.at` is `day`).
    pub totals: Minute,
    /// Minutes per status the component had.
    pub status_minutes: StatusMinutes,
    /// Minutes in which the upstream was down ([`Minute::upstream_down`]).
    pub upstream_down_minutes: u64,
}

impl SliDay {
    /// The worst status the component had that day.
    pub fn worst(&self) -> Option<&'static str> {
        self.status_minutes.worst()
    }
}

/// What [`SliStore::prune`](crate::SliStore::prune) deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Minute rows.
    pub minutes: usize,
    /// Day rows.
    pub days: usize,
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
