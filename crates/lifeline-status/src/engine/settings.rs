//! What the engine is told once: the page, the components, the objectives
//! and the thresholds, with their defaults (the constants below).

use std::time::Duration;

use crate::page::ComponentStatus;

pub use crate::sli::{DAY_MS, MINUTE_MS};

/// Default availability objective.
pub const DEFAULT_AVAILABILITY: f64 = 0.999;
/// Default latency threshold (answer, or first token for streams).
pub const DEFAULT_LATENCY_THRESHOLD: Duration = Duration::from_secs(5);
/// Default latency objective: this share of answers within the threshold.
pub const DEFAULT_LATENCY_TARGET: f64 = 0.99;
/// Default SLO period.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// Error ratio above which the evaluation window reads as a major outage.
pub const MAJOR_ERROR_RATIO: f64 = 0.5;
/// Error ratio above which it reads as a partial outage.
pub const PARTIAL_ERROR_RATIO: f64 = 0.05;
/// Error ratio above which it reads as degraded performance (or the SLO's
/// own error budget `1 − availability`, whichever is larger).
pub const DEGRADED_ERROR_RATIO: f64 = 0.01;
/// Share of answers slower than the latency threshold above which it reads
/// as degraded performance (or `1 − latency_target`, whichever is larger).
pub const DEGRADED_SLOW_RATIO: f64 = 0.05;
/// Error ratio at which a major outage shows at once, without waiting for
/// a second minute (with at least [`MIN_VOLUME`] requests).
pub const INSTANT_MAJOR_ERROR_RATIO: f64 = 0.9;
/// Requests (or probes) the evaluation window should hold: it is the last
/// minute, widened minute by minute up to [`WINDOW_MINUTES`] until it holds
/// this many.
pub const MIN_VOLUME: u64 = 10;
/// The widest evaluation window, minutes.
pub const WINDOW_MINUTES: u32 = 5;
/// Consecutive minutes a worse state must be seen before it shows.
pub const WORSEN_MINUTES: u32 = 2;
/// Consecutive better minutes before a better state shows.
pub const RECOVER_MINUTES: u32 = 3;
/// Without traffic and probes for this long, a component has "no recent
/// data".
pub const NO_DATA_AFTER: Duration = Duration::from_secs(10 * 60);
/// Fewest requests in a burn-rate alert's long window (Envoy's
/// `success_rate_request_volume`); the short window needs at least one.
pub const BURN_MIN_REQUESTS: u64 = 100;
/// Upstream success ratio below which a minute counts as "upstream down"
/// (the store's rollup uses the same).
pub const UPSTREAM_DOWN_RATIO: f64 = crate::sli::UPSTREAM_DOWN_BELOW;

/// Default time a component must be out of operational before an
/// automatic incident opens.
pub const OPEN_AFTER: Duration = Duration::from_secs(2 * 60);
/// Default stable time after recovery before an automatic incident
/// resolves.
pub const RESOLVE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Default longest silence of an open automatic incident.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// An API family: the groups of the default layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `/v1/chat/completions` (and Anthropic-style messages).
    Chat,
    /// `/v1/responses`.
    Responses,
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/images/*`.
    Images,
}

impl Family {
    /// Every family, in page order.
    pub const ALL: [Family; 4] = [
        Family::Chat,
        Family::Responses,
        Family::Embeddings,
        Family::Images,
    ];

    /// The config spelling: "chat", "responses", "embeddings", "images".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
            Self::Images => "images",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The default layout's group name ("Chat Completions", ...).
    pub fn group_name(self) -> &'static str {
        match self {
            Self::Chat => "Chat Completions",
            Self::Responses => "Responses",
            Self::Embeddings => "Embeddings",
            Self::Images => "Images",
        }
    }
}

/// A component's objectives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloSettings {
    /// Availability objective (share of good requests), e.g. 0.999.
    pub availability: f64,
    /// Latency threshold: answer time, or first token for streams.
    pub latency_threshold: Duration,
    /// Latency objective: share of answers within the threshold; `None`
    /// for no latency objective.
    pub latency_target: Option<f64>,
    /// The period budgets are counted over.
    pub period: Duration,
}

impl Default for SloSettings {
    fn default() -> Self {
        SloSettings {
            availability: DEFAULT_AVAILABILITY,
            latency_threshold: DEFAULT_LATENCY_THRESHOLD,
            latency_target: Some(DEFAULT_LATENCY_TARGET),
            period: DEFAULT_PERIOD,
        }
    }
}

/// One component's changes to the default objectives.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SloOverrides {
    /// Availability objective.
    pub availability: Option<f64>,
    /// Latency threshold.
    pub latency_threshold: Option<Duration>,
    /// Latency objective.
    pub latency_target: Option<f64>,
    /// Period.
    pub period: Option<Duration>,
}

impl SloOverrides {
    /// The defaults with these overrides applied.
    pub fn apply(&self, defaults: &SloSettings) -> SloSettings {
        SloSettings {
            availability: self.availability.unwrap_or(defaults.availability),
            latency_threshold: self.latency_threshold.unwrap_or(defaults.latency_threshold),
            latency_target: self.latency_target.or(defaults.latency_target),
            period: self.period.unwrap_or(defaults.period),
        }
    }
}

/// A configured component.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentConfig {
    /// Stable id (slug).
    pub id: String,
    /// Display name.
    pub name: String,
    /// One-line description.
    pub description: Option<String>,
    /// Group display name; components with the same group share it.
    pub group: Option<String>,
    /// Public models it covers; empty: all.
    pub models: Vec<String>,
    /// API families it covers; empty: all.
    pub endpoints: Vec<Family>,
    /// Its objectives, over the defaults.
    pub slo: SloOverrides,
}

/// How urgent a burn-rate alert is (SRE workbook severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Someone should look now; opens an automatic incident.
    Page,
    /// Someone should look soon.
    Ticket,
}

impl Severity {
    /// "page" or "ticket".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Ticket => "ticket",
        }
    }
}

/// One multi-window burn-rate rule: fires when the burn rate exceeds
/// `rate` over both the long and the short window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    /// Page or ticket.
    pub severity: Severity,
    /// Long window.
    pub long: Duration,
    /// Short window (≈ 1/12 of the long one).
    pub short: Duration,
    /// Burn-rate threshold.
    pub rate: f64,
    /// The least status a firing availability alert imposes on the
    /// component (latency alerts impose at most degraded performance).
    pub floor: ComponentStatus,
}

/// The SRE workbook's table 5-8 for a 30-day objective: 1 h/5 m at 14.4
/// (page, at least partial outage), 6 h/30 m at 6 (page, at least
/// degraded), 3 d/6 h at 1 (ticket, at least degraded).
pub fn default_burn_rules() -> Vec<BurnRule> {
    let h = |n: u64| Duration::from_secs(n * 3600);
    let m = |n: u64| Duration::from_secs(n * 60);
    vec![
        BurnRule {
            severity: Severity::Page,
            long: h(1),
            short: m(5),
            rate: 14.4,
            floor: ComponentStatus::PartialOutage,
        },
        BurnRule {
            severity: Severity::Page,
            long: h(6),
            short: m(30),
            rate: 6.0,
            floor: ComponentStatus::DegradedPerformance,
        },
        BurnRule {
            severity: Severity::Ticket,
            long: h(72),
            short: h(6),
            rate: 1.0,
            floor: ComponentStatus::DegradedPerformance,
        },
    ]
}

/// How traffic becomes a status (defaults: the constants above).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// [`MAJOR_ERROR_RATIO`].
    pub major_error_ratio: f64,
    /// [`PARTIAL_ERROR_RATIO`].
    pub partial_error_ratio: f64,
    /// [`DEGRADED_ERROR_RATIO`].
    pub degraded_error_ratio: f64,
    /// [`DEGRADED_SLOW_RATIO`].
    pub degraded_slow_ratio: f64,
    /// [`INSTANT_MAJOR_ERROR_RATIO`].
    pub instant_major_error_ratio: f64,
    /// [`MIN_VOLUME`].
    pub min_volume: u64,
    /// [`WINDOW_MINUTES`].
    pub window_minutes: u32,
    /// [`WORSEN_MINUTES`].
    pub worsen_minutes: u32,
    /// [`RECOVER_MINUTES`].
    pub recover_minutes: u32,
    /// [`NO_DATA_AFTER`].
    pub no_data_after: Duration,
    /// [`BURN_MIN_REQUESTS`].
    pub burn_min_requests: u64,
    /// [`UPSTREAM_DOWN_RATIO`].
    pub upstream_down_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            major_error_ratio: MAJOR_ERROR_RATIO,
            partial_error_ratio: PARTIAL_ERROR_RATIO,
            degraded_error_ratio: DEGRADED_ERROR_RATIO,
            degraded_slow_ratio: DEGRADED_SLOW_RATIO,
            instant_major_error_ratio: INSTANT_MAJOR_ERROR_RATIO,
            min_volume: MIN_VOLUME,
            window_minutes: WINDOW_MINUTES,
            worsen_minutes: WORSEN_MINUTES,
            recover_minutes: RECOVER_MINUTES,
            no_data_after: NO_DATA_AFTER,
            burn_min_requests: BURN_MIN_REQUESTS,
            upstream_down_ratio: UPSTREAM_DOWN_RATIO,
        }
    }
}

/// When automatic incidents open, speak and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentSettings {
    /// [`OPEN_AFTER`].
    pub open_after: Duration,
    /// [`RESOLVE_AFTER`].
    pub resolve_after: Duration,
    /// [`UPDATE_INTERVAL`].
    pub update_interval: Duration,
    /// Publish automatic incidents at once (`true`, the default) or hold
    /// them as drafts for an operator.
    pub publish_automatic: bool,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        IncidentSettings {
            open_after: OPEN_AFTER,
            resolve_after: RESOLVE_AFTER,
            update_interval: UPDATE_INTERVAL,
            publish_automatic: true,
        }
    }
}

/// Everything the engine is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Page id (Statuspage's `page.id`).
    pub page_id: String,
    /// Page title.
    pub page_name: String,
    /// Public URL of the page, without a trailing slash.
    pub page_url: String,
    /// Configured components; `None`: the default layout.
    pub components: Option<Vec<ComponentConfig>>,
    /// Public model names, in page order.
    pub public_models: Vec<String>,
    /// Show the "Upstream providers" group.
    pub show_providers: bool,
    /// Provider names for that group; empty: those seen in deployments.
    pub providers: Vec<String>,
    /// A provider's component shows degraded performance while the
    /// gateway's early warning has demoted one of its deployments.
    pub early_warning: bool,
    /// Default objectives.
    pub slo: SloSettings,
    /// Burn-rate rules.
    pub burn_rules: Vec<BurnRule>,
    /// Status thresholds and hysteresis.
    pub thresholds: Thresholds,
    /// Incident automation.
    pub incidents: IncidentSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            page_id: "lifeline".to_string(),
            page_name: "Status".to_string(),
            page_url: String::new(),
            components: None,
            public_models: Vec::new(),
            show_providers: false,
            providers: Vec::new(),
            early_warning: false,
            slo: SloSettings::default(),
            burn_rules: default_burn_rules(),
            thresholds: Thresholds::default(),
            incidents: IncidentSettings::default(),
        }
    }
}

impl Settings {
    /// How many minutes of per-minute history the engine keeps: the longest
    /// burn-rate window, at least a day (for the 24-hour chart).
    pub(crate) fn minutes_kept(&self) -> i64 {
        let longest = self
            .burn_rules
            .iter()
            .map(|r| r.long.max(r.short))
            .max()
            .unwrap_or_default();
        let longest = longest.max(Duration::from_secs(86_400));
        (longest.as_secs().div_ceil(60) as i64) + 1
    }
}

/// Milliseconds of a duration, saturating.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The start of the minute `t` falls in.
pub(crate) fn minute_floor(t: i64) -> i64 {
    t.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Midnight UTC of the day `t` falls in.
pub(crate) fn day_floor(t: i64) -> i64 {
    t.div_euclid(DAY_MS) * DAY_MS
}
