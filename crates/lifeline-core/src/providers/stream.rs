//! The adapters' stream grammars, as the relay asks them.
//!
//! A [`Protocol`] is the grammar of a stream from a deployment speaking a
//! [`Wire`] for an [`Endpoint`]; each grammar is its adapter's
//! (`openai/stream.rs`: chat completions, the Responses API, generic
//! streams; `anthropic/stream.rs`: the Messages API). The relay's
//! scanner ([`crate::relay::Scanner`]) splits the stream into lines and
//! keeps the stream's state; for each `event:` line and each `data:`
//! payload it asks the grammar what it means, dispatched by a `match` on
//! the protocol (no trait object: this runs on every event), and gets a
//! [`Said`]: content, the answer's finish, the stream's end, an in-band
//! error, a keep-alive; and the usage it reports. What a grammar needs to remember
//! between events (the choices that finished, the latest token counts) is
//! its [`GrammarState`], which the scanner holds.
//!
//! The endings Lifeline writes in a client's grammar are here too: the
//! event that ends a broken stream ([`broken_event`]) and what an answer
//! that finished without its terminal event still needs
//! ([`Protocol::missing_end`]).

use bytes::Bytes;

use super::{anthropic, openai, Endpoint, Wire};

/// Which stream grammar a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Chat completions: `data: {chunk}` … `data: [DONE]`
    /// ([`openai::stream`]).
    Chat,
    /// Responses API: `event: response.*` … `response.completed`, no
    /// `[DONE]` ([`openai::stream`]).
    Responses,
    /// Any other stream (image generation): content is any data line, and a
    /// clean close is the end ([`openai::stream`]).
    Generic,
    /// Anthropic's Messages API: `event: message_start` …
    /// `content_block_*` … `message_delta` … `message_stop`, no `[DONE]`
    /// ([`anthropic::stream`]).
    Anthropic,
}

/// What one `event:` line or `data:` payload means: a set of
/// [`Said::CONTENT`], [`Said::FINISHED`], [`Said::DONE`] (the marks, which
/// the scanner counts when the event is released), [`Said::ERROR`],
/// [`Said::KEEPALIVE`] and [`Said::EVENT`]. One byte, returned in a
/// register: this is asked on every event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Said(u8);

impl Said {
    /// Nothing worth noting (an event name that says nothing).
    pub const NOTHING: Said = Said(0);
    /// Content (text, reasoning, a tool call, a refusal, audio) was seen.
    pub const CONTENT: Said = Said(1);
    /// The answer finished (every choice has its finish reason).
    pub const FINISHED: Said = Said(2);
    /// The stream's terminal event (`[DONE]`, `response.completed`,
    /// `message_stop`).
    pub const DONE: Said = Said(4);
    /// An in-band error (an error event, `response.failed`).
    pub const ERROR: Said = Said(8);
    /// A keep-alive (Anthropic's `ping`): no progress, not an event.
    pub const KEEPALIVE: Said = Said(16);
    /// A data event (counted: about one token each).
    pub const EVENT: Said = Said(32);

    /// Whether any of `s` is said.
    #[inline]
    pub const fn has(self, s: Said) -> bool {
        self.0 & s.0 != 0
    }

    /// The marks only ([`Self::CONTENT`], [`Self::FINISHED`],
    /// [`Self::DONE`]).
    #[inline]
    pub const fn marks(self) -> Said {
        Said(self.0 & 7)
    }

    /// These, less `s`.
    #[inline]
    pub const fn without(self, s: Said) -> Said {
        Said(self.0 & !s.0)
    }

    /// Only those of `s` said.
    #[inline]
    pub const fn only(self, s: Said) -> Said {
        Said(self.0 & s.0)
    }

    /// Whether nothing is said.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Said {
    type Output = Said;
    #[inline]
    fn bitor(self, rhs: Said) -> Said {
        Said(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Said {
    #[inline]
    fn bitor_assign(&mut self, rhs: Said) {
        self.0 |= rhs.0;
    }
}

/// What the scanner already knows, so that a grammar looks no further than
/// it must ([`Said::CONTENT`]: the first content was counted;
/// [`Said::FINISHED`]; [`Said::KEEPALIVE`]: the current event is a
/// keep-alive, so its data is one too).
pub type Known = Said;

/// What a grammar remembers between the events of one stream.
#[derive(Debug, Clone)]
pub struct GrammarState {
    /// Choices asked for (`n`); a chat answer is finished when all are.
    pub(super) choices: u32,
    /// Chat choices (by `index`) that have their `finish_reason`, when
    /// more than one was asked for.
    pub(super) finished_choices: u128,
    /// Whether to read `usage` at all (a key's token charge to settle).
    pub(super) want_usage: bool,
    /// Anthropic: the latest of each token count seen.
    pub(super) tokens: anthropic::stream::Tokens,
}

/// Most choices whose finish is tracked one by one.
pub const MAX_CHOICES: u32 = 128;

impl Default for GrammarState {
    fn default() -> Self {
        Self {
            choices: 1,
            finished_choices: 0,
            want_usage: true,
            tokens: anthropic::stream::Tokens::default(),
        }
    }
}

impl GrammarState {
    /// Expects `n` choices (the request's `n`).
    pub fn choices(&mut self, n: u32) {
        self.choices = n.clamp(1, MAX_CHOICES);
    }

    /// Whether to read `usage` from the events.
    pub fn want_usage(&mut self, want: bool) {
        self.want_usage = want;
    }
}

impl Protocol {
    /// The grammar of a stream from a deployment speaking `upstream` for
    /// `endpoint`.
    pub fn of(upstream: Wire, endpoint: Endpoint) -> Self {
        match (upstream, endpoint) {
            (Wire::Anthropic, _) => Self::Anthropic,
            (Wire::OpenAi, Endpoint::ChatCompletions | Endpoint::Messages) => Self::Chat,
            (Wire::OpenAi, Endpoint::Responses) => Self::Responses,
            (Wire::OpenAi, Endpoint::ImagesGenerations | Endpoint::Embeddings) => Self::Generic,
        }
    }

    /// Whether the grammar's events are `event:` + `data:` pairs, released
    /// whole: a stream relayed as is then always leaves the client between
    /// two events. In the line grammars (chat, generic), the client may have
    /// a `data:` line whose blank line has not come yet.
    pub fn whole_events(self) -> bool {
        matches!(self, Self::Responses | Self::Anthropic)
    }

    /// Whether the stream is a chat answer: one that may be continued after
    /// a break, and whose finish without its terminal event Lifeline can
    /// end ([`Self::missing_end`]).
    pub fn is_chat(self) -> bool {
        matches!(self, Self::Chat | Self::Anthropic)
    }

    /// Whether a clean close of the connection is the stream's end (no
    /// terminal event is required), and its events say nothing about its
    /// tokens.
    pub fn open_ended(self) -> bool {
        self == Self::Generic
    }

    /// What an `event:` line (its name) means.
    #[inline]
    pub fn event(self, name: &[u8]) -> Said {
        match self {
            Self::Chat | Self::Generic => openai::stream::line_event(name),
            Self::Responses => openai::stream::responses_event(name),
            Self::Anthropic => anthropic::stream::event(name),
        }
    }

    /// What a non-empty `data:` payload that looks like JSON (and is not a
    /// [`Self::sentinel`]) means; the tokens the stream reports it cost so
    /// far go to `usage`, if the event says (and `st` wants them).
    #[inline]
    pub fn data(
        self,
        p: &[u8],
        known: Known,
        st: &mut GrammarState,
        usage: &mut Option<u64>,
    ) -> Said {
        match self {
            Self::Chat => openai::stream::chat(p, known, st, usage),
            Self::Responses => openai::stream::responses(p, known, st, usage),
            Self::Generic => openai::stream::generic(p, st, usage),
            Self::Anthropic => anthropic::stream::data(p, known, st, usage),
        }
    }

    /// What a `data:` payload that is not a JSON event means, if the
    /// grammar has one (`[DONE]`); read before the payload's JSON is
    /// checked. `None`: the payload is an event (malformed if it is not
    /// JSON).
    #[inline]
    pub fn sentinel(self, p: &[u8]) -> Option<Said> {
        match self {
            Self::Chat | Self::Responses | Self::Generic => openai::stream::sentinel(p),
            Self::Anthropic => anthropic::stream::sentinel(p),
        }
    }

    /// Where the first in-band error event in `lines` (complete SSE lines
    /// of a stream in this grammar) starts.
    pub fn error_event_start(self, lines: &[u8]) -> Option<usize> {
        match self {
            Self::Anthropic => anthropic::stream::error_event_start(lines),
            _ => openai::stream::error_event_start(lines),
        }
    }

    /// Why an in-band error event broke the stream, for the logs and the
    /// client's final error event: the error's type and message, if it
    /// says.
    pub fn error_reason(self, event: &[u8]) -> String {
        match self {
            Self::Anthropic => anthropic::stream::error_reason(event),
            _ => openai::stream::error_reason(event),
        }
    }

    /// What the stream still needs when its answer finished but it ended
    /// without its terminal event, relayed as is (a chat grammar: see
    /// [`Self::is_chat`]). Chat's is released line by line, so its end
    /// starts with a blank line that ends the event the client may be
    /// inside.
    pub fn missing_end(self) -> Bytes {
        match self {
            Self::Anthropic => Bytes::from_static(anthropic::stream::MESSAGE_STOP),
            _ => Bytes::from_static(openai::stream::DONE_AFTER_LINE),
        }
    }
}

/// The tokens a whole answer in `wire`'s shape reports: OpenAI's
/// `usage.total_tokens`; Anthropic's prompt (`input_tokens` plus the
/// cache's reads and writes) and output tokens.
pub fn answer_tokens(wire: Wire, p: &[u8]) -> Option<u64> {
    match wire {
        Wire::OpenAi => openai::stream::total_tokens(p),
        Wire::Anthropic => anthropic::stream::answer_tokens(p),
    }
}

/// The event that ends a broken stream of a `client` speaking this wire,
/// saying `why`. `open`: the client may be inside an event (a line grammar
/// relayed as is), so a blank line first ends that one, which has its
/// whole `data:` line (the scanner never releases an `event:` line without
/// the line after it), and the error event is never merged into it. On an
/// event boundary no blank line is written (one would be harmless: an
/// event with neither name nor data is not dispatched).
pub fn broken_event(client: Wire, why: &str, open: bool) -> Bytes {
    let lead = if open { "\n" } else { "" };
    let message = format!("The upstream stream was interrupted: {why}. The answer is incomplete.");
    let body = match client {
        Wire::OpenAi => openai::stream::error_body(&message),
        Wire::Anthropic => anthropic::stream::error_body(&message),
    };
    Bytes::from(format!("{lead}event: error\ndata: {body}\n\n"))
}

/// "the upstream sent an error event (type: message)", from an error
/// object with `type` and `message` (both adapters nest their error
/// events' details so).
pub fn error_reason_of(error: Option<&serde_json::Value>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_tokens_read_each_wire() {
        let a = br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"\"input_tokens\":9"}],"usage":{"input_tokens":12,"output_tokens":5}}"#;
        assert_eq!(answer_tokens(Wire::Anthropic, a), Some(17));
        let o = br#"{"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        assert_eq!(answer_tokens(Wire::OpenAi, o), Some(12));
        assert_eq!(answer_tokens(Wire::Anthropic, o), None);
    }

    #[test]
    fn an_error_event_is_found_where_its_event_starts() {
        let openai = b"data: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"m\",\"type\":\"server_error\"}}\n\n";
        let at = Protocol::Chat.error_event_start(openai).unwrap();
        assert_eq!(&openai[..at], b"data: {\"choices\":[]}\n\n");
        assert_eq!(
            Protocol::Chat.error_reason(&openai[at..]),
            "the upstream sent an error event (server_error: m)"
        );
        let anthropic = b"event: ping\ndata: {\"type\":\"ping\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let at = Protocol::Anthropic.error_event_start(anthropic).unwrap();
        assert!(anthropic[at..].starts_with(b"event: error\n"));
        assert!(Protocol::Anthropic
            .error_reason(&anthropic[at..])
            .contains("overloaded_error"));
        assert_eq!(
            Protocol::Chat.error_event_start(b"data: {\"choices\":[]}\n\n"),
            None
        );
    }
}
