//! Hedged requests: a second attempt, on another deployment, for an
//! attempt that takes longer than its deployment usually does.
//!
//! With `hedge = true` on a model, an attempt that has waited longer than
//! its deployment's recent p95 for its phase (a whole answer, or a stream's
//! first content: [`crate::health::latency`]) without committing gets a
//! second attempt beside it ([`Call::race`]), at most once per request:
//!
//! 1. No p95 yet (fewer than 20 samples of that phase): no hedge.
//! 2. The hedge needs a token of the model's hedge budget (at most
//!    `hedge_budget_percent` % of its requests over the last 10 s) and one
//!    of its retry budget, so hedges and retries together stay within the
//!    retry budget. Short of either: no hedge
//!    (`lifeline_hedges_total{outcome="refused_budget"}`).
//! 3. The deployment is picked as a retry's would be, but only an untried
//!    one that has a free slot now ([`crate::balance::pick`]): a hedge
//!    never waits for a slot, never backs off, and never goes to the
//!    deployment it hedges. One whose protocol cannot take the request
//!    (`Call::convert`) is skipped before any token is taken, and the pick
//!    is made again without its protocol: it is neither an attempt nor a
//!    hedge.
//! 4. Only a 2xx wins: the first of the two to commit (a whole 2xx answer
//!    read, a stream's first content) is the client's answer; the other is
//!    dropped at once: its upstream request is cancelled and its lease
//!    ends neutral ([`crate::route::Lease`]'s drop), since being slower is
//!    not a failure. `won`: the hedge answered; `lost`: the hedged attempt
//!    did, or neither did.
//! 5. Any other end of one side (a failure, a refusal, or an answer that
//!    is not a 2xx: the client's own error as a provider gave it, a 501, a
//!    memory shed) is held while the other runs, so a hedge whose provider
//!    rejects the request never beats a slow 200. If both end that way,
//!    both go back to the attempt loop, the hedged attempt first, which
//!    handles them in turn: failures as failures, an error answer as the
//!    request's answer (counted only then).
//!
//! `x-lifeline-attempts` counts both attempts; `x-lifeline-deployment`
//! names the winner's deployment.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use tokio::time::{sleep_until, Instant};

use super::upstream::Attempted;
use super::Call;
use crate::balance::{pick, Pick, Place, Scope};
use crate::health::latency::LatencyKind;
use crate::retry::RetryBudget;
use crate::route::{Deployment, Lease};
use crate::telemetry::X_LIFELINE_ATTEMPTS;

/// An attempt that ended: its deployment, where it sat, what it produced.
pub(super) type Ended = (Arc<Deployment>, Place, Attempted);

impl Call {
    /// Whether the next attempt may be hedged: the model hedges, this
    /// request has not hedged yet, and one more attempt is allowed
    /// (`tried` holds the attempt about to be made).
    pub(super) fn may_hedge(&self, hedged: bool, tried: usize) -> bool {
        self.model.hedge_budget.is_some()
            && !hedged
            && (tried as u32) < self.model.policy.max_attempts
    }

    /// Runs the attempt reserved by `lease` (already in `tried`), with a
    /// hedge beside it when it takes longer than its deployment's p95.
    /// `base` is the attempt's scope but for `tried` (which it ignores):
    /// the hedged attempt's is `base` with `tried`, the hedge's is picked
    /// and run in `base` with every tier and `tried` grown by it. Ends
    /// with the client's answer (the first value, alone), or with every
    /// attempt that failed, the hedged one first. `hedged` is set once a
    /// hedge was started or refused by the budget; a hedge is pushed to
    /// `tried`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn race(
        &self,
        lease: Lease,
        body: Bytes,
        place: Place,
        tried: &mut Vec<Arc<Deployment>>,
        base: Scope<'_>,
        adaptive: &mut bool,
        hedged: &mut bool,
    ) -> (Ended, Option<Ended>) {
        let deadline = self.ctx.started + self.model.policy.request_timeout;
        let dep = lease.deployment().clone();
        let kind = if self.inspected.stream {
            LatencyKind::FirstContent
        } else {
            LatencyKind::Answer
        };
        let Some(p95) = dep.latency_p95(kind) else {
            let scope = Scope { tried, ..base };
            let a = self.attempt(lease, body, deadline, scope, adaptive).await;
            return ((dep, place, a), None);
        };
        let fire = (Instant::now() + p95).min(deadline);
        // The hedged attempt's view of what was tried: `tried` grows with
        // the hedge while it runs.
        let mine = tried.clone();
        let mut adaptive_b = *adaptive;
        let (a, second) = {
            let first = self.attempt(
                lease,
                body,
                deadline,
                Scope {
                    tried: &mine,
                    ..base
                },
                adaptive,
            );
            tokio::pin!(first);
            tokio::select! {
                a = &mut first => return ((dep, place, a), None),
                () = sleep_until(fire) => {}
            }
            let (lease_b, place_b, body_b) = match self.hedge_lease(tried, base, deadline) {
                Hedge::Nowhere => return ((dep, place, first.await), None),
                Hedge::Refused => {
                    *hedged = true;
                    return ((dep, place, first.await), None);
                }
                Hedge::Lease(lease_b, place_b, body_b) => (lease_b, place_b, body_b),
            };
            *hedged = true;
            let dep_b = lease_b.deployment().clone();
            tracing::debug!(message = "Hedging a slow attempt.", request_id = ?self.ctx.id, deployment = %dep.id, hedge = %dep_b.id, p95_ms = p95.as_millis() as u64);
            tried.push(dep_b.clone());
            let attempts = tried.len();
            let theirs = tried.clone();
            let second = self.attempt(
                lease_b,
                body_b,
                deadline,
                Scope {
                    tried: &theirs,
                    up_to_tier: None,
                    ..base
                },
                &mut adaptive_b,
            );
            tokio::pin!(second);
            // Only a 2xx wins; any other end of one side waits for the
            // other's.
            let (mut a_end, mut b_end) = (None, None);
            loop {
                tokio::select! {
                    a = &mut first, if a_end.is_none() => {
                        if let Attempted::Answer(resp) = a {
                            self.metrics.hedge(&self.model.name, "lost");
                            return ((dep, place, Attempted::Answer(counted(resp, attempts))), None);
                        }
                        a_end = Some(a);
                    }
                    b = &mut second, if b_end.is_none() => {
                        if let Attempted::Answer(resp) = b {
                            self.metrics.hedge(&self.model.name, "won");
                            return ((dep_b, place_b, Attempted::Answer(counted(resp, attempts))), None);
                        }
                        b_end = Some(b);
                    }
                }
                match (a_end.take(), b_end.take()) {
                    (Some(a), Some(b)) => break (a, (dep_b, place_b, b)),
                    (a, b) => (a_end, b_end) = (a, b),
                }
            }
        };
        // Neither answered 2xx: the hedge did not answer. An error answer
        // that ends the request counts both attempts too.
        self.metrics.hedge(&self.model.name, "lost");
        *adaptive &= adaptive_b;
        let (dep_b, place_b, b) = second;
        let attempts = tried.len();
        (
            (dep, place, held(a, attempts)),
            Some((dep_b, place_b, held(b, attempts))),
        )
    }

    /// The hedge's reservation and its body, when one is due now, with
    /// both budgets' tokens taken. A deployment whose protocol cannot take
    /// the request is skipped before any token is taken (its lease ends
    /// neutral, it is no attempt), and the pick is made again without its
    /// protocol.
    fn hedge_lease(&self, tried: &[Arc<Deployment>], base: Scope<'_>, deadline: Instant) -> Hedge {
        let Some(hedges) = self.model.hedge_budget.as_ref() else {
            return Hedge::Nowhere;
        };
        if Instant::now() >= deadline {
            return Hedge::Nowhere;
        }
        if !(hedges.can_withdraw() && self.model.budget.can_withdraw()) {
            self.metrics.hedge(&self.model.name, "refused_budget");
            return Hedge::Refused;
        }
        // Deployments found ineligible while looking for the hedge's: the
        // request's own, then each one skipped here.
        let mut ineligible: Vec<Arc<Deployment>> = base.ineligible.to_vec();
        let (lease, place, body) = loop {
            let scope = Scope {
                tried,
                up_to_tier: None,
                ineligible: &ineligible,
                ..base
            };
            let Pick::Lease {
                lease,
                retry_of_tried: false,
                place,
            } = pick(&self.model, scope)
            else {
                // Nothing untried with a free slot (a lease of a tried
                // deployment is given back here, neutral).
                return Hedge::Nowhere;
            };
            match self.convert(lease.deployment()) {
                Ok(body) => break (lease, place, body),
                Err(f) => {
                    ineligible.push(lease.deployment().clone());
                    tracing::debug!(message = "Hedge deployment ineligible.", request_id = ?self.ctx.id, deployment = %f.deployment, error = %f.message);
                }
            }
        };
        if !take_both(hedges, &self.model.budget) {
            self.metrics.hedge(&self.model.name, "refused_budget");
            return Hedge::Refused;
        }
        Hedge::Lease(lease, place, body)
    }
}

/// Takes a token of the hedge budget and one of the retry budget, or
/// neither: `can_withdraw` was checked before the pick, but concurrent
/// requests may have spent either since.
fn take_both(hedges: &RetryBudget, retries: &RetryBudget) -> bool {
    if !retries.withdraw() {
        return false;
    }
    if hedges.withdraw() {
        return true;
    }
    retries.give_back();
    false
}

/// What [`Call::hedge_lease`] found.
enum Hedge {
    /// The deadline passed, or no untried deployment that can take the
    /// request has a free slot: nothing counted, a later attempt of the
    /// request may still hedge.
    Nowhere,
    /// A budget refused it (counted).
    Refused,
    /// The hedge's reservation, its place, and its body in its
    /// deployment's protocol.
    Lease(Lease, Place, Bytes),
}

/// An end of a race that neither side won: an error answer counts both
/// attempts in `x-lifeline-attempts`, as a winner's does.
fn held(ended: Attempted, attempts: usize) -> Attempted {
    match ended {
        Attempted::Error(resp) => Attempted::Error(counted(resp, attempts)),
        other => other,
    }
}

/// The winner's answer, with `x-lifeline-attempts` counting both attempts.
fn counted(
    mut resp: http::Response<crate::body::ProxyBody>,
    attempts: usize,
) -> http::Response<crate::body::ProxyBody> {
    resp.headers_mut()
        .insert(X_LIFELINE_ATTEMPTS, HeaderValue::from(attempts));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hedge_takes_both_tokens_or_neither() {
        // The retry budget is spent: the hedge token stays.
        let hedges = RetryBudget::new(0.5, 0);
        let retries = RetryBudget::new(0.0, 0);
        hedges.deposit();
        hedges.deposit();
        assert!(!take_both(&hedges, &retries));
        assert!(hedges.withdraw(), "the hedge token was given back");
        assert!(!hedges.withdraw());
        // The hedge budget is spent: the retry token stays.
        let retries = RetryBudget::new(0.5, 0);
        retries.deposit();
        retries.deposit();
        assert!(!take_both(&hedges, &retries));
        assert!(retries.withdraw(), "the retry token was given back");
        // Both have one: both are taken.
        let (hedges, retries) = (RetryBudget::new(1.0, 0), RetryBudget::new(1.0, 0));
        hedges.deposit();
        retries.deposit();
        assert!(take_both(&hedges, &retries));
        assert!(!hedges.can_withdraw() && !retries.can_withdraw());
    }
}
