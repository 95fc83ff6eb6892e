//! The words of automatic incidents: titles and update bodies in plain
//! English, from the numbers. Bodies are plain text (valid Markdown); the
//! renderers escape them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::evidence::{Breaker, Cause, Evidence};
use super::settings::MINUTE_MS;
use crate::page::ComponentStatus;
use crate::render::time::human;
use crate::sli::Minute;

/// What an incident text is drawn from.
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    /// The affected components' long names.
    pub names: &'a [String],
    /// The worst of their statuses.
    pub status: ComponentStatus,
    /// When the problem began (unix ms).
    pub since: i64,
    /// Their traffic over the last minutes.
    pub window: &'a Minute,
    /// That window's length in minutes.
    pub window_minutes: u32,
    /// The latency threshold, ms.
    pub threshold_ms: u64,
    pub cause: Cause,
    pub evidence: &'a Evidence,
    /// Name the deployments (`show_providers`); otherwise they are
    /// counted, never named.
    pub name_deployments: bool,
}

/// "37.5 %", "0.14 %".
pub(crate) fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p != 0.0 && p.abs() < 1.0 {
        format!("{p:.2} %")
    } else {
        format!("{p:.1} %")
    }
}

/// "1 minute", "25 minutes".
pub(crate) fn minutes(ms: i64) -> String {
    let m = (ms / MINUTE_MS).max(0);
    if m == 1 {
        "1 minute".to_string()
    } else {
        format!("{m} minutes")
    }
}

fn status_words(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::MajorOutage => "Major outage",
        ComponentStatus::PartialOutage => "Partial outage",
        ComponentStatus::DegradedPerformance => "Degraded performance",
        ComponentStatus::UnderMaintenance => "Maintenance",
        ComponentStatus::Operational => "Recovered",
    }
}

fn cause_short(cause: Cause) -> &'static str {
    match cause {
        Cause::ProviderErrors => "upstream errors",
        Cause::RateLimited => "upstream rate limiting",
        Cause::Timeouts => "requests timing out",
        Cause::Slowness => "slow responses",
        Cause::Misconfiguration => "upstream rejects credentials",
        Cause::Maintenance => "capacity drained for maintenance",
    }
}

fn cause_long(cause: Cause) -> &'static str {
    match cause {
        Cause::ProviderErrors => "the upstream provider answers with errors or drops connections",
        Cause::RateLimited => "the upstream provider is rate-limiting requests",
        Cause::Timeouts => "requests to the upstream provider time out or hang",
        Cause::Slowness => "answers are slower than the latency objective",
        Cause::Misconfiguration => {
            "the upstream provider refuses the gateway's credentials or address (401/403, redirects)"
        }
        Cause::Maintenance => "deployments are drained for scheduled maintenance",
    }
}

/// The verb for `names`: `one` for a single subject, `many` for several.
fn verb<'a>(names: &[String], one: &'a str, many: &'a str) -> &'a str {
    if names.len() > 1 {
        many
    } else {
        one
    }
}

fn names_words(names: &[String]) -> String {
    match names {
        [] => "The service".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The title: "Partial outage of Chat Completions (gpt-4o): upstream errors".
pub(crate) fn title(f: &Facts<'_>) -> String {
    format!(
        "{} of {}: {}",
        status_words(f.status),
        names_words(f.names),
        cause_short(f.cause)
    )
}

/// The numbers of the window, one or two sentences.
pub(crate) fn numbers(f: &Facts<'_>) -> String {
    let w = f.window;
    let span = minutes(i64::from(f.window_minutes) * MINUTE_MS);
    let mut s = String::new();
    if w.requests > 0 {
        let failed = w.requests.saturating_sub(w.good);
        let _ = write!(
            s,
            "In the last {span}, {} of {} requests failed ({failed}).",
            percent(failed as f64 / w.requests as f64),
            w.requests
        );
        if w.streams_broken > 0 {
            let _ = write!(
                s,
                " {} of {} streams broke off.",
                w.streams_broken,
                w.streams_broken + w.streams_completed
            );
        }
        if let (Some(p50), Some(p99)) = (w.latency_quantile_ms(0.5), w.latency_quantile_ms(0.99)) {
            if f.cause == Cause::Slowness || p99 > f.threshold_ms as f64 {
                let _ = write!(
                    s,
                    " Answer time: median {p50:.0} ms, 99th percentile {p99:.0} ms (objective {} ms).",
                    f.threshold_ms
                );
            }
        }
    } else if w.probes_ok + w.probes_failed > 0 {
        let _ = write!(
            s,
            "No requests in the last {span}; {} of {} health probes failed.",
            w.probes_failed,
            w.probes_ok + w.probes_failed
        );
    } else {
        let _ = write!(s, "No requests or probes in the last {span}.");
    }
    s
}

/// Which deployments fail and where traffic went: named with
/// `show_providers`, otherwise only counted ("1 of 2 upstream deployments
/// failing: status_error 40 (40 of 40 attempts failed; circuit open on
/// 1)."), since deployment ids carry provider and upstream model names.
pub(crate) fn evidence(f: &Facts<'_>) -> String {
    if f.name_deployments {
        named_evidence(f.evidence)
    } else {
        counted_evidence(f.evidence)
    }
}

fn counted_evidence(e: &Evidence) -> String {
    let mut s = String::new();
    if !e.failing.is_empty() {
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &e.failing {
            for (k, n) in &d.kinds {
                *kinds.entry(k.as_str()).or_default() += n;
            }
        }
        let mut kinds: Vec<(&str, u64)> = kinds.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let kinds: Vec<String> = kinds
            .iter()
            .take(3)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let attempts: u64 = e.failing.iter().map(|d| d.attempts).sum();
        let failed: u64 = e.failing.iter().map(|d| d.failed).sum();
        let open = e
            .failing
            .iter()
            .filter(|d| d.breaker == Breaker::Open)
            .count();
        let mut parts = Vec::new();
        if attempts > 0 {
            parts.push(format!("{failed} of {attempts} attempts failed"));
        }
        if open > 0 {
            parts.push(format!("circuit open on {open}"));
        }
        let total = e.serving.max(e.failing.len());
        let _ = write!(
            s,
            "{} of {total} upstream {} failing",
            e.failing.len(),
            if total == 1 {
                "deployment"
            } else {
                "deployments"
            }
        );
        if !kinds.is_empty() {
            let _ = write!(s, ": {}", kinds.join(", "));
        }
        if !parts.is_empty() {
            let _ = write!(s, " ({})", parts.join("; "));
        }
        s.push('.');
        match e.moved_to.len() {
            0 => s.push_str(" No other deployment could take the traffic."),
            1 => s.push_str(" Traffic was moved to 1 other deployment."),
            n => {
                let _ = write!(s, " Traffic was moved to {n} other deployments.");
            }
        }
    }
    if !e.in_maintenance.is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        let n = e.in_maintenance.len();
        let _ = write!(
            s,
            "{} drained for maintenance.",
            if n == 1 {
                "1 deployment is".to_string()
            } else {
                format!("{n} deployments are")
            }
        );
    }
    s
}

fn named_evidence(e: &Evidence) -> String {
    let mut s = String::new();
    if !e.failing.is_empty() {
        let list: Vec<String> = e
            .failing
            .iter()
            .map(|d| {
                let mut parts = Vec::new();
                match d.breaker {
                    Breaker::Open => parts.push("circuit open".to_string()),
                    Breaker::HalfOpen => parts.push("circuit half-open".to_string()),
                    Breaker::Closed => {}
                }
                if d.attempts > 0 {
                    parts.push(format!("{} of {} attempts failed", d.failed, d.attempts));
                }
                let kinds: Vec<String> = d
                    .kinds
                    .iter()
                    .take(3)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                if !kinds.is_empty() {
                    parts.push(kinds.join(", "));
                }
                if parts.is_empty() {
                    d.id.clone()
                } else {
                    format!("{} ({})", d.id, parts.join("; "))
                }
            })
            .collect();
        let _ = write!(s, "Failing deployments: {}.", list.join(", "));
        if e.moved_to.is_empty() {
            s.push_str(" No other deployment could take the traffic.");
        } else {
            let _ = write!(s, " Traffic was moved to {}.", e.moved_to.join(", "));
        }
    }
    if !e.in_maintenance.is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        let _ = write!(
            s,
            "Drained for maintenance: {}.",
            e.in_maintenance.join(", ")
        );
    }
    s
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The opening update.
pub(crate) fn opening(f: &Facts<'_>) -> String {
    let lead = format!(
        "{}: {} since {}.",
        status_words(f.status),
        names_words(f.names),
        human(f.since)
    );
    let cause = format!("Likely cause: {}.", cause_long(f.cause));
    join(&[&lead, &numbers(f), &cause, &evidence(f)])
}

/// The update when the failing deployments are known.
pub(crate) fn identified(f: &Facts<'_>) -> String {
    let lead = format!("Identified: {}.", cause_long(f.cause));
    join(&[&lead, &evidence(f), &numbers(f)])
}

/// The update when the problem is back during monitoring.
pub(crate) fn relapse(f: &Facts<'_>, at: i64) -> String {
    let lead = format!(
        "The problem is back since {}: {}.",
        human(at),
        status_words(f.status).to_lowercase()
    );
    let cause = format!("Likely cause: {}.", cause_long(f.cause));
    join(&[&lead, &numbers(f), &cause, &evidence(f)])
}

/// The update after recovery.
pub(crate) fn monitoring(f: &Facts<'_>, at: i64) -> String {
    let lead = format!(
        "{} {} normally again since {}.",
        names_words(f.names),
        verb(f.names, "works", "work"),
        human(at)
    );
    join(&[&lead, &numbers(f), "We are monitoring."])
}

/// The regular update while nothing changed.
pub(crate) fn still(f: &Facts<'_>, monitoring_since: Option<i64>, next_in_ms: i64) -> String {
    let lead = match monitoring_since {
        Some(at) => format!(
            "Still monitoring: {} {} normally since {}.",
            names_words(f.names),
            verb(f.names, "works", "work"),
            human(at)
        ),
        None => format!(
            "Still ongoing: {} of {} since {}.",
            status_words(f.status).to_lowercase(),
            names_words(f.names),
            human(f.since)
        ),
    };
    let next = format!("Next update within {}.", minutes(next_in_ms));
    let evidence = if monitoring_since.is_some() {
        String::new()
    } else {
        evidence(f)
    };
    join(&[&lead, &numbers(f), &evidence, &next])
}

/// The closing update.
pub(crate) fn resolved(names: &[String], since: i64, recovered: i64, stable_ms: i64) -> String {
    format!(
        "Resolved: {} {} worked normally for {} since {}. The problem lasted from {} to {} ({}).",
        names_words(names),
        verb(names, "has", "have"),
        minutes(stable_ms),
        human(recovered),
        human(since),
        human(recovered),
        minutes(recovered - since)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_percent() {
        assert_eq!(human(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 13:07:59 UTC
        assert_eq!(human(1_709_212_079_000), "2024-02-29 13:07 UTC");
        assert_eq!(percent(0.375), "37.5 %");
        assert_eq!(percent(0.0014), "0.14 %");
        assert_eq!(percent(0.0), "0.0 %");
        assert_eq!(minutes(60_000), "1 minute");
        assert_eq!(minutes(25 * 60_000), "25 minutes");
    }
}
