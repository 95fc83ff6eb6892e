//! Just enough SSE parsing to relay a stream honestly.
//!
//! The relay forwards upstream bytes as they are; this scanner only looks at
//! complete lines to learn four things: whether content has started (until
//! then a failure can still move to another deployment), whether the stream
//! finished, whether a chunk is malformed (its JSON does not parse; it is
//! then never forwarded, since it would crash the client's SDK), and how
//! many chunks carried content. What a line means is its grammar's, which
//! belongs to the deployment's adapter ([`crate::providers::stream`]:
//! [`Protocol`] dispatches by `match` to `providers/openai/stream.rs` and
//! `providers/anthropic/stream.rs`); this module knows SSE only: the line
//! splitter, the bounds, the malformed-line check, and what it releases.
//! The stream's state (what was seen, what the grammar remembers) is the
//! scanner's.
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

pub use crate::providers::stream::Protocol;
use crate::providers::stream::{GrammarState, Said};
use bytes::{Bytes, BytesMut};

/// Most bytes held back while waiting for the end of a line or an event
/// (streamed partial images are base64 lines of several MiB).
const MAX_HELD: usize = 32 << 20;

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
    /// [`Protocol::whole_events`], asked once.
    whole: bool,
    /// Bytes not released yet: lines already read (an event of an event
    /// grammar whose blank line has not come, or an `event:` line of a line
    /// grammar), then the current line, not yet ended.
    carry: BytesMut,
    /// How much of `carry` has been read (whole lines).
    scanned: usize,
    /// What the current event (of an event grammar) said, counted when it
    /// ends ([`Said::marks`]).
    pending: Said,
    /// What the grammar need not look for again ([`Said::CONTENT`],
    /// [`Said::FINISHED`]: counted), and [`Said::KEEPALIVE`]: the current
    /// event is a keep-alive (Anthropic's `event: ping`).
    known: Said,
    /// What the grammar remembers between events.
    grammar: GrammarState,
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
    /// Bytes scanned for line ends plus bytes copied.
    #[cfg(test)]
    work: usize,
    /// [`MAX_HELD`], smaller in tests that reach it.
    #[cfg(test)]
    max_held: usize,
}

impl Scanner {
    /// A scanner for `protocol`, for one choice.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            whole: protocol.whole_events(),
            carry: BytesMut::new(),
            scanned: 0,
            pending: Said::NOTHING,
            known: Said::NOTHING,
            grammar: GrammarState::default(),
            done: false,
            finished: false,
            content: false,
            upstream_error: false,
            events: 0,
            usage: None,
            #[cfg(test)]
            work: 0,
            #[cfg(test)]
            max_held: MAX_HELD,
        }
    }

    /// Holds at most `n` bytes instead of [`MAX_HELD`] (the fuzz tests
    /// reach the bound with it).
    #[cfg(test)]
    pub(crate) fn max_held(mut self, n: usize) -> Self {
        self.max_held = n;
        self
    }

    /// The bytes held back now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.carry.len()
    }

    /// The most bytes held back while a line or an event is incomplete.
    #[inline]
    fn limit(&self) -> usize {
        #[cfg(test)]
        return self.max_held;
        #[cfg(not(test))]
        MAX_HELD
    }

    /// Whether to read `usage` from the events (default yes). Off for a
    /// request with no token charge to settle: the search runs on every
    /// event, and nothing would read what it finds.
    pub fn usage(mut self, want: bool) -> Self {
        self.grammar.want_usage(want);
        self
    }

    /// Expects `n` choices (the request's `n`): a chat stream is finished
    /// only when each of them has its `finish_reason`.
    pub fn choices(mut self, n: u32) -> Self {
        self.grammar.choices(n);
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
            if self.carry.len() + data.len() > self.limit() {
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
        if self.carry.len() > self.limit() {
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
            // `buf` starts at the first byte not released: what would be
            // held at this line's end, however the frames were cut (a
            // frame may bring a whole line or event longer than the bound).
            if nl - out.release > self.limit() {
                out.bad = Some(too_long());
                break;
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
        !partial.is_empty() && !partial.starts_with(b":") && !self.known.has(Said::KEEPALIVE)
    }

    /// Scans one line, and hands its field to the grammar.
    fn line(&mut self, line: &[u8]) -> Result<Seen, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let whole = self.whole;
        if let Some(rest) = line.strip_prefix(b"data:") {
            let payload = rest.strip_prefix(b" ").unwrap_or(rest);
            if payload.is_empty() {
                return Ok(Seen {
                    activity: true,
                    boundary: !whole,
                });
            }
            let said = if let Some(said) = self.protocol.sentinel(payload) {
                said
            } else if !looks_like_json(payload) {
                return Err("a malformed chunk (invalid JSON)".into());
            } else {
                self.protocol
                    .data(payload, self.known, &mut self.grammar, &mut self.usage)
            };
            return Ok(Seen {
                activity: self.take(said),
                boundary: !whole,
            });
        }
        if let Some(rest) = line.strip_prefix(b"event:") {
            let name = rest.strip_prefix(b" ").unwrap_or(rest);
            let said = self.protocol.event(name);
            if said.has(Said::KEEPALIVE) {
                self.known |= Said::KEEPALIVE;
            }
            return Ok(Seen {
                activity: self.take(said),
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

    /// Takes what the grammar said of a line; whether it is progress.
    #[inline]
    fn take(&mut self, said: Said) -> bool {
        // Most events say nothing but that they are one.
        if said == Said::EVENT {
            self.events += 1;
            return true;
        }
        if said.has(Said::KEEPALIVE) {
            return false;
        }
        self.events += u64::from(said.has(Said::EVENT));
        self.upstream_error |= said.has(Said::ERROR);
        let marks = said.marks();
        if !marks.is_empty() {
            self.note(marks);
        }
        true
    }

    /// Notes what an event says: at once in a line grammar, at the event's
    /// end in an event grammar.
    fn note(&mut self, what: Said) {
        if self.whole {
            self.pending |= what;
        } else {
            self.count(what);
        }
    }

    /// The blank line that ends an event of an event grammar.
    fn event_end(&mut self) {
        self.known = self.known.without(Said::KEEPALIVE);
        if !self.pending.is_empty() {
            let what = std::mem::take(&mut self.pending);
            self.count(what);
        }
    }

    fn count(&mut self, what: Said) {
        self.content |= what.has(Said::CONTENT);
        self.finished |= what.has(Said::FINISHED);
        self.done |= what.has(Said::DONE);
        self.known |= what.only(Said::CONTENT | Said::FINISHED);
    }
}

fn too_long() -> String {
    "an SSE line or event longer than 32 MiB".into()
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

#[cfg(test)]
mod tests;
