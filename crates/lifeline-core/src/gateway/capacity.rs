//! The gateway's capacity, followed: admission's in-flight limit tracks
//! the deployments' own.
//!
//! Each deployment has an in-flight limit (adaptive, at most its
//! provider's `max_concurrency`: [`crate::concurrency`]). Their sum is what
//! the providers behind the gateway can take at once; a request admitted
//! beyond it could only wait at a deployment, where waiting is first come,
//! first served, whatever its priority. So, with `[admission]
//! follow_deployments` (the default), admission's limit is
//! `min(max_in_flight, Σ deployment limits)` (drained deployments left
//! out), recomputed every [`EVERY`]: the excess waits in admission's
//! priority queue instead, where critical goes first and batch is shed. A
//! deployment without a limit (adaptive concurrency off and no
//! `max_concurrency`) makes the sum unbounded: `max_in_flight` alone holds.
//!
//! The sum is gateway-wide, so with several models a surge on one of them
//! may fill slots that another model's deployments could have served (its
//! requests queue behind it until slots free); a per-model admission
//! queue would remove that coupling.

use std::time::Duration;

use super::Gateway;
use crate::route::Deployment;

/// How often the limit is recomputed.
pub const EVERY: Duration = Duration::from_millis(250);

/// The limit the deployments allow: the sum of their current limits, or
/// `None` when one of them has none.
pub fn deployments_limit(deployments: &[std::sync::Arc<Deployment>]) -> Option<usize> {
    let mut sum = 0usize;
    for d in deployments.iter().filter(|d| !d.is_drained()) {
        sum = sum.saturating_add(usize::try_from(d.concurrency_limit()?).unwrap_or(usize::MAX));
    }
    Some(sum)
}

impl Gateway {
    /// Sets admission's limit from the config and the deployments now.
    pub(super) fn follow_capacity(&self) {
        let live = self.live();
        let cfg = &live.config.admission;
        let limit = if cfg.follow_deployments {
            deployments_limit(&live.deployments)
                .map_or(cfg.max_in_flight, |sum| sum.min(cfg.max_in_flight))
        } else {
            cfg.max_in_flight
        };
        self.inner.admission.set_limit(limit);
    }

    pub(super) fn spawn_capacity_follower(&self) {
        let gw = self.clone();
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = gw.inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
                gw.follow_capacity();
            }
        });
    }
}
