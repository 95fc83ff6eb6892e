//! The page's languages and their messages.
//!
//! Messages live in `i18n/{en,de,zh}.toml` (flat `key = "text"` tables a
//! translator can extend), are compiled into the binary and parsed once. A
//! key missing from a translation falls back to English; a test checks
//! that every language has every key and no other. Placeholders are
//! `{name}`, filled by [`fill`].
//!
//! The language of a request comes from `?lang=` first, then from
//! `Accept-Language` (q-values honoured, the first listed wins a tie),
//! else English ([`Lang::negotiate`]).
//!
//! This module also words the restoration estimate in each language
//! ([`eta_sentence`]); its English is exactly [`crate::eta::sentence`]'s.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use crate::eta::{Basis, Eta, Pool, Source};

/// A language of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (the fallback).
    En,
    /// German.
    De,
    /// Chinese (simplified).
    Zh,
}

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::De, Lang::Zh];

    /// Its code in `?lang=` and in exported file names (`en`, `de`, `zh`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Zh => "zh",
        }
    }

    /// Its BCP 47 tag for the `lang` attribute.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Zh => "zh-Hans",
        }
    }

    /// Index into per-language arrays ([`Lang::ALL`] order).
    pub fn index(self) -> usize {
        match self {
            Lang::En => 0,
            Lang::De => 1,
            Lang::Zh => 2,
        }
    }

    /// The language a tag or code names (`de`, `de-CH`, `zh-Hans-CN`,
    /// `EN`), if it is one of the page's.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        Lang::ALL
            .into_iter()
            .find(|l| primary.eq_ignore_ascii_case(l.code()))
    }

    /// The language for a request: `?lang=` (from the raw query string)
    /// wins, then the best `Accept-Language` match, then English.
    pub fn negotiate(query: Option<&str>, accept_language: Option<&str>) -> Lang {
        query
            .and_then(|q| {
                q.split('&')
                    .filter_map(|pair| pair.strip_prefix("lang="))
                    .find_map(Lang::from_tag)
            })
            .or_else(|| accept_language.and_then(Lang::from_accept_language))
            .unwrap_or(Lang::En)
    }

    /// The best match of an `Accept-Language` header: highest q-value,
    /// earliest on a tie; `q=0` excludes; `*` means English.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(Lang, u16)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, parse_q);
            if q == 0 {
                continue;
            }
            let lang = if tag == "*" {
                Some(Lang::En)
            } else {
                Lang::from_tag(tag)
            };
            if let Some(lang) = lang {
                if best.is_none_or(|(_, bq)| q > bq) {
                    best = Some((lang, q));
                }
            }
        }
        best.map(|(l, _)| l)
    }

    /// Its messages.
    pub(crate) fn messages(self) -> &'static Messages {
        &CATALOG[self.index()]
    }
}

/// A q-value in thousandths (`0.8` → 800); malformed counts as 0.
fn parse_q(q: &str) -> u16 {
    let q = q.trim();
    let (whole, frac) = q.split_once('.').unwrap_or((q, ""));
    let whole: u16 = match whole {
        "1" => 1000,
        "0" | "" => 0,
        _ => return 0,
    };
    let mut thousandths = 0u16;
    for (i, c) in frac.chars().take(3).enumerate() {
        let Some(d) = c.to_digit(10) else { return 0 };
        thousandths += d as u16 * [100, 10, 1][i];
    }
    (whole + thousandths).min(1000)
}

macro_rules! messages {
    ($($key:ident),* $(,)?) => {
        /// One language's messages, a field per key of `i18n/*.toml`.
        #[derive(Debug)]
        pub(crate) struct Messages {
            $(pub(crate) $key: String,)*
        }

        /// Every message key.
        #[cfg(test)]
        pub(crate) const KEYS: &[&str] = &[$(stringify!($key)),*];

        impl Messages {
            fn from_tables(lang: &HashMap<String, String>, en: &HashMap<String, String>) -> Self {
                let get = |key: &str| {
                    lang.get(key)
                        .or_else(|| en.get(key))
                        .cloned()
                        .unwrap_or_else(|| key.to_string())
                };
                Messages { $($key: get(stringify!($key)),)* }
            }
        }
    };
}

messages! {
    lang_name, skip_link, language, updated, generated, history_behind,
    all_systems_operational, major_system_outage, partial_system_outage,
    minor_service_outage, degraded_system_service, partially_degraded_service,
    service_under_maintenance, components_heading, other_components, status_operational,
    status_degraded_performance, status_partial_outage, status_major_outage,
    status_under_maintenance, status_no_recent_data, no_recent_data_note,
    slo_availability, slo_measured, slo_latency, budget_left, budget_overspent,
    burn_alert, alert_page, alert_ticket, objective_availability, objective_latency,
    upstream_down, availability_24h, uptime_heading, uptime_summary, uptime_no_data,
    day_available, day_no_data, day_requests, day_worst, day_incidents,
    day_no_incidents, days_ago, today, chart_title, chart_desc, chart_p50, chart_p99,
    chart_ttft, chart_na, chart_start, chart_end, incidents_active_heading,
    incidents_heading, no_incidents, incident_investigating, incident_identified,
    incident_monitoring, incident_resolved, incident_postmortem, impact, impact_none,
    impact_minor, impact_major, impact_critical, affected, started, resolved_at,
    eta_heading, back, maintenance_heading,
    maintenance_in_progress, maintenance_upcoming, maintenance_history, maintenance_completed,
    maintenance_window, maintenance_scheduled, maintenance_verifying, no_maintenance,
    providers_heading, providers_intro, provider_unknown, provider_since,
    provider_fetched, provider_source, subscribe, atom_feed, rss_feed, json_api,
    percent, decimal_separator, days, dur_minute_one, dur_minutes, dur_hours,
    dur_hours_minutes, more_minute_one, more_minutes, more_long, eta_override,
    eta_estimate, eta_p90, eta_p90_bare, eta_based, eta_longer, eta_not_enough,
    pool_component_cause, pool_cause, pool_all, basis_local_one, basis_local,
    basis_upstream_one, basis_upstream,
}

/// The message files, [`Lang::ALL`] order.
pub(crate) const SOURCES: [&str; 3] = [
    include_str!("../../i18n/en.toml"),
    include_str!("../../i18n/de.toml"),
    include_str!("../../i18n/zh.toml"),
];

/// A message file as a table (empty when it does not parse; the tests
/// make sure each does).
pub(crate) fn table(source: &str) -> HashMap<String, String> {
    toml::from_str(source).unwrap_or_default()
}

static CATALOG: LazyLock<[Messages; 3]> = LazyLock::new(|| {
    let en = table(SOURCES[0]);
    SOURCES.map(|s| Messages::from_tables(&table(s), &en))
});

/// `template` with each `{name}` replaced by its value; unknown
/// placeholders are kept as they are.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match values.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Messages {
    /// A share (0.9997) as a percentage ("99.97 %"): two decimals, trailing
    /// zeros dropped, never rounded up to 100 unless it is 100.
    pub(crate) fn percent(&self, share: f64) -> String {
        let mut n = format!("{:.2}", share * 100.0);
        if share < 1.0 && n == "100.00" {
            n = "99.99".to_string();
        }
        if n.contains('.') {
            n = n.trim_end_matches('0').trim_end_matches('.').to_string();
        }
        self.percent_text(&n)
    }

    /// A number already formatted with a dot, as a percentage in this
    /// language (its decimal separator and percent form).
    fn percent_text(&self, n: &str) -> String {
        let n = n.replace('.', &self.decimal_separator);
        fill(&self.percent, &[("n", &n)])
    }

    /// A decimal number with one decimal, this language's separator.
    pub(crate) fn decimal(&self, x: f64) -> String {
        format!("{x:.1}").replace('.', &self.decimal_separator)
    }

    /// "1 minute", "14 minutes", "1 h", "3 h 10 min".
    pub(crate) fn duration(&self, d: Duration) -> String {
        let m = minutes(d);
        match (m / 60, m % 60) {
            (0, 1) => self.dur_minute_one.clone(),
            (0, m) => fill(&self.dur_minutes, &[("n", &m.to_string())]),
            (h, 0) => fill(&self.dur_hours, &[("h", &h.to_string())]),
            (h, m) => fill(
                &self.dur_hours_minutes,
                &[("h", &h.to_string()), ("m", &m.to_string())],
            ),
        }
    }

    /// "1 more minute", "14 more minutes", "1 h more".
    fn more(&self, d: Duration) -> String {
        match minutes(d) {
            1 => self.more_minute_one.clone(),
            m if m < 60 => fill(&self.more_minutes, &[("n", &m.to_string())]),
            _ => fill(&self.more_long, &[("d", &self.duration(d))]),
        }
    }

    /// A whole number of days ("30 days").
    pub(crate) fn days(&self, d: Duration) -> String {
        let days = d.as_secs() / 86_400;
        if days >= 1 {
            fill(&self.days, &[("n", &days.to_string())])
        } else {
            self.duration(d)
        }
    }

    fn pool(&self, pool: Pool) -> &str {
        match pool {
            Pool::ComponentAndCause => &self.pool_component_cause,
            Pool::Cause => &self.pool_cause,
            Pool::All => &self.pool_all,
        }
    }

    fn basis(&self, basis: &Basis) -> String {
        let template = match (basis.source, basis.n == 1) {
            (Source::Local, true) => &self.basis_local_one,
            (Source::Local, false) => &self.basis_local,
            (Source::Upstream, true) => &self.basis_upstream_one,
            (Source::Upstream, false) => &self.basis_upstream,
        };
        fill(template, &[("n", &basis.n.to_string())])
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Whole minutes, rounded to the nearest, at least 1 (as in
/// [`crate::eta`]).
fn minutes(d: Duration) -> u64 {
    ((d.as_secs() + 30) / 60).max(1)
}

/// The sentence for a restoration estimate in `lang`, for an incident that
/// has lasted `elapsed`; the same numbers in every language, and in
/// English exactly [`crate::eta::sentence`].
pub fn eta_sentence(lang: Lang, eta: &Eta, elapsed: Duration) -> String {
    let t = lang.messages();
    match eta {
        Eta::Override { remaining } => {
            fill(&t.eta_override, &[("remaining", &t.duration(*remaining))])
        }
        Eta::Estimate { median, p90, basis } => {
            let mut s = fill(
                &t.eta_estimate,
                &[
                    ("pool", t.pool(basis.pool)),
                    ("elapsed", &t.duration(elapsed)),
                    ("median", &t.more(*median)),
                ],
            );
            if let Some(p90) = p90 {
                let p90_words = if *median < HOUR && *p90 < HOUR {
                    fill(&t.eta_p90_bare, &[("n", &minutes(*p90).to_string())])
                } else {
                    t.duration(*p90)
                };
                s.push_str(&fill(&t.eta_p90, &[("p90", &p90_words)]));
            }
            s.push_str(&fill(&t.eta_based, &[("basis", &t.basis(basis))]));
            s
        }
        Eta::LongerThanMost { p90, basis } => fill(
            &t.eta_longer,
            &[("basis", &t.basis(basis)), ("p90", &t.duration(*p90))],
        ),
        Eta::NotEnoughHistory => t.eta_not_enough.clone(),
    }
}
