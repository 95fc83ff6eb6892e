//! `[store]` and `[status]`: the status side's settings, checked here and
//! read by the status side (the request path reads none of them).
//!
//! The references are resolved like the tiers' are: a component's models
//! must be public models of `[[models]]`, an upstream feed's provider a
//! `[[providers]]` entry; SLO targets are fractions strictly between 0 and
//! 1, and an SLO's period fits in the SLI history the store keeps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::model::*;
use crate::config::raw::{RawComponent, RawSlo, RawStatus, RawStatusUpstream, RawStore};

const STORE_URL: &str = "sqlite://lifeline.db";
const SLI_RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
const DEFAULT_RETENTION_DAYS: u32 = 90;
const PERIOD_DAYS: std::ops::RangeInclusive<u32> = 1..=365;
const TITLE: &str = "Status";
const OPEN_AFTER: Duration = Duration::from_secs(120);
const UPDATE_INTERVAL: Duration = Duration::from_secs(30 * 60);
const RESOLVE_AFTER: Duration = Duration::from_secs(10 * 60);
const NO_DATA_AFTER: Duration = Duration::from_secs(15 * 60);
const FEED_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest polling interval of a provider's status feed: faster is rude to
/// the provider and tells nothing a minute would not.
const MIN_FEED_INTERVAL: Duration = Duration::from_secs(10);
/// The endpoint families a component may name (the SLI totals' names).
const FAMILIES: [&str; 4] = ["chat", "embeddings", "images", "responses"];

/// What `[store] url` names, or why it names nothing usable. Never quotes
/// the URL past its scheme: a database URL may hold a password.
fn store_backend(url: &str) -> Result<StoreBackend, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("names no file: write sqlite://PATH, e.g. sqlite://lifeline.db".into());
        }
        return Ok(StoreBackend::Sqlite(PathBuf::from(path)));
    }
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    if matches!(scheme, "postgres" | "postgresql") {
        return Err(
            "PostgreSQL is not supported yet; use sqlite://PATH (e.g. sqlite://lifeline.db)".into(),
        );
    }
    let what = if scheme.is_empty() {
        "has no scheme".to_string()
    } else {
        format!("has the unknown scheme {scheme:?}")
    };
    Err(format!(
        "{what}: write sqlite://PATH (e.g. sqlite://lifeline.db); PostgreSQL is not supported yet"
    ))
}

/// Whether `id` is a slug: `[a-z0-9-]+`.
fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `url` is an absolute `http://` or `https://` URL with a host.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty() && !r.starts_with('/') && !r.chars().any(char::is_whitespace)
    })
}

impl Validator<'_> {
    pub(super) fn store(&mut self, raw: &RawStore) -> StoreConfig {
        let url = raw.url.as_ref().map_or(STORE_URL, |u| u.get_ref().as_str());
        let backend = match store_backend(url) {
            Ok(b) => b,
            Err(msg) => {
                if let Some(u) = &raw.url {
                    self.at(u, "store.url", msg);
                }
                StoreBackend::Sqlite(PathBuf::from("lifeline.db"))
            }
        };
        let sli_retention_days = match &raw.sli_retention_days {
            Some(d) if !SLI_RETENTION_DAYS.contains(d.get_ref()) => {
                let msg = format!(
                    "must be between {} and {} days, got {}",
                    SLI_RETENTION_DAYS.start(),
                    SLI_RETENTION_DAYS.end(),
                    d.get_ref()
                );
                self.at(d, "store.sli_retention_days", msg);
                DEFAULT_RETENTION_DAYS
            }
            Some(d) => *d.get_ref(),
            None => DEFAULT_RETENTION_DAYS,
        };
        StoreConfig {
            url: url.to_owned(),
            backend,
            sli_retention_days,
        }
    }

    /// `[status]`, with the listeners (for the default `page_url`), the
    /// models and providers its references name, and `[store]` (whose
    /// retention bounds the SLO periods).
    pub(super) fn status(
        &mut self,
        raw: &RawStatus,
        server: &ServerConfig,
        models: &[ModelConfig],
        providers: &[ProviderConfig],
        store: (&RawStore, &StoreConfig),
    ) -> StatusConfig {
        let flag =
            |v: &Option<Spanned<bool>>, base: bool| v.as_ref().map_or(base, |b| *b.get_ref());
        let title = raw
            .title
            .as_ref()
            .map_or_else(|| TITLE.to_owned(), |t| self.name(t, "status.title"));
        let page_url = match &raw.page_url {
            Some(u) if !is_http_url(u.get_ref()) => {
                let msg = format!(
                    "{:?} is not an http:// or https:// URL (the page's public address, e.g. \"https://status.example.com\")",
                    u.get_ref()
                );
                self.at(u, "status.page_url", msg);
                default_page_url(server)
            }
            Some(u) => u.get_ref().trim_end_matches('/').to_owned(),
            None => default_page_url(server),
        };
        let static_dir = raw.static_dir.as_ref().map(|d| {
            if d.get_ref().trim().is_empty() {
                self.at(
                    d,
                    "status.static_dir",
                    "must not be empty (leave it out for no static export)",
                );
            }
            PathBuf::from(d.get_ref())
        });
        let slo = self.slo(&raw.slo, "status.slo", &SloConfig::default());
        self.slo_fits(&raw.slo, "status.slo", &slo, store);
        let mut seen = HashMap::new();
        let components = raw
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| self.component(i, c.get_ref(), &mut seen, models, &slo, store))
            .collect();
        let upstream = raw
            .upstream
            .iter()
            .enumerate()
            .map(|(i, u)| self.status_upstream(i, u.get_ref(), providers))
            .collect();
        StatusConfig {
            enabled: flag(&raw.enabled, true),
            title,
            page_url,
            publish_automatic: flag(&raw.publish_automatic, true),
            open_after: self.duration(&raw.open_after_ms, "status.open_after_ms", OPEN_AFTER),
            update_interval: self.duration(
                &raw.update_interval_ms,
                "status.update_interval_ms",
                UPDATE_INTERVAL,
            ),
            resolve_after: self.duration(
                &raw.resolve_after_ms,
                "status.resolve_after_ms",
                RESOLVE_AFTER,
            ),
            no_data_after: self.duration(
                &raw.no_data_after_ms,
                "status.no_data_after_ms",
                NO_DATA_AFTER,
            ),
            show_providers: flag(&raw.show_providers, false),
            early_warning: flag(&raw.early_warning, false),
            static_dir,
            clock_speed: match &raw.clock_speed {
                Some(v) if !(1..=3600).contains(v.get_ref()) => {
                    let msg = format!("must be between 1 and 3600, got {}", v.get_ref());
                    self.at(v, "status.clock_speed", msg);
                    1
                }
                Some(v) => *v.get_ref(),
                None => 1,
            },
            slo,
            components,
            upstream,
        }
    }

    /// `base` overridden by the keys of `raw`; `prefix` is `status.slo` or
    /// `status.components[i]`.
    fn slo(&mut self, raw: &RawSlo, prefix: &str, base: &SloConfig) -> SloConfig {
        let f = |key: &str| format!("{prefix}.{key}");
        let mut fraction = |v: &Option<Spanned<f64>>, key: &str, base: f64| match v {
            Some(x) if !(*x.get_ref() > 0.0 && *x.get_ref() < 1.0) => {
                let msg = format!(
                    "must be between 0 and 1 (exclusive), a fraction such as 0.999, got {}",
                    x.get_ref()
                );
                self.at(x, f(key), msg);
                base
            }
            Some(x) => *x.get_ref(),
            None => base,
        };
        let availability = fraction(&raw.availability, "availability", base.availability);
        let latency_target = fraction(&raw.latency_target, "latency_target", base.latency_target);
        let period_days = match &raw.period_days {
            Some(d) if !PERIOD_DAYS.contains(d.get_ref()) => {
                let msg = format!(
                    "must be between {} and {} days, got {}",
                    PERIOD_DAYS.start(),
                    PERIOD_DAYS.end(),
                    d.get_ref()
                );
                self.at(d, f("period_days"), msg);
                base.period_days
            }
            Some(d) => *d.get_ref(),
            None => base.period_days,
        };
        SloConfig {
            availability,
            latency: self.duration(&raw.latency_ms, &f("latency_ms"), base.latency),
            latency_target,
            period_days,
        }
    }

    /// An SLO's period needs that many days of SLI history: reported on the
    /// `period_days` of this table if it sets one, else (for `[status.slo]`)
    /// on `[store] sli_retention_days`. A component that inherits its
    /// period is reported with `[status.slo]`.
    fn slo_fits(
        &mut self,
        raw: &RawSlo,
        prefix: &str,
        slo: &SloConfig,
        (raw_store, store): (&RawStore, &StoreConfig),
    ) {
        if slo.period_days <= store.sli_retention_days {
            return;
        }
        let msg = format!(
            "an SLO period of {} days needs that much SLI history, but [store] sli_retention_days is {}",
            slo.period_days, store.sli_retention_days
        );
        if let Some(d) = &raw.period_days {
            self.at(d, format!("{prefix}.period_days"), msg);
        } else if prefix == "status.slo" {
            if let Some(r) = &raw_store.sli_retention_days {
                self.at(r, "store.sli_retention_days", msg);
            }
        }
    }

    fn component(
        &mut self,
        i: usize,
        raw: &RawComponent,
        seen: &mut HashMap<String, usize>,
        models: &[ModelConfig],
        base: &SloConfig,
        store: (&RawStore, &StoreConfig),
    ) -> ComponentConfig {
        let f = |key: &str| format!("status.components[{i}].{key}");
        let id = raw.id.get_ref();
        if !is_slug(id) {
            let msg = format!(
                "{id:?} is not a slug: use lowercase letters, digits and '-' (it appears in URLs, e.g. /badge/{{id}}.svg)"
            );
            self.at(&raw.id, f("id"), msg);
        } else if let Some(first) = seen.get(id) {
            let msg = format!("duplicate component id {id:?} (also status.components[{first}])");
            self.at(&raw.id, f("id"), msg);
        } else {
            seen.insert(id.clone(), i);
        }
        let name = self.name(&raw.name, &f("name"));
        if raw.models.get_ref().is_empty() {
            let msg = "must name at least one public model of [[models]]";
            self.at(&raw.models, f("models"), msg);
        }
        for (j, m) in raw.models.get_ref().iter().enumerate() {
            if !models.iter().any(|known| known.name == *m.get_ref()) {
                let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
                let msg = format!(
                    "no such model {:?} (known: {})",
                    m.get_ref(),
                    known.join(", ")
                );
                self.at(m, f(&format!("models[{j}]")), msg);
            }
        }
        let endpoints = match &raw.endpoints {
            None => FAMILIES.iter().map(|e| (*e).to_owned()).collect(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    let msg = "must name at least one of chat, embeddings, images, responses (leave it out for all)";
                    self.at(list, f("endpoints"), msg);
                }
                let mut out: Vec<String> = Vec::new();
                for (j, e) in list.get_ref().iter().enumerate() {
                    let name = e.get_ref();
                    if !FAMILIES.contains(&name.as_str()) {
                        let msg = format!(
                            "unknown endpoint family {name:?} (valid: {})",
                            FAMILIES.join(", ")
                        );
                        self.at(e, f(&format!("endpoints[{j}]")), msg);
                    } else if out.contains(name) {
                        self.at(
                            e,
                            f(&format!("endpoints[{j}]")),
                            format!("{name:?} is listed twice"),
                        );
                    } else {
                        out.push(name.clone());
                    }
                }
                out
            }
        };
        let overrides = raw.slo();
        let prefix = format!("status.components[{i}]");
        let slo = self.slo(&overrides, &prefix, base);
        self.slo_fits(&overrides, &prefix, &slo, store);
        ComponentConfig {
            id: id.clone(),
            name,
            description: raw.description.as_ref().map(|d| d.get_ref().clone()),
            group: raw.group.as_ref().map(|g| self.name(g, &f("group"))),
            models: raw
                .models
                .get_ref()
                .iter()
                .map(|m| m.get_ref().clone())
                .collect(),
            endpoints,
            slo,
        }
    }

    fn status_upstream(
        &mut self,
        i: usize,
        raw: &RawStatusUpstream,
        providers: &[ProviderConfig],
    ) -> UpstreamConfig {
        let f = |key: &str| format!("status.upstream[{i}].{key}");
        let provider = raw.provider.get_ref();
        if !providers.iter().any(|p| p.name == *provider) {
            let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
            let msg = format!(
                "no such provider {provider:?} (known: {})",
                known.join(", ")
            );
            self.at(&raw.provider, f("provider"), msg);
        }
        if !is_http_url(raw.url.get_ref()) {
            let msg = format!(
                "{:?} is not an http:// or https:// URL (the provider's status feed, e.g. https://status.openai.com/api/v2/summary.json)",
                raw.url.get_ref()
            );
            self.at(&raw.url, f("url"), msg);
        }
        let format = StatusFeedFormat::ALL
            .iter()
            .find(|(name, _)| name == raw.format.get_ref())
            .map(|(_, format)| *format);
        if format.is_none() {
            let valid: Vec<&str> = StatusFeedFormat::ALL.iter().map(|(n, _)| *n).collect();
            let msg = format!(
                "unknown status feed format {:?} (valid: {})",
                raw.format.get_ref(),
                valid.join(", ")
            );
            self.at(&raw.format, f("format"), msg);
        }
        let interval = match &raw.interval_ms {
            Some(ms) if Duration::from_millis(*ms.get_ref()) < MIN_FEED_INTERVAL => {
                let msg = format!(
                    "must be at least {} ms (a provider's status feed polled more often tells nothing more), got {}",
                    MIN_FEED_INTERVAL.as_millis(),
                    ms.get_ref()
                );
                self.at(ms, f("interval_ms"), msg);
                FEED_INTERVAL
            }
            Some(ms) => Duration::from_millis(*ms.get_ref()),
            None => FEED_INTERVAL,
        };
        UpstreamConfig {
            provider: provider.clone(),
            url: raw.url.get_ref().clone(),
            format: format.unwrap_or(StatusFeedFormat::Statuspage),
            interval,
        }
    }
}

/// `http://` + the status listener's address, or the data plane's.
fn default_page_url(server: &ServerConfig) -> String {
    let addr: SocketAddr = server.status_listen.unwrap_or(server.listen);
    format!("http://{addr}")
}
