//! A sliding window of attempt outcomes, in ten time buckets.
//!
//! Ten buckets of `window / 10` each: the failure rate then forgets old
//! traffic smoothly, with a fixed footprint whatever the request rate.

use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    ok: u32,
    failed: u32,
}

/// Outcome counts over the last `window`.
#[derive(Debug, Clone)]
pub struct Window {
    origin: Instant,
    bucket: Duration,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    /// An empty window of the given length.
    pub fn new(now: Instant, window: Duration) -> Self {
        Self {
            origin: now,
            bucket: (window / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        (now.duration_since(self.origin).as_nanos() / self.bucket.as_nanos()) as u64
    }

    /// Counts one outcome.
    pub fn record(&mut self, now: Instant, ok: bool) {
        let epoch = self.epoch(now);
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                ok: 0,
                failed: 0,
            };
        }
        if ok {
            b.ok += 1;
        } else {
            b.failed += 1;
        }
    }

    /// `(successes, failures)` over the window.
    pub fn counts(&self, now: Instant) -> (u32, u32) {
        let epoch = self.epoch(now);
        self.buckets
            .iter()
            .filter(|b| b.epoch + (BUCKETS as u64) > epoch && b.epoch <= epoch)
            .fold((0, 0), |(o, f), b| (o + b.ok, f + b.failed))
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn old_outcomes_fall_out() {
        let now = Instant::now();
        let mut w = Window::new(now, Duration::from_secs(10));
        w.record(now, false);
        w.record(now, true);
        assert_eq!(w.counts(now), (1, 1));
        let later = now + Duration::from_secs(5);
        w.record(later, false);
        assert_eq!(w.counts(later), (1, 2));
        let much_later = now + Duration::from_secs(12);
        assert_eq!(w.counts(much_later), (0, 1));
        assert_eq!(w.counts(now + Duration::from_secs(30)), (0, 0));
    }
}
