//! Polling one provider's status source: fetch, parse, archive, publish.
//!
//! A [`Poller`] per source runs as its own task ([`Poller::run`]), reading
//! the source every [`SourceConfig::interval`] (± [`SourceConfig::jitter`])
//! with a [`SourceConfig::timeout`] for the whole fetch and a
//! [`SourceConfig::max_body`] bound on each body, and publishes the latest
//! [`Reading`] on a `tokio::sync::watch` channel. It stops when every
//! receiver is gone.
//!
//! **A source that fails is "source unknown", never an outage.** A fetch
//! that fails (connection, timeout, non-2xx after up to 3 redirects, body
//! too large) or a body that does not parse as the expected format (a moved
//! page's HTML, a bot challenge, garbage) yields a report with indicator
//! `None`; the last good read's incidents are kept, its `fetched_at` stays
//! the time of that read, and the reading is marked [`Reading::stale`]. The
//! change between readable and unknown is logged once each way, not on
//! every poll.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tokio::sync::watch;

use lifeline_store::StatusStore;

use super::archive::archive_record;
use super::parse::{self, Snapshot, UpstreamComponent, UpstreamIncident};
use crate::page::{ProviderIncident, ProviderReport};
use crate::webhook::deliver::{http_client, UnixClock};

/// Which format a source publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Atlassian Statuspage: `{url}/api/v2/summary.json` and
    /// `{url}/api/v2/incidents.json`.
    Statuspage,
    /// incident.io's Statuspage-compatible JSON, at the same paths.
    IncidentIo,
    /// An Atom or RSS feed at `url` itself.
    Feed,
}

impl Kind {
    /// The spelling in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Statuspage => "statuspage",
            Kind::IncidentIo => "incident_io",
            Kind::Feed => "feed",
        }
    }
}

/// One provider status source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Provider name as in the config.
    pub provider: String,
    /// Its format.
    pub kind: Kind,
    /// For JSON kinds, the status page's root (`https://status.claude.com`;
    /// a URL containing `/api/v2/` is cut there); for a feed, the feed's URL.
    pub url: String,
    /// Time between reads.
    pub interval: Duration,
    /// Each wait is the interval times `1 ± U[0, jitter)`, and the first
    /// read comes after `interval · U[0, jitter)`, so sources do not poll in
    /// step.
    pub jitter: f64,
    /// Limit for one whole read (all requests and bodies of one poll).
    pub timeout: Duration,
    /// Largest body accepted, in bytes.
    pub max_body: usize,
}

impl SourceConfig {
    /// A source with the defaults: every 60 s ± 10 %, 10 s timeout, 4 MiB
    /// bodies.
    pub fn new(provider: impl Into<String>, kind: Kind, url: impl Into<String>) -> Self {
        SourceConfig {
            provider: provider.into(),
            kind,
            url: url.into(),
            interval: Duration::from_secs(60),
            jitter: 0.1,
            timeout: Duration::from_secs(10),
            max_body: 4 << 20,
        }
    }

    fn page_root(&self) -> &str {
        let url = self.url.split("/api/v2/").next().unwrap_or(&self.url);
        url.trim_end_matches('/')
    }
}

/// What is known of a provider now, published after every poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The report the page shows. `indicator` is `None` while the source is
    /// unknown.
    pub report: ProviderReport,
    /// The provider's components and statuses (JSON sources), from the last
    /// good read.
    pub components: Vec<UpstreamComponent>,
    /// Its unresolved incidents with their components and impact, from the
    /// last good read (the report's `incidents` in full).
    pub unresolved: Vec<UpstreamIncident>,
    /// The last read failed: `components` and `unresolved` (and the
    /// report's incidents) are from an earlier read, at `fetched_at`.
    pub stale: bool,
}

impl Reading {
    /// Nothing read yet: source unknown, no incidents.
    pub fn unknown(config: &SourceConfig) -> Self {
        Reading {
            report: ProviderReport {
                provider: config.provider.clone(),
                source_url: config.url.clone(),
                indicator: None,
                description: None,
                incidents: Vec::new(),
                fetched_at: None,
            },
            components: Vec::new(),
            unresolved: Vec::new(),
            stale: false,
        }
    }
}

/// Whether the provider's own report should mark its deployments serving
/// `api_components` degraded before Lifeline's traffic shows it.
///
/// `api_components` are names (or parts of names) of the provider's
/// components behind the model ("Chat Completions", "API"); a component
/// matches when its name contains one of them, case-insensitively. True
/// when the reading is fresh (never for an unknown or stale source) and:
///
/// - the page indicator is `major` or `critical`; or
/// - a matching component's status is `partial_outage`, `major_outage` or
///   `full_outage` (incident.io's spelling); or
/// - an unresolved incident that is not yet `monitoring` (a fix is not in
///   place) and whose impact is not `none` names a matching component. An
///   incident that names no component counts when its title contains one
///   of `api_components` (feeds and incident.io's compatible JSON often do
///   not map incidents to components).
///
/// Degraded performance alone does not: it is evidence for the page, and
/// Lifeline's own latency measurements decide.
pub fn early_warning(reading: &Reading, api_components: &[&str]) -> bool {
    if reading.stale || reading.report.indicator.is_none() {
        return false;
    }
    let wanted: Vec<String> = api_components
        .iter()
        .map(|c| c.to_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    let matches = |name: &str| {
        let name = name.to_lowercase();
        wanted.iter().any(|w| name.contains(w.as_str()))
    };
    if matches!(
        reading.report.indicator.as_deref(),
        Some("major" | "critical")
    ) {
        return true;
    }
    let component_down = reading.components.iter().any(|c| {
        matches!(
            c.status.as_str(),
            "partial_outage" | "major_outage" | "full_outage"
        ) && matches(&c.name)
    });
    let incident_names_it = reading.unresolved.iter().any(|i| {
        i.status != "monitoring"
            && i.impact.as_deref() != Some("none")
            && if i.components.is_empty() {
                matches(&i.name)
            } else {
                i.components.iter().any(|c| matches(c))
            }
    });
    component_down || incident_names_it
}

/// Polls one source; see the module docs.
pub struct Poller {
    config: SourceConfig,
    client: crate::webhook::deliver::HttpsClient,
    store: Arc<dyn StatusStore>,
    tx: watch::Sender<Reading>,
    rng: fastrand::Rng,
    source_ok: Option<bool>,
    history_ok: Option<bool>,
    archive_ok: Option<bool>,
}

/// Redirects followed per request (a moved page: status.anthropic.com →
/// status.claude.com).
const MAX_REDIRECTS: usize = 3;

impl Poller {
    /// A poller for `config` that archives every incident it reads into
    /// `store` ([`lifeline_store::UpstreamStore::upsert_upstream_incidents`]),
    /// and the receiver of its readings (initially [`Reading::unknown`]).
    /// `store` is the gateway's one store; only its
    /// [`UpstreamStore`](lifeline_store::UpstreamStore) part is used. Errs
    /// only if the HTTPS client cannot be built.
    pub fn new(
        config: SourceConfig,
        store: Arc<dyn StatusStore>,
    ) -> Result<(Self, watch::Receiver<Reading>), String> {
        let (tx, rx) = watch::channel(Reading::unknown(&config));
        let poller = Poller {
            client: http_client(config.timeout)?,
            config,
            store,
            tx,
            rng: fastrand::Rng::new(),
            source_ok: None,
            history_ok: None,
            archive_ok: None,
        };
        Ok((poller, rx))
    }

    /// Seeds the jitter, for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// Reads the source once at `now_ms`, archives what it lists, publishes
    /// and returns the new reading.
    pub async fn poll_once(&mut self, now_ms: i64) -> Reading {
        let read = tokio::time::timeout(self.config.timeout, self.read(now_ms)).await;
        let read = read.unwrap_or_else(|_| {
            Err(format!(
                "no complete answer within {:?}",
                self.config.timeout
            ))
        });
        let reading = match read {
            Ok(snapshot) => {
                if self.source_ok != Some(true) {
                    tracing::info!(
                        provider = %self.config.provider,
                        url = %self.config.url,
                        "upstream status source readable"
                    );
                    self.source_ok = Some(true);
                }
                self.archive(&snapshot.incidents, now_ms).await;
                self.fresh(snapshot, now_ms)
            }
            Err(error) => {
                if self.source_ok != Some(false) {
                    tracing::warn!(
                        provider = %self.config.provider,
                        url = %self.config.url,
                        %error,
                        "upstream status source unknown (not an outage); keeping its last report"
                    );
                    self.source_ok = Some(false);
                }
                let mut stale = self.tx.borrow().clone();
                stale.report.indicator = None;
                stale.report.description = None;
                stale.stale = true;
                stale
            }
        };
        self.tx.send_replace(reading.clone());
        reading
    }

    /// Polls until every receiver is dropped.
    pub async fn run(mut self) {
        let clock = UnixClock::new();
        let first = self
            .config
            .interval
            .mul_f64(self.config.jitter.max(0.0) * self.rng.f64());
        tokio::time::sleep(first).await;
        loop {
            if self.tx.is_closed() {
                return;
            }
            self.poll_once(clock.now_ms()).await;
            let spread = self.config.jitter.clamp(0.0, 1.0) * (2.0 * self.rng.f64() - 1.0);
            tokio::time::sleep(self.config.interval.mul_f64(1.0 + spread)).await;
        }
    }

    fn fresh(&self, snapshot: Snapshot, now_ms: i64) -> Reading {
        let unresolved: Vec<UpstreamIncident> = snapshot
            .incidents
            .into_iter()
            .filter(|i| !i.is_resolved())
            .collect();
        Reading {
            report: ProviderReport {
                provider: self.config.provider.clone(),
                source_url: self.config.url.clone(),
                indicator: snapshot.indicator.or_else(|| Some("none".into())),
                description: snapshot.description,
                incidents: unresolved
                    .iter()
                    .map(|i| ProviderIncident {
                        name: i.name.clone(),
                        status: i.status.clone(),
                        started_at: i.started_at.unwrap_or(i.created_at),
                        url: i.shortlink.clone(),
                    })
                    .collect(),
                fetched_at: Some(now_ms),
            },
            components: snapshot.components,
            unresolved,
            stale: false,
        }
    }

    /// Fetches and parses; for JSON kinds, `summary.json` decides and
    /// `incidents.json` adds history (its failure is logged, not fatal).
    async fn read(&mut self, now_ms: i64) -> Result<Snapshot, String> {
        match self.config.kind {
            Kind::Feed => {
                let body = self.fetch(&self.config.url).await?;
                parse::feed(&body, now_ms).map_err(|e| e.to_string())
            }
            Kind::Statuspage | Kind::IncidentIo => {
                let root = self.config.page_root().to_owned();
                let body = self.fetch(&format!("{root}/api/v2/summary.json")).await?;
                let mut summary = parse::v2_json(&body).map_err(|e| e.to_string())?;
                let history = match self.fetch(&format!("{root}/api/v2/incidents.json")).await {
                    Ok(body) => parse::v2_json(&body).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                let history_ok = history.is_ok();
                if self.history_ok != Some(history_ok) {
                    match &history {
                        Ok(_) => {
                            tracing::info!(provider = %self.config.provider, "upstream incident history readable")
                        }
                        Err(error) => {
                            tracing::warn!(provider = %self.config.provider, %error, "upstream incident history unreadable; archiving only unresolved incidents")
                        }
                    }
                    self.history_ok = Some(history_ok);
                }
                if let Ok(history) = history {
                    merge(&mut summary.incidents, history.incidents);
                }
                Ok(summary)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<Bytes, String> {
        let mut uri: http::Uri = url.parse().map_err(|_| "invalid URL".to_owned())?;
        for _ in 0..=MAX_REDIRECTS {
            let request = http::Request::get(uri.clone())
                .header(http::header::USER_AGENT, "Lifeline-status-poller/1")
                .header(
                    http::header::ACCEPT,
                    "application/json, application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.1",
                )
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| crate::webhook::deliver::describe(&e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| format!("status {} without Location", status.as_u16()))?;
                uri = resolve(&uri, location)?;
                continue;
            }
            if !status.is_success() {
                return Err(format!("status {}", status.as_u16()));
            }
            return match Limited::new(response.into_body(), self.config.max_body)
                .collect()
                .await
            {
                Ok(body) => Ok(body.to_bytes()),
                Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    Err(format!("body larger than {} bytes", self.config.max_body))
                }
                Err(e) => Err(format!("reading the body: {e}")),
            };
        }
        Err("too many redirects".into())
    }

    async fn archive(&mut self, incidents: &[UpstreamIncident], now_ms: i64) {
        if incidents.is_empty() {
            return;
        }
        let records: Vec<_> = incidents
            .iter()
            .map(|i| archive_record(&self.config.provider, i))
            .collect();
        let store = self.store.clone();
        let result =
            tokio::task::spawn_blocking(move || store.upsert_upstream_incidents(&records, now_ms))
                .await;
        let ok = matches!(result, Ok(Ok(_)));
        if self.archive_ok != Some(ok) {
            match result {
                Ok(Ok(_)) => {
                    tracing::info!(provider = %self.config.provider, "upstream incident archive writable")
                }
                Ok(Err(error)) => {
                    tracing::warn!(provider = %self.config.provider, %error, "upstream incident archive not writable; history not extended")
                }
                Err(error) => {
                    tracing::warn!(provider = %self.config.provider, %error, "upstream incident archive task failed")
                }
            }
            self.archive_ok = Some(ok);
        }
    }
}

/// Adds `more` to `into` by id; for an id in both, the one updated last
/// wins.
fn merge(into: &mut Vec<UpstreamIncident>, more: Vec<UpstreamIncident>) {
    for incident in more {
        match into.iter_mut().find(|i| i.id == incident.id) {
            Some(existing) if existing.updated_at < incident.updated_at => *existing = incident,
            Some(existing) => {
                if existing.components.is_empty() {
                    existing.components = incident.components;
                }
            }
            None => into.push(incident),
        }
    }
}

/// Resolves a `Location` against the URI it came from.
fn resolve(base: &http::Uri, location: &str) -> Result<http::Uri, String> {
    let bad = || "invalid redirect".to_owned();
    let target: http::Uri = location.parse().map_err(|_| bad())?;
    if target.scheme().is_some() {
        return Ok(target);
    }
    let mut parts = target.into_parts();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    http::Uri::from_parts(parts).map_err(|_| bad())
}
