//! Health events: what changed in a deployment's health and when, on one
//! broadcast channel for whoever watches (the status page to come).
//!
//! An event says *what a field is now*, not by how much it changed: a breaker
//! transition carries the new state, a drain the new flag, an early warning
//! whether the deployment is demoted now, a deployment added or rebuilt by
//! a reload its whole [`DeploymentStatus`], a quota warning whether the
//! provider is under one. Applying an event
//! twice, or one a snapshot already reflects, therefore changes nothing.
//!
//! Every event has a sequence number, assigned in the order events enter the
//! channel. [`HealthBus::subscribe`] returns the sequence number of the last
//! event published before the subscription: everything up to it has already
//! happened (the state a snapshot then reads reflects it), everything after
//! it reaches the new receiver. Snapshots are assembled from the deployments
//! by the gateway (`HealthFeed`), which this module does not know.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::BreakerState;

/// How many events a subscriber may fall behind before it lags (and gets a
/// fresh snapshot instead of the events it missed).
pub const CAPACITY: usize = 1024;

/// One deployment's health as a status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// `provider/model`.
    pub id: Arc<str>,
    /// Provider name.
    pub provider: Arc<str>,
    /// Upstream model.
    pub model: String,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Drained by an operator.
    pub drained: bool,
    /// Demoted by early warning: drifting out of its normal band, it gets
    /// a smaller share of traffic ([`super::drift`]).
    pub demoted: bool,
    /// Wall-clock time of the last change of `breaker` or `drained` (or of
    /// the deployment's creation, if neither changed since).
    pub since: SystemTime,
}

/// What changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The breaker moved from one state to another.
    Breaker {
        /// State before.
        from: BreakerState,
        /// State after.
        to: BreakerState,
        /// Why, in a few words ("failure rate 0.60 over 10 attempts", "probe succeeded").
        reason: String,
    },
    /// An operator drained or undrained the deployment.
    Drain {
        /// Drained now.
        drained: bool,
    },
    /// Early warning demoted the deployment (its share of traffic falls
    /// while it drifts out of its normal band) or promoted it back to its
    /// full share.
    EarlyWarning {
        /// Demoted now; `false`: promoted back.
        demoted: bool,
        /// The signal that drifted: `latency`, `first_token`,
        /// `error_ratio` or `rate_limited_ratio`.
        signal: &'static str,
        /// What was measured ("latency 180 ms against a baseline of 52 ms
        /// (6.1 spreads, trend 8.0)").
        reason: String,
    },
    /// A reload added the deployment.
    Added(DeploymentStatus),
    /// A reload replaced the deployment with a new one (its provider's or
    /// the health settings changed): its breaker and window start afresh.
    Rebuilt(DeploymentStatus),
    /// A reload removed the deployment.
    Removed,
    /// Its provider's quota forecast ([`super::quota`]) started a warning
    /// (the trend reaches the provider's `rpm` or `tpm` within the
    /// horizon, and traffic is being steered away) or ended one. Published
    /// for each deployment of the provider, on the change only.
    Quota {
        /// Under warning now.
        warning: bool,
        /// The quota nearest to being reached: `requests` or `tokens`.
        kind: &'static str,
        /// Its rate now, per minute.
        rate: u64,
        /// The quota, per minute.
        quota: u64,
        /// Seconds until the trend reaches the quota; `None`: it does not.
        seconds_to_quota: Option<u64>,
        /// The balancer's steering factor for the provider's deployments.
        factor: f64,
    },
}

/// One change of one deployment.
#[derive(Debug, Clone)]
pub struct HealthEvent {
    /// Position in the channel's order, from 1.
    pub seq: u64,
    /// Wall-clock time of the change.
    pub at: SystemTime,
    /// Deployment id, `provider/model`.
    pub deployment: Arc<str>,
    /// What changed.
    pub change: Change,
}

impl HealthEvent {
    /// `(from, to, reason)` when this is a breaker transition.
    pub fn breaker(&self) -> Option<(BreakerState, BreakerState, &str)> {
        match &self.change {
            Change::Breaker { from, to, reason } => Some((*from, *to, reason)),
            _ => None,
        }
    }
}

/// The channel every deployment publishes its events on.
#[derive(Debug)]
pub struct HealthBus {
    tx: broadcast::Sender<HealthEvent>,
    /// The last sequence number handed out; held while sending so that
    /// sequence numbers enter the channel in order.
    seq: Mutex<u64>,
}

impl Default for HealthBus {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl HealthBus {
    /// A bus whose subscribers may fall `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
            seq: Mutex::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // The guarded value is a plain counter: a poisoned lock is still usable.
        self.seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a change that has already taken effect.
    pub fn publish(&self, deployment: Arc<str>, change: Change) {
        let mut seq = self.lock();
        *seq += 1;
        // No subscriber is fine: the send result only says whether anyone listens.
        let _ = self.tx.send(HealthEvent {
            seq: *seq,
            at: SystemTime::now(),
            deployment,
            change,
        });
    }

    /// A receiver of every later event, and the sequence number of the last
    /// event published before it.
    pub fn subscribe(&self) -> (broadcast::Receiver<HealthEvent>, u64) {
        let seq = self.lock();
        (self.tx.subscribe(), *seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sequence_numbers_follow_the_channel_order_and_the_subscription_point() {
        let bus = HealthBus::new(8);
        bus.publish("a/x".into(), Change::Drain { drained: true });
        let (mut rx, seen) = bus.subscribe();
        assert_eq!(seen, 1);
        bus.publish("a/x".into(), Change::Drain { drained: false });
        bus.publish("a/x".into(), Change::Removed);
        let first = rx.try_recv().unwrap_or_else(|e| panic!("{e}"));
        let second = rx.try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.seq, second.seq), (2, 3));
        assert_eq!(first.change, Change::Drain { drained: false });
        assert!(first.breaker().is_none());
    }
}
