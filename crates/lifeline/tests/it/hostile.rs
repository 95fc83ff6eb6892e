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
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
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
    // After an error hyper closes; see whether it does within a moment.
    let (_, closed) = read_resps(&mut s, 1, Duration::from_millis(500)).await;
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
        assert!(p == CHAT || p == "/v1/models", "unexpected upstream path {p}");
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

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    let env = boot("header_read_timeout_ms = 300").await;
    let t = Instant::now();
    let (r, closed) = exchange(
        env.addr,
        format!("POST {CHAT} HTTP/1.1\r\nHost: x\r\n").as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!("SLOWLORIS {r:?} closed={closed} after {:?}", t.elapsed());
    assert!(closed, "half-sent headers kept open: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(chats(&env), 0);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn oversized_header_blocks_are_431_or_closed() {
    let env = boot("").await;
    let wait = Duration::from_secs(10);
    for (what, extra) in [
        ("one 100 KB header", format!("x-big: {}\r\n", "a".repeat(100_000))),
        ("one 1 MB header", format!("x-big: {}\r\n", "a".repeat(1_000_000))),
        (
            "500 headers",
            (0..500).map(|i| format!("x-h{i}: v\r\n")).collect(),
        ),
    ] {
        let (r, closed) = exchange(env.addr, post(BODY, &extra).as_bytes(), wait).await;
        eprintln!("HEADERS {what}: {:?} closed={closed}", r.first().map(|r| r.status));
    }
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn smuggling_framings_are_refused() {
    let env = boot("").await;
    let wait = Duration::from_secs(10);
    // CL + TE: the chunked framing wins; the bytes after the last chunk are
    // the next request on this connection, answered by the gateway itself.
    let req = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{BODY}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n",
        BODY.len()
    );
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let (r, closed) = read_resps(&mut s, 2, wait).await;
    eprintln!("CL+TE {:?} closed={closed}", r.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>());
    eprintln!("chats after CL+TE {}", chats(&env));

    let two_cl = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\ncontent-length: 3\r\n\r\n{BODY}",
        BODY.len()
    );
    let (r, closed) = exchange(env.addr, two_cl.as_bytes(), wait).await;
    eprintln!("2CL {:?} closed={closed}", r);
    let bad_chunk = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{BODY}\r\n0\r\n\r\n"
    );
    let (r, closed) = exchange(env.addr, bad_chunk.as_bytes(), wait).await;
    eprintln!("BADCHUNK {:?} closed={closed}", r);
    eprintln!("chats end {}", chats(&env));
    upstream_paths_clean(&env);
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn garbage_request_lines() {
    let env = boot("header_read_timeout_ms = 500").await;
    let wait = Duration::from_secs(10);
    for req in [
        b"GARBAGE / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"POST /v1/\xff\xfe HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".to_vec(),
        b"P\x00ST / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
    ] {
        let t = Instant::now();
        let (r, closed) = exchange(env.addr, &req, wait).await;
        eprintln!(
            "LINE {:?}: {:?} closed={closed} {:?}",
            String::from_utf8_lossy(&req),
            r.first().map(|r| (r.status, &r.body)),
            t.elapsed()
        );
    }
    // Absolute form naming another host.
    let evil = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let req = post(BODY, "").replacen(
        &format!("POST {CHAT}"),
        &format!("POST http://{evil_addr}{CHAT}"),
        1,
    );
    let (r, closed) = exchange(env.addr, req.as_bytes(), wait).await;
    eprintln!("ABS {:?} closed={closed}", r.first().map(|r| (r.status, &r.head)));
    let got = timeout(Duration::from_millis(300), evil.accept()).await;
    assert!(got.is_err(), "absolute-form URI made the gateway connect elsewhere");
    eprintln!("chats {}", chats(&env));
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
async fn pathological_json() {
    let env = boot("").await;
    let nested = format!(
        r#"{{"model":"m","messages":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let t = Instant::now();
    let (status, text) = post_bytes(&env, nested.into_bytes()).await;
    eprintln!("NESTED {status} {text} {:?}", t.elapsed());
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(1_000_000)
    );
    let (status, text) = post_bytes(&env, big.into_bytes()).await;
    eprintln!("BIG {status} {}", &text[..text.len().min(200)]);
    eprintln!("recent body len {:?}", env.mocks[0].stats().recent.last().map(|r| r.body.len()));
    for (what, body) in [
        ("bad utf8 in content", BODY.replace("hi", "h\u{1}").into_bytes()),
    ] {
        let _ = (what, body);
    }
    let mut in_content = BODY.as_bytes().to_vec();
    let i = BODY.find("hi").unwrap();
    in_content[i] = 0xff;
    let mut in_model = BODY.as_bytes().to_vec();
    let j = BODY.find("\"m\"").unwrap() + 1;
    in_model[j] = 0xff;
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(BODY.as_bytes());
    for (what, body) in [("content", in_content), ("model", in_model), ("bom", bom)] {
        let before = chats(&env);
        let (status, text) = post_bytes(&env, body).await;
        eprintln!("UTF {what}: {status} {text} upstream+{}", chats(&env) - before);
    }
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let env = boot("").await;
    let tcp = TcpStream::connect(env.addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::post(CHAT)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let resp = tx.send_request(req).await.expect("h2 response");
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    eprintln!("H2 {status} {}", String::from_utf8_lossy(&body));

    let (r, closed) = exchange(env.addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGARBAGEGARBAGE", Duration::from_secs(5)).await;
    eprintln!("PRI {:?} closed={closed}", r);
    still_serves(&env).await;
    env.stop().await;
}
