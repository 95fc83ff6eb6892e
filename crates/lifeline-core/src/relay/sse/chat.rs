//! OpenAI's chat completions stream grammar ([`super::Protocol::Chat`]).
//!
//! Events are single `data: {chunk}` lines (released line by line), ended
//! by `data: [DONE]`. Content: a non-empty `content`, reasoning
//! (`reasoning_content`, `reasoning`), `refusal`, a tool or function call,
//! audio. Finished: a `finish_reason` for every choice asked for (`n`). An
//! in-band error: a chunk that is an `{"error":…}` object (or an `event:
//! error` line). Usage: `usage.total_tokens` (the `include_usage` chunk).
//!
//! This is the hot path of every streamed chat request: one pass of a few
//! `memmem` finders over each chunk until the first content, then only the
//! search for `finish_reason` (and `total_tokens` when a key's charge is
//! to settle). Nothing here allocates, and no chunk is parsed but the one
//! that finishes a choice of a request with `n > 1`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{non_empty_string_after, total_tokens, Key, Scanner, MAX_CHOICES};

keys! {
    CONTENT = b"\"content\":";
    REASONING_CONTENT = b"\"reasoning_content\":";
    REASONING = b"\"reasoning\":";
    REFUSAL = b"\"refusal\":";
    FINISH_REASON = b"\"finish_reason\":";
    TOOL_CALLS = b"\"tool_calls\":[";
    FUNCTION_CALL = b"\"function_call\":{";
    AUDIO = b"\"audio\":{";
}

/// Whether a chunk carries the answer's start: text, reasoning (vLLM's and
/// DeepSeek's `reasoning_content`, others' `reasoning`: a model that reasons
/// for longer than the first-byte timeout is working, not stalled), a
/// refusal, a tool or function call, audio.
pub(super) fn has_content(p: &[u8]) -> bool {
    non_empty_string_after(p, &CONTENT)
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

impl Scanner {
    /// One chunk (a valid-looking JSON payload); always progress.
    pub(super) fn chat(&mut self, p: &[u8]) -> bool {
        self.events += 1;
        if !self.usage_or_error(p) {
            return true;
        }
        // After the first content only the end of the answer matters.
        if !self.content && has_content(p) {
            self.content = true;
        }
        self.finish_reason(p);
        true
    }

    /// What every OpenAI grammar reads first: the event's `usage` (when a
    /// charge is to settle), and whether it is an in-band error (`false`:
    /// it is, and says nothing else).
    pub(super) fn usage_or_error(&mut self, p: &[u8]) -> bool {
        if self.want_usage {
            if let Some(n) = total_tokens(p) {
                self.usage = Some(n);
            }
        }
        if p.starts_with(b"{\"error\"") {
            self.upstream_error = true;
            return false;
        }
        true
    }

    /// Notes a chunk's `finish_reason`s. With one choice, any finish ends
    /// the answer (found without parsing). With several, the answer ends
    /// when every choice has finished: the chunk that carries a finish (one
    /// per choice in a stream) is parsed to learn which choice it is.
    fn finish_reason(&mut self, p: &[u8]) {
        if self.finished || !non_empty_string_after(p, &FINISH_REASON) {
            return;
        }
        if self.choices == 1 {
            self.finished = true;
            return;
        }
        // A chunk that does not parse finishes nothing: the stream then
        // needs its `[DONE]` to count as complete.
        let Ok(chunk) = serde_json::from_slice::<FinishChunk<'_>>(p) else {
            return;
        };
        for c in chunk.choices {
            let reason = c.finish_reason.map_or("null", RawValue::get);
            if c.index < u64::from(MAX_CHOICES) && reason.len() > 2 && reason.starts_with('"') {
                self.finished_choices |= 1 << c.index;
            }
        }
        let all = u128::MAX >> (128 - self.choices);
        self.finished = self.finished_choices & all == all;
    }
}
