//! The validated `[store]` and `[status]` sections: read by the status side
//! only; the data plane never touches them.

use std::path::PathBuf;
use std::time::Duration;

/// `[store]`: the status side's store. Read by the status side only; the
/// data plane never touches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The URL as written (`url`, default `sqlite://lifeline.db`).
    pub url: String,
    /// What the URL names.
    pub backend: StoreBackend,
    /// Days of per-minute SLI history kept (`sli_retention_days`, 1–3650,
    /// default 90).
    pub sli_retention_days: u32,
}

/// The kind of store and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    /// An SQLite file (`sqlite://PATH`); a relative path is relative to the
    /// working directory (`sqlite://lifeline.db`), an absolute one has three
    /// slashes (`sqlite:///var/lib/lifeline/lifeline.db`).
    Sqlite(PathBuf),
}

/// `[status]`: the status page. Parsed and checked here; the status side
/// (`lifeline-status`) does the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusConfig {
    /// Whether the status side runs at all (`enabled`, default true).
    pub enabled: bool,
    /// The page's title (`title`, default `Status`).
    pub title: String,
    /// Public base URL of the page, without a trailing slash (`page_url`;
    /// default `http://` + `status_listen`, or `listen` without one), for
    /// links in feeds, webhooks and the static export.
    pub page_url: String,
    /// Automatic incidents are published at once; false holds them as
    /// drafts for an operator (`publish_automatic`, default true).
    pub publish_automatic: bool,
    /// A component not operational this long opens an incident
    /// (`open_after_ms`, default 2 min).
    pub open_after: Duration,
    /// While an incident is open, an update at least this often, even if
    /// nothing changed (`update_interval_ms`, default 30 min).
    pub update_interval: Duration,
    /// Stable this long after recovery before an incident is resolved
    /// (`resolve_after_ms`, default 10 min).
    pub resolve_after: Duration,
    /// No traffic and no probe this long: the component shows "no recent
    /// data" (`no_data_after_ms`, default 15 min).
    pub no_data_after: Duration,
    /// Show the "Upstream providers" group (`show_providers`, default false).
    pub show_providers: bool,
    /// Show a provider's component as degraded performance while early
    /// warning has demoted one of its deployments (`early_warning`,
    /// default false; needs `show_providers`).
    pub early_warning: bool,
    /// How much faster than real time the status side's clock runs
    /// (`clock_speed`, 1–3600, default 1). Only for demos and tests: at 60 a
    /// minute of status history (evaluation, hysteresis, incident timers,
    /// maintenance windows) passes in a second, and the page's times run
    /// ahead of the wall clock.
    pub clock_speed: u32,
    /// Directory the page is also written to as static files (`static_dir`), if any.
    pub static_dir: Option<PathBuf>,
    /// Default SLO of every component (`[status.slo]`).
    pub slo: SloConfig,
    /// The components, in file order (`[[status.components]]`); empty: the
    /// status side builds its default layout.
    pub components: Vec<ComponentConfig>,
    /// Providers' public status feeds to poll (`[[status.upstream]]`).
    pub upstream: Vec<UpstreamConfig>,
}

/// A component's service-level objectives (`[status.slo]`, or a component's
/// overrides of it).
#[derive(Clone, Debug, PartialEq)]
pub struct SloConfig {
    /// Target share of good requests, in (0, 1) (`availability`, default 0.999).
    pub availability: f64,
    /// Answer-time threshold: the whole answer, or the first token of a
    /// stream (`latency_ms`, default 5 s).
    pub latency: Duration,
    /// Target share of requests answered within `latency`, in (0, 1)
    /// (`latency_target`, default 0.99).
    pub latency_target: f64,
    /// The SLO's period in days, over which the error budget is counted
    /// (`period_days`, 1–365 and at most `[store] sli_retention_days`,
    /// default 30).
    pub period_days: u32,
}

/// One `[[status.components]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentConfig {
    /// Unique slug, `[a-z0-9-]+` (`id`): in URLs (`/badge/{id}.svg`) and the API.
    pub id: String,
    /// Display name (`name`).
    pub name: String,
    /// One line under the name (`description`), if any.
    pub description: Option<String>,
    /// The group it is shown in (`group`), if any.
    pub group: Option<String>,
    /// Public model names whose traffic it reflects (`models`, each in `[[models]]`, at least one).
    pub models: Vec<String>,
    /// Endpoint families it covers (`endpoints`): `chat`, `embeddings`,
    /// `images`, `responses` (the SLI totals' family names); all four when
    /// absent, in that order.
    pub endpoints: Vec<String>,
    /// Its SLO: `[status.slo]` with this component's overrides.
    pub slo: SloConfig,
}

/// The format of a provider's public status feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFeedFormat {
    /// Statuspage's v2 JSON (`statuspage`).
    Statuspage,
    /// incident.io's Statuspage-compatible v2 JSON (`incidentio`).
    Incidentio,
    /// An Atom feed (`atom`).
    Atom,
    /// An RSS feed (`rss`).
    Rss,
}

impl StatusFeedFormat {
    /// Every format with its name in the config, in the order errors list them.
    pub const ALL: [(&'static str, StatusFeedFormat); 4] = [
        ("statuspage", Self::Statuspage),
        ("incidentio", Self::Incidentio),
        ("atom", Self::Atom),
        ("rss", Self::Rss),
    ];

    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Statuspage => "statuspage",
            Self::Incidentio => "incidentio",
            Self::Atom => "atom",
            Self::Rss => "rss",
        }
    }
}

/// One `[[status.upstream]]`: a provider's public status feed to poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The `[[providers]]` entry it reports on (`provider`).
    pub provider: String,
    /// The feed's URL, `http://` or `https://` (`url`).
    pub url: String,
    /// Its format (`format`).
    pub format: StatusFeedFormat,
    /// How often it is polled (`interval_ms`, at least 10 s, default 60 s).
    pub interval: Duration,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability: 0.999,
            latency: Duration::from_secs(5),
            latency_target: 0.99,
            period_days: 30,
        }
    }
}
