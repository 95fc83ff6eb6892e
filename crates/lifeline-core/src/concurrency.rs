//! Adaptive concurrency: how many attempts one deployment may have in
//! flight, following its latency and its overload answers.
//!
//! Two controllers act on one limit ([`Limiter`]):
//!
//! - **Gradient** (Netflix's Gradient2, with Envoy's `√limit` headroom),
//!   once per window of at least [`WINDOW`] and [`MIN_WINDOW_SAMPLES`]
//!   samples: `gradient = clamp(long_rtt / short_rtt, 0.5, 1)`, `new =
//!   limit · gradient + √limit`, `limit = 0.8 · limit + 0.2 · new`, where
//!   `short_rtt` is the window's mean and `long_rtt` an exponential average
//!   over about [`LONG_WINDOWS`] windows. Latency rising above its long-run
//!   level shrinks the limit; steady latency lets it grow by `√limit` per
//!   window (smoothed), but not while fewer than half of the slots are in
//!   use (the traffic, not the deployment, limits the throughput then).
//!   When the long average is more than twice the recent one (latency came
//!   down after a bad spell), it decays ×0.95 per window to catch up.
//! - **Loss** (AIMD's multiplicative decrease): an attempt answered 429, an
//!   overload 503 (or 529), or timed out multiplies the limit by
//!   [`BACKOFF`] at once, at most once per round trip: only an attempt
//!   admitted after the last decrease can cause the next one (TCP's rule,
//!   so that twenty 429s of one burst are one signal, not twenty). A
//!   window with such a drop does not grow.
//!
//! The limit stays within `[min, max]`, `max` being the provider's
//! `max_concurrency` or else `adaptive_max_limit`.
//!
//! **The RTT signal.** An LLM's latency depends on how much it writes: a
//! non-streaming answer's time grows with its length, so a window of long
//! answers would look like an overloaded provider. Streams are measured to
//! their first content (time to first token, independent of the length),
//! and non-streaming answers are compared only with non-streaming answers:
//! each [`RttKind`] keeps its own long-run average, and a window's gradient
//! is the sample-weighted mean of the per-kind gradients. A window's mean
//! over many requests of one kind is a stable estimate of that kind's
//! typical latency, and a rise of it is queueing at the provider.
//!
//! **Cost.** The request path does atomics only: a reservation is a
//! compare-and-swap on the deployment's in-flight count against
//! [`Limiter::limit`], a sample two additions. The one who closes a window
//! (or reports a drop) takes a small mutex, without waiting for it if
//! another thread already holds it.
//!
//! [`WaitRoom`] bounds how many requests of one public model wait for a
//! slot when all its deployments are at their limits.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ConcurrencyConfig;

/// Shortest window of the gradient controller.
pub const WINDOW: Duration = Duration::from_millis(250);
/// Fewest samples in a window of the gradient controller (a mean of fewer
/// is noise).
pub const MIN_WINDOW_SAMPLES: u32 = 4;
/// The long-run RTT averages over about this many windows.
pub const LONG_WINDOWS: f64 = 400.0;
/// The multiplicative decrease on an overload answer.
pub const BACKOFF: f64 = 0.9;
/// Weight of a window's new limit against the old one.
const SMOOTHING: f64 = 0.2;

/// What a latency sample measured (see the module docs for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RttKind {
    /// A stream, to its first content.
    FirstContent,
    /// A non-streaming answer.
    Answer,
}

impl RttKind {
    fn index(self) -> usize {
        match self {
            Self::FirstContent => 0,
            Self::Answer => 1,
        }
    }
}

/// The in-flight limit of one deployment.
#[derive(Debug)]
pub struct Limiter {
    adaptive: bool,
    min: f64,
    max: f64,
    /// The limit the request path reads (`u32::MAX`: none).
    limit: AtomicU32,
    /// Counts the loss decreases; a lease remembers the value it saw.
    generation: AtomicU32,
    /// Start of the current window, in nanoseconds since `epoch`.
    window_start: AtomicU64,
    epoch: Instant,
    /// The current window's RTT sums (nanoseconds) and counts, per kind.
    sums: [AtomicU64; 2],
    counts: [AtomicU32; 2],
    /// Drops in the current window.
    drops: AtomicU32,
    /// Most attempts in flight at once in the current window.
    peak: AtomicU32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The limit, fractional.
    estimate: f64,
    /// Long-run RTT per kind, nanoseconds; `None` until a first window.
    long: [Option<f64>; 2],
}

impl Limiter {
    /// The limit of a deployment whose provider caps it at `cap`
    /// (`max_concurrency`), if at all. Not adaptive: the cap alone, or no
    /// limit.
    pub fn new(cfg: &ConcurrencyConfig, cap: Option<u32>, now: Instant) -> Self {
        let max = f64::from(cap.unwrap_or(cfg.max_limit).max(1));
        let min = f64::from(cfg.min_limit.max(1)).min(max);
        let estimate = f64::from(cfg.initial_limit).clamp(min, max);
        let limit = if cfg.adaptive {
            estimate as u32
        } else {
            cap.unwrap_or(u32::MAX)
        };
        Self {
            adaptive: cfg.adaptive,
            min,
            max,
            limit: AtomicU32::new(limit),
            generation: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            epoch: now,
            sums: Default::default(),
            counts: Default::default(),
            drops: AtomicU32::new(0),
            peak: AtomicU32::new(0),
            state: Mutex::new(State {
                estimate,
                long: [None; 2],
            }),
        }
    }

    /// Whether the limit adapts.
    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// The current limit; `None` when there is none.
    pub fn current(&self) -> Option<u32> {
        Some(self.limit()).filter(|l| *l != u32::MAX)
    }

    /// The current limit (`u32::MAX`: none).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Reserves a slot on `in_flight` (the deployment's count of attempts in
    /// flight) under the limit; returns the generation the lease keeps for
    /// [`Self::overloaded`], or `None` at the limit.
    pub fn reserve(&self, in_flight: &AtomicU32) -> Option<u32> {
        let limit = self.limit();
        let before = in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        if self.adaptive {
            self.peak.fetch_max(before + 1, Ordering::Relaxed);
        }
        Some(self.generation.load(Ordering::Relaxed))
    }

    /// A successful attempt's latency. Returns the new limit when this
    /// sample closed a window and the limit changed.
    pub fn sample(&self, kind: RttKind, rtt: Duration, now: Instant) -> Option<u32> {
        if !self.adaptive {
            return None;
        }
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.sums[kind.index()].fetch_add(nanos, Ordering::Relaxed);
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        let now_ns = self.nanos(now);
        if now_ns < self.window_start.load(Ordering::Relaxed) + WINDOW.as_nanos() as u64 {
            return None;
        }
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Someone else is closing this window.
            Err(TryLockError::WouldBlock) => return None,
        };
        self.close_window(&mut st, now_ns)
    }

    /// An attempt admitted at `generation` ([`Self::reserve`]) was answered
    /// 429, an overload 503, or timed out. Returns the new limit if it
    /// changed.
    pub fn overloaded(&self, generation: u32) -> Option<u32> {
        if !self.adaptive {
            return None;
        }
        self.drops.fetch_add(1, Ordering::Relaxed);
        if generation != self.generation.load(Ordering::Relaxed) {
            // Admitted before the last decrease: already accounted for.
            return None;
        }
        let mut st = self.lock();
        if generation != self.generation.load(Ordering::Relaxed) {
            return None;
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        st.estimate = (st.estimate * BACKOFF).clamp(self.min, self.max);
        self.publish(&st)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Closes the window if it is long and full enough (called with the
    /// state locked).
    fn close_window(&self, st: &mut State, now_ns: u64) -> Option<u32> {
        if now_ns < self.window_start.load(Ordering::Relaxed) + WINDOW.as_nanos() as u64 {
            return None;
        }
        let total: u32 = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        if total < MIN_WINDOW_SAMPLES {
            return None;
        }
        self.window_start.store(now_ns, Ordering::Relaxed);
        // A sample landing between these swaps counts in the next window
        // with part of it: noise of one sample, not worth a lock.
        let mut weighted = 0.0;
        let mut n = 0.0;
        for k in 0..2 {
            let count = self.counts[k].swap(0, Ordering::Relaxed);
            let sum = self.sums[k].swap(0, Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let short = sum as f64 / f64::from(count);
            let long = match st.long[k] {
                None => short,
                Some(long) => {
                    let alpha = 2.0 / (LONG_WINDOWS + 1.0);
                    let long = long * (1.0 - alpha) + short * alpha;
                    // Latency came down after a bad spell: catch up.
                    if long / short > 2.0 {
                        long * 0.95
                    } else {
                        long
                    }
                }
            };
            st.long[k] = Some(long);
            weighted += (long / short).clamp(0.5, 1.0) * f64::from(count);
            n += f64::from(count);
        }
        let drops = self.drops.swap(0, Ordering::Relaxed);
        let peak = self.peak.swap(0, Ordering::Relaxed);
        let limit = st.estimate;
        let gradient = weighted / n;
        let mut new = limit * gradient + limit.sqrt();
        if new > limit && (drops > 0 || f64::from(peak) < limit / 2.0) {
            // No growth after a drop, nor while the traffic uses less than
            // half of the limit (growing then would measure nothing).
            new = limit;
        }
        st.estimate = (limit * (1.0 - SMOOTHING) + new * SMOOTHING).clamp(self.min, self.max);
        self.publish(st)
    }

    /// Publishes the estimate as the integer limit; `Some` if it changed.
    fn publish(&self, st: &State) -> Option<u32> {
        let limit = st.estimate as u32;
        (self.limit.swap(limit, Ordering::Relaxed) != limit).then_some(limit)
    }
}

/// The requests of one public model waiting for a slot at its deployments'
/// limits: at most `max` at once, each at most `max_wait`.
#[derive(Debug)]
pub struct WaitRoom {
    waiting: AtomicU32,
    max: u32,
    /// Longest wait of one request (within its deadline).
    pub max_wait: Duration,
}

impl WaitRoom {
    /// A room for `cfg.max_waiters`.
    pub fn new(cfg: &ConcurrencyConfig) -> Self {
        Self {
            waiting: AtomicU32::new(0),
            max: cfg.max_waiters,
            max_wait: cfg.max_wait,
        }
    }

    /// A place in the room, or `None` when it is full.
    pub fn enter(&self) -> Option<Waiting<'_>> {
        self.waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Waiting { room: self })
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// A place in a [`WaitRoom`], given back on drop.
#[derive(Debug)]
pub struct Waiting<'a> {
    room: &'a WaitRoom,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.room.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(min: u32, initial: u32, max: u32) -> ConcurrencyConfig {
        ConcurrencyConfig {
            min_limit: min,
            initial_limit: initial,
            max_limit: max,
            ..ConcurrencyConfig::default()
        }
    }

    /// Runs `windows` windows of `per_window` samples of `rtt`, with the
    /// deployment kept busy (`in flight` at the limit); returns the limit.
    async fn run(l: &Limiter, windows: u32, rtt: Duration) -> u32 {
        let in_flight = AtomicU32::new(0);
        for _ in 0..windows {
            // Fill every slot, as a busy deployment does.
            while l.reserve(&in_flight).is_some() {}
            tokio::time::advance(WINDOW).await;
            for _ in 0..MIN_WINDOW_SAMPLES {
                l.sample(RttKind::FirstContent, rtt, Instant::now());
            }
            in_flight.store(0, Ordering::SeqCst);
        }
        l.limit()
    }

    #[tokio::test(start_paused = true)]
    async fn steady_latency_grows_to_the_max_and_never_above() {
        let l = Limiter::new(&cfg(2, 5, 40), None, Instant::now());
        assert_eq!(l.limit(), 5);
        let ms = Duration::from_millis(100);
        let mut last = 5;
        for _ in 0..20 {
            let now = run(&l, 5, ms).await;
            assert!(
                now >= last,
                "a steady deployment's limit fell: {last} → {now}"
            );
            assert!(now <= 40);
            last = now;
        }
        assert_eq!(last, 40, "the limit should reach the max");
        // A provider's cap wins over adaptive_max_limit.
        let capped = Limiter::new(&cfg(2, 20, 100), Some(8), Instant::now());
        assert_eq!(capped.limit(), 8);
        assert_eq!(run(&capped, 100, ms).await, 8);
    }

    #[tokio::test(start_paused = true)]
    async fn rising_latency_lowers_the_limit_and_recovery_raises_it() {
        let l = Limiter::new(&cfg(2, 40, 40), None, Instant::now());
        let fast = Duration::from_millis(100);
        assert_eq!(run(&l, 50, fast).await, 40);
        // The provider queues: latency triples.
        let slow = run(&l, 30, Duration::from_millis(300)).await;
        assert!(slow <= 12, "latency tripled, yet the limit is {slow}");
        assert!(slow >= 2);
        // It recovers.
        let back = run(&l, 200, fast).await;
        assert_eq!(back, 40, "the limit did not grow back");
    }

    #[tokio::test(start_paused = true)]
    async fn overload_answers_lower_the_limit_once_per_round_trip() {
        let l = Limiter::new(&cfg(3, 40, 40), None, Instant::now());
        let in_flight = AtomicU32::new(0);
        // Twenty attempts admitted together, all answered 429: one decrease.
        let gens: Vec<u32> = (0..20).map(|_| l.reserve(&in_flight).unwrap()).collect();
        for g in &gens {
            l.overloaded(*g);
        }
        assert_eq!(l.limit(), 36);
        // Each new round trip that is refused again: another.
        for _ in 0..100 {
            let g = l.reserve(&AtomicU32::new(0)).unwrap();
            l.overloaded(g);
        }
        assert_eq!(l.limit(), 3, "never below the minimum");
        // A window with a drop does not grow.
        let g = l.reserve(&AtomicU32::new(0)).unwrap();
        tokio::time::advance(WINDOW).await;
        l.overloaded(g.wrapping_sub(1));
        for _ in 0..MIN_WINDOW_SAMPLES {
            l.sample(RttKind::Answer, Duration::from_millis(50), Instant::now());
        }
        assert_eq!(l.limit(), 3);
        // The provider recovers: the limit grows back.
        assert_eq!(run(&l, 300, Duration::from_millis(50)).await, 40);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_is_enforced_and_an_idle_deployment_does_not_grow() {
        let l = Limiter::new(&cfg(2, 4, 50), None, Instant::now());
        let in_flight = AtomicU32::new(0);
        for _ in 0..4 {
            assert!(l.reserve(&in_flight).is_some());
        }
        assert!(
            l.reserve(&in_flight).is_none(),
            "a fifth attempt went over the limit"
        );
        // Light traffic (one attempt at a time) never grows the limit.
        let l = Limiter::new(&cfg(2, 10, 50), None, Instant::now());
        for _ in 0..100 {
            let one = AtomicU32::new(0);
            l.reserve(&one);
            tokio::time::advance(WINDOW).await;
            for _ in 0..MIN_WINDOW_SAMPLES {
                l.sample(RttKind::Answer, Duration::from_millis(50), Instant::now());
            }
        }
        assert_eq!(l.limit(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn long_answers_do_not_look_like_queueing_to_streams() {
        // Streams' first content is fast; non-streaming answers are long.
        // Mixing them in one window keeps the limit where it was.
        let l = Limiter::new(&cfg(2, 30, 30), None, Instant::now());
        let in_flight = AtomicU32::new(0);
        for i in 0..100 {
            while l.reserve(&in_flight).is_some() {}
            tokio::time::advance(WINDOW).await;
            let answers = if i % 2 == 0 { 1 } else { 6 };
            for _ in 0..4 {
                l.sample(
                    RttKind::FirstContent,
                    Duration::from_millis(200),
                    Instant::now(),
                );
            }
            for _ in 0..answers {
                l.sample(RttKind::Answer, Duration::from_secs(8), Instant::now());
            }
            in_flight.store(0, Ordering::SeqCst);
        }
        assert_eq!(l.limit(), 30);
    }

    #[test]
    fn without_adaptation_the_cap_alone_holds() {
        let off = ConcurrencyConfig {
            adaptive: false,
            ..ConcurrencyConfig::default()
        };
        let now = Instant::now();
        assert_eq!(Limiter::new(&off, Some(7), now).current(), Some(7));
        let free = Limiter::new(&off, None, now);
        assert_eq!(free.current(), None);
        assert!(free.overloaded(0).is_none());
        assert_eq!(free.current(), None);
    }

    #[test]
    fn the_wait_room_is_bounded() {
        let room = WaitRoom::new(&ConcurrencyConfig {
            max_waiters: 2,
            ..ConcurrencyConfig::default()
        });
        let a = room.enter().unwrap();
        let _b = room.enter().unwrap();
        assert!(room.enter().is_none());
        drop(a);
        assert!(room.enter().is_some());
    }
}
