//! Anthropic's Messages API stream grammar ([`Protocol::Anthropic`]), and
//! the events Lifeline writes in it.
//!
//! Events are `event: name` + `data: {"type":"name",…}` pairs, released
//! whole: `message_start`, `content_block_start` / `_delta` / `_stop`,
//! `message_delta`, `message_stop`, with `ping` and `error` anywhere; no
//! `[DONE]`.
//!
//! - Content: a `text_delta` (or `thinking_delta`) with text, a `tool_use`
//!   block starting, an `input_json_delta`.
//! - Finished: a `message_delta` with its `stop_reason`; done:
//!   `message_stop`'s data, counted when its event ends (so the relay ends
//!   the stream only once the whole event went out).
//! - An in-band error: `event: error`, or data of `"type":"error"`.
//! - Keep-alives: `ping` events prove nothing, as `: ping` comments do not
//!   on OpenAI's wire: neither they nor bytes of them count as activity (the
//!   idle timer, the stall timer before commit, the stream's gaps), nor as
//!   an event.
//! - Usage: the prompt's tokens (`input_tokens`, which is only the uncached
//!   part, plus `cache_read_input_tokens` and
//!   `cache_creation_input_tokens`: what the prompt costs, as
//!   [`crate::translate::response`] counts them) and the output's, each the
//!   latest seen (`message_start` has them all, `message_delta` the
//!   cumulative `output_tokens`, sometimes the others).
//! - A `data: [DONE]` (which Anthropic does not send) ends the stream, as
//!   on OpenAI's wire.
//!
//! [`Protocol::Anthropic`]: crate::providers::stream::Protocol::Anthropic

use crate::providers::sse::{self, keys, last_integer, non_empty_string_after, Key};
use crate::providers::stream::{error_reason_of, GrammarState, Known, Said};

keys! {
    ERROR_TYPE = b"\"type\":\"error\"";
    TEXT = b"\"text\":";
    TEXT_DELTA = b"\"type\":\"text_delta\"";
    THINKING = b"\"thinking\":";
    THINKING_DELTA = b"\"type\":\"thinking_delta\"";
    TOOL_USE = b"\"type\":\"tool_use\"";
    INPUT_JSON_DELTA = b"\"type\":\"input_json_delta\"";
    MESSAGE_DELTA = b"\"type\":\"message_delta\"";
    MESSAGE_STOP_TYPE = b"\"type\":\"message_stop\"";
    STOP_REASON = b"\"stop_reason\":";
    USAGE = b"\"usage\":";
    INPUT_TOKENS = b"\"input_tokens\"";
    CACHE_READ = b"\"cache_read_input_tokens\"";
    CACHE_CREATION = b"\"cache_creation_input_tokens\"";
    OUTPUT_TOKENS = b"\"output_tokens\"";
}

/// Added when an Anthropic answer finished without `message_stop`: the
/// stream was released in whole events, so the client is on an event
/// boundary.
pub const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// The latest of each token count a stream reported.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tokens {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl Tokens {
    /// Saturating: the counts are the upstream's, and may be anything.
    fn total(self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation)
            .saturating_add(self.output)
    }
}

/// The tokens a whole Anthropic answer reports: `input_tokens` plus the
/// cache's reads and writes (the prompt) plus `output_tokens`; `None`
/// without `input_tokens`.
pub fn answer_tokens(p: &[u8]) -> Option<u64> {
    let n = |key: &Key| last_integer(p, key).unwrap_or(0);
    let input = last_integer(p, &INPUT_TOKENS)?;
    Some(
        input
            .saturating_add(n(&CACHE_READ))
            .saturating_add(n(&CACHE_CREATION))
            .saturating_add(n(&OUTPUT_TOKENS)),
    )
}

/// Whether a payload is a `ping` (`{"type": "ping"}`, spaces allowed).
fn is_ping(p: &[u8]) -> bool {
    let ty = || -> Option<&[u8]> {
        let rest = p.trim_ascii_start().strip_prefix(b"{")?;
        let rest = rest.trim_ascii_start().strip_prefix(b"\"type\"")?;
        Some(
            rest.trim_ascii_start()
                .strip_prefix(b":")?
                .trim_ascii_start(),
        )
    };
    ty().is_some_and(|t| t.starts_with(b"\"ping\""))
}

/// `data: [DONE]` ends the stream (any other payload is an event).
#[inline]
pub fn sentinel(p: &[u8]) -> Option<Said> {
    (p == b"[DONE]").then_some(Said::DONE)
}

/// An `event:` line: `ping` is a keep-alive (the scanner then takes the
/// whole event as one), `error` an in-band error.
#[inline]
pub fn event(name: &[u8]) -> Said {
    match name {
        b"ping" => Said::KEEPALIVE,
        b"error" => Said::ERROR,
        _ => Said::NOTHING,
    }
}

/// An event's data. What it says counts at the event's end.
#[inline]
pub fn data(p: &[u8], known: Known, st: &mut GrammarState, usage: &mut Option<u64>) -> Said {
    // A keep-alive event's data is a keep-alive too.
    if known.has(Said::KEEPALIVE) || is_ping(p) {
        return Said::KEEPALIVE;
    }
    if st.want_usage && USAGE.find(p).is_some() {
        if let Some(n) = tokens(p, &mut st.tokens) {
            *usage = Some(n);
        }
    }
    if ERROR_TYPE.find(p).is_some_and(|i| i < 4) {
        return Said::EVENT | Said::ERROR;
    }
    if !known.has(Said::CONTENT) {
        // A thinking model's reasoning is the answer's start too (as
        // `reasoning_content` is on OpenAI's wire).
        let has_content = (TEXT_DELTA.find(p).is_some() && non_empty_string_after(p, &TEXT))
            || (THINKING_DELTA.find(p).is_some() && non_empty_string_after(p, &THINKING))
            || TOOL_USE.find(p).is_some()
            || INPUT_JSON_DELTA.find(p).is_some();
        if has_content {
            return Said::EVENT | Said::CONTENT;
        }
    }
    if MESSAGE_DELTA.find(p).is_some() && non_empty_string_after(p, &STOP_REASON) {
        Said::EVENT | Said::FINISHED
    } else if MESSAGE_STOP_TYPE.find(p).is_some() {
        Said::EVENT | Said::DONE
    } else {
        Said::EVENT
    }
}

/// Takes the token counts an event with `usage` reports; the stream's
/// total so far, if it reported any.
fn tokens(p: &[u8], t: &mut Tokens) -> Option<u64> {
    let mut seen = false;
    for (key, n) in [
        (&INPUT_TOKENS, &mut t.input),
        (&CACHE_READ, &mut t.cache_read),
        (&CACHE_CREATION, &mut t.cache_creation),
        (&OUTPUT_TOKENS, &mut t.output),
    ] {
        if let Some(v) = last_integer(p, key) {
            *n = v;
            seen = true;
        }
    }
    seen.then(|| t.total())
}

/// Whether an event's data is an in-band error: `{"type":"error",…}`.
pub(super) fn is_error_payload(p: &[u8]) -> bool {
    p.starts_with(b"{\"type\":\"error\"") || p.starts_with(b"{\"type\": \"error\"")
}

/// Where the first error event in `lines` (complete SSE lines) starts: its
/// `event: error` line, or the start of the event whose data is an error.
pub fn error_event_start(lines: &[u8]) -> Option<usize> {
    sse::event_start(lines, |field| match field {
        Ok(name) => name == b"error",
        Err(p) => is_error_payload(p),
    })
}

/// Why an error event broke the stream: `error.type` and `error.message`.
pub fn error_reason(event: &[u8]) -> String {
    let v = sse::first_data(event);
    error_reason_of(v.as_ref().and_then(|v| v.get("error")))
}

/// The data of the `error` event that ends a broken stream.
pub fn error_body(message: &str) -> serde_json::Value {
    serde_json::json!({"type": "error", "error": {
        "type": "api_error",
        "message": message,
    }})
}
