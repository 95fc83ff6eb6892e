//! The health feed: a snapshot of every deployment, then the changes.
//!
//! [`Gateway::subscribe`] returns a [`HealthFeed`]. Its first item is a
//! [`HealthSnapshot`] (every deployment in use: id, provider, model, breaker
//! state, drain, early-warning demotion, and since when); every later item
//! is a [`HealthEvent`] (a breaker transition, a drain, an early-warning
//! demotion or promotion, a deployment a reload added, rebuilt or
//! removed), each with its wall-clock time. Events carry
//! new values, not differences, so applying them to the snapshot in order
//! keeps an exact copy of the gateway's view.
//!
//! A subscriber that falls more than [`crate::health::CAPACITY`] events
//! behind gets a fresh snapshot next instead of the events it missed, and
//! the events after it: it never silently misses a change. The feed ends
//! when the gateway is closed.

use std::sync::Weak;
use std::time::SystemTime;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::{Gateway, Inner};
use crate::health::{DeploymentStatus, HealthEvent};

/// Every deployment in use at one moment.
#[derive(Debug, Clone)]
pub struct HealthSnapshot {
    /// Sequence number of the last event this snapshot already reflects;
    /// later events are newer than it.
    pub seq: u64,
    /// Wall-clock time it was taken.
    pub at: SystemTime,
    /// In config order.
    pub deployments: Vec<DeploymentStatus>,
}

/// One item of a [`HealthFeed`].
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// The whole picture: first, and again after the subscriber fell behind.
    Snapshot(HealthSnapshot),
    /// One change since the last item.
    Event(HealthEvent),
}

/// A subscription to the gateway's health: a snapshot, then the changes.
pub struct HealthFeed {
    gateway: Weak<Inner>,
    shutdown: CancellationToken,
    rx: broadcast::Receiver<HealthEvent>,
    /// The snapshot to hand out next (taken at subscription).
    pending: Option<HealthSnapshot>,
    /// Sequence number of the last event reflected in what was handed out.
    seen: u64,
}

impl std::fmt::Debug for HealthFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthFeed")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Subscribes to the deployments' health: the feed yields a snapshot of
    /// every deployment first, then each change as it happens.
    pub fn subscribe(&self) -> HealthFeed {
        let (rx, snapshot) = self.health_snapshot();
        HealthFeed {
            gateway: std::sync::Arc::downgrade(&self.inner),
            shutdown: self.inner.shutdown.clone(),
            rx,
            seen: snapshot.seq,
            pending: Some(snapshot),
        }
    }

    /// A receiver of every event after the snapshot, and the snapshot.
    fn health_snapshot(&self) -> (broadcast::Receiver<HealthEvent>, HealthSnapshot) {
        // Subscribe first, then read: a change made after the subscription
        // point is both (maybe) in the snapshot and in the receiver, which is
        // harmless since events carry new values; none can be in neither.
        let (rx, seq) = self.inner.events.subscribe();
        let deployments = self.live().deployments.iter().map(|d| d.status()).collect();
        let snapshot = HealthSnapshot {
            seq,
            at: SystemTime::now(),
            deployments,
        };
        (rx, snapshot)
    }
}

impl HealthFeed {
    /// The next item; `None` once the gateway is closed.
    pub async fn next(&mut self) -> Option<FeedItem> {
        if let Some(s) = self.pending.take() {
            return Some(FeedItem::Snapshot(s));
        }
        let received = tokio::select! {
            () = self.shutdown.cancelled() => return None,
            r = self.rx.recv() => r,
        };
        match received {
            Ok(e) => {
                self.seen = e.seq;
                Some(FeedItem::Event(e))
            }
            Err(RecvError::Lagged(missed)) => {
                let gw = Gateway {
                    inner: self.gateway.upgrade()?,
                };
                tracing::debug!(
                    message = "Health subscriber fell behind; sending a fresh snapshot.",
                    missed
                );
                let (rx, snapshot) = gw.health_snapshot();
                self.rx = rx;
                self.seen = snapshot.seq;
                Some(FeedItem::Snapshot(snapshot))
            }
            Err(RecvError::Closed) => None,
        }
    }
}
