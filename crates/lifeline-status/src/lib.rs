//! Lifeline's status side: what the status page knows and shows.
//!
//! This crate sits beside the request path, never in it: it does not depend
//! on `lifeline-core`. What it learns of traffic and health reaches it as
//! plain values ([`sli::Minute`], deployment states) from the binary, which
//! connects the two.
//!
//! - [`admin`]: the admin API's incident, maintenance, webhook, key and
//!   audit-log routes.
//! - [`keys`]: creating virtual client keys (shared by the CLI and the API).
//! - [`page`]: the in-memory page snapshot every renderer reads.
//! - [`sli`]: per-minute service-level indicators per component.
//! - [`render`]: the renderers (Statuspage JSON, HTML in three languages,
//!   feeds, badges, static export) and the router over their bytes.
//! - [`engine`]: the status engine, pure and driven by an explicit clock:
//!   component statuses from traffic (thresholds, burn-rate alerts,
//!   hysteresis), SLO budgets, uptime history, automatic incidents,
//!   maintenance on time, notifications, and the [`page::Page`] it builds.
//! - [`eta`]: estimated restoration time of an open incident from past
//!   incidents (Kaplan–Meier over right-censored history, pooled from narrow
//!   to broad), and the sentence the page shows for it.
//! - [`upstream`]: the providers' own status pages (Statuspage, incident.io,
//!   Atom/RSS), polled as evidence, archived as history for estimates.
//! - [`webhook`]: subscribers' notifications (Statuspage envelope, Slack,
//!   Discord), signed, delivered with retries from an outbox.

pub mod admin;
pub mod engine;
pub mod eta;
pub mod keys;
pub mod page;
pub mod render;
pub mod upstream;
pub mod webhook;

/// Per-minute service-level indicators per component (the shape the store
/// keeps; see [`lifeline_store::sli`]).
pub use lifeline_store::sli;
