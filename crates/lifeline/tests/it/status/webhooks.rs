//! Webhooks: subscribed through the admin API, signed deliveries that
//! verify with an HMAC computed here, Statuspage's envelope and Slack's
//! body, a 500 recorded in the delivery log with its retry scheduled (the
//! resend, 30 s later, is tested at the unit level in `lifeline-status`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{eventually, Serve, FAST};
use crate::harness::mocks;

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A webhook receiver on 127.0.0.1:0: records every request and answers
/// 200, except 500 to the first request to a path whose body contains a
/// marker it was given for that path.
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    fail_once: Arc<Mutex<VecDeque<(String, String)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            seen: Arc::default(),
            fail_once: Arc::default(),
        };
        let shared = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let text = String::from_utf8_lossy(&body).to_string();
                            let path = parts.uri.path().to_string();
                            let fail = {
                                let mut markers = shared.fail_once.lock().unwrap();
                                let hit = markers
                                    .iter()
                                    .position(|(p, m)| *p == path && text.contains(m.as_str()));
                                hit.map(|i| markers.remove(i)).is_some()
                            };
                            shared.seen.lock().unwrap().push(Received {
                                path,
                                headers: parts.headers,
                                body,
                            });
                            let mut response =
                                http::Response::new(Full::new(Bytes::from_static(b"ok")));
                            if fail {
                                *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
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
        r
    }

    /// The requests to `path` whose body contains `needle`.
    fn got(&self, path: &str, needle: &str) -> Vec<Received> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path && String::from_utf8_lossy(&r.body).contains(needle))
            .cloned()
            .collect()
    }
}

/// The signature check a subscriber would write (independent of Lifeline's
/// own `verify`): HMAC-SHA256 over `"{timestamp}.{body}"` with the secret,
/// lowercase hex after `sha256=`.
fn signature_verifies(secret: &str, r: &Received) -> bool {
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_string()
    };
    let timestamp = header("x-lifeline-timestamp");
    let signature = header("x-lifeline-signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signature == format!("sha256={hex}")
}

fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_logged_and_retried() {
    let m = mocks(1).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &m, FAST).await;

    // Subscribing answers the secret once; the list never shows it.
    let (status, sub) = serve
        .admin(
            "POST",
            "/admin/webhooks",
            Some(json!({"url": format!("{}/statuspage", receiver.url), "format": "statuspage"})),
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    let secret = sub["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64, "{sub}");
    let sub_id = sub["id"].as_i64().unwrap();
    let (status, slack) = serve
        .admin(
            "POST",
            "/admin/webhooks",
            Some(json!({"url": format!("{}/slack", receiver.url), "format": "slack"})),
        )
        .await;
    assert_eq!(status, 201, "{slack}");
    let slack_id = slack["id"].as_i64().unwrap();
    let (status, list) = serve.admin("GET", "/admin/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains(&secret), "{list}");

    // The first delivery of this incident to the Statuspage receiver fails.
    let name = "Elevated errors on chat (webhook test)";
    receiver
        .fail_once
        .lock()
        .unwrap()
        .push_back(("/statuspage".to_string(), name.to_string()));
    let incident = serve.open_incident(name).await;
    let id = incident["id"].as_i64().unwrap();

    let got = eventually(Duration::from_secs(30), || async {
        let got = receiver.got("/statuspage", name);
        (!got.is_empty()).then_some(got)
    })
    .await;
    let got = got.unwrap_or_else(|| {
        panic!(
            "no webhook for the incident; the receiver saw {:?}; stderr:\n{}",
            receiver.seen.lock().unwrap(),
            serve.logs()
        )
    });
    let first = &got[0];
    assert!(signature_verifies(&secret, first), "{first:?}");
    assert!(!signature_verifies("another-secret-entirely", first));
    let ts: i64 = first.headers["x-lifeline-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (ts - unix_now_s()).abs() < 300,
        "the signature's timestamp {ts} is not the real time (a receiver's replay check would refuse it)"
    );
    assert!(first.headers.contains_key("x-lifeline-delivery"));
    assert_eq!(first.headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&first.body).unwrap();
    for field in ["unsubscribe", "documentation", "generated_at"] {
        assert!(v["meta"][field].is_string(), "meta.{field}: {v}");
    }
    assert_eq!(v["page"]["id"], "lifeline", "{v}");
    assert!(v["page"]["status_indicator"].is_string(), "{v}");
    assert!(v["page"]["status_description"].is_string(), "{v}");
    let i = &v["incident"];
    assert_eq!(i["id"], id.to_string(), "{v}");
    assert_eq!(i["name"], name, "{v}");
    assert_eq!(i["status"], "investigating", "{v}");
    assert_eq!(i["impact"], "major", "{v}");
    for field in ["created_at", "updated_at", "shortlink"] {
        assert!(i[field].is_string(), "incident.{field}: {v}");
    }
    assert_eq!(i["incident_updates"][0]["status"], "investigating", "{v}");
    assert_eq!(
        i["incident_updates"][0]["body"], "We are looking into it.",
        "{v}"
    );
    assert_eq!(i["components"][0]["id"], "chat-m", "{v}");
    assert!(i["components"][0]["status"].is_string(), "{v}");

    // Slack gets its own body, signed too.
    let slack_got = eventually(Duration::from_secs(30), || async {
        receiver.got("/slack", name).into_iter().next()
    })
    .await
    .unwrap_or_else(|| panic!("no Slack webhook; stderr:\n{}", serve.logs()));
    let s: Value = serde_json::from_slice(&slack_got.body).unwrap();
    assert!(s["text"].as_str().unwrap().contains(name), "{s}");
    assert!(s.get("meta").is_none(), "{s}");
    assert!(signature_verifies(
        slack["secret"].as_str().unwrap(),
        &slack_got
    ));

    // The delivery log: the 500 is recorded and the retry scheduled by the
    // worker's backoff (30 s, up to 20 % later); Slack's is delivered. The
    // retry itself is 30 s of real time away (the retry policy is not
    // configurable), too slow here: the resend is tested in lifeline-status
    // (`webhook/tests/mod.rs`: `a_receiver_that_fails_twice_gets_the_delivery_
    // on_the_third_attempt`, `the_worker_loop_retries_on_its_own_under_paused_time`).
    // Deliveries are named by kind (`incident.created`); the body names
    // the incident.
    let this_incident =
        |d: &Value| d["event"] == "incident.created" && d["body"].as_str().unwrap().contains(name);
    let failed = eventually(Duration::from_secs(10), || async {
        let (_, log) = serve
            .admin("GET", &format!("/admin/webhooks/{sub_id}/deliveries"), None)
            .await;
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| this_incident(d) && d["last_status"] == 500)
            .cloned()
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the 500 is not in the delivery log; stderr:\n{}",
            serve.logs()
        )
    });
    assert_eq!(failed["state"], "pending", "{failed}");
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert_eq!(failed["last_error"], "status 500", "{failed}");
    let wait =
        failed["next_attempt_at"].as_i64().unwrap() - failed["last_attempt_at"].as_i64().unwrap();
    assert!(
        (30_000..=36_000).contains(&wait),
        "retry in {wait} ms: {failed}"
    );
    let delivered = eventually(Duration::from_secs(10), || async {
        let (_, log) = serve
            .admin(
                "GET",
                &format!("/admin/webhooks/{slack_id}/deliveries"),
                None,
            )
            .await;
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| this_incident(d) && d["state"] == "delivered")
            .cloned()
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "Slack's delivery is not logged as delivered; stderr:\n{}",
            serve.logs()
        )
    });
    assert_eq!(delivered["last_status"], 200, "{delivered}");
    assert_eq!(delivered["attempts"], 1, "{delivered}");
    serve.stop().await;
}
