//! What the upstream providers publish about themselves: their status pages,
//! polled, archived, and used as evidence and as history.
//!
//! - [`parse`]: Statuspage v2 JSON, incident.io's v2-compatible JSON, and
//!   Atom/RSS feeds (with a documented heuristic for an entry's status) into
//!   one [`Snapshot`].
//! - [`poll`]: a [`Poller`] task per source (interval with jitter, timeout,
//!   bounded bodies, redirects) publishing a [`Reading`] (the page's
//!   [`ProviderReport`](crate::page::ProviderReport) and more) on a `watch`
//!   channel; a failing source is "source unknown", never an outage; and
//!   [`early_warning`], whether a provider's own report should mark its
//!   deployments degraded.
//! - [`archive`]: [`archive_record`], a parsed incident as the store's
//!   archive record (the poller upserts every incident it sees into
//!   [`lifeline_store::UpstreamStore`] by provider and id, so the latest-50
//!   lists build a long history), and [`past_incidents`]: the store's
//!   archive as [`PastIncident`](crate::eta::PastIncident)s of
//!   [`Source::Upstream`](crate::eta::Source::Upstream) for restoration
//!   estimates, with [`cause_class`] deriving a cause from the title.

pub mod archive;
pub mod parse;
pub mod poll;

#[cfg(test)]
mod tests;

pub use archive::{archive_record, cause_class, eta_component, past_incidents};
pub use parse::{Snapshot, UpstreamComponent, UpstreamIncident};
pub use poll::{early_warning, Kind, Poller, Reading, SourceConfig};
