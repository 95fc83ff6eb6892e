//! The listener's limits against hostile or broken clients, over raw TCP
//! sockets and real HTTP/2 connections: hyper's own answers to a head it
//! cannot parse (431, 400) in a shape both OpenAI's and Anthropic's SDKs read; the JSON nesting limit; the
//! keep-alive limits (requests per connection, connection age); and the
//! count of every refusal in `lifeline_listener_refusals_total`. Short
//! configured timeouts and generous waits: nothing asserts an exact timing.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifeline_mock::MockConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::harness::{config, error_code, mocks, one_tier, Env};

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const WAIT: Duration = Duration::from_secs(20);

async fn boot(server_extra: &str) -> Env {
    let m = mocks(1).await;
    Env::boot(&config(&m, server_extra, &one_tier(&m)), m).await
}

/// Reads one whole HTTP/1.1 response with a Content-Length body:
/// (status, head, body).
async fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().expect("status");
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, head.to_ascii_lowercase(), body);
            }
        }
        let n = timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap_or_else(|e| panic!("read failed after {} bytes: {e}", buf.len()));
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until the server closes (true) or `wait` passes (false).
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let end = Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

fn chat_head(len: usize, extra: &str) -> String {
    format!("POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}content-length: {len}\r\n\r\n")
}

/// `lifeline_listener_refusals_total{listener="data",reason}` from `/metrics`.
async fn refusals(env: &Env, reason: &str) -> u64 {
    let text = env
        .client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix =
        format!("lifeline_listener_refusals_total{{listener=\"data\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

/// hyper answers a head it cannot parse by itself; the answer has
/// OpenAI's shape all the same, on a fresh connection and on a keep-alive
/// connection after a good request, and is counted.
#[tokio::test]
async fn heads_hyper_refuses_get_openai_errors() {
    let env = boot("max_header_bytes = 8192").await;
    // A header block over the limit (more than the server reads: the rest
    // is read and discarded before the close, so the answer is readable).
    let big = format!(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(big.as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut s).await;
    assert_eq!(status, 431, "{head}\n{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(error_code(&body), "headers_too_large");
    // Anthropic's SDKs read it too (the path is unknown: both shapes).
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error")),
        "{body}"
    );
    assert!(closed_within(&mut s, WAIT).await);

    // A malformed request line, and a malformed header.
    for bad in [
        "HELLO WORLD\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(env.addr).await.unwrap();
        s.write_all(bad.as_bytes()).await.unwrap();
        let (status, head, body) = read_response(&mut s).await;
        assert_eq!(status, 400, "{bad:?}: {head}\n{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "malformed_request");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["param"].is_null());
    }

    // After a good request on the same connection.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("{}{BODY}", chat_head(BODY.len(), "")).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    s.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "malformed_request");

    assert_eq!(refusals(&env, "header_too_large").await, 1);
    assert_eq!(refusals(&env, "malformed").await, 3);
    // Our own 400s (a bad JSON body) are answered normally, and are no
    // listener refusal.
    let (status, _, body) = env.post(CHAT, "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(refusals(&env, "malformed").await, 3);
    env.stop().await;
}

#[tokio::test]
async fn json_nested_beyond_the_limit_is_refused_and_counted() {
    let env = boot("max_json_depth = 8").await;
    let nested = |levels: usize| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"x":{}1{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    let (status, _, body) = env.post(CHAT, &nested(7)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = env.post(CHAT, &nested(8)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "json_too_deep");
    assert!(body.contains("deeper than 8 levels"), "{body}");
    assert_eq!(refusals(&env, "json_depth").await, 1);
    env.stop().await;
}

/// Every listener refusal is counted under its reason.
#[tokio::test]
async fn listener_refusals_are_counted() {
    let env = boot(
        "max_body_bytes = 4096\nidle_timeout_ms = 300\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 300",
    )
    .await;
    // A silent connection: idle.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    assert!(closed_within(&mut s, WAIT).await);
    // Half a head: header timeout.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut s, WAIT).await);
    // A body that never comes: 408.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(chat_head(100, "").as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 408, "{body}");
    // A body over the limit: 413.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(chat_head(8192, "").as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(refusals(&env, "idle").await, 1);
    assert_eq!(refusals(&env, "header_timeout").await, 1);
    assert_eq!(refusals(&env, "body_timeout").await, 1);
    assert_eq!(refusals(&env, "body_too_large").await, 1);
    // A keep-alive connection that idles out after its requests is
    // housekeeping, not a refusal.
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(format!("{}{BODY}", chat_head(BODY.len(), "")).as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    assert!(closed_within(&mut s, WAIT).await);
    assert_eq!(refusals(&env, "idle").await, 1);
    env.stop().await;
}

#[tokio::test]
async fn a_full_listener_is_counted() {
    let env = boot("max_connections = 1\nidle_timeout_ms = 300").await;
    assert_eq!(refusals(&env, "connection_limit").await, 0);
    let _held = TcpStream::connect(env.addr).await.unwrap();
    let mut waiting = TcpStream::connect(env.addr).await.unwrap();
    // The second waits in the backlog until the first idles out, then is
    // served (and idles out in turn).
    assert!(closed_within(&mut waiting, WAIT).await);
    assert!(refusals(&env, "connection_limit").await >= 1);
    env.stop().await;
}

/// `max_requests_per_connection`: HTTP/1.1 answers the last request with
/// `Connection: close` and closes; HTTP/2 sends GOAWAY after it.
#[tokio::test]
async fn connections_close_after_their_last_request() {
    let env = boot("max_requests_per_connection = 3").await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    for i in 1..=3 {
        s.write_all(format!("{}{BODY}", chat_head(BODY.len(), "")).as_bytes())
            .await
            .unwrap();
        let (status, head, body) = read_response(&mut s).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            head.contains("connection: close"),
            i == 3,
            "request {i}: {head}"
        );
    }
    assert!(
        closed_within(&mut s, WAIT).await,
        "left open after its last request"
    );

    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::post(CHAT)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
    }
    timeout(WAIT, conn)
        .await
        .expect("h2 connection left open after its last request")
        .unwrap()
        .ok();
    assert!(tx.is_closed());
    env.stop().await;
}

/// `max_connection_age_ms`: a connection past its age closes, but only
/// once the request in flight is answered.
#[tokio::test]
async fn old_connections_close_after_their_request_in_flight() {
    let m = mocks(1).await;
    m[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 1000,
        completion_tokens: 5,
        ..MockConfig::default()
    });
    let env = Env::boot(&config(&m, "max_connection_age_ms = 300", &one_tier(&m)), m).await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    let t = Instant::now();
    s.write_all(format!("{}{BODY}", chat_head(BODY.len(), "")).as_bytes())
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "the mock was fast"
    );
    assert!(
        closed_within(&mut s, WAIT).await,
        "an old connection stayed open"
    );
    // An idle one closes at its age, long before the idle timeout (60 s).
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    assert!(closed_within(&mut s, WAIT).await);
    env.stop().await;
}

/// `http2_max_concurrent_streams` is what the server announces.
#[tokio::test]
async fn h2_concurrent_streams_follow_the_config() {
    let m = mocks(1).await;
    m[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 500,
        completion_tokens: 5,
        ..MockConfig::default()
    });
    let env = Env::boot(
        &config(&m, "http2_max_concurrent_streams = 1", &one_tier(&m)),
        m,
    )
    .await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    // One request first: the client has the server's SETTINGS after it.
    let req = http::Request::post(CHAT)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let resp = tx.clone().send_request(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    // Three requests at once on one connection: with one stream allowed,
    // they run one after the other (each takes >= 500 ms upstream).
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::post(CHAT)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                .unwrap();
            let resp = tx.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "streams ran side by side: {:?}",
        t.elapsed()
    );
    env.stop().await;
}
