//! A whole Messages answer re-emitted as the event stream a streaming
//! request would have received (degraded mode answers a streaming
//! `/v1/messages` request with a kept whole answer: `attempt/degraded.rs`).

use bytes::Bytes;
use serde_json::{json, Value};

/// A stored whole answer (`"type": "message"`) re-emitted in the Messages
/// stream grammar: `message_start` (the message without its content, its
/// stop reason still null, its usage's output tokens 0), per content block
/// a `content_block_start`, one delta with the whole block (`text_delta`,
/// `input_json_delta` with the tool input's JSON, `thinking_delta` and
/// `signature_delta`) and a `content_block_stop`, then a `message_delta`
/// with the stop reason, stop sequence and usage, and `message_stop`.
/// Blocks of other types (`redacted_thinking`, server tools' results) are
/// started whole, as Anthropic streams them. `None` when the answer is not
/// a message.
pub fn answer_as_stream(answer: &[u8]) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    let o = v.as_object()?;
    if o.get("type").and_then(Value::as_str) != Some("message") {
        return None;
    }
    let blocks = o.get("content")?.as_array()?;
    let mut out = Vec::new();
    let mut event = |name: &str, v: &Value| {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, v);
        out.extend_from_slice(b"\n\n");
    };
    let mut start = o.clone();
    start.insert("content".into(), json!([]));
    start.insert("stop_reason".into(), Value::Null);
    start.insert("stop_sequence".into(), Value::Null);
    if let Some(u) = start.get_mut("usage").and_then(Value::as_object_mut) {
        u.insert("output_tokens".into(), json!(0));
    }
    event(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    );
    for (index, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let (opening, deltas) = match kind {
            "text" => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": block.get("text")?})],
            ),
            "tool_use" | "server_tool_use" => {
                let mut opening = block.as_object()?.clone();
                let input = opening.insert("input".into(), json!({}))?;
                let partial = serde_json::to_string(&input).ok()?;
                (
                    Value::Object(opening),
                    vec![json!({"type": "input_json_delta", "partial_json": partial})],
                )
            }
            "thinking" => {
                let mut deltas =
                    vec![json!({"type": "thinking_delta", "thinking": block.get("thinking")?})];
                if let Some(sig) = block.get("signature") {
                    deltas.push(json!({"type": "signature_delta", "signature": sig}));
                }
                (json!({"type": "thinking", "thinking": ""}), deltas)
            }
            _ => (block.clone(), Vec::new()),
        };
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": opening}),
        );
        for delta in deltas {
            event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    let mut delta = json!({
        "stop_reason": o.get("stop_reason").cloned().unwrap_or(Value::Null),
        "stop_sequence": o.get("stop_sequence").cloned().unwrap_or(Value::Null),
    });
    if let (Some(d), Some(c)) = (delta.as_object_mut(), o.get("container")) {
        d.insert("container".into(), c.clone());
    }
    let usage = o.get("usage").cloned().unwrap_or_else(|| json!({}));
    event(
        "message_delta",
        &json!({"type": "message_delta", "delta": delta, "usage": usage}),
    );
    event("message_stop", &json!({"type": "message_stop"}));
    Some(Bytes::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn events(sse: &[u8]) -> Vec<(String, Value)> {
        std::str::from_utf8(sse)
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_string();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "{e}");
                (name, data)
            })
            .collect()
    }

    #[test]
    fn a_whole_message_is_re_emitted_as_its_event_stream() {
        let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"thinking","thinking":"Hm.","signature":"sig"},{"type":"text","text":"Hello"},{"type":"tool_use","id":"tu_1","name":"f","input":{"a":1}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":9}}"#;
        let ev = events(&answer_as_stream(answer).unwrap());
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let msg = &ev[0].1["message"];
        assert_eq!(msg["id"], "msg_1");
        assert_eq!(msg["content"], json!([]));
        assert!(msg["stop_reason"].is_null());
        assert_eq!(msg["usage"]["input_tokens"], 5);
        assert_eq!(msg["usage"]["output_tokens"], 0);
        assert_eq!(ev[2].1["delta"]["thinking"], "Hm.");
        assert_eq!(ev[3].1["delta"]["signature"], "sig");
        assert_eq!(ev[5].1["index"], 1);
        assert_eq!(ev[6].1["delta"]["text"], "Hello");
        assert_eq!(ev[8].1["content_block"]["input"], json!({}));
        assert_eq!(ev[8].1["content_block"]["name"], "f");
        let input: Value =
            serde_json::from_str(ev[9].1["delta"]["partial_json"].as_str().unwrap()).unwrap();
        assert_eq!(input, json!({"a": 1}));
        assert_eq!(ev[11].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(ev[11].1["usage"]["output_tokens"], 9);
    }

    #[test]
    fn what_is_not_a_message_is_not_re_emitted() {
        assert!(answer_as_stream(br#"{"type":"error","error":{}}"#).is_none());
        assert!(answer_as_stream(b"junk").is_none());
        // Other block types are started whole.
        let answer = br#"{"type":"message","content":[{"type":"redacted_thinking","data":"x"}],"stop_reason":"end_turn"}"#;
        let ev = events(&answer_as_stream(answer).unwrap());
        assert_eq!(ev[1].1["content_block"]["data"], "x");
        assert_eq!(ev[2].0, "content_block_stop");
    }
}
