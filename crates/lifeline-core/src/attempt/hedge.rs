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
//!    deployment it hedges.
//! 4. The first of the two to commit (a whole answer read, a stream's first
//!    content) is the client's answer; the other is dropped at once: its
//!    upstream request is cancelled and its lease ends neutral
//!    ([`crate::route::Lease`]'s drop), since being slower is not a
//!    failure. `won`: the hedge answered; `lost`: the hedged attempt did.
//! 5. If one fails meanwhile, the other simply goes on as the request's
//!    next attempt (it was already counted as one); if both fail, the
//!    attempt loop goes on after both failures.
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
            let (lease_b, place_b) = match self.hedge_lease(tried, base, deadline) {
                Hedge::Nowhere => return ((dep, place, first.await), None),
                Hedge::Refused => {
                    *hedged = true;
                    return ((dep, place, first.await), None);
                }
                Hedge::Lease(lease_b, place_b) => (lease_b, place_b),
            };
            // The hedge's body in its deployment's protocol; one that cannot
            // take the request is no hedge (the lease ends neutral).
            let Ok(body_b) = self.convert(lease_b.deployment()) else {
                drop(lease_b);
                return ((dep, place, first.await), None);
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
        // Both failed: the hedge did not answer.
        self.metrics.hedge(&self.model.name, "lost");
        *adaptive &= adaptive_b;
        ((dep, place, a), Some(second))
    }

    /// The hedge's reservation, when one is due now, with both budgets'
    /// tokens taken.
    fn hedge_lease(&self, tried: &[Arc<Deployment>], base: Scope<'_>, deadline: Instant) -> Hedge {
        let Some(hedges) = self.model.hedge_budget.as_ref() else {
            return Hedge::Nowhere;
        };
        if Instant::now() >= deadline {
            return Hedge::Nowhere;
        }
        let scope = Scope {
            tried,
            up_to_tier: None,
            ..base
        };
        if !(hedges.can_withdraw() && self.model.budget.can_withdraw()) {
            self.metrics.hedge(&self.model.name, "refused_budget");
            return Hedge::Refused;
        }
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
        if !(hedges.withdraw() && self.model.budget.withdraw()) {
            self.metrics.hedge(&self.model.name, "refused_budget");
            return Hedge::Refused;
        }
        Hedge::Lease(lease, place)
    }
}

/// What [`Call::hedge_lease`] found.
enum Hedge {
    /// The deadline passed, or no untried deployment has a free slot:
    /// nothing counted, a later attempt of the request may still hedge.
    Nowhere,
    /// A budget refused it (counted).
    Refused,
    /// The hedge's reservation and its place.
    Lease(Lease, Place),
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
