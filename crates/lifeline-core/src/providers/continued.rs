//! A continued stream in the client's wire, as continuation asks the
//! adapters: what the client was sent ([`Sent`], parsed once at a break
//! from the bytes the relay kept), and the events of a continuation stream
//! rewritten to follow them ([`Rewrite`]: the first stream's chunk id,
//! block indexes that follow the client's blocks, the start of a message
//! dropped, the usage of the streams it replaced added), each dispatched by
//! a `match` on the client's [`Wire`] to its adapter
//! (`openai/continued.rs`, `anthropic/continued.rs`).
//!
//! The relay's [`crate::relay::resume::Splice`] keeps the state machine
//! (seam, replay point, whitespace already sent) and asks [`Rewrite`] what
//! each event carries ([`Parts`]). The attempt side asks for the
//! continuation's request ([`request`]: the partial answer added to the
//! client's request, its output limit lowered) and the client's limit
//! ([`max_output`]). None of this runs on the hot path of a stream that
//! does not break.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::{anthropic, openai, Wire};

/// What the client was sent, learnt from its bytes at a break.
#[derive(Debug, PartialEq, Eq)]
pub struct Sent {
    /// The client's wire.
    pub wire: Wire,
    /// The first chunk's `id` (a JSON string; OpenAI's wire).
    pub id: Option<String>,
    /// The answer's text so far: `choices[0].delta.content` (OpenAI), the
    /// `text_delta`s (Anthropic), concatenated.
    pub text: String,
    /// The index of the open text block (Anthropic).
    pub text_index: Option<i64>,
    /// The index of the block still open, if one is (Anthropic).
    pub open_block: Option<i64>,
    /// The index after the highest block index sent (Anthropic).
    pub next_index: i64,
    /// Output tokens so far: the most a `usage` said (`completion_tokens`,
    /// `output_tokens`), or the content events sent (about one token
    /// each), whichever is more.
    pub output: u64,
    /// Content events sent (text, reasoning, tool-call deltas).
    pub deltas: u64,
    /// The first chunk's `model` (OpenAI's wire).
    pub model: Option<serde_json::Value>,
    /// The first chunk's `created` (OpenAI's wire).
    pub created: Option<serde_json::Value>,
    /// A tool call (or legacy function call) started: not continued.
    pub tool_call: bool,
    /// The answer finished (a `finish_reason`, a stop reason) or failed (an
    /// error event): nothing to continue.
    pub ended: bool,
    /// Whether the bytes end on an event boundary (a blank line).
    pub at_boundary: bool,
}

impl Sent {
    /// Parses the events the client received, in its `wire`.
    pub fn parse(chunks: &[Bytes], wire: Wire) -> Self {
        let mut all = BytesMut::new();
        for c in chunks {
            all.extend_from_slice(c);
        }
        let mut sent = Sent {
            wire,
            id: None,
            text: String::new(),
            text_index: None,
            open_block: None,
            next_index: 0,
            output: 0,
            deltas: 0,
            model: None,
            created: None,
            tool_call: false,
            ended: false,
            at_boundary: super::sse::at_boundary(&all),
        };
        match wire {
            Wire::OpenAi => openai::continued::parse(&all, &mut sent),
            Wire::Anthropic => anthropic::continued::parse(&all, &mut sent),
        }
        sent.output = sent.output.max(sent.deltas);
        sent
    }
}

/// The end of a stream whose output reached the client's limit at a
/// break: what the client's grammar says when an answer is cut by its
/// `max_tokens` (`finish_reason: "length"`, then `[DONE]`; or the open
/// block's `content_block_stop`, `stop_reason: "max_tokens"` and
/// `message_stop`), after `comment` (the trailing comment of a stream
/// continued before, or nothing).
pub fn length_ending(sent: &Sent, comment: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    if !sent.at_boundary {
        out.extend_from_slice(b"\n");
    }
    match sent.wire {
        Wire::OpenAi => openai::continued::length_ending(sent, comment, &mut out),
        Wire::Anthropic => anthropic::continued::length_ending(sent, comment, &mut out),
    }
    out.freeze()
}

/// The request fields that limit an answer's tokens in the client's wire.
fn limits(client: Wire) -> &'static [&'static str] {
    match client {
        Wire::OpenAi => openai::continued::LIMITS,
        Wire::Anthropic => anthropic::continued::LIMITS,
    }
}

/// The client's limit on output tokens (the least of its wire's limit
/// fields it sets), if it set one.
pub fn max_output(client: Wire, body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    limits(client)
        .iter()
        .filter_map(|k| v.get(*k).and_then(serde_json::Value::as_u64))
        .min()
}

/// The client's request (`body`, in its wire) continued: the partial
/// answer `text` as the last assistant turn (extending the client's own
/// prefill, a last assistant message of text, rather than following it),
/// then `instruction` as a user turn if given, and each output limit less
/// the `output` already sent (at least 1). A chat message `{role, content}`
/// is the same in both wires. The body is written with `model` first, and
/// comes with the span of its value.
pub fn request(
    client: Wire,
    body: &[u8],
    text: &str,
    instruction: Option<&str>,
    output: u64,
) -> Result<(Bytes, Range<usize>), String> {
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = v.as_object_mut().ok_or("the body is not an object")?;
    let model = obj.remove("model").unwrap_or_default();
    let messages = obj
        .get_mut("messages")
        .and_then(|m| m.as_array_mut())
        .ok_or("the body has no messages")?;
    let own_prefill = messages
        .last_mut()
        .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("assistant"))
        .and_then(|m| m.get_mut("content"))
        .filter(|c| c.is_string());
    match own_prefill {
        Some(content) => {
            let joined = format!("{}{text}", content.as_str().unwrap_or(""));
            *content = joined.trim_end().into();
        }
        None => messages.push(serde_json::json!({"role": "assistant", "content": text})),
    }
    if let Some(instruction) = instruction {
        messages.push(serde_json::json!({"role": "user", "content": instruction}));
    }
    for key in limits(client) {
        if let Some(slot) = obj.get_mut(*key).filter(|n| n.is_u64()) {
            let left = slot.as_u64().unwrap_or(0).saturating_sub(output).max(1);
            *slot = left.into();
        }
    }
    // `model` first, so that its span is known to the adapter.
    let model = model.to_string();
    let rest = serde_json::to_string(&v).map_err(|e| e.to_string())?;
    let rest = rest.strip_prefix('{').unwrap_or(&rest);
    let comma = if rest.starts_with('}') { "" } else { "," };
    let body = Bytes::from(format!("{{\"model\":{model}{comma}{rest}"));
    Ok((body, 9..9 + model.len()))
}

/// What one event of a continuation stream carries.
#[derive(Debug, Default)]
pub struct Parts {
    /// Text of the answer (non-empty).
    pub text: Option<String>,
    /// Something that cannot come before the seam (a tool call, the end of
    /// the answer, usage, an error): a misfit there, relayed after it.
    pub hard: bool,
    /// Something else worth relaying after the seam (reasoning), dropped
    /// before it.
    pub soft: bool,
    /// The answer's terminal event (`message_stop`): the trailing comment
    /// goes before it.
    pub terminal: bool,
}

/// What a `data:` payload of a continuation stream is.
#[derive(Debug)]
pub enum Data {
    /// An event.
    Event(serde_json::Value),
    /// The stream's terminal line (`[DONE]`): these bytes end the client's
    /// stream, after the trailing comment.
    Terminal(&'static [u8]),
    /// Not JSON: the new stream does not fit.
    NotJson,
}

/// Rewrites a continuation stream's events (in the client's wire) to
/// follow what the client was sent.
#[derive(Debug)]
pub enum Rewrite {
    /// OpenAI's wire: the first stream's chunk id; the role dropped.
    OpenAi(openai::continued::Rewrite),
    /// Anthropic's: block indexes after the client's, the message start
    /// dropped, the client's open block continued or closed.
    Anthropic(anthropic::continued::Rewrite),
}

impl Rewrite {
    /// A rewrite of a stream that follows `sent`; `before`: output tokens
    /// the client had from the streams this one continues, added to its
    /// usage (which does not count them).
    pub fn new(sent: &Sent, before: u64) -> Self {
        match sent.wire {
            Wire::OpenAi => Self::OpenAi(openai::continued::Rewrite::new(sent, before)),
            Wire::Anthropic => Self::Anthropic(anthropic::continued::Rewrite::new(sent, before)),
        }
    }

    /// The client had `n` output tokens from the streams this one
    /// continues: added to the usage this stream reports.
    pub fn before(&mut self, n: u64) {
        match self {
            Self::OpenAi(r) => r.before = n,
            Self::Anthropic(r) => r.before = n,
        }
    }

    /// What a `data:` payload is.
    pub fn data(&self, payload: &[u8]) -> Data {
        if let Some(end) = match self {
            Self::OpenAi(_) => openai::continued::terminal(payload),
            Self::Anthropic(_) => anthropic::continued::terminal(payload),
        } {
            return Data::Terminal(end);
        }
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(v) => Data::Event(v),
            Err(_) => Data::NotJson,
        }
    }

    /// What an event carries; rewrites it in place (the first stream's
    /// id, the usage of the streams before it).
    pub fn parts(&mut self, v: &mut serde_json::Value) -> Parts {
        match self {
            Self::OpenAi(r) => r.parts(v),
            Self::Anthropic(r) => r.parts(v),
        }
    }

    /// Replaces the text an event carries with `text`.
    pub fn set_text(&self, v: &mut serde_json::Value, text: &str) {
        match self {
            Self::OpenAi(_) => openai::continued::set_text(v, text),
            Self::Anthropic(_) => anthropic::continued::set_text(v, text),
        }
    }

    /// Writes an event for the client (whole, with its blank line).
    pub fn emit(&mut self, out: &mut BytesMut, v: &serde_json::Value) {
        match self {
            Self::OpenAi(_) => openai::continued::emit(out, v),
            Self::Anthropic(r) => r.emit(out, v.clone()),
        }
    }
}

/// Adds `before` to the output counts at `keys` of an event's `usage`.
pub(super) fn add_before(v: &mut serde_json::Value, before: u64, keys: &[&str]) {
    if before == 0 || !v.get("usage").is_some_and(serde_json::Value::is_object) {
        return;
    }
    for key in keys {
        if let Some(slot) = v.pointer_mut(key) {
            if let Some(n) = slot.as_u64() {
                *slot = n.saturating_add(before).into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_request_carries_the_partial_answer_and_what_is_left() {
        let body = br#"{"messages":[{"role":"user","content":"Hi"}],"model":"m","max_tokens":100,"max_completion_tokens":50}"#;
        let (out, span) = request(Wire::OpenAi, body, "Hello", Some("Go on."), 30).unwrap();
        assert_eq!(&out[span], b"\"m\"");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["messages"][1],
            serde_json::json!({"role":"assistant","content":"Hello"})
        );
        assert_eq!(
            v["messages"][2],
            serde_json::json!({"role":"user","content":"Go on."})
        );
        assert_eq!(
            (
                v["max_tokens"].as_u64(),
                v["max_completion_tokens"].as_u64()
            ),
            (Some(70), Some(20))
        );
        assert_eq!(max_output(Wire::OpenAi, body), Some(50));
        // Anthropic's limit is `max_tokens`; a client's own prefill is
        // extended, not followed.
        let body = br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Well,"}]}"#;
        let (out, _) = request(Wire::Anthropic, body, " then ", None, 40).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["messages"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["messages"][1]["content"], "Well, then");
        assert_eq!(v["max_tokens"], 1);
        assert_eq!(max_output(Wire::Anthropic, body), Some(10));
        assert!(request(Wire::OpenAi, b"{}", "x", None, 0).is_err());
    }

    /// Found by the fuzz tests (`fuzz::continued`): block indexes and token
    /// counts at the ends of their ranges (they come from an upstream)
    /// overflowed the index shift and the usage sum; they saturate.
    #[test]
    fn extreme_indexes_and_counts_saturate() {
        let sent = Bytes::from_static(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":9223372036854775807,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        );
        let read = Sent::parse(&[sent], Wire::Anthropic);
        assert_eq!(read.next_index, i64::MAX);
        let mut rewrite = Rewrite::new(&read, u64::MAX);
        let mut out = BytesMut::new();
        for event in [
            r#"{"type":"content_block_delta","index":-9223372036854775808,"delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#,
        ] {
            let Data::Event(mut v) = rewrite.data(event.as_bytes()) else {
                panic!("{event}");
            };
            rewrite.parts(&mut v);
            rewrite.emit(&mut out, &v);
        }
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.contains(&format!("\"output_tokens\":{}", u64::MAX)),
            "{out}"
        );
    }
}
