//! Just enough SSE parsing to relay a stream honestly.
//!
//! The relay forwards upstream bytes as they are; this scanner only looks at
//! complete lines to learn four things: whether content has started (until
//! then a failure can still move to another deployment), whether the stream
//! finished (`[DONE]`, a `finish_reason`, or the Responses API's terminal
//! events), whether a chunk is malformed (its JSON does not parse; it is
//! then never forwarded, since it would crash the client's SDK), and how
//! many chunks carried content. Only complete lines are released, so a
//! malformed line is caught before any of it leaves.

use bytes::{Bytes, BytesMut};
use memchr::memmem;

/// Longest line held while waiting for its end (streamed partial images are
/// base64 lines of several MiB).
const MAX_LINE: usize = 32 << 20;

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
}

/// What one call to [`Scanner::feed`] found.
#[derive(Debug, Default)]
pub struct Feed {
    /// Bytes that may go to the client now (complete, valid lines).
    pub forward: Bytes,
    /// Set when a line is malformed; nothing from it on is forwarded.
    pub bad: Option<String>,
    /// A `data:` or `event:` line went by (comments and blank lines do not
    /// count: a keep-alive comment does not prove the answer is progressing).
    pub activity: bool,
}

/// Incremental SSE line scanner.
#[derive(Debug)]
pub struct Scanner {
    protocol: Protocol,
    carry: BytesMut,
    /// `[DONE]` or a terminal Responses event was seen.
    pub done: bool,
    /// A `finish_reason` was seen (the answer is complete; `[DONE]` may follow).
    pub finished: bool,
    /// Some content (text, tool call, refusal) was seen.
    pub content: bool,
    /// The upstream sent an error event (or `response.failed`).
    pub upstream_error: bool,
    /// Data events seen (for logs).
    pub events: u64,
}

impl Scanner {
    /// A scanner for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            carry: BytesMut::new(),
            done: false,
            finished: false,
            content: false,
            upstream_error: false,
            events: 0,
        }
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
        // Fast path: nothing carried over and the frame ends on a line end,
        // which is how providers write events: no copy at all.
        let buf = if self.carry.is_empty() {
            data
        } else {
            self.carry.extend_from_slice(&data);
            self.carry.split().freeze()
        };
        let end = match memchr::memrchr(b'\n', &buf) {
            Some(i) => i + 1,
            None => {
                if buf.len() > MAX_LINE {
                    return Feed {
                        forward: Bytes::new(),
                        bad: Some("an SSE line longer than 32 MiB".into()),
                        activity: false,
                    };
                }
                self.carry.extend_from_slice(&buf);
                return Feed::default();
            }
        };
        let mut start = 0;
        let mut activity = false;
        while start < end {
            let nl = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i + 1);
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
        }
        if end < buf.len() {
            self.carry.extend_from_slice(&buf[end..]);
        }
        Feed {
            forward: buf.slice(..end),
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
                _ => {}
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn data(&mut self, p: &[u8]) {
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
            if !self.finished && non_empty_string_after(p, b"\"finish_reason\":") {
                self.finished = true;
            }
            if self.protocol == Protocol::Responses
                && memmem::find(p, b"\"type\":\"response.completed\"").is_some()
            {
                self.done = true;
            }
            return;
        }
        // Reasoning tokens (vLLM's and DeepSeek's `reasoning_content`, others'
        // `reasoning`) are the answer's start too: a model that reasons for
        // longer than the first-byte timeout is working, not stalled.
        let has_content = non_empty_string_after(p, b"\"content\":")
            || non_empty_string_after(p, b"\"reasoning_content\":")
            || non_empty_string_after(p, b"\"reasoning\":")
            || non_empty_string_after(p, b"\"refusal\":")
            || memmem::find(p, b"\"tool_calls\":[").is_some()
            || memmem::find(p, b"\"function_call\":{").is_some()
            || memmem::find(p, b"\"audio\":{").is_some()
            || (self.protocol == Protocol::Responses && non_empty_string_after(p, b"\"delta\":"));
        if has_content {
            self.content = true;
        }
        if non_empty_string_after(p, b"\"finish_reason\":") {
            self.finished = true;
        }
        if self.protocol == Protocol::Responses
            && memmem::find(p, b"\"type\":\"response.completed\"").is_some()
        {
            self.done = true;
        }
    }
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

/// Whether `key` is followed (after optional spaces) by a non-empty string.
fn non_empty_string_after(p: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = memmem::find(&p[from..], key) {
        let mut j = from + i + key.len();
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
}
