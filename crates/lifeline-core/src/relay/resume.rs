//! Continuing a broken stream from another deployment: the relay's side.
//!
//! The relay (this layer) cannot run attempts: the attempt loop sits above
//! it. So the attempt side hands [`RelayBody`](super::RelayBody) a
//! [`Seed`](super::Seed) at commit, when continuation is on for the request,
//! which the relay makes into a [`Resume`] at the first break after content;
//! it asks that for a new upstream stream ([`Ask`] →
//! [`Resumed`]) and goes on relaying, through a [`Splice`] that makes the
//! new stream's events fit the client's stream:
//!
//! - what would repeat the start of a message (the role chunk) is dropped;
//! - text before the seam is dropped, and the one chunk the seam falls in
//!   is rewritten to what follows it ([`Method::Instruction`]: the seam is
//!   where the last words already sent reappear in the first
//!   [`SEAM_WINDOW`] bytes, at once for a tail of [`FULL_SEAM`] bytes, at
//!   the end of the window for a shorter one ([`find_seam`]); [`Method::Replay`]: the new output must begin
//!   with exactly the text already sent, compared chunk by chunk);
//! - the whitespace the prefill left out ([`Method::Prefill`]: a prefill
//!   must not end with whitespace) is not sent twice;
//! - every forwarded chunk gets the first stream's `id` (SDKs accumulate a
//!   stream's chunks by id), and Anthropic block indexes follow the
//!   client's blocks (text continues the client's open text block; a first
//!   block of another kind closes it and comes after it);
//! - the usage the new stream reports counts the output the client had
//!   before it ([`Splice::before`]);
//! - a trailing SSE comment (`: lifeline continued=N method=M
//!   deployment=D`) goes before `data: [DONE]`.
//!
//! A new stream that does not fit (no seam in the window, a replay that
//! differs, a tool call or the end of the answer before the seam) is
//! abandoned before any of it reached the client, and the next method is
//! asked for. What was sent is learnt once, at the break, from the client
//! bytes the relay kept ([`Sent::parse`]); nothing is parsed on the hot
//! path of a stream that does not break.
//!
//! Nothing here reads or writes either wire: what the client was sent
//! ([`Sent`], [`length_ending`]) and what a continuation's events carry
//! and become are the client's adapter's
//! ([`crate::providers::continued`]); this module and the splice hold the
//! state machines that ask it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;

use super::Scanner;
pub use crate::providers::continued::{length_ending, Sent};
use crate::route::{Deployment, Lease};
use crate::translate::stream::Transcoder;

/// Most client bytes kept per stream for a continuation; past it the stream
/// is not continued (its memory stays bounded).
pub const MAX_SENT: usize = 1 << 20;

/// How far into the new output (bytes of text) the seam is looked for.
pub const SEAM_WINDOW: usize = 400;

/// The longest tail of the text already sent that is looked for as the seam.
pub const SEAM_TAIL: usize = 40;

/// The shortest seam accepted (unless the whole text sent is shorter): a
/// few characters would match anywhere.
pub const MIN_SEAM: usize = 10;

/// A tail of at least this many bytes (or the whole text sent, if
/// shorter) is a seam as soon as it appears: shorter ones also match a
/// recap of earlier text ("sat on the mat"), so they count only once the
/// window is complete, and only if they occur exactly once in it.
pub const FULL_SEAM: usize = 20;

/// The user turn of [`Method::Instruction`].
pub const CONTINUE_INSTRUCTION: &str =
    "Continue exactly where you stopped, without repeating anything.";

/// How a stream is continued, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The original request plus the text sent as an assistant prefill; the
    /// new output is appended as is.
    Prefill,
    /// The text sent as an assistant turn, then a user turn asking to
    /// continue; only what follows the seam is relayed.
    Instruction,
    /// The original request again; relayed from where the new output
    /// passes the text already sent, if it begins with exactly that.
    Replay,
}

impl Method {
    /// Every method, in order.
    pub const ALL: [Method; 3] = [Method::Prefill, Method::Instruction, Method::Replay];

    /// Metric label and log name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Prefill => "prefill",
            Self::Instruction => "instruction",
            Self::Replay => "replay",
        }
    }
}

/// What the relay asks for at a break.
pub struct Ask {
    /// The text the client received so far (all of it, whitespace included).
    pub text: Arc<str>,
    /// The deployment whose stream broke, or whose continuation was abandoned.
    pub broken: Arc<Deployment>,
    /// `Some`: the continuation by this method on `broken` was abandoned (it
    /// did not fit); `None`: the stream broke.
    pub abandoned: Option<Method>,
    /// Output tokens the client has so far ([`Sent::output`]): a
    /// continuation's `max_tokens` is the client's less this.
    pub output: u64,
}

/// A new upstream stream, read to its first content.
pub struct Resumed {
    /// Bytes read so far (complete lines), to filter and send first.
    pub prefix: Bytes,
    /// The rest of the upstream body.
    pub body: Incoming,
    /// The scanner's state so far.
    pub scanner: Scanner,
    /// The attempt's lease (its first content already recorded).
    pub lease: Lease,
    /// How it continues.
    pub method: Method,
    /// The silence allowed in this stream (the deployment's adaptive stall figure).
    pub stall: Duration,
    /// Time from the continuation's request to its first content.
    pub ttft: Duration,
    /// From the deployment's wire to the client's, when they differ (the
    /// prefix is already the client's).
    pub transcoder: Option<Transcoder>,
}

/// The future a [`Resume`] returns: itself back (for the next break), and
/// the new stream, or `None` when nothing could continue the stream.
pub type Resuming = Pin<Box<dyn Future<Output = (Box<dyn Resume>, Option<Resumed>)> + Send>>;

/// Runs continuation attempts for one client stream (implemented by the
/// attempt side, which owns picking, budgets and deadlines).
pub trait Resume: Send {
    /// A continuation attempt for `ask`.
    fn resume(self: Box<Self>, ask: Ask) -> Resuming;

    /// The client's limit on output tokens (`max_tokens`,
    /// `max_completion_tokens`), if it set one: a stream whose output
    /// reached it is not continued but ends as finished by its length.
    fn max_output(&self) -> Option<u64>;
}

/// `text` without its trailing whitespace, and that whitespace.
pub fn split_trailing_whitespace(text: &str) -> (&str, &str) {
    let trimmed = text.trim_end();
    (trimmed, &text[trimmed.len()..])
}

/// Where the seam ends in `new`: the end of the first occurrence of the
/// longest tail of `sent` (at most [`SEAM_TAIL`] bytes, starting at a word
/// boundary or [`SEAM_TAIL`] bytes back; at least [`MIN_SEAM`] bytes unless
/// `sent` is shorter), and that tail. `sent` has no trailing whitespace.
///
/// A tail shorter than [`FULL_SEAM`] (unless it is all of `sent`) is a seam
/// only when `complete` (the window is full, or the new stream ended) and
/// it occurs exactly once in `new`: early in the new output, a short tail
/// is as likely a recap of earlier text as the place the answer stopped.
pub fn find_seam<'a>(sent: &'a str, new: &str, complete: bool) -> Option<(usize, &'a str)> {
    if sent.is_empty() {
        return None;
    }
    let min = MIN_SEAM.min(sent.len());
    let mut first = sent.len().saturating_sub(SEAM_TAIL);
    while !sent.is_char_boundary(first) {
        first += 1;
    }
    let starts = std::iter::once(first).chain(
        sent.char_indices()
            .skip_while(|(i, _)| *i <= first)
            .filter(|(i, c)| {
                !c.is_whitespace()
                    && sent[..*i]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_whitespace)
            })
            .map(|(i, _)| i),
    );
    for s in starts {
        let tail = &sent[s..];
        if tail.len() < min {
            break;
        }
        let Some(i) = new.find(tail) else { continue };
        if tail.len() >= FULL_SEAM.min(sent.len()) {
            return Some((i + tail.len(), tail));
        }
        // The longest tail that appears is short: a shorter one would be
        // no surer.
        let once = !new[i + tail.len()..].contains(tail);
        return (complete && once).then_some((i + tail.len(), tail));
    }
    None
}

/// The trailing comment of a continued stream.
pub fn trailing_comment(continued: u32, method: Method, deployment: &str) -> Bytes {
    Bytes::from(format!(
        ": lifeline continued={continued} method={} deployment={deployment}\n\n",
        method.label()
    ))
}

mod splice;
pub use splice::{Splice, Spliced};

#[cfg(test)]
mod tests;
