//! Bad input from clients: every rejection has OpenAI's error shape and the
//! right status, raw-socket abuse (oversized, chunked, slow and garbage
//! bodies) is answered or closed, client keys are enforced, and after each
//! the gateway still serves a normal request.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{config, error_code, mocks, one_tier, Env};

/// Writes `bytes` on a fresh connection, then reads until the server closes
/// or `wait` passes; returns what was read (lossy UTF-8).
async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_some(&mut s, wait).await
}

async fn read_some(s: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                out.extend_from_slice(&buf[..n]);
                // One response is enough; stop once its body has arrived.
                if response_complete(&out) {
                    break;
                }
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|n| body.len() >= n)
}

fn status_of(response: &str) -> Option<u16> {
    response.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Body of a raw response (after the head).
fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

async fn still_serves(env: &Env) {
    let (status, _, body) = env.chat(false).await;
    assert_eq!(status, 200, "gateway no longer serves: {body}");
}

fn param(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"]["param"].clone()
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_400() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let cases: &[(&str, Option<&str>)] = &[
        (r#"{"model":"m","messages":["#, None),
        (r#"{"model":42,"messages":[]}"#, Some("model")),
        (
            r#"{"model":"m","stream":"yes","messages":[]}"#,
            Some("stream"),
        ),
        (r#"{"messages":[]}"#, Some("model")),
        ("[1,2]", None),
        ("", None),
    ];
    for (body, want_param) in cases {
        let (status, _, text) = env.post("/v1/chat/completions", body).await;
        assert_eq!(status, 400, "{body} -> {text}");
        error_code(&text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{text}");
        if let Some(p) = want_param {
            assert_eq!(param(&text), *p, "{body} -> {text}");
        }
        still_serves(&env).await;
    }
    assert_eq!(
        env.mocks[0].stats().by_path.get("/v1/chat/completions"),
        Some(&6)
    );
    env.stop().await;
}

/// Wrong types in the fields an endpoint requires are a 400 in OpenAI's
/// shape, with `param` naming the field, and cost no provider request; the
/// same fields with the right types go through.
#[tokio::test]
async fn wrong_types_in_required_fields_are_400_before_any_provider_request() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("/v1/chat/completions", r#"{"model":"m"}"#, "messages", "Missing required parameter: 'messages'."),
        ("/v1/chat/completions", r#"{"model":"m","messages":[]}"#, "messages", "Invalid 'messages': empty array. 'messages' must be a non-empty array."),
        ("/v1/chat/completions", r#"{"model":"m","messages":"hi"}"#, "messages", "Invalid type for 'messages': expected an array of objects, but got a string."),
        ("/v1/chat/completions", r#"{"model":"m","messages":[{"role":"user","content":"a"},{"content":"b"}]}"#, "messages.[1].role", "Missing required parameter: 'messages[1].role'."),
        ("/v1/chat/completions", r#"{"model":"m","messages":[{"role":1}]}"#, "messages.[0].role", "Invalid type for 'messages[0].role': expected a string, but got a number."),
        ("/v1/chat/completions", r#"{"model":"m","messages":[{"role":"user","content":"a"}],"n":"2"}"#, "n", "Invalid type for 'n': expected an integer, but got a string."),
        ("/v1/chat/completions", r#"{"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":1.5}"#, "max_tokens", "Invalid type for 'max_tokens': expected an integer, but got a decimal."),
        ("/v1/chat/completions", r#"{"model":"m","messages":[{"role":"user","content":"a"}],"max_completion_tokens":"9"}"#, "max_completion_tokens", "Invalid type for 'max_completion_tokens': expected an integer, but got a string."),
        ("/v1/embeddings", r#"{"model":"m"}"#, "input", "Missing required parameter: 'input'."),
        ("/v1/embeddings", r#"{"model":"m","input":{"text":"a"}}"#, "input", "Invalid type for 'input': expected a string, an array of strings, an array of integers or an array of arrays of integers, but got an object."),
        ("/v1/images/generations", r#"{"model":"m","prompt":42}"#, "prompt", "Invalid type for 'prompt': expected a string, but got a number."),
        ("/v1/responses", r#"{"model":"m","input":true}"#, "input", "Invalid type for 'input': expected a string or an array, but got a boolean."),
    ];
    for (path, body, want_param, want_message) in cases {
        let (status, headers, text) = env.post(path, body).await;
        assert_eq!(status, 400, "{path} {body} -> {text}");
        assert_eq!(headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{text}");
        assert_eq!(v["error"]["code"], serde_json::Value::Null, "{text}");
        assert_eq!(v["error"]["param"], *want_param, "{path} {body} -> {text}");
        assert_eq!(
            v["error"]["message"], *want_message,
            "{path} {body} -> {text}"
        );
    }
    let posts = |env: &Env| {
        env.mocks[0]
            .stats()
            .recent
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };
    assert_eq!(posts(&env), 0, "a rejected request reached the provider");
    // The same endpoints with well-typed fields (and unknown ones) go through.
    let good: &[(&str, &str)] = &[
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"n":1,"max_tokens":null,"x_vendor":{"messages":0}}"#,
        ),
        ("/v1/embeddings", r#"{"model":"m","input":[[1,2],[3]]}"#),
        (
            "/v1/images/generations",
            r#"{"model":"m","prompt":"a cat"}"#,
        ),
        (
            "/v1/responses",
            r#"{"model":"m","input":[{"role":"user","content":"hi"}]}"#,
        ),
    ];
    for (path, body) in good {
        let (status, _, text) = env.post(path, body).await;
        assert_eq!(status, 200, "{path} {body} -> {text}");
    }
    assert_eq!(posts(&env), good.len());
    env.stop().await;
}

/// A client's megabyte-long `model` gets a 404 whose message (and the log
/// line that carries it) echoes only the first bytes of the name.
#[tokio::test]
async fn huge_model_name_gets_a_short_404() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let name = "x".repeat(1 << 20);
    let body = format!(r#"{{"model":"{name}","messages":[{{"role":"user","content":"a"}}]}}"#);
    let (status, _, text) = env.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&text), "model_not_found");
    assert!(text.len() < 600, "{} bytes of answer", text.len());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("…(1048576 bytes)"), "{message}");
    env.stop().await;
}

#[tokio::test]
async fn unknown_model_method_and_path() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let (status, _, text) = env
        .post(
            "/v1/chat/completions",
            r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(error_code(&text), "model_not_found");
    assert_eq!(param(&text), "model");

    let resp = env
        .client
        .get(env.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(
        error_code(&resp.text().await.unwrap()),
        "method_not_allowed"
    );

    let (status, _, text) = env.post("/v1/nothing-here", "{}").await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(error_code(&text), "unknown_url");
    still_serves(&env).await;
    env.stop().await;
}

fn big_body(len: usize) -> String {
    let filler = "x".repeat(len);
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{filler}"}}]}}"#)
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "max_body_bytes = 1024", &one_tier(&m)), m).await;
    let body = big_body(2000);
    // Content-Length over the limit.
    let (status, _, text) = env.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(error_code(&text), "request_too_large");
    // Chunked, no Content-Length: the limit is enforced while reading.
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let resp = raw(env.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&resp), Some(413), "{resp}");
    assert_eq!(error_code(body_of(&resp)), "request_too_large");
    // Just under the limit still passes.
    let (status, _, text) = env.post("/v1/chat/completions", &big_body(900)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        env.mocks[0].stats().by_path.get("/v1/chat/completions"),
        Some(&1)
    );
    env.stop().await;
}

#[tokio::test]
async fn slow_body_is_408_and_garbage_is_refused() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "body_read_timeout_ms = 300", &one_tier(&m)), m).await;
    let body = big_body(200);
    let half = &body[..body.len() / 2];
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{half}",
        body.len()
    );
    let t = tokio::time::Instant::now();
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let resp = read_some(&mut s, Duration::from_secs(5)).await;
    assert_eq!(status_of(&resp), Some(408), "{resp}");
    assert_eq!(error_code(body_of(&resp)), "request_timeout");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(s);

    let resp = raw(
        env.addr,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        resp.is_empty() || status_of(&resp) == Some(400),
        "garbage got: {resp}"
    );
    let resp = raw(env.addr, b"HELLO / WORLD\r\n\r\n", Duration::from_secs(3)).await;
    assert!(
        resp.is_empty() || status_of(&resp) == Some(400),
        "garbage got: {resp}"
    );
    still_serves(&env).await;
    let health = env.client.get(env.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    env.stop().await;
}

async fn post_key(env: &Env, key: Option<&str>) -> (u16, String) {
    let mut req = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn client_keys_are_enforced_and_never_forwarded() {
    let m = mocks(1).await;
    let models = format!(
        "{}\n[[keys]]\nname = \"app\"\nkey = \"sk-client\"\n",
        one_tier(&m)
    );
    let env = Env::boot(&config(&m, "auth = \"keys\"", &models), m).await;
    let (status, text) = post_key(&env, None).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(error_code(&text), "invalid_api_key");
    let (status, text) = post_key(&env, Some("sk-wrong")).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(error_code(&text), "invalid_api_key");
    let (status, text) = post_key(&env, Some("sk-client")).await;
    assert_eq!(status, 200, "{text}");
    let models = env.client.get(env.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401, "/v1/models without a key");

    let stats = env.mocks[0].stats();
    let chats: Vec<_> = stats.recent.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(chats.len(), 1, "rejected requests reached the upstream");
    assert_eq!(
        chats[0].authorization.as_deref(),
        Some(lifeline_mock::redact("Bearer sk-upstream-0").as_str())
    );
    for r in &stats.recent {
        assert!(
            r.authorization != Some(lifeline_mock::redact("Bearer sk-client")),
            "client key leaked upstream: {r:?}"
        );
    }
    env.stop().await;
}

#[tokio::test]
async fn rejected_body_does_not_poison_the_connection() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "max_body_bytes = 1024", &one_tier(&m)), m).await;
    let good = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let good_req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{good}",
        good.len()
    );
    // The oversized body's bytes must never be parsed as a next request.
    let big = format!(
        r#"{{"model":"m","x":"{}"}}"#,
        "POST / HTTP/1.1\\r\\n".repeat(100)
    );
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{big}{good_req}",
        big.len()
    );
    let mut s = TcpStream::connect(env.addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let first = read_some(&mut s, Duration::from_secs(5)).await;
    assert_eq!(status_of(&first), Some(413), "{first}");
    let second = read_some(&mut s, Duration::from_secs(3)).await;
    assert!(
        second.is_empty() || status_of(&second) == Some(200),
        "leftover body bytes parsed as a request: {second}"
    );

    // Expect: 100-continue with a declared size over the limit: refused
    // without waiting for (or asking for) the body.
    let resp = raw(
        env.addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5000\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&resp), Some(413), "{resp}");
    still_serves(&env).await;
    env.stop().await;
}

#[tokio::test]
async fn odd_but_valid_requests_are_accepted() {
    let m = mocks(1).await;
    let models = format!(
        "{}\n[[keys]]\nname = \"app\"\nkey = \"sk-client\"\n",
        one_tier(&m)
    );
    let env = Env::boot(&config(&m, "auth = \"keys\"", &models), m).await;
    // Azure-style `api-key` header, an escaped model name, leading spaces.
    let body = "  {\"model\":\"\\u006d\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("api-key", "sk-client")
        .header("x-request-id", "has space")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(rid, "has space", "unsafe request id echoed");
    let text = resp.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["model"], "up-0");
    let stats = env.mocks[0].stats();
    let last = stats.recent.iter().rfind(|r| r.method == "POST").unwrap();
    assert_eq!(last.body, body.replace("\"\\u006d\"", "\"up-0\""));
    assert_eq!(last.api_key, None, "client key forwarded as api-key");
    assert_eq!(last.request_id.as_deref(), Some(rid.as_str()));

    // Metrics stay on the admin listener.
    let resp = env.client.get(env.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // The admin API wants its token.
    let resp = env
        .client
        .post(env.admin_url("/admin/reload"))
        .header("authorization", "Bearer sk-client")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    env.stop().await;
}
