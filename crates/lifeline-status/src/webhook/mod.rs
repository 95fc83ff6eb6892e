//! Webhook subscriptions: notifications of incidents, maintenance and
//! component changes, POSTed to subscribers, signed, retried, logged.
//!
//! - [`payload`]: the [`Event`] (its kind names the delivery:
//!   `incident.created`, `maintenance.started`, `component.updated`, ...)
//!   and Statuspage's webhook envelope (`meta`, `page`, `incident` or
//!   `component` + `component_update`), whose incident and component
//!   objects are the `/api/v2` renderer's ([`crate::render::json`]).
//! - [`chat`]: Slack- and Discord-compatible incoming-webhook bodies, with
//!   untrusted text escaped for each.
//! - [`sign`]: `X-Lifeline-Signature: sha256=…`, an HMAC-SHA256 over
//!   `"{timestamp}.{body}"`, and how a receiver verifies it.
//! - [`deliver`]: [`enqueue`] (one delivery per interested subscription,
//!   scoped by component) and the [`Worker`] that POSTs with a 30 s timeout,
//!   retries with exponential backoff and jitter, and gives up after 24 h.
//!
//! Subscriptions, the outbox and the delivery log are the store's
//! ([`lifeline_store::WebhookStore`], types in [`lifeline_store::webhook`]):
//! the admin API creates subscriptions there, [`enqueue`] queues deliveries
//! there and the [`Worker`] records every attempt there.
//!
//! The flow: the status engine, on an incident opened, updated or resolved,
//! a maintenance starting or ending, or a component changing status, calls
//! [`enqueue`] with the current [`Page`](crate::page::Page) and the
//! [`Event`], then [`WorkerHandle::wake`]. The body is fixed when queued, so
//! every retry sends the same bytes; the signature is made per attempt.

pub mod chat;
pub mod deliver;
pub mod payload;
pub mod sign;

#[cfg(test)]
mod tests;

pub use deliver::{enqueue, RetryPolicy, Worker, WorkerHandle};
pub use payload::{ComponentChange, Event, IncidentChange, MaintenanceChange};
pub use sign::Secret;

/// The links in the Statuspage envelope's `meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// `meta.unsubscribe`: where a subscriber learns how to unsubscribe
    /// (Lifeline's subscriptions are managed through the admin API, so by
    /// default the page itself).
    pub unsubscribe: String,
    /// `meta.documentation`: where the webhook format and its signature are
    /// documented.
    pub documentation: String,
}

impl Links {
    /// Both links pointing at the page (`{url}/status`).
    pub fn for_page(page_url: &str) -> Self {
        let status = format!("{page_url}/status");
        Links {
            unsubscribe: status.clone(),
            documentation: status,
        }
    }
}
