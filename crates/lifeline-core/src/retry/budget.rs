//! The retry budget: retries are at most a fraction of recent requests.
//!
//! Why a budget and not only `max_attempts`: with three attempts per request
//! a dead provider triples the traffic to the rest exactly when they can
//! least take it. A budget bounds the *total* extra load: over the last
//! `window`, retries may not exceed `ratio × requests + min_per_sec × window`
//! (the floor keeps low-traffic models able to retry at all). This is
//! Finagle's and tower's `TpsBudget`, written against `tokio::time` so that
//! tests can pause the clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: usize = 10;
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    deposits: u32,
    withdrawals: u32,
}

/// A sliding-window retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor: f64,
    origin: Instant,
    buckets: Mutex<[Bucket; BUCKETS]>,
}

impl RetryBudget {
    /// `ratio` of requests, plus `min_per_sec` retries per second always.
    pub fn new(ratio: f64, min_per_sec: u32) -> Self {
        Self {
            ratio,
            floor: f64::from(min_per_sec) * WINDOW.as_secs_f64(),
            origin: Instant::now(),
            buckets: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }

    fn with_bucket<R>(&self, f: impl FnOnce(&mut [Bucket; BUCKETS], u64) -> R) -> R {
        let epoch = (Instant::now().duration_since(self.origin).as_nanos()
            / (WINDOW / BUCKETS as u32).as_nanos()) as u64;
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut b[(epoch % BUCKETS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Bucket {
                epoch,
                deposits: 0,
                withdrawals: 0,
            };
        }
        f(&mut b, epoch)
    }

    /// Counts a request.
    pub fn deposit(&self) {
        self.with_bucket(|b, epoch| b[(epoch % BUCKETS as u64) as usize].deposits += 1);
    }

    /// Takes one retry from the budget; `false` if it is spent.
    pub fn withdraw(&self) -> bool {
        self.with_bucket(|b, epoch| {
            let ok = self.allows(b, epoch);
            if ok {
                b[(epoch % BUCKETS as u64) as usize].withdrawals += 1;
            }
            ok
        })
    }

    /// Gives back one retry taken by [`Self::withdraw`] and not made (a
    /// hedge that another budget refused): the newest withdrawal still in
    /// the window is undone.
    pub fn give_back(&self) {
        self.with_bucket(|b, epoch| {
            let newest = b
                .iter_mut()
                .filter(|x| x.epoch + BUCKETS as u64 > epoch && x.epoch <= epoch)
                .filter(|x| x.withdrawals > 0)
                .max_by_key(|x| x.epoch);
            if let Some(x) = newest {
                x.withdrawals -= 1;
            }
        });
    }

    /// Whether a retry would be granted now, without taking it (so that a
    /// request does not wait for a retry it will not be allowed to make).
    pub fn can_withdraw(&self) -> bool {
        self.with_bucket(|b, epoch| self.allows(b, epoch))
    }

    fn allows(&self, b: &[Bucket; BUCKETS], epoch: u64) -> bool {
        let live = b
            .iter()
            .filter(|x| x.epoch + BUCKETS as u64 > epoch && x.epoch <= epoch);
        let (dep, wd) = live.fold((0u64, 0u64), |(d, w), x| {
            (d + u64::from(x.deposits), w + u64::from(x.withdrawals))
        });
        (wd + 1) as f64 <= self.floor + self.ratio * dep as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_ratio_plus_floor() {
        let b = RetryBudget::new(0.2, 1);
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.withdraw()).count();
        // 20 % of 100 requests + 1/s × 10 s.
        assert_eq!(granted, 30);
        assert!(!b.can_withdraw(), "spent");
        b.deposit();
        b.deposit();
        b.deposit();
        b.deposit();
        b.deposit();
        assert!(b.can_withdraw(), "a fifth of five requests");
        assert!(b.can_withdraw(), "looking does not take it");
        assert!(b.withdraw());
        assert!(!b.can_withdraw());
        tokio::time::sleep(Duration::from_secs(11)).await;
        let granted = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 10, "only the floor once the requests age out");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_given_back_may_be_taken_again() {
        let b = RetryBudget::new(0.5, 0);
        b.deposit();
        b.deposit();
        assert!(b.withdraw());
        assert!(!b.can_withdraw(), "half of two requests: one");
        b.give_back();
        assert!(b.withdraw(), "given back");
        // One second later (another bucket), the withdrawal is still the
        // newest in the window, and giving back more than was taken does
        // not mint retries.
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.give_back();
        b.give_back();
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }
}
