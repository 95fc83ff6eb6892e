//! The archive of upstream providers' published incidents.
//!
//! A provider's Statuspage `incidents.json` (or incident.io's
//! v2-compatible copy) holds only its latest 50 incidents, so the status
//! side polls it and archives every incident it sees here. The archive is a
//! second source of history for restoration-time estimates, kept apart from
//! Lifeline's own incidents: a new installation has a basis from its first
//! day. Values are stored as the provider spells them (status, impact); the
//! estimate decides what they mean.

use serde::{Deserialize, Serialize};

/// One incident as a provider published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamIncident {
    /// The provider's name in Lifeline's configuration.
    pub provider: String,
    /// The provider's id for the incident (Statuspage's `id`).
    pub external_id: String,
    /// Its title.
    pub name: String,
    /// Its status, in the provider's spelling ("investigating", ...,
    /// "resolved", "postmortem").
    pub status: String,
    /// Its impact, in the provider's spelling ("none", "minor", ...);
    /// empty when the source gives none.
    pub impact: String,
    /// Names of the provider's components it affected, sorted; empty when
    /// the source does not map incidents to components.
    pub components: Vec<String>,
    /// When the provider opened it (unix ms).
    pub created_at: i64,
    /// When it started, if the source says (Statuspage's `started_at`,
    /// which may precede `created_at`).
    pub started_at: Option<i64>,
    /// When it was resolved (unix ms); `None` while open.
    pub resolved_at: Option<i64>,
    /// When the provider last changed it (unix ms).
    pub updated_at: i64,
    /// Link to it on the provider's page.
    pub shortlink: Option<String>,
}

/// An archived incident: what the provider published, and when Lifeline
/// saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedIncident {
    /// The incident as last archived.
    #[serde(flatten)]
    pub incident: UpstreamIncident,
    /// When a poll first saw it (unix ms).
    pub first_seen_at: i64,
    /// When a poll last saw it (unix ms). For an incident still open here
    /// that has dropped out of the provider's feed, its end was lost: the
    /// estimate treats it as censored at this time.
    pub last_seen_at: i64,
}
