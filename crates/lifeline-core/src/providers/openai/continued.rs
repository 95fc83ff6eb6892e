//! A continued chat completions stream, for an OpenAI client
//! ([`crate::providers::continued`]): what the client was sent (the first
//! chunk's `id`, `model` and `created`, `choices[0].delta.content`, tool
//! calls, `finish_reason`, `usage.completion_tokens`), the `length` ending,
//! and a continuation's chunks rewritten (the first chunk's `id`, the
//! `role` of a first chunk removed, the usage of the streams before it
//! added).

use bytes::BytesMut;

use super::stream::DONE_EVENT;
use crate::providers::continued::{add_before, Parts, Sent};
use crate::providers::sse::{fields, Field};

/// The request fields that limit the answer's tokens.
pub const LIMITS: &[&str] = &["max_tokens", "max_completion_tokens"];

/// Reads the client's chunks into `sent`.
pub fn parse(all: &[u8], sent: &mut Sent) {
    for field in fields(all) {
        match field {
            Field::Event(name) => sent.ended |= name.ends_with(b"error"),
            Field::Data(b"[DONE]") => sent.ended = true,
            Field::Data(p) => {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(p) {
                    note(sent, &v);
                }
            }
        }
    }
}

/// One chunk the client was sent.
fn note(sent: &mut Sent, v: &serde_json::Value) {
    if v.get("error").is_some() {
        sent.ended = true;
    }
    if sent.id.is_none() {
        sent.id = v.get("id").and_then(|i| i.as_str()).map(str::to_owned);
        sent.model = v.get("model").cloned();
        sent.created = v.get("created").cloned();
    }
    if let Some(n) = v
        .pointer("/usage/completion_tokens")
        .and_then(serde_json::Value::as_u64)
    {
        sent.output = sent.output.max(n);
    }
    let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
        return;
    };
    for c in choices {
        if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
            sent.ended = true;
        }
        let Some(delta) = c.get("delta") else {
            continue;
        };
        if delta.get("tool_calls").is_some_and(|t| !t.is_null())
            || delta.get("function_call").is_some_and(|t| !t.is_null())
        {
            sent.tool_call = true;
        }
        if delta
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, val)| k != "role" && !val.is_null() && val.as_str() != Some(""))
        {
            sent.deltas += 1;
        }
        if let Some(t) = delta.get("content").and_then(|t| t.as_str()) {
            sent.text.push_str(t);
        }
    }
}

/// A chunk with `finish_reason: "length"` (the first chunk's id, `model`
/// and `created`), `comment`, then `[DONE]`.
pub fn length_ending(sent: &Sent, comment: &[u8], out: &mut BytesMut) {
    let mut chunk = serde_json::json!({
        "id": sent.id.as_deref().unwrap_or("chatcmpl-lifeline"),
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
    });
    if let Some(o) = chunk.as_object_mut() {
        if let Some(created) = &sent.created {
            o.insert("created".into(), created.clone());
        }
        if let Some(model) = &sent.model {
            o.insert("model".into(), model.clone());
        }
    }
    out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    out.extend_from_slice(comment);
    out.extend_from_slice(DONE_EVENT);
}

/// `[DONE]` ends the client's stream.
pub fn terminal(payload: &[u8]) -> Option<&'static [u8]> {
    (payload == b"[DONE]").then_some(DONE_EVENT)
}

/// Rewrites a continuation's chunks for an OpenAI client.
#[derive(Debug)]
pub struct Rewrite {
    /// The first stream's chunk `id` (SDKs accumulate a stream's chunks by
    /// id).
    id: Option<serde_json::Value>,
    /// Output tokens the client had before this stream.
    pub(in crate::providers) before: u64,
}

impl Rewrite {
    /// For a stream that follows `sent`.
    pub fn new(sent: &Sent, before: u64) -> Self {
        Self {
            id: sent.id.clone().map(serde_json::Value::String),
            before,
        }
    }

    /// A chunk's parts, with the first stream's id and the usage of the
    /// streams before it; the `role` of a first chunk is removed.
    pub fn parts(&mut self, v: &mut serde_json::Value) -> Parts {
        add_before(
            v,
            self.before,
            &["/usage/completion_tokens", "/usage/total_tokens"],
        );
        if let (Some(id), Some(slot)) = (&self.id, v.get_mut("id")) {
            *slot = id.clone();
        }
        parts(v)
    }
}

/// Replaces a chunk's text (`choices[0].delta.content`).
pub fn set_text(v: &mut serde_json::Value, text: &str) {
    if let Some(o) = v
        .pointer_mut("/choices/0/delta")
        .and_then(|d| d.as_object_mut())
    {
        o.insert("content".into(), serde_json::Value::String(text.into()));
    }
}

/// Writes a chunk: `data: {…}` and its blank line.
pub fn emit(out: &mut BytesMut, v: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// A chunk's parts; the `role` of a first chunk is removed.
fn parts(v: &mut serde_json::Value) -> Parts {
    let usage = v.get("usage").is_some_and(|u| !u.is_null());
    let error = v.get("error").is_some();
    let Some(choices) = v.get_mut("choices").and_then(|c| c.as_array_mut()) else {
        return Parts {
            hard: true,
            ..Parts::default()
        };
    };
    let mut parts = Parts {
        hard: usage || error || choices.len() > 1,
        ..Parts::default()
    };
    if let Some(c) = choices.first_mut() {
        if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
            parts.hard = true;
        }
        if let Some(delta) = c.get_mut("delta").and_then(|d| d.as_object_mut()) {
            delta.remove("role");
            if delta.get("tool_calls").is_some_and(|t| !t.is_null())
                || delta.get("function_call").is_some_and(|t| !t.is_null())
            {
                parts.hard = true;
            }
            parts.text = delta
                .get("content")
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            // Reasoning and the like: relayed after the seam.
            parts.soft = delta
                .iter()
                .any(|(k, val)| k != "content" && !val.is_null() && val.as_str() != Some(""));
        }
    }
    parts
}
