//! Provider faults that no well-behaved server produces, from a raw TCP
//! "provider" that answers every request with fixed bytes: HTML with 200,
//! truncated JSON, 200 with an error body, non-HTTP garbage, a body shorter
//! than its Content-Length. Each must cost one attempt, never a broken
//! answer to the client. A success without `usage` counts its estimate as
//! the key's tokens.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{mocks, Env};

/// Serves `reply` (raw bytes) to every request, then closes the connection.
async fn raw_provider(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // Read the request head and body (small, in a few reads).
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        return;
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
                            break;
                        }
                    }
                }
                let _ = sock.write_all(reply).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

/// The raw provider alone in tier 1, a good mock in tier 2. `tier_wait_ms =
/// 0`: these tests are about what counts as a failed attempt, so the request
/// goes straight to tier 2 instead of first retrying the raw provider.
async fn boot_with_raw(reply: &'static [u8]) -> Env {
    boot_with_raw_model(reply, "").await
}

/// [`boot_with_raw`] with `extra` lines in the model's table.
async fn boot_with_raw_model(reply: &'static [u8], extra: &str) -> Env {
    let raw = raw_provider(reply).await;
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\nfirst_byte_timeout_ms = 2000\ntier_wait_ms = 0\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[providers]]\nname = \"good\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n\
         [[models]]\nname = \"m\"\n{extra}\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ], [ {{ provider = \"good\", model = \"g\" }} ] ]\n",
        m[0].base_url()
    );
    Env::boot(&toml, m).await
}

async fn assert_rescued(reply: &'static [u8]) {
    let env = boot_with_raw(reply).await;
    for stream in [false, true] {
        let (status, headers, body) = env.chat(stream).await;
        assert_eq!(status, 200, "{}: {body}", String::from_utf8_lossy(reply));
        assert_eq!(headers["x-lifeline-deployment"], "good/g", "{body}");
        assert_eq!(headers["x-lifeline-attempts"], "2");
        if stream {
            assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
        } else {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["model"], "g");
        }
    }
    env.stop().await;
}

#[tokio::test]
async fn html_with_200_is_a_failed_attempt() {
    assert_rescued(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 27\r\nconnection: close\r\n\r\n<html>Bad Gateway</html>\r\n").await;
}

#[tokio::test]
async fn truncated_json_with_200_is_a_failed_attempt() {
    assert_rescued(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\nconnection: close\r\n\r\n{\"id\":\"x\",\"cho").await;
}

#[tokio::test]
async fn error_body_with_200_is_a_failed_attempt() {
    assert_rescued(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 40\r\nconnection: close\r\n\r\n{\"error\":{\"message\":\"model overloaded\"}}").await;
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_failed_attempt() {
    assert_rescued(b"SSH-2.0-OpenSSH_9.2\r\n").await;
}

#[tokio::test]
async fn body_shorter_than_its_length_is_a_failed_attempt() {
    assert_rescued(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\":\"x\"").await;
}

#[tokio::test]
async fn stream_with_only_comments_then_close_is_a_failed_attempt() {
    assert_rescued(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n: keep-alive\n\n: keep-alive\n\n").await;
}

/// A provider whose model list answers while its inference hangs (an API
/// front end up, the GPUs gone): a non-streaming request is abandoned after
/// the first-byte timeout and served by the fallback, long before its
/// deadline, and the probe answering does not keep it waiting.
#[tokio::test]
async fn models_answering_while_inference_hangs_is_abandoned() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let Ok(n) = sock.read(&mut buf).await else {
                    return;
                };
                if buf[..n].starts_with(b"GET ") {
                    let body = r#"{"object":"list","data":[]}"#;
                    let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                    let _ = sock.write_all(reply.as_bytes()).await;
                } else {
                    // Inference hangs: hold the connection, never answer.
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
            });
        }
    });
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nfirst_byte_timeout_ms = 500\nrequest_timeout_ms = 30000\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\n\n\
         [[providers]]\nname = \"good\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ], [ {{ provider = \"good\", model = \"g\" }} ] ]\n",
        m[0].base_url()
    );
    let env = Env::boot(&toml, m).await;
    let t = tokio::time::Instant::now();
    let (status, headers, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-deployment"], "good/g");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "waited {:?} on a hung deployment",
        t.elapsed()
    );
    env.stop().await;
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
const CONTENT: &str =
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n";

async fn stream_through(reply: &'static [u8]) -> (Env, String) {
    stream_through_model(reply, "").await
}

async fn stream_through_model(reply: &'static [u8], extra: &str) -> (Env, String) {
    let env = boot_with_raw_model(reply, extra).await;
    let (status, headers, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["x-lifeline-deployment"], "raw/r",
        "committed on the raw provider"
    );
    (env, body)
}

/// The upstream stops in the middle of an event (no blank line after it):
/// Lifeline's error event must start on its own, or the client's SSE parser
/// would glue the two into one event and fail on the JSON.
#[tokio::test]
async fn error_event_after_a_half_written_event_stands_alone() {
    let reply: &'static str = Box::leak(format!("{SSE_HEAD}{CONTENT}").into_boxed_str());
    let (env, body) = stream_through_model(reply.as_bytes(), "continuation = false").await;
    let at = body
        .find("event: error")
        .unwrap_or_else(|| panic!("no error event: {body:?}"));
    assert!(
        body[..at].ends_with("\n\n"),
        "error event glued to the previous one: {body:?}"
    );
    assert!(!body.contains("[DONE]"));
    env.stop().await;
}

/// The same, continued from another deployment: the continuation's first
/// event starts on its own too.
#[tokio::test]
async fn continuation_after_a_half_written_event_stands_alone() {
    let reply: &'static str = Box::leak(format!("{SSE_HEAD}{CONTENT}").into_boxed_str());
    let (env, body) = stream_through(reply.as_bytes()).await;
    assert!(body.ends_with("data: [DONE]\n\n"), "{body:?}");
    assert!(body.contains(": lifeline continued=1"), "{body:?}");
    for (at, _) in body.match_indices("data: ").skip(1) {
        assert!(
            body[..at].ends_with("\n\n"),
            "an event glued to the previous one: {body:?}"
        );
    }
    env.stop().await;
}

/// Serves a stream in stages: each piece is written after a short pause, so
/// the first reaches the client before the next is sent.
async fn staged_provider(pieces: Vec<String>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let pieces = pieces.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                if sock.read(&mut buf).await.is_err() {
                    return;
                }
                for p in pieces {
                    if sock.write_all(p.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                }
            });
        }
    });
    addr
}

/// An upstream error event after content was sent, even followed by
/// `[DONE]`, is a broken stream in the metrics, not a complete one.
#[tokio::test]
async fn upstream_error_event_after_content_counts_as_broken() {
    let raw = staged_provider(vec![
        format!("{SSE_HEAD}{CONTENT}\n"),
        "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n".to_string(),
    ])
    .await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ] ]\n"
    );
    let env = Env::boot(&toml, Vec::new()).await;
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Hello") && body.contains("overloaded"),
        "{body}"
    );
    let metrics = env
        .client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lifeline_streams_total{model=\"m\",outcome=\"broken\"} 1"),
        "{metrics}"
    );
    env.stop().await;
}

/// Keep-alive comments are not progress: an upstream that sends only
/// `: ping` after its first content is cut at the idle timeout.
#[tokio::test]
async fn keep_alive_comments_do_not_hold_a_stalled_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                if sock.read(&mut buf).await.is_err() {
                    return;
                }
                let _ = sock
                    .write_all(format!("{SSE_HEAD}{CONTENT}\n").as_bytes())
                    .await;
                for _ in 0..200 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    if sock.write_all(b": ping\n\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nstream_idle_timeout_ms = 600\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ] ]\n"
    );
    let env = Env::boot(&toml, m).await;
    let t = tokio::time::Instant::now();
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("event: error") && body.contains("no data for 600 ms"),
        "{body}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "held for {:?}",
        t.elapsed()
    );
    env.stop().await;
}

/// A reasoning model streams `reasoning_content` for longer than the
/// first-byte timeout before any `content`: it is working, so the stream is
/// relayed from it, not abandoned as stalled.
#[tokio::test]
async fn long_reasoning_before_content_is_not_a_stall() {
    let mut pieces = vec![format!(
        "{SSE_HEAD}data: {{\"choices\":[{{\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}}}}]}}\n\n"
    )];
    for i in 0..8 {
        pieces.push(format!(
            "data: {{\"choices\":[{{\"delta\":{{\"reasoning_content\":\"step {i} \"}}}}]}}\n\n"
        ));
    }
    pieces.push(format!("{CONTENT}\ndata: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"));
    let raw = staged_provider(pieces).await;
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nfirst_byte_timeout_ms = 500\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[providers]]\nname = \"good\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ], [ {{ provider = \"good\", model = \"g\" }} ] ]\n",
        m[0].base_url()
    );
    let env = Env::boot(&toml, m).await;
    let (status, headers, body) = env.chat(true).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-lifeline-deployment"], "raw/r", "{body}");
    assert!(
        body.contains("step 7") && body.contains("Hello") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
    env.stop().await;
}

/// A 3xx from upstream means the provider's `base_url` is wrong: a failed
/// attempt that fails over, never the answer (the client's SDK would follow
/// the `Location` or choke on it).
#[tokio::test]
async fn redirect_from_upstream_is_a_failed_attempt() {
    assert_rescued(b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/v1/chat/completions\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
    assert_rescued(b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://api.example.com/v1/chat/completions\r\ncontent-type: text/html\r\ncontent-length: 9\r\nconnection: close\r\n\r\n<a>moved</a>").await;
}

/// With nothing to fail over to, a redirecting upstream gives the client a
/// 503 that says what is wrong, not the 302 and its `Location`.
#[tokio::test]
async fn redirect_with_no_other_deployment_is_503() {
    let raw = raw_provider(b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nmax_attempts = 2\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ] ]\n"
    );
    let env = Env::boot(&toml, Vec::new()).await;
    // A client that does not follow redirects sees exactly what it is sent.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for stream in [false, true] {
        let resp = client
            .post(env.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(format!("{{\"model\":\"m\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert!(!resp.headers().contains_key("location"));
        let body = resp.text().await.unwrap();
        assert_eq!(crate::harness::error_code(&body), "all_deployments_failed");
        assert!(
            body.contains("HTTP 302 redirect from upstream: check the provider's base_url"),
            "{body}"
        );
    }
    env.stop().await;
}

/// Boots a gateway whose only deployment is the staged provider `raw`,
/// with the admin listener (for metrics) and the given `[server]` lines.
async fn boot_staged(pieces: Vec<String>, server_extra: &str) -> Env {
    let raw = staged_provider(pieces).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\n{server_extra}\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ] ]\n"
    );
    Env::boot(&toml, Vec::new()).await
}

async fn streams_metric(env: &Env, outcome: &str) -> bool {
    let metrics = env
        .client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics.contains(&format!(
        "lifeline_streams_total{{model=\"m\",outcome=\"{outcome}\"}} 1"
    ))
}

fn choice(index: u32, delta: &str, finish: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":{index},\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
}

const TWO_CHOICES: &str = r#"{"model":"m","stream":true,"n":2,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;

/// `n = 2`: the stream is cut after the first choice finished and while
/// the second was still being written. That is a broken answer (error
/// event, no `[DONE]`), not a finished one.
#[tokio::test]
async fn stream_cut_after_one_of_two_choices_is_broken() {
    let env = boot_staged(
        vec![
            format!(
                "{SSE_HEAD}{}{}",
                choice(0, r#"{"content":"Hello"}"#, "null"),
                choice(1, r#"{"content":"Bonjour"}"#, "null")
            ),
            choice(0, "{}", "\"stop\""),
        ],
        "",
    )
    .await;
    let (status, _, body) = env.post("/v1/chat/completions", TWO_CHOICES).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Bonjour") && body.contains("\"stop\""),
        "{body}"
    );
    assert!(body.contains("event: error"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
    assert!(streams_metric(&env, "broken").await);
    env.stop().await;
}

/// `n = 2` with `include_usage`: the second choice finishes well after
/// the first (longer than the 2 s grace a finished answer gets to send
/// `[DONE]`), and the stream waits for it; once both finished, the usage
/// chunk (`choices: []`) that follows is relayed, and an upstream that then
/// closes without `[DONE]` gets one added: a complete answer, usage and all.
#[tokio::test]
async fn usage_chunk_after_every_choice_finished_is_relayed() {
    let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n";
    let mut pieces = vec![
        format!(
            "{SSE_HEAD}{}{}",
            choice(0, r#"{"content":"Hello"}"#, "null"),
            choice(1, r#"{"content":"Bonjour"}"#, "null")
        ),
        choice(0, "{}", "\"stop\""),
    ];
    // Nothing for 18 × 150 ms = 2.7 s.
    pieces.extend(std::iter::repeat_n(String::new(), 18));
    pieces.push(choice(1, r#"{"content":" monde"}"#, "\"stop\""));
    pieces.push(usage.to_string());
    let env = boot_staged(pieces, "").await;
    let (status, _, body) = env.post("/v1/chat/completions", TWO_CHOICES).await;
    assert_eq!(status, 200);
    assert!(!body.contains("event: error"), "{body}");
    assert!(body.contains(" monde"), "second choice cut: {body}");
    let at = body
        .find("\"total_tokens\":7")
        .unwrap_or_else(|| panic!("usage chunk lost: {body}"));
    assert!(
        body[at..].ends_with("data: [DONE]\n\n"),
        "no [DONE] after the usage chunk: {body}"
    );
    assert!(streams_metric(&env, "complete").await);
    env.stop().await;
}

/// A data line much longer than a frame (a streamed base64 image) arriving
/// slowly, in pieces, for longer than the idle timeout: its bytes are
/// progress, so the stream is not cut as stalled.
#[tokio::test]
async fn a_long_line_arriving_slowly_is_not_a_stall() {
    let mut pieces = vec![format!(
        "{SSE_HEAD}{CONTENT}\ndata: {{\"choices\":[{{\"delta\":{{\"content\":\""
    )];
    // 20 pieces 150 ms apart: 3 s for one line, with a 2 s idle timeout.
    for _ in 0..20 {
        pieces.push("QUFB".repeat(4096));
    }
    pieces.push(format!(
        "\"}}}}]}}\n\n{}data: [DONE]\n\n",
        choice(0, "{}", "\"stop\"")
    ));
    let env = boot_staged(pieces, "stream_idle_timeout_ms = 2000").await;
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("event: error"),
        "{}",
        &body[body.len().saturating_sub(400)..]
    );
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert!(body.contains(&"QUFB".repeat(20 * 4096)));
    assert!(streams_metric(&env, "complete").await);
    env.stop().await;
}

/// What a stuck raw upstream does after its first bytes.
#[derive(Clone, Copy)]
enum Then {
    /// `: ping` every 200 ms for 20 s, never ending the stream: its
    /// keep-alive timer still runs.
    Ping,
    /// Nothing: neither writes nor closes until the gateway closes.
    Hold,
}

/// Serves `first` (an SSE head and events) to every request, then `then`.
async fn stuck_provider(first: String, then: Then) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let first = first.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                if sock.read(&mut buf).await.is_err() {
                    return;
                }
                if sock.write_all(first.as_bytes()).await.is_err() {
                    return;
                }
                match then {
                    Then::Ping => {
                        for _ in 0..100 {
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            if sock.write_all(b": ping\n\n").await.is_err() {
                                return;
                            }
                        }
                    }
                    Then::Hold => while sock.read(&mut buf).await.is_ok_and(|n| n > 0) {},
                }
            });
        }
    });
    addr
}

/// Before the first content too, keep-alive comments are not progress: an
/// upstream that sends its role chunk and then only `: ping` is abandoned
/// at the stall timeout (1 s here), not held until the first-byte timeout
/// (20 s), and the request is served by the other deployment.
#[tokio::test]
async fn keep_alive_comments_before_content_do_not_hold_off_the_stall_timer() {
    let raw = stuck_provider(
        format!(
            "{SSE_HEAD}data: {{\"choices\":[{{\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}}}}]}}\n\n"
        ),
        Then::Ping,
    )
    .await;
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nfirst_byte_timeout_ms = 20000\nstream_idle_timeout_ms = 1000\n\
         adaptive_timeouts = false\ntier_wait_ms = 0\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[providers]]\nname = \"good\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ], [ {{ provider = \"good\", model = \"g\" }} ] ]\n",
        m[0].base_url()
    );
    let env = Env::boot(&toml, m).await;
    let t = tokio::time::Instant::now();
    let (status, headers, body) = env.chat(true).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-deployment"], "good/g", "{body}");
    assert_eq!(headers["x-lifeline-attempts"], "2");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "keep-alive comments held the stream for {took:?}"
    );
    env.stop().await;
}

/// A short answer whose end arrived with its first content, before commit,
/// from an upstream that then holds the connection open: the client gets
/// the whole answer and `[DONE]` long before the 30 s idle timeout.
async fn ends_before_the_idle_timeout(reply: String) {
    let raw = stuck_provider(format!("{SSE_HEAD}{reply}"), Then::Hold).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\nstream_idle_timeout_ms = 30000\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ] ]\n"
    );
    let env = Env::boot(&toml, Vec::new()).await;
    let t = tokio::time::Instant::now();
    let (status, _, body) = env.chat(true).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello"), "{body}");
    assert!(!body.contains("event: error"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "the client waited {took:?} for the end of a finished answer"
    );
    assert!(streams_metric(&env, "complete").await);
    env.stop().await;
}

/// The `finish_reason` came before commit: the finish grace (2 s) applies
/// from the start, and `[DONE]` is added when it passes.
#[tokio::test]
async fn finish_seen_before_commit_gets_the_finish_grace() {
    ends_before_the_idle_timeout(format!("{CONTENT}\n{}", choice(0, "{}", "\"stop\""))).await;
}

/// `[DONE]` came before commit (here without a `finish_reason`, so that
/// only `[DONE]` can end the stream): the stream ends right after it.
#[tokio::test]
async fn done_seen_before_commit_ends_the_stream() {
    ends_before_the_idle_timeout(format!("{CONTENT}\ndata: [DONE]\n\n")).await;
}

/// A success without `usage` (a provider that reports none) is settled at
/// its estimate: the key's token counter counts it.
#[tokio::test]
async fn an_answer_without_usage_counts_its_estimate_as_the_keys_tokens() {
    let raw = raw_provider(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 131\r\nconnection: close\r\n\r\n{\"id\":\"c\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"r\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}]}").await;
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [[providers]]\nname = \"raw\"\nkind = \"openai-compatible\"\nbase_url = \"http://{raw}/v1\"\nprobe_path = \"\"\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"raw\", model = \"r\" }} ] ]\n\n\
         [[keys]]\nname = \"tok\"\nkey = \"sk-tok\"\ntpm = 100000\n",
    );
    let env = Env::boot(&toml, m).await;
    for _ in 0..2 {
        let resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .bearer_auth("sk-tok")
            .body(r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        assert!(!body.contains("usage"), "{body}");
    }
    let text = env
        .client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tokens: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("lifeline_key_tokens_total{key=\"tok\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Each is estimated at its prompt plus max_tokens (10).
    assert!((20..200).contains(&tokens), "{tokens}:\n{text}");
    env.stop().await;
}
