//! Where subscribers and pending deliveries live: the [`Outbox`] trait,
//! which the store implements (a subscribers table, an outbox table of
//! deliveries and a delivery log of attempts), and [`MemoryOutbox`], an
//! in-memory implementation for tests and for running without a store.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use lifeline_store::{Result, StoreError};

use super::sign::Secret;

/// Which body a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Statuspage's webhook envelope (`meta`, `page`, `incident` or
    /// `component` + `component_update`).
    Statuspage,
    /// A Slack incoming webhook (`text`, `blocks`).
    Slack,
    /// A Discord incoming webhook (`content`, `embeds`).
    Discord,
}

impl Format {
    /// The spelling in the config, the admin API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Statuspage => "statuspage",
            Format::Slack => "slack",
            Format::Discord => "discord",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "statuspage" => Ok(Format::Statuspage),
            "slack" => Ok(Format::Slack),
            "discord" => Ok(Format::Discord),
            other => Err(StoreError::Corrupt(format!("webhook format {other:?}"))),
        }
    }
}

/// A webhook subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Store-assigned id.
    pub id: i64,
    /// Where deliveries are POSTed (`http` or `https`). Chat webhook URLs
    /// carry a token: treat the URL as a secret too and never log it.
    pub url: String,
    /// Which body it receives.
    pub format: Format,
    /// Signing secret; without one, deliveries go unsigned.
    pub secret: Option<Secret>,
    /// Ids of the components it wants to hear about; empty means all.
    pub components: Vec<String>,
    /// When it subscribed (unix ms).
    pub created_at: i64,
}

impl Subscriber {
    /// Whether an event concerning `components` reaches this subscriber:
    /// an unscoped subscriber hears everything, an event naming no
    /// component (it concerns the whole page) reaches everyone, otherwise
    /// the two lists must share a component.
    pub fn wants(&self, components: &[String]) -> bool {
        self.components.is_empty()
            || components.is_empty()
            || components.iter().any(|c| self.components.contains(c))
    }
}

/// What [`Outbox::add_subscriber`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscriber {
    /// Where to POST.
    pub url: String,
    /// Which body.
    pub format: Format,
    /// Signing secret, if any.
    pub secret: Option<Secret>,
    /// Component scope; empty means all.
    pub components: Vec<String>,
    /// When (unix ms).
    pub at_ms: i64,
}

/// A notification to send to one subscriber, before it is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The subscriber.
    pub subscriber_id: i64,
    /// What it is about ([`Event::label`](super::Event::label)), for the log.
    pub event: String,
    /// The exact body to POST (JSON); every attempt sends these bytes.
    pub body: String,
    /// When it was queued (unix ms); the first attempt is due then.
    pub created_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt at `next_attempt_at`.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up after too many attempts or too long.
    Failed,
}

impl DeliveryState {
    /// The spelling in the admin API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// A queued notification for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Store-assigned id (sent as `X-Lifeline-Delivery`).
    pub id: i64,
    /// The subscriber.
    pub subscriber_id: i64,
    /// What it is about, for the log.
    pub event: String,
    /// The exact body.
    pub body: String,
    /// When it was queued (unix ms).
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// When the next attempt is due (unix ms), while pending.
    pub next_attempt_at: Option<i64>,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: i64,
    /// 1 for the first attempt.
    pub number: u32,
    /// When it was sent (unix ms).
    pub at_ms: i64,
    /// How long until the answer or the failure, milliseconds.
    pub duration_ms: i64,
    /// The answer's status code, if one came.
    pub status: Option<u16>,
    /// Why it failed without a 2xx (`status 503`, `timeout after 30s`,
    /// `connect: Connection refused`); `None` when delivered. Never contains
    /// the URL or the secret.
    pub error: Option<String>,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered: no more attempts.
    Delivered,
    /// Failed; try again at this time (unix ms).
    RetryAt(i64),
    /// Failed for the last time: give up.
    GiveUp,
}

/// The subscribers, the outbox of deliveries and the delivery log.
///
/// Implemented by the store (one transaction per method: when a method
/// returns `Ok` the change is durable) and by [`MemoryOutbox`]. Synchronous
/// like [`lifeline_store::Store`]: the delivery worker calls it from a
/// blocking thread.
pub trait Outbox: Send + Sync {
    /// Adds a subscriber.
    fn add_subscriber(&self, new: &NewSubscriber) -> Result<Subscriber>;

    /// Removes a subscriber and drops its pending deliveries (their log
    /// stays). `Ok(false)` if there was none.
    fn remove_subscriber(&self, id: i64) -> Result<bool>;

    /// All subscribers, by id.
    fn subscribers(&self) -> Result<Vec<Subscriber>>;

    /// Queues deliveries, all or none; each is pending with its first
    /// attempt due at its `created_at`.
    fn enqueue(&self, new: &[NewDelivery]) -> Result<Vec<Delivery>>;

    /// Up to `limit` pending deliveries due at `now_ms` (`next_attempt_at
    /// <= now_ms`), earliest due first, each with its subscriber. Deliveries
    /// whose subscriber is gone are not returned.
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(Delivery, Subscriber)>>;

    /// The earliest `next_attempt_at` of any pending delivery.
    fn next_due_at(&self) -> Result<Option<i64>>;

    /// Logs an attempt and moves its delivery on: `attempts` becomes
    /// `attempt.number`, and the state and next due time follow `next`.
    fn record_attempt(&self, attempt: &Attempt, next: Next) -> Result<()>;

    /// One delivery; `None` if absent.
    fn delivery(&self, id: i64) -> Result<Option<Delivery>>;

    /// The `limit` most recent deliveries, newest first (the delivery log's
    /// index for the admin API).
    fn recent_deliveries(&self, limit: usize) -> Result<Vec<Delivery>>;

    /// A delivery's attempts, oldest first.
    fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>>;
}

#[derive(Debug, Default)]
struct Inner {
    next_id: i64,
    subscribers: BTreeMap<i64, Subscriber>,
    deliveries: BTreeMap<i64, Delivery>,
    attempts: Vec<Attempt>,
}

impl Inner {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }
}

/// An [`Outbox`] in memory: for tests, and for a gateway without a store
/// (pending deliveries are then lost on restart).
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    inner: Mutex<Inner>,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl Outbox for MemoryOutbox {
    fn add_subscriber(&self, new: &NewSubscriber) -> Result<Subscriber> {
        let mut inner = self.lock()?;
        let mut components = new.components.clone();
        components.sort();
        components.dedup();
        let subscriber = Subscriber {
            id: inner.id(),
            url: new.url.clone(),
            format: new.format,
            secret: new.secret.clone(),
            components,
            created_at: new.at_ms,
        };
        inner.subscribers.insert(subscriber.id, subscriber.clone());
        Ok(subscriber)
    }

    fn remove_subscriber(&self, id: i64) -> Result<bool> {
        let mut inner = self.lock()?;
        let removed = inner.subscribers.remove(&id).is_some();
        inner
            .deliveries
            .retain(|_, d| d.subscriber_id != id || d.state != DeliveryState::Pending);
        Ok(removed)
    }

    fn subscribers(&self) -> Result<Vec<Subscriber>> {
        Ok(self.lock()?.subscribers.values().cloned().collect())
    }

    fn enqueue(&self, new: &[NewDelivery]) -> Result<Vec<Delivery>> {
        let mut inner = self.lock()?;
        if let Some(missing) = new
            .iter()
            .find(|n| !inner.subscribers.contains_key(&n.subscriber_id))
        {
            return Err(StoreError::NotFound {
                what: "subscriber",
                id: missing.subscriber_id,
            });
        }
        let mut out = Vec::with_capacity(new.len());
        for n in new {
            let delivery = Delivery {
                id: inner.id(),
                subscriber_id: n.subscriber_id,
                event: n.event.clone(),
                body: n.body.clone(),
                created_at: n.created_at,
                attempts: 0,
                state: DeliveryState::Pending,
                next_attempt_at: Some(n.created_at),
            };
            inner.deliveries.insert(delivery.id, delivery.clone());
            out.push(delivery);
        }
        Ok(out)
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<(Delivery, Subscriber)>> {
        let inner = self.lock()?;
        let mut due: Vec<(Delivery, Subscriber)> = inner
            .deliveries
            .values()
            .filter(|d| d.state == DeliveryState::Pending)
            .filter(|d| d.next_attempt_at.is_some_and(|at| at <= now_ms))
            .filter_map(|d| {
                let s = inner.subscribers.get(&d.subscriber_id)?;
                Some((d.clone(), s.clone()))
            })
            .collect();
        due.sort_by_key(|(d, _)| (d.next_attempt_at, d.id));
        due.truncate(limit);
        Ok(due)
    }

    fn next_due_at(&self) -> Result<Option<i64>> {
        Ok(self
            .lock()?
            .deliveries
            .values()
            .filter(|d| d.state == DeliveryState::Pending)
            .filter_map(|d| d.next_attempt_at)
            .min())
    }

    fn record_attempt(&self, attempt: &Attempt, next: Next) -> Result<()> {
        let mut inner = self.lock()?;
        let Some(delivery) = inner.deliveries.get_mut(&attempt.delivery_id) else {
            return Err(StoreError::NotFound {
                what: "delivery",
                id: attempt.delivery_id,
            });
        };
        delivery.attempts = attempt.number;
        (delivery.state, delivery.next_attempt_at) = match next {
            Next::Delivered => (DeliveryState::Delivered, None),
            Next::RetryAt(at) => (DeliveryState::Pending, Some(at)),
            Next::GiveUp => (DeliveryState::Failed, None),
        };
        inner.attempts.push(attempt.clone());
        Ok(())
    }

    fn delivery(&self, id: i64) -> Result<Option<Delivery>> {
        Ok(self.lock()?.deliveries.get(&id).cloned())
    }

    fn recent_deliveries(&self, limit: usize) -> Result<Vec<Delivery>> {
        Ok(self
            .lock()?
            .deliveries
            .values()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }

    fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>> {
        Ok(self
            .lock()?
            .attempts
            .iter()
            .filter(|a| a.delivery_id == delivery_id)
            .cloned()
            .collect())
    }
}
