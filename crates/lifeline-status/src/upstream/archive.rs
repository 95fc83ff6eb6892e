//! The archive of providers' published incidents, and its use as history
//! for restoration estimates.
//!
//! Statuspage's `incidents.json` and incident.io's compatible one list only
//! the latest 50 incidents, and feeds fewer, so every incident the poller
//! sees is upserted here by provider and id: polling repeatedly builds a
//! history longer than any one read. [`past_incidents`] turns it into
//! [`PastIncident`]s of [`Source::Upstream`], kept apart from Lifeline's own.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use lifeline_store::{Result, StoreError};

use super::parse::UpstreamIncident;
use crate::eta::{Observed, PastIncident, Source};

/// One archived provider incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedIncident {
    /// Provider name as in the config.
    pub provider: String,
    /// The provider's id for it; unique per provider.
    pub id: String,
    /// Its title.
    pub name: String,
    /// Its latest status, in the provider's spelling.
    pub status: String,
    /// Its impact, if the provider gives one.
    pub impact: Option<String>,
    /// Names of the components it affected, if given.
    pub components: Vec<String>,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it started, if the provider says (else `created_at` is used).
    pub started_at: Option<i64>,
    /// When it was resolved (unix ms), if it is.
    pub resolved_at: Option<i64>,
    /// When it last changed (unix ms).
    pub updated_at: i64,
    /// Link to it.
    pub shortlink: Option<String>,
    /// When the poller last saw it listed (unix ms). For an incident still
    /// open, the last time it was known to be open.
    pub seen_at: i64,
}

impl ArchivedIncident {
    /// The archive record of `incident` of `provider`, seen at `seen_at`.
    pub fn from_upstream(provider: &str, incident: &UpstreamIncident, seen_at: i64) -> Self {
        ArchivedIncident {
            provider: provider.to_owned(),
            id: incident.id.clone(),
            name: incident.name.clone(),
            status: incident.status.clone(),
            impact: incident.impact.clone(),
            components: incident.components.clone(),
            created_at: incident.created_at,
            started_at: incident.started_at,
            resolved_at: incident
                .resolved_at
                .or_else(|| incident.is_resolved().then_some(incident.updated_at)),
            updated_at: incident.updated_at,
            shortlink: incident.shortlink.clone(),
            seen_at,
        }
    }
}

/// Where provider incidents are archived. Implemented by the store (a table
/// keyed by provider and id; each method one transaction) and by
/// [`MemoryArchive`]. Synchronous like [`lifeline_store::Store`]: the
/// poller calls it from a blocking thread.
pub trait Archive: Send + Sync {
    /// Inserts each incident, or updates the one with the same provider and
    /// id. An update replaces every field, except that a record older than
    /// the stored one (smaller `updated_at`, e.g. from a stale cache) only
    /// moves `seen_at` forward. Returns how many were new.
    fn upsert(&self, incidents: &[ArchivedIncident]) -> Result<usize>;

    /// A provider's incidents created at or after `since_ms`, newest first.
    fn incidents(&self, provider: &str, since_ms: i64) -> Result<Vec<ArchivedIncident>>;
}

/// An [`Archive`] in memory: for tests, and for a gateway without a store.
#[derive(Debug, Default)]
pub struct MemoryArchive {
    inner: Mutex<BTreeMap<(String, String), ArchivedIncident>>,
}

impl MemoryArchive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Archive for MemoryArchive {
    fn upsert(&self, incidents: &[ArchivedIncident]) -> Result<usize> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let mut new = 0;
        for incident in incidents {
            let key = (incident.provider.clone(), incident.id.clone());
            match inner.get_mut(&key) {
                Some(stored) if stored.updated_at > incident.updated_at => {
                    stored.seen_at = stored.seen_at.max(incident.seen_at);
                }
                Some(stored) => *stored = incident.clone(),
                None => {
                    inner.insert(key, incident.clone());
                    new += 1;
                }
            }
        }
        Ok(new)
    }

    fn incidents(&self, provider: &str, since_ms: i64) -> Result<Vec<ArchivedIncident>> {
        let inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let mut out: Vec<ArchivedIncident> = inner
            .values()
            .filter(|i| i.provider == provider && i.created_at >= since_ms)
            .cloned()
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }
}

/// The component an archived incident counts for in restoration estimates:
/// the provider's component name when it names exactly one, else `"all"`
/// (none named, or several: it is not one component's incident).
pub fn eta_component(incident: &ArchivedIncident) -> String {
    match incident.components.as_slice() {
        [one] => one.clone(),
        _ => "all".to_owned(),
    }
}

/// The cause class of a provider incident, from its title and impact, in
/// the classes Lifeline's own incidents use. The title is matched
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
pub fn cause_class(name: &str, impact: Option<&str>) -> &'static str {
    let title = name.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| starts_a_word(&title, w));
    if any(&["maintenance", "scheduled"]) {
        "maintenance"
    } else if any(&["rate limit", "429", "capacity", "overload", "quota"]) {
        "rate_limited"
    } else if any(&["timeout", "timing out", "timed out", "hang"]) {
        "timeouts"
    } else if any(&["auth", "401", "403", "api key", "permission", "login"]) {
        "misconfiguration"
    } else if any(&[
        "error",
        "outage",
        "unavailable",
        "down",
        "fail",
        "disruption",
        "not loading",
    ]) {
        "provider_errors"
    } else if any(&["latency", "slow", "delay", "degraded", "performance"])
        || impact == Some("none")
    {
        "slowness"
    } else {
        "provider_errors"
    }
}

/// Archived incidents as history for restoration estimates
/// ([`Source::Upstream`]).
///
/// Start is `started_at`, else `created_at`. A resolved incident lasted
/// `resolved_at − start`; one with no positive duration (backfilled with
/// only a "resolved" update, or an RSS entry with one date) is dropped. An
/// open incident is right-censored at its age when last seen open,
/// `seen_at − start` (an incident that dropped off the provider's list
/// unresolved keeps the age it was last known to have, not a growing one).
/// Component: [`eta_component`]; cause: [`cause_class`].
pub fn past_incidents(archived: &[ArchivedIncident]) -> Vec<PastIncident> {
    archived
        .iter()
        .filter_map(|a| {
            let start = a.started_at.unwrap_or(a.created_at);
            let observed = match a.resolved_at {
                Some(end) => Observed::Resolved(positive(end - start)?),
                None => Observed::OpenFor(positive(a.seen_at - start)?),
            };
            Some(PastIncident {
                component: eta_component(a),
                cause: cause_class(&a.name, a.impact.as_deref()).to_owned(),
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
