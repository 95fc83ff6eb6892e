//! Webhook tests: payload shapes, escaping, signatures checked by an
//! independent HMAC in a real receiver on 127.0.0.1, retries with backoff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lifeline_store::{
    Impact, Incident, IncidentStatus, IncidentUpdate, IncidentWithUpdates, MaintenanceStatus,
    ScheduledMaintenance,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;
use crate::page::{Component, ComponentStatus, Group, Page};

// === fixtures ===

const T0: i64 = 1_787_480_640_000; // 2026-08-23T10:24:00Z

fn component(id: &str, name: &str, group: Option<&str>) -> Component {
    Component {
        id: id.into(),
        name: name.into(),
        description: None,
        group_id: group.map(Into::into),
        status: ComponentStatus::Operational,
        no_recent_data: false,
        created_at: T0 - 86_400_000,
        updated_at: T0 - 3_600_000,
        slo: None,
        uptime: vec![],
        latency: vec![],
        effective_24h: None,
        upstream_24h: None,
        upstream_down_minutes_24h: 0,
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
}

#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: Bytes,
}

struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

/// Answers requests with `script` in order, then 200s.
async fn receiver(script: &[Answer]) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen2.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    let script = script.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(Received {
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
    }
}

fn subscribe(
    outbox: &MemoryOutbox,
    url: &str,
    format: Format,
    secret: Option<&str>,
    components: &[&str],
) -> Subscriber {
    outbox
        .add_subscriber(&NewSubscriber {
            url: url.into(),
            format,
            secret: secret.map(Secret::new),
            components: components.iter().map(|c| (*c).to_string()).collect(),
            at_ms: T0,
        })
        .unwrap()
}

fn worker(outbox: &Arc<MemoryOutbox>, policy: RetryPolicy) -> Worker {
    let dyn_outbox: Arc<dyn Outbox> = outbox.clone();
    Worker::new(dyn_outbox, policy).unwrap().with_seed(7)
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
    let s = Subscriber {
        id: 1,
        url: "https://example.com".into(),
        format: Format::Statuspage,
        secret: Some(Secret::new("hunter2")),
        components: vec![],
        created_at: 0,
    };
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("Secret(redacted)"));
}

#[tokio::test]
async fn a_receiver_verifies_the_signature_with_an_independent_hmac() {
    let rx = receiver(&[]).await;
    let outbox = Arc::new(MemoryOutbox::new());
    subscribe(
        &outbox,
        &rx.url,
        Format::Statuspage,
        Some("whsec_test"),
        &[],
    );
    let page = page();
    let inc = incident(
        "Elevated errors",
        &[(IncidentStatus::Investigating, "Looking")],
        &["chat"],
    );
    let queued = enqueue(outbox.as_ref(), &page, &Event::Incident(&inc), &links(), T0).unwrap();
    assert_eq!(queued.len(), 1);

    let w = worker(&outbox, RetryPolicy::default());
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

    let d = outbox.delivery(queued[0].id).unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered);
    assert_eq!(d.attempts, 1);
    let log = outbox.attempts(d.id).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].error, None);
}

#[tokio::test]
async fn without_a_secret_deliveries_are_unsigned() {
    let rx = receiver(&[]).await;
    let outbox = Arc::new(MemoryOutbox::new());
    subscribe(&outbox, &rx.url, Format::Slack, None, &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    enqueue(
        outbox.as_ref(),
        &page(),
        &Event::Incident(&inc),
        &links(),
        T0,
    )
    .unwrap();
    worker(&outbox, RetryPolicy::default())
        .deliver_due(T0)
        .await
        .unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].headers.contains_key(sign::SIGNATURE_HEADER));
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

    assert_eq!(p.after_failure(1, T0, T0, 0.0), Next::RetryAt(T0 + 30_000));
    assert_eq!(p.after_failure(30, T0, T0, 0.0), Next::GiveUp);
    // The next attempt would land past 24 h after queuing.
    let late = T0 + 23 * 3_600_000 + 1_800_000;
    assert_eq!(p.after_failure(20, T0, late, 0.0), Next::GiveUp);
    assert_eq!(
        p.after_failure(20, T0, T0 + 3_600_000, 0.0),
        Next::RetryAt(T0 + 7_200_000)
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_delivery_on_the_third_attempt() {
    // A 500, then a redirect (3xx counts as failure), then a 200.
    let rx = receiver(&[Answer::Status(500), Answer::Status(302)]).await;
    let outbox = Arc::new(MemoryOutbox::new());
    subscribe(&outbox, &rx.url, Format::Statuspage, Some("k"), &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let id = enqueue(
        outbox.as_ref(),
        &page(),
        &Event::Incident(&inc),
        &links(),
        T0,
    )
    .unwrap()[0]
        .id;
    let w = worker(&outbox, RetryPolicy::default());

    assert_eq!(w.deliver_due(T0).await.unwrap(), 1);
    let d = outbox.delivery(id).unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 1));
    let second = d.next_attempt_at.unwrap();
    assert!(
        (T0 + 30_000..T0 + 36_000).contains(&second),
        "{}",
        second - T0
    );

    // Not due before its time.
    assert_eq!(w.deliver_due(second - 1).await.unwrap(), 0);
    assert_eq!(w.deliver_due(second).await.unwrap(), 1);
    let d = outbox.delivery(id).unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 2));
    let third = d.next_attempt_at.unwrap();
    assert!(
        (second + 60_000..second + 72_000).contains(&third),
        "{}",
        third - second
    );

    assert_eq!(w.deliver_due(third).await.unwrap(), 1);
    let d = outbox.delivery(id).unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.next_attempt_at),
        (DeliveryState::Delivered, 3, None)
    );

    let log = outbox.attempts(id).unwrap();
    let summary: Vec<_> = log
        .iter()
        .map(|a| (a.number, a.at_ms, a.status, a.error.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, T0, Some(500), Some("status 500".into())),
            (2, second, Some(302), Some("status 302".into())),
            (3, third, Some(200), None),
        ]
    );
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
    let outbox = Arc::new(MemoryOutbox::new());
    subscribe(&outbox, &rx.url, Format::Discord, None, &[]);
    let w = worker(&outbox, RetryPolicy::default());
    let handle = w.handle();
    tokio::spawn(w.run());

    // Queued after the worker went to sleep: the wake makes it look now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let now = super::deliver::UnixClock::new().now_ms();
    let id = enqueue(
        outbox.as_ref(),
        &page(),
        &Event::Incident(&inc),
        &links(),
        now,
    )
    .unwrap()[0]
        .id;
    handle.wake();

    // 30 s (+≤20 %) then 60 s (+≤20 %): done well within 3 minutes.
    tokio::time::sleep(Duration::from_secs(180)).await;
    let d = outbox.delivery(id).unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 3));
    let log = outbox.attempts(id).unwrap();
    let gaps: Vec<i64> = log.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert!((30_000..=36_100).contains(&gaps[0]), "{gaps:?}");
    assert!((60_000..=72_100).contains(&gaps[1]), "{gaps:?}");
    assert_eq!(rx.seen.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let rx = receiver(&[Answer::Hang]).await;
    let outbox = Arc::new(MemoryOutbox::new());
    subscribe(&outbox, &rx.url, Format::Statuspage, None, &[]);
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let id = enqueue(
        outbox.as_ref(),
        &page(),
        &Event::Incident(&inc),
        &links(),
        T0,
    )
    .unwrap()[0]
        .id;
    let w = worker(&outbox, RetryPolicy::default());
    let started = tokio::time::Instant::now();
    assert_eq!(w.deliver_due(T0).await.unwrap(), 1);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    let log = outbox.attempts(id).unwrap();
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].error.as_deref(), Some("timeout after 30s"));
    assert_eq!(
        outbox.delivery(id).unwrap().unwrap().state,
        DeliveryState::Pending
    );
}

#[tokio::test]
async fn unreachable_and_unusable_urls() {
    // Nothing listens on the port: a connect error, retried.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let outbox = Arc::new(MemoryOutbox::new());
    let url = format!("http://127.0.0.1:{port}/secret-token-in-path");
    subscribe(&outbox, &url, Format::Statuspage, Some("k"), &[]);
    subscribe(
        &outbox,
        "ftp://example.com/x",
        Format::Statuspage,
        None,
        &[],
    );
    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let queued = enqueue(
        outbox.as_ref(),
        &page(),
        &Event::Incident(&inc),
        &links(),
        T0,
    )
    .unwrap();
    worker(&outbox, RetryPolicy::default())
        .deliver_due(T0)
        .await
        .unwrap();

    let refused = &outbox.attempts(queued[0].id).unwrap()[0];
    let error = refused.error.clone().unwrap();
    assert!(error.starts_with("connect: "), "{error}");
    assert!(!error.contains("secret-token"), "{error}");
    assert_eq!(
        outbox.delivery(queued[0].id).unwrap().unwrap().state,
        DeliveryState::Pending
    );
    // A URL that can never work is given up at once.
    assert_eq!(
        outbox.delivery(queued[1].id).unwrap().unwrap().state,
        DeliveryState::Failed
    );
}

// === scoping ===

#[test]
fn subscribers_scoped_to_components_hear_only_about_them() {
    let outbox = MemoryOutbox::new();
    let all = subscribe(&outbox, "http://a/", Format::Statuspage, None, &[]);
    let chat = subscribe(&outbox, "http://b/", Format::Slack, None, &["chat"]);
    let emb = subscribe(&outbox, "http://c/", Format::Discord, None, &["embeddings"]);
    let page = page();
    let ids = |d: Vec<Delivery>| d.iter().map(|d| d.subscriber_id).collect::<Vec<_>>();

    let inc = incident("x", &[(IncidentStatus::Investigating, "y")], &["chat"]);
    let got = enqueue(&outbox, &page, &Event::Incident(&inc), &links(), T0).unwrap();
    assert_eq!(ids(got), vec![all.id, chat.id]);

    let change = Event::Component(ComponentChange {
        component: page.component("embeddings").unwrap(),
        old_status: ComponentStatus::Operational,
        new_status: ComponentStatus::DegradedPerformance,
        at_ms: T0,
    });
    let got = enqueue(&outbox, &page, &change, &links(), T0).unwrap();
    assert_eq!(ids(got), vec![all.id, emb.id]);

    // An incident naming no component concerns the whole page.
    let wide = incident("x", &[(IncidentStatus::Investigating, "y")], &[]);
    let got = enqueue(&outbox, &page, &Event::Incident(&wide), &links(), T0).unwrap();
    assert_eq!(ids(got), vec![all.id, chat.id, emb.id]);

    // Each format gets its own body.
    let got = enqueue(&outbox, &page, &Event::Incident(&inc), &links(), T0).unwrap();
    let a: Value = serde_json::from_str(&got[0].body).unwrap();
    let b: Value = serde_json::from_str(&got[1].body).unwrap();
    assert!(a.get("meta").is_some() && a.get("incident").is_some());
    assert!(b.get("blocks").is_some());
    assert_eq!(got[0].event, "incident 7 investigating");

    // Unsubscribing drops what is still pending.
    assert!(outbox.remove_subscriber(chat.id).unwrap());
    assert!(outbox
        .due(T0, 100)
        .unwrap()
        .iter()
        .all(|(d, _)| d.subscriber_id != chat.id));
}

// === payloads ===

#[test]
fn the_statuspage_envelope_has_statuspage_field_names() {
    let page = page();
    let inc = incident(
        "Elevated errors on Chat Completions",
        &[
            (IncidentStatus::Investigating, "Looking into it"),
            (IncidentStatus::Monitoring, "Fix deployed"),
            (IncidentStatus::Resolved, "All good"),
        ],
        &["chat"],
    );
    let body = payload::statuspage(
        &page,
        &Event::Incident(&inc),
        "https://u",
        "https://d",
        T0 + 1,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["meta"]["unsubscribe"], "https://u");
    assert_eq!(v["meta"]["documentation"], "https://d");
    assert_eq!(v["meta"]["generated_at"], "2026-08-23T10:24:00.001Z");
    assert_eq!(v["page"]["id"], "gw01page");
    assert_eq!(v["page"]["status_indicator"], "major");
    assert_eq!(v["page"]["status_description"], "Partial System Outage");
    let i = &v["incident"];
    assert_eq!(i["id"], "7");
    assert_eq!(i["status"], "resolved");
    assert_eq!(i["impact"], "major");
    assert_eq!(i["created_at"], "2026-08-23T10:24:00.000Z");
    assert_eq!(i["started_at"], "2026-08-23T10:24:00.000Z");
    assert_eq!(i["monitoring_at"], "2026-08-23T10:25:00.000Z");
    assert_eq!(i["resolved_at"], "2026-08-23T10:26:00.000Z");
    assert_eq!(i["updated_at"], "2026-08-23T10:26:00.000Z");
    assert_eq!(i["shortlink"], "https://status.acme.ai/status/incidents/7");
    assert_eq!(i["page_id"], "gw01page");
    assert!(i.get("scheduled_for").is_none());
    let updates = i["incident_updates"].as_array().unwrap();
    assert_eq!(updates.len(), 3);
    // Newest first, as Statuspage lists them.
    assert_eq!(updates[0]["status"], "resolved");
    assert_eq!(updates[0]["id"], "102");
    assert_eq!(updates[0]["incident_id"], "7");
    assert_eq!(updates[0]["body"], "All good");
    assert_eq!(updates[2]["display_at"], "2026-08-23T10:24:00.000Z");
    for key in ["affected_components", "custom_tweet", "tweet_id"] {
        assert!(updates[0][key].is_null(), "{key}");
    }
    assert_eq!(updates[0]["deliver_notifications"], true);
    let c = &i["components"][0];
    assert_eq!(c["id"], "chat");
    assert_eq!(c["name"], "Chat Completions");
    assert_eq!(c["status"], "major_outage");
    assert_eq!(c["group_id"], "apis");
    assert_eq!(c["page_id"], "gw01page");
    assert_eq!(c["position"], 1);
    assert_eq!(c["group"], false);
    assert_eq!(c["start_date"], "2026-08-22");
    assert!(c["description"].is_null());
    assert!(v.get("component_update").is_none());
}

#[test]
fn component_updates_and_maintenance_envelopes() {
    let page = page();
    let change = ComponentChange {
        component: page.component("embeddings").unwrap(),
        old_status: ComponentStatus::Operational,
        new_status: ComponentStatus::DegradedPerformance,
        at_ms: T0,
    };
    let v: Value = serde_json::from_str(&payload::statuspage(
        &page,
        &Event::Component(change),
        "u",
        "d",
        T0,
    ))
    .unwrap();
    assert!(v.get("incident").is_none());
    assert_eq!(v["component"]["id"], "embeddings");
    assert_eq!(v["component"]["status"], "degraded_performance");
    assert_eq!(v["component"]["position"], 2);
    let u = &v["component_update"];
    assert_eq!(u["old_status"], "operational");
    assert_eq!(u["new_status"], "degraded_performance");
    assert_eq!(u["created_at"], "2026-08-23T10:24:00.000Z");
    assert_eq!(u["component_type"], "Component");
    assert_eq!(u["component_id"], "embeddings");
    assert!(u["id"].is_string());

    let m = ScheduledMaintenance {
        id: 3,
        name: "Database failover drill".into(),
        status: MaintenanceStatus::InProgress,
        scheduled_for: T0,
        scheduled_until: T0 + 1_800_000,
        components: vec!["chat".into()],
        body: "Drill".into(),
        created_at: T0 - 86_400_000,
        updated_at: T0,
    };
    let v: Value = serde_json::from_str(&payload::statuspage(
        &page,
        &Event::Maintenance(&m),
        "u",
        "d",
        T0,
    ))
    .unwrap();
    let i = &v["incident"];
    assert_eq!(i["id"], "3");
    assert_eq!(i["status"], "in_progress");
    assert_eq!(i["impact"], "none");
    assert_eq!(i["scheduled_for"], "2026-08-23T10:24:00.000Z");
    assert_eq!(i["scheduled_until"], "2026-08-23T10:54:00.000Z");
    assert!(i["resolved_at"].is_null());
    assert_eq!(i["incident_updates"][0]["status"], "in_progress");
    assert_eq!(i["components"][0]["id"], "chat");
}

const HOSTILE_NAME: &str = "<script>alert(1)</script> & @everyone <!channel>";
const HOSTILE_BODY: &str =
    "ping <@123456> and @here, see [login](javascript:alert(1)) *now* <https://evil.example|click>";

#[test]
fn slack_bodies_have_text_and_blocks_and_escape_hostile_text() {
    let page = page();
    let inc = incident(
        HOSTILE_NAME,
        &[(IncidentStatus::Identified, HOSTILE_BODY)],
        &["chat"],
    );
    let body = chat::slack(&page, &Event::Incident(&inc));
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Identified: &lt;script&gt;alert(1)&lt;/script&gt; &amp; @everyone &lt;!channel&gt;"
        ),
        "{text}"
    );
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert_eq!(blocks[1]["type"], "context");
    let section = blocks[0]["text"]["text"].as_str().unwrap();
    let context = blocks[1]["elements"][0]["text"].as_str().unwrap();
    // No raw `<` survives from the incident's text: no mention, no link.
    for t in [text, section] {
        assert!(!t.contains('<') && !t.contains('>'), "{t}");
    }
    assert!(section.contains("&lt;@123456&gt;"));
    assert!(section.contains("&lt;https://evil.example|click&gt;"));
    assert_eq!(
        context,
        "Affected: Chat Completions · <https://status.acme.ai/status/incidents/7|Acme AI status>"
    );
}

#[test]
fn discord_bodies_have_content_and_embeds_and_mention_no_one() {
    let page = page();
    let inc = incident(
        HOSTILE_NAME,
        &[(IncidentStatus::Identified, HOSTILE_BODY)],
        &["chat"],
    );
    let body = chat::discord(&page, &Event::Incident(&inc));
    let v: Value = serde_json::from_str(&body).unwrap();
    let content = v["content"].as_str().unwrap();
    let embed = &v["embeds"][0];
    let description = embed["description"].as_str().unwrap();
    assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
    for t in [content, embed["title"].as_str().unwrap(), description] {
        assert!(!t.contains("@everyone") && !t.contains("@here"), "{t}");
        // `<@123456>` is escaped and its `@` broken by a zero-width space.
        assert!(!t.contains("@1"), "{t}");
        assert!(!t.contains("]("), "{t}");
    }
    assert!(content.contains("@\u{200b}everyone"));
    assert!(
        description.contains("\\[login\\]\\(javascript:alert\\(1\\)\\)"),
        "{description}"
    );
    assert!(description.contains("\\*now\\*"));
    assert_eq!(embed["url"], "https://status.acme.ai/status/incidents/7");
    assert_eq!(embed["color"], 0xe6_7e_22);
    assert_eq!(embed["timestamp"], "2026-08-23T10:24:00.000Z");
    assert_eq!(embed["fields"][0]["value"], "Chat Completions");
    assert_eq!(embed["footer"]["text"], "Acme AI status");

    // Long text is cut to Discord's limits.
    let long = "x".repeat(5000);
    let inc = incident(
        &long,
        &[(IncidentStatus::Investigating, long.as_str())],
        &[],
    );
    let v: Value = serde_json::from_str(&chat::discord(&page, &Event::Incident(&inc))).unwrap();
    assert_eq!(v["content"].as_str().unwrap().chars().count(), 2000);
    assert_eq!(
        v["embeds"][0]["title"].as_str().unwrap().chars().count(),
        256
    );
    assert_eq!(
        v["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        4096
    );
    assert!(v["embeds"][0].get("fields").is_none());
}
