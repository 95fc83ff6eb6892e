//! Tests over real sockets on 127.0.0.1:0: response shapes here, faults and
//! kill/revive in `faults`, Anthropic's `/v1/messages` in `messages`,
//! prefill, the continuation seam, `voice` and chat tool calls in `prefill`.
//!
//! A plain hyper client talks to the mock, so what is checked is what any
//! HTTP client would see on the wire.

mod faults;
mod messages;
mod prefill;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::{MockConfig, MockHandle, MockServer};

/// A config with no pacing, so tests run fast.
fn quick() -> MockConfig {
    MockConfig {
        tokens_per_second: 0.0,
        ttft_ms: 0,
        ..MockConfig::default()
    }
}

async fn start(config: MockConfig) -> MockHandle {
    MockServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn url(mock: &MockHandle, path: &str) -> String {
    format!("http://{}{path}", mock.addr())
}

async fn send(
    mock: &MockHandle,
    method: &str,
    path: &str,
    body: &str,
) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
    let request = Request::builder()
        .method(method)
        .uri(url(mock, path))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .header("x-request-id", "rid-1")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    client().request(request).await
}

/// Sends and reads the whole body.
async fn call(
    mock: &MockHandle,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let response = send(mock, method, path, &body.to_string()).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn call_json(
    mock: &MockHandle,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let (status, _, bytes) = call(mock, method, path, body).await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Reads body frames one by one until the end or an error.
async fn frames(body: &mut Incoming) -> (Vec<String>, Option<hyper::Error>) {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    out.push(String::from_utf8(data.to_vec()).unwrap());
                }
            }
            Err(error) => return (out, Some(error)),
        }
    }
    (out, None)
}

/// The JSON payloads of `data:` events, `[DONE]` as a string.
fn events(frames: &[String]) -> Vec<Value> {
    frames
        .concat()
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned())))
        .collect()
}

/// Anthropic's stream: `(event name, data)` per event; a `data` that is not
/// JSON is kept as a string.
fn anthropic_events(frames: &[String]) -> Vec<(String, Value)> {
    frames
        .concat()
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let name = event
                .lines()
                .find_map(|line| line.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = event
                .lines()
                .find_map(|line| line.strip_prefix("data: "))
                .unwrap_or_default();
            let data =
                serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()));
            (name, data)
        })
        .collect()
}

/// Waits (generously) until `check` holds on the stats.
async fn eventually(mock: &MockHandle, check: impl Fn(&crate::Stats) -> bool) {
    for _ in 0..500 {
        if check(&mock.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached; stats: {:?}", mock.stats());
}

#[tokio::test]
async fn chat_non_stream_shape() {
    let mock = start(quick()).await;
    let (status, body) = call_json(
        &mock,
        "POST",
        "/v1/chat/completions",
        json!({"model": "gpt-x", "messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-x");
    assert_eq!(body["system_fingerprint"], "lifeline-mock-mock");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 16);
    assert!(content.starts_with("mock1 mock2"));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 16);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 1);

    let (_, body) = call_json(
        &mock,
        "POST",
        "/chat/completions",
        json!({"model": "m", "max_tokens": 3}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock1 mock2 mock3"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn azure_path_answers_as_deployment() {
    let mock = start(quick()).await;
    let path = "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21";
    let (status, body) = call_json(&mock, "POST", path, json!({"messages": []})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"], "my-dep");
    let recent = mock.stats().recent;
    assert_eq!(recent.last().unwrap().path_and_query, path);
}

#[tokio::test]
async fn chat_stream_chunks_and_done() {
    let mock = start(MockConfig {
        tokens_per_second: 1000.0,
        ttft_ms: 5,
        ..MockConfig::default()
    })
    .await;
    let body = json!({"model": "m", "stream": true, "max_completion_tokens": 5}).to_string();
    let response = send(&mock, "POST", "/v1/chat/completions", &body)
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    // One frame per event: role, 5 tokens, finish, [DONE].
    assert_eq!(frames.len(), 8, "{frames:?}");
    let events = events(&frames);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[0]["object"], "chat.completion.chunk");
    let text: String = events[1..6]
        .iter()
        .map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "mock1 mock2 mock3 mock4 mock5");
    assert_eq!(events[6]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[7], "[DONE]");
    eventually(&mock, |s| s.completed == 1 && s.in_flight == 0).await;
}

#[tokio::test]
async fn chat_stream_include_usage() {
    let mock = start(quick()).await;
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}})
        .to_string();
    let response = send(&mock, "POST", "/v1/chat/completions", &body)
        .await
        .unwrap();
    let (frames, _) = frames(&mut response.into_body()).await;
    let events = events(&frames);
    let usage = &events[events.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 16);
    assert_eq!(events[events.len() - 1], "[DONE]");
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let mock = start(quick()).await;
    let (status, body) = call_json(
        &mock,
        "POST",
        "/v1/embeddings",
        json!({"model": "e", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["object"], "embedding");
    let vector: Vec<f64> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(vector.len(), 16);
    let norm: f64 = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3);

    let request = json!({"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 8});
    let (_, body) = call_json(&mock, "POST", "/v1/embeddings", request).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 8 * 4);
    let first = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert!((f64::from(first) - f64::from(crate::embeddings::embed("a", 8)[0])).abs() < 1e-6);
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn images_png_and_url() {
    assert!(crate::images::PNG_1X1.starts_with(b"\x89PNG\r\n\x1a\n"));
    let mock = start(quick()).await;
    let (_, body) = call_json(
        &mock,
        "POST",
        "/v1/images/generations",
        json!({"prompt": "x", "n": 2}),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let png = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));

    let (_, body) = call_json(
        &mock,
        "POST",
        "/v1/images/generations",
        json!({"prompt": "x", "response_format": "url"}),
    )
    .await;
    let image_url = body["data"][0]["url"].as_str().unwrap();
    assert_eq!(image_url, url(&mock, "/_mock/image.png"));
    let (status, headers, bytes) = call(&mock, "GET", "/_mock/image.png", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(&bytes[..], crate::images::PNG_1X1);
}

#[tokio::test]
async fn responses_whole_and_stream() {
    let mock = start(quick()).await;
    let (_, body) = call_json(
        &mock,
        "POST",
        "/v1/responses",
        json!({"model": "r", "input": "hi", "max_output_tokens": 2}),
    )
    .await;
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(body["output"][0]["content"][0]["text"], "mock1 mock2");
    assert_eq!(body["usage"]["output_tokens"], 2);

    let request =
        json!({"model": "r", "input": "hi", "stream": true, "max_output_tokens": 3}).to_string();
    let response = send(&mock, "POST", "/v1/responses", &request)
        .await
        .unwrap();
    let (frames, _) = frames(&mut response.into_body()).await;
    let names: Vec<&str> = frames
        .iter()
        .filter_map(|f| f.lines().next()?.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.completed"
        ]
    );
    let events = events(&frames);
    assert_eq!(
        events[4]["response"]["output"][0]["content"][0]["text"],
        "mock1 mock2 mock3"
    );
    assert!(!frames.concat().contains("[DONE]"));
}

#[tokio::test]
async fn models_unknown_path_and_bad_json() {
    let mock = start(quick()).await;
    let (status, body) = call_json(&mock, "GET", "/v1/models", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["owned_by"], "lifeline-mock");

    let (status, body) = call_json(&mock, "POST", "/v1/nope", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"].get("param").is_some());

    let response = send(&mock, "POST", "/v1/chat/completions", "{not json")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn stats_count_requests_and_bodies() {
    let mock = start(quick()).await;
    for _ in 0..3 {
        call(
            &mock,
            "POST",
            "/v1/chat/completions",
            json!({"model": "m", "n": 1}),
        )
        .await;
    }
    call(&mock, "GET", "/_mock/stats", Value::Null).await;
    let stats = mock.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.by_path["/v1/chat/completions"], 3);
    assert_eq!(stats.recent.len(), 3);
    let last = stats.recent.last().unwrap();
    assert_eq!(
        last.authorization.as_deref(),
        Some(crate::redact("Bearer sk-test").as_str())
    );
    assert_eq!(last.request_id.as_deref(), Some("rid-1"));
    assert!(last.body.contains("\"model\":\"m\""));
    eventually(&mock, |s| s.completed == 3 && s.in_flight == 0).await;

    let (_, over_http) = call_json(&mock, "GET", "/_mock/stats", Value::Null).await;
    assert_eq!(over_http["requests"], 3);
    // The key never shows in the clear, in the fields or in the headers.
    assert!(!over_http.to_string().contains("sk-test"), "{over_http}");
    assert_eq!(last.header("authorization"), last.authorization.as_deref());
}

#[test]
fn credentials_are_recorded_redacted() {
    let r = crate::redact("sk-ant-api03-abcdefghijklmnop");
    assert!(
        r.starts_with("sk-ant…") && r.len() == "sk-ant…".len() + 8,
        "{r}"
    );
    assert!(!r.contains("abcdef"));
    // The scheme stays; a short key shows at most half of itself.
    assert!(crate::redact("Bearer sk-oai-0").starts_with("Bearer sk-o…"));
    assert!(crate::redact("abcd").starts_with("ab…"));
    // Different keys, different records.
    assert_ne!(crate::redact("sk-ant-1"), crate::redact("sk-ant-2"));
}

#[tokio::test]
async fn h2c_stream_works() {
    let mock = start(quick()).await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let body = json!({"model": "m", "stream": true, "max_tokens": 2}).to_string();
    let request = Request::post(url(&mock, "/v1/chat/completions"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    assert_eq!(events(&frames).last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn connection_close_is_an_orderly_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = start(quick()).await;
    let mut stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let request = "POST /v1/embeddings HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 13\r\n\r\n{\"input\":\"a\"}";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with('}'), "{text}");
}
