//! Response bodies: whole bodies and paced server-sent-event streams.
//!
//! Every data-path request carries a [`Guard`] from the moment it arrives; the
//! guard moves into the response body and records how the request ended:
//! completed when the last frame is handed to hyper, cancelled when the body
//! (or the handler future, for hangs) is dropped first because the client went
//! away. The stream body yields one HTTP body frame per SSE event, paced in
//! place with a single timer, so a stream costs no extra task or channel.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::stats::{Ending, Recorder};

/// The bytes a stream's faults send in its API's grammar.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Grammar {
    /// Sent in place of the event `malformed_chunk_at` names.
    pub(crate) malformed: &'static [u8],
    /// The in-band error event `error_after_chunks` sends.
    pub(crate) error: &'static [u8],
}

/// Chat completions' stream faults.
pub(crate) const CHAT_GRAMMAR: Grammar = Grammar {
    malformed: b"data: {\"broken\n\n",
    error: b"data: {\"error\":{\"message\":\"Overloaded (simulated)\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
};

/// Records the end of one counted request exactly once.
pub(crate) struct Guard {
    recorder: Option<Arc<Recorder>>,
}

impl Guard {
    pub(crate) fn start(recorder: Arc<Recorder>, path: &str) -> Self {
        recorder.start(path);
        Self {
            recorder: Some(recorder),
        }
    }

    pub(crate) fn end(&mut self, ending: Ending) {
        if let Some(recorder) = self.recorder.take() {
            recorder.end(ending);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Dropped before anyone said how it ended: the client went away.
        self.end(Ending::Cancelled);
    }
}

/// When a stream event is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    /// The first event: after time-to-first-token.
    First,
    /// A generated token: one token interval after the previous one.
    Token,
    /// Right away.
    Now,
}

/// Produces the events of one stream, in order, lazily.
pub(crate) trait EventSource: Send + 'static {
    /// The next event, already framed (`data: ...\n\n`), or `None` at the end.
    fn next_event(&mut self) -> Option<(Pace, Bytes)>;
}

/// Timing and stream faults of one stream.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StreamPlan {
    pub(crate) first_delay: Duration,
    pub(crate) interval: Duration,
    pub(crate) cut_after: Option<u32>,
    pub(crate) stall_after: Option<u32>,
    pub(crate) malformed_at: Option<u32>,
    /// After this many events, the in-band error event, then the end.
    pub(crate) error_after: Option<u32>,
    pub(crate) grammar: Grammar,
}

/// A paced SSE stream with stream faults applied.
pub(crate) struct SseBody {
    source: Box<dyn EventSource>,
    plan: StreamPlan,
    /// Events handed to hyper so far; the fault counters count these.
    sent: u32,
    /// Fetched event waiting for its deadline.
    next: Option<Bytes>,
    deadline: Option<Instant>,
    /// Pacing anchor: when the previous token was due.
    anchor: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    /// The cut was announced by one `Pending`; the next poll fails.
    cutting: bool,
    done: bool,
    guard: Guard,
}

impl SseBody {
    fn fetch(&mut self) -> Option<Bytes> {
        let (pace, bytes) = self.source.next_event()?;
        let due = match pace {
            Pace::First => {
                self.anchor += self.plan.first_delay;
                Some(self.anchor)
            }
            Pace::Token => {
                self.anchor += self.plan.interval;
                Some(self.anchor)
            }
            Pace::Now => None,
        };
        self.deadline = due.filter(|due| *due > Instant::now());
        if let Some(deadline) = self.deadline {
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        Some(bytes)
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.stalled {
            // Never woken: the stream sits open until the client leaves.
            return Poll::Pending;
        }
        if self.next.is_none() {
            if self.plan.cut_after == Some(self.sent) {
                if !self.cutting {
                    // Let hyper flush what it has buffered first: it drops
                    // its write buffer when a body fails.
                    self.cutting = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                self.done = true;
                self.guard.end(Ending::Faulted);
                // A body error makes hyper close the connection without the
                // terminal chunk (HTTP/1.1) or reset the stream (HTTP/2). Not
                // an RST of the socket: that could destroy the N chunks still
                // unread in the client's receive buffer, and the fault
                // promises they arrive.
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "stream cut (simulated)",
                ))));
            }
            if self.plan.stall_after == Some(self.sent) {
                self.stalled = true;
                return Poll::Pending;
            }
            if self.plan.error_after == Some(self.sent) {
                // An error reported inside the stream, as providers do when
                // they fail after the headers: then a clean end.
                self.done = true;
                self.sent += 1;
                self.guard.end(Ending::Completed);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                    self.plan.grammar.error,
                )))));
            }
            match self.fetch() {
                Some(bytes) => self.next = Some(bytes),
                None => {
                    self.done = true;
                    self.guard.end(Ending::Completed);
                    return Poll::Ready(None);
                }
            }
        }
        if self.deadline.is_some() {
            if let Some(sleep) = &mut self.sleep {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            self.deadline = None;
        }
        let mut bytes = self.next.take().unwrap_or_default();
        if self.plan.malformed_at == Some(self.sent) {
            bytes = Bytes::from_static(self.plan.grammar.malformed);
        }
        self.sent += 1;
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

enum Kind {
    Full {
        data: Option<Bytes>,
        guard: Option<Guard>,
    },
    Sse(Box<SseBody>),
}

/// The body of every response the mock sends.
pub(crate) struct MockBody {
    kind: Kind,
}

impl MockBody {
    /// A whole body; `guard` (if any) is completed when the bytes are handed over.
    pub(crate) fn full(data: Bytes, guard: Option<Guard>) -> Self {
        Self {
            kind: Kind::Full {
                data: Some(data),
                guard,
            },
        }
    }

    /// A paced SSE stream.
    pub(crate) fn sse(source: Box<dyn EventSource>, plan: StreamPlan, guard: Guard) -> Self {
        Self {
            kind: Kind::Sse(Box::new(SseBody {
                source,
                plan,
                sent: 0,
                next: None,
                deadline: None,
                anchor: Instant::now(),
                sleep: None,
                stalled: false,
                cutting: false,
                done: false,
                guard,
            })),
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full { data, guard } => match data.take() {
                Some(bytes) => {
                    if let Some(mut guard) = guard.take() {
                        guard.end(Ending::Completed);
                    }
                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                }
                None => Poll::Ready(None),
            },
            Kind::Sse(sse) => sse.poll_event(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data, .. } => data.is_none(),
            Kind::Sse(sse) => sse.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Sse(_) => SizeHint::default(),
        }
    }
}
