//! The [`Splice`]: a continuation stream fitted into the client's, in the
//! client's grammar (the start of a message dropped, the seam or replay
//! point found, the first stream's chunk id and block indexes kept, the
//! usage of the streams it replaced added).

use bytes::{Bytes, BytesMut};

use super::*;

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
