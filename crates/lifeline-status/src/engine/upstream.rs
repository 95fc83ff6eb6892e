//! The providers' archived incidents as restoration-time history.
//!
//! The store archives what each provider's status page published
//! ([`ArchivedIncident`]); [`past_incidents`] turns them into
//! [`PastIncident`]s of [`Source::Upstream`] for
//! [`Engine::set_upstream_history`](super::Engine::set_upstream_history).
//! An incident's duration runs from its `started_at` (or `created_at`) to
//! its `resolved_at`; one without a resolution is censored at the last time
//! a poll saw it (its end was lost, or it is still open). Its component is
//! the provider's name and its cause class is read off the title
//! ([`cause_of_title`]), so that the "same cause" pool can use it.

use std::time::Duration;

use lifeline_store::upstream::ArchivedIncident;

use super::evidence::Cause;
use crate::eta::{Observed, PastIncident, Source};

/// The cause class a provider's incident title suggests: latency or
/// slowness → `slowness`; rate limits, 429 or capacity → `rate_limited`;
/// timeouts → `timeouts`; authentication, API keys, 401/403 →
/// `misconfiguration`; anything else → `provider_errors`.
pub fn cause_of_title(title: &str) -> Cause {
    let t = title.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["latency", "slow", "delay"]) {
        Cause::Slowness
    } else if has(&["rate limit", "rate-limit", "429", "capacity"]) {
        Cause::RateLimited
    } else if has(&["timeout", "timing out", "timed out"]) {
        Cause::Timeouts
    } else if has(&["auth", "api key", "401", "403", "permission"]) {
        Cause::Misconfiguration
    } else {
        Cause::ProviderErrors
    }
}

/// The archive as history for restoration estimates.
pub fn past_incidents(archived: &[ArchivedIncident]) -> Vec<PastIncident> {
    let span = |from: i64, to: i64| Duration::from_millis(u64::try_from(to - from).unwrap_or(0));
    archived
        .iter()
        .map(|a| {
            let i = &a.incident;
            let start = i.started_at.unwrap_or(i.created_at);
            PastIncident {
                component: i.provider.clone(),
                cause: cause_of_title(&i.name).as_str().to_string(),
                source: Source::Upstream,
                observed: match i.resolved_at {
                    Some(end) => Observed::Resolved(span(start, end)),
                    None => Observed::OpenFor(span(start, a.last_seen_at)),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_store::upstream::UpstreamIncident;

    #[test]
    fn archived_incidents_become_upstream_history() {
        let incident = |name: &str, started: Option<i64>, resolved: Option<i64>| ArchivedIncident {
            incident: UpstreamIncident {
                provider: "openai".into(),
                external_id: name.into(),
                name: name.into(),
                status: "resolved".into(),
                impact: "minor".into(),
                components: Vec::new(),
                created_at: 600_000,
                started_at: started,
                resolved_at: resolved,
                updated_at: 0,
                shortlink: None,
            },
            first_seen_at: 0,
            last_seen_at: 3_000_000,
        };
        let past = past_incidents(&[
            incident("Elevated error rates", Some(0), Some(1_200_000)),
            incident("Increased latency for GPT-4o", None, None),
        ]);
        assert_eq!(past[0].cause, "provider_errors");
        assert_eq!(
            past[0].observed,
            Observed::Resolved(Duration::from_secs(1200))
        );
        assert_eq!(past[0].source, Source::Upstream);
        assert_eq!(past[1].cause, "slowness");
        assert_eq!(
            past[1].observed,
            Observed::OpenFor(Duration::from_secs(2400))
        );
        assert_eq!(
            cause_of_title("API rate limits lowered"),
            Cause::RateLimited
        );
        assert_eq!(cause_of_title("Requests timing out"), Cause::Timeouts);
        assert_eq!(
            cause_of_title("Authentication failures"),
            Cause::Misconfiguration
        );
    }
}
