//! What a connection's IO and its requests share: how many requests are in
//! flight (so that an idle connection can be told from a busy one), whether
//! the last request's body is still unread (an early answer: closing then
//! waits for the rest of the body, see [`super::io`]; [`RequestBody`] tells
//! when it was read to its end), and the HTTP/2 streams waiting on a client
//! that stopped reading them.
//!
//! HTTP/2 flow control lets a client stop one stream without stopping the
//! socket: hyper then simply stops polling that stream's body, so the body
//! cannot notice by itself. Such a response body is kept in a [`Slot`] the
//! connection can reach; the connection's IO timer ([`super::io`]) scans the
//! slots and drops the body of a stream whose last frame has waited for the
//! client longer than the write-stall timeout. Dropping a relayed body
//! cancels the upstream request and releases its lease.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::{BoxError, ProxyBody};

/// One connection's shared state.
pub(super) struct ConnState {
    epoch: Instant,
    /// Requests started; `started - ended` are in flight.
    started: AtomicU64,
    /// Requests whose response body is finished or dropped.
    ended: AtomicU64,
    /// The last request started came with a body not yet read to its end.
    unread: AtomicBool,
    /// Number of entries in `watched` (read without the lock).
    watching: AtomicUsize,
    watched: Mutex<Vec<Weak<Slot>>>,
    /// Told once the connection has served its `max_requests_per_connection`.
    spent: tokio::sync::Notify,
}

/// A request in flight, from the service call until its response body ends.
pub(super) struct Busy(Arc<ConnState>);

impl ConnState {
    pub(super) fn new(epoch: Instant) -> Arc<Self> {
        Arc::new(Self {
            epoch,
            started: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            unread: AtomicBool::new(false),
            watching: AtomicUsize::new(0),
            watched: Mutex::new(Vec::new()),
            spent: tokio::sync::Notify::new(),
        })
    }

    /// Requests started on this connection so far.
    pub(super) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The connection has started its last request: it closes gracefully.
    pub(super) fn spent(&self) {
        self.spent.notify_one();
    }

    /// Completes once [`Self::spent`] was called.
    pub(super) async fn spent_notified(&self) {
        self.spent.notified().await;
    }

    /// A request starts; `body`: it comes with a body, unread so far.
    pub(super) fn enter(self: &Arc<Self>, body: bool) -> Busy {
        self.unread.store(body, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Release);
        Busy(self.clone())
    }

    /// Requests started and ended, read so that `started >= ended`.
    pub(super) fn counts(&self) -> (u64, u64) {
        let ended = self.ended.load(Ordering::Acquire);
        (self.started.load(Ordering::Acquire), ended)
    }

    /// Requests ended (a cheap check for "something may have gone idle").
    pub(super) fn ended(&self) -> u64 {
        self.ended.load(Ordering::Acquire)
    }

    /// The last request came with a body that was not read to its end:
    /// it was answered early (413, 401, 404...), and the client may still
    /// be sending.
    pub(super) fn body_unread(&self) -> bool {
        self.unread.load(Ordering::Relaxed)
    }

    /// Whether any HTTP/2 stream is watched for a stalled client.
    pub(super) fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed) > 0
    }

    fn watched(&self) -> MutexGuard<'_, Vec<Weak<Slot>>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops the body of every watched stream whose last frame has waited
    /// for the client for `stall` or longer; forgets finished streams.
    /// Returns how many were dropped.
    pub(super) fn scan(&self, now: Instant, stall: Duration) -> usize {
        let now_ms = self.millis(now).saturating_add(1);
        let stall_ms = u64::try_from(stall.as_millis()).unwrap_or(u64::MAX);
        let mut stalled = Vec::new();
        {
            let mut watched = self.watched();
            watched.retain(|w| {
                let Some(slot) = w.upgrade() else {
                    return false;
                };
                let since = slot.waiting.load(Ordering::Relaxed);
                if since != 0 && now_ms.saturating_sub(since) >= stall_ms {
                    stalled.extend(slot.lock().take());
                    return false;
                }
                true
            });
            self.watching.store(watched.len(), Ordering::Relaxed);
        }
        // Dropped outside the locks: a relayed body's drop releases its
        // lease and closes the upstream connection.
        let n = stalled.len();
        drop(stalled);
        n
    }
}

impl Busy {
    /// The body hyper will send for this request. `h2`: the request came
    /// over HTTP/2, where a relayed stream is watched for a stalled client.
    pub(super) fn respond(self, body: ProxyBody, h2: bool) -> ResponseBody {
        if !(h2 && matches!(body, ProxyBody::Relay(_))) {
            return ResponseBody(Kind::Direct { body, _busy: self });
        }
        let state = self.0.clone();
        let slot = Arc::new(Slot {
            epoch: state.epoch,
            waiting: AtomicU64::new(0),
            body: Mutex::new(Some((body, self))),
        });
        let mut watched = state.watched();
        watched.push(Arc::downgrade(&slot));
        state.watching.store(watched.len(), Ordering::Relaxed);
        ResponseBody(Kind::Watched(slot))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Release);
    }
}

/// A request body that tells its connection when it has been read to its
/// end, so that a close after it needs no lingering (see `server/io.rs`).
/// A thin wrapper: one flag store, once.
pub struct RequestBody {
    inner: Incoming,
    /// Until the end is read; `None` for a request without a body.
    conn: Option<Arc<ConnState>>,
}

impl RequestBody {
    /// Wraps the body of the request `conn` has just [entered](ConnState::enter).
    pub(super) fn new(inner: Incoming, conn: &Arc<ConnState>) -> Self {
        let conn = (!inner.is_end_stream()).then(|| conn.clone());
        Self { inner, conn }
    }

    /// The hyper body, no longer watched: for a handler that reads no body
    /// (the connection then counts it as unread).
    pub fn into_inner(self) -> Incoming {
        self.inner
    }

    fn read_to_end(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.unread.store(false, Ordering::Relaxed);
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.read_to_end(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.read_to_end(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A watched HTTP/2 response body.
struct Slot {
    epoch: Instant,
    /// Milliseconds since `epoch`, plus one, at which a frame was handed to
    /// hyper and the next poll has not come yet; 0 otherwise.
    waiting: AtomicU64,
    body: Mutex<Option<(ProxyBody, Busy)>>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<(ProxyBody, Busy)>> {
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The response body of every request: Lifeline's [`ProxyBody`] and the
/// request's [`Busy`] mark, released when hyper is done with it.
pub struct ResponseBody(Kind);

enum Kind {
    /// The request stays in flight until the body is dropped.
    Direct {
        body: ProxyBody,
        _busy: Busy,
    },
    Watched(Arc<Slot>),
}

const STALLED: &str = "the client stopped reading this stream";

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Direct { body, .. } => Pin::new(body).poll_frame(cx),
            Kind::Watched(slot) => {
                let mut body = slot.lock();
                let Some((b, _)) = body.as_mut() else {
                    return Poll::Ready(Some(Err(STALLED.into())));
                };
                slot.waiting.store(0, Ordering::Relaxed);
                let polled = Pin::new(b).poll_frame(cx);
                if let Poll::Ready(Some(Ok(_))) = &polled {
                    let ms = u64::try_from(slot.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                    slot.waiting.store(ms.saturating_add(1), Ordering::Relaxed);
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Direct { body, .. } => body.is_end_stream(),
            Kind::Watched(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Direct { body, .. } => body.size_hint(),
            Kind::Watched(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn in_flight_counts_follow_the_response_body() {
        let st = ConnState::new(Instant::now());
        assert_eq!(st.counts(), (0, 0));
        let busy = st.enter(true);
        assert!(st.body_unread());
        assert_eq!(st.counts(), (1, 0));
        let body = busy.respond(ProxyBody::full(Bytes::from_static(b"x")), true);
        assert_eq!(st.counts(), (1, 0));
        assert!(!st.watching(), "a whole body is never watched");
        drop(body);
        assert_eq!(st.counts(), (1, 1));
        assert_eq!(st.ended(), 1);
    }
}
