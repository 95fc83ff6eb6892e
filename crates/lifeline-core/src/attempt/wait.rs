//! Waiting for a slot when every deployment a request may use is at its
//! in-flight limit ([`crate::balance::Pick::Saturated`]).
//!
//! No polling: the request waits on every saturated deployment at once
//! ([`Deployment::wait_for_slot`]): a lease given back wakes a waiter of
//! its deployment, a permit of a provider's `max_concurrency` goes to the
//! next in that provider's queue. Woken, the request picks again (another
//! request may have taken the slot first: it then waits again). The wait
//! is bounded by its caller: a place in the model's
//! [`crate::concurrency::WaitRoom`] and a time limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::time::{timeout_at, Instant};

use crate::balance::{saturated, Place, Scope};
use crate::route::{Deployment, Freed, Lease, Model};

/// What the wait came back with.
pub(super) enum Slot {
    /// A slot may have freed: pick again.
    Again,
    /// An attempt reserved while waiting (a provider's permit came free).
    Lease(Lease, Place),
    /// No slot before `until`.
    TimedOut,
}

type Wait = Pin<Box<dyn Future<Output = (Freed, Place)> + Send>>;

/// Waits until a slot may have freed on a saturated deployment of `model`
/// within `scope`, or `until`.
pub(super) async fn for_slot(model: &Model, scope: Scope<'_>, until: Instant) -> Slot {
    let deployments = saturated(model, scope);
    if deployments.is_empty() {
        // Freed since the pick.
        return Slot::Again;
    }
    let mut waits: Vec<Wait> = deployments
        .into_iter()
        .map(|(d, place): (Arc<Deployment>, Place)| -> Wait {
            Box::pin(async move { (d.wait_for_slot().await, place) })
        })
        .collect();
    let first = std::future::poll_fn(|cx| {
        for w in &mut waits {
            if let Poll::Ready(done) = w.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
        }
        Poll::Pending
    });
    match timeout_at(until, first).await {
        Ok((Freed::Lease(lease), place)) => Slot::Lease(lease, place),
        Ok((Freed::Again, _)) => Slot::Again,
        Err(_) => Slot::TimedOut,
    }
}
