//! Choosing the deployment for an attempt.
//!
//! Steps, for each attempt:
//!
//! 1. Walk the tiers in order, up to the tier the request is held in, if any
//!    ([`Scope::up_to_tier`]: after a transient failure the attempt loop
//!    keeps the request in its tier for a while). A tier is used while any
//!    of its deployments is available (breaker not open, not drained, no
//!    pending `Retry-After`, provider under its concurrency cap).
//! 2. Within the tier, prefer deployments this request has not tried yet;
//!    if all were tried, the tier's tried ones are allowed again (later
//!    tiers still come first if they have untried deployments).
//!    Deployments of an upstream model that refused the request
//!    ([`Refusal`]: its context window, or its content policy), and the
//!    deployments found ineligible for the request ([`Scope::ineligible`]),
//!    are skipped,
//!    and after a context-length refusal only a later tier or a larger
//!    configured `context_window` qualifies.
//! 3. Power of two choices: draw two distinct candidates at random and take
//!    the one with the lower `peak-EWMA latency × (in-flight + 1) / weight`,
//!    the weight times its provider's quota steering factor
//!    ([`crate::health::quota`]: 1, falling towards 0.01 as the provider's
//!    traffic nears its `rpm`/`tpm`; one atomic load) and the deployment's
//!    early-warning factor (below 1 while it drifts out of its normal band,
//!    [`crate::health::drift`]).
//! 4. Reserve it ([`Deployment::lease`]); if that races with a breaker
//!    transition, drop it from the candidates and draw again.
//! 5. A deployment at its in-flight limit (adaptive, under its provider's
//!    `max_concurrency`) is skipped, so load spills over to other
//!    deployments and later tiers; when every healthy deployment is full,
//!    [`Pick::Saturated`] names one, and [`saturated`] lists all of them
//!    for the caller to wait on.
//!
//! [`has_untried`] and [`has_untried_after`] ask, with the same filter
//! (scope, refusals, availability, cap), whether an untried deployment
//! could take the next attempt: the attempt loop uses them to decide
//! whether to wait on a slow deployment and whether to keep its last
//! attempt for a later tier.

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
        /// Where the deployment sits.
        place: Place,
    },
    /// Every healthy deployment is at its provider's `max_concurrency`; the
    /// caller may wait for a slot on this one (the least loaded of the
    /// earliest tier that has one).
    Saturated {
        /// The deployment to wait on.
        deployment: Arc<Deployment>,
        /// Where it sits.
        place: Place,
    },
    /// Nothing is available; the earliest instant something may be.
    Unavailable {
        /// When something may be available again, if known.
        until: Option<Instant>,
    },
}

/// A picked deployment's place in the model: its tier and its tier entry's
/// `context_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Tier index, 0 for the first.
    pub tier: usize,
    /// The configured context window, if any.
    pub context_window: Option<u32>,
}

/// An upstream model that refused this request, and where.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The deployment that answered the refusal.
    pub deployment: Arc<Deployment>,
    /// Where it sat.
    pub place: Place,
    /// A context-window refusal (else a content-policy one).
    pub context_length: bool,
}

impl Refusal {
    /// Whether a deployment at `place` may take the request after this refusal.
    fn allows(&self, d: &Deployment, place: Place) -> bool {
        if d.model == self.deployment.model {
            return false;
        }
        if !self.context_length {
            return true;
        }
        place.tier > self.place.tier
            || place
                .context_window
                .zip(self.place.context_window)
                .is_some_and(|(there, here)| there > here)
    }
}

/// Which deployments an attempt may go to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Deployments this request already tried: picked again only when no
    /// untried one is available (the caller then backs off first).
    pub tried: &'a [Arc<Deployment>],
    /// Only tiers up to this index; `None`: every tier.
    pub up_to_tier: Option<usize>,
    /// Upstream models that refused the request.
    pub refused: &'a [Refusal],
    /// Deployments found ineligible for the request (it cannot be
    /// translated to their protocol faithfully, their adapter does not
    /// serve the endpoint, they do not continue its prefill): skipped like
    /// a refusal, and never an attempt.
    pub ineligible: &'a [Arc<Deployment>],
}

impl Scope<'_> {
    /// How many tiers, from the first, this scope may use.
    fn tiers(&self, model: &Model) -> usize {
        self.up_to_tier.map_or(model.tiers.len(), |t| t + 1)
    }

    /// Whether this request already tried `d`.
    fn was_tried(&self, d: &Arc<Deployment>) -> bool {
        self.tried.iter().any(|t| Arc::ptr_eq(t, d))
    }

    /// Whether no refusal rules out `m` at `place`, and its wire is
    /// eligible.
    fn admits(&self, m: &Member, place: Place) -> bool {
        !self
            .ineligible
            .iter()
            .any(|d| Arc::ptr_eq(d, &m.deployment))
            && self.refused.iter().all(|r| r.allows(&m.deployment, place))
    }
}

/// Picks a deployment of `model` within `scope`, avoiding the tried ones
/// where possible.
pub fn pick(model: &Model, scope: Scope<'_>) -> Pick {
    let now = Instant::now();
    let mut earliest: Option<Instant> = None;
    let mut full: Option<(&Member, Place)> = None;
    let tiers = scope.tiers(model);
    for pass_allows_tried in [false, true] {
        for (ti, tier) in model.tiers.iter().enumerate().take(tiers) {
            let mut candidates: Vec<&Member> = Vec::with_capacity(tier.len());
            for m in tier {
                if !pass_allows_tried && scope.was_tried(&m.deployment) {
                    continue;
                }
                let place = Place {
                    tier: ti,
                    context_window: m.context_window,
                };
                if !scope.admits(m, place) {
                    continue;
                }
                match m.deployment.availability(now) {
                    Availability::Until(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
                    _ if m.deployment.saturated() => {
                        let less_loaded = full.is_none_or(|(f, _)| {
                            m.deployment.in_flight() < f.deployment.in_flight()
                        });
                        if full.is_none() || (less_loaded && !pass_allows_tried) {
                            full = Some((m, place));
                        }
                    }
                    _ => candidates.push(m),
                }
            }
            while !candidates.is_empty() {
                let i = choose(&candidates);
                let m = candidates.swap_remove(i);
                let place = Place {
                    tier: ti,
                    context_window: m.context_window,
                };
                if let Some(lease) = m.deployment.lease() {
                    let retry_of_tried = scope.was_tried(&m.deployment);
                    return Pick::Lease {
                        lease,
                        retry_of_tried,
                        place,
                    };
                }
                // Filled up by another request since it was looked at: it
                // is full, not unavailable.
                if full.is_none() && m.deployment.saturated() {
                    full = Some((m, place));
                }
            }
        }
    }
    match full {
        Some((m, place)) => Pick::Saturated {
            deployment: m.deployment.clone(),
            place,
        },
        None => Pick::Unavailable { until: earliest },
    }
}

/// Every deployment of `model` within `scope` (tried or not) that is
/// available but at its in-flight limit or its provider's cap: what a
/// request that got [`Pick::Saturated`] waits on.
pub fn saturated(model: &Model, scope: Scope<'_>) -> Vec<(Arc<Deployment>, Place)> {
    let now = Instant::now();
    let mut out = Vec::new();
    for (ti, tier) in model.tiers.iter().enumerate().take(scope.tiers(model)) {
        for m in tier {
            let place = Place {
                tier: ti,
                context_window: m.context_window,
            };
            if scope.admits(m, place)
                && !matches!(m.deployment.availability(now), Availability::Until(_))
                && m.deployment.saturated()
                && !out.iter().any(|(d, _)| Arc::ptr_eq(d, &m.deployment))
            {
                out.push((m.deployment.clone(), place));
            }
        }
    }
    out
}

/// Whether some deployment of `model` within `scope` (its tiers, and not
/// ruled out by a refusal, as for [`pick`]) that this request has not tried
/// could take an attempt now.
pub fn has_untried(model: &Model, scope: Scope<'_>) -> bool {
    untried_from(model, scope, 0)
}

/// Whether some deployment in a tier after `tier` could take an attempt
/// now: untried by this request, not ruled out by a refusal in `scope`
/// (whose `up_to_tier` is ignored), available and under its cap.
pub fn has_untried_after(model: &Model, scope: Scope<'_>, tier: usize) -> bool {
    let scope = Scope {
        up_to_tier: None,
        ..scope
    };
    untried_from(model, scope, tier + 1)
}

fn untried_from(model: &Model, scope: Scope<'_>, first_tier: usize) -> bool {
    let now = Instant::now();
    model
        .tiers
        .iter()
        .enumerate()
        .take(scope.tiers(model))
        .skip(first_tier)
        .any(|(ti, tier)| {
            tier.iter().any(|m| {
                let place = Place {
                    tier: ti,
                    context_window: m.context_window,
                };
                !scope.was_tried(&m.deployment)
                    && scope.admits(m, place)
                    && !matches!(m.deployment.availability(now), Availability::Until(_))
                    && !m.deployment.saturated()
            })
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
    let cost = |m: &Member| {
        m.deployment.load()
            / (f64::from(m.weight.max(1))
                * m.deployment.upstream.quota_factor()
                * m.deployment.early_warning_factor())
    };
    if cost(candidates[b]) < cost(candidates[a]) {
        b
    } else {
        a
    }
}
