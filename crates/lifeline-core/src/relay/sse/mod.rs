//! Just enough SSE parsing to relay a stream honestly.
//!
//! The relay forwards upstream bytes as they are; this scanner only looks at
//! complete lines to learn four things: whether content has started (until
//! then a failure can still move to another deployment), whether the stream
//! finished, whether a chunk is malformed (its JSON does not parse; it is
//! then never forwarded, since it would crash the client's SDK), and how
//! many chunks carried content. What a line means is its grammar's, one
//! file each behind [`Protocol`]: [`chat`] (chat completions), [`responses`]
//! (the Responses API), [`anthropic`] (Anthropic's Messages API) and
//! [`generic`] (any other stream). This module is what they share: the line
//! splitter, and what it releases.
//!
//! Only bytes a client's SSE parser can stop after are released:
//!
//! - **line grammars** (chat completions, generic streams: every event is
//!   one `data:` line) release every complete line, but hold an `event:`
//!   line until the line after it has ended, so a client never gets an
//!   event name without its data;
//! - **event grammars** (the Responses API and Anthropic's, whose events
//!   are `event:` + `data:` pairs: [`Protocol::whole_events`]) release whole
//!   events only, up to the last blank line. What an event says (content,
//!   the answer's finish, the stream's end) counts from its blank line,
//!   when it is released: the relay never ends a stream before its terminal
//!   event (`message_stop`, `response.completed`) went out whole.
//!
//! So an upstream that dies in the middle of an event leaves the client at
//! an event boundary (event grammars) or after a whole `data:` line (line
//! grammars), and Lifeline's own endings (its error event, a missing
//! terminal event) start a new event without making an empty one (see
//! [`crate::relay`]). A malformed line is caught before any of its event
//! leaves.
//!
//! Each byte is scanned for a line end once and copied at most once,
//! however the stream is split into frames: a line of several MiB (a
//! streamed base64 image) arriving in thousands of small frames costs as
//! much as the same line in one frame, and a frame that ends where an event
//! does (how providers write) is forwarded without a copy. Bytes of a line
//! that has not ended yet count as activity, unless the line is a comment
//! or belongs to a keep-alive event (`: ping`, Anthropic's `ping`: they
//! prove nothing).

use bytes::{Bytes, BytesMut};
use memchr::memmem;

/// A JSON key searched for in every event, with its searcher built once:
/// building a `memmem` searcher per call costs more than the search itself
/// on a short event.
type Key = std::sync::LazyLock<memmem::Finder<'static>>;

macro_rules! keys {
    ($($name:ident = $needle:expr;)*) => {
        $(static $name: Key = std::sync::LazyLock::new(|| ::memchr::memmem::Finder::new($needle));)*
    };
}

pub mod anthropic;
pub mod chat;
pub mod generic;
pub mod responses;

/// Most bytes held back while waiting for the end of a line or an event
/// (streamed partial images are base64 lines of several MiB).
const MAX_HELD: usize = 32 << 20;

/// Most choices whose finish is tracked one by one.
const MAX_CHOICES: u32 = 128;

/// What an event of an event grammar says, counted when the event ends.
const CONTENT: u8 = 1;
const FINISHED: u8 = 2;
const DONE: u8 = 4;

/// Which stream grammar the endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Chat completions: `data: {chunk}` … `data: [DONE]` ([`chat`]).
    Chat,
    /// Responses API: `event: response.*` … `response.completed`, no
    /// `[DONE]` ([`responses`]).
    Responses,
    /// Any other stream (image generation): content is any data line, and a
    /// clean close is the end ([`generic`]).
    Generic,
    /// Anthropic's Messages API: `event: message_start` …
    /// `content_block_*` … `message_delta` … `message_stop`, no `[DONE]`
    /// ([`anthropic`]).
    Anthropic,
}

impl Protocol {
    /// The grammar of a stream from a deployment speaking `upstream` for
    /// `endpoint`.
    pub fn of(upstream: crate::providers::Wire, endpoint: crate::providers::Endpoint) -> Self {
        use crate::providers::{Endpoint, Wire};
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
}

/// What one call to [`Scanner::feed`] found.
#[derive(Debug, Default)]
pub struct Feed {
    /// Bytes that may go to the client now (complete lines of a line
    /// grammar, whole events of an event grammar; all valid).
    pub forward: Bytes,
    /// Set when a line is malformed; nothing from it (or its event) on is
    /// forwarded.
    pub bad: Option<String>,
    /// The upstream is progressing: a `data:` or `event:` line went by, or
    /// bytes of a line that has not ended yet arrived (comments, blank lines
    /// and keep-alive events do not count: a keep-alive does not prove the
    /// answer is progressing).
    pub activity: bool,
}

impl Feed {
    fn bad(forward: Bytes, why: String, activity: bool) -> Self {
        Self {
            forward,
            bad: Some(why),
            activity,
        }
    }
}

/// What one line was, for [`Scanner::feed`].
#[derive(Clone, Copy)]
struct Seen {
    /// A `data:` or `event:` line that is not a keep-alive.
    activity: bool,
    /// The bytes up to the end of this line may be released.
    boundary: bool,
}

/// What the lines of one frame gave.
struct Lines {
    /// Where the bytes that may be released end.
    release: usize,
    activity: bool,
    bad: Option<String>,
}

/// Incremental SSE line scanner.
#[derive(Debug)]
pub struct Scanner {
    protocol: Protocol,
    /// Bytes not released yet: lines already read (an event of an event
    /// grammar whose blank line has not come, or an `event:` line of a line
    /// grammar), then the current line, not yet ended.
    carry: BytesMut,
    /// How much of `carry` has been read (whole lines).
    scanned: usize,
    /// What the current event (of an event grammar) said, counted when it
    /// ends ([`CONTENT`], [`FINISHED`], [`DONE`]).
    pending: u8,
    /// The current event is a keep-alive (Anthropic's `event: ping`).
    ping: bool,
    /// Choices asked for (`n`); the answer is finished when all are.
    choices: u32,
    /// Chat choices (by `index`) that have their `finish_reason`, when more
    /// than one was asked for.
    finished_choices: u128,
    /// `[DONE]` or a terminal event was seen (and released).
    pub done: bool,
    /// Every choice has its `finish_reason` (the answer is complete; `[DONE]`
    /// may follow, and the usage chunk before it).
    pub finished: bool,
    /// Some content (text, tool call, refusal) was seen.
    pub content: bool,
    /// The upstream sent an error event (or `response.failed`).
    pub upstream_error: bool,
    /// Data events seen, keep-alives aside (for logs, and as the token count
    /// of a stream that reports no `usage`: providers send about one token
    /// per chunk).
    pub events: u64,
    /// The tokens the stream reports it cost: `usage.total_tokens` of the
    /// last event that carried one (the usage chunk of
    /// `stream_options.include_usage`, the Responses API's
    /// `response.completed`), or Anthropic's prompt and output tokens.
    pub usage: Option<u64>,
    /// Whether to look for `usage` at all: only a request with a key's
    /// token charge to settle needs it (see [`Scanner::usage`]).
    want_usage: bool,
    /// Anthropic: the latest of each token count seen
    /// ([`anthropic::Tokens`]).
    tokens: anthropic::Tokens,
    /// Bytes scanned for line ends plus bytes copied.
    #[cfg(test)]
    work: usize,
}

impl Scanner {
    /// A scanner for `protocol`, for one choice.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            carry: BytesMut::new(),
            scanned: 0,
            pending: 0,
            ping: false,
            choices: 1,
            finished_choices: 0,
            done: false,
            finished: false,
            content: false,
            upstream_error: false,
            events: 0,
            usage: None,
            want_usage: true,
            tokens: anthropic::Tokens::default(),
            #[cfg(test)]
            work: 0,
        }
    }

    /// Whether to read `usage` from the events (default yes). Off for a
    /// request with no token charge to settle: the search runs on every
    /// event, and nothing would read what it finds.
    pub fn usage(mut self, want: bool) -> Self {
        self.want_usage = want;
        self
    }

    /// Expects `n` choices (the request's `n`): a chat stream is finished
    /// only when each of them has its `finish_reason`.
    pub fn choices(mut self, n: u32) -> Self {
        self.choices = n.clamp(1, MAX_CHOICES);
        self
    }

    /// The stream grammar.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the stream may be committed to the client: content started,
    /// or the stream already finished.
    pub fn committable(&self) -> bool {
        self.content || self.done || self.finished
    }

    /// Scans `data`; returns what may be forwarded.
    pub fn feed(&mut self, data: Bytes) -> Feed {
        // Only the new bytes are scanned: the carried lines were read
        // already, and the last carried one has not ended.
        let last = memchr::memrchr(b'\n', &data);
        #[cfg(test)]
        {
            self.work += data.len() - last.unwrap_or(0);
        }
        let Some(last) = last else {
            if data.is_empty() {
                return Feed::default();
            }
            if self.carry.len() + data.len() > MAX_HELD {
                return Feed::bad(Bytes::new(), too_long(), false);
            }
            self.carry.extend_from_slice(&data);
            #[cfg(test)]
            {
                self.work += data.len();
            }
            return Feed {
                activity: self.partial_activity(),
                ..Feed::default()
            };
        };
        let end = last + 1;
        let (forward, lines) = if self.carry.is_empty() {
            // Fast path: nothing carried over, which is how providers write
            // events (a frame ends on a line end). No copy at all when the
            // frame ends where an event does.
            let lines = self.lines(&data[..end], 0, 0);
            if lines.bad.is_none() && lines.release < end {
                self.carry.extend_from_slice(&data[lines.release..end]);
                #[cfg(test)]
                {
                    self.work += end - lines.release;
                }
            }
            (data.slice(..lines.release), lines)
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            let carried = carry.len();
            carry.extend_from_slice(&data[..end]);
            #[cfg(test)]
            {
                self.work += end;
            }
            // The first unread line began in the carried bytes; its end is
            // in the new ones.
            let lines = self.lines(&carry, self.scanned, carried);
            let forward = if lines.release == 0 {
                Bytes::new()
            } else {
                carry.split_to(lines.release).freeze()
            };
            self.carry = carry;
            (forward, lines)
        };
        if let Some(why) = lines.bad {
            return Feed::bad(forward, why, lines.activity);
        }
        self.scanned = self.carry.len();
        let mut activity = lines.activity;
        if end < data.len() {
            self.carry.extend_from_slice(&data[end..]);
            #[cfg(test)]
            {
                self.work += data.len() - end;
            }
            activity |= self.partial_activity();
        }
        if self.carry.len() > MAX_HELD {
            return Feed::bad(forward, too_long(), activity);
        }
        Feed {
            forward,
            bad: None,
            activity,
        }
    }

    /// Reads the lines of `buf` from `start` (a line start; `from`: where
    /// its end may be), which ends with a line end.
    fn lines(&mut self, buf: &[u8], mut start: usize, mut from: usize) -> Lines {
        let mut out = Lines {
            release: 0,
            activity: false,
            bad: None,
        };
        while start < buf.len() {
            let nl = memchr::memchr(b'\n', &buf[from..]).map_or(buf.len(), |i| from + i + 1);
            #[cfg(test)]
            {
                self.work += nl - from;
            }
            match self.line(&buf[start..nl]) {
                Ok(seen) => {
                    out.activity |= seen.activity;
                    if seen.boundary {
                        out.release = nl;
                    }
                }
                Err(why) => {
                    out.bad = Some(why);
                    break;
                }
            }
            start = nl;
            from = nl;
        }
        out
    }

    /// Whether the line still being written proves progress: not a
    /// comment, nor part of a keep-alive event.
    fn partial_activity(&self) -> bool {
        let partial = &self.carry[self.scanned..];
        !partial.is_empty() && !partial.starts_with(b":") && !self.ping
    }

    /// Scans one line, and hands its field to the grammar.
    fn line(&mut self, line: &[u8]) -> Result<Seen, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let whole = self.protocol.whole_events();
        if let Some(rest) = line.strip_prefix(b"data:") {
            let payload = rest.strip_prefix(b" ").unwrap_or(rest);
            if payload == b"[DONE]" {
                self.note(DONE);
            } else if !payload.is_empty() {
                if !looks_like_json(payload) {
                    return Err("a malformed chunk (invalid JSON)".into());
                }
                let activity = match self.protocol {
                    Protocol::Chat => self.chat(payload),
                    Protocol::Responses => self.responses(payload),
                    Protocol::Anthropic => self.anthropic(payload),
                    Protocol::Generic => self.generic(payload),
                };
                return Ok(Seen {
                    activity,
                    boundary: !whole,
                });
            }
            return Ok(Seen {
                activity: true,
                boundary: !whole,
            });
        }
        if let Some(rest) = line.strip_prefix(b"event:") {
            let name = rest.strip_prefix(b" ").unwrap_or(rest);
            let activity = match self.protocol {
                Protocol::Responses => self.responses_event(name),
                Protocol::Anthropic => self.anthropic_event(name),
                Protocol::Chat | Protocol::Generic => {
                    if name == b"error" {
                        self.upstream_error = true;
                    }
                    true
                }
            };
            return Ok(Seen {
                activity,
                boundary: false,
            });
        }
        if whole && line.is_empty() {
            self.event_end();
            return Ok(Seen {
                activity: false,
                boundary: true,
            });
        }
        // A comment, an `id:` or `retry:` field, a blank line of a line
        // grammar.
        Ok(Seen {
            activity: false,
            boundary: !whole,
        })
    }

    /// Notes what an event says: at once in a line grammar, at the event's
    /// end in an event grammar.
    fn note(&mut self, what: u8) {
        if self.protocol.whole_events() {
            self.pending |= what;
        } else {
            self.count(what);
        }
    }

    /// The blank line that ends an event of an event grammar.
    fn event_end(&mut self) {
        self.ping = false;
        if self.pending != 0 {
            let what = std::mem::take(&mut self.pending);
            self.count(what);
        }
    }

    fn count(&mut self, what: u8) {
        self.content |= what & CONTENT != 0;
        self.finished |= what & FINISHED != 0;
        self.done |= what & DONE != 0;
    }
}

fn too_long() -> String {
    "an SSE line or event longer than 32 MiB".into()
}

/// The last integer value of `key` in `p` (see [`total_tokens`]).
fn last_integer(p: &[u8], key: &Key) -> Option<u64> {
    let len = key.needle().len();
    let mut found = None;
    let mut from = 0;
    while let Some(i) = key.find(&p[from..]) {
        from += i + len;
        if let Some(n) = integer_after_colon(&p[from..]) {
            found = Some(n);
        }
    }
    found
}

/// A cheap check of one event's JSON: it opens and closes as an object or
/// array.
///
/// Chunks break in practice by truncation (a cut connection, a proxy's
/// buffer limit), which this catches in constant time. Parsing or even
/// walking every byte of every event would be the relay's largest cost (a
/// typical answer is 50 events), so the relay checks the ends and leaves
/// grammar to the provider.
fn looks_like_json(p: &[u8]) -> bool {
    let p = p.trim_ascii();
    matches!(
        (p.first(), p.last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    )
}

/// `"total_tokens"`, searched from the end: `usage` closes an answer.
// Forward, not reverse: memchr's forward search is vectorised, its reverse
// one is not (two-way, byte by byte), and this runs on every stream event:
// with `FinderRev` it cost about 500 instructions an event, a quarter of a
// 50-event stream's whole cost (callgrind, bench/instructions.sh).
static TOTAL_TOKENS: Key = std::sync::LazyLock::new(|| memmem::Finder::new(b"\"total_tokens\""));

/// The tokens a whole answer in `wire`'s shape reports: OpenAI's
/// `usage.total_tokens`; Anthropic's prompt (`input_tokens` plus the
/// cache's reads and writes) and output tokens ([`anthropic`]).
pub fn answer_tokens(wire: crate::providers::Wire, p: &[u8]) -> Option<u64> {
    match wire {
        crate::providers::Wire::OpenAi => total_tokens(p),
        crate::providers::Wire::Anthropic => anthropic::answer_tokens(p),
    }
}

/// `usage.total_tokens` in a JSON answer or event, found without parsing:
/// the last `"total_tokens"` key followed by `:` and an integer. Inside a
/// JSON string the quotes would be escaped, so text a model wrote cannot
/// pass for it.
pub fn total_tokens(p: &[u8]) -> Option<u64> {
    let len = TOTAL_TOKENS.needle().len();
    let mut found = None;
    let mut from = 0;
    while let Some(i) = TOTAL_TOKENS.find(&p[from..]) {
        from += i + len;
        if let Some(n) = integer_after_colon(&p[from..]) {
            found = Some(n);
        }
    }
    found
}

/// The integer after `:` (spaces allowed around it), if there is one.
fn integer_after_colon(rest: &[u8]) -> Option<u64> {
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Whether `key` is followed (after optional spaces) by a non-empty string.
fn non_empty_string_after(p: &[u8], key: &Key) -> bool {
    let key_len = key.needle().len();
    let mut from = 0;
    while let Some(i) = key.find(&p[from..]) {
        let mut j = from + i + key_len;
        while p.get(j) == Some(&b' ') {
            j += 1;
        }
        if p.get(j) == Some(&b'"') && p.get(j + 1).is_some_and(|c| *c != b'"') {
            return true;
        }
        from = j;
    }
    false
}

#[cfg(test)]
mod tests;
