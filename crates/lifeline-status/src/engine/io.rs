//! What goes in and out of the engine: a tick's input and output, the
//! events for subscribers, a built page.

use std::collections::BTreeSet;

use lifeline_store::{IncidentUpdate, IncidentWithUpdates, ScheduledMaintenance};

use super::evidence::DeploymentState;
use super::settings::Family;
use super::writer::Write;
use crate::page::{ComponentStatus, Page, ProviderReport};
use crate::sli::Minute;

/// One (family, public model)'s traffic in one closed minute.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficMinute {
    /// The API family.
    pub family: Family,
    /// The public model.
    pub model: String,
    /// Its counts; `minute.at` is the minute's start.
    pub minute: Minute,
}

/// What happened since the previous tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickInput {
    /// Now (unix ms).
    pub now_ms: i64,
    /// Minutes that closed since the previous tick (`at` before the
    /// current minute); a minute already evaluated is recorded late.
    pub traffic: Vec<TrafficMinute>,
    /// Every deployment now (one missing is gone), with its attempts since
    /// the previous tick.
    pub deployments: Vec<DeploymentState>,
    /// The providers' own reports, `None` to keep the last ones.
    pub providers: Option<Vec<ProviderReport>>,
}

/// Something subscribers are told about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A published incident appeared (opened, or a draft published).
    IncidentCreated(IncidentWithUpdates),
    /// A published incident got an update (not a resolution).
    IncidentUpdated {
        /// The incident, with all its updates.
        incident: IncidentWithUpdates,
        /// The new update.
        update: IncidentUpdate,
    },
    /// A published incident was resolved (or got its postmortem).
    IncidentResolved {
        /// The incident, with all its updates.
        incident: IncidentWithUpdates,
        /// The resolving update.
        update: IncidentUpdate,
    },
    /// A maintenance window began.
    MaintenanceStarted(ScheduledMaintenance),
    /// A maintenance window ended.
    MaintenanceCompleted(ScheduledMaintenance),
    /// A component's shown status changed.
    ComponentStatusChanged {
        /// The component's id.
        component: String,
        /// Status before.
        from: ComponentStatus,
        /// Status after.
        to: ComponentStatus,
        /// When (unix ms).
        at_ms: i64,
    },
}

/// What a tick asks the driver to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickOutput {
    /// Store writes, in order: push them to the [`Writer`](super::Writer).
    pub writes: Vec<Write>,
    /// Events for subscribers.
    pub events: Vec<Event>,
    /// Deployments that must be drained for maintenance now (the whole
    /// set: drain those new to it, undrain those that left it).
    pub drain: BTreeSet<String>,
}

/// A page built by [`Engine::build_page`](super::Engine::build_page).
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltPage {
    /// The page.
    pub page: Page,
    /// Whether anything but `generated_at` differs from the last build.
    pub changed: bool,
}
