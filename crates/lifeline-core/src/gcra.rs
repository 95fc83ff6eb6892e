//! The generic cell rate algorithm (GCRA) for one per-minute budget, on one
//! atomic: the theoretical arrival time (TAT) of the next unit. Used by the
//! per-key budgets ([`crate::limit`]) and the per-address limits
//! ([`crate::ip_limit`]).
//!
//! GCRA is a token bucket written as a single timestamp: a budget of
//! `limit` units per minute refills one unit every `60 s / limit`, holds at
//! most a minute's worth, and a request of `cost` units fits when taking it
//! leaves the TAT at most a minute ahead of now. Hand-written rather than
//! `governor`'s, because the token budget needs what `governor` does not
//! offer: a charge at admission (an estimate) that is later credited or
//! debited by the difference to the provider's real `usage`
//! ([`Gcra::adjust`]); a debit may push the TAT more than a minute ahead
//! (the key then waits until the real usage has drained). Lock-free: a
//! compare-and-swap loop on one `AtomicU64` of nanoseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The window every budget is expressed in.
pub const PERIOD: Duration = Duration::from_secs(60);
const PERIOD_NS: u64 = 60_000_000_000;

/// A budget as a request leaves it: what the `x-ratelimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Units per minute.
    pub limit: u64,
    /// Units that could be taken now.
    pub remaining: u64,
    /// Time until the budget is full again.
    pub reset: Duration,
}

/// Why a take did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not now: it fits after `retry_after`; `used` units are held now.
    Wait {
        /// When it fits.
        retry_after: Duration,
        /// Units the budget holds now (may exceed the limit after a debit).
        used: u64,
    },
    /// Never: the cost exceeds a whole minute's budget.
    TooLarge,
}

/// One budget's state (see the module docs). Times are nanoseconds since
/// the owner's epoch.
#[derive(Debug, Default)]
pub struct Gcra {
    tat: AtomicU64,
}

/// The time `units` take to refill at `limit` per minute.
fn span(units: u64, limit: u64) -> u64 {
    let ns = u128::from(units) * u128::from(PERIOD_NS) / u128::from(limit.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The units refilled in `ns` at `limit` per minute (rounded `up` or down).
fn units(ns: u64, limit: u64, up: bool) -> u64 {
    let num = u128::from(ns) * u128::from(limit);
    let d = u128::from(PERIOD_NS);
    let n = if up { num.div_ceil(d) } else { num / d };
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn quota(now: u64, tat: u64, limit: u64) -> Quota {
    let held = tat.saturating_sub(now);
    Quota {
        limit,
        remaining: units(PERIOD_NS.saturating_sub(held), limit, false),
        reset: Duration::from_nanos(held),
    }
}

impl Gcra {
    /// Takes `cost` units at `now` from a budget of `limit` per minute.
    pub fn take(&self, now: u64, limit: u64, cost: u64) -> Result<Quota, Denied> {
        if cost > limit {
            return Err(Denied::TooLarge);
        }
        let inc = span(cost, limit);
        let mut cur = self.tat.load(Ordering::Relaxed);
        loop {
            let base = cur.max(now);
            let new = base.saturating_add(inc);
            if new - now > PERIOD_NS {
                return Err(Denied::Wait {
                    retry_after: Duration::from_nanos(new - now - PERIOD_NS),
                    used: units(base - now, limit, true),
                });
            }
            match self
                .tat
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(quota(now, new, limit)),
                Err(c) => cur = c,
            }
        }
    }

    /// Debits (`delta > 0`) or credits (`delta < 0`) units already taken:
    /// a debit may leave the budget owing more than a minute; a credit
    /// never fills it beyond full.
    pub fn adjust(&self, now: u64, limit: u64, delta: i64) {
        let by = span(delta.unsigned_abs(), limit);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |cur| {
                Some(if delta >= 0 {
                    cur.max(now).saturating_add(by)
                } else if cur <= now {
                    cur
                } else {
                    cur.saturating_sub(by).max(now)
                })
            });
    }

    /// The budget as it stands at `now`.
    pub fn peek(&self, now: u64, limit: u64) -> Quota {
        quota(now, self.tat.load(Ordering::Relaxed), limit)
    }

    /// Whether the budget is full at `now` (forgetting it loses nothing).
    pub fn full(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_minutes_budget_then_one_unit_per_interval() {
        let g = Gcra::default();
        let now = 100 * S;
        for left in (0..3).rev() {
            assert_eq!(g.take(now, 3, 1).map(|q| q.remaining), Ok(left));
        }
        assert_eq!(
            g.take(now, 3, 1),
            Err(Denied::Wait {
                retry_after: Duration::from_secs(20),
                used: 3
            })
        );
        assert_eq!(g.peek(now, 3).reset, Duration::from_secs(60));
        // One unit refills every 20 s.
        assert!(g.take(now + 19 * S, 3, 1).is_err());
        assert_eq!(g.take(now + 20 * S, 3, 1).map(|q| q.remaining), Ok(0));
        assert!(g.full(now + 80 * S));
        assert_eq!(g.peek(now + 80 * S, 3).remaining, 3);
    }

    #[test]
    fn larger_than_the_limit_never_fits() {
        let g = Gcra::default();
        assert_eq!(g.take(0, 1000, 1001), Err(Denied::TooLarge));
        assert!(g.take(0, 1000, 1000).is_ok());
    }

    #[test]
    fn credits_and_debits_converge_on_real_usage() {
        let g = Gcra::default();
        let now = 10 * S;
        // Estimated 600 of 1000, really used 100: 900 left.
        assert!(g.take(now, 1000, 600).is_ok());
        g.adjust(now, 1000, 100 - 600);
        assert_eq!(g.peek(now, 1000).remaining, 900);
        // A credit never fills beyond full.
        g.adjust(now, 1000, -5000);
        assert_eq!(g.peek(now, 1000).remaining, 1000);
        assert!(g.full(now));
        // Estimated 100, really used 1500: the key owes half a minute more.
        assert!(g.take(now, 1000, 100).is_ok());
        g.adjust(now, 1000, 1400);
        match g.take(now, 1000, 1) {
            Err(Denied::Wait { retry_after, used }) => {
                assert_eq!(used, 1500);
                assert!(
                    retry_after > Duration::from_secs(30) && retry_after < Duration::from_secs(31),
                    "{retry_after:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(g.take(now + 31 * S, 1000, 1).is_ok());
    }
}
