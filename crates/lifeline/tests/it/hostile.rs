//! Hostile input at the HTTP layer, over real sockets: slowloris headers,
//! oversized header blocks, request-smuggling framings, garbage request
//! lines, pathological JSON, the connection limit, HTTP/2 prior knowledge,
//! pipelining and a client that never reads its stream. Each gets a precise
//! answer or a closed connection, nothing reaches the upstream that should
//! not, and afterwards the gateway still serves a normal request.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifeline_mock::MockConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

use crate::harness::{config, error_code, mocks, one_tier, Env};

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: String,
}

/// Splits complete responses off the front of `buf` (content-length or
/// chunked framing); stops at the first incomplete one.
fn parse(mut buf: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_ascii_lowercase())
            })
        };
        let mut rest = &buf[end + 4..];
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return out;
                };
                let size = std::str::from_utf8(&rest[..eol])
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                    .expect("chunk size");
                if rest.len() < eol + 2 + size + 2 {
                    return out;
                }
                body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
                rest = &rest[eol + 2 + size + 2..];
                if size == 0 {
                    break;
                }
            }
        } else {
            let n = header("content-length").map_or(0, |v| v.parse().unwrap_or(0));
            if rest.len() < n {
                return out;
            }
            body.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        out.push(Resp { status, head, body });
        buf = rest;
    }
    out
}

/// Reads until `want` responses are complete, the server closes, or `wait`
/// passes; returns the responses and whether the server closed.
async fn read_resps(s: &mut TcpStream, want: usize, wait: Duration) -> (Vec<Resp>, bool) {
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 16384]);
    let end = Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (parse(&buf), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (parse(&buf), false),
        }
        if parse(&buf).len() >= want {
            return (parse(&buf), false);
        }
    }
}

/// Writes `bytes` on a fresh connection and reads one response (or close).
async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<Resp>, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let (r, closed) = read_resps(&mut s, 1, wait).await;
    if closed || r.is_empty() {
        return (r, closed);
    }
    // After an error the server may close: give it time to (not on 2xx).
    let grace = if r[0].status >= 400 { 3000 } else { 100 };
    let (_, closed) = read_resps(&mut s, 1, Duration::from_millis(grace)).await;
    (r, closed)
}

fn post(body: &str, extra: &str) -> String {
    format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn chats(env: &Env) -> u64 {
    env.mocks[0].stats().by_path.get(CHAT).copied().unwrap_or(0)
}

/// Only the chat path and the health probe ever reach the upstream.
fn upstream_paths_clean(env: &Env) {
    for p in env.mocks[0].stats().by_path.keys() {
        assert!(p == CHAT || p == "/v1/models", "upstream got {p}");
    }
}

async fn still_serves(env: &Env) {
    let (status, _, body) = env.chat(false).await;
    assert_eq!(status, 200, "gateway no longer serves: {body}");
}

async fn boot(server_extra: &str) -> Env {
    let m = mocks(1).await;
    Env::boot(&config(&m, server_extra, &one_tier(&m)), m).await
}

async fn eventually(what: &str, wait: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + wait;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    let env = boot("header_read_timeout_ms = 300").await;
    let t = Instant::now();
    let half = format!("POST {CHAT} HTTP/1.1\r\nHost: x\r\n");
    let (r, closed) = exchange(env.addr, half.as_bytes(), WAIT).await;
    // Closed without a word (no 408), at the header timeout.
    assert!(closed && r.is_empty(), "half-sent headers: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(chats(&env), 0);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn oversized_header_blocks_are_431() {
    let env = boot("").await;
    // `max_header_bytes` (64 KiB by default) admits a 40 KB header: served.
    let one = format!("x-big: {}\r\n", "a".repeat(40_000));
    let (r, _) = exchange(env.addr, post(BODY, &one).as_bytes(), WAIT).await;
    assert_eq!(r.first().map(|r| r.status), Some(200), "40 KB: {r:?}");
    let over = format!("x-big: {}\r\n", "a".repeat(100_000));
    let huge = format!("x-big: {}\r\n", "a".repeat(1_000_000));
    let many: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
    for (what, extra) in [
        ("100 KB header", over),
        ("1 MB header", huge),
        ("500 headers", many),
    ] {
        let (r, closed) = exchange(env.addr, post(BODY, &extra).as_bytes(), WAIT).await;
        assert_eq!(r.first().map(|r| r.status), Some(431), "{what}: {r:?}");
        assert!(closed, "{what}: connection left open");
    }
    assert_eq!(chats(&env), 1);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn smuggling_framings_are_refused() {
    let env = boot("").await;
    // CL + TE: chunked wins (RFC 9112 §6.3), the request is served once and
    // the connection closed, so the bytes after the last chunk (a would-be
    // smuggled request) are never parsed at all.
    let req = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n",
        BODY.len()
    );
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let (r, closed) = read_resps(&mut s, 2, WAIT).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, 200, "{r:?}");
    assert!(closed, "CL+TE connection kept alive");
    assert_eq!(chats(&env), 1);
    let sent = env.mocks[0].stats().recent.last().unwrap().body.clone();
    assert_eq!(sent, BODY.replace("\"m\"", "\"up-0\""), "re-framed exactly");

    // Two different Content-Lengths: hyper's bare 400, then close.
    let two_cl = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\ncontent-length: 3\r\n\r\n{BODY}",
        BODY.len()
    );
    let (r, closed) = exchange(env.addr, two_cl.as_bytes(), WAIT).await;
    assert_eq!(r.first().map(|r| r.status), Some(400), "{r:?}");
    assert!(closed, "two Content-Lengths: connection left open");

    // An invalid chunk size: the gateway's own 400 while reading the body.
    let bad_chunk = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{BODY}\r\n0\r\n\r\n"
    );
    let (r, closed) = exchange(env.addr, bad_chunk.as_bytes(), WAIT).await;
    assert_eq!(r.first().map(|r| r.status), Some(400), "{r:?}");
    assert_eq!(error_code(&r[0].body), "");
    assert!(r[0].body.contains("could not be read"), "{}", r[0].body);
    assert!(closed, "bad chunk: connection left open");

    assert_eq!(chats(&env), 1, "a refused framing reached the upstream");
    upstream_paths_clean(&env);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn garbage_request_lines_are_400_or_closed() {
    let env = boot("header_read_timeout_ms = 500").await;
    // An unknown (but well-formed) method is routed: the gateway's 404.
    let (r, _) = exchange(env.addr, b"GARBAGE / HTTP/1.1\r\nhost: x\r\n\r\n", WAIT).await;
    assert_eq!(r.first().map(|r| r.status), Some(404), "{r:?}");
    assert_eq!(error_code(&r[0].body), "unknown_url");
    for req in [
        &b"GET / HTTP/9.9\r\nhost: x\r\n\r\n"[..],
        b"POST /v1/\xff\xfe HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        b"P\x00ST / HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let (r, closed) = exchange(env.addr, req, WAIT).await;
        let shown = String::from_utf8_lossy(req);
        assert_eq!(r.first().map(|r| r.status), Some(400), "{shown:?}: {r:?}");
        assert!(closed, "{shown:?}: connection left open");
    }
    // Bare blank lines are skipped as allowed leading CRLFs; the header
    // timeout then closes the connection without a response.
    let t = Instant::now();
    let (r, closed) = exchange(env.addr, b"\r\n\r\n", WAIT).await;
    assert!(closed && r.is_empty(), "blank lines: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // Absolute form naming another host: routed by path to the configured
    // upstream; the named host is never contacted.
    let evil = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let req = post(BODY, "").replacen(CHAT, &format!("http://{evil_addr}{CHAT}"), 1);
    let (r, _) = exchange(env.addr, req.as_bytes(), WAIT).await;
    assert_eq!(r.first().map(|r| r.status), Some(200), "{r:?}");
    assert!(r[0].head.contains("x-lifeline-deployment: p0/up-0"));
    let contacted = timeout(Duration::from_millis(500), evil.accept()).await;
    assert!(contacted.is_err(), "absolute-form URI reached its host");
    assert_eq!(chats(&env), 1);
    upstream_paths_clean(&env);
    still_serves(&env).await;
    env.stop().await;
}

async fn post_bytes(env: &Env, body: Vec<u8>) -> (u16, String) {
    let resp = env
        .client
        .post(env.url(CHAT))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn pathological_json_bodies() {
    let env = boot("").await;
    // 100 000 levels of nesting: a fast 400 from the gateway itself (skipping
    // an unknown field checks no depth, so the gateway checks it first), and
    // nothing reaches the provider.
    let before_nested = chats(&env);
    let depth = 100_000;
    let nested = format!(
        r#"{{"model":"m","messages":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let t = Instant::now();
    let (status, text) = post_bytes(&env, nested.into_bytes()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("nested deeper than 64 levels"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(chats(&env), before_nested, "a too-deep body went upstream");
    still_serves(&env).await;

    // A 1 MB string value under max_body_bytes passes through.
    let content = "a".repeat(1_000_000);
    let big = BODY.replace("\"hi\"", &format!("\"{content}\""));
    let before = chats(&env);
    let (status, text) = post_bytes(&env, big.into_bytes()).await;
    assert_eq!(status, 200, "{}", &text[..text.len().min(300)]);
    assert_eq!(chats(&env), before + 1);
    let sent = env.mocks[0].stats().recent.last().unwrap().body.clone();
    assert!(sent.starts_with(r#"{"model":"up-0","messages":[{"role":"user","content":"aaaa"#));

    // Invalid UTF-8 in `model`, and a UTF-8 BOM: the gateway's own 400.
    let mut in_model = BODY.as_bytes().to_vec();
    in_model[BODY.find("\"m\"").unwrap() + 1] = 0xff;
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(BODY.as_bytes());
    for (what, body, says) in [
        ("bad UTF-8 in model", in_model, "not valid UTF-8"),
        ("BOM", bom, "expected a JSON object"),
    ] {
        let (status, text) = post_bytes(&env, body).await;
        assert_eq!(status, 400, "{what}: {text}");
        assert!(text.contains(says), "{what}: {text}");
    }
    assert_eq!(chats(&env), before + 1, "a rejected body went upstream");
    // Invalid UTF-8 in a field the gateway does not inspect: its own 400,
    // and nothing reaches the provider.
    let mut in_content = BODY.as_bytes().to_vec();
    in_content[BODY.find("hi").unwrap()] = 0xff;
    let (status, text) = post_bytes(&env, in_content).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not valid UTF-8"), "{text}");
    error_code(&text);
    assert_eq!(chats(&env), before + 1, "invalid UTF-8 went upstream");
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn connection_limit_queues_the_next_client() {
    let env = boot("max_connections = 4\nidle_timeout_ms = 60000").await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(env.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let fifth = env.chat(false);
        tokio::pin!(fifth);
        let early = timeout(Duration::from_secs(2), &mut fifth).await;
        assert!(early.is_err(), "served past max_connections: {early:?}");
        drop(idle.pop());
        let (status, _, body) = timeout(Duration::from_secs(30), fifth)
            .await
            .expect("the waiting client was never served");
        assert_eq!(status, 200, "{body}");
    }
    drop(idle);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let env = boot("").await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::post(CHAT)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .unwrap();
        let resp = tx.send_request(req).await.expect("h2 response");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "up-0");
    }
    // The preface followed by garbage instead of a SETTINGS frame: closed.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGARBAGE GARBAGE GARBAGE";
    let (r, closed) = exchange(env.addr, preface, WAIT).await;
    assert!(closed && r.is_empty(), "{r:?}");
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let env = boot("").await;
    let all: String = (0..10)
        .map(|i| post(BODY, &format!("x-request-id: pipe-{i}\r\n")))
        .collect();
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(all.as_bytes()).await.unwrap();
    let (r, _) = read_resps(&mut s, 10, Duration::from_secs(30)).await;
    assert_eq!(r.len(), 10, "{r:?}");
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.status, 200, "{r:?}");
        let id = format!("x-request-id: pipe-{i}");
        assert!(r.head.lines().any(|l| l == id), "#{i} out of order: {r:?}");
    }
    assert_eq!(chats(&env), 10);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn unread_stream_stalls_alone_and_cancels_on_close() {
    let env = boot("").await;
    let slow = |completion_tokens| MockConfig {
        name: "p0".into(),
        tokens_per_second: 50.0,
        ttft_ms: 0,
        completion_tokens,
        ..MockConfig::default()
    };
    env.mocks[0].set_config(slow(2000));
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(env.addr).await.unwrap();
    let streamed = BODY.replace("\"messages\"", "\"stream\":true,\"messages\"");
    let req = post(&streamed, "");
    stalled.write_all(req.as_bytes()).await.unwrap();
    let m = &env.mocks[0];
    eventually("the stream upstream", WAIT, || m.stats().in_flight >= 1).await;

    // Others are served while it sits unread (5 tokens each at 50/s).
    let short = BODY.replace("\"messages\"", "\"max_tokens\":5,\"messages\"");
    for _ in 0..3 {
        let (status, _, text) = env.post(CHAT, &short).await;
        assert_eq!(status, 200, "{text}");
    }
    let st = m.stats();
    assert!(st.in_flight >= 1 && st.cancelled == 0, "{st:?}");

    // Closing the unread connection cancels its upstream stream.
    drop(stalled);
    let wait = Duration::from_secs(20);
    eventually("upstream cancel", wait, || m.stats().cancelled >= 1).await;
    m.set_config(slow(5));
    still_serves(&env).await;
    env.stop().await;
}
