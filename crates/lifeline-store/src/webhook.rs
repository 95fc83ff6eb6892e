//! Webhook subscriptions and the durable delivery outbox.
//!
//! A notification is first written to the outbox ([`WebhookStore::enqueue`]),
//! one delivery per matching subscription, and only then sent. The sender
//! asks for what is due ([`WebhookStore::due`]), posts it, and records each
//! attempt ([`WebhookStore::record_attempt`]): delivered, retry at a later
//! time, or given up. A delivery stays in the outbox across restarts until
//! it is delivered or given up, so a crash or a receiver that is down loses
//! nothing; the outbox rows double as the delivery log.
//!
//! One sender runs per store (the status side's): `due` does not lease rows.
//!
//! [`WebhookStore::enqueue`]: crate::WebhookStore::enqueue
//! [`WebhookStore::due`]: crate::WebhookStore::due
//! [`WebhookStore::record_attempt`]: crate::WebhookStore::record_attempt

use std::fmt;

use serde::{Deserialize, Serialize};

string_enum! {
    /// The payload shape a subscriber receives.
    WebhookFormat {
        /// Statuspage's webhook envelope (`meta`, `page`, `incident` or
        /// `component_update`).
        Statuspage = "statuspage",
        /// A Slack incoming-webhook message.
        Slack = "slack",
        /// A Discord incoming-webhook message.
        Discord = "discord",
    }
}

/// What [`WebhookStore::create_subscription`](crate::WebhookStore::create_subscription) needs.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Where to POST.
    pub url: String,
    /// The payload shape.
    pub format: WebhookFormat,
    /// The key for the HMAC-SHA256 signature over each body (empty: the
    /// sender sends unsigned). Stored as given (it must be kept to sign);
    /// never listed, never logged.
    pub secret: String,
    /// Component ids the subscriber wants; empty means all.
    pub components: Vec<String>,
    /// When it was created (unix ms).
    pub at_ms: i64,
}

impl fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSubscription")
            .field("url", &self.url)
            .field("format", &self.format)
            .field("secret", &"<redacted>")
            .field("components", &self.components)
            .field("at_ms", &self.at_ms)
            .finish()
    }
}

/// A subscription as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Store-assigned id.
    pub id: i64,
    /// Where to POST.
    pub url: String,
    /// The payload shape.
    pub format: WebhookFormat,
    /// Component ids the subscriber wants, sorted; empty means all.
    pub components: Vec<String>,
    /// When it was created (unix ms).
    pub created_at: i64,
}

impl Subscription {
    /// Whether a notification about `components` goes to this subscriber:
    /// it wants everything, or at least one of them. A notification that
    /// names no component (a page-wide one) goes to everyone.
    pub fn wants<S: AsRef<str>>(&self, components: &[S]) -> bool {
        self.components.is_empty()
            || components.is_empty()
            || components
                .iter()
                .any(|c| self.components.iter().any(|mine| mine == c.as_ref()))
    }
}

/// One notification to put in the outbox for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The subscription it goes to.
    pub subscription_id: i64,
    /// What happened: "incident.created", "incident.updated",
    /// "incident.resolved", "maintenance.started", "maintenance.completed"
    /// or "component.updated".
    pub event: String,
    /// The exact body to POST (already in the subscription's format); the
    /// signature is computed over these bytes.
    pub body: String,
    /// When it was enqueued (unix ms).
    pub created_at: i64,
    /// When to make the first attempt (unix ms), usually `created_at`.
    pub next_attempt_at: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// The sender stopped retrying.
    GaveUp,
}

/// A delivery in the outbox, as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Store-assigned id.
    pub id: i64,
    /// The subscription it goes to.
    pub subscription_id: i64,
    /// What happened (see [`NewDelivery::event`]).
    pub event: String,
    /// The body to POST.
    pub body: String,
    /// When it was enqueued (unix ms).
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// When the next attempt is due (unix ms); `None` once final.
    pub next_attempt_at: Option<i64>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<i64>,
    /// The HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did without an answer (connect
    /// error, timeout) or with a non-2xx one.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<i64>,
    /// When the sender gave up on it.
    pub gave_up_at: Option<i64>,
}

/// A due delivery with what the sender needs to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Where to POST.
    pub url: String,
    /// The payload shape (for the content type and headers).
    pub format: WebhookFormat,
    /// The subscription's signing key.
    pub secret: String,
}

impl fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DueDelivery")
            .field("delivery", &self.delivery)
            .field("url", &self.url)
            .field("format", &self.format)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What the sender decided after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx: done.
    Delivered,
    /// Failed; try again at this time (unix ms).
    RetryAt(i64),
    /// Failed, and no more attempts will be made.
    GaveUp,
}

/// One attempt's result, for [`WebhookStore::record_attempt`](crate::WebhookStore::record_attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// When the attempt was made (unix ms).
    pub at_ms: i64,
    /// The HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// The error, if it failed (no answer, or a non-2xx answer).
    pub error: Option<String>,
    /// What happens next.
    pub outcome: AttemptOutcome,
}
