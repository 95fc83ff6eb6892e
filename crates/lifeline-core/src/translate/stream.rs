//! A streamed chat answer from one wire's event grammar to the other's.
//!
//! The relay feeds a [`Transcoder`] the complete SSE lines of the upstream
//! stream (as [`crate::relay`]'s scanner releases them: whole events of
//! Anthropic's grammar, whole lines of OpenAI's chat grammar, several events
//! at once; the transcoder also takes one event's `event:` and `data:`
//! lines in different calls) and sends the client what comes back, which
//! is always whole events. Nothing here does I/O.
//!
//! **Anthropic → OpenAI** (an OpenAI client, an Anthropic deployment):
//! `message_start` becomes the first chunk (`delta: {role: "assistant",
//! content: ""}`, the chunk `id` is the message id); `text_delta` becomes
//! `delta.content`; a `tool_use` block opens `tool_calls[{index: k, id,
//! type: "function", function: {name, arguments: ""}}]`, `k` counting tool
//! calls (not block indexes), and its `input_json_delta`s are `arguments`
//! fragments; `message_delta` becomes the chunk carrying `finish_reason`
//! (`end_turn`, `stop_sequence`, `pause_turn` → `stop`; `max_tokens`,
//! `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`;
//! `refusal` → `content_filter`), followed when the client asked
//! (`stream_options.include_usage`) by the usage chunk (`choices: []`,
//! `prompt_tokens` = input + cache creation + cache read,
//! `prompt_tokens_details.cached_tokens` = cache read when there is one,
//! `completion_tokens` = the cumulative output); `message_stop` becomes
//! `data: [DONE]`. `ping` and events this code does not know are dropped
//! (Anthropic asks clients to tolerate new ones), and so are thinking
//! blocks (OpenAI's grammar has no place for them, and their signature
//! could not be replayed) and citations. An `error` event becomes
//! `data: {"error": {message, type, param: null, code: null}}` (the type is
//! Anthropic's, e.g. `overloaded_error`), which OpenAI's SDKs raise.
//!
//! **OpenAI → Anthropic** (an Anthropic client, an OpenAI-shaped
//! deployment): the first chunk becomes `message_start` (id `msg_` + the
//! chunk id; its `usage` says 0 input tokens: OpenAI tells them only in the
//! usage chunk at the end, so they go into `message_delta`'s usage, which
//! Anthropic's SDKs read as the final figure); the first text opens a text
//! block; a new tool-call index closes the open block and opens a `tool_use`
//! block (`input: {}`), whose argument fragments become `input_json_delta`s;
//! `refusal` text is text; `reasoning_content` is dropped. A
//! `finish_reason` closes the open block, and `message_delta` (`stop` →
//! `end_turn`, `length` → `max_tokens`, `tool_calls`/`function_call` →
//! `tool_use`, `content_filter` → `refusal`; `stop_sequence: null`, OpenAI
//! does not say which one matched) waits for the usage chunk or `[DONE]`,
//! whichever comes first, so that it carries the real `output_tokens` (and
//! `input_tokens`, `cache_read_input_tokens`) when the upstream reports them,
//! and the number of chunks that carried content otherwise; `message_stop`
//! follows it. `data: {"error": …}` becomes `event: error` with Anthropic's
//! body. Only the first choice is translated (Anthropic has one).
//!
//! [`Transcoder::finish`] is for an upstream that ended its answer without
//! its terminal event: it writes, once, whatever the client's grammar still
//! needs (the `finish_reason` chunk, the usage chunk and `[DONE]`; or
//! `content_block_stop`, `message_delta` and `message_stop`). After an
//! error event nothing more is written: the stream ends there.
//!
//! Cost: each upstream event is checked for UTF-8 once and parsed once,
//! into borrowed structs; strings (text, arguments, ids, names) are copied
//! as the raw JSON the upstream wrote, never unescaped and escaped again;
//! the output is written into one buffer that is reused from call to call,
//! so an event costs no allocation of its own (the buffers and the chunk
//! prefix are per stream).

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Wire;

mod from_anthropic;
mod from_openai;
#[cfg(test)]
mod tests;

/// What the client asked of the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// The OpenAI client asked for the usage chunk
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// Transcodes one stream from one wire's grammar to the other's.
#[derive(Debug)]
pub struct Transcoder {
    dir: Direction,
    /// The start of a line whose end has not come yet (the relay feeds
    /// whole lines, so this stays empty in practice).
    carry: Vec<u8>,
    /// The name of the current event (its `event:` line), until its `data:`
    /// line or the blank line that ends it.
    event: Vec<u8>,
    /// What the client gets, reused from call to call.
    out: BytesMut,
}

#[derive(Debug)]
enum Direction {
    /// The same grammar on both sides: lines pass through untouched.
    Same,
    /// Anthropic events in, OpenAI chunks out.
    ToOpenAi(from_anthropic::State),
    /// OpenAI chunks in, Anthropic events out.
    ToAnthropic(from_openai::State),
}

impl Transcoder {
    /// A transcoder from `from`'s stream grammar to `to`'s. With the same
    /// wire on both sides, [`feed`](Self::feed) returns its input and
    /// [`finish`](Self::finish) nothing.
    pub fn new(from: Wire, to: Wire, opts: StreamOptions) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let dir = match (from, to) {
            (Wire::Anthropic, Wire::OpenAi) => {
                Direction::ToOpenAi(from_anthropic::State::new(opts, created))
            }
            (Wire::OpenAi, Wire::Anthropic) => {
                Direction::ToAnthropic(from_openai::State::default())
            }
            _ => Direction::Same,
        };
        Self {
            dir,
            carry: Vec::new(),
            event: Vec::new(),
            out: BytesMut::new(),
        }
    }

    /// Sets the `created` (Unix seconds) of the OpenAI chunks written
    /// (default: when the transcoder was made), for byte-exact tests.
    #[cfg(test)]
    pub fn created(mut self, unix_secs: u64) -> Self {
        if let Direction::ToOpenAi(s) = &mut self.dir {
            s.created = unix_secs;
        }
        self
    }

    /// Complete SSE lines of the upstream stream (whole lines or whole
    /// events, possibly several, as `relay::Scanner::feed` forwards them) → the
    /// client's bytes (whole events). Err: an upstream event cannot be
    /// translated (its JSON does not parse, or it lacks what it must have);
    /// what the same call had translated before it is dropped too.
    pub fn feed(&mut self, lines: &[u8]) -> Result<Bytes, String> {
        if matches!(self.dir, Direction::Same) {
            return Ok(Bytes::copy_from_slice(lines));
        }
        match self.lines(lines) {
            Ok(()) => Ok(self.out.split().freeze()),
            Err(e) => {
                self.out.clear();
                Err(e)
            }
        }
    }

    /// The upstream finished its answer but ended without its terminal
    /// event: what the client's grammar still needs (`data: [DONE]`, or
    /// `content_block_stop`/`message_delta`/`message_stop`), once. Nothing
    /// after an error event or after the terminal event.
    pub fn finish(&mut self) -> Bytes {
        match &mut self.dir {
            Direction::Same => {}
            Direction::ToOpenAi(s) => s.finish(&mut self.out),
            Direction::ToAnthropic(s) => s.finish(&mut self.out),
        }
        self.out.split().freeze()
    }

    fn lines(&mut self, mut rest: &[u8]) -> Result<(), String> {
        if !self.carry.is_empty() {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.carry.extend_from_slice(rest);
                return Ok(());
            };
            let mut line = std::mem::take(&mut self.carry);
            line.extend_from_slice(&rest[..i]);
            let r = self.line(&line);
            line.clear();
            self.carry = line;
            r?;
            rest = &rest[i + 1..];
        }
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.line(&rest[..i])?;
            rest = &rest[i + 1..];
        }
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    /// One line, without its `\n`.
    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.event.clear();
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix(b"data:") {
            let data = rest.strip_prefix(b" ").unwrap_or(rest);
            // Each `data:` line is one event: neither API splits an event's
            // JSON over several lines.
            let r = if data.trim_ascii().is_empty() {
                Ok(())
            } else if let Ok(data) = std::str::from_utf8(data) {
                // Validated once here, the JSON parsers below read it as
                // `str`: no string of it is validated again.
                match &mut self.dir {
                    Direction::Same => Ok(()),
                    Direction::ToOpenAi(s) => s.event(&self.event, data, &mut self.out),
                    Direction::ToAnthropic(s) => s.event(data, &mut self.out),
                }
            } else {
                Err("an upstream event that is not UTF-8".into())
            };
            self.event.clear();
            return r;
        }
        if let Some(rest) = line.strip_prefix(b"event:") {
            let name = rest.strip_prefix(b" ").unwrap_or(rest);
            self.event.clear();
            self.event.extend_from_slice(name);
        }
        // Comments (`: ping`), `id:` and `retry:` lines say nothing to translate.
        Ok(())
    }
}

/// An error object as either API writes it in a stream: Anthropic's
/// `{type, message}`, OpenAI's `{message, type, param, code}`.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    code: Option<&'a RawValue>,
}

/// The text of a JSON string that names something (a type, a reason),
/// without its quotes; escapes are left as written (no name has any).
fn word(raw: Option<&RawValue>) -> Option<&str> {
    let s = raw?.get();
    s.strip_prefix('"')?.strip_suffix('"')
}

/// Whether `raw` is a JSON string.
fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}

/// Whether `raw` is a JSON string with something in it.
fn is_text(raw: &RawValue) -> bool {
    is_string(raw) && raw.get() != "\"\""
}

/// The JSON of `raw` when it is a string, else `"…"` of `fallback`.
fn string_or<'a>(raw: Option<&'a RawValue>, fallback: &'a str) -> &'a str {
    match raw {
        Some(r) if is_string(r) => r.get(),
        _ => fallback,
    }
}

/// Appends `parts` to `out`.
fn put(out: &mut BytesMut, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `n` in decimal.
fn put_u64(out: &mut BytesMut, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]));
}
