//! A whole chat answer re-emitted as the chat stream a streaming request
//! would have received (degraded mode answers a streaming request with a
//! kept whole answer: `attempt/degraded.rs`).

use bytes::Bytes;

/// A stored whole chat answer (`chat.completion`) re-emitted as the chat
/// stream a streaming request would have received: per choice, one chunk
/// whose `delta` is the whole message (tool calls numbered by `index`),
/// then one with its `finish_reason`; the answer's `usage` in a last chunk
/// without choices when `include_usage`; then `data: [DONE]`. `None` when
/// the answer is not a chat completion.
pub fn answer_as_stream(answer: &[u8], include_usage: bool) -> Option<Bytes> {
    use serde_json::{json, Value};
    let v: Value = serde_json::from_slice(answer).ok()?;
    let o = v.as_object()?;
    if o.get("object").and_then(Value::as_str) != Some("chat.completion") {
        return None;
    }
    let mut head = serde_json::Map::new();
    for k in [
        "id",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ] {
        if let Some(x) = o.get(k) {
            head.insert(k.into(), x.clone());
        }
    }
    head.insert("object".into(), json!("chat.completion.chunk"));
    let chunk = |choices: Value| {
        let mut c = head.clone();
        c.insert("choices".into(), choices);
        Value::Object(c)
    };
    let mut out = Vec::new();
    let mut event = |v: &Value| {
        out.extend_from_slice(b"data: ");
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, v);
        out.extend_from_slice(b"\n\n");
    };
    for (i, choice) in o.get("choices")?.as_array()?.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or_else(|| json!(i));
        let mut delta = choice.get("message")?.as_object()?.clone();
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (n, call) in calls.iter_mut().enumerate() {
                if let Some(call) = call.as_object_mut() {
                    call.insert("index".into(), json!(n));
                }
            }
        }
        event(&chunk(
            json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": null}]),
        ));
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        event(&chunk(
            json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]),
        ));
    }
    if include_usage {
        if let Some(usage) = o.get("usage") {
            let mut c = chunk(json!([]));
            if let Some(c) = c.as_object_mut() {
                c.insert("usage".into(), usage.clone());
            }
            event(&c);
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Some(Bytes::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_chat_answer_is_re_emitted_as_a_stream() {
        let answer = br#"{"id":"c1","object":"chat.completion","created":7,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"Hello","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"total_tokens":3}}"#;
        let sse = answer_as_stream(answer, true).unwrap();
        let text = std::str::from_utf8(&sse).unwrap();
        let events: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter(|e| !e.is_empty() && *e != "data: [DONE]")
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(events.len(), 3, "{text}");
        let first = &events[0];
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(
            (first["id"].as_str(), first["created"].as_u64()),
            (Some("c1"), Some(7))
        );
        let delta = &first["choices"][0]["delta"];
        assert_eq!(
            (delta["role"].as_str(), delta["content"].as_str()),
            (Some("assistant"), Some("Hello"))
        );
        assert_eq!(delta["tool_calls"][0]["index"], 0);
        assert_eq!(delta["tool_calls"][0]["function"]["name"], "f");
        assert!(first["choices"][0]["finish_reason"].is_null());
        assert_eq!(events[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events[2]["usage"]["total_tokens"], 3);
        assert_eq!(events[2]["choices"].as_array().map(Vec::len), Some(0));
        let without = answer_as_stream(answer, false).unwrap();
        assert_eq!(
            std::str::from_utf8(&without)
                .unwrap()
                .matches("data: ")
                .count(),
            3
        );
        assert!(answer_as_stream(br#"{"object":"list","data":[]}"#, false).is_none());
        assert!(answer_as_stream(b"junk", false).is_none());
    }
}
