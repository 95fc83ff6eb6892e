//! Continuing a broken stream from another deployment: the relay's side.
//!
//! The relay (this layer) cannot run attempts: the attempt loop sits above
//! it. So the attempt side hands [`RelayBody`](super::RelayBody) a
//! [`Resume`] at commit, when continuation is on for the request; at a break
//! after content the relay asks it for a new upstream stream ([`Ask`] →
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

/// Where a [`Splice`] is.
enum State {
    /// Replay: the new text so far equals the text sent up to this byte.
    Matching(usize),
    /// Instruction: looking for the seam in the text held so far.
    Seeking {
        /// The new text so far.
        text: String,
        /// The held chunks, with where each one's text starts in `text`.
        held: Vec<(serde_json::Value, usize)>,
    },
    /// Skipping the whitespace already sent (from this byte of it on).
    Whitespace(usize),
    /// Relaying.
    Passing,
}

/// What a [`Splice`] made of some upstream lines.
#[derive(Debug, Default)]
pub struct Spliced {
    /// Bytes for the client.
    pub out: Bytes,
    /// The new stream does not fit: abandon it (nothing of it was sent).
    pub misfit: Option<String>,
    /// The seam was found (for the log): the tail of the text sent that the
    /// new output repeated, or how many bytes it replayed.
    pub seam: Option<String>,
}

/// What one event of the new stream carries.
#[derive(Debug, Default)]
struct Parts {
    /// Text of the answer (non-empty).
    text: Option<String>,
    /// Something that cannot come before the seam (a tool call, the end of
    /// the answer, usage, an error): a misfit there, relayed after it.
    hard: bool,
    /// Something else worth relaying after the seam (reasoning), dropped
    /// before it.
    soft: bool,
    /// The answer's terminal event (`message_stop`): the trailing comment
    /// goes before it.
    terminal: bool,
}

/// Filters a continuation stream's events, in the client's wire, into the
/// client's stream.
pub struct Splice {
    wire: Wire,
    method: Method,
    id: Option<serde_json::Value>,
    /// The text sent: whole (replay) or without its trailing whitespace.
    sent: Arc<str>,
    /// The trailing whitespace already sent, not to be sent again.
    ws: String,
    /// Anthropic: the client's open text block, which a new text block
    /// continues, if the client has one open.
    text_open: Option<i64>,
    /// Anthropic: the client's open block of another kind (closed before
    /// the new stream's first block).
    other_open: Option<i64>,
    /// Anthropic: the first index after the client's blocks.
    next_index: i64,
    /// Anthropic: how far the new stream's block indexes are moved, set by
    /// the first of its events that reaches the client.
    index_shift: Option<i64>,
    /// Anthropic: the new stream's blocks (by its own index) whose start
    /// the client has, or that continue the client's open text block.
    opened: Vec<i64>,
    /// Anthropic: the new stream's index of the text being held or read.
    text_raw: Option<i64>,
    state: State,
    /// The trailing comment, sent before the terminal event.
    comment: Bytes,
    seam: Option<String>,
    /// Output tokens the client had from the streams this one continues:
    /// added to its usage, which does not count them.
    before: u64,
}

impl Splice {
    /// A filter for a stream continuing `sent` by `method`; `comment` is
    /// the trailing comment.
    pub fn new(method: Method, sent: &Sent, comment: Bytes) -> Self {
        let (trimmed, ws) = split_trailing_whitespace(&sent.text);
        let (text, state) = match method {
            Method::Prefill => (trimmed, State::Whitespace(0)),
            Method::Instruction => (
                trimmed,
                State::Seeking {
                    text: String::new(),
                    held: Vec::new(),
                },
            ),
            Method::Replay => (sent.text.as_str(), State::Matching(0)),
        };
        Self {
            wire: sent.wire,
            method,
            id: sent.id.clone().map(serde_json::Value::String),
            sent: text.into(),
            ws: ws.to_owned(),
            text_open: sent.open_block.filter(|o| Some(*o) == sent.text_index),
            other_open: sent.open_block.filter(|o| Some(*o) != sent.text_index),
            next_index: sent.next_index,
            index_shift: None,
            opened: Vec::new(),
            text_raw: None,
            state,
            comment,
            seam: None,
            before: 0,
        }
    }

    /// The client had `n` output tokens from the streams this one
    /// continues: the usage this stream reports (OpenAI's usage chunk,
    /// Anthropic's `message_delta`) counts them too, so that the final
    /// usage is the whole answer's.
    #[must_use]
    pub fn before(mut self, n: u64) -> Self {
        self.before = n;
        self
    }

    /// Adds [`Self::before`] to a usage's output counts.
    fn add_before(&self, v: &mut serde_json::Value) {
        if self.before == 0 {
            return;
        }
        let keys: &[&str] = match self.wire {
            Wire::OpenAi => &["/usage/completion_tokens", "/usage/total_tokens"],
            Wire::Anthropic => &["/usage/output_tokens"],
        };
        for key in keys {
            if let Some(slot) = v.pointer_mut(key) {
                if let Some(n) = slot.as_u64() {
                    *slot = (n + self.before).into();
                }
            }
        }
    }

    /// Filters complete SSE lines of the new stream.
    pub fn feed(&mut self, lines: &[u8]) -> Spliced {
        let mut out = BytesMut::new();
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            // Blank lines end events (re-written whole below); `event:`
            // lines are written again from each event's `type`.
            if bare.is_empty() || bare.starts_with(b"event:") {
                continue;
            }
            let Some(payload) = data_payload(bare) else {
                // Comments and other fields pass once the seam is behind.
                if matches!(self.state, State::Passing | State::Whitespace(_)) {
                    out.extend_from_slice(bare);
                    out.extend_from_slice(b"\n\n");
                }
                continue;
            };
            if payload == b"[DONE]" {
                if !matches!(self.state, State::Passing | State::Whitespace(_)) {
                    return self.misfit("the new stream ended before the seam");
                }
                out.extend_from_slice(&self.comment);
                out.extend_from_slice(b"data: [DONE]\n\n");
                continue;
            }
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
                return self.misfit("the new stream sent an event that is not JSON");
            };
            if let Err(why) = self.event(v, &mut out) {
                return self.misfit(why);
            }
        }
        Spliced {
            out: out.freeze(),
            misfit: None,
            seam: self.seam.take(),
        }
    }

    fn misfit(&mut self, why: &str) -> Spliced {
        Spliced {
            out: Bytes::new(),
            misfit: Some(format!("{} did not fit: {why}", self.method.label())),
            seam: None,
        }
    }

    /// What an event carries, in the client's wire (with the first
    /// stream's id and block indexes).
    fn parts(&mut self, v: &mut serde_json::Value) -> Parts {
        if v.get("usage").is_some_and(serde_json::Value::is_object) {
            self.add_before(v);
        }
        match self.wire {
            Wire::OpenAi => {
                if let (Some(id), Some(slot)) = (&self.id, v.get_mut("id")) {
                    *slot = id.clone();
                }
                openai_parts(v)
            }
            Wire::Anthropic => self.anthropic_parts(v),
        }
    }

    fn anthropic_parts(&mut self, v: &mut serde_json::Value) -> Parts {
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

    fn set_text(&self, v: &mut serde_json::Value, text: &str) {
        let at = match self.wire {
            Wire::OpenAi => "/choices/0/delta",
            Wire::Anthropic => "/delta",
        };
        let key = match self.wire {
            Wire::OpenAi => "content",
            Wire::Anthropic => "text",
        };
        if let Some(o) = v.pointer_mut(at).and_then(|d| d.as_object_mut()) {
            o.insert(key.into(), serde_json::Value::String(text.into()));
        }
    }

    fn emit(&mut self, out: &mut BytesMut, v: &serde_json::Value, terminal: bool) {
        if terminal {
            out.extend_from_slice(&self.comment);
        }
        if self.wire == Wire::Anthropic {
            self.emit_anthropic(out, v.clone());
            return;
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(v.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    /// An Anthropic event, its block index moved to follow the client's
    /// blocks. The first event of the new stream to reach the client sets
    /// the move: text continues the client's open text block; anything
    /// else (reasoning, a tool call, or text when the client has no text
    /// block open) closes the client's open block and starts after it.
    fn emit_anthropic(&mut self, out: &mut BytesMut, mut v: serde_json::Value) {
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
                            t - i
                        }
                        open => {
                            if let Some(o) = open.or(self.other_open) {
                                write_event(
                                    out,
                                    &serde_json::json!({"type": "content_block_stop", "index": o}),
                                );
                            }
                            self.next_index - i
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
                    &serde_json::json!({"type": "content_block_start", "index": i + shift,
                        "content_block": {"type": "text", "text": ""}}),
                );
            }
            if let Some(slot) = v.get_mut("index") {
                *slot = (i + shift).into();
            }
        }
        write_event(out, &v);
    }

    /// One event of the new stream.
    fn event(&mut self, mut v: serde_json::Value, out: &mut BytesMut) -> Result<(), &'static str> {
        let parts = self.parts(&mut v);
        match &mut self.state {
            State::Passing => {
                if parts.text.is_some() || parts.hard || parts.soft {
                    self.emit(out, &v, parts.terminal);
                }
            }
            State::Whitespace(_) => self.skip_whitespace(v, parts, out),
            State::Matching(at) => {
                if parts.hard {
                    return Err("a tool call or the end of the answer before the replay point");
                }
                let Some(t) = parts.text else { return Ok(()) };
                let rest = &self.sent[*at..];
                if rest.starts_with(t.as_str()) {
                    *at += t.len();
                    if *at == self.sent.len() {
                        self.seam = Some(format!("replayed {} bytes", self.sent.len()));
                        self.state = State::Passing;
                    }
                } else if let Some(after) = t.strip_prefix(rest) {
                    self.seam = Some(format!("replayed {} bytes", self.sent.len()));
                    self.state = State::Passing;
                    self.set_text(&mut v, after);
                    self.emit(out, &v, false);
                } else {
                    return Err("the replayed text differs from what was sent");
                }
            }
            State::Seeking { text: seen, held } => {
                if parts.hard {
                    // The new output ends here: the window is complete.
                    if !self.seam_in_window(true, out) {
                        return Err("a tool call or the end of the answer before the seam");
                    }
                    self.skip_whitespace(v, parts, out);
                    return Ok(());
                }
                let Some(t) = parts.text else { return Ok(()) };
                held.push((v, seen.len()));
                seen.push_str(&t);
                let complete = seen.len() >= SEAM_WINDOW;
                if !self.seam_in_window(complete, out) && complete {
                    return Err("no seam in the window");
                }
            }
        }
        Ok(())
    }

    /// Looks for the seam in the text held (`complete`: no more of the
    /// window will come); if found, relays what follows it.
    fn seam_in_window(&mut self, complete: bool, out: &mut BytesMut) -> bool {
        let State::Seeking { text: seen, held } = &mut self.state else {
            return false;
        };
        let Some((end, tail)) = find_seam(&self.sent, seen, complete) else {
            return false;
        };
        self.seam = Some(tail.to_owned());
        let held = std::mem::take(held);
        let seen = std::mem::take(seen);
        self.state = State::Whitespace(0);
        for (i, (mut chunk, start)) in held.iter().cloned().enumerate() {
            let stop = held.get(i + 1).map_or(seen.len(), |(_, s)| *s);
            if stop <= end {
                continue;
            }
            let from = end.max(start);
            self.set_text(&mut chunk, &seen[from..stop]);
            let piece = Parts {
                text: Some(seen[from..stop].to_owned()),
                ..Parts::default()
            };
            self.skip_whitespace(chunk, piece, out);
        }
        true
    }

    /// Drops the leading whitespace of the new output that the client
    /// already has, then relays.
    fn skip_whitespace(&mut self, mut v: serde_json::Value, parts: Parts, out: &mut BytesMut) {
        let State::Whitespace(at) = &mut self.state else {
            self.emit(out, &v, parts.terminal);
            return;
        };
        let Some(t) = parts.text else {
            // A start of a message says nothing; anything else ends the
            // skipping.
            if parts.hard || parts.soft {
                self.state = State::Passing;
                self.emit(out, &v, parts.terminal);
            }
            return;
        };
        let ws = &self.ws[*at..];
        let common = t
            .char_indices()
            .zip(ws.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        *at += common;
        let done = *at >= self.ws.len();
        let rest = &t[common..];
        if !rest.is_empty() || done {
            self.state = State::Passing;
        }
        if rest.len() != t.len() {
            let rest = rest.to_owned();
            self.set_text(&mut v, &rest);
        }
        if !rest.is_empty() {
            self.emit(out, &v, false);
        }
    }
}

/// Writes an Anthropic event (`event:` line from its `type`).
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

/// An OpenAI chunk's parts; the `role` of a first chunk is removed.
fn openai_parts(v: &mut serde_json::Value) -> Parts {
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

#[cfg(test)]
mod tests;
