//! The stored shapes, after Atlassian Statuspage's `incident`,
//! `incident_update` and `scheduled_maintenance` (same enumerations, same
//! spellings). Timestamps are unix milliseconds, UTC.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Defines a string enumeration: serde names, `as_str` and parsing from the
/// database's text.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The spelling used in Statuspage's JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        concat!(stringify!($name), " {:?}"),
                        other
                    ))),
                }
            }
        }
    };
}

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
    /// When it last changed (unix ms).
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
