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
//!   [`SEAM_WINDOW`] bytes; [`Method::Replay`]: the new output must begin
//!   with exactly the text already sent, compared chunk by chunk);
//! - the whitespace the prefill left out ([`Method::Prefill`]: a prefill
//!   must not end with whitespace) is not sent twice;
//! - every forwarded chunk gets the first stream's `id` (SDKs accumulate a
//!   stream's chunks by id): the only per-chunk rewrite, and only on
//!   continued streams;
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
}

/// The future a [`Resume`] returns: itself back (for the next break), and
/// the new stream, or `None` when nothing could continue the stream.
pub type Resuming = Pin<Box<dyn Future<Output = (Box<dyn Resume>, Option<Resumed>)> + Send>>;

/// Runs continuation attempts for one client stream (implemented by the
/// attempt side, which owns picking, budgets and deadlines).
pub trait Resume: Send {
    /// A continuation attempt for `ask`.
    fn resume(self: Box<Self>, ask: Ask) -> Resuming;
}

/// What the client was sent, learnt from its bytes at a break.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// The first chunk's `id` (a JSON string).
    pub id: Option<String>,
    /// The text of `choices[0].delta.content`, concatenated.
    pub text: String,
    /// A tool call (or legacy function call) started: not continued.
    pub tool_call: bool,
    /// The answer finished (a `finish_reason`) or failed (an error event):
    /// nothing to continue.
    pub ended: bool,
    /// Whether the bytes end on an event boundary (a blank line).
    pub at_boundary: bool,
}

impl Sent {
    /// Parses the chat chunks the client received.
    pub fn parse(chunks: &[Bytes]) -> Self {
        let mut all = BytesMut::new();
        for c in chunks {
            all.extend_from_slice(c);
        }
        let mut sent = Sent {
            at_boundary: all.ends_with(b"\n\n") || all.ends_with(b"\n\r\n") || all.is_empty(),
            ..Sent::default()
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
            if v.get("error").is_some() {
                sent.ended = true;
            }
            if sent.id.is_none() {
                sent.id = v.get("id").and_then(|i| i.as_str()).map(str::to_owned);
            }
            let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
                continue;
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
                if let Some(t) = delta.get("content").and_then(|t| t.as_str()) {
                    sent.text.push_str(t);
                }
            }
        }
        sent
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
pub fn find_seam<'a>(sent: &'a str, new: &str) -> Option<(usize, &'a str)> {
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
        if let Some(i) = new.find(tail) {
            return Some((i + tail.len(), tail));
        }
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

/// Filters a continuation stream's events into the client's stream.
pub struct Splice {
    method: Method,
    id: Option<serde_json::Value>,
    /// The text sent: whole (replay) or without its trailing whitespace.
    sent: Arc<str>,
    /// The trailing whitespace already sent, not to be sent again.
    ws: String,
    state: State,
    /// The trailing comment, sent before `data: [DONE]`.
    comment: Bytes,
    seam: Option<String>,
}

impl Splice {
    /// A filter for a stream continuing `sent` by `method`; `id` is the
    /// first stream's chunk id; `comment` the trailing comment.
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
            method,
            id: sent.id.clone().map(serde_json::Value::String),
            sent: text.into(),
            ws: ws.to_owned(),
            state,
            comment,
            seam: None,
        }
    }

    /// The trailing comment.
    pub fn comment(&self) -> Bytes {
        self.comment.clone()
    }

    /// Filters complete SSE lines of the new stream.
    pub fn feed(&mut self, lines: &[u8]) -> Spliced {
        let mut out = BytesMut::new();
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if bare.is_empty() {
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
                return self.misfit("the new stream sent a chunk that is not JSON");
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

    /// One chunk of the new stream.
    fn event(&mut self, mut v: serde_json::Value, out: &mut BytesMut) -> Result<(), &'static str> {
        if let (Some(id), Some(slot)) = (&self.id, v.get_mut("id")) {
            *slot = id.clone();
        }
        let (text, other) = chunk_parts(&mut v);
        match &mut self.state {
            State::Passing => {
                if text.is_some() || other {
                    emit(out, &v);
                }
            }
            State::Whitespace(_) => self.skip_whitespace(v, text, other, out),
            State::Matching(at) => {
                if other {
                    return Err("a tool call or the end of the answer before the replay point");
                }
                let Some(t) = text else { return Ok(()) };
                let rest = &self.sent[*at..];
                if rest.starts_with(t.as_str()) {
                    *at += t.len();
                    if *at == self.sent.len() {
                        self.seam = Some(format!("replayed {} bytes", self.sent.len()));
                        self.state = State::Passing;
                    }
                } else if let Some(after) = t.strip_prefix(rest) {
                    self.seam = Some(format!("replayed {} bytes", self.sent.len()));
                    set_content(&mut v, after);
                    emit(out, &v);
                    self.state = State::Passing;
                } else {
                    return Err("the replayed text differs from what was sent");
                }
            }
            State::Seeking { text: seen, held } => {
                if other {
                    return Err("a tool call or the end of the answer before the seam");
                }
                let Some(t) = text else { return Ok(()) };
                held.push((v, seen.len()));
                seen.push_str(&t);
                if let Some((end, tail)) = find_seam(&self.sent, seen) {
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
                        set_content(&mut chunk, &seen[from..stop]);
                        let piece = seen[from..stop].to_owned();
                        self.skip_whitespace(chunk, Some(piece), false, out);
                    }
                } else if seen.len() > SEAM_WINDOW {
                    return Err("no seam in the window");
                }
            }
        }
        Ok(())
    }

    /// Drops the leading whitespace of the new output that the client
    /// already has, then relays.
    fn skip_whitespace(
        &mut self,
        mut v: serde_json::Value,
        text: Option<String>,
        other: bool,
        out: &mut BytesMut,
    ) {
        let State::Whitespace(at) = &mut self.state else {
            emit(out, &v);
            return;
        };
        let Some(t) = text else {
            // A role chunk says nothing; anything else ends the skipping.
            if other {
                self.state = State::Passing;
                emit(out, &v);
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
        let rest = &t[common..];
        if !rest.is_empty() || *at >= self.ws.len() {
            self.state = State::Passing;
        }
        if rest.len() != t.len() {
            set_content(&mut v, rest);
        }
        if !rest.is_empty() || other {
            emit(out, &v);
        }
    }
}

/// A chunk's text (`choices[0].delta.content`, when non-empty) and whether
/// it carries anything else that matters (a tool call, a finish, usage,
/// another choice); the `role` of a first chunk is removed.
fn chunk_parts(v: &mut serde_json::Value) -> (Option<String>, bool) {
    let usage = v.get("usage").is_some_and(|u| !u.is_null());
    let Some(choices) = v.get_mut("choices").and_then(|c| c.as_array_mut()) else {
        return (None, true);
    };
    let mut other = usage || choices.len() > 1;
    let mut text = None;
    if let Some(c) = choices.first_mut() {
        if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
            other = true;
        }
        if let Some(delta) = c.get_mut("delta").and_then(|d| d.as_object_mut()) {
            delta.remove("role");
            if delta.get("tool_calls").is_some_and(|t| !t.is_null())
                || delta.get("function_call").is_some_and(|t| !t.is_null())
            {
                other = true;
            }
            text = delta
                .get("content")
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
        }
    }
    (text, other)
}

fn set_content(v: &mut serde_json::Value, text: &str) {
    if let Some(delta) = v.pointer_mut("/choices/0/delta") {
        if let Some(o) = delta.as_object_mut() {
            o.insert("content".into(), serde_json::Value::String(text.into()));
        }
    }
}

fn emit(out: &mut BytesMut, v: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
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
