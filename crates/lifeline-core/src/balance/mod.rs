//! Choosing the deployment for an attempt.
//!
//! Steps, for each attempt:
//!
//! 1. Walk the tiers in order. A tier is used while any of its deployments
//!    is available (breaker not open, not drained, no pending
//!    `Retry-After`, provider under its concurrency cap).
//! 2. Within the tier, prefer deployments this request has not tried yet;
//!    if all were tried, the tier's tried ones are allowed again (later
//!    tiers still come first if they have untried deployments).
//! 3. Power of two choices: draw two distinct candidates at random and take
//!    the one with the lower `peak-EWMA latency × (in-flight + 1) / weight`.
//! 4. Reserve it ([`Deployment::lease`]); if that races with a breaker
//!    transition, drop it from the candidates and draw again.
//! 5. A deployment whose provider is at its `max_concurrency` is skipped, so
//!    load spills over to other deployments and later tiers; when every
//!    healthy deployment is full, [`Pick::Saturated`] names one to wait on.

use std::sync::Arc;

use tokio::time::Instant;

use crate::health::Availability;
use crate::route::{Deployment, Lease, Member, Model};

/// The result of a pick.
pub enum Pick {
    /// An attempt reserved on a deployment; `retry_of_tried` says whether this
    /// request already tried it (the caller then backs off first).
    Lease {
        /// The reservation.
        lease: Lease,
        /// Whether this request already tried the deployment.
        retry_of_tried: bool,
    },
    /// Every healthy deployment is at its provider's `max_concurrency`; the
    /// caller may wait for a slot on this one (the least loaded of the
    /// earliest tier that has one).
    Saturated {
        /// The deployment to wait on.
        deployment: Arc<Deployment>,
    },
    /// Nothing is available; the earliest instant something may be.
    Unavailable {
        /// When something may be available again, if known.
        until: Option<Instant>,
    },
}

/// Picks a deployment of `model`, avoiding the `tried` ones where possible.
pub fn pick(model: &Model, tried: &[Arc<Deployment>]) -> Pick {
    let now = Instant::now();
    let mut earliest: Option<Instant> = None;
    let mut full: Option<&Member> = None;
    let was_tried = |d: &Arc<Deployment>| tried.iter().any(|t| Arc::ptr_eq(t, d));
    for pass_allows_tried in [false, true] {
        for tier in &model.tiers {
            let mut candidates: Vec<&Member> = Vec::with_capacity(tier.len());
            for m in tier {
                if !pass_allows_tried && was_tried(&m.deployment) {
                    continue;
                }
                match m.deployment.availability(now) {
                    Availability::Until(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
                    _ if m.deployment.saturated() => {
                        let less_loaded = full
                            .is_none_or(|f| m.deployment.in_flight() < f.deployment.in_flight());
                        if full.is_none() || (less_loaded && !pass_allows_tried) {
                            full = Some(m);
                        }
                    }
                    _ => candidates.push(m),
                }
            }
            while !candidates.is_empty() {
                let i = choose(&candidates);
                let m = candidates.swap_remove(i);
                if let Some(lease) = m.deployment.lease() {
                    let retry_of_tried = was_tried(&m.deployment);
                    return Pick::Lease {
                        lease,
                        retry_of_tried,
                    };
                }
            }
        }
    }
    match full {
        Some(m) => Pick::Saturated {
            deployment: m.deployment.clone(),
        },
        None => Pick::Unavailable { until: earliest },
    }
}

/// Whether some deployment of `model` that this request has not tried could
/// take an attempt now.
pub fn has_untried(model: &Model, tried: &[Arc<Deployment>]) -> bool {
    let now = Instant::now();
    model.tiers.iter().flatten().any(|m| {
        !tried.iter().any(|t| Arc::ptr_eq(t, &m.deployment))
            && !matches!(m.deployment.availability(now), Availability::Until(_))
            && !m.deployment.saturated()
    })
}

/// Power of two choices over `candidates` (non-empty); returns an index.
fn choose(candidates: &[&Member]) -> usize {
    if candidates.len() == 1 {
        return 0;
    }
    let a = fastrand::usize(..candidates.len());
    let mut b = fastrand::usize(..candidates.len() - 1);
    if b >= a {
        b += 1;
    }
    let cost = |m: &Member| m.deployment.load() / f64::from(m.weight.max(1));
    if cost(candidates[b]) < cost(candidates[a]) {
        b
    } else {
        a
    }
}
