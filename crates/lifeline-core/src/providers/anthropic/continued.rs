//! A continued Messages stream, for an Anthropic client
//! ([`crate::providers::continued`]): what the client was sent (its blocks
//! and which is open, the `text_delta`s, tool use, the stop reason,
//! `output_tokens`), the `max_tokens` ending, and a continuation's events
//! rewritten (the message start dropped, block indexes moved to follow the
//! client's blocks, the usage of the streams before it added).

use bytes::BytesMut;

use crate::providers::continued::{add_before, Parts, Sent};
use crate::providers::sse::{fields, Field};

/// The request field that limits the answer's tokens.
pub const LIMITS: &[&str] = &["max_tokens"];

/// Reads the client's events into `sent`.
pub fn parse(all: &[u8], sent: &mut Sent) {
    for field in fields(all) {
        match field {
            Field::Event(name) => sent.ended |= name.ends_with(b"error"),
            // Anthropic sends none; the relay's scanner takes one as the end.
            Field::Data(b"[DONE]") => sent.ended = true,
            Field::Data(p) => {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(p) {
                    note(sent, &v);
                }
            }
        }
    }
}

/// One event the client was sent.
fn note(sent: &mut Sent, v: &serde_json::Value) {
    let index = v.get("index").and_then(serde_json::Value::as_i64);
    if let Some(i) = index {
        sent.next_index = sent.next_index.max(i.saturating_add(1));
    }
    let usage = v
        .pointer("/usage/output_tokens")
        .or_else(|| v.pointer("/message/usage/output_tokens"));
    if let Some(n) = usage.and_then(serde_json::Value::as_u64) {
        sent.output = sent.output.max(n);
    }
    let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if kind == "content_block_delta" {
        sent.deltas += 1;
    }
    match kind {
        "content_block_stop" => sent.open_block = None,
        "content_block_start" => {
            sent.open_block = index;
            match v.pointer("/content_block/type").and_then(|t| t.as_str()) {
                Some("text") => sent.text_index = index,
                Some("tool_use" | "server_tool_use") => sent.tool_call = true,
                _ => {}
            }
        }
        "content_block_delta" => match v.pointer("/delta/type").and_then(|t| t.as_str()) {
            Some("text_delta") => {
                sent.text_index = index;
                if let Some(t) = v.pointer("/delta/text").and_then(|t| t.as_str()) {
                    sent.text.push_str(t);
                }
            }
            Some("input_json_delta") => sent.tool_call = true,
            _ => {}
        },
        "message_delta"
            if v.pointer("/delta/stop_reason")
                .is_some_and(|r| !r.is_null()) =>
        {
            sent.ended = true;
        }
        "message_stop" | "error" => sent.ended = true,
        _ => {}
    }
}

/// The open block's `content_block_stop`, a `message_delta` with
/// `stop_reason: "max_tokens"` and the output so far, `comment`, then
/// `message_stop`.
pub fn length_ending(sent: &Sent, comment: &[u8], out: &mut BytesMut) {
    if let Some(i) = sent.open_block {
        out.extend_from_slice(
            format!("event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{i}}}\n\n").as_bytes(),
        );
    }
    let delta = serde_json::json!({
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
        "usage": {"output_tokens": sent.output},
    });
    out.extend_from_slice(format!("event: message_delta\ndata: {delta}\n\n").as_bytes());
    out.extend_from_slice(comment);
    out.extend_from_slice(super::stream::MESSAGE_STOP);
}

/// A `[DONE]` (which Anthropic does not send, and the relay's scanner
/// takes as the end) is passed on as the end.
pub fn terminal(payload: &[u8]) -> Option<&'static [u8]> {
    (payload == b"[DONE]").then_some(b"data: [DONE]\n\n")
}

/// Rewrites a continuation's events for an Anthropic client.
#[derive(Debug)]
pub struct Rewrite {
    /// The client's open text block, which a new text block continues, if
    /// the client has one open.
    text_open: Option<i64>,
    /// The client's open block of another kind (closed before the new
    /// stream's first block).
    other_open: Option<i64>,
    /// The first index after the client's blocks.
    next_index: i64,
    /// How far the new stream's block indexes are moved, set by the first
    /// of its events that reaches the client.
    index_shift: Option<i64>,
    /// The new stream's blocks (by its own index) whose start the client
    /// has, or that continue the client's open text block.
    opened: Vec<i64>,
    /// The new stream's index of the text being held or read.
    text_raw: Option<i64>,
    /// Output tokens the client had before this stream.
    pub(in crate::providers) before: u64,
}

impl Rewrite {
    /// For a stream that follows `sent`.
    pub fn new(sent: &Sent, before: u64) -> Self {
        Self {
            text_open: sent.open_block.filter(|o| Some(*o) == sent.text_index),
            other_open: sent.open_block.filter(|o| Some(*o) != sent.text_index),
            next_index: sent.next_index,
            index_shift: None,
            opened: Vec::new(),
            text_raw: None,
            before,
        }
    }

    /// An event's parts, with the usage of the streams before it.
    pub fn parts(&mut self, v: &mut serde_json::Value) -> Parts {
        add_before(v, self.before, &["/usage/output_tokens"]);
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let index = v.get("index").and_then(serde_json::Value::as_i64);
        let delta = v
            .pointer("/delta/type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let block = v
            .pointer("/content_block/type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        if kind == "content_block_delta" && delta == "text_delta" {
            self.text_raw = index;
        }
        match kind.as_str() {
            // The start of a message, again: nothing the client needs.
            "message_start" | "ping" => Parts::default(),
            // A text block's start goes out with its first text, if that
            // does not continue the client's open block ([`Self::emit`]).
            "content_block_start" if block == "text" => Parts::default(),
            // The end of a block the client has, or of the text being
            // read (the answer's text ends there); a block dropped before
            // the seam (reasoning) ends unseen.
            "content_block_stop"
                if index.is_some_and(|i| self.opened.contains(&i) || Some(i) == self.text_raw) =>
            {
                Parts {
                    hard: true,
                    ..Parts::default()
                }
            }
            "content_block_stop" => Parts::default(),
            "content_block_start" => Parts {
                hard: block.contains("tool_use"),
                soft: !block.contains("tool_use"),
                ..Parts::default()
            },
            "content_block_delta" if delta == "text_delta" => Parts {
                text: v
                    .pointer("/delta/text")
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
                ..Parts::default()
            },
            "content_block_delta" => Parts {
                hard: delta == "input_json_delta",
                soft: delta != "input_json_delta",
                ..Parts::default()
            },
            "message_stop" => Parts {
                hard: true,
                terminal: true,
                ..Parts::default()
            },
            _ => Parts {
                hard: true,
                ..Parts::default()
            },
        }
    }

    /// An event, its block index moved to follow the client's blocks. The
    /// first event of the new stream to reach the client sets the move:
    /// text continues the client's open text block; anything else
    /// (reasoning, a tool call, or text when the client has no text block
    /// open) closes the client's open block and starts after it.
    pub fn emit(&mut self, out: &mut BytesMut, mut v: serde_json::Value) {
        let index = v.get("index").and_then(serde_json::Value::as_i64);
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        let text = kind == "content_block_delta"
            && v.pointer("/delta/type").and_then(|t| t.as_str()) == Some("text_delta");
        if index.is_none() && kind == "message_delta" && self.index_shift.is_none() {
            // The new stream ends with no block of its own: the client's
            // open block ends first.
            if let Some(o) = self.text_open.or(self.other_open) {
                write_event(
                    out,
                    &serde_json::json!({"type": "content_block_stop", "index": o}),
                );
            }
            self.index_shift = Some(0);
        }
        if let Some(i) = index {
            let shift = match self.index_shift {
                Some(shift) => shift,
                None => {
                    let shift = match self.text_open {
                        Some(t) if text => {
                            self.opened.push(i);
                            t.saturating_sub(i)
                        }
                        open => {
                            if let Some(o) = open.or(self.other_open) {
                                write_event(
                                    out,
                                    &serde_json::json!({"type": "content_block_stop", "index": o}),
                                );
                            }
                            self.next_index.saturating_sub(i)
                        }
                    };
                    self.index_shift = Some(shift);
                    shift
                }
            };
            if kind == "content_block_start" {
                self.opened.push(i);
            } else if text && !self.opened.contains(&i) {
                // Its start was held back: it goes out now.
                self.opened.push(i);
                write_event(
                    out,
                    &serde_json::json!({"type": "content_block_start", "index": i.saturating_add(shift),
                        "content_block": {"type": "text", "text": ""}}),
                );
            }
            if let Some(slot) = v.get_mut("index") {
                *slot = i.saturating_add(shift).into();
            }
        }
        write_event(out, &v);
    }
}

/// Replaces an event's text (`delta.text`).
pub fn set_text(v: &mut serde_json::Value, text: &str) {
    if let Some(o) = v.pointer_mut("/delta").and_then(|d| d.as_object_mut()) {
        o.insert("text".into(), serde_json::Value::String(text.into()));
    }
}

/// Writes an event (`event:` line from its `type`).
fn write_event(out: &mut BytesMut, v: &serde_json::Value) {
    if let Some(kind) = v.get("type").and_then(|t| t.as_str()) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
