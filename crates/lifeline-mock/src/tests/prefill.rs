//! Assistant prefill (continued or refused), the instruction-to-continue
//! seam, `voice`, and chat tool calls, over real sockets.

use http::StatusCode;
use serde_json::{json, Value};

use super::{anthropic_events, call_json, events, frames, quick, send, start};
use crate::{Faults, MockConfig};

/// The text a chat stream carried, joined from its content deltas.
async fn chat_stream_text(mock: &crate::MockHandle, body: Value) -> (String, Vec<Value>) {
    let response = send(mock, "POST", "/v1/chat/completions", &body.to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    let events = events(&frames);
    let text = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    (text, events)
}

/// The text a messages stream carried, joined from its text deltas.
async fn messages_stream_text(mock: &crate::MockHandle, body: Value) -> (String, Vec<Value>) {
    let response = send(mock, "POST", "/v1/messages", &body.to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    let events: Vec<Value> = anthropic_events(&frames)
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    let text = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    (text, events)
}

fn words(stem: &str, from: u32, to: u32) -> String {
    (from..=to)
        .map(|k| format!("{stem}{k}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn chat_continues_an_assistant_prefill() {
    let mock = start(MockConfig {
        name: "b".into(),
        ..quick()
    })
    .await;
    let request = |stream: bool| {
        json!({
            "model": "m", "max_tokens": 8, "stream": stream,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "a1 a2 a3"},
            ],
        })
    };
    let (status, body) = call_json(&mock, "POST", "/v1/chat/completions", request(false)).await;
    assert_eq!(status, StatusCode::OK);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, format!(" {}", words("b", 4, 8)));
    assert_eq!(format!("a1 a2 a3{content}"), "a1 a2 a3 b4 b5 b6 b7 b8");
    assert_eq!(body["usage"]["completion_tokens"], 5, "only the new tokens");
    assert_eq!(body["choices"][0]["finish_reason"], "length");

    let (text, events) = chat_stream_text(&mock, request(true)).await;
    assert_eq!(text, content);
    let usage = &events[events.len() - 2]["usage"];
    assert_eq!(usage["completion_tokens"], 5);

    // Parts count too; a prefill ending in a space gets no second space.
    let parts = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "a1 "}, {"type": "text", "text": "a2 "}]},
    ]});
    let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", parts).await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, words("b", 3, 16));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn messages_continue_an_assistant_prefill() {
    let mock = start(MockConfig {
        name: "b".into(),
        completion_tokens: 6,
        ..quick()
    })
    .await;
    let request = |stream: bool| {
        json!({
            "model": "claude", "max_tokens": 100, "stream": stream,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "x1 x2"}]},
            ],
        })
    };
    let (status, body) = call_json(&mock, "POST", "/v1/messages", request(false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["content"][0]["text"], " b3 b4 b5 b6");
    assert_eq!(body["usage"]["output_tokens"], 4);
    assert_eq!(body["stop_reason"], "end_turn");

    let (text, events) = messages_stream_text(&mock, request(true)).await;
    assert_eq!(text, " b3 b4 b5 b6");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["output_tokens"], 4);

    // Anthropic refuses a prefill that ends in whitespace.
    let trailing = json!({"model": "c", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "x1 "},
    ]});
    let (status, body) = call_json(&mock, "POST", "/v1/messages", trailing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "messages: final assistant content cannot end with trailing whitespace"
    );
}

#[tokio::test]
async fn reject_prefill_refuses_a_trailing_assistant_message() {
    let mock = start(quick()).await;
    let (status, _) = call_json(
        &mock,
        "POST",
        "/_mock/faults",
        json!({"reject_prefill": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(mock.faults().reject_prefill);
    let conversation = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "mock1 mock2"},
    ]);

    let chat = json!({"model": "m", "stream": true, "messages": conversation});
    let (status, body) = call_json(&mock, "POST", "/v1/chat/completions", chat).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "messages");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("assistant") && message.contains("prefill"),
        "{message}"
    );

    let anthropic = json!({"model": "c", "max_tokens": 9, "messages": conversation});
    let (status, body) = call_json(&mock, "POST", "/v1/messages", anthropic).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "This model does not support assistant message prefill. The conversation must end with a user message.",
            },
            "request_id": body["request_id"],
        })
    );

    // A conversation that ends with the user is answered as usual.
    let fine = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = call_json(&mock, "POST", "/v1/chat/completions", fine).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn instruction_to_continue_repeats_the_seam() {
    let mock = start(MockConfig {
        name: "b".into(),
        completion_tokens: 8,
        ..quick()
    })
    .await;
    let conversation = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "a1 a2 a3 a4 a5"},
        {"role": "user", "content": "Please continue exactly where you stopped."},
    ]);
    let expected = "a3 a4 a5 b6 b7 b8";
    let chat = json!({"model": "m", "messages": conversation});
    let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", chat.clone()).await;
    assert_eq!(body["choices"][0]["message"]["content"], expected);
    assert_eq!(body["usage"]["completion_tokens"], 6);
    let mut stream = chat;
    stream["stream"] = json!(true);
    let (text, _) = chat_stream_text(&mock, stream).await;
    assert_eq!(text, expected);

    let messages = json!({"model": "c", "max_tokens": 50, "messages": conversation});
    let (_, body) = call_json(&mock, "POST", "/v1/messages", messages.clone()).await;
    assert_eq!(body["content"][0]["text"], expected);
    let mut stream = messages;
    stream["stream"] = json!(true);
    let (text, _) = messages_stream_text(&mock, stream).await;
    assert_eq!(text, expected);

    // Shorter than three words: all of it is repeated.
    let short = json!({"model": "m", "messages": [
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "continue"},
    ]});
    let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", short).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "a1 b2 b3 b4 b5 b6 b7 b8"
    );
    // Without the word, a user turn after the assistant is a new question.
    let other = json!({"model": "m", "messages": [
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "thanks"},
    ]});
    let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", other).await;
    assert_eq!(body["choices"][0]["message"]["content"], words("b", 1, 8));
}

#[tokio::test]
async fn voice_makes_two_mocks_answer_alike() {
    let config = |name: &str| MockConfig {
        name: name.into(),
        voice: Some("gpt".into()),
        ..quick()
    };
    let first = start(config("east")).await;
    let second = start(config("west")).await;
    let request =
        json!({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let (_, one) = call_json(&first, "POST", "/v1/chat/completions", request.clone()).await;
    let (_, two) = call_json(&second, "POST", "/v1/chat/completions", request).await;
    let text = &one["choices"][0]["message"]["content"];
    assert_eq!(text, "gpt1 gpt2 gpt3 gpt4");
    assert_eq!(text, &two["choices"][0]["message"]["content"]);
    // The name still tells them apart.
    assert_eq!(one["system_fingerprint"], "lifeline-mock-east");
    assert_eq!(two["system_fingerprint"], "lifeline-mock-west");

    let anthropic = json!({"model": "c", "max_tokens": 2, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (text, _) = messages_stream_text(&second, anthropic).await;
    assert_eq!(text, "gpt1 gpt2");

    // Settable over the control API like every other setting.
    let (status, _) = call_json(
        &first,
        "PUT",
        "/_mock/config",
        json!({"name": "east", "voice": "claude", "ttft_ms": 0, "tokens_per_second": 0.0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let request = json!({"model": "m", "max_tokens": 2});
    let (_, body) = call_json(
        &first,
        "POST",
        "/v1/responses",
        json!({"max_output_tokens": 2}),
    )
    .await;
    assert_eq!(body["output"][0]["content"][0]["text"], "claude1 claude2");
    let (_, body) = call_json(&first, "POST", "/v1/chat/completions", request).await;
    assert_eq!(body["choices"][0]["message"]["content"], "claude1 claude2");
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    ])
}

#[tokio::test]
async fn chat_tool_calls_whole_and_streamed() {
    let mock = start(quick()).await;
    let forced = json!({
        "model": "m", "tools": weather_tools(),
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "hi"}],
    });
    let (status, body) = call_json(&mock, "POST", "/v1/chat/completions", forced.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));

    // `required` calls the first tool; so does the word "weather".
    for (choice, text) in [(json!("required"), "hi"), (json!("auto"), "The Weather?")] {
        let request = json!({"model": "m", "tools": weather_tools(), "tool_choice": choice,
            "messages": [{"role": "user", "content": text}]});
        let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", request).await;
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_time", "{choice}");
    }
    // No tools, or tool_choice none, or a tool result last: text.
    let plain = [
        json!({"messages": [{"role": "user", "content": "weather"}]}),
        json!({"tools": weather_tools(), "tool_choice": "none", "messages": [{"role": "user", "content": "weather"}]}),
        json!({"tools": weather_tools(), "tool_choice": "required", "messages": [
            {"role": "user", "content": "weather"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]}),
    ];
    for request in plain {
        let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", request.clone()).await;
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{request}");
        assert!(body["choices"][0]["message"]["content"].is_string());
    }

    let mut stream = forced;
    stream["stream"] = json!(true);
    let response = send(&mock, "POST", "/v1/chat/completions", &stream.to_string())
        .await
        .unwrap();
    let (frames, _) = frames(&mut response.into_body()).await;
    let events = events(&frames);
    // First delta, two fragments, finish, [DONE].
    assert_eq!(events.len(), 5, "{events:?}");
    let first = &events[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    let call = &first["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let arguments: String = events[1..3]
        .iter()
        .map(|e| {
            let fragment = &e["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(fragment["index"], 0);
            assert!(fragment.get("id").is_none());
            fragment["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(arguments, r#"{"city":"Paris"}"#);
    assert_eq!(events[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events[4], "[DONE]");
}

/// Faults still apply to continued answers: a stream of a prefill cut after
/// N chunks carries the first words of the continuation.
#[tokio::test]
async fn prefill_streams_take_the_stream_faults() {
    let mock = start(MockConfig {
        name: "b".into(),
        ..quick()
    })
    .await;
    mock.set_faults(Faults {
        cut_after_chunks: Some(3),
        ..Faults::default()
    });
    let body = json!({"model": "m", "stream": true, "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "a1 a2 a3"},
    ]});
    let response = send(&mock, "POST", "/v1/chat/completions", &body.to_string())
        .await
        .unwrap();
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_some());
    let text: String = events(&frames)
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, " b4 b5");
}

/// vLLM's parameters for a prefill: accepted with `add_generation_prompt:
/// false`, refused as vLLM refuses them without it.
#[tokio::test]
async fn vllm_prefill_parameters() {
    let mock = start(MockConfig {
        name: "b".into(),
        completion_tokens: 4,
        ..quick()
    })
    .await;
    let conversation =
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a1"}]);
    let fine = json!({"model": "m", "messages": conversation,
        "continue_final_message": true, "add_generation_prompt": false});
    let (status, body) = call_json(&mock, "POST", "/v1/chat/completions", fine).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["choices"][0]["message"]["content"], " b2 b3 b4");
    let both = json!({"model": "m", "messages": conversation, "continue_final_message": true});
    let (status, body) = call_json(&mock, "POST", "/v1/chat/completions", both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
    );
}
