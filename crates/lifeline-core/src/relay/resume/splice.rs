//! The [`Splice`]: a continuation stream fitted into the client's. The
//! state machine is here (the seam or replay point found, the whitespace
//! already sent skipped, the trailing comment placed); what each event
//! carries and how it is rewritten (the start of a message dropped, the
//! first stream's chunk id and block indexes kept, the usage of the
//! streams it replaced added) is the client's adapter's
//! ([`crate::providers::continued::Rewrite`]).

use bytes::{Bytes, BytesMut};

use super::*;
use crate::providers::continued::{Data, Parts, Rewrite};
use crate::providers::sse::{bare, data_payload};

/// Where a [`Splice`] is.
enum State {
    /// Replay: the new text so far equals the text sent up to this byte.
    Matching(usize),
    /// Instruction: looking for the seam in the text held so far.
    Seeking {
        /// The new text so far.
        text: String,
        /// The held chunks, with where each one's text starts in `text`.
        held: Vec<(serde_json::Value, usize)>,
    },
    /// Skipping the whitespace already sent (from this byte of it on).
    Whitespace(usize),
    /// Relaying.
    Passing,
}

/// What a [`Splice`] made of some upstream lines.
#[derive(Debug, Default)]
pub struct Spliced {
    /// Bytes for the client.
    pub out: Bytes,
    /// The new stream does not fit: abandon it (nothing of it was sent).
    pub misfit: Option<String>,
    /// The seam was found (for the log): the tail of the text sent that the
    /// new output repeated, or how many bytes it replayed.
    pub seam: Option<String>,
}

/// Filters a continuation stream's events, in the client's wire, into the
/// client's stream.
pub struct Splice {
    method: Method,
    /// The text sent: whole (replay) or without its trailing whitespace.
    sent: Arc<str>,
    /// The trailing whitespace already sent, not to be sent again.
    ws: String,
    /// The client's adapter: what events carry, and how they are written.
    rewrite: Rewrite,
    state: State,
    /// The trailing comment, sent before the terminal event.
    comment: Bytes,
    seam: Option<String>,
}

impl Splice {
    /// A filter for a stream continuing `sent` by `method`; `comment` is
    /// the trailing comment.
    pub fn new(method: Method, sent: &Sent, comment: Bytes) -> Self {
        let (trimmed, ws) = split_trailing_whitespace(&sent.text);
        let (text, state) = match method {
            Method::Prefill => (trimmed, State::Whitespace(0)),
            Method::Instruction => (
                trimmed,
                State::Seeking {
                    text: String::new(),
                    held: Vec::new(),
                },
            ),
            Method::Replay => (sent.text.as_str(), State::Matching(0)),
        };
        Self {
            method,
            sent: text.into(),
            ws: ws.to_owned(),
            rewrite: Rewrite::new(sent, 0),
            state,
            comment,
            seam: None,
        }
    }

    /// The client had `n` output tokens from the streams this one
    /// continues: the usage this stream reports (OpenAI's usage chunk,
    /// Anthropic's `message_delta`) counts them too, so that the final
    /// usage is the whole answer's.
    #[must_use]
    pub fn before(mut self, n: u64) -> Self {
        self.rewrite.before(n);
        self
    }

    /// Filters complete SSE lines of the new stream.
    pub fn feed(&mut self, lines: &[u8]) -> Spliced {
        let mut out = BytesMut::new();
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let bare = bare(line);
            // Blank lines end events (re-written whole below); `event:`
            // lines are written again from each event (by the adapter).
            if bare.is_empty() || bare.starts_with(b"event:") {
                continue;
            }
            let Some(payload) = data_payload(bare) else {
                // Comments and other fields pass once the seam is behind.
                if matches!(self.state, State::Passing | State::Whitespace(_)) {
                    out.extend_from_slice(bare);
                    out.extend_from_slice(b"\n\n");
                }
                continue;
            };
            let v = match self.rewrite.data(payload) {
                Data::Event(v) => v,
                Data::Terminal(end) => {
                    if !matches!(self.state, State::Passing | State::Whitespace(_)) {
                        return self.misfit("the new stream ended before the seam");
                    }
                    out.extend_from_slice(&self.comment);
                    out.extend_from_slice(end);
                    continue;
                }
                Data::NotJson => {
                    return self.misfit("the new stream sent an event that is not JSON")
                }
            };
            if let Err(why) = self.event(v, &mut out) {
                return self.misfit(why);
            }
        }
        Spliced {
            out: out.freeze(),
            misfit: None,
            seam: self.seam.take(),
        }
    }

    fn misfit(&mut self, why: &str) -> Spliced {
        Spliced {
            out: Bytes::new(),
            misfit: Some(format!("{} did not fit: {why}", self.method.label())),
            seam: None,
        }
    }

    /// What an event carries, in the client's wire (rewritten in place
    /// by its adapter).
    fn parts(&mut self, v: &mut serde_json::Value) -> Parts {
        self.rewrite.parts(v)
    }

    fn set_text(&self, v: &mut serde_json::Value, text: &str) {
        self.rewrite.set_text(v, text);
    }

    fn emit(&mut self, out: &mut BytesMut, v: &serde_json::Value, terminal: bool) {
        if terminal {
            out.extend_from_slice(&self.comment);
        }
        self.rewrite.emit(out, v);
    }

    /// One event of the new stream.
    fn event(&mut self, mut v: serde_json::Value, out: &mut BytesMut) -> Result<(), &'static str> {
        let parts = self.parts(&mut v);
        match &mut self.state {
            State::Passing => {
                if parts.text.is_some() || parts.hard || parts.soft {
                    self.emit(out, &v, parts.terminal);
                }
            }
            State::Whitespace(_) => self.skip_whitespace(v, parts, out),
            State::Matching(at) => {
                if parts.hard {
                    return Err("a tool call or the end of the answer before the replay point");
                }
                let Some(t) = parts.text else { return Ok(()) };
                let rest = &self.sent[*at..];
                if rest.starts_with(t.as_str()) {
                    *at += t.len();
                    if *at == self.sent.len() {
                        self.seam = Some(format!("replayed {} bytes", self.sent.len()));
                        self.state = State::Passing;
                    }
                } else if let Some(after) = t.strip_prefix(rest) {
                    self.seam = Some(format!("replayed {} bytes", self.sent.len()));
                    self.state = State::Passing;
                    self.set_text(&mut v, after);
                    self.emit(out, &v, false);
                } else {
                    return Err("the replayed text differs from what was sent");
                }
            }
            State::Seeking { text: seen, held } => {
                if parts.hard {
                    // The new output ends here: the window is complete.
                    if !self.seam_in_window(true, out) {
                        return Err("a tool call or the end of the answer before the seam");
                    }
                    self.skip_whitespace(v, parts, out);
                    return Ok(());
                }
                let Some(t) = parts.text else { return Ok(()) };
                held.push((v, seen.len()));
                seen.push_str(&t);
                let complete = seen.len() >= SEAM_WINDOW;
                if !self.seam_in_window(complete, out) && complete {
                    return Err("no seam in the window");
                }
            }
        }
        Ok(())
    }

    /// Looks for the seam in the text held (`complete`: no more of the
    /// window will come); if found, relays what follows it.
    fn seam_in_window(&mut self, complete: bool, out: &mut BytesMut) -> bool {
        let State::Seeking { text: seen, held } = &mut self.state else {
            return false;
        };
        let Some((end, tail)) = find_seam(&self.sent, seen, complete) else {
            return false;
        };
        self.seam = Some(tail.to_owned());
        let held = std::mem::take(held);
        let seen = std::mem::take(seen);
        self.state = State::Whitespace(0);
        for (i, (mut chunk, start)) in held.iter().cloned().enumerate() {
            let stop = held.get(i + 1).map_or(seen.len(), |(_, s)| *s);
            if stop <= end {
                continue;
            }
            let from = end.max(start);
            self.set_text(&mut chunk, &seen[from..stop]);
            let piece = Parts {
                text: Some(seen[from..stop].to_owned()),
                ..Parts::default()
            };
            self.skip_whitespace(chunk, piece, out);
        }
        true
    }

    /// Drops the leading whitespace of the new output that the client
    /// already has, then relays.
    fn skip_whitespace(&mut self, mut v: serde_json::Value, parts: Parts, out: &mut BytesMut) {
        let State::Whitespace(at) = &mut self.state else {
            self.emit(out, &v, parts.terminal);
            return;
        };
        let Some(t) = parts.text else {
            // A start of a message says nothing; anything else ends the
            // skipping.
            if parts.hard || parts.soft {
                self.state = State::Passing;
                self.emit(out, &v, parts.terminal);
            }
            return;
        };
        let ws = &self.ws[*at..];
        let common = t
            .char_indices()
            .zip(ws.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        *at += common;
        let done = *at >= self.ws.len();
        let rest = &t[common..];
        if !rest.is_empty() || done {
            self.state = State::Passing;
        }
        if rest.len() != t.len() {
            let rest = rest.to_owned();
            self.set_text(&mut v, &rest);
        }
        if !rest.is_empty() {
            self.emit(out, &v, false);
        }
    }
}
