//! Upstream polling tests: real Statuspage, incident.io-shaped, Atom and
//! RSS fixtures served on 127.0.0.1, the archive they build, and sources
//! that fail (garbage, HTML, timeouts, oversized bodies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;
use crate::eta::{Observed, Source};

const STATUSPAGE_SUMMARY: &str = include_str!("fixtures/statuspage-summary.json");
const STATUSPAGE_INCIDENTS: &str = include_str!("fixtures/statuspage-incidents.json");
const INCIDENTIO_SUMMARY: &str = include_str!("fixtures/incidentio-summary.json");
const INCIDENTIO_INCIDENTS: &str = include_str!("fixtures/incidentio-incidents.json");
const ATOM: &str = include_str!("fixtures/history.atom");
const RSS: &str = include_str!("fixtures/feed.rss");

/// 2026-08-23T10:30:00Z.
const NOW: i64 = 1_787_481_000_000;
const MIN: i64 = 60_000;

fn ms(rfc3339: &str) -> i64 {
    parse::rfc3339(rfc3339).unwrap()
}

// === a status server on 127.0.0.1:0 ===

#[derive(Debug, Clone)]
enum Answer {
    Body(u16, &'static str, Bytes),
    Redirect(&'static str),
    Hang,
}

fn json(body: &str) -> Answer {
    Answer::Body(200, "application/json", Bytes::from(body.to_owned()))
}

#[derive(Clone, Default)]
struct Server {
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    base: String,
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            routes: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let routes = server.routes.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let routes = routes.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let answer = routes.lock().unwrap().get(req.uri().path()).cloned();
                        async move {
                            let mut response = http::Response::new(Full::new(Bytes::new()));
                            match answer {
                                None => *response.status_mut() = http::StatusCode::NOT_FOUND,
                                Some(Answer::Hang) => std::future::pending::<()>().await,
                                Some(Answer::Redirect(to)) => {
                                    *response.status_mut() = http::StatusCode::MOVED_PERMANENTLY;
                                    response
                                        .headers_mut()
                                        .insert(http::header::LOCATION, to.parse().unwrap());
                                }
                                Some(Answer::Body(status, content_type, body)) => {
                                    *response.status_mut() =
                                        http::StatusCode::from_u16(status).unwrap();
                                    response.headers_mut().insert(
                                        http::header::CONTENT_TYPE,
                                        content_type.parse().unwrap(),
                                    );
                                    *response.body_mut() = Full::new(body);
                                }
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    fn route(&self, path: &str, answer: Answer) {
        self.routes.lock().unwrap().insert(path.into(), answer);
    }
}

fn poller(
    config: SourceConfig,
) -> (
    Poller,
    tokio::sync::watch::Receiver<Reading>,
    Arc<MemoryArchive>,
) {
    let archive = Arc::new(MemoryArchive::new());
    let dyn_archive: Arc<dyn Archive> = archive.clone();
    let (poller, rx) = Poller::new(config, dyn_archive).unwrap();
    (poller.with_seed(3), rx, archive)
}

// === Statuspage ===

#[tokio::test]
async fn statuspage_summary_and_history() {
    let server = Server::start().await;
    server.route("/api/v2/summary.json", json(STATUSPAGE_SUMMARY));
    server.route("/api/v2/incidents.json", json(STATUSPAGE_INCIDENTS));
    let (mut poller, rx, archive) = poller(SourceConfig::new(
        "anthropic",
        Kind::Statuspage,
        &server.base,
    ));

    let reading = poller.poll_once(NOW).await;
    assert_eq!(*rx.borrow(), reading);
    let report = &reading.report;
    assert_eq!(report.provider, "anthropic");
    assert_eq!(report.source_url, server.base);
    assert_eq!(report.indicator.as_deref(), Some("minor"));
    assert_eq!(
        report.description.as_deref(),
        Some("Partially Degraded Service")
    );
    assert_eq!(report.fetched_at, Some(NOW));
    assert!(!reading.stale);
    assert_eq!(
        report.incidents,
        vec![crate::page::ProviderIncident {
            name: "Elevated errors on Claude Opus".into(),
            status: "identified".into(),
            started_at: ms("2026-08-23T10:00:00Z"),
            url: Some("https://stspg.io/p4xkf2b7".into()),
        }]
    );
    // Group components are left out.
    let names: Vec<&str> = reading.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Claude API (api.anthropic.com)", "claude.ai", "Claude Code"]
    );
    assert_eq!(
        reading.unresolved[0].components,
        ["Claude API (api.anthropic.com)"]
    );

    // Every incident of both lists is archived once, offsets normalised.
    let archived = archive.incidents("anthropic", 0).unwrap();
    let ids: Vec<&str> = archived.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "p4xkf2b7wq1m",
            "h7c2l9d0rt5v",
            "b3n8q1x6mz2k",
            "z9z9backfill"
        ]
    );
    let latency = &archived[1];
    assert_eq!(latency.status, "resolved");
    assert_eq!(latency.impact.as_deref(), Some("minor"));
    assert_eq!(latency.created_at, ms("2026-08-21T16:10:00Z"));
    assert_eq!(latency.started_at, Some(ms("2026-08-21T16:05:00Z")));
    assert_eq!(latency.resolved_at, Some(ms("2026-08-21T17:05:00Z")));
    assert_eq!(latency.updated_at, ms("2026-08-21T17:05:00Z"));
    assert_eq!(
        latency.shortlink.as_deref(),
        Some("https://stspg.io/h7c2l9d0")
    );
    assert_eq!(latency.seen_at, NOW);
    assert_eq!(archived[2].components, ["claude.ai", "Claude Code"]);
    assert_eq!(archived[2].status, "postmortem");

    // As history for estimates: durations from the start, the open one
    // censored at its age when seen, the backfilled one dropped.
    let past = past_incidents(&archived);
    assert_eq!(past.len(), 3);
    assert!(past.iter().all(|p| p.source == Source::Upstream));
    assert_eq!(past[0].component, "Claude API (api.anthropic.com)");
    assert_eq!(past[0].cause, "provider_errors");
    assert_eq!(
        past[0].observed,
        Observed::OpenFor(Duration::from_secs(30 * 60))
    );
    assert_eq!(past[1].cause, "slowness");
    assert_eq!(
        past[1].observed,
        Observed::Resolved(Duration::from_secs(60 * 60))
    );
    assert_eq!(past[2].component, "all");
    assert_eq!(past[2].cause, "misconfiguration");
    assert_eq!(
        past[2].observed,
        Observed::Resolved(Duration::from_secs(2 * 3600))
    );

    // Early warning: "minor" and a degraded component do not mark the API
    // degraded by themselves, but the open incident naming it does.
    assert!(early_warning(&reading, &["Claude API"]));
    assert!(!early_warning(&reading, &["Claude Code"]));
}

#[tokio::test]
async fn repeated_polls_of_the_latest_incidents_build_a_longer_history() {
    let server = Server::start().await;
    server.route("/api/v2/summary.json", json(STATUSPAGE_SUMMARY));
    server.route("/api/v2/incidents.json", json(STATUSPAGE_INCIDENTS));
    let (mut poller, _rx, archive) = poller(SourceConfig::new(
        "anthropic",
        Kind::Statuspage,
        &server.base,
    ));
    poller.poll_once(NOW).await;

    // Later the list has moved on: the open incident resolved, the oldest
    // fell off, a new one appeared.
    let mut later: serde_json::Value = serde_json::from_str(STATUSPAGE_INCIDENTS).unwrap();
    let incidents = later["incidents"].as_array_mut().unwrap();
    incidents.pop();
    incidents[0]["status"] = "resolved".into();
    incidents[0]["resolved_at"] = "2026-08-23T04:10:00.000-07:00".into();
    incidents[0]["updated_at"] = "2026-08-23T04:10:00.000-07:00".into();
    incidents.insert(
        0,
        serde_json::json!({"id": "new1", "name": "Elevated latency", "status": "investigating",
        "created_at": "2026-08-23T12:00:00.000Z", "updated_at": "2026-08-23T12:00:00.000Z"}),
    );
    let mut summary: serde_json::Value = serde_json::from_str(STATUSPAGE_SUMMARY).unwrap();
    summary["incidents"] = serde_json::json!([]);
    summary["status"] =
        serde_json::json!({"indicator": "none", "description": "All Systems Operational"});
    server.route("/api/v2/summary.json", json(&summary.to_string()));
    server.route("/api/v2/incidents.json", json(&later.to_string()));
    let reading = poller.poll_once(NOW + 120 * MIN).await;
    assert_eq!(reading.report.indicator.as_deref(), Some("none"));

    let archived = archive.incidents("anthropic", 0).unwrap();
    let ids: Vec<&str> = archived.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "new1",
            "p4xkf2b7wq1m",
            "h7c2l9d0rt5v",
            "b3n8q1x6mz2k",
            "z9z9backfill"
        ]
    );
    let resolved = &archived[1];
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.resolved_at, Some(ms("2026-08-23T11:10:00Z")));
    // The one that fell off keeps what was last seen of it.
    assert_eq!(archived[4].seen_at, NOW);
    assert_eq!(archived[1].seen_at, NOW + 120 * MIN);
    // Only archived since a time.
    assert_eq!(
        archive
            .incidents("anthropic", ms("2026-08-21T00:00:00Z"))
            .unwrap()
            .len(),
        3
    );
    assert!(archive.incidents("openai", 0).unwrap().is_empty());
}

// === incident.io ===

#[tokio::test]
async fn incident_io_json_with_missing_extra_and_unknown_values() {
    let server = Server::start().await;
    server.route("/api/v2/summary.json", json(INCIDENTIO_SUMMARY));
    server.route("/api/v2/incidents.json", json(INCIDENTIO_INCIDENTS));
    // Configured with a summary URL: the page root is derived.
    let url = format!("{}/api/v2/summary.json", server.base);
    let (mut poller, _rx, archive) = poller(SourceConfig::new("openai", Kind::IncidentIo, url));
    let reading = poller.poll_once(NOW).await;

    assert_eq!(reading.report.indicator.as_deref(), Some("major"));
    assert_eq!(reading.report.incidents.len(), 1);
    assert_eq!(
        reading.report.incidents[0].name,
        "Increased error rates for Chat Completions"
    );
    assert_eq!(
        reading.report.incidents[0].started_at,
        ms("2026-08-23T10:12:44Z")
    );
    let statuses: Vec<(&str, &str)> = reading
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("Chat Completions", "full_outage"),
            ("Embeddings", "operational"),
            ("Fine-tuning", "some_new_state")
        ]
    );

    // Incidents without an id or any time are skipped; the rest archived.
    let archived = archive.incidents("openai", 0).unwrap();
    assert_eq!(archived.len(), 3);
    let rate = archived
        .iter()
        .find(|a| a.id == "01K37AB0C2D4E6F8G0H2J4K6LM")
        .unwrap();
    assert_eq!(rate.impact, None);
    assert_eq!(rate.updated_at, ms("2026-08-20T07:00:00Z"));
    let past = past_incidents(&archived);
    let causes: Vec<(&str, &str)> = past
        .iter()
        .map(|p| (p.component.as_str(), p.cause.as_str()))
        .collect();
    assert_eq!(
        causes,
        [
            ("all", "provider_errors"),
            ("all", "slowness"),
            ("all", "rate_limited")
        ]
    );

    // Early warning from the indicator alone (major), for any API.
    assert!(early_warning(&reading, &["Embeddings"]));
}

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

// === feeds ===

#[tokio::test]
async fn atom_feed_entries_become_incidents() {
    let server = Server::start().await;
    server.route(
        "/history.atom",
        Answer::Body(
            200,
            "application/atom+xml",
            Bytes::from_static(ATOM.as_bytes()),
        ),
    );
    let url = format!("{}/history.atom", server.base);
    let (mut poller, _rx, archive) = poller(SourceConfig::new("example", Kind::Feed, url.clone()));
    let reading = poller.poll_once(NOW).await;

    assert_eq!(reading.report.source_url, url);
    assert_eq!(reading.report.indicator.as_deref(), Some("minor"));
    assert_eq!(reading.report.description, None);
    assert_eq!(
        reading.report.incidents,
        vec![crate::page::ProviderIncident {
            name: "Elevated errors on the Messages API".into(),
            status: "identified".into(),
            started_at: ms("2026-08-23T10:02:11Z"),
            url: Some("https://status.example-ai.com/incidents/p4xkf2b7wq1m".into()),
        }]
    );
    let archived = archive.incidents("example", 0).unwrap();
    let summary: Vec<(&str, Option<i64>)> = archived
        .iter()
        .map(|a| (a.status.as_str(), a.resolved_at))
        .collect();
    assert_eq!(
        summary,
        [
            ("identified", None),
            // The latest update says resolved; the oldest's "not yet
            // resolved" does not matter.
            ("resolved", Some(ms("2026-08-21T17:05:00Z"))),
            // No status word and over a day old: over.
            ("unknown", Some(ms("2026-08-10T08:40:00Z"))),
            // "Scheduled" in the title is its name; the content says completed.
            ("completed", Some(ms("2026-08-05T03:00:00Z"))),
        ]
    );
    assert_eq!(
        archived[1].id,
        "tag:status.example-ai.com,2005:Incident/26370001"
    );
    let past = past_incidents(&archived);
    assert_eq!(
        past[1].observed,
        Observed::Resolved(Duration::from_secs(3600))
    );
    assert_eq!(past[3].cause, "maintenance");
    assert!(early_warning(&reading, &["Messages API"]));
}

#[tokio::test]
async fn rss_feed_entries_become_incidents() {
    let server = Server::start().await;
    server.route(
        "/rss/bedrock-us-east-1.rss",
        Answer::Body(
            200,
            "application/rss+xml",
            Bytes::from_static(RSS.as_bytes()),
        ),
    );
    let url = format!("{}/rss/bedrock-us-east-1.rss", server.base);
    let (mut poller, _rx, archive) = poller(SourceConfig::new("bedrock", Kind::Feed, url));
    let reading = poller.poll_once(NOW).await;

    assert_eq!(reading.report.indicator.as_deref(), Some("minor"));
    assert_eq!(reading.report.incidents.len(), 1);
    let open = &reading.report.incidents[0];
    assert_eq!(
        open.name,
        "Informational message: Increased API error rates"
    );
    assert_eq!(open.status, "informational");
    assert_eq!(open.started_at, ms("2026-08-23T10:10:00Z"));
    let archived = archive.incidents("bedrock", 0).unwrap();
    assert_eq!(archived.len(), 2);
    assert_eq!(archived[1].status, "resolved");
    assert_eq!(archived[1].resolved_at, Some(ms("2026-08-20T21:45:00Z")));
    // RSS has one date per entry: no duration for the resolved one.
    let past = past_incidents(&archived);
    assert_eq!(past.len(), 1);
    assert_eq!(
        past[0].observed,
        Observed::OpenFor(Duration::from_secs(20 * 60))
    );

    // A wrong day of the week does not lose the date.
    let wrong = RSS.replace("Sun, 23 Aug 2026", "Sat, 23 Aug 2026");
    let snapshot = parse::feed(wrong.as_bytes(), NOW).unwrap();
    assert_eq!(snapshot.incidents[0].created_at, ms("2026-08-23T10:10:00Z"));
}

#[test]
fn a_recent_entry_without_a_status_word_is_open() {
    let atom = ATOM.replace("2026-08-10T08:40:00Z", "2026-08-23T08:40:00Z");
    let snapshot = parse::feed(atom.as_bytes(), NOW).unwrap();
    let console = snapshot
        .incidents
        .iter()
        .find(|i| i.name.starts_with("Console"))
        .unwrap();
    assert_eq!(
        (console.status.as_str(), console.is_resolved()),
        ("unknown", false)
    );
}

// === failures: source unknown, never an outage ===

#[tokio::test]
async fn garbage_html_and_errors_are_source_unknown_and_keep_the_last_report() {
    let server = Server::start().await;
    server.route("/api/v2/summary.json", json(STATUSPAGE_SUMMARY));
    server.route("/api/v2/incidents.json", json(STATUSPAGE_INCIDENTS));
    let (mut poller, rx, _archive) = poller(SourceConfig::new(
        "anthropic",
        Kind::Statuspage,
        &server.base,
    ));
    let good = poller.poll_once(NOW).await;
    assert!(early_warning(&good, &["Claude API"]));

    let failures = [
        json("{\"unexpected\": true}"),
        Answer::Body(200, "text/plain", Bytes::from_static(b"\x00\x01garbage")),
        Answer::Body(
            200,
            "text/html",
            Bytes::from_static(b"<html><title>Just a moment...</title></html>"),
        ),
        Answer::Body(503, "application/json", Bytes::from_static(b"{}")),
        Answer::Redirect("/"),
    ];
    for (i, failure) in failures.into_iter().enumerate() {
        server.route("/api/v2/summary.json", failure);
        let at = NOW + (i as i64 + 1) * MIN;
        let reading = poller.poll_once(at).await;
        assert_eq!(*rx.borrow(), reading);
        assert_eq!(reading.report.indicator, None, "case {i}");
        assert_eq!(reading.report.description, None);
        assert!(reading.stale);
        // The last good read's incidents and time stay.
        assert_eq!(reading.report.fetched_at, Some(NOW));
        assert_eq!(reading.report.incidents, good.report.incidents);
        assert!(!early_warning(&reading, &["Claude API"]));
    }

    // It comes back.
    server.route("/api/v2/summary.json", json(STATUSPAGE_SUMMARY));
    let back = poller.poll_once(NOW + 10 * MIN).await;
    assert_eq!(back.report.indicator.as_deref(), Some("minor"));
    assert!(!back.stale);
    assert_eq!(back.report.fetched_at, Some(NOW + 10 * MIN));
}

#[tokio::test]
async fn a_source_never_read_is_unknown_and_redirects_are_followed() {
    let server = Server::start().await;
    let (mut poller, rx, _) = poller(SourceConfig::new(
        "x",
        Kind::Feed,
        format!("{}/old.atom", server.base),
    ));
    assert_eq!(rx.borrow().report.indicator, None);
    let reading = poller.poll_once(NOW).await; // 404
    assert_eq!(reading.report.indicator, None);
    assert_eq!(reading.report.fetched_at, None);
    assert!(reading.report.incidents.is_empty());

    // A moved feed: 301 to its new place.
    server.route("/old.atom", Answer::Redirect("/history.atom"));
    server.route(
        "/history.atom",
        Answer::Body(
            200,
            "application/atom+xml",
            Bytes::from_static(ATOM.as_bytes()),
        ),
    );
    let reading = poller.poll_once(NOW).await;
    assert_eq!(reading.report.indicator.as_deref(), Some("minor"));
}

#[tokio::test]
async fn an_oversized_body_is_source_unknown() {
    let server = Server::start().await;
    let mut big = String::from("{\"status\":{\"indicator\":\"none\"},\"pad\":\"");
    big.push_str(&"x".repeat(5 << 20));
    big.push_str("\"}");
    server.route("/api/v2/summary.json", json(&big));
    let (mut poller, _rx, _) = poller(SourceConfig::new("x", Kind::Statuspage, &server.base));
    assert_eq!(poller.poll_once(NOW).await.report.indicator, None);
    // Under the bound it parses (the pad is an unknown field).
    let mut config = SourceConfig::new("x", Kind::Statuspage, &server.base);
    config.max_body = 8 << 20;
    let (mut poller, _rx, _) = self::poller(config);
    assert_eq!(
        poller.poll_once(NOW).await.report.indicator.as_deref(),
        Some("none")
    );
}

#[tokio::test(start_paused = true)]
async fn a_source_that_never_answers_times_out_as_unknown() {
    let server = Server::start().await;
    server.route("/api/v2/summary.json", Answer::Hang);
    let (mut poller, _rx, _) = poller(SourceConfig::new("x", Kind::Statuspage, &server.base));
    let started = tokio::time::Instant::now();
    let reading = poller.poll_once(NOW).await;
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(reading.report.indicator, None);
}

#[tokio::test(start_paused = true)]
async fn the_poller_task_publishes_on_its_interval_and_stops_with_its_receivers() {
    let server = Server::start().await;
    server.route(
        "/history.atom",
        Answer::Body(
            200,
            "application/atom+xml",
            Bytes::from_static(ATOM.as_bytes()),
        ),
    );
    let (poller, mut rx, archive) = poller(SourceConfig::new(
        "x",
        Kind::Feed,
        format!("{}/history.atom", server.base),
    ));
    let task = tokio::spawn(poller.run());

    let started = tokio::time::Instant::now();
    rx.changed().await.unwrap();
    // The first read comes within interval × jitter (6 s).
    assert!(started.elapsed() <= Duration::from_secs(6));
    let first = rx.borrow_and_update().report.fetched_at.unwrap();
    rx.changed().await.unwrap();
    let second = rx.borrow_and_update().report.fetched_at.unwrap();
    // 60 s ± 10 %.
    assert!(
        (54_000..=66_000).contains(&(second - first)),
        "{}",
        second - first
    );
    assert_eq!(archive.incidents("x", 0).unwrap().len(), 4);

    drop(rx);
    tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .unwrap()
        .unwrap();
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
        assert_eq!(cause_class(title, Some("minor")), cause, "{title}");
    }
    assert_eq!(cause_class("Something is off", Some("none")), "slowness");
    assert_eq!(cause_class("Something is off", None), "provider_errors");
}
