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
//! each event carries ([`Parts`]). None of this runs on the hot path of a
//! stream that does not break.

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
                *slot = (n + before).into();
            }
        }
    }
}
