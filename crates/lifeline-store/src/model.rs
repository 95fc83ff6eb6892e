//! The stored shapes, after Atlassian Statuspage's `incident`,
//! `incident_update` and `scheduled_maintenance` (same enumerations, same
//! spellings). Timestamps are unix milliseconds, UTC.

use serde::{Deserialize, Serialize};

string_enum! {
    /// An incident's (and an update's) status.
    IncidentStatus {
        /// Being looked at; cause unknown.
        Investigating = "investigating",
        /// The cause is known.
        Identified = "identified",
        /// A fix is in place and being watched.
        Monitoring = "monitoring",
        /// Over.
        Resolved = "resolved",
        /// Over, and a postmortem has been written.
        Postmortem = "postmortem",
    }
}

impl IncidentStatus {
    /// Investigating, identified or monitoring (Statuspage's "unresolved").
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Investigating | Self::Identified | Self::Monitoring
        )
    }
}

string_enum! {
    /// How bad an incident (or a maintenance) is.
    Impact {
        /// No visible impact.
        None = "none",
        /// Minor.
        Minor = "minor",
        /// Major.
        Major = "major",
        /// Critical.
        Critical = "critical",
    }
}

string_enum! {
    /// A scheduled maintenance's status.
    MaintenanceStatus {
        /// Announced, not started.
        Scheduled = "scheduled",
        /// The window is open.
        InProgress = "in_progress",
        /// The work is done and being checked (Statuspage's fourth value).
        Verifying = "verifying",
        /// Over.
        Completed = "completed",
    }
}

impl MaintenanceStatus {
    /// Position in the window's life (scheduled 0, in progress 1,
    /// verifying 2, completed 3): a window only ever moves forward.
    pub fn rank(self) -> u8 {
        match self {
            Self::Scheduled => 0,
            Self::InProgress => 1,
            Self::Verifying => 2,
            Self::Completed => 3,
        }
    }
}

/// An incident, without its updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Store-assigned id.
    pub id: i64,
    /// The title.
    pub name: String,
    /// The status of its latest update.
    pub status: IncidentStatus,
    /// How bad it is.
    pub impact: Impact,
    /// When it was opened (unix ms).
    pub created_at: i64,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// When it was resolved (unix ms); `None` while open.
    pub resolved_at: Option<i64>,
    /// Ids of the affected components, sorted.
    pub components: Vec<String>,
    /// Opened by Lifeline itself rather than an operator.
    pub automatic: bool,
    /// Held for an operator to publish.
    pub draft: bool,
    /// The cause class ("provider_errors", "rate_limited", "timeouts", ...),
    /// which restoration-time estimates pool by; free text to the store.
    pub cause: Option<String>,
    /// An operator's override of the restoration estimate: when the
    /// incident is expected to be resolved (unix ms). `None`: no override,
    /// the page shows the estimate computed from history.
    pub expected_resolved_at: Option<i64>,
}

impl Incident {
    /// Open, and not changed after `at_ms`: a write decided at `at_ms` may
    /// still go in ([`crate::Store::add_update_if_current`]).
    pub fn is_current(&self, at_ms: i64) -> bool {
        self.status.is_open() && self.updated_at <= at_ms
    }
}

/// One entry in an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    /// Store-assigned id.
    pub id: i64,
    /// The incident it belongs to.
    pub incident_id: i64,
    /// The status the incident moved to with this update.
    pub status: IncidentStatus,
    /// The text (Markdown subset; escaping is the renderer's job).
    pub body: String,
    /// When it was posted (unix ms).
    pub created_at: i64,
}

/// An incident with its updates, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentWithUpdates {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Its timeline, oldest first.
    pub incident_updates: Vec<IncidentUpdate>,
}

/// What [`Store::create_incident`](crate::Store::create_incident) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    /// The title.
    pub name: String,
    /// The opening status (usually investigating).
    pub status: IncidentStatus,
    /// How bad it is.
    pub impact: Impact,
    /// The first update's text.
    pub body: String,
    /// Ids of the affected components.
    pub components: Vec<String>,
    /// Opened by Lifeline itself.
    pub automatic: bool,
    /// Held for an operator to publish.
    pub draft: bool,
    /// The cause class, if known.
    pub cause: Option<String>,
    /// When it was opened (unix ms).
    pub at_ms: i64,
}

/// A change to an incident's fields other than its status (which moves only
/// with an update, [`Store::add_update`](crate::Store::add_update)). Every
/// `None` leaves the field as it is; see
/// [`Store::edit_incident`](crate::Store::edit_incident).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentEdit {
    /// A new title.
    pub name: Option<String>,
    /// A new impact.
    pub impact: Option<Impact>,
    /// The new set of affected component ids (replaces the old set).
    pub components: Option<Vec<String>>,
    /// A new cause class (`Some(None)` clears it).
    pub cause: Option<Option<String>>,
    /// `Some(false)` publishes a draft; `Some(true)` holds it back again.
    pub draft: Option<bool>,
    /// The operator's restoration override (`Some(None)` removes it).
    pub expected_resolved_at: Option<Option<i64>>,
}

/// A component the status side has seen, as the registry remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownComponent {
    /// Its id (the status side's, stable across restarts).
    pub id: String,
    /// Its display name, as last seen.
    pub name: String,
    /// When it was first seen (unix ms): Statuspage's `created_at`.
    pub created_at: i64,
}

/// A scheduled maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledMaintenance {
    /// Store-assigned id.
    pub id: i64,
    /// The title.
    pub name: String,
    /// Where the window stands.
    pub status: MaintenanceStatus,
    /// When it starts (unix ms).
    pub scheduled_for: i64,
    /// When it ends (unix ms).
    pub scheduled_until: i64,
    /// Ids of the affected components, sorted.
    pub components: Vec<String>,
    /// The announcement's text.
    pub body: String,
    /// When it was scheduled (unix ms).
    pub created_at: i64,
    /// When it last changed (unix ms). Only the status changes after
    /// scheduling, so for a completed window this is when it completed.
    pub updated_at: i64,
}

/// What [`Store::create_maintenance`](crate::Store::create_maintenance) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaintenance {
    /// The title.
    pub name: String,
    /// When it starts (unix ms).
    pub scheduled_for: i64,
    /// When it ends (unix ms); after `scheduled_for`.
    pub scheduled_until: i64,
    /// Ids of the affected components.
    pub components: Vec<String>,
    /// The announcement's text.
    pub body: String,
    /// When it was scheduled (unix ms).
    pub at_ms: i64,
}
