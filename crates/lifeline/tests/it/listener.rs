//! The listener against clients that cost it something, over real sockets:
//! an early answer (413, 401, 404) read by a client still sending its body;
//! sockets that send nothing; idle keep-alive and HTTP/2 connections; a
//! client that stops reading its stream, over HTTP/1.1 and over HTTP/2 flow
//! control. Short configured timeouts and generous waits: nothing here
//! asserts an exact timing.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lifeline_mock::{Faults, MockConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

use crate::harness::{config, error_code, mocks, one_tier, providers, Env};

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const WAIT: Duration = Duration::from_secs(20);

async fn boot(server_extra: &str) -> Env {
    let m = mocks(1).await;
    Env::boot(&config(&m, server_extra, &one_tier(&m)), m).await
}

/// A chat completion on a new connection: with idle timeouts of a few
/// hundred ms, a pooled one could be closed by the server just as it is
/// reused (the usual keep-alive race, which is not under test here).
async fn fresh_chat(env: &Env, stream: bool) -> (u16, String) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let body = format!(
        "{{\"model\":\"m\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
    );
    let resp = client
        .post(env.url(CHAT))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn still_serves(env: &Env) {
    let (status, body) = fresh_chat(env, false).await;
    assert_eq!(status, 200, "gateway no longer serves: {body}");
}

async fn eventually(what: &str, wait: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + wait;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Reads one whole HTTP/1.1 response with a Content-Length body.
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
                .expect("content-length");
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().expect("status");
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, head, body);
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

/// Sends `head`, then `total` body bytes in 64 KiB writes (chunked framing
/// if `chunked`), as an SDK does before it reads; then reads the answer.
/// Every write must succeed: a reset here is what makes SDKs resend.
async fn send_then_read(
    addr: SocketAddr,
    head: &str,
    total: usize,
    chunked: bool,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = piece.len().min(total - sent);
        let res = if chunked {
            let mut c = format!("{n:x}\r\n").into_bytes();
            c.extend_from_slice(&piece[..n]);
            c.extend_from_slice(b"\r\n");
            s.write_all(&c).await
        } else {
            s.write_all(&piece[..n]).await
        };
        res.unwrap_or_else(|e| panic!("{head:?}: write failed after {sent} bytes: {e}"));
        sent += n;
    }
    if chunked {
        s.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let (status, _, body) = read_response(&mut s).await;
    (status, body)
}

#[tokio::test]
async fn early_answers_are_readable_by_a_client_still_sending() {
    let m = mocks(1).await;
    let keys = "\n[[keys]]\nname = \"app\"\nkey = \"sk-client\"\n";
    let toml = config(&m, "max_body_bytes = 4096\nauth = \"keys\"", &one_tier(&m)) + keys;
    let env = Env::boot(&toml, m).await;
    let auth = "authorization: Bearer sk-client\r\n";
    let big = 8 * 1024 * 1024;
    let cases = [
        // Content-Length over the limit: refused before a byte is read.
        (
            format!("POST {CHAT} HTTP/1.1\r\nhost: x\r\n{auth}content-length: {big}\r\n\r\n"),
            false,
            413,
            "request_too_large",
        ),
        // A chunked body that grows past the limit.
        (
            format!("POST {CHAT} HTTP/1.1\r\nhost: x\r\n{auth}transfer-encoding: chunked\r\n\r\n"),
            true,
            413,
            "request_too_large",
        ),
        // No key.
        (
            format!("POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: {big}\r\n\r\n"),
            false,
            401,
            "invalid_api_key",
        ),
        // An unknown path.
        (
            format!("POST /v1/nowhere HTTP/1.1\r\nhost: x\r\n{auth}content-length: {big}\r\n\r\n"),
            false,
            404,
            "unknown_url",
        ),
    ];
    for (head, chunked, want, code) in cases {
        let (status, body) = send_then_read(env.addr, &head, big, chunked).await;
        assert_eq!(status, want, "{head:?}: {body}");
        assert_eq!(error_code(&body), code, "{head:?}");
    }
    assert_eq!(env.mocks[0].stats().by_path.get(CHAT), None);
    let resp = env
        .client
        .post(env.url(CHAT))
        .header("authorization", "Bearer sk-client")
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    env.stop().await;
}

/// The lingering close is for early answers only: after a POST whose body
/// was read in full, a connection that idles out (or asked for
/// `Connection: close`) closes at once and its slot, the only one here,
/// serves the next client, even while the first keeps its socket open and
/// sends a byte now and then (which a lingering close would read, keeping
/// the slot for up to 10 s).
#[tokio::test]
async fn a_close_after_a_body_read_in_full_does_not_linger() {
    let env = boot("max_connections = 1\nidle_timeout_ms = 300").await;
    for connection in ["keep-alive", "close"] {
        let mut a = TcpStream::connect(env.addr).await.unwrap();
        let request = format!(
            "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: {connection}\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        a.write_all(request.as_bytes()).await.unwrap();
        let (status, head, body) = read_response(&mut a).await;
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(
            closed_within(&mut a, WAIT).await,
            "{connection}: connection left open"
        );
        let trickle = tokio::spawn(async move {
            for _ in 0..150 {
                if a.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let t = Instant::now();
        let (status, body) = timeout(WAIT, fresh_chat(&env, false))
            .await
            .expect("the next client was never served");
        assert_eq!(status, 200, "{body}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{connection}: the slot was held {:?} after an ordinary POST",
            t.elapsed()
        );
        trickle.abort();
    }
    env.stop().await;
}

#[tokio::test]
async fn silent_sockets_are_closed_and_others_get_through() {
    let env = boot("max_connections = 4\nidle_timeout_ms = 300").await;
    // Twice the limit: four hold every slot, four wait in the backlog.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(env.addr).await.unwrap());
    }
    let (status, body) = timeout(WAIT, fresh_chat(&env, false))
        .await
        .expect("a client behind silent sockets was never served");
    assert_eq!(status, 200, "{body}");
    for s in &mut silent {
        assert!(closed_within(s, WAIT).await, "a silent socket stayed open");
    }
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    // The header timeout is long: what closes the connection is the idle timeout.
    let env = boot("idle_timeout_ms = 300\nheader_read_timeout_ms = 60000").await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut s).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        closed_within(&mut s, WAIT).await,
        "idle keep-alive connection left open"
    );

    // A request in flight longer than the idle timeout is not cut: a slow
    // whole answer, and a slow stream.
    env.mocks[0].set_faults(Faults {
        latency_ms: 1200,
        ..Faults::default()
    });
    let (status, body) = fresh_chat(&env, false).await;
    assert_eq!(status, 200, "{body}");
    env.mocks[0].set_faults(Faults::default());
    env.mocks[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 5.0,
        ttft_ms: 0,
        completion_tokens: 6,
        ..MockConfig::default()
    });
    let (status, body) = fresh_chat(&env, true).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("data: [DONE]"), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn keep_alive_outlives_the_header_timeout() {
    // Before, hyper's header timeout also ran between keep-alive requests.
    let env = boot("idle_timeout_ms = 60000\nheader_read_timeout_ms = 300").await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, head, _) = read_response(&mut s).await;
        assert_eq!(status, 200, "{head}");
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // A head begun and not finished still gets only the header timeout.
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    assert!(
        closed_within(&mut s, WAIT).await,
        "half a head kept the connection"
    );
    env.stop().await;
}

#[tokio::test]
async fn h2c_connection_without_streams_is_closed() {
    let env = boot("idle_timeout_ms = 300").await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    // The client pings every 100 ms: frames outside a stream are no request.
    let (mut tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = http::Request::post(CHAT)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let resp = tx.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    timeout(WAIT, conn)
        .await
        .expect("idle h2 connection left open")
        .unwrap()
        .ok();
    assert!(tx.is_closed());
    still_serves(&env).await;
    env.stop().await;
}

/// One provider with room for one request at a time, streams as fast as
/// the client reads, and a write-stall timeout of 500 ms.
async fn capped_env() -> Env {
    let m = mocks(1).await;
    m[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 0,
        completion_tokens: 200_000,
        ..MockConfig::default()
    });
    let toml = config(
        &m,
        "stream_idle_timeout_ms = 500\nrequest_timeout_ms = 30000",
        &one_tier(&m),
    )
    .replace(
        &providers(&m),
        &providers(&m).replace("\n\n", "\nmax_concurrency = 1\n\n"),
    );
    Env::boot(&toml, m).await
}

/// After a stalled stream: the deployment is free, the upstream request
/// was cancelled, and the only slot serves the next client.
async fn slot_is_released(env: &Env) {
    let dep = env.gw.deployment("p0/up-0").expect("deployment");
    eventually("the lease released", WAIT, || dep.in_flight() == 0).await;
    let m = &env.mocks[0];
    eventually("upstream cancel", WAIT, || m.stats().cancelled >= 1).await;
    let short = BODY.replace("\"messages\"", "\"max_tokens\":5,\"messages\"");
    let (status, _, body) = env.post(CHAT, &short).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_client_that_stops_reading_releases_its_upstream_slot() {
    let env = capped_env().await;
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(env.addr).await.unwrap();
    let streamed = BODY.replace("\"messages\"", "\"stream\":true,\"messages\"");
    let req = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{streamed}",
        streamed.len()
    );
    stalled.write_all(req.as_bytes()).await.unwrap();
    let dep = env.gw.deployment("p0/up-0").expect("deployment");
    eventually("the stream upstream", WAIT, || dep.in_flight() == 1).await;
    // The socket stays open and unread; the write stall ends the stream.
    slot_is_released(&env).await;
    drop(stalled);
    env.stop().await;
}

#[tokio::test]
async fn an_h2_stream_stopped_by_flow_control_releases_its_upstream_slot() {
    let env = capped_env().await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    // A 1 KiB stream window the client never reopens: the socket stays
    // readable, only this stream stops.
    let (mut tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(1024)
        .adaptive_window(false)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let streamed = BODY.replace("\"messages\"", "\"stream\":true,\"messages\"");
    let req = http::Request::post(CHAT)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(streamed)))
        .unwrap();
    let resp = tx.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    let unread = resp.into_body();
    slot_is_released(&env).await;
    drop(unread);
    env.stop().await;
}

#[tokio::test]
async fn h2_header_lists_are_bounded_at_64_kib() {
    let env = boot("").await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut statuses = Vec::new();
    // 32 KiB is over hyper's default of 16 KiB, 128 KiB over Lifeline's limit.
    for size in [32 * 1024, 128 * 1024] {
        let req = http::Request::post(CHAT)
            .header("content-type", "application/json")
            .header("x-big", "a".repeat(size))
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .unwrap();
        let status = match tx.send_request(req).await {
            Ok(resp) => resp.status().as_u16(),
            Err(_) => 0,
        };
        statuses.push(status);
        tx.ready().await.ok();
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert_ne!(statuses[1], 200, "{statuses:?}");
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn h2_peer_that_ignores_pings_is_dropped() {
    // The idle timeout is far away: only the keep-alive ping can close this.
    let env = boot("idle_timeout_ms = 60000\nhttp2_keepalive_ms = 300").await;
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    // The client preface and an empty SETTINGS frame, then silence: the
    // server's PING is read but never answered (a peer gone dark).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    assert!(
        closed,
        "a peer that never answers pings kept its connection"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "closed only by something slower than the keep-alive"
    );
    // Frames: 3-byte length, type, flags, 4-byte stream id, payload.
    let mut pings = 0;
    let mut i = 0;
    while i + 9 <= got.len() {
        let len =
            usize::from(got[i]) << 16 | usize::from(got[i + 1]) << 8 | usize::from(got[i + 2]);
        if got[i + 3] == 0x6 && got[i + 4] & 0x1 == 0 {
            pings += 1;
        }
        i += 9 + len;
    }
    assert!(
        pings >= 1,
        "the server sent no PING before closing: {got:?}"
    );
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn h2_early_answers_are_readable_by_a_client_still_sending() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "max_body_bytes = 4096", &one_tier(&m)), m).await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    // 4 MiB, far past the limit and the stream's flow-control window: the
    // answer comes while the client still has most of it to send.
    let big = Bytes::from(vec![b' '; 4 << 20]);
    for (path, status, code) in [
        (CHAT, 413, "request_too_large"),
        ("/v1/nope", 404, "unknown_url"),
    ] {
        let req = http::Request::post(path)
            .header("content-type", "application/json")
            .body(Full::new(big.clone()))
            .unwrap();
        let resp = timeout(WAIT, tx.send_request(req))
            .await
            .expect("no answer")
            .unwrap_or_else(|e| panic!("{path}: the client saw an error, not the answer: {e}"));
        assert_eq!(resp.status(), status, "{path}");
        let body = timeout(WAIT, resp.into_body().collect())
            .await
            .expect("body")
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], code, "{path}: {v}");
    }
    still_serves(&env).await;
    env.stop().await;
}
