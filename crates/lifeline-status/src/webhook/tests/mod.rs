//! Webhook tests: signatures checked by an independent HMAC in a real
//! receiver on 127.0.0.1, retries with backoff, scoping; the outbox is a
//! real `SqliteStore` in a temporary directory. Payload shapes and escaping
//! are in `payloads.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lifeline_store::webhook::{
    AttemptOutcome, Delivery, DeliveryState, NewSubscription, Subscription, WebhookFormat,
};
use lifeline_store::{
    Impact, Incident, IncidentStatus, IncidentUpdate, IncidentWithUpdates, MaintenanceStatus,
    ScheduledMaintenance, SqliteStore, StatusStore, WebhookStore,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;
use crate::page::{Component, ComponentStatus, Group, Page};

mod payloads;

// === fixtures ===

const T0: i64 = 1_787_480_640_000; // 2026-08-23T10:24:00Z

fn component(id: &str, name: &str, group: Option<&str>) -> Component {
    Component {
        group_id: group.map(Into::into),
        ..Component::fixture(id, name, T0 - 86_400_000, T0 - 3_600_000)
    }
}

fn page() -> Page {
    let mut chat = component("chat", "Chat Completions", Some("apis"));
    chat.status = ComponentStatus::MajorOutage;
    Page {
        id: "gw01page".into(),
        name: "Acme AI status".into(),
        url: "https://status.acme.ai".into(),
        updated_at: T0,
        generated_at: T0,
        groups: vec![Group {
            id: "apis".into(),
            name: "APIs".into(),
            components: vec!["chat".into(), "embeddings".into()],
        }],
        components: vec![chat, component("embeddings", "Embeddings", Some("apis"))],
        incidents: vec![],
        maintenances: vec![],
        providers: vec![],
        history_behind_since: None,
    }
}

fn incident(
    name: &str,
    bodies: &[(IncidentStatus, &str)],
    components: &[&str],
) -> IncidentWithUpdates {
    let updates: Vec<IncidentUpdate> = bodies
        .iter()
        .enumerate()
        .map(|(i, (status, body))| IncidentUpdate {
            id: 100 + i as i64,
            incident_id: 7,
            status: *status,
            body: (*body).into(),
            created_at: T0 + i as i64 * 60_000,
        })
        .collect();
    let last = updates.last().unwrap();
    IncidentWithUpdates {
        incident: Incident {
            id: 7,
            name: name.into(),
            status: last.status,
            impact: Impact::Major,
            created_at: T0,
            updated_at: last.created_at,
            resolved_at: (!last.status.is_open()).then_some(last.created_at),
            components: components.iter().map(|c| (*c).to_string()).collect(),
            automatic: true,
            draft: false,
            cause: Some("provider_errors".into()),
            expected_resolved_at: None,
        },
        incident_updates: updates,
    }
}

/// Window 3, "Database failover drill", from `T0` for 30 minutes, created
/// a day before; last changed at `updated_at`.
fn maintenance(
    status: MaintenanceStatus,
    components: &[&str],
    updated_at: i64,
) -> ScheduledMaintenance {
    ScheduledMaintenance {
        id: 3,
        name: "Database failover drill".into(),
        status,
        scheduled_for: T0,
        scheduled_until: T0 + 1_800_000,
        components: components.iter().map(|c| (*c).to_string()).collect(),
        body: "Drill".into(),
        created_at: T0 - 86_400_000,
        updated_at,
    }
}

/// The event of `incident` being opened.
fn opened(incident: &IncidentWithUpdates) -> Event<'_> {
    Event::Incident(IncidentChange::Created, incident)
}

fn links() -> Links {
    Links::for_page("https://status.acme.ai")
}

/// HMAC-SHA256 written out from RFC 2104 with `sha2` alone, to check the
/// signatures independently of the `hmac` crate.
fn independent_hmac(key: &[u8], message: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

// === a receiver on 127.0.0.1:0 ===

#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    Hang,
    /// A 200 once the test calls `release`.
    Held,
}

#[derive(Debug, Clone)]
struct Received {
    /// When it arrived, on tokio's clock.
    at: tokio::time::Instant,
    headers: http::HeaderMap,
    body: Bytes,
}

struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    release: Arc<tokio::sync::Notify>,
}

/// Answers requests with `script` in order, then 200s.
async fn receiver(script: &[Answer]) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let release = Arc::new(tokio::sync::Notify::new());
    let seen2 = seen.clone();
    let release2 = release.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen2.clone();
            let script = script.clone();
            let release = release2.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    let script = script.clone();
                    let release = release.clone();
                    async move {
                        let at = tokio::time::Instant::now();
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(Received {
                            at,
                            headers: parts.headers,
                            body,
                        });
                        let answer = script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or(Answer::Status(200));
                        let status = match answer {
                            Answer::Status(s) => s,
                            Answer::Hang => {
                                std::future::pending::<()>().await;
                                200
                            }
                            Answer::Held => {
                                release.notified().await;
                                200
                            }
                        };
                        let mut response =
                            http::Response::new(Full::new(Bytes::from_static(b"ok")));
                        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        if status / 100 == 3 {
                            response.headers_mut().insert(
                                http::header::LOCATION,
                                "http://127.0.0.1:9/".parse().unwrap(),
                            );
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
    Receiver {
        url: format!("http://{addr}/hooks/lifeline"),
        seen,
        release,
    }
}

/// A store in a temporary directory (kept as long as the `TempDir`).
fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("status.db")).unwrap();
    (dir, Arc::new(store))
}

/// Subscribes `url`; an empty `secret` means unsigned deliveries.
fn subscribe(
    store: &SqliteStore,
    url: &str,
    format: WebhookFormat,
    secret: &str,
    components: &[&str],
) -> Subscription {
    store
        .create_subscription(&NewSubscription {
            url: url.into(),
            format,
            secret: secret.into(),
            components: components.iter().map(|c| (*c).to_string()).collect(),
            at_ms: T0,
        })
        .unwrap()
}

fn worker(store: &Arc<SqliteStore>, policy: RetryPolicy) -> Worker {
    let dyn_store: Arc<dyn StatusStore> = store.clone();
    Worker::new(dyn_store, policy).unwrap().with_seed(7)
}

/// A delivery as the store's delivery log has it now.
fn logged(store: &SqliteStore, subscription_id: i64, id: i64) -> Delivery {
    store
        .deliveries(subscription_id, 1000)
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .unwrap()
}

// === signing ===

#[test]
fn the_independent_hmac_matches_rfc_4231() {
    // RFC 4231, test case 2.
    assert_eq!(
        independent_hmac(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than the block is hashed first (test case 6).
    assert_eq!(
        independent_hmac(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn signature_and_verify() {
    let secret = Secret::new("s3cret");
    let body = br#"{"a":1}"#;
    let sig = sign::signature(&secret, 1_787_480_640, body);
    assert_eq!(
        sig,
        format!(
            "sha256={}",
            independent_hmac(b"s3cret", b"1787480640.{\"a\":1}")
        )
    );
    assert!(sign::verify(
        &secret,
        "1787480640",
        &sig,
        body,
        1_787_480_700,
        300
    ));
    // Tampered body, wrong secret, replayed late, forged timestamp.
    assert!(!sign::verify(
        &secret,
        "1787480640",
        &sig,
        br#"{"a":2}"#,
        1_787_480_700,
        300
    ));
    assert!(!sign::verify(
        &Secret::new("other"),
        "1787480640",
        &sig,
        body,
        1_787_480_700,
        300
    ));
    assert!(!sign::verify(
        &secret,
        "1787480640",
        &sig,
        body,
        1_787_481_000,
        300
    ));
    assert!(!sign::verify(
        &secret,
        "1787480990",
        &sig,
        body,
        1_787_481_000,
        300
    ));
    assert!(!sign::verify(
        &secret,
        "1787480640",
        "sha256=zz",
        body,
        1_787_480_700,
        300
    ));
    // Long secrets work too.
    let long = Secret::new("k".repeat(100));
    let sig = sign::signature(&long, 5, b"x");
    assert_eq!(
        sig,
        format!(
            "sha256={}",
            independent_hmac("k".repeat(100).as_bytes(), b"5.x")
        )
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let debug = format!("{:?}", Secret::new("hunter2"));
    assert_eq!(debug, "Secret(redacted)");
    // What the worker takes from the store to sign with.
    let (_dir, store) = store();
    let sub = subscribe(
        &store,
        "https://example.com",
        WebhookFormat::Statuspage,
        "hunter2-hunter2-hunter2",
        &[],
    );
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    enqueue(&*store, &page(), &opened(&inc), &links(), T0).unwrap();
    let due = store.due(T0, 10).unwrap();
    assert_eq!(due[0].delivery.subscription_id, sub.id);
    let debug = format!("{due:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[tokio::test]
async fn a_receiver_verifies_the_signature_with_an_independent_hmac() {
    let rx = receiver(&[]).await;
    let (_dir, store) = store();
    let sub = subscribe(
        &store,
        &rx.url,
        WebhookFormat::Statuspage,
        "whsec_test",
        &[],
    );
    let page = page();
    let inc = incident(
        "Elevated errors",
        &[(IncidentStatus::Investigating, "Looking")],
        &["chat"],
    );
    // Through the `dyn StatusStore` the gateway holds.
    let dyn_store: Arc<dyn StatusStore> = store.clone();
    let queued = enqueue(&*dyn_store, &page, &opened(&inc), &links(), T0).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].next_attempt_at, Some(T0));

    let w = worker(&store, RetryPolicy::default());
    assert_eq!(w.deliver_due(T0).await.unwrap(), 1);

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    let timestamp = got.headers[sign::TIMESTAMP_HEADER].to_str().unwrap();
    assert_eq!(timestamp, (T0 / 1000).to_string());
    let mut signed = timestamp.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&got.body);
    assert_eq!(
        got.headers[sign::SIGNATURE_HEADER].to_str().unwrap(),
        format!("sha256={}", independent_hmac(b"whsec_test", &signed))
    );
    assert_eq!(got.headers[http::header::CONTENT_TYPE], "application/json");
    assert_eq!(
        got.headers[sign::DELIVERY_HEADER].to_str().unwrap(),
        queued[0].id.to_string()
    );
    assert_eq!(got.body, queued[0].body.as_bytes());

    // The delivery log.
    let d = logged(&store, sub.id, queued[0].id);
    assert_eq!(d.state, DeliveryState::Delivered);
    assert_eq!(d.attempts, 1);
    assert_eq!(d.delivered_at, Some(T0));
    assert_eq!(d.last_attempt_at, Some(T0));
    assert_eq!(d.last_status, Some(200));
    assert_eq!(d.last_error, None);
    assert_eq!(d.next_attempt_at, None);
    assert!(store.due(i64::MAX, 10).unwrap().is_empty());
}

#[tokio::test]
async fn without_a_secret_deliveries_are_unsigned() {
    let rx = receiver(&[]).await;
    let (_dir, store) = store();
    subscribe(&store, &rx.url, WebhookFormat::Slack, "", &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    enqueue(&*store, &page(), &opened(&inc), &links(), T0).unwrap();
    worker(&store, RetryPolicy::default())
        .deliver_due(T0)
        .await
        .unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key(sign::SIGNATURE_HEADER));
    assert!(seen[0].headers.contains_key(sign::TIMESTAMP_HEADER));
}

// === retries ===

#[test]
fn backoff_doubles_from_30_s_to_an_hour_with_jitter_and_gives_up() {
    let p = RetryPolicy::default();
    assert_eq!(p.delay(1, 0.0), Duration::from_secs(30));
    assert_eq!(p.delay(2, 0.0), Duration::from_secs(60));
    assert_eq!(p.delay(3, 0.0), Duration::from_secs(120));
    assert_eq!(p.delay(7, 0.0), Duration::from_secs(1920));
    assert_eq!(p.delay(8, 0.0), Duration::from_secs(3600));
    assert_eq!(p.delay(29, 0.0), Duration::from_secs(3600));
    assert_eq!(p.delay(1, 0.5), Duration::from_secs(33));
    assert!(p.delay(8, 0.999) < Duration::from_secs(4320));

    assert_eq!(
        p.after_failure(1, T0, T0, 0.0),
        AttemptOutcome::RetryAt(T0 + 30_000)
    );
    assert_eq!(p.after_failure(30, T0, T0, 0.0), AttemptOutcome::GaveUp);
    // The next attempt would land past 24 h after queuing.
    let late = T0 + 23 * 3_600_000 + 1_800_000;
    assert_eq!(p.after_failure(20, T0, late, 0.0), AttemptOutcome::GaveUp);
    assert_eq!(
        p.after_failure(20, T0, T0 + 3_600_000, 0.0),
        AttemptOutcome::RetryAt(T0 + 7_200_000)
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_delivery_on_the_third_attempt() {
    // A 500, then a redirect (3xx counts as failure), then a 200.
    let rx = receiver(&[Answer::Status(500), Answer::Status(302)]).await;
    let (_dir, store) = store();
    let sub = subscribe(&store, &rx.url, WebhookFormat::Statuspage, "k", &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let id = enqueue(&*store, &page(), &opened(&inc), &links(), T0).unwrap()[0].id;
    let w = worker(&store, RetryPolicy::default());
    // Each attempt as the log shows it after it.
    let summary = |d: &Delivery| {
        (
            d.attempts,
            d.last_attempt_at,
            d.last_status,
            d.last_error.clone(),
        )
    };

    assert_eq!(w.deliver_due(T0).await.unwrap(), 1);
    let d = logged(&store, sub.id, id);
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(
        summary(&d),
        (1, Some(T0), Some(500), Some("status 500".into()))
    );
    let second = d.next_attempt_at.unwrap();
    assert!(
        (T0 + 30_000..T0 + 36_000).contains(&second),
        "{}",
        second - T0
    );

    // Not due before its time.
    assert_eq!(w.deliver_due(second - 1).await.unwrap(), 0);
    assert_eq!(w.deliver_due(second).await.unwrap(), 1);
    let d = logged(&store, sub.id, id);
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(
        summary(&d),
        (2, Some(second), Some(302), Some("status 302".into()))
    );
    let third = d.next_attempt_at.unwrap();
    assert!(
        (second + 60_000..second + 72_000).contains(&third),
        "{}",
        third - second
    );

    assert_eq!(w.deliver_due(third).await.unwrap(), 1);
    let d = logged(&store, sub.id, id);
    assert_eq!(
        (d.state, d.next_attempt_at, d.delivered_at),
        (DeliveryState::Delivered, None, Some(third))
    );
    assert_eq!(summary(&d), (3, Some(third), Some(200), None));

    // The same bytes every time, each signed for its own timestamp.
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.body == seen[0].body));
    assert_ne!(
        seen[0].headers[sign::SIGNATURE_HEADER],
        seen[1].headers[sign::SIGNATURE_HEADER]
    );
}

#[tokio::test(start_paused = true)]
async fn the_worker_loop_retries_on_its_own_under_paused_time() {
    let rx = receiver(&[Answer::Status(503), Answer::Status(503)]).await;
    let (_dir, store) = store();
    let sub = subscribe(&store, &rx.url, WebhookFormat::Discord, "", &[]);
    // The test's unix clock, made with the worker's at tokio's time 0.
    let clock = super::deliver::UnixClock::new();
    let w = worker(&store, RetryPolicy::default());
    let handle = w.handle();
    tokio::spawn(w.run());

    // Queued after the worker went to sleep: the wake makes it look now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let id = enqueue(&*store, &page(), &opened(&inc), &links(), clock.now_ms()).unwrap()[0].id;
    let queued = tokio::time::Instant::now();
    handle.wake();

    // 30 s (+≤20 %) then 60 s (+≤20 %): done well within 3 minutes, and
    // long before the worker's one-minute look would have found them.
    tokio::time::sleep(Duration::from_secs(180)).await;
    let d = logged(&store, sub.id, id);
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 3));
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].at - queued < Duration::from_millis(100));
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        (Duration::from_secs(30)..=Duration::from_millis(36_100)).contains(&gaps[0]),
        "{gaps:?}"
    );
    assert!(
        (Duration::from_secs(60)..=Duration::from_millis(72_100)).contains(&gaps[1]),
        "{gaps:?}"
    );
    // The log's time of the last attempt follows the same clock.
    let first_at = d.created_at;
    let last_at = d.last_attempt_at.unwrap();
    let span = Duration::from_millis(u64::try_from(last_at - first_at).unwrap());
    assert!(
        span.abs_diff(seen[2].at - seen[0].at) < Duration::from_millis(100),
        "{span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let rx = receiver(&[Answer::Hang]).await;
    let (_dir, store) = store();
    let sub = subscribe(&store, &rx.url, WebhookFormat::Statuspage, "", &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let id = enqueue(&*store, &page(), &opened(&inc), &links(), T0).unwrap()[0].id;
    let w = worker(&store, RetryPolicy::default());
    let started = tokio::time::Instant::now();
    assert_eq!(w.deliver_due(T0).await.unwrap(), 1);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    let d = logged(&store, sub.id, id);
    assert_eq!(d.last_status, None);
    assert_eq!(d.last_error.as_deref(), Some("timeout after 30s"));
    assert_eq!(d.state, DeliveryState::Pending);
    assert!(d.next_attempt_at.unwrap() >= T0 + 30_000);
}

#[tokio::test]
async fn unreachable_and_unusable_urls() {
    // Nothing listens on the port: a connect error, retried.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_dir, store) = store();
    let url = format!("http://127.0.0.1:{port}/secret-token-in-path");
    let refused = subscribe(&store, &url, WebhookFormat::Statuspage, "k", &[]);
    let ftp = subscribe(
        &store,
        "ftp://example.com/x",
        WebhookFormat::Statuspage,
        "",
        &[],
    );
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let queued = enqueue(&*store, &page(), &opened(&inc), &links(), T0).unwrap();
    worker(&store, RetryPolicy::default())
        .deliver_due(T0)
        .await
        .unwrap();

    let d = logged(&store, refused.id, queued[0].id);
    let error = d.last_error.clone().unwrap();
    assert!(error.starts_with("connect: "), "{error}");
    assert!(!error.contains("secret-token"), "{error}");
    assert_eq!(d.state, DeliveryState::Pending);
    // A URL that can never work is given up at once.
    let d = logged(&store, ftp.id, queued[1].id);
    assert_eq!(d.state, DeliveryState::GaveUp);
    assert_eq!((d.attempts, d.gave_up_at), (1, Some(T0)));
}

#[tokio::test]
async fn a_subscription_deleted_while_its_delivery_is_in_flight() {
    // The receiver answers only once the subscription is gone.
    let rx = receiver(&[Answer::Held]).await;
    let (_dir, store) = store();
    let sub = subscribe(&store, &rx.url, WebhookFormat::Statuspage, "k", &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    enqueue(&*store, &page(), &opened(&inc), &links(), T0).unwrap();
    let w = worker(&store, RetryPolicy::default());
    let round = tokio::spawn(async move { w.deliver_due(T0).await });
    while rx.seen.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(store.delete_subscription(sub.id).unwrap());
    rx.release.notify_one();
    // Nothing left to record is not a store failure.
    assert_eq!(round.await.unwrap().unwrap(), 1);
    assert!(store.due(i64::MAX, 10).unwrap().is_empty());
}

// === scoping ===

#[test]
fn subscribers_scoped_to_components_hear_only_about_them() {
    let (_dir, store) = store();
    let all = subscribe(&store, "http://a/", WebhookFormat::Statuspage, "", &[]);
    let chat = subscribe(&store, "http://b/", WebhookFormat::Slack, "", &["chat"]);
    let emb = subscribe(
        &store,
        "http://c/",
        WebhookFormat::Discord,
        "",
        &["embeddings"],
    );
    let page = page();
    let ids = |d: Vec<Delivery>| d.iter().map(|d| d.subscription_id).collect::<Vec<_>>();

    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &["chat"]);
    let got = enqueue(&*store, &page, &opened(&inc), &links(), T0).unwrap();
    assert_eq!(ids(got), vec![all.id, chat.id]);

    let change = Event::Component(ComponentChange {
        component: page.component("embeddings").unwrap(),
        old_status: ComponentStatus::Operational,
        new_status: ComponentStatus::DegradedPerformance,
        at_ms: T0,
    });
    let got = enqueue(&*store, &page, &change, &links(), T0).unwrap();
    assert_eq!(ids(got), vec![all.id, emb.id]);

    // An incident naming no component concerns the whole page.
    let wide = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let got = enqueue(&*store, &page, &opened(&wide), &links(), T0).unwrap();
    assert_eq!(ids(got), vec![all.id, chat.id, emb.id]);

    // Each format gets its own body.
    let got = enqueue(&*store, &page, &opened(&inc), &links(), T0).unwrap();
    let a: Value = serde_json::from_str(&got[0].body).unwrap();
    let b: Value = serde_json::from_str(&got[1].body).unwrap();
    assert!(a.get("meta").is_some() && a.get("incident").is_some());
    assert!(b.get("blocks").is_some());
    assert_eq!(got[0].event, "incident.created");

    // Unsubscribing drops what is still pending.
    assert!(store.delete_subscription(chat.id).unwrap());
    let due = store.due(T0, 100).unwrap();
    assert_eq!(due.len(), 6);
    assert!(due.iter().all(|d| d.delivery.subscription_id != chat.id));

    // Nobody interested: nothing is queued.
    assert!(store.delete_subscription(all.id).unwrap());
    let got = enqueue(&*store, &page, &opened(&inc), &links(), T0).unwrap();
    assert!(got.is_empty());
}
