//! Upstream polling tests: real Statuspage, incident.io-shaped, Atom and
//! RSS fixtures served on 127.0.0.1, the archive they build in a real
//! `SqliteStore` (in a temporary directory), and sources that fail
//! (garbage, HTML, timeouts, oversized bodies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lifeline_store::upstream::ArchivedIncident;
use lifeline_store::{SqliteStore, StatusStore, UpstreamStore};

use super::*;
use crate::eta::{Observed, Source};

mod rules;

const STATUSPAGE_SUMMARY: &str = include_str!("../fixtures/statuspage-summary.json");
const STATUSPAGE_INCIDENTS: &str = include_str!("../fixtures/statuspage-incidents.json");
const INCIDENTIO_SUMMARY: &str = include_str!("../fixtures/incidentio-summary.json");
const INCIDENTIO_INCIDENTS: &str = include_str!("../fixtures/incidentio-incidents.json");
const ATOM: &str = include_str!("../fixtures/history.atom");
const RSS: &str = include_str!("../fixtures/feed.rss");

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

fn feed(content_type: &'static str, body: &'static str) -> Answer {
    Answer::Body(200, content_type, Bytes::from_static(body.as_bytes()))
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

/// The store a poller archives into, in a temporary directory.
struct Archive {
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl Archive {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("status.db")).unwrap();
        Archive {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    /// A provider's archive, oldest `created_at` first (the store's order).
    fn incidents(&self, provider: &str) -> Vec<ArchivedIncident> {
        self.store.upstream_incidents(provider).unwrap()
    }

    fn ids(&self, provider: &str) -> Vec<String> {
        self.incidents(provider)
            .into_iter()
            .map(|a| a.incident.external_id)
            .collect()
    }
}

fn poller(config: SourceConfig) -> (Poller, tokio::sync::watch::Receiver<Reading>, Archive) {
    let archive = Archive::new();
    let store: Arc<dyn StatusStore> = archive.store.clone();
    let (poller, rx) = Poller::new(config, store).unwrap();
    (poller.with_seed(3), rx, archive)
}

// === Statuspage ===

/// A server with the Statuspage fixtures, and a poller of it as provider
/// `anthropic`.
async fn anthropic_statuspage() -> (
    Server,
    Poller,
    tokio::sync::watch::Receiver<Reading>,
    Archive,
) {
    let server = Server::start().await;
    server.route("/api/v2/summary.json", json(STATUSPAGE_SUMMARY));
    server.route("/api/v2/incidents.json", json(STATUSPAGE_INCIDENTS));
    let (poller, rx, archive) = poller(SourceConfig::new(
        "anthropic",
        Kind::Statuspage,
        &server.base,
    ));
    (server, poller, rx, archive)
}

#[tokio::test]
async fn statuspage_summary_and_history() {
    let (server, mut poller, rx, archive) = anthropic_statuspage().await;

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

    // Every incident of both lists is archived once, offsets normalised;
    // the store lists them oldest first.
    let archived = archive.incidents("anthropic");
    assert_eq!(
        archive.ids("anthropic"),
        [
            "z9z9backfill",
            "b3n8q1x6mz2k",
            "h7c2l9d0rt5v",
            "p4xkf2b7wq1m"
        ]
    );
    let latency = &archived[2];
    assert_eq!(latency.incident.provider, "anthropic");
    assert_eq!(latency.incident.status, "resolved");
    assert_eq!(latency.incident.impact, "minor");
    assert_eq!(latency.incident.created_at, ms("2026-08-21T16:10:00Z"));
    assert_eq!(
        latency.incident.started_at,
        Some(ms("2026-08-21T16:05:00Z"))
    );
    assert_eq!(
        latency.incident.resolved_at,
        Some(ms("2026-08-21T17:05:00Z"))
    );
    assert_eq!(latency.incident.updated_at, ms("2026-08-21T17:05:00Z"));
    assert_eq!(
        latency.incident.shortlink.as_deref(),
        Some("https://stspg.io/h7c2l9d0")
    );
    assert_eq!((latency.first_seen_at, latency.last_seen_at), (NOW, NOW));
    // Sorted, as the store keeps them (uppercase first).
    assert_eq!(
        archived[1].incident.components,
        ["Claude Code", "claude.ai"]
    );
    assert_eq!(archived[1].incident.status, "postmortem");

    // As history for estimates: durations from the start, the open one
    // censored at its age when seen, the backfilled one dropped.
    let past = past_incidents(&archived);
    assert_eq!(past.len(), 3);
    assert!(past.iter().all(|p| p.source == Source::Upstream));
    assert_eq!(past[0].component, "all");
    assert_eq!(past[0].cause, "misconfiguration");
    assert_eq!(
        past[0].observed,
        Observed::Resolved(Duration::from_secs(2 * 3600))
    );
    assert_eq!(past[1].cause, "slowness");
    assert_eq!(
        past[1].observed,
        Observed::Resolved(Duration::from_secs(60 * 60))
    );
    assert_eq!(past[2].component, "Claude API (api.anthropic.com)");
    assert_eq!(past[2].cause, "provider_errors");
    assert_eq!(
        past[2].observed,
        Observed::OpenFor(Duration::from_secs(30 * 60))
    );

    // Early warning: "minor" and a degraded component do not mark the API
    // degraded by themselves, but the open incident naming it does.
    assert!(early_warning(&reading, &["Claude API"]));
    assert!(!early_warning(&reading, &["Claude Code"]));
}

#[tokio::test]
async fn repeated_polls_of_the_latest_incidents_build_a_longer_history() {
    let (server, mut poller, _rx, archive) = anthropic_statuspage().await;
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

    let archived = archive.incidents("anthropic");
    assert_eq!(
        archive.ids("anthropic"),
        [
            "z9z9backfill",
            "b3n8q1x6mz2k",
            "h7c2l9d0rt5v",
            "p4xkf2b7wq1m",
            "new1"
        ]
    );
    let resolved = &archived[3];
    assert_eq!(resolved.incident.status, "resolved");
    assert_eq!(
        resolved.incident.resolved_at,
        Some(ms("2026-08-23T11:10:00Z"))
    );
    assert_eq!(resolved.first_seen_at, NOW);
    assert_eq!(resolved.last_seen_at, NOW + 120 * MIN);
    // The one that fell off keeps what was last seen of it.
    assert_eq!(archived[0].last_seen_at, NOW);
    assert_eq!(archived[4].first_seen_at, NOW + 120 * MIN);
    // No impact given: stored as "", read back as unknown.
    assert_eq!(archived[4].incident.impact, "");
    assert_eq!(
        archive.store.count_upstream_incidents("anthropic").unwrap(),
        5
    );
    assert!(archive.incidents("openai").is_empty());
}

/// incidents.json with `ids` (oldest first, one hour apart), all resolved
/// after ten minutes.
fn incidents_json(ids: std::ops::Range<i64>) -> String {
    let incidents: Vec<serde_json::Value> = ids
        .rev()
        .map(|i| {
            let created = NOW - (100 - i) * 60 * MIN;
            let at = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .unwrap()
                    .to_rfc3339()
            };
            serde_json::json!({
                "id": format!("inc{i:03}"),
                "name": format!("Elevated errors {i}"),
                "status": "resolved",
                "impact": "minor",
                "created_at": at(created),
                "updated_at": at(created + 10 * MIN),
                "resolved_at": at(created + 10 * MIN),
            })
        })
        .collect();
    serde_json::json!({ "incidents": incidents }).to_string()
}

#[tokio::test]
async fn the_archive_grows_past_the_latest_50() {
    let server = Server::start().await;
    server.route(
        "/api/v2/summary.json",
        json(r#"{"status":{"indicator":"none"}}"#),
    );
    server.route("/api/v2/incidents.json", json(&incidents_json(0..50)));
    let (mut poller, _rx, archive) = poller(SourceConfig::new("p", Kind::Statuspage, &server.base));
    poller.poll_once(NOW).await;
    assert_eq!(archive.store.count_upstream_incidents("p").unwrap(), 50);

    // 25 new ones since: the provider's list still holds only 50.
    server.route("/api/v2/incidents.json", json(&incidents_json(25..75)));
    poller.poll_once(NOW + MIN).await;
    assert_eq!(archive.store.count_upstream_incidents("p").unwrap(), 75);
    let ids = archive.ids("p");
    assert_eq!(ids.first().map(String::as_str), Some("inc000"));
    assert_eq!(ids.last().map(String::as_str), Some("inc074"));
    let past = past_incidents(&archive.incidents("p"));
    assert_eq!(past.len(), 75);
    assert!(past
        .iter()
        .all(|p| p.observed == Observed::Resolved(Duration::from_secs(600))));
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
    let archived = archive.incidents("openai");
    assert_eq!(archived.len(), 3);
    let rate = archived
        .iter()
        .find(|a| a.incident.external_id == "01K37AB0C2D4E6F8G0H2J4K6LM")
        .unwrap();
    assert_eq!(rate.incident.impact, "", "none given");
    assert_eq!(rate.incident.updated_at, ms("2026-08-20T07:00:00Z"));
    let past = past_incidents(&archived);
    let causes: Vec<(&str, &str)> = past
        .iter()
        .map(|p| (p.component.as_str(), p.cause.as_str()))
        .collect();
    assert_eq!(
        causes,
        [
            ("all", "rate_limited"),
            ("all", "slowness"),
            ("all", "provider_errors")
        ]
    );

    // Early warning from the indicator alone (major), for any API.
    assert!(early_warning(&reading, &["Embeddings"]));
}

// === feeds ===

#[tokio::test]
async fn atom_feed_entries_become_incidents() {
    let server = Server::start().await;
    server.route("/history.atom", feed("application/atom+xml", ATOM));
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
    let archived = archive.incidents("example");
    let summary: Vec<(&str, Option<i64>)> = archived
        .iter()
        .map(|a| (a.incident.status.as_str(), a.incident.resolved_at))
        .collect();
    assert_eq!(
        summary,
        [
            // "Scheduled" in the title is its name; the content says completed.
            ("completed", Some(ms("2026-08-05T03:00:00Z"))),
            // No status word and over a day old: over.
            ("unknown", Some(ms("2026-08-10T08:40:00Z"))),
            // The latest update says resolved; the oldest's "not yet
            // resolved" does not matter.
            ("resolved", Some(ms("2026-08-21T17:05:00Z"))),
            ("identified", None),
        ]
    );
    assert_eq!(
        archived[2].incident.external_id,
        "tag:status.example-ai.com,2005:Incident/26370001"
    );
    let past = past_incidents(&archived);
    assert_eq!(
        past[2].observed,
        Observed::Resolved(Duration::from_secs(3600))
    );
    assert_eq!(past[0].cause, "maintenance");
    assert!(early_warning(&reading, &["Messages API"]));
}

#[tokio::test]
async fn rss_feed_entries_become_incidents() {
    let server = Server::start().await;
    server.route(
        "/rss/bedrock-us-east-1.rss",
        feed("application/rss+xml", RSS),
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
    let archived = archive.incidents("bedrock");
    assert_eq!(archived.len(), 2);
    assert_eq!(archived[0].incident.status, "resolved");
    assert_eq!(
        archived[0].incident.resolved_at,
        Some(ms("2026-08-20T21:45:00Z"))
    );
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
    let (server, mut poller, rx, _archive) = anthropic_statuspage().await;
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
    server.route("/history.atom", feed("application/atom+xml", ATOM));
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
    server.route("/history.atom", feed("application/atom+xml", ATOM));
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
    assert_eq!(archive.store.count_upstream_incidents("x").unwrap(), 4);

    drop(rx);
    tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .unwrap()
        .unwrap();
}

// === restoration estimates from a provider's published history ===

/// `incidents.json` with one resolved incident per duration (minutes),
/// all "Elevated errors" on the "Chat" component.
fn history_json(durations: impl Iterator<Item = i64>) -> String {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let incidents: Vec<serde_json::Value> = durations
        .enumerate()
        .map(|(k, d)| {
            let created = NOW - 90 * 24 * 60 * MIN + (k as i64) * 24 * 60 * MIN;
            serde_json::json!({
                "id": format!("h{k:03}"),
                "name": "Elevated errors on Chat",
                "status": "resolved",
                "impact": "major",
                "created_at": at(created),
                "updated_at": at(created + d * MIN),
                "resolved_at": at(created + d * MIN),
                "components": [{"id": "c1", "name": "Chat", "status": "operational"}],
            })
        })
        .collect();
    serde_json::json!({ "incidents": incidents }).to_string()
}

#[tokio::test]
async fn an_estimate_from_a_providers_published_history_matches_the_hand_computation() {
    use crate::eta::{estimate, Basis, Current, Eta, Pool};
    let server = Server::start().await;
    server.route(
        "/api/v2/summary.json",
        json(r#"{"status":{"indicator":"major"}}"#),
    );
    // Forty incidents, resolved after 1, 2, …, 40 minutes.
    server.route("/api/v2/incidents.json", json(&history_json(1..=40)));
    let (mut big, _rx, archive) = poller(SourceConfig::new("p", Kind::Statuspage, &server.base));
    big.poll_once(NOW).await;
    let past = past_incidents(&archive.incidents("p"));
    assert_eq!(past.len(), 40);
    assert!(past.iter().all(|p| p.component == "Chat"));

    // An incident on the same component with the same cause, open for 10
    // minutes. Comparable: the 30 that lasted longer (11 … 40 minutes),
    // none censored, so Ŝ(10) = 30/40. Median: the first u with
    // Ŝ(u) ≤ 15/40, i.e. 25 resolved by u: u = 25, 15 more minutes. 90th
    // percentile: Ŝ(u) ≤ 3/40, 37 resolved: u = 37, 27 more minutes. n = 30
    // is enough for both.
    let cause = past[0].cause.clone();
    let current = Current {
        component: "Chat",
        cause: &cause,
        elapsed: Duration::from_secs(10 * 60),
    };
    assert_eq!(
        estimate(&past, &current, None),
        Eta::Estimate {
            median: Duration::from_secs(15 * 60),
            p90: Some(Duration::from_secs(27 * 60)),
            basis: Basis {
                pool: Pool::ComponentAndCause,
                source: Source::Upstream,
                n: 30,
            },
        }
    );

    // With only 15 published incidents there is no estimate at 10 minutes
    // (5 comparable, fewer than the 10 a median needs).
    server.route("/api/v2/incidents.json", json(&history_json(1..=15)));
    let (mut small, _rx2, archive2) =
        poller(SourceConfig::new("q", Kind::Statuspage, &server.base));
    small.poll_once(NOW).await;
    let past = past_incidents(&archive2.incidents("q"));
    assert_eq!(estimate(&past, &current, None), Eta::NotEnoughHistory);
}
