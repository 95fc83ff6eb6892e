//! Anthropic's stream grammar on the wire, from a hand-written upstream (a
//! raw TCP "provider" writing HTTP and SSE in chosen pieces, where the real
//! simulated provider only cuts on event boundaries): a stream cut in the
//! middle of an event reaches the client as whole events and a parseable
//! `event: error`, and `ping` events during a stall do not hold a stream
//! open.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::harness::{mocks, Env};

const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_1\r\nconnection: close\r\n\r\n";
const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n";
const BLOCK: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const HELLO: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n";
const PING: &str = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
const MESSAGES_STREAM: &str =
    r#"{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str =
    r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// Serves every request with `pieces`, each written `gap` after the one
/// before (so each reaches the gateway as its own frame), then closes.
async fn staged(pieces: Vec<String>, gap: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let pieces = pieces.clone();
            tokio::spawn(async move {
                if !read_request(&mut sock).await {
                    return;
                }
                for p in pieces {
                    if sock.write_all(p.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(gap).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

/// Reads one request's head and body (by its Content-Length).
async fn read_request(sock: &mut tokio::net::TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    loop {
        let Ok(n) = sock.read(&mut buf).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + len {
                return true;
            }
        }
    }
}

/// `[[providers]]` for an Anthropic upstream at `addr` (no probes).
fn anthropic_provider(name: &str, base_url: &str) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"anthropic\"\nbase_url = \"{base_url}\"\napi_key = \"sk-ant-x\"\nprobe_path = \"\"\n\n"
    )
}

/// The SSE events of a body, as a client's parser dispatches them: (event
/// name, data lines joined); an event with a name but no data line counts
/// (its data is empty), one with neither is not dispatched.
fn events(body: &str) -> Vec<(String, String)> {
    let body = body.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut name = None;
        let mut data: Option<Vec<&str>> = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim_start().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data.get_or_insert_with(Vec::new)
                    .push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if name.is_some() || data.is_some() {
            out.push((
                name.unwrap_or_default(),
                data.map(|d| d.join("\n")).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Every event's data parses as JSON (`[DONE]` aside), as the SDKs need.
fn assert_all_json(body: &str) {
    for (name, data) in events(body) {
        if data == "[DONE]" {
            continue;
        }
        assert!(
            serde_json::from_str::<serde_json::Value>(&data).is_ok(),
            "event {name:?} with data {data:?} does not parse: {body:?}"
        );
    }
}

/// An Anthropic upstream that dies in the middle of an event's data line
/// (after its `event:` line went by in a frame of its own): an Anthropic
/// client gets whole events only, ending with Anthropic's `event: error`;
/// an OpenAI client (translated) gets whole chunks and OpenAI's error event.
#[tokio::test]
async fn an_anthropic_stream_cut_inside_a_data_line_ends_with_whole_events() {
    let up = staged(
        vec![
            format!("{HEAD}{START}{BLOCK}{HELLO}"),
            "event: content_block_delta\n".into(),
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_de"
                .into(),
        ],
        Duration::from_millis(150),
    )
    .await;
    // Continuation off: this upstream answers every request with the same
    // broken stream (it ignores a prefill), and what is checked here is how
    // a stream that cannot be continued ends.
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\n\n{}\
         [[models]]\nname = \"m\"\ncontinuation = false\ntiers = [ [ {{ provider = \"raw\", model = \"up\" }} ] ]\n",
        anthropic_provider("raw", &format!("http://{up}"))
    );
    let env = Env::boot(&toml, Vec::new()).await;

    let (status, _, body) = env.post("/v1/messages", MESSAGES_STREAM).await;
    assert_eq!(status, 200, "{body}");
    assert_all_json(&body);
    let ev = events(&body);
    let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ],
        "{body:?}"
    );
    let err: serde_json::Value = serde_json::from_str(&ev[3].1).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "api_error", "{body}");
    // The half event never reached the client, not even its name.
    assert_eq!(body.matches("content_block_delta").count(), 2, "{body:?}");
    assert!(body.starts_with("event: message_start\n"), "{body:?}");

    // Translated for an OpenAI client: whole chunks, then OpenAI's error.
    let (status, _, body) = env.post("/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(status, 200, "{body}");
    assert_all_json(&body);
    let ev = events(&body);
    assert_eq!(ev.last().map(|e| e.0.as_str()), Some("error"), "{body:?}");
    assert!(
        body.contains("Hello") && !body.contains("[DONE]"),
        "{body:?}"
    );
    env.stop().await;
}

/// An Anthropic upstream that stalls after content while its front end
/// keeps pinging: the pings are no progress, so the stream is broken at the
/// idle timeout (500 ms) instead of held open while they last (20 s).
#[tokio::test]
async fn pings_during_a_stall_after_content_do_not_hold_the_stream() {
    let mut pieces = vec![format!("{HEAD}{START}{BLOCK}{HELLO}")];
    pieces.extend(std::iter::repeat_n(PING.to_string(), 200));
    let up = staged(pieces, Duration::from_millis(100)).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\nstream_idle_timeout_ms = 500\n\n{}\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"up\" }} ] ]\n",
        anthropic_provider("raw", &format!("http://{up}"))
    );
    let env = Env::boot(&toml, Vec::new()).await;
    let t = Instant::now();
    let (status, _, body) = env.post("/v1/messages", MESSAGES_STREAM).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(10), "held open {took:?}: {body}");
    assert_all_json(&body);
    let ev = events(&body);
    assert!(body.contains("Hello"), "{body}");
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "error", "{body}");
    assert!(data.contains("no data for 500 ms"), "{body}");
    env.stop().await;
}

/// Before content, pings do not hold off the stall timer either: a
/// deployment that pings after `message_start` without ever writing is
/// left after the stall timeout (500 ms) for the next tier, long before
/// its first-byte timeout (20 s).
#[tokio::test]
async fn pings_before_content_do_not_hold_off_the_stall_timer() {
    let mut pieces = vec![format!("{HEAD}{START}{BLOCK}")];
    pieces.extend(std::iter::repeat_n(PING.to_string(), 200));
    let up = staged(pieces, Duration::from_millis(100)).await;
    let m = mocks(1).await;
    let good = m[0].base_url();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\n\
         stream_idle_timeout_ms = 500\nfirst_byte_timeout_ms = 20000\ntier_wait_ms = 0\n\n{}{}\
         [[models]]\nname = \"m\"\nadaptive_timeouts = false\n\
         tiers = [ [ {{ provider = \"raw\", model = \"up\" }} ], [ {{ provider = \"good\", model = \"g\" }} ] ]\n",
        anthropic_provider("raw", &format!("http://{up}")),
        anthropic_provider("good", good.trim_end_matches("/v1")),
    );
    let env = Env::boot(&toml, m).await;
    let t = Instant::now();
    let (status, headers, body) = env.post("/v1/messages", MESSAGES_STREAM).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-deployment"], "good/g", "{body}");
    assert!(took < Duration::from_secs(10), "waited {took:?}");
    assert_all_json(&body);
    assert_eq!(
        events(&body).last().map(|e| e.0.clone()).as_deref(),
        Some("message_stop"),
        "{body}"
    );
    env.stop().await;
}
