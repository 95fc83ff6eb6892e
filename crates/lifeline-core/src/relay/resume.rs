//! Continuing a broken stream from another deployment: the relay's side.
//!
//! The relay (this layer) cannot run attempts: the attempt loop sits above
//! it. So the attempt side hands [`RelayBody`](super::RelayBody) a
//! [`Seed`](super::Seed) at commit, when continuation is on for the request,
//! which the relay makes into a [`Resume`] at the first break after content;
//! it asks that for a new upstream stream ([`Ask`] →
//! [`Resumed`]) and goes on relaying, through a [`Splice`] that makes the
//! new stream's events fit the client's stream:
//!
//! - what would repeat the start of a message (the role chunk) is dropped;
//! - text before the seam is dropped, and the one chunk the seam falls in
//!   is rewritten to what follows it ([`Method::Instruction`]: the seam is
//!   where the last words already sent reappear in the first
//!   [`SEAM_WINDOW`] bytes, at once for a tail of [`FULL_SEAM`] bytes, at
//!   the end of the window for a shorter one ([`find_seam`]); [`Method::Replay`]: the new output must begin
//!   with exactly the text already sent, compared chunk by chunk);
//! - the whitespace the prefill left out ([`Method::Prefill`]: a prefill
//!   must not end with whitespace) is not sent twice;
//! - every forwarded chunk gets the first stream's `id` (SDKs accumulate a
//!   stream's chunks by id), and Anthropic block indexes follow the
//!   client's blocks (text continues the client's open text block; a first
//!   block of another kind closes it and comes after it);
//! - the usage the new stream reports counts the output the client had
//!   before it ([`Splice::before`]);
//! - a trailing SSE comment (`: lifeline continued=N method=M
//!   deployment=D`) goes before `data: [DONE]`.
//!
//! A new stream that does not fit (no seam in the window, a replay that
//! differs, a tool call or the end of the answer before the seam) is
//! abandoned before any of it reached the client, and the next method is
//! asked for. What was sent is learnt once, at the break, from the client
//! bytes the relay kept ([`Sent::parse`]); nothing is parsed on the hot
//! path of a stream that does not break.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;

use super::Scanner;
use crate::route::{Deployment, Lease};
use crate::translate::stream::Transcoder;
use crate::translate::Wire;

/// Most client bytes kept per stream for a continuation; past it the stream
/// is not continued (its memory stays bounded).
pub const MAX_SENT: usize = 1 << 20;

/// How far into the new output (bytes of text) the seam is looked for.
pub const SEAM_WINDOW: usize = 400;

/// The longest tail of the text already sent that is looked for as the seam.
pub const SEAM_TAIL: usize = 40;

/// The shortest seam accepted (unless the whole text sent is shorter): a
/// few characters would match anywhere.
pub const MIN_SEAM: usize = 10;

/// A tail of at least this many bytes (or the whole text sent, if
/// shorter) is a seam as soon as it appears: shorter ones also match a
/// recap of earlier text ("sat on the mat"), so they count only once the
/// window is complete, and only if they occur exactly once in it.
pub const FULL_SEAM: usize = 20;

/// The user turn of [`Method::Instruction`].
pub const CONTINUE_INSTRUCTION: &str =
    "Continue exactly where you stopped, without repeating anything.";

/// How a stream is continued, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The original request plus the text sent as an assistant prefill; the
    /// new output is appended as is.
    Prefill,
    /// The text sent as an assistant turn, then a user turn asking to
    /// continue; only what follows the seam is relayed.
    Instruction,
    /// The original request again; relayed from where the new output
    /// passes the text already sent, if it begins with exactly that.
    Replay,
}

impl Method {
    /// Every method, in order.
    pub const ALL: [Method; 3] = [Method::Prefill, Method::Instruction, Method::Replay];

    /// Metric label and log name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Prefill => "prefill",
            Self::Instruction => "instruction",
            Self::Replay => "replay",
        }
    }
}

/// What the relay asks for at a break.
pub struct Ask {
    /// The text the client received so far (all of it, whitespace included).
    pub text: Arc<str>,
    /// The deployment whose stream broke, or whose continuation was abandoned.
    pub broken: Arc<Deployment>,
    /// `Some`: the continuation by this method on `broken` was abandoned (it
    /// did not fit); `None`: the stream broke.
    pub abandoned: Option<Method>,
    /// Output tokens the client has so far ([`Sent::output`]): a
    /// continuation's `max_tokens` is the client's less this.
    pub output: u64,
}

/// A new upstream stream, read to its first content.
pub struct Resumed {
    /// Bytes read so far (complete lines), to filter and send first.
    pub prefix: Bytes,
    /// The rest of the upstream body.
    pub body: Incoming,
    /// The scanner's state so far.
    pub scanner: Scanner,
    /// The attempt's lease (its first content already recorded).
    pub lease: Lease,
    /// How it continues.
    pub method: Method,
    /// The silence allowed in this stream (the deployment's adaptive stall figure).
    pub stall: Duration,
    /// Time from the continuation's request to its first content.
    pub ttft: Duration,
    /// From the deployment's wire to the client's, when they differ (the
    /// prefix is already the client's).
    pub transcoder: Option<Transcoder>,
}

/// The future a [`Resume`] returns: itself back (for the next break), and
/// the new stream, or `None` when nothing could continue the stream.
pub type Resuming = Pin<Box<dyn Future<Output = (Box<dyn Resume>, Option<Resumed>)> + Send>>;

/// Runs continuation attempts for one client stream (implemented by the
/// attempt side, which owns picking, budgets and deadlines).
pub trait Resume: Send {
    /// A continuation attempt for `ask`.
    fn resume(self: Box<Self>, ask: Ask) -> Resuming;

    /// The client's limit on output tokens (`max_tokens`,
    /// `max_completion_tokens`), if it set one: a stream whose output
    /// reached it is not continued but ends as finished by its length.
    fn max_output(&self) -> Option<u64>;
}

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
            at_boundary: all.ends_with(b"\n\n") || all.ends_with(b"\n\r\n") || all.is_empty(),
        };
        for line in all[..].split(|b: &u8| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b"event:") && line.ends_with(b"error") {
                sent.ended = true;
            }
            let Some(payload) = data_payload(line) else {
                continue;
            };
            if payload == b"[DONE]" {
                sent.ended = true;
                continue;
            }
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
                continue;
            };
            match wire {
                Wire::OpenAi => sent.openai(&v),
                Wire::Anthropic => sent.anthropic(&v),
            }
        }
        sent.output = sent.output.max(sent.deltas);
        sent
    }

    fn openai(&mut self, v: &serde_json::Value) {
        if v.get("error").is_some() {
            self.ended = true;
        }
        if self.id.is_none() {
            self.id = v.get("id").and_then(|i| i.as_str()).map(str::to_owned);
            self.model = v.get("model").cloned();
            self.created = v.get("created").cloned();
        }
        if let Some(n) = v
            .pointer("/usage/completion_tokens")
            .and_then(serde_json::Value::as_u64)
        {
            self.output = self.output.max(n);
        }
        let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
            return;
        };
        for c in choices {
            if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                self.ended = true;
            }
            let Some(delta) = c.get("delta") else {
                continue;
            };
            if delta.get("tool_calls").is_some_and(|t| !t.is_null())
                || delta.get("function_call").is_some_and(|t| !t.is_null())
            {
                self.tool_call = true;
            }
            if delta
                .as_object()
                .into_iter()
                .flatten()
                .any(|(k, val)| k != "role" && !val.is_null() && val.as_str() != Some(""))
            {
                self.deltas += 1;
            }
            if let Some(t) = delta.get("content").and_then(|t| t.as_str()) {
                self.text.push_str(t);
            }
        }
    }

    fn anthropic(&mut self, v: &serde_json::Value) {
        let index = v.get("index").and_then(serde_json::Value::as_i64);
        if let Some(i) = index {
            self.next_index = self.next_index.max(i + 1);
        }
        let usage = v
            .pointer("/usage/output_tokens")
            .or_else(|| v.pointer("/message/usage/output_tokens"));
        if let Some(n) = usage.and_then(serde_json::Value::as_u64) {
            self.output = self.output.max(n);
        }
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if kind == "content_block_delta" {
            self.deltas += 1;
        }
        match kind {
            "content_block_stop" => self.open_block = None,
            "content_block_start" => {
                self.open_block = index;
                match v.pointer("/content_block/type").and_then(|t| t.as_str()) {
                    Some("text") => self.text_index = index,
                    Some("tool_use" | "server_tool_use") => self.tool_call = true,
                    _ => {}
                }
            }
            "content_block_delta" => match v.pointer("/delta/type").and_then(|t| t.as_str()) {
                Some("text_delta") => {
                    self.text_index = index;
                    if let Some(t) = v.pointer("/delta/text").and_then(|t| t.as_str()) {
                        self.text.push_str(t);
                    }
                }
                Some("input_json_delta") => self.tool_call = true,
                _ => {}
            },
            "message_delta"
                if v.pointer("/delta/stop_reason")
                    .is_some_and(|r| !r.is_null()) =>
            {
                self.ended = true;
            }
            "message_stop" | "error" => self.ended = true,
            _ => {}
        }
    }
}

/// Where the first error event in `lines` (complete SSE lines of an
/// upstream stream, in either wire) starts: its `event: error` line, or the
/// start of the event whose data is an error (OpenAI's `{"error":…}`,
/// Anthropic's `{"type":"error",…}`).
pub fn error_event_start(lines: &[u8]) -> Option<usize> {
    let mut event = 0;
    let mut at = 0;
    for line in lines.split_inclusive(|b| *b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        at += line.len();
        if bare.is_empty() {
            event = at;
            continue;
        }
        if let Some(name) = bare.strip_prefix(b"event:") {
            if name.trim_ascii() == b"error" {
                return Some(event);
            }
            continue;
        }
        if data_payload(bare).is_some_and(is_error_payload) {
            return Some(event);
        }
    }
    None
}

/// Whether an event's data is an error (either wire).
fn is_error_payload(p: &[u8]) -> bool {
    p.starts_with(b"{\"error\"")
        || p.starts_with(b"{\"type\":\"error\"")
        || p.starts_with(b"{\"type\": \"error\"")
}

/// Why an upstream error event broke the stream, for the logs and the
/// client's final error event: the error's type and message, if it says.
pub fn error_reason(event: &[u8]) -> String {
    let payload = event
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find_map(data_payload);
    let v = payload.and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok());
    let error = v.as_ref().and_then(|v| v.get("error"));
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("error");
    match error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
    {
        Some(message) => format!("the upstream sent an error event ({kind}: {message})"),
        None => format!("the upstream sent an error event ({kind})"),
    }
}

/// The payload of a `data:` line.
fn data_payload(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"data:")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// `text` without its trailing whitespace, and that whitespace.
pub fn split_trailing_whitespace(text: &str) -> (&str, &str) {
    let trimmed = text.trim_end();
    (trimmed, &text[trimmed.len()..])
}

/// Where the seam ends in `new`: the end of the first occurrence of the
/// longest tail of `sent` (at most [`SEAM_TAIL`] bytes, starting at a word
/// boundary or [`SEAM_TAIL`] bytes back; at least [`MIN_SEAM`] bytes unless
/// `sent` is shorter), and that tail. `sent` has no trailing whitespace.
///
/// A tail shorter than [`FULL_SEAM`] (unless it is all of `sent`) is a seam
/// only when `complete` (the window is full, or the new stream ended) and
/// it occurs exactly once in `new`: early in the new output, a short tail
/// is as likely a recap of earlier text as the place the answer stopped.
pub fn find_seam<'a>(sent: &'a str, new: &str, complete: bool) -> Option<(usize, &'a str)> {
    if sent.is_empty() {
        return None;
    }
    let min = MIN_SEAM.min(sent.len());
    let mut first = sent.len().saturating_sub(SEAM_TAIL);
    while !sent.is_char_boundary(first) {
        first += 1;
    }
    let starts = std::iter::once(first).chain(
        sent.char_indices()
            .skip_while(|(i, _)| *i <= first)
            .filter(|(i, c)| {
                !c.is_whitespace()
                    && sent[..*i]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_whitespace)
            })
            .map(|(i, _)| i),
    );
    for s in starts {
        let tail = &sent[s..];
        if tail.len() < min {
            break;
        }
        let Some(i) = new.find(tail) else { continue };
        if tail.len() >= FULL_SEAM.min(sent.len()) {
            return Some((i + tail.len(), tail));
        }
        // The longest tail that appears is short: a shorter one would be
        // no surer.
        let once = !new[i + tail.len()..].contains(tail);
        return (complete && once).then_some((i + tail.len(), tail));
    }
    None
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
        Wire::OpenAi => {
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
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        Wire::Anthropic => {
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
            out.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        }
    }
    out.freeze()
}

/// The trailing comment of a continued stream.
pub fn trailing_comment(continued: u32, method: Method, deployment: &str) -> Bytes {
    Bytes::from(format!(
        ": lifeline continued={continued} method={} deployment={deployment}\n\n",
        method.label()
    ))
}

mod splice;
pub use splice::{Splice, Spliced};

#[cfg(test)]
mod tests;
