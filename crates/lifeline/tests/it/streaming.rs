//! Streaming through the gateway over real sockets: failover before the first
//! content, honest endings after it (error event, never `[DONE]`), stalls,
//! malformed chunks, a missing `[DONE]`, client disconnects cancelling the
//! upstream, and chunks relayed as they arrive rather than buffered.

use std::time::Duration;

use lifeline_mock::{Faults, MockHandle};
use tokio::time::Instant;

use crate::harness::{config, mocks, one_tier, Env};

/// Model `m` with tier 1 = p0 (`up-0`) and tier 2 = p1 (`up-1`), plus
/// per-model `extra` lines (timeouts).
pub fn two_tiers(extra: &str) -> String {
    format!(
        "[[models]]\nname = \"m\"\n{extra}\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ], [ {{ provider = \"p1\", model = \"up-1\" }} ] ]\n"
    )
}

/// The body of a streaming chat request for `model`.
pub fn stream_body(model: &str) -> String {
    format!("{{\"model\":\"{model}\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}")
}

/// Sets streaming rate and answer length of a mock.
pub fn pace(mock: &MockHandle, tokens_per_second: f64, tokens: u32) {
    let mut c = mock.config();
    c.tokens_per_second = tokens_per_second;
    c.completion_tokens = tokens;
    mock.set_config(c);
}

/// `GET /metrics` on the admin listener.
pub async fn metrics(env: &Env) -> String {
    env.client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

/// Waits until `cond` holds, polling every 20 ms, for at most `limit`.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

fn assert_complete(body: &str) {
    assert!(body.ends_with("data: [DONE]\n\n"), "not complete: {body}");
    assert!(!body.contains("event: error"), "{body}");
}

fn assert_broken(body: &str) {
    assert!(body.contains("event: error"), "no error event: {body}");
    assert!(body.contains("stream_interrupted"), "{body}");
    assert!(
        !body.contains("[DONE]"),
        "broken stream looks complete: {body}"
    );
}

#[tokio::test]
async fn cut_before_content_fails_over_to_next_tier() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(1),
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &two_tiers("tier_wait_ms = 0")), m).await;
    let (status, headers, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-attempts"], "2", "{body}");
    assert_eq!(headers["x-lifeline-deployment"], "p1/up-1");
    assert_complete(&body);
    assert!(body.contains("\"model\":\"up-1\""), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn cut_after_content_ends_with_error_event_and_counts_broken() {
    let m = mocks(2).await;
    for mock in &m {
        mock.set_faults(Faults {
            cut_after_chunks: Some(3),
            ..Faults::default()
        });
    }
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_broken(&body);
    let text = metrics(&env).await;
    assert!(
        text.contains("lifeline_streams_total{model=\"m\",outcome=\"broken\"} 1"),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn stall_after_content_ends_with_error_event() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        stall_after_chunks: Some(3),
        ..Faults::default()
    });
    let env = Env::boot(
        &config(&m, "stream_idle_timeout_ms = 300", &one_tier(&m)),
        m,
    )
    .await;
    let t = Instant::now();
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_broken(&body);
    assert!(body.contains("no data for 300 ms"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    env.stop().await;
}

#[tokio::test]
async fn stall_before_content_fails_over() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        stall_after_chunks: Some(1),
        ..Faults::default()
    });
    let models = two_tiers("first_byte_timeout_ms = 300");
    let env = Env::boot(&config(&m, "", &models), m).await;
    let t = Instant::now();
    let (status, headers, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-attempts"], "2");
    assert_complete(&body);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    env.stop().await;
}

#[tokio::test]
async fn malformed_chunk_before_content_fails_over() {
    for at in [0, 1] {
        let m = mocks(2).await;
        m[0].set_faults(Faults {
            malformed_chunk_at: Some(at),
            ..Faults::default()
        });
        let env = Env::boot(&config(&m, "", &two_tiers("tier_wait_ms = 0")), m).await;
        let (status, headers, body) = env.chat(true).await;
        assert_eq!(status, 200, "at {at}: {body}");
        assert_eq!(headers["x-lifeline-attempts"], "2", "at {at}");
        assert_complete(&body);
        assert!(!body.contains("{\"broken"), "{body}");
        env.stop().await;
    }
}

#[tokio::test]
async fn malformed_chunk_after_content_is_never_forwarded() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        malformed_chunk_at: Some(3),
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_broken(&body);
    assert!(
        !body.contains("{\"broken"),
        "malformed bytes reached the client: {body}"
    );
    env.stop().await;
}

#[tokio::test]
async fn missing_done_is_added_promptly() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        no_done: true,
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let t = Instant::now();
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_complete(&body);
    assert!(body.contains("\"finish_reason\":\"stop\""), "{body}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    env.stop().await;
}

#[tokio::test]
async fn client_disconnect_cancels_upstream_stream() {
    let m = mocks(1).await;
    pace(&m[0], 5.0, 50);
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let mut resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    drop(resp);
    let mock = env.mocks[0].clone();
    assert!(
        eventually(Duration::from_secs(5), || mock.stats().cancelled >= 1).await,
        "upstream not cancelled: {:?}",
        mock.stats()
    );
    assert_eq!(mock.stats().completed, 0);
    env.stop().await;
}

#[tokio::test]
async fn client_disconnect_cancels_upstream_non_streaming() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    // The default first-byte timeout (10 s) would also end the upstream
    // request; the check below must see the cancel well before it.
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let gone = tokio::time::timeout(Duration::from_millis(300), env.chat(false)).await;
    assert!(gone.is_err(), "a hanging upstream answered");
    let mock = env.mocks[0].clone();
    assert!(
        eventually(Duration::from_secs(3), || mock.stats().cancelled >= 1).await,
        "upstream not cancelled: {:?}",
        mock.stats()
    );
    let text = metrics(&env).await;
    assert!(
        text.contains("lifeline_requests_total{model=\"m\",status=\"499\"} 1"),
        "abandoned request not counted as 499:\n{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn chunks_are_relayed_as_they_arrive() {
    let m = mocks(1).await;
    pace(&m[0], 20.0, 20);
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let t = Instant::now();
    let mut resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    let mut first_at = None;
    let mut chunks = 0;
    while let Some(c) = resp.chunk().await.unwrap() {
        first_at.get_or_insert(t.elapsed());
        chunks += 1;
        body.extend_from_slice(&c);
    }
    let total = t.elapsed();
    let first_at = first_at.expect("no chunk");
    assert!(
        first_at < Duration::from_millis(600),
        "first chunk at {first_at:?}"
    );
    assert!(
        total > Duration::from_millis(800),
        "whole stream in {total:?}"
    );
    assert!(chunks >= 5, "only {chunks} chunks: buffered?");
    assert_complete(&String::from_utf8_lossy(&body));
    env.stop().await;
}

#[tokio::test]
async fn stall_after_finish_reason_is_completed_with_done() {
    let m = mocks(1).await;
    // 5 tokens: role (0), tokens (1..=5), finish (6), then stall before [DONE].
    m[0].set_faults(Faults {
        stall_after_chunks: Some(7),
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let t = Instant::now();
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_complete(&body);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    env.stop().await;
}

/// The value of an unlabelled metric line `name value`.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn in_flight_gauge_follows_requests() {
    let m = mocks(1).await;
    pace(&m[0], 5.0, 50);
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    // A stream in flight, then cancelled by the client.
    let mut resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    resp.chunk().await.unwrap().expect("first chunk");
    let text = metrics(&env).await;
    assert_eq!(
        gauge(&text, "lifeline_in_flight_requests"),
        Some(1.0),
        "{text}"
    );
    drop(resp);
    let mock = env.mocks[0].clone();
    assert!(eventually(Duration::from_secs(5), || mock.stats().cancelled >= 1).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = metrics(&env).await;
    assert_eq!(
        gauge(&text, "lifeline_in_flight_requests"),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("lifeline_streams_total{model=\"m\",outcome=\"cancelled\"} 1"),
        "{text}"
    );
    // A non-streaming request waiting on a hanging upstream is in flight too.
    mock.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let waiting = tokio::spawn({
        let (client, url) = (env.client.clone(), env.url("/v1/chat/completions"));
        async move {
            let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
            client.post(url).body(body).send().await
        }
    });
    assert!(eventually(Duration::from_secs(3), || mock.stats().in_flight >= 1).await);
    let text = metrics(&env).await;
    assert_eq!(
        gauge(&text, "lifeline_in_flight_requests"),
        Some(1.0),
        "{text}"
    );
    waiting.abort();
    env.stop().await;
}
