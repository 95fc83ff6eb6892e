//! Recent latency percentiles per deployment, for adaptive deadlines.
//!
//! A deployment that normally answers in 300 ms and has said nothing for
//! 4 s is frozen, not slow; one whose answers normally take 40 s is not. So
//! the deadlines of an attempt (time to a stream's first content, time to a
//! non-streaming answer, the silence allowed in a stream before its first
//! content) follow the deployment's own recent p99: `multiplier × p99`,
//! never below a floor, never above the configured value
//! ([`adaptive_timeout`]). Until [`MIN_SAMPLES`] samples exist the
//! configured values apply.
//!
//! The p95 is kept beside the p99, recomputed with it: a hedged request
//! ([`crate::config::HedgePolicy`]) sends a second attempt once the first
//! has waited longer than its deployment's p95 for that phase.
//!
//! Each kind of sample ([`LatencyKind`]) keeps a ring of the last [`RING`]
//! samples in milliseconds. Recording one costs a short lock and a store;
//! the p99 is recomputed (a selection over the ring, no sort and no
//! allocation) only every [`RECOMPUTE_EVERY`] samples, and published in an
//! atomic, so reading it on the request path takes no lock at all.
//!
//! This module is pure: it knows nothing of requests, deployments or
//! configuration.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Samples kept per kind.
pub const RING: usize = 128;
/// Fewest samples before a p99 is reported.
pub const MIN_SAMPLES: usize = 20;
/// The p99 is recomputed every this many samples.
pub const RECOMPUTE_EVERY: u32 = 8;

/// What a sample measures. Streaming and non-streaming are kept apart: a
/// stream's first content comes long before a whole answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// A stream: from sending the request to its first content.
    FirstContent,
    /// Non-streaming: from sending the request to the response (which comes
    /// once the whole answer is generated).
    Answer,
    /// A stream: the longest silence between two of its events (one sample
    /// per stream that completed).
    StreamGap,
}

impl LatencyKind {
    /// Every kind, in index order.
    pub const ALL: [Self; 3] = [Self::FirstContent, Self::Answer, Self::StreamGap];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::FirstContent => "first_content",
            Self::Answer => "answer",
            Self::StreamGap => "stream_gap",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::FirstContent => 0,
            Self::Answer => 1,
            Self::StreamGap => 2,
        }
    }
}

/// A ring of recent samples with a lazily recomputed p99.
#[derive(Debug, Clone)]
pub struct RecentP99 {
    samples: [u32; RING],
    len: usize,
    next: usize,
    pending: u32,
    p99_ms: Option<u32>,
    p95_ms: Option<u32>,
}

impl Default for RecentP99 {
    fn default() -> Self {
        Self {
            samples: [0; RING],
            len: 0,
            next: 0,
            pending: 0,
            p99_ms: None,
            p95_ms: None,
        }
    }
}

impl RecentP99 {
    /// Adds a sample; returns the new p99 when it was recomputed.
    pub fn observe(&mut self, sample: Duration) -> Option<Duration> {
        let ms = u32::try_from(sample.as_millis()).unwrap_or(u32::MAX);
        self.samples[self.next] = ms;
        self.next = (self.next + 1) % RING;
        self.len = (self.len + 1).min(RING);
        self.pending += 1;
        if self.len < MIN_SAMPLES {
            return None;
        }
        if self.p99_ms.is_some() && self.pending < RECOMPUTE_EVERY {
            return None;
        }
        self.pending = 0;
        let mut sorted = self.samples;
        let live = &mut sorted[..self.len];
        // Nearest rank: the smallest sample with at least 99 % (95 %) at or
        // below it. One selection over the ring for the p95; the p99's rank
        // is at or above it, so the p99 is a selection among the few
        // samples above the p95 (about 5 % of the ring).
        let rank99 = (self.len * 99).div_ceil(100).max(1) - 1;
        let rank95 = (self.len * 95).div_ceil(100).max(1) - 1;
        let (_, p95, above) = live.select_nth_unstable(rank95);
        let p95 = *p95;
        let p99 = if rank99 > rank95 {
            *above.select_nth_unstable(rank99 - rank95 - 1).1
        } else {
            p95
        };
        self.p95_ms = Some(p95);
        self.p99_ms = Some(p99);
        self.p99()
    }

    /// The p95 as last computed (with the p99); `None` before
    /// [`MIN_SAMPLES`] samples.
    pub fn p95(&self) -> Option<Duration> {
        self.p95_ms.map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// The p99 as last computed; `None` before [`MIN_SAMPLES`] samples.
    pub fn p99(&self) -> Option<Duration> {
        self.p99_ms.map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// Samples held (at most [`RING`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no sample was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One deployment's recent latencies, every kind.
#[derive(Debug, Default)]
pub struct Latencies {
    rings: Mutex<[RecentP99; 3]>,
    /// Published p99 per kind in milliseconds, plus one (0: not known yet).
    p99: [AtomicU32; 3],
    /// Published p95 per kind, the same way.
    p95: [AtomicU32; 3],
}

impl Latencies {
    /// Records a sample; returns the kind's new p99 when it was recomputed
    /// (for a gauge).
    pub fn observe(&self, kind: LatencyKind, sample: Duration) -> Option<Duration> {
        let (p99, p95) = {
            // A panic while holding this lock leaves a consistent ring.
            let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
            let ring = &mut rings[kind.index()];
            let p99 = ring.observe(sample)?;
            (p99, ring.p95().unwrap_or(p99))
        };
        let published = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX - 1) + 1;
        self.p99[kind.index()].store(published(p99), Ordering::Relaxed);
        self.p95[kind.index()].store(published(p95), Ordering::Relaxed);
        Some(p99)
    }

    /// The kind's recent p95, without a lock; `None` until enough samples.
    pub fn p95(&self, kind: LatencyKind) -> Option<Duration> {
        match self.p95[kind.index()].load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_millis(u64::from(n - 1))),
        }
    }

    /// The kind's recent p99, without a lock; `None` until enough samples.
    pub fn p99(&self, kind: LatencyKind) -> Option<Duration> {
        match self.p99[kind.index()].load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_millis(u64::from(n - 1))),
        }
    }
}

/// The effective timeout: `multiplier × p99`, at least `floor`, at most
/// `configured`; `configured` while the p99 is unknown.
pub fn adaptive_timeout(
    p99: Option<Duration>,
    multiplier: f64,
    floor: Duration,
    configured: Duration,
) -> Duration {
    match p99 {
        None => configured,
        Some(p) => p.mul_f64(multiplier.max(1.0)).max(floor).min(configured),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_p99_before_enough_samples() {
        let mut r = RecentP99::default();
        for i in 0..MIN_SAMPLES - 1 {
            assert_eq!(r.observe(ms(100 + i as u64)), None);
        }
        assert_eq!(r.p99(), None);
        assert_eq!(
            r.observe(ms(5000)),
            Some(ms(5000)),
            "20 samples: p99 is the max"
        );
    }

    #[test]
    fn p99_is_the_slow_tail_of_recent_samples() {
        let mut r = RecentP99::default();
        // 1 % of samples at 900 ms, the rest between 100 and 199 ms.
        for i in 0..(RING as u64 * 3) {
            let s = if i % 100 == 0 { 900 } else { 100 + i % 100 };
            r.observe(ms(s));
        }
        let p = r.p99().unwrap_or_default();
        assert!(p >= ms(190) && p <= ms(900), "{p:?}");
        // The ring forgets: a deployment that got slower is seen as slower.
        for _ in 0..RING {
            r.observe(ms(2000));
        }
        assert_eq!(r.p99(), Some(ms(2000)));
        assert_eq!(r.len(), RING);
    }

    #[test]
    fn p95_sits_below_the_p99_and_needs_as_many_samples() {
        let l = Latencies::default();
        for i in 0..(MIN_SAMPLES as u64 - 1) {
            l.observe(LatencyKind::Answer, ms(100 + i));
        }
        assert_eq!(l.p95(LatencyKind::Answer), None, "too few samples");
        // 100 samples: 1..=100 ms. Nearest rank: p95 = 95 ms, p99 = 99 ms.
        let l = Latencies::default();
        let mut r = RecentP99::default();
        for i in 1..=100u64 {
            l.observe(LatencyKind::FirstContent, ms(i));
            r.observe(ms(i));
        }
        assert_eq!(r.p95(), Some(ms(95)));
        assert_eq!(r.p99(), Some(ms(99)));
        let (p95, p99) = (
            l.p95(LatencyKind::FirstContent).unwrap_or_default(),
            l.p99(LatencyKind::FirstContent).unwrap_or_default(),
        );
        // Published at the last recomputation (every few samples).
        assert!(p95 <= p99 && p95 >= ms(85), "{p95:?} {p99:?}");
        assert_eq!(l.p95(LatencyKind::Answer), None, "kinds apart");
    }

    #[test]
    fn p95_and_p99_are_the_nearest_ranks_of_the_ring() {
        // Against a sort of the samples held, at every ring length and with
        // many equal samples (whole milliseconds).
        let mut r = RecentP99::default();
        let mut held: Vec<u64> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..(RING * 3) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = if i % 3 == 0 { x % 20 } else { x % 5000 };
            held.push(s);
            if held.len() > RING {
                held.remove(0);
            }
            if r.observe(ms(s)).is_none() {
                continue;
            }
            let mut sorted = held.clone();
            sorted.sort_unstable();
            let rank = |p: usize| (sorted.len() * p).div_ceil(100).max(1) - 1;
            assert_eq!(
                r.p99(),
                Some(ms(sorted[rank(99)])),
                "{} samples",
                held.len()
            );
            assert_eq!(
                r.p95(),
                Some(ms(sorted[rank(95)])),
                "{} samples",
                held.len()
            );
        }
    }

    #[test]
    fn recomputed_only_every_few_samples() {
        let mut r = RecentP99::default();
        for _ in 0..MIN_SAMPLES {
            r.observe(ms(100));
        }
        assert_eq!(r.p99(), Some(ms(100)));
        let recomputed = (0..RECOMPUTE_EVERY * 4)
            .filter(|_| r.observe(ms(3000)).is_some())
            .count();
        assert_eq!(recomputed, 4);
        assert_eq!(r.p99(), Some(ms(3000)));
    }

    #[test]
    fn latencies_publish_per_kind_without_mixing() {
        let l = Latencies::default();
        for _ in 0..MIN_SAMPLES {
            l.observe(LatencyKind::FirstContent, ms(300));
            l.observe(LatencyKind::Answer, ms(4000));
        }
        assert_eq!(l.p99(LatencyKind::FirstContent), Some(ms(300)));
        assert_eq!(l.p99(LatencyKind::Answer), Some(ms(4000)));
        assert_eq!(l.p99(LatencyKind::StreamGap), None);
        // A zero sample is a real value, not "unknown".
        let g = Latencies::default();
        for _ in 0..MIN_SAMPLES {
            g.observe(LatencyKind::StreamGap, Duration::ZERO);
        }
        assert_eq!(g.p99(LatencyKind::StreamGap), Some(Duration::ZERO));
    }

    #[test]
    fn adaptive_timeout_is_floored_and_capped() {
        let cfg = Duration::from_secs(10);
        let floor = Duration::from_secs(2);
        assert_eq!(adaptive_timeout(None, 3.0, floor, cfg), cfg);
        assert_eq!(adaptive_timeout(Some(ms(100)), 3.0, floor, cfg), floor);
        assert_eq!(adaptive_timeout(Some(ms(1000)), 3.0, floor, cfg), ms(3000));
        assert_eq!(adaptive_timeout(Some(ms(9000)), 3.0, floor, cfg), cfg);
        // A floor above the configured value never lengthens it.
        assert_eq!(adaptive_timeout(Some(ms(10)), 3.0, ms(20_000), cfg), cfg);
    }
}
