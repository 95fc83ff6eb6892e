//! Service-level indicator counters: what clients experienced, per public
//! model and endpoint family, and what each deployment did.
//!
//! The status side (`lifeline-status`) samples these every few seconds
//! ([`crate::gateway::Gateway::sli_totals`]) and turns the differences into
//! per-minute figures. So they are plain cumulative counters: lock-free,
//! never reset, relaxed atomics, recorded where the Prometheus metrics are
//! (the attempt loop, the relay, the prober), reached through the model's
//! route and the deployment, never looked up by name on the request path.
//!
//! Each counter is monotonic on its own. A sample taken while a request is
//! being recorded may see some of that request's counters and not the
//! others (its request count and not yet its latency bucket, say); the next
//! sample sees all of them.
//!
//! Latencies are counted per bucket ([`LATENCY_BUCKETS_MS`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets in milliseconds (a latency of
/// exactly a bound falls in that bound's bucket); a last, unbounded bucket
/// follows. A copy of `lifeline_status::sli::LATENCY_BUCKETS_MS`: this crate
/// does not depend on `lifeline-status`, so the two must be kept equal by
/// hand (the binary, which sees both, checks that they are).
pub const LATENCY_BUCKETS_MS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000,
];

/// Number of latency buckets, the unbounded one included.
pub const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// Number of endpoint families: one per [`crate::providers::Endpoint`], in
/// its `index()` order.
pub const FAMILIES: usize = 4;

/// The bucket a latency of `ms` milliseconds falls in.
pub fn bucket_of(ms: u64) -> usize {
    // Unrolled by the compiler: twelve compares, no branch mispredicted for
    // the common (fast) case.
    LATENCY_BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BUCKETS_MS.len())
}

/// Whether an answer with this status counts as good: everything except
/// 5xx and 429. The client's own errors (400, 404, 413, ...) are the
/// client's, not the service's; a client that went away first (499) is
/// counted as good too, and its wait as its latency.
pub fn is_good(status: u16) -> bool {
    !(status == 429 || (500..=599).contains(&status))
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Counts per latency bucket.
#[derive(Debug, Default)]
pub struct Histogram([AtomicU64; BUCKETS]);

impl Histogram {
    /// Counts one latency.
    pub fn observe(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        inc(&self.0[bucket_of(ms)]);
    }

    /// The counts, by bucket.
    pub fn counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| get(&self.0[i]))
    }
}

/// How a committed stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnding {
    /// With its final event.
    Complete,
    /// Broken after its first byte (the client got an `error` event).
    Broken,
    /// The client went away.
    Cancelled,
}

/// The counters of one public model on one endpoint family.
#[derive(Debug, Default)]
pub struct FamilySli {
    requests: AtomicU64,
    good: AtomicU64,
    latency: Histogram,
    ttft: Histogram,
    streams_completed: AtomicU64,
    streams_broken: AtomicU64,
    attempts: AtomicU64,
    attempts_ok: AtomicU64,
}

impl FamilySli {
    /// A finished request that was not a committed stream: its status and
    /// the time to its whole answer (or to the client leaving).
    pub fn request(&self, status: u16, answer: Duration) {
        inc(&self.requests);
        if is_good(status) {
            inc(&self.good);
        }
        self.latency.observe(answer);
    }

    /// A committed stream that ended (sent with status 200, or 499 when the
    /// client went away): one request whose answer time is its time to
    /// first token.
    pub fn stream(&self, status: u16, first_token: Duration, ending: StreamEnding) {
        self.request(status, first_token);
        self.ttft.observe(first_token);
        match ending {
            StreamEnding::Complete => inc(&self.streams_completed),
            StreamEnding::Broken => inc(&self.streams_broken),
            StreamEnding::Cancelled => {}
        }
    }

    /// An upstream attempt made for one of this model's requests; `ok` when
    /// it succeeded or failed through no fault of the deployment (the
    /// client's own 4xx, a context-window or content-policy refusal).
    pub fn attempt(&self, ok: bool) {
        inc(&self.attempts);
        if ok {
            inc(&self.attempts_ok);
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> SliCounts {
        SliCounts {
            requests: get(&self.requests),
            good: get(&self.good),
            latency: self.latency.counts(),
            ttft: self.ttft.counts(),
            streams_completed: get(&self.streams_completed),
            streams_broken: get(&self.streams_broken),
            upstream_attempts: get(&self.attempts),
            upstream_ok: get(&self.attempts_ok),
        }
    }
}

/// The counters of one public model, one [`FamilySli`] per endpoint family
/// (by [`crate::providers::Endpoint::index`]). Held by the model's route and
/// carried over by a reload that keeps the model.
#[derive(Debug, Default)]
pub struct ModelSli {
    families: [FamilySli; FAMILIES],
}

impl ModelSli {
    /// The counters of the family at `index` ([`crate::providers::Endpoint::index`]).
    pub fn family(&self, index: usize) -> &FamilySli {
        &self.families[index % FAMILIES]
    }
}

/// The counters of one deployment. Held by the deployment and carried over
/// by a reload that rebuilds it under the same id.
#[derive(Debug, Default)]
pub struct DeploymentSli {
    attempts: AtomicU64,
    attempts_ok: AtomicU64,
    probes_ok: AtomicU64,
    probes_failed: AtomicU64,
    /// Failed attempts per [`FAILURE_LABELS`] entry.
    failures: [AtomicU64; FAILURE_LABELS.len()],
}

/// The attempt loop's failure labels (`FailureKind::label`, the `outcome`
/// label of `lifeline_attempts_total`), in a fixed order; the status side
/// reads the cause of an incident from them. A test in the attempt module
/// checks that every label is here.
pub const FAILURE_LABELS: [&str; 13] = [
    "bad_url",
    "connect",
    "reset",
    "timeout",
    "rate_limited",
    "status_error",
    "client_error",
    "context_length",
    "content_policy",
    "misconfigured",
    "redirect",
    "bad_body",
    "stream_failed",
];

impl DeploymentSli {
    /// An attempt on this deployment; `ok` as [`FamilySli::attempt`].
    /// `failure` is the failure's label, `None` for a success.
    pub fn attempt(&self, ok: bool, failure: Option<&str>) {
        inc(&self.attempts);
        if ok {
            inc(&self.attempts_ok);
        }
        if let Some(label) = failure {
            // Only on failures: a scan of 13 short strings.
            if let Some(i) = FAILURE_LABELS.iter().position(|l| *l == label) {
                inc(&self.failures[i]);
            }
        }
    }

    /// A prober's probe of this deployment, passed or not.
    pub fn probe(&self, ok: bool) {
        inc(if ok {
            &self.probes_ok
        } else {
            &self.probes_failed
        });
    }

    /// The totals so far.
    pub fn totals(&self) -> DeploymentCounts {
        DeploymentCounts {
            attempts: get(&self.attempts),
            attempts_ok: get(&self.attempts_ok),
            probes_ok: get(&self.probes_ok),
            probes_failed: get(&self.probes_failed),
            failures: FAILURE_LABELS
                .iter()
                .zip(&self.failures)
                .map(|(label, n)| (*label, get(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// One model's cumulative counts on one endpoint family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliCounts {
    /// Client requests that finished (a committed stream when it ended).
    /// Requests rejected before their model was known (bad key, bad JSON,
    /// unknown model) belong to no model and are not counted; nor are
    /// requests a client key's own limit refused (the gateway's 429
    /// `rate_limit_exceeded`, counted in `lifeline_rate_limited_total`):
    /// they say nothing about the model's availability.
    pub requests: u64,
    /// Of those, answered with anything but a 5xx or a 429 ([`is_good`]).
    pub good: u64,
    /// Answer time per bucket ([`LATENCY_BUCKETS_MS`]): from the request's
    /// arrival to its whole answer, or to the first token for a stream.
    pub latency: [u64; BUCKETS],
    /// Time to first token of committed streams, per bucket.
    pub ttft: [u64; BUCKETS],
    /// Streams that ended with their final event.
    pub streams_completed: u64,
    /// Streams that broke after their first byte.
    pub streams_broken: u64,
    /// Upstream attempts made for these requests.
    pub upstream_attempts: u64,
    /// Of those, the ones that succeeded or failed through no fault of the
    /// deployment (the client's own 4xx, a refusal by the upstream model).
    pub upstream_ok: u64,
}

/// One deployment's cumulative counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentCounts {
    /// Attempts on it (for any model).
    pub attempts: u64,
    /// Of those, the ones that succeeded or failed through no fault of the
    /// deployment.
    pub attempts_ok: u64,
    /// Prober probes that passed.
    pub probes_ok: u64,
    /// Prober probes that failed.
    pub probes_failed: u64,
    /// Failed attempts by failure label ([`FAILURE_LABELS`]), those seen.
    pub failures: Vec<(&'static str, u64)>,
}

/// Everything [`crate::gateway::Gateway::sli_totals`] returns: plain owned
/// values, cumulative since the model or deployment appeared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliTotals {
    /// Per public model and endpoint family: every model of the running
    /// config (in config order) with each of the four families.
    pub models: Vec<ModelTotals>,
    /// Per deployment in use, in config order.
    pub deployments: Vec<DeploymentTotals>,
}

/// One public model's counts on one endpoint family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelTotals {
    /// The endpoint family: `"chat"` (`/v1/chat/completions`),
    /// `"embeddings"` (`/v1/embeddings`), `"images"`
    /// (`/v1/images/generations`) or `"responses"` (`/v1/responses`); see
    /// [`crate::providers::Endpoint::family`].
    pub family: &'static str,
    /// Public model name.
    pub model: String,
    /// The counts.
    pub counts: SliCounts,
}

/// One deployment's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentTotals {
    /// `provider/model`.
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// Upstream model name.
    pub model: String,
    /// The public models whose tiers include it, in config order.
    pub public_models: Vec<String>,
    /// The counts.
    pub counts: DeploymentCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_the_status_sides_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50), 0);
        assert_eq!(bucket_of(51), 1);
        assert_eq!(bucket_of(120_000), 11);
        assert_eq!(bucket_of(120_001), 12);
        assert_eq!(BUCKETS, 13);
    }

    #[test]
    fn good_is_everything_but_5xx_and_429() {
        for s in [200, 400, 404, 408, 413, 499] {
            assert!(is_good(s), "{s}");
        }
        for s in [429, 500, 503, 504, 599] {
            assert!(!is_good(s), "{s}");
        }
    }

    #[test]
    fn counts_requests_streams_and_attempts() {
        let f = FamilySli::default();
        f.request(200, Duration::from_millis(30));
        f.request(503, Duration::from_millis(700));
        f.stream(200, Duration::from_millis(60), StreamEnding::Complete);
        f.stream(200, Duration::from_millis(60), StreamEnding::Broken);
        f.stream(499, Duration::from_secs(200), StreamEnding::Cancelled);
        f.attempt(true);
        f.attempt(false);
        let t = f.totals();
        assert_eq!((t.requests, t.good), (5, 4));
        assert_eq!(t.latency[0], 1);
        assert_eq!(t.latency[1], 2);
        assert_eq!(t.latency[4], 1);
        assert_eq!(t.latency[12], 1);
        assert_eq!(t.ttft.iter().sum::<u64>(), 3);
        assert_eq!((t.streams_completed, t.streams_broken), (1, 1));
        assert_eq!((t.upstream_attempts, t.upstream_ok), (2, 1));
        let d = DeploymentSli::default();
        d.attempt(true, None);
        d.attempt(false, Some("timeout"));
        d.attempt(false, Some("timeout"));
        d.attempt(true, Some("client_error"));
        d.probe(true);
        d.probe(false);
        d.probe(false);
        assert_eq!(
            d.totals(),
            DeploymentCounts {
                attempts: 4,
                attempts_ok: 2,
                probes_ok: 1,
                probes_failed: 2,
                failures: vec![("timeout", 2), ("client_error", 1)],
            }
        );
    }
}
