//! Anthropic's Messages API stream grammar ([`super::Protocol::Anthropic`]).
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

use super::{last_integer, non_empty_string_after, Key, Scanner, CONTENT, DONE, FINISHED};

keys! {
    ERROR_TYPE = b"\"type\":\"error\"";
    TEXT = b"\"text\":";
    TEXT_DELTA = b"\"type\":\"text_delta\"";
    THINKING = b"\"thinking\":";
    THINKING_DELTA = b"\"type\":\"thinking_delta\"";
    TOOL_USE = b"\"type\":\"tool_use\"";
    INPUT_JSON_DELTA = b"\"type\":\"input_json_delta\"";
    MESSAGE_DELTA = b"\"type\":\"message_delta\"";
    MESSAGE_STOP = b"\"type\":\"message_stop\"";
    STOP_REASON = b"\"stop_reason\":";
    USAGE = b"\"usage\":";
    INPUT_TOKENS = b"\"input_tokens\"";
    CACHE_READ = b"\"cache_read_input_tokens\"";
    CACHE_CREATION = b"\"cache_creation_input_tokens\"";
    OUTPUT_TOKENS = b"\"output_tokens\"";
}

/// The latest of each token count a stream reported.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tokens {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl Tokens {
    fn total(self) -> u64 {
        self.input + self.cache_read + self.cache_creation + self.output
    }
}

/// The tokens a whole Anthropic answer reports: `input_tokens` plus the
/// cache's reads and writes (the prompt) plus `output_tokens`; `None`
/// without `input_tokens`.
pub(super) fn answer_tokens(p: &[u8]) -> Option<u64> {
    let n = |key: &Key| last_integer(p, key).unwrap_or(0);
    let input = last_integer(p, &INPUT_TOKENS)?;
    Some(input + n(&CACHE_READ) + n(&CACHE_CREATION) + n(&OUTPUT_TOKENS))
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

impl Scanner {
    /// An `event:` line: progress unless it names a keep-alive.
    pub(super) fn anthropic_event(&mut self, name: &[u8]) -> bool {
        match name {
            b"ping" => {
                self.ping = true;
                return false;
            }
            b"error" => self.upstream_error = true,
            _ => {}
        }
        true
    }

    /// An event's data: progress unless it is a keep-alive. What it says
    /// counts at the event's end.
    pub(super) fn anthropic(&mut self, p: &[u8]) -> bool {
        if self.ping || is_ping(p) {
            return false;
        }
        self.events += 1;
        if self.want_usage && USAGE.find(p).is_some() {
            self.anthropic_usage(p);
        }
        if ERROR_TYPE.find(p).is_some_and(|i| i < 4) {
            self.upstream_error = true;
            return true;
        }
        if !self.content {
            // A thinking model's reasoning is the answer's start too (as
            // `reasoning_content` is on OpenAI's wire).
            let has_content = (TEXT_DELTA.find(p).is_some() && non_empty_string_after(p, &TEXT))
                || (THINKING_DELTA.find(p).is_some() && non_empty_string_after(p, &THINKING))
                || TOOL_USE.find(p).is_some()
                || INPUT_JSON_DELTA.find(p).is_some();
            if has_content {
                self.pending |= CONTENT;
                return true;
            }
        }
        if MESSAGE_DELTA.find(p).is_some() && non_empty_string_after(p, &STOP_REASON) {
            self.pending |= FINISHED;
        } else if MESSAGE_STOP.find(p).is_some() {
            self.pending |= DONE;
        }
        true
    }

    /// Takes the token counts an event with `usage` reports.
    fn anthropic_usage(&mut self, p: &[u8]) {
        let t = &mut self.tokens;
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
        if seen {
            self.usage = Some(self.tokens.total());
        }
    }
}

#[cfg(test)]
mod tests;
