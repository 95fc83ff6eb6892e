//! Just enough SSE parsing to relay a stream honestly.
//!
//! The relay forwards upstream bytes as they are; this scanner only looks at
//! complete lines to learn four things: whether content has started (until
//! then a failure can still move to another deployment), whether the stream
//! finished (`[DONE]`, a `finish_reason` for every choice asked for, the
//! Responses API's terminal events, or Anthropic's `message_delta` stop
//! reason and `message_stop`: one grammar per [`Protocol`]), whether a
//! chunk is malformed (its JSON
//! does not parse; it is then never forwarded, since it would crash the
//! client's SDK), and how many chunks carried content. Only complete lines
//! are released, so a malformed line is caught before any of it leaves.
//!
//! Each byte is scanned for a line end once and copied at most once, however
//! the lines are split into frames: a line of several MiB (a streamed
//! base64 image) arriving in thousands of small frames costs as much as the
//! same line in one frame. Bytes of a line that has not ended yet count as
//! activity, unless the line is a comment (`: ping` proves nothing).

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Longest line held while waiting for its end (streamed partial images are
/// base64 lines of several MiB).
const MAX_LINE: usize = 32 << 20;

/// Most choices whose finish is tracked one by one.
const MAX_CHOICES: u32 = 128;

/// Which stream grammar the endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Chat completions: `data: {chunk}` … `data: [DONE]`.
    Chat,
    /// Responses API: `event: response.*` … `response.completed`, no `[DONE]`.
    Responses,
    /// Any other stream (image generation): content is any data line, and a
    /// clean close is the end.
    Generic,
    /// Anthropic's Messages API: `event: message_start` …
    /// `content_block_*` … `message_delta` … `message_stop`, no `[DONE]`.
    /// Content: a `text_delta` (or `thinking_delta`) with text, a
    /// `tool_use` block starting, an `input_json_delta`; finished: a
    /// `message_delta` with its `stop_reason`; done: `message_stop`; an
    /// in-band error: `event: error`; usage: `message_start`'s
    /// `input_tokens` plus `message_delta`'s cumulative `output_tokens`.
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
}

/// What one call to [`Scanner::feed`] found.
#[derive(Debug, Default)]
pub struct Feed {
    /// Bytes that may go to the client now (complete, valid lines).
    pub forward: Bytes,
    /// Set when a line is malformed; nothing from it on is forwarded.
    pub bad: Option<String>,
    /// The upstream is progressing: a `data:` or `event:` line went by, or
    /// bytes of a line that has not ended yet arrived (comments and blank
    /// lines do not count: a keep-alive comment does not prove the answer is
    /// progressing).
    pub activity: bool,
}

/// Incremental SSE line scanner.
#[derive(Debug)]
pub struct Scanner {
    protocol: Protocol,
    /// The current line, not yet ended: never holds a `\n`.
    carry: BytesMut,
    /// Choices asked for (`n`); the answer is finished when all are.
    choices: u32,
    /// Chat choices (by `index`) that have their `finish_reason`, when more
    /// than one was asked for.
    finished_choices: u128,
    /// `[DONE]` or a terminal Responses event was seen.
    pub done: bool,
    /// Every choice has its `finish_reason` (the answer is complete; `[DONE]`
    /// may follow, and the usage chunk before it).
    pub finished: bool,
    /// Some content (text, tool call, refusal) was seen.
    pub content: bool,
    /// The upstream sent an error event (or `response.failed`).
    pub upstream_error: bool,
    /// Data events seen (for logs, and as the token count of a stream that
    /// reports no `usage`: providers send about one token per chunk).
    pub events: u64,
    /// `usage.total_tokens` of the last event that carried one (the usage
    /// chunk of `stream_options.include_usage`, the Responses API's
    /// `response.completed`): what the request really cost.
    pub usage: Option<u64>,
    /// Whether to look for `usage` at all: only a request with a key's
    /// token charge to settle needs it (see [`Scanner::usage`]).
    want_usage: bool,
    /// Anthropic: the latest `input_tokens` and `output_tokens` seen.
    tokens: (u64, u64),
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
            choices: 1,
            finished_choices: 0,
            done: false,
            finished: false,
            content: false,
            upstream_error: false,
            events: 0,
            usage: None,
            want_usage: true,
            tokens: (0, 0),
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
        // Only the new bytes are scanned: the carried part holds no line end.
        let last = memchr::memrchr(b'\n', &data);
        #[cfg(test)]
        {
            self.work += data.len() - last.unwrap_or(0);
        }
        let Some(last) = last else {
            if data.is_empty() {
                return Feed::default();
            }
            if self.carry.len() + data.len() > MAX_LINE {
                return Feed {
                    forward: Bytes::new(),
                    bad: Some("an SSE line longer than 32 MiB".into()),
                    activity: false,
                };
            }
            self.carry.extend_from_slice(&data);
            #[cfg(test)]
            {
                self.work += data.len();
            }
            return Feed {
                activity: !self.carry.starts_with(b":"),
                ..Feed::default()
            };
        };
        let end = last + 1;
        let carried = self.carry.len();
        // Fast path: nothing carried over, which is how providers write
        // events (a frame ends on a line end): no copy at all.
        let buf = if carried == 0 {
            data.slice(..end)
        } else {
            self.carry.extend_from_slice(&data[..end]);
            #[cfg(test)]
            {
                self.work += end;
            }
            self.carry.split().freeze()
        };
        let mut start = 0;
        let mut activity = false;
        // The first line end is in the new bytes, after the carried ones.
        let mut from = carried;
        while start < buf.len() {
            let nl = memchr::memchr(b'\n', &buf[from..]).map_or(buf.len(), |i| from + i + 1);
            #[cfg(test)]
            {
                self.work += nl - from;
            }
            match self.line(&buf[start..nl]) {
                Err(why) => {
                    return Feed {
                        forward: buf.slice(..start),
                        bad: Some(why),
                        activity,
                    }
                }
                Ok(seen) => activity |= seen,
            }
            start = nl;
            from = nl;
        }
        if end < data.len() {
            self.carry.extend_from_slice(&data[end..]);
            #[cfg(test)]
            {
                self.work += data.len() - end;
            }
            activity |= !self.carry.starts_with(b":");
        }
        Feed {
            forward: buf,
            bad: None,
            activity,
        }
    }

    /// Scans one line; `Ok(true)` for a `data:` or `event:` line.
    fn line(&mut self, line: &[u8]) -> Result<bool, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            let payload = rest.strip_prefix(b" ").unwrap_or(rest);
            if payload == b"[DONE]" {
                self.done = true;
                return Ok(true);
            }
            if payload.is_empty() {
                return Ok(true);
            }
            if !looks_like_json(payload) {
                return Err("a malformed chunk (invalid JSON)".into());
            }
            self.events += 1;
            self.data(payload);
            return Ok(true);
        }
        if let Some(rest) = line.strip_prefix(b"event:") {
            let name = rest.strip_prefix(b" ").unwrap_or(rest);
            match name {
                b"error" => self.upstream_error = true,
                b"response.failed" if self.protocol == Protocol::Responses => {
                    self.upstream_error = true;
                    self.done = true;
                }
                b"response.completed" | b"response.incomplete"
                    if self.protocol == Protocol::Responses =>
                {
                    self.done = true
                }
                b"message_stop" if self.protocol == Protocol::Anthropic => self.done = true,
                _ => {}
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn data(&mut self, p: &[u8]) {
        if self.protocol == Protocol::Anthropic {
            self.anthropic(p);
            return;
        }
        if self.want_usage {
            if let Some(n) = total_tokens(p) {
                self.usage = Some(n);
            }
        }
        if p.starts_with(b"{\"error\"") {
            self.upstream_error = true;
            return;
        }
        if self.protocol == Protocol::Generic {
            self.content = true;
            return;
        }
        // After the first content only the end of the answer matters.
        if self.content {
            self.finish_reason(p);
            if self.protocol == Protocol::Responses && RESPONSE_COMPLETED.find(p).is_some() {
                self.done = true;
            }
            return;
        }
        // Reasoning tokens (vLLM's and DeepSeek's `reasoning_content`, others'
        // `reasoning`) are the answer's start too: a model that reasons for
        // longer than the first-byte timeout is working, not stalled.
        let has_content = non_empty_string_after(p, &CONTENT)
            || non_empty_string_after(p, &REASONING_CONTENT)
            || non_empty_string_after(p, &REASONING)
            || non_empty_string_after(p, &REFUSAL)
            || TOOL_CALLS.find(p).is_some()
            || FUNCTION_CALL.find(p).is_some()
            || AUDIO.find(p).is_some()
            || (self.protocol == Protocol::Responses && non_empty_string_after(p, &DELTA));
        if has_content {
            self.content = true;
        }
        self.finish_reason(p);
        if self.protocol == Protocol::Responses && RESPONSE_COMPLETED.find(p).is_some() {
            self.done = true;
        }
    }
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
    /// Notes a chunk's `finish_reason`s. With one choice, any finish ends
    /// the answer (found without parsing). With several, the answer ends
    /// when every choice has finished: the chunk that carries a finish (one
    /// per choice in a stream) is parsed to learn which choice it is.
    fn finish_reason(&mut self, p: &[u8]) {
        if self.finished || !non_empty_string_after(p, &FINISH_REASON) {
            return;
        }
        if self.choices == 1 || self.protocol != Protocol::Chat {
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

impl Scanner {
    /// One event of Anthropic's grammar ([`Protocol::Anthropic`]).
    fn anthropic(&mut self, p: &[u8]) {
        if self.want_usage {
            let input = last_integer(p, &INPUT_TOKENS);
            let output = last_integer(p, &OUTPUT_TOKENS);
            if input.is_some() || output.is_some() {
                self.tokens.0 = input.unwrap_or(self.tokens.0);
                self.tokens.1 = output.unwrap_or(self.tokens.1);
                self.usage = Some(self.tokens.0 + self.tokens.1);
            }
        }
        if ERROR_TYPE.find(p).is_some_and(|i| i < 4) {
            self.upstream_error = true;
            return;
        }
        if !self.content {
            // A thinking model's reasoning is the answer's start too (as
            // `reasoning_content` is on OpenAI's wire).
            let has_content = (TEXT_DELTA.find(p).is_some() && non_empty_string_after(p, &TEXT))
                || (THINKING_DELTA.find(p).is_some() && non_empty_string_after(p, &THINKING))
                || TOOL_USE.find(p).is_some()
                || INPUT_JSON_DELTA.find(p).is_some();
            if has_content {
                self.content = true;
                return;
            }
        }
        if MESSAGE_DELTA.find(p).is_some() && non_empty_string_after(p, &STOP_REASON) {
            self.finished = true;
        } else if MESSAGE_STOP.find(p).is_some() {
            self.done = true;
        }
    }
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

/// A JSON key searched for in every event, with its searcher built once:
/// building a `memmem` searcher per call costs more than the search itself
/// on a short event.
type Key = std::sync::LazyLock<memmem::Finder<'static>>;

macro_rules! keys {
    ($($name:ident = $needle:expr;)*) => {
        $(static $name: Key = std::sync::LazyLock::new(|| memmem::Finder::new($needle));)*
    };
}

keys! {
    CONTENT = b"\"content\":";
    REASONING_CONTENT = b"\"reasoning_content\":";
    REASONING = b"\"reasoning\":";
    REFUSAL = b"\"refusal\":";
    DELTA = b"\"delta\":";
    FINISH_REASON = b"\"finish_reason\":";
    TOOL_CALLS = b"\"tool_calls\":[";
    FUNCTION_CALL = b"\"function_call\":{";
    AUDIO = b"\"audio\":{";
    RESPONSE_COMPLETED = b"\"type\":\"response.completed\"";
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
    INPUT_TOKENS = b"\"input_tokens\"";
    OUTPUT_TOKENS = b"\"output_tokens\"";
}

/// `"total_tokens"`, searched from the end: `usage` closes an answer.
// Forward, not reverse: memchr's forward search is vectorised, its reverse
// one is not (two-way, byte by byte), and this runs on every stream event:
// with `FinderRev` it cost about 500 instructions an event, a quarter of a
// 50-event stream's whole cost (callgrind, bench/instructions.sh).
static TOTAL_TOKENS: Key = std::sync::LazyLock::new(|| memmem::Finder::new(b"\"total_tokens\""));

/// The tokens a whole answer in `wire`'s shape reports: OpenAI's
/// `usage.total_tokens`, Anthropic's `input_tokens + output_tokens`.
pub fn answer_tokens(wire: crate::providers::Wire, p: &[u8]) -> Option<u64> {
    match wire {
        crate::providers::Wire::OpenAi => total_tokens(p),
        crate::providers::Wire::Anthropic => {
            let input = last_integer(p, &INPUT_TOKENS)?;
            Some(input + last_integer(p, &OUTPUT_TOKENS).unwrap_or(0))
        }
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
mod tests {
    #[test]
    fn total_tokens_is_read_from_usage_only() {
        use super::total_tokens;
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
        let mut s = super::Scanner::new(super::Protocol::Chat);
        s.feed(bytes::Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":30}}\n\n",
        ));
        assert_eq!((s.usage, s.events), (Some(30), 2));
        // Without a charge to settle, no search.
        let mut s = super::Scanner::new(super::Protocol::Chat).usage(false);
        s.feed(bytes::Bytes::from_static(
            b"data: {\"choices\":[],\"usage\":{\"total_tokens\":30}}\n\n",
        ));
        assert_eq!((s.usage, s.events), (None, 1));
    }

    use super::*;

    fn feed_all(s: &mut Scanner, parts: &[&str]) -> (String, Option<String>) {
        let mut out = String::new();
        for p in parts {
            let f = s.feed(Bytes::copy_from_slice(p.as_bytes()));
            out.push_str(std::str::from_utf8(&f.forward).unwrap_or("<utf8>"));
            if f.bad.is_some() {
                return (out, f.bad);
            }
        }
        (out, None)
    }

    const ROLE: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    const TEXT: &str =
        "data: {\"choices\":[{\"delta\":{\"content\":\" hi\"},\"finish_reason\":null}]}\n\n";
    const FINISH: &str = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

    #[test]
    fn role_chunk_is_not_content_but_text_is() {
        let mut s = Scanner::new(Protocol::Chat);
        feed_all(&mut s, &[ROLE]);
        assert!(!s.committable());
        feed_all(&mut s, &[TEXT]);
        assert!(s.committable());
        assert!(!s.finished);
        feed_all(&mut s, &[FINISH, "data: [DONE]\n\n"]);
        assert!(s.finished && s.done);
        assert_eq!(s.events, 3);
    }

    #[test]
    fn reasoning_tokens_start_the_answer() {
        let mut s = Scanner::new(Protocol::Chat);
        feed_all(&mut s, &[ROLE]);
        assert!(!s.committable());
        feed_all(&mut s, &["data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Let me think\"},\"finish_reason\":null}]}\n\n"]);
        assert!(s.committable());
        let mut s = Scanner::new(Protocol::Chat);
        feed_all(
            &mut s,
            &["data: {\"choices\":[{\"delta\":{\"reasoning\":\"Hmm\"}}]}\n\n"],
        );
        assert!(s.committable());
    }

    #[test]
    fn split_lines_are_held_until_complete() {
        let mut s = Scanner::new(Protocol::Chat);
        let (a, b) = TEXT.split_at(20);
        let f = s.feed(Bytes::copy_from_slice(a.as_bytes()));
        assert!(f.forward.is_empty());
        let f2 = s.feed(Bytes::copy_from_slice(b.as_bytes()));
        assert_eq!(&f2.forward[..], TEXT.as_bytes());
        assert!(s.content);
    }

    #[test]
    fn malformed_chunk_is_never_forwarded() {
        let mut s = Scanner::new(Protocol::Chat);
        let (out, bad) = feed_all(&mut s, &[&format!("{TEXT}data: {{\"broken\n\n{TEXT}")]);
        assert_eq!(out, TEXT);
        assert!(bad.is_some());
    }

    #[test]
    fn responses_protocol_ends_on_completed_event() {
        let mut s = Scanner::new(Protocol::Responses);
        feed_all(&mut s, &[
            "event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
        ]);
        assert!(s.content && !s.done);
        feed_all(
            &mut s,
            &["event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n"],
        );
        assert!(s.done);
    }

    #[test]
    fn crlf_and_spaces_are_tolerated() {
        let mut s = Scanner::new(Protocol::Chat);
        feed_all(
            &mut s,
            &[
                "data:{\"choices\":[{\"delta\":{\"content\": \"x\"}}]}\r\n\r\n",
                "data: [DONE]\r\n\r\n",
            ],
        );
        assert!(s.content && s.done);
    }

    /// Frames arrive split anywhere (TCP and proxies decide); whatever the
    /// split, the forwarded bytes and what the scanner learns must be those
    /// of the stream read whole.
    #[test]
    fn any_split_forwards_the_same_bytes_and_learns_the_same() {
        let stream = format!(
            "{ROLE}: keep-alive\n\n{TEXT}data:{{\"choices\":[{{\"delta\":{{\"tool_calls\":[{{}}]}}}}]}}\r\n\r\n{TEXT}{FINISH}data: [DONE]\n\n"
        );
        let bytes = stream.as_bytes();
        let mut whole = Scanner::new(Protocol::Chat);
        let expected = whole.feed(Bytes::copy_from_slice(bytes));
        assert!(expected.bad.is_none());
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let mut s = Scanner::new(Protocol::Chat);
            let mut out = Vec::new();
            let mut at = 0;
            let mut content_seen_at = None;
            while at < bytes.len() {
                let end = (at + rng.usize(1..=40)).min(bytes.len());
                let f = s.feed(Bytes::copy_from_slice(&bytes[at..end]));
                assert!(f.bad.is_none(), "split at {at}..{end}");
                out.extend_from_slice(&f.forward);
                if s.content && content_seen_at.is_none() {
                    content_seen_at = Some(out.len());
                }
                at = end;
            }
            assert_eq!(out, &expected.forward[..]);
            assert_eq!(
                (s.content, s.finished, s.done),
                (whole.content, whole.finished, whole.done)
            );
            // Content is never reported before the line that carries it was released.
            assert!(content_seen_at.is_some_and(|n| n >= ROLE.len() + 14 + TEXT.len() - 1));
        }
    }

    fn choice(index: u32, delta: &str, finish: &str) -> String {
        format!("data: {{\"choices\":[{{\"index\":{index},\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
    }

    /// With `n = 2`, the first choice's `finish_reason` does not finish the
    /// stream; the second's does. A tool call's own `index` inside a delta
    /// does not count as a choice.
    #[test]
    fn a_stream_of_several_choices_finishes_when_all_do() {
        let mut s = Scanner::new(Protocol::Chat).choices(2);
        feed_all(
            &mut s,
            &[
                &choice(0, r#"{"content":"a"}"#, "null"),
                &choice(
                    1,
                    r#"{"tool_calls":[{"index":1,"function":{"name":"f"}}]}"#,
                    "null",
                ),
                &choice(0, "{}", r#""stop""#),
            ],
        );
        assert!(s.content && !s.finished);
        // The same choice finishing twice is still one choice.
        feed_all(&mut s, &[&choice(0, "{}", r#""stop""#)]);
        assert!(!s.finished);
        feed_all(&mut s, &[&choice(1, "{}", r#""tool_calls""#)]);
        assert!(s.finished);

        // Both finishes in one chunk, in another key order.
        let mut s = Scanner::new(Protocol::Chat).choices(2);
        feed_all(&mut s, &[&choice(0, r#"{"content":"a"}"#, "null")]);
        feed_all(&mut s, &["data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":1,\"delta\":{}},{\"delta\":{},\"finish_reason\":\"length\",\"index\":0}]}\n\n"]);
        assert!(s.finished);

        // One choice (the default): any finish ends the answer, as before.
        let mut s = Scanner::new(Protocol::Chat);
        feed_all(&mut s, &[&choice(0, r#"{"content":"a"}"#, r#""stop""#)]);
        assert!(s.finished);
        // An index out of range or an empty reason finishes nothing.
        let mut s = Scanner::new(Protocol::Chat).choices(2);
        feed_all(
            &mut s,
            &[
                &choice(0, r#"{"content":"a"}"#, r#""""#),
                &choice(200, "{}", r#""stop""#),
                &choice(1, "{}", r#""stop""#),
            ],
        );
        assert!(!s.finished);
    }

    /// A 4 MiB line (a streamed base64 image) in 4 KiB frames: every byte
    /// is scanned for a line end once and copied once, not once per frame.
    #[test]
    fn a_long_line_in_small_frames_costs_linear_work() {
        let payload = "A".repeat(4 << 20);
        let line = format!("data: {{\"b64_json\":\"{payload}\"}}\n\n");
        let bytes = Bytes::from(line);
        let mut s = Scanner::new(Protocol::Generic);
        let mut out = Vec::new();
        for chunk in bytes.chunks(4096) {
            let f = s.feed(bytes.slice_ref(chunk));
            assert!(f.bad.is_none());
            out.extend_from_slice(&f.forward);
        }
        assert_eq!(out, &bytes[..]);
        assert!(s.content);
        assert!(
            s.work <= 2 * bytes.len() + 64,
            "{} units of work for {} bytes",
            s.work,
            bytes.len()
        );
    }

    /// Bytes of a line that has not ended are activity (a long line must not
    /// look like a stall); a comment, whole or partial, is not.
    #[test]
    fn partial_lines_are_activity_but_comments_are_not() {
        let mut s = Scanner::new(Protocol::Chat);
        assert!(
            s.feed(Bytes::from_static(b"data: {\"choices\":[{\"delta\":"))
                .activity
        );
        assert!(
            s.feed(Bytes::from_static(b"{\"content\":\"xxxxxxxx"))
                .activity
        );
        let f = s.feed(Bytes::from_static(b"\"}}]}\n\n: pi"));
        assert!(f.activity && s.content);
        assert!(!s.feed(Bytes::from_static(b"ng\n\n")).activity);
        assert!(!s.feed(Bytes::from_static(b": keep")).activity);
        assert!(!s.feed(Bytes::from_static(b"-alive")).activity);
        assert!(!s.feed(Bytes::from_static(b"\n\n")).activity);
        assert!(!s.feed(Bytes::from_static(b"\n")).activity);
        assert!(s.feed(Bytes::from_static(b"\ndata: {\"choices\"")).activity);
    }

    #[test]
    fn structural_json_check() {
        for ok in [r#"{"a":"}{\"x"}"#, "[1,{\"b\":[]}]", " {} "] {
            assert!(looks_like_json(ok.as_bytes()), "{ok}");
        }
        for bad in [r#"{"broken"#, "{\"a\":1", "x", "{\"a\":[1,2"] {
            assert!(!looks_like_json(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn upstream_error_payload_is_flagged() {
        let mut s = Scanner::new(Protocol::Chat);
        feed_all(
            &mut s,
            &["data: {\"error\":{\"message\":\"overloaded\"}}\n\n"],
        );
        assert!(s.upstream_error && !s.committable());
    }

    fn ev(name: &str, data: &str) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    const A_START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":1}}}"#;

    #[test]
    fn anthropic_text_stream_commits_on_text_and_ends_on_message_stop() {
        let mut s = Scanner::new(Protocol::Anthropic);
        feed_all(
            &mut s,
            &[
                &ev("message_start", A_START),
                &ev(
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                ),
                "event: ping\ndata: {\"type\": \"ping\"}\n\n",
                &ev(
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
                ),
            ],
        );
        // message_start, an empty text block, a ping and an empty delta are not content.
        assert!(!s.committable());
        feed_all(
            &mut s,
            &[&ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            )],
        );
        assert!(s.committable() && !s.finished);
        feed_all(
            &mut s,
            &[
                &ev(
                    "content_block_stop",
                    r#"{"type":"content_block_stop","index":0}"#,
                ),
                &ev(
                    "message_delta",
                    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":22}}"#,
                ),
            ],
        );
        assert!(s.finished && !s.done);
        assert_eq!(s.usage, Some(62));
        feed_all(&mut s, &[&ev("message_stop", r#"{"type":"message_stop"}"#)]);
        assert!(s.done && !s.upstream_error);
    }

    #[test]
    fn anthropic_tool_use_and_json_deltas_are_content() {
        let mut s = Scanner::new(Protocol::Anthropic);
        feed_all(&mut s, &[&ev("message_start", A_START)]);
        feed_all(
            &mut s,
            &[&ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
            )],
        );
        assert!(s.committable());
        let mut s = Scanner::new(Protocol::Anthropic);
        feed_all(
            &mut s,
            &[&ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            )],
        );
        assert!(s.committable());
        // A message_delta without a stop reason finishes nothing.
        let mut s = Scanner::new(Protocol::Anthropic);
        feed_all(
            &mut s,
            &[&ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":3}}"#,
            )],
        );
        assert!(!s.finished);
    }

    #[test]
    fn anthropic_error_event_is_flagged_and_not_content() {
        let mut s = Scanner::new(Protocol::Anthropic);
        feed_all(&mut s, &[&ev("message_start", A_START)]);
        feed_all(
            &mut s,
            &[&ev(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            )],
        );
        assert!(s.upstream_error && !s.committable());
        // The data alone says it too (a server that writes no event names).
        let mut s = Scanner::new(Protocol::Anthropic);
        feed_all(&mut s, &["data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n"]);
        assert!(s.upstream_error);
        // A malformed event is caught as on the OpenAI wire.
        let mut s = Scanner::new(Protocol::Anthropic);
        let (_, bad) = feed_all(
            &mut s,
            &["event: content_block_delta\ndata: {\"type\":\"content_bl\n\n"],
        );
        assert!(bad.is_some());
    }

    #[test]
    fn answer_tokens_read_each_wire() {
        use crate::providers::Wire;
        let a = br#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"\"input_tokens\":9"}],"usage":{"input_tokens":12,"output_tokens":5}}"#;
        assert_eq!(answer_tokens(Wire::Anthropic, a), Some(17));
        let o = br#"{"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        assert_eq!(answer_tokens(Wire::OpenAi, o), Some(12));
        assert_eq!(answer_tokens(Wire::Anthropic, o), None);
    }
}
