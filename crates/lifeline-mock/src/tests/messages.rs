//! Anthropic's `POST /v1/messages`: shapes, stream grammar, validation,
//! tools, and every fault in Anthropic's shape, over real sockets.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{anthropic_events, client, eventually, frames, quick, start, url};
use crate::{Faults, MockConfig, MockHandle};

/// Sends `body` to `/v1/messages` as the `anthropic` SDK does.
async fn post(
    mock: &MockHandle,
    body: &Value,
) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
    let request = Request::post(url(mock, "/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-2024-04-04")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    client().request(request).await
}

async fn post_json(mock: &MockHandle, body: &Value) -> (StatusCode, http::HeaderMap, Value) {
    let response = post(mock, body).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

fn hello(max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": "claude-x",
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "Hello"}],
    })
}

/// Streams `body`; the events (name, data) and the body error, if any.
async fn stream(mock: &MockHandle, body: &Value) -> (Vec<(String, Value)>, Option<hyper::Error>) {
    let response = post(mock, body).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (frames, error) = frames(&mut response.into_body()).await;
    (anthropic_events(&frames), error)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// An Anthropic error body: `{"type":"error","error":{type,message},"request_id"}`.
fn assert_anthropic_error(body: &Value, kind: &str) {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req_mock_"));
    assert!(body.get("code").is_none() && body["error"].get("code").is_none());
}

#[tokio::test]
async fn messages_whole_answer_shape_headers_and_recording() {
    let mock = start(quick()).await;
    let (status, headers, body) = post_json(&mock, &hello(100, false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "msg_mock-1");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-x");
    assert_eq!(body["content"].as_array().unwrap().len(), 1);
    assert_eq!(body["content"][0]["type"], "text");
    let text = body["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.split(' ').count(), 16);
    assert!(text.starts_with("mock1 mock2 "));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["stop_sequence"], Value::Null);
    assert_eq!(body["usage"]["output_tokens"], 16);
    assert!(body["usage"]["input_tokens"].as_u64().unwrap() >= 1);
    assert_eq!(headers["request-id"], "req_mock_1");
    assert_eq!(headers["content-type"], "application/json");

    // max_tokens below the natural length cuts the answer.
    let (_, _, body) = post_json(&mock, &hello(3, false)).await;
    assert_eq!(body["content"][0]["text"], "mock1 mock2 mock3");
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["usage"]["output_tokens"], 3);

    let stats = mock.stats();
    assert_eq!(stats.by_path["/v1/messages"], 2);
    let last = stats.recent.last().unwrap();
    assert_eq!(
        last.x_api_key.as_deref(),
        Some(crate::redact("sk-ant-test").as_str())
    );
    assert_eq!(last.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(last.header("anthropic-beta"), Some("tools-2024-04-04"));
    assert_eq!(last.header("Anthropic-Version"), Some("2023-06-01"));
    assert_eq!(last.authorization, None);
    assert!(last.body.contains("\"max_tokens\":3"));
    eventually(&mock, |s| s.completed == 2 && s.in_flight == 0).await;

    // `Authorization: Bearer` is accepted as well (the mock checks no key).
    let (status, headers, _) = super::call(&mock, "POST", "/v1/messages", hello(2, false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["request-id"], "req_mock_3");
    let last = mock.stats().recent.pop().unwrap();
    assert_eq!(
        last.authorization.as_deref(),
        Some(crate::redact("Bearer sk-test").as_str())
    );
}

#[tokio::test]
async fn messages_validation_errors_are_anthropics() {
    let mock = start(quick()).await;
    let (status, headers, body) = post_json(
        &mock,
        &json!({"model": "c", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_anthropic_error(&body, "invalid_request_error");
    assert_eq!(body["error"]["message"], "max_tokens: Field required");
    assert_eq!(body["request_id"], headers["request-id"].to_str().unwrap());

    let (status, _, body) = post_json(&mock, &json!({"model": "c", "max_tokens": 5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "messages: Field required");

    let (status, _, body) = post_json(&mock, &json!([1])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_anthropic_error(&body, "invalid_request_error");

    // The context window speaks Anthropic too.
    mock.set_config(MockConfig {
        context_window: Some(10),
        ..quick()
    });
    let mut long = hello(5, false);
    long["messages"][0]["content"] = json!("x".repeat(400));
    let (status, _, body) = post_json(&mock, &long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_anthropic_error(&body, "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("prompt is too long: "), "{message}");
    assert!(message.ends_with(" > 10 maximum"), "{message}");
}

#[tokio::test]
async fn messages_stream_follows_anthropics_grammar() {
    let mock = start(MockConfig {
        tokens_per_second: 1000.0,
        ttft_ms: 5,
        ..MockConfig::default()
    })
    .await;
    let response = post(&mock, &hello(3, true)).await.unwrap();
    assert_eq!(response.headers()["request-id"], "req_mock_1");
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    // One frame per event.
    assert_eq!(frames.len(), 9, "{frames:?}");
    let events = anthropic_events(&frames);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &events {
        assert_eq!(
            data["type"],
            name.as_str(),
            "the data's type is the event's name"
        );
    }
    let message = &events[0].1["message"];
    assert_eq!(message["id"], "msg_mock-1");
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-x");
    assert_eq!(message["content"], json!([]));
    assert_eq!(message["stop_reason"], Value::Null);
    assert_eq!(message["stop_sequence"], Value::Null);
    let input_tokens = message["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input_tokens >= 1);
    assert_eq!(
        events[2].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    let text: String = events[3..6]
        .iter()
        .map(|(_, data)| {
            assert_eq!(data["index"], 0);
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "mock1 mock2 mock3");
    assert_eq!(
        events[6].1,
        json!({"type": "content_block_stop", "index": 0})
    );
    let delta = &events[7].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    assert_eq!(delta["usage"]["output_tokens"], 3);
    assert_eq!(delta["usage"]["input_tokens"], input_tokens);
    assert_eq!(events[8].1, json!({"type": "message_stop"}));
    eventually(&mock, |s| s.completed == 1 && s.in_flight == 0).await;

    let (events, _) = stream(&mock, &hello(100, true)).await;
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "end_turn"
    );
}

#[tokio::test]
async fn messages_tool_use_whole_and_streamed() {
    let mock = start(quick()).await;
    let tools = json!([
        {"name": "get_time", "input_schema": {"type": "object"}},
        {"name": "get_weather", "description": "w", "input_schema": {"type": "object"}},
    ]);
    let forced = json!({
        "model": "c", "max_tokens": 100, "tools": tools,
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "hi"}],
    });
    let (status, _, body) = post_json(&mock, &forced).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stop_reason"], "tool_use");
    let block = &body["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"city": "Paris"}));
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));

    // `any` calls the first tool; so does the word "weather" under `auto`.
    for (choice, text) in [
        (json!({"type": "any"}), "hi"),
        (json!({"type": "auto"}), "weather in Paris?"),
    ] {
        let request = json!({"model": "c", "max_tokens": 100, "tools": tools, "tool_choice": choice,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]});
        let (_, _, body) = post_json(&mock, &request).await;
        assert_eq!(body["content"][0]["name"], "get_time", "{choice}");
    }
    // A tool result last, or tool_choice none: text.
    let after = json!({"model": "c", "max_tokens": 100, "tools": tools, "tool_choice": {"type": "any"}, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]});
    let none = json!({"model": "c", "max_tokens": 100, "tools": tools, "tool_choice": {"type": "none"},
        "messages": [{"role": "user", "content": "weather?"}]});
    for request in [after, none] {
        let (_, _, body) = post_json(&mock, &request).await;
        assert_eq!(body["stop_reason"], "end_turn", "{request}");
        assert_eq!(body["content"][0]["type"], "text");
    }

    let mut streamed = forced;
    streamed["stream"] = json!(true);
    let (events, error) = stream(&mock, &streamed).await;
    assert!(error.is_none());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let block = &events[2].1["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    let json_text: String = events[3..5]
        .iter()
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "input_json_delta");
            data["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_text).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(events[6].1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn messages_error_faults_take_anthropics_shape() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        error_rate: 1.0,
        error_status: 529,
        error_code: Some("ignored_here".into()),
        ..Faults::default()
    });
    let (status, headers, body) = post_json(&mock, &hello(5, true)).await;
    assert_eq!(status.as_u16(), 529);
    assert_anthropic_error(&body, "overloaded_error");
    assert_eq!(headers["request-id"], body["request_id"].as_str().unwrap());
    // The same fault on an OpenAI path keeps OpenAI's shape.
    let (status, chat) =
        super::call_json(&mock, "POST", "/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(status.as_u16(), 529);
    assert_eq!(chat["error"]["code"], "ignored_here");

    for (status, kind) in [
        (500, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (400, "invalid_request_error"),
        (422, "invalid_request_error"),
    ] {
        mock.set_faults(Faults {
            error_rate: 1.0,
            error_status: status,
            ..Faults::default()
        });
        let (got, _, body) = post_json(&mock, &hello(5, false)).await;
        assert_eq!(got.as_u16(), status);
        assert_anthropic_error(&body, kind);
    }

    mock.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: Some(7),
        ..Faults::default()
    });
    let (status, headers, body) = post_json(&mock, &hello(5, false)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_anthropic_error(&body, "rate_limit_error");

    mock.set_faults(Faults {
        maintenance: true,
        ..Faults::default()
    });
    let (status, _, body) = post_json(&mock, &hello(5, false)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_anthropic_error(&body, "api_error");
}

#[tokio::test]
async fn messages_capacity_refuses_with_a_rate_limit_error() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        capacity: Some(1),
        latency_ms: 500,
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mock = mock.clone();
            tokio::spawn(async move { post_json(&mock, &hello(2, false)).await })
        })
        .collect();
    let mut refused = 0;
    for call in calls {
        let (status, headers, body) = call.await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            assert_eq!(headers["retry-after"], "1");
            assert_anthropic_error(&body, "rate_limit_error");
        }
    }
    assert!(refused >= 1);
    assert_eq!(mock.stats().over_capacity, refused);
}

#[tokio::test]
async fn messages_reset_is_a_connection_error() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        reset: true,
        ..Faults::default()
    });
    let result = post(&mock, &hello(5, true)).await;
    assert!(result.is_err(), "expected a connection error: {result:?}");
    eventually(&mock, |s| s.requests == 1 && s.in_flight == 0).await;
}

#[tokio::test]
async fn messages_cut_stall_malformed_and_no_stop() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        cut_after_chunks: Some(4),
        ..Faults::default()
    });
    let (events, error) = stream(&mock, &hello(5, true)).await;
    assert!(error.is_some(), "a cut stream ends with an error");
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );

    mock.set_faults(Faults {
        malformed_chunk_at: Some(3),
        no_done: true,
        ..Faults::default()
    });
    let (events, error) = stream(&mock, &hello(2, true)).await;
    assert!(error.is_none());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
        ],
        "no message_stop"
    );
    assert_eq!(events[3].1, Value::String("{\"broken".into()));
    assert_eq!(events[4].1["delta"]["text"], " mock2");

    mock.set_faults(Faults {
        stall_after_chunks: Some(3),
        ..Faults::default()
    });
    let response = post(&mock, &hello(5, true)).await.unwrap();
    let mut body = response.into_body();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                received.push(String::from_utf8(data.to_vec()).unwrap());
            }
        }
    })
    .await;
    assert!(read.is_err(), "a stalled stream does not end");
    assert_eq!(
        names(&anthropic_events(&received)),
        ["message_start", "ping", "content_block_start"]
    );
    drop(body);
    eventually(&mock, |s| s.cancelled == 1 && s.in_flight == 0).await;
}

#[tokio::test]
async fn messages_latency_and_hang() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let started = tokio::time::Instant::now();
    let (status, _, _) = post_json(&mock, &hello(2, false)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    mock.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let hung = tokio::time::timeout(Duration::from_millis(200), post(&mock, &hello(2, true))).await;
    assert!(hung.is_err(), "hang must not answer");
    eventually(&mock, |s| s.cancelled == 1 && s.in_flight == 0).await;
}

/// A non-streaming answer takes as long as its stream would.
#[tokio::test]
async fn messages_whole_answer_takes_the_generation_time() {
    let mock = start(MockConfig {
        tokens_per_second: 100.0,
        ttft_ms: 50,
        ..MockConfig::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let (status, _, _) = post_json(&mock, &hello(10, false)).await;
    assert_eq!(status, StatusCode::OK);
    // 50 ms + 10 tokens at 100 per second.
    assert!(started.elapsed() >= Duration::from_millis(150));
}

/// `error_after_chunks`: an in-band `error` event after HTTP 200, then the
/// end, in Anthropic's grammar.
#[tokio::test]
async fn messages_in_band_error_event() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        error_after_chunks: Some(4),
        ..Faults::default()
    });
    let (events, error) = stream(&mock, &hello(5, true)).await;
    assert!(error.is_none(), "the stream ends cleanly after the error");
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events[4].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (simulated)"}})
    );
    eventually(&mock, |s| s.completed == 1 && s.in_flight == 0).await;
}

/// A health probe from an Anthropic client (`anthropic-version`) gets
/// Anthropic's model list; faults there take Anthropic's shape.
#[tokio::test]
async fn models_in_anthropics_shape_for_anthropic_clients() {
    let mock = start(quick()).await;
    let get = |mock: &MockHandle| {
        let request = Request::get(url(mock, "/v1/models"))
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client().request(request)
    };
    let response = get(&mock).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("request-id"));
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["data"][0]["type"], "model");
    assert_eq!(body["has_more"], false);
    assert_eq!(body["first_id"], body["data"][0]["id"]);

    mock.set_faults(Faults {
        error_rate: 1.0,
        error_status: 529,
        ..Faults::default()
    });
    let response = get(&mock).await.unwrap();
    assert_eq!(response.status().as_u16(), 529);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_anthropic_error(&body, "overloaded_error");
    // Without the header: OpenAI's list, as before.
    mock.clear_faults();
    let (_, body) = super::call_json(&mock, "GET", "/v1/models", Value::Null).await;
    assert_eq!(body["object"], "list");
}
