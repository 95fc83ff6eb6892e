//! What the poller archives, and the archive's use as history for
//! restoration estimates.
//!
//! Statuspage's `incidents.json` and incident.io's compatible one list only
//! the latest 50 incidents, and feeds fewer, so every incident the poller
//! sees is upserted into the store's archive
//! ([`lifeline_store::UpstreamStore`], by provider and id): polling
//! repeatedly builds a history longer than any one read. [`archive_record`]
//! makes the store's record of a parsed incident; [`past_incidents`] turns
//! the archive back into [`PastIncident`]s of [`Source::Upstream`], kept
//! apart from Lifeline's own.

use std::time::Duration;

use lifeline_store::upstream::{ArchivedIncident, UpstreamIncident as ArchiveRecord};

use super::parse::UpstreamIncident;
use crate::engine::Cause;
use crate::eta::{Observed, PastIncident, Source};

/// The store's record of `incident` as `provider` published it.
///
/// A resolved incident without a `resolved_at` (a feed entry, an
/// incident.io copy without the field) is taken as resolved at its
/// `updated_at`. An impact the source does not give is stored as `""`
/// (the store's column is not optional), which [`past_incidents`] reads
/// back as unknown. Components are sorted and deduplicated, as the store
/// returns them.
pub fn archive_record(provider: &str, incident: &UpstreamIncident) -> ArchiveRecord {
    let mut components = incident.components.clone();
    components.sort();
    components.dedup();
    ArchiveRecord {
        provider: provider.to_owned(),
        external_id: incident.id.clone(),
        name: incident.name.clone(),
        status: incident.status.clone(),
        impact: incident.impact.clone().unwrap_or_default(),
        components,
        created_at: incident.created_at,
        started_at: incident.started_at,
        resolved_at: incident
            .resolved_at
            .or_else(|| incident.is_resolved().then_some(incident.updated_at)),
        updated_at: incident.updated_at,
        shortlink: incident.shortlink.clone(),
    }
}

/// The component an archived incident counts for in restoration estimates:
/// the provider's component name when it names exactly one, else `"all"`
/// (none named, or several: it is not one component's incident).
pub fn eta_component(incident: &ArchiveRecord) -> String {
    match incident.components.as_slice() {
        [one] => one.clone(),
        _ => "all".to_owned(),
    }
}

/// The cause class of a provider incident, from its title and impact, in
/// the classes Lifeline's own incidents use ([`Cause`], so the "same
/// cause" pools of restoration estimates line up). The title is matched
/// case-insensitively, each word at the start of a word of the title
/// (`fail` matches "failures", `hang` does not match "change"), first rule
/// first:
///
/// 1. `maintenance` or `scheduled` → `maintenance`;
/// 2. `rate limit`, `429`, `capacity`, `overload`, `quota` → `rate_limited`;
/// 3. `timeout`, `timing out`, `timed out`, `hang` → `timeouts`;
/// 4. `auth`, `401`, `403`, `api key`, `permission`, `login` →
///    `misconfiguration` (requests rejected as unauthorised);
/// 5. `error`, `outage`, `unavailable`, `down`, `fail`, `disruption`,
///    `not loading` → `provider_errors`;
/// 6. `latency`, `slow`, `delay`, `degraded`, `performance` → `slowness`;
/// 7. otherwise by impact: `none` → `slowness` (nothing failed), anything
///    else → `provider_errors`.
///
/// Errors win over slowness because "elevated errors and latency" is
/// foremost an error incident.
pub fn cause_class(name: &str, impact: Option<&str>) -> Cause {
    let title = name.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| starts_a_word(&title, w));
    if any(&["maintenance", "scheduled"]) {
        Cause::Maintenance
    } else if any(&["rate limit", "429", "capacity", "overload", "quota"]) {
        Cause::RateLimited
    } else if any(&["timeout", "timing out", "timed out", "hang"]) {
        Cause::Timeouts
    } else if any(&["auth", "401", "403", "api key", "permission", "login"]) {
        Cause::Misconfiguration
    } else if any(&[
        "error",
        "outage",
        "unavailable",
        "down",
        "fail",
        "disruption",
        "not loading",
    ]) {
        Cause::ProviderErrors
    } else if any(&["latency", "slow", "delay", "degraded", "performance"])
        || impact == Some("none")
    {
        Cause::Slowness
    } else {
        Cause::ProviderErrors
    }
}

/// Archived incidents (as [`lifeline_store::UpstreamStore::upstream_incidents`]
/// returns them) as history for restoration estimates
/// ([`Source::Upstream`]), in the same order.
///
/// Start is `started_at`, else `created_at`. A resolved incident lasted
/// `resolved_at − start`; one with no positive duration (backfilled with
/// only a "resolved" update, or an RSS entry with one date) is dropped. An
/// open incident is right-censored at its age when last seen open,
/// `last_seen_at − start` (an incident that dropped off the provider's list
/// unresolved keeps the age it was last known to have, not a growing one).
/// Component: [`eta_component`]; cause: [`cause_class`] (an impact stored
/// as `""` is unknown).
pub fn past_incidents(archived: &[ArchivedIncident]) -> Vec<PastIncident> {
    archived
        .iter()
        .filter_map(|archived| {
            let a = &archived.incident;
            let start = a.started_at.unwrap_or(a.created_at);
            let observed = match a.resolved_at {
                Some(end) => Observed::Resolved(positive(end - start)?),
                None => Observed::OpenFor(positive(archived.last_seen_at - start)?),
            };
            let impact = Some(a.impact.as_str()).filter(|i| !i.is_empty());
            Some(PastIncident {
                component: eta_component(a),
                cause: cause_class(&a.name, impact).as_str().to_owned(),
                source: Source::Upstream,
                observed,
            })
        })
        .collect()
}

/// Whether `word` occurs in `text` starting at a word boundary.
fn starts_a_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(word)
        .any(|(at, _)| at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
}

fn positive(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}
