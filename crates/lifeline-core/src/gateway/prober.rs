//! The prober task: probes open and idle deployments.
//!
//! One task wakes every `probe_interval`, asks each deployment whether a
//! probe is due ([`Deployment::start_probe`]) and runs the due ones
//! concurrently, each bounded by `probe_timeout`. A probe of the same
//! deployment already running (a request waiting on a slow answer started
//! it) is joined rather than repeated, but a finished one is reused only if
//! it started in this round, and no probe's result is recorded twice
//! ([`Deployment::probe_since`]): the follow-up of a failed idle probe comes
//! one round later, and counting the same failure again would open the
//! deployment after one failed probe. A result whose probe began before the
//! breaker's last transition is stale and changes nothing (the breaker's
//! probe epoch). What a probe sends is the provider's business
//! ([`crate::providers::probe`]); what its result means is the breaker's
//! ([`crate::health`]).
//!
//! Each round also closes every deployment's early-warning window when it
//! is due ([`Deployment::early_warning_tick`]), so that drift is judged
//! off the request path, and even while a demoted deployment gets no
//! traffic.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Gateway;
use crate::providers::HttpClient;
use crate::route::Deployment;

/// Runs one round: starts every due probe; returns how many were started.
pub fn round(
    client: &HttpClient,
    deployments: &[Arc<Deployment>],
    limit: Duration,
    tracker: &tokio_util::task::TaskTracker,
) -> usize {
    let now = Instant::now();
    let mut started = 0;
    for dep in deployments {
        dep.early_warning_tick(now);
        if dep.start_probe(now) {
            started += 1;
            let (client, dep) = (client.clone(), dep.clone());
            tracker.spawn(async move {
                let (ok, began) = dep.probe_since(&client, limit, now).await;
                tracing::debug!(message = "Probe finished.", deployment = %dep.id, ok);
                dep.sli().probe(ok);
                dep.probe_result(ok, began);
            });
        }
    }
    started
}

impl Gateway {
    pub(super) fn spawn_prober(&self) {
        let gw = self.clone();
        self.inner.tracker.spawn(async move {
            loop {
                let live = gw.live();
                let interval = live.config.health.probe_interval;
                let limit = live.config.health.probe_timeout;
                if let Ok(client) = gw.client(Duration::from_secs(2)) {
                    round(&client, &live.deployments, limit, &gw.inner.tracker);
                }
                tokio::select! {
                    () = gw.inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
    }
}
