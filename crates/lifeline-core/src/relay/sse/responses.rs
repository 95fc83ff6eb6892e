//! OpenAI's Responses API stream grammar ([`super::Protocol::Responses`]).
//!
//! Events are `event: response.*` + `data: {…}` pairs, released whole, with
//! no `[DONE]`. Content: a non-empty `delta` (text, function-call
//! arguments, reasoning summaries) or anything the chat grammar counts.
//! Done: `response.completed` or `response.incomplete`; an in-band error:
//! `event: error` or `response.failed` (which also ends the stream). Usage:
//! `response.completed`'s `usage.total_tokens`.

use super::{chat, non_empty_string_after, Key, Scanner, CONTENT, DONE};

keys! {
    DELTA = b"\"delta\":";
    RESPONSE_COMPLETED = b"\"type\":\"response.completed\"";
}

impl Scanner {
    /// An `event:` line; always progress.
    pub(super) fn responses_event(&mut self, name: &[u8]) -> bool {
        match name {
            b"error" => self.upstream_error = true,
            b"response.failed" => {
                self.upstream_error = true;
                self.pending |= DONE;
            }
            b"response.completed" | b"response.incomplete" => self.pending |= DONE,
            _ => {}
        }
        true
    }

    /// An event's data; always progress. What it says counts at the
    /// event's end.
    pub(super) fn responses(&mut self, p: &[u8]) -> bool {
        self.events += 1;
        if !self.usage_or_error(p) {
            return true;
        }
        if !self.content && (non_empty_string_after(p, &DELTA) || chat::has_content(p)) {
            self.pending |= CONTENT;
        }
        if RESPONSE_COMPLETED.find(p).is_some() {
            self.pending |= DONE;
        }
        true
    }
}
