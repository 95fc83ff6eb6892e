//! Reading a stream up to its first content, while failover is still possible.
//!
//! Nothing is sent to the client until the upstream has produced content
//! (text, a tool call, a refusal) or finished: the role-only first chunk
//! does not count, since a stream that breaks right after it would leave
//! the client with nothing. Until then a reset, no content by the
//! first-byte deadline, a silence after the first event longer than the
//! stall timeout (`stream_idle_timeout`, or shorter when adaptive), a
//! malformed chunk or an upstream error event is an ordinary failed attempt,
//! retried elsewhere. After, the stream belongs to the client (a failure is
//! a continuation, `resume.rs`, not a retry; a continuation attempt is read
//! to its first content here too). Every event (not a keep-alive: a
//! comment, or Anthropic's `ping` event, is no progress) restarts the stall
//! timer and is reported to the lease ([`Lease::activity`]), which tracks
//! the stream's longest silence.

use bytes::{Bytes, BytesMut};

/// Bytes held back before commit. Usually the first frame alone, kept as is
/// (no copy); later frames are appended.
#[derive(Default)]
struct Held {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Held {
    fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if self.first.is_empty() && self.more.is_none() {
            self.first = b;
            return;
        }
        let more = self
            .more
            .get_or_insert_with(|| BytesMut::from(&self.first[..]));
        more.extend_from_slice(&b);
    }

    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    fn freeze(self) -> Bytes {
        self.more.map_or(self.first, BytesMut::freeze)
    }
}
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{timeout_at, Instant};

use super::failure::FailureKind;
use crate::relay::Scanner;
use crate::route::Lease;

/// Most bytes held back before committing anyway.
const MAX_HELD: usize = 64 * 1024;

/// A stream that reached its first content.
pub struct Committed {
    /// Response head.
    pub parts: http::response::Parts,
    /// Bytes read so far, to send first.
    pub prefix: Bytes,
    /// The rest of the upstream body.
    pub body: Incoming,
    /// The scanner's state so far.
    pub scanner: Scanner,
}

/// Which deadline stopped a stream before its first content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The first-byte deadline: no content in time.
    FirstContent,
    /// The stall timeout: silence after an event.
    Stall,
}

/// Why a stream could not be committed.
#[derive(Debug)]
pub struct Stopped {
    /// [`FailureKind::Timeout`] or [`FailureKind::StreamFailed`].
    pub kind: FailureKind,
    /// For the final error.
    pub message: String,
    /// The deadline that fired, if one did.
    pub timer: Option<Timer>,
    /// When the silence that fired a stall began.
    pub since: Instant,
}

impl Stopped {
    pub(super) fn failed(message: String) -> Self {
        Self {
            kind: FailureKind::StreamFailed,
            message,
            timer: None,
            since: Instant::now(),
        }
    }
}

/// Reads `resp` until it is committable, `deadline` passes, or the stream
/// is silent for `stall` after an event.
pub async fn first_content(
    resp: http::Response<Incoming>,
    mut scanner: Scanner,
    deadline: Instant,
    stall: std::time::Duration,
    lease: &mut Lease,
) -> Result<Committed, Stopped> {
    let (parts, mut body) = resp.into_parts();
    let mut held = Held::default();
    let mut last: Option<Instant> = None;
    loop {
        let limit = last.map_or(deadline, |l| deadline.min(l + stall));
        let frame = match timeout_at(limit, body.frame()).await {
            Err(_) => {
                let stalled = limit < deadline;
                return Err(Stopped {
                    kind: FailureKind::Timeout,
                    message: if stalled {
                        format!(
                            "no stream data for {} ms before any content",
                            stall.as_millis()
                        )
                    } else {
                        "no stream content before the first-byte timeout".into()
                    },
                    timer: Some(if stalled {
                        Timer::Stall
                    } else {
                        Timer::FirstContent
                    }),
                    since: last.unwrap_or(limit),
                });
            }
            Ok(None) if scanner.done => break,
            Ok(None) => return Err(Stopped::failed("stream ended before any content".into())),
            Ok(Some(Err(e))) => {
                return Err(Stopped::failed(format!(
                    "stream failed before any content: {e}"
                )))
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let feed = scanner.feed(data);
        // As in the relay: only data, events and bytes of a line still being
        // written are progress. A keep-alive (comment or `ping` event)
        // neither holds off the stall timer nor counts as an event in the
        // stream's silences.
        if feed.activity {
            let now = Instant::now();
            last = Some(now);
            lease.activity(now);
        }
        if let Some(bad) = feed.bad {
            return Err(Stopped::failed(format!("{bad} before any content")));
        }
        if scanner.upstream_error {
            return Err(Stopped::failed(
                "upstream sent an error event before any content".into(),
            ));
        }
        held.push(feed.forward);
        if scanner.committable() || held.len() > MAX_HELD {
            break;
        }
    }
    Ok(Committed {
        parts,
        prefix: held.freeze(),
        body,
        scanner,
    })
}
