//! The rules without I/O: early warning, the archive as history, cause
//! classes, and the archive record's unknown impact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lifeline_store::upstream::{ArchivedIncident, UpstreamIncident as ArchiveRecord};

use super::{MIN, NOW};
use crate::eta::{Observed, Source};
use crate::upstream::*;

// === early warning ===

#[test]
fn early_warning_rules() {
    let config = SourceConfig::new("p", Kind::IncidentIo, "http://x");
    let mut r = Reading::unknown(&config);
    assert!(!early_warning(&r, &["Chat"]), "unknown is never an outage");
    r.report.indicator = Some("minor".into());
    r.components = vec![UpstreamComponent {
        name: "Chat Completions".into(),
        status: "degraded_performance".into(),
    }];
    assert!(!early_warning(&r, &["chat completions"]));
    r.components[0].status = "full_outage".into();
    assert!(early_warning(&r, &["chat completions"]));
    assert!(!early_warning(&r, &["Embeddings"]));
    r.components.clear();
    let incident = UpstreamIncident {
        id: "1".into(),
        name: "Increased error rates for Chat Completions".into(),
        status: "investigating".into(),
        impact: Some("minor".into()),
        components: vec![],
        created_at: NOW,
        started_at: None,
        resolved_at: None,
        updated_at: NOW,
        shortlink: None,
    };
    r.unresolved = vec![incident.clone()];
    assert!(
        early_warning(&r, &["Chat Completions"]),
        "named in the title"
    );
    r.unresolved[0].status = "monitoring".into();
    assert!(
        !early_warning(&r, &["Chat Completions"]),
        "a fix is in place"
    );
    r.unresolved[0] = UpstreamIncident {
        impact: Some("none".into()),
        ..incident.clone()
    };
    assert!(!early_warning(&r, &["Chat Completions"]), "no impact");
    r.unresolved[0] = UpstreamIncident {
        components: vec!["Responses".into()],
        ..incident
    };
    assert!(
        !early_warning(&r, &["Chat Completions"]),
        "another component"
    );
    r.report.indicator = Some("critical".into());
    assert!(early_warning(&r, &["Chat Completions"]));
    r.stale = true;
    assert!(
        !early_warning(&r, &["Chat Completions"]),
        "stale is not evidence"
    );
}

// === the archive as history ===

#[test]
fn durations_run_from_the_start_and_open_ones_are_censored_when_last_seen() {
    let archived = |name: &str, status: &str, started_at, resolved_at| ArchivedIncident {
        incident: ArchiveRecord {
            provider: "openai".into(),
            external_id: name.into(),
            name: name.into(),
            status: status.into(),
            impact: "minor".into(),
            components: Vec::new(),
            created_at: NOW - 50 * MIN,
            started_at,
            resolved_at,
            updated_at: NOW - 50 * MIN,
            shortlink: None,
        },
        first_seen_at: NOW - 50 * MIN,
        last_seen_at: NOW - 10 * MIN,
    };
    let past = past_incidents(&[
        // Began before it was published: from `started_at`.
        archived(
            "Elevated error rates",
            "resolved",
            Some(NOW - 60 * MIN),
            Some(NOW - 40 * MIN),
        ),
        // No `started_at`, and open when last seen (it then dropped off the
        // provider's list): from `created_at`, censored at `last_seen_at`.
        archived("Increased latency for GPT-4o", "investigating", None, None),
    ]);
    assert_eq!(
        past[0].observed,
        Observed::Resolved(Duration::from_secs(20 * 60))
    );
    assert_eq!(past[0].cause, "provider_errors");
    assert_eq!(
        past[1].observed,
        Observed::OpenFor(Duration::from_secs(40 * 60))
    );
    assert_eq!(past[1].cause, "slowness");
    assert!(past.iter().all(|p| p.source == Source::Upstream));
}

// === cause classes ===

#[test]
fn cause_classes_from_titles() {
    let cases = [
        ("Scheduled maintenance of the batch API", "maintenance"),
        ("Elevated 429s on Claude Opus", "rate_limited"),
        ("Capacity constraints for GPT-5", "rate_limited"),
        ("Requests timing out for Gemini", "timeouts"),
        ("Streams hang after the first token", "timeouts"),
        ("Changes to the console layout", "provider_errors"),
        ("Authentication failures for API keys", "misconfiguration"),
        ("Elevated error rates and latency", "provider_errors"),
        ("Partial outage of Embeddings", "provider_errors"),
        ("Elevated latency on Chat Completions", "slowness"),
        ("Slowdown in image generation", "slowness"),
    ];
    for (title, cause) in cases {
        assert_eq!(cause_class(title, Some("minor")).as_str(), cause, "{title}");
    }
    assert_eq!(
        cause_class("Something is off", Some("none")).as_str(),
        "slowness"
    );
    assert_eq!(
        cause_class("Something is off", None).as_str(),
        "provider_errors"
    );
}

#[test]
fn an_unknown_impact_is_read_back_as_unknown() {
    let parsed = UpstreamIncident {
        id: "1".into(),
        name: "Something is off".into(),
        status: "resolved".into(),
        impact: None,
        components: vec!["b".into(), "a".into(), "b".into()],
        created_at: NOW - 60 * MIN,
        started_at: None,
        resolved_at: None,
        updated_at: NOW,
        shortlink: None,
    };
    let record = archive_record("p", &parsed);
    assert_eq!(record.impact, "");
    assert_eq!(record.components, ["a", "b"]);
    // Resolved by its status: at its last update.
    assert_eq!(record.resolved_at, Some(NOW));
    let archived = |incident| ArchivedIncident {
        incident,
        first_seen_at: NOW,
        last_seen_at: NOW,
    };
    let past = past_incidents(&[archived(record.clone())]);
    assert_eq!(past[0].cause, "provider_errors");
    assert_eq!(
        past[0].observed,
        Observed::Resolved(Duration::from_secs(3600))
    );
    // An impact of "none" is known: nothing failed.
    let none = archive_record(
        "p",
        &UpstreamIncident {
            impact: Some("none".into()),
            ..parsed
        },
    );
    assert_eq!(past_incidents(&[archived(none)])[0].cause, "slowness");
}
