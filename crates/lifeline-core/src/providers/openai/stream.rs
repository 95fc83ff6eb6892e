//! OpenAI's stream grammars ([`Protocol::Chat`], [`Protocol::Responses`],
//! [`Protocol::Generic`]), and the events Lifeline writes in them.
//!
//! - **Chat completions**: events are single `data: {chunk}` lines
//!   (released line by line), ended by `data: [DONE]`. Content: a
//!   non-empty `content`, reasoning (`reasoning_content`, `reasoning`),
//!   `refusal`, a tool or function call, audio. Finished: a
//!   `finish_reason` for every choice asked for (`n`). An in-band error: a
//!   chunk that is an `{"error":…}` object (or an `event: error` line).
//!   Usage: `usage.total_tokens` (the `include_usage` chunk).
//! - **Responses API**: events are `event: response.*` + `data: {…}`
//!   pairs, released whole, with no `[DONE]`. Content: a non-empty `delta`
//!   (text, function-call arguments, reasoning summaries) or anything the
//!   chat grammar counts. Done: `response.completed` or
//!   `response.incomplete`; an in-band error: `event: error` or
//!   `response.failed` (which also ends the stream). Usage:
//!   `response.completed`'s `usage.total_tokens`.
//! - **Generic** (image generation's partial images): released line by
//!   line like chat; content is any data line that is not an
//!   `{"error":…}` object, and a clean close is the end (no terminal event
//!   is required).
//!
//! This is the hot path of every streamed chat request: one pass of a few
//! `memmem` finders over each chunk until the first content, then only the
//! search for `finish_reason` (and `total_tokens` when a key's charge is
//! to settle). Nothing here allocates, and no chunk is parsed but the one
//! that finishes a choice of a request with `n > 1`.
//!
//! [`Protocol::Chat`]: crate::providers::stream::Protocol::Chat
//! [`Protocol::Responses`]: crate::providers::stream::Protocol::Responses
//! [`Protocol::Generic`]: crate::providers::stream::Protocol::Generic

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::providers::sse::{self, keys, non_empty_string_after};
use crate::providers::stream::{error_reason_of, GrammarState, Known, Said, MAX_CHOICES};

keys! {
    CONTENT_KEY = b"\"content\":";
    REASONING_CONTENT = b"\"reasoning_content\":";
    REASONING = b"\"reasoning\":";
    REFUSAL = b"\"refusal\":";
    FINISH_REASON = b"\"finish_reason\":";
    TOOL_CALLS = b"\"tool_calls\":[";
    FUNCTION_CALL = b"\"function_call\":{";
    AUDIO = b"\"audio\":{";
    DELTA = b"\"delta\":";
    RESPONSE_COMPLETED = b"\"type\":\"response.completed\"";
    TOTAL_TOKENS = b"\"total_tokens\"";
}

/// Added when a chat answer finished without `[DONE]`; the chat grammar
/// is released line by line, so it starts with a blank line that ends the
/// event the client may be inside.
pub const DONE_AFTER_LINE: &[u8] = b"\ndata: [DONE]\n\n";

/// The chat stream's terminal event.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// Whether a chunk carries the answer's start: text, reasoning (vLLM's and
/// DeepSeek's `reasoning_content`, others' `reasoning`: a model that reasons
/// for longer than the first-byte timeout is working, not stalled), a
/// refusal, a tool or function call, audio.
fn has_content(p: &[u8]) -> bool {
    non_empty_string_after(p, &CONTENT_KEY)
        || non_empty_string_after(p, &REASONING_CONTENT)
        || non_empty_string_after(p, &REASONING)
        || non_empty_string_after(p, &REFUSAL)
        || TOOL_CALLS.find(p).is_some()
        || FUNCTION_CALL.find(p).is_some()
        || AUDIO.find(p).is_some()
}

/// The parts of a chat chunk that say which choices finished.
#[derive(Deserialize)]
struct FinishChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<FinishChoice<'a>>,
}

#[derive(Deserialize)]
struct FinishChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

/// `data: [DONE]` ends the stream (any other payload is an event).
#[inline]
pub fn sentinel(p: &[u8]) -> Option<Said> {
    (p == b"[DONE]").then_some(Said::DONE)
}

/// An `event:` line of a line grammar (chat, generic): only `error` means
/// something.
#[inline]
pub fn line_event(name: &[u8]) -> Said {
    if name == b"error" {
        Said::ERROR
    } else {
        Said::NOTHING
    }
}

/// One chat chunk (a valid-looking JSON payload).
#[inline]
pub fn chat(p: &[u8], known: Known, st: &mut GrammarState, usage: &mut Option<u64>) -> Said {
    let mut said = usage_or_error(p, st, usage);
    if said.has(Said::ERROR) {
        return said;
    }
    // After the first content only the end of the answer matters.
    if !known.has(Said::CONTENT) && has_content(p) {
        said |= Said::CONTENT;
    }
    if !known.has(Said::FINISHED) && finish_reason(p, st) {
        said |= Said::FINISHED;
    }
    said
}

/// A Responses API `event:` line.
#[inline]
pub fn responses_event(name: &[u8]) -> Said {
    match name {
        b"error" => Said::ERROR,
        b"response.failed" => Said::ERROR | Said::DONE,
        b"response.completed" | b"response.incomplete" => Said::DONE,
        _ => Said::NOTHING,
    }
}

/// A Responses API event's data.
#[inline]
pub fn responses(p: &[u8], known: Known, st: &mut GrammarState, usage: &mut Option<u64>) -> Said {
    let mut said = usage_or_error(p, st, usage);
    if said.has(Said::ERROR) {
        return said;
    }
    if !known.has(Said::CONTENT) && (non_empty_string_after(p, &DELTA) || has_content(p)) {
        said |= Said::CONTENT;
    }
    if RESPONSE_COMPLETED.find(p).is_some() {
        said |= Said::DONE;
    }
    said
}

/// A data line of a generic stream: content unless it is an error.
#[inline]
pub fn generic(p: &[u8], st: &mut GrammarState, usage: &mut Option<u64>) -> Said {
    let said = usage_or_error(p, st, usage);
    if said.has(Said::ERROR) {
        said
    } else {
        said | Said::CONTENT
    }
}

/// What every OpenAI grammar reads first: the event's `usage` (when a
/// charge is to settle), and whether it is an in-band error (which says
/// nothing else).
#[inline]
fn usage_or_error(p: &[u8], st: &GrammarState, usage: &mut Option<u64>) -> Said {
    if st.want_usage {
        if let Some(n) = total_tokens(p) {
            *usage = Some(n);
        }
    }
    if is_error_payload(p) {
        Said::EVENT | Said::ERROR
    } else {
        Said::EVENT
    }
}

/// Whether a chunk's `finish_reason`s finish the answer. With one choice,
/// any finish does (found without parsing). With several, the answer ends
/// when every choice has finished: the chunk that carries a finish (one
/// per choice in a stream) is parsed to learn which choice it is.
#[inline]
fn finish_reason(p: &[u8], st: &mut GrammarState) -> bool {
    if !non_empty_string_after(p, &FINISH_REASON) {
        return false;
    }
    if st.choices == 1 {
        return true;
    }
    // A chunk that does not parse finishes nothing: the stream then
    // needs its `[DONE]` to count as complete.
    let Ok(chunk) = serde_json::from_slice::<FinishChunk<'_>>(p) else {
        return false;
    };
    for c in chunk.choices {
        let reason = c.finish_reason.map_or("null", RawValue::get);
        if c.index < u64::from(MAX_CHOICES) && reason.len() > 2 && reason.starts_with('"') {
            st.finished_choices |= 1 << c.index;
        }
    }
    let all = u128::MAX >> (128 - st.choices);
    st.finished_choices & all == all
}

/// `usage.total_tokens` in a JSON answer or event, found without parsing:
/// the last `"total_tokens"` key followed by `:` and an integer (`usage`
/// closes an answer).
// Forward, not reverse: memchr's forward search is vectorised, its reverse
// one is not (two-way, byte by byte), and this runs on every stream event:
// with `FinderRev` it cost about 500 instructions an event, a quarter of a
// 50-event stream's whole cost (callgrind, bench/instructions.sh).
pub fn total_tokens(p: &[u8]) -> Option<u64> {
    sse::last_integer(p, &TOTAL_TOKENS)
}

/// Whether an event's data is an in-band error: an `{"error":…}` object.
fn is_error_payload(p: &[u8]) -> bool {
    p.starts_with(b"{\"error\"")
}

/// Where the first error event in `lines` (complete SSE lines) starts: its
/// `event: error` line, or the start of the event whose data is an
/// `{"error":…}` object.
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

/// The data of the error event that ends a broken stream.
pub fn error_body(message: &str) -> serde_json::Value {
    serde_json::json!({"error": {
        "message": message,
        "type": "server_error",
        "code": "stream_interrupted",
        "param": null,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_tokens_is_read_from_usage_only() {
        let chat =
            br#"{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens": 12}}"#;
        assert_eq!(total_tokens(chat), Some(12));
        let quoted = br#"{"choices":[{"delta":{"content":"\"total_tokens\": 99"}}]}"#;
        assert_eq!(total_tokens(quoted), None);
        assert_eq!(total_tokens(br#"{"usage":null}"#), None);
        assert_eq!(total_tokens(br#"{"total_tokens":"x"}"#), None);
        // The last one counts (a usage object after text that looks like one).
        let two = br#"{"a":{"total_tokens":3},"usage":{"total_tokens":8}}"#;
        assert_eq!(total_tokens(two), Some(8));
    }
}
