//! The socket as hyper sees it: a `TcpStream` with the listener's clocks.
//!
//! hyper and hyper-util leave these gaps, which [`ConnIo`] closes:
//!
//! - **Idle connections.** hyper-util's protocol detection waits for the
//!   first bytes without a timeout, and an HTTP/2 connection with no open
//!   stream is never closed; hyper's own header timeout also runs while an
//!   HTTP/1.1 connection merely waits between keep-alive requests. Here a
//!   connection with no request in flight ([`ConnState`]) gets
//!   `idle_timeout`: before its first byte, between keep-alive requests, an
//!   HTTP/2 connection with no open stream (whatever frames such as `PING`
//!   it sends). Once an HTTP/1.1 request head has begun, it has
//!   `header_read_timeout` from its first byte. The read side reports the
//!   end: end of file when idle (hyper closes quietly), an error when a head
//!   was cut off.
//! - **A client that stops reading.** hyper stops polling a response body
//!   while the socket cannot take more, so a stalled client would hold its
//!   stream, and the stream's upstream lease, for ever. A write that stays
//!   pending for `write_stall` fails; hyper then drops the connection and
//!   its response bodies, which cancels the upstream requests and releases
//!   their leases. HTTP/2 streams stalled by flow control alone are dropped
//!   by [`ConnState::scan`], run from the same timer.
//! - **An early answer the client can read.** When hyper answers before
//!   reading the whole request body (413, 401, 404...), it stops reading and
//!   closes the connection; closing a socket with unread data sends a reset,
//!   and a client still sending its body sees a broken pipe instead of the
//!   answer (official SDKs then resend the whole body). After the answer
//!   is written, the write side is shut down and the rest of the body is
//!   read and discarded, up to `linger_bytes` and `linger`, and until
//!   `linger_gap` passes without data, before closing (a "lingering close",
//!   as nginx does). Only then: a close after a request whose body was read
//!   to its end (an idle timeout, `Connection: close`) is immediate.
//!
//! - **Errors hyper writes itself.** When an HTTP/1.1 request head cannot
//!   be parsed, hyper answers on its own (431 for a head over
//!   `max_header_bytes` or with too many headers, 414 for a request target
//!   over its limit, 400 for a malformed request line or header) with an
//!   empty body, and offers no hook to change it. A write on a connection
//!   with no request in flight whose bytes are exactly such a canned head
//!   (status line, then only `content-length: 0`, `date` and `connection`)
//!   is replaced by the same status with a JSON error body that both
//!   protocols' SDKs read ([`canned`]: the request's path is unknown, since
//!   its head could not be parsed). Our own answers are always written while their
//!   request is in flight, so they are never taken for one.
//!
//! Every refusal here is counted in `lifeline_listener_refusals_total`
//! ([`Refusals`]).
//!
//! Everything runs in the connection's own task: the timers are polled with
//! the task's waker from whichever side hyper polls. No extra task, no clock
//! read per read or write, a few atomic loads per poll.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use super::conn::ConnState;
use super::Refusals;

/// The listener's clocks and bounds, shared by its connections.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// No request in flight and nothing received (or only HTTP/2 frames).
    pub idle: Duration,
    /// From the first byte of an HTTP/1.1 request head to its end.
    pub header: Duration,
    /// A write that cannot proceed for this long fails.
    pub write_stall: Duration,
    /// Longest lingering close.
    pub linger: Duration,
    /// A lingering close ends after this long without data.
    pub linger_gap: Duration,
    /// Most bytes discarded in a lingering close.
    pub linger_bytes: u64,
    /// `max_header_bytes`, named in the 431 answer.
    pub header_bytes: usize,
}

/// The first bytes of HTTP/2's connection preface ("PRI * HTTP/2.0...").
const H2_PREFIX: &[u8] = b"PRI ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// This many bytes of [`H2_PREFIX`] matched so far.
    Sniffing(usize),
    Http1,
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A request is in flight.
    Busy,
    /// Nothing in flight; closed at `idle_until`.
    Idle,
    /// An HTTP/1.1 request head has begun; closed at this instant.
    Head(Instant),
}

/// Why the read side gave up.
enum Expired {
    Idle,
    Header,
}

/// A lingering close in progress.
struct Linger {
    /// Bytes still to discard.
    left: u64,
    /// The end of the whole lingering close.
    until: Instant,
}

/// An accepted socket, in clear or after a TLS handshake.
pub(super) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: rustls's connection state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A canned answer being written in place of hyper's.
struct Rewrite {
    bytes: Bytes,
    /// How many bytes hyper handed over (reported written once `bytes` are).
    replaces: usize,
}

/// An accepted socket with idle, header, write-stall and lingering-close
/// handling (see the module docs).
pub(super) struct ConnIo {
    io: Stream,
    peer: SocketAddr,
    state: Arc<ConnState>,
    refusals: Arc<Refusals>,
    rewrite: Option<Rewrite>,
    /// A canned error was written: the client's head may be partly unread,
    /// so the close lingers.
    canned: bool,
    /// A timeout has already been reported (and counted): hyper may read
    /// again before it closes.
    expired: bool,
    limits: Limits,
    proto: Proto,
    mode: Mode,
    idle_until: Instant,
    /// `ConnState::counts` when `mode` was last worked out.
    seen: (u64, u64),
    /// When the watched HTTP/2 streams are next scanned.
    next_scan: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    armed: Instant,
    /// Since when a write has been pending, with its timer.
    write_timer: Option<Pin<Box<Sleep>>>,
    write_blocked: bool,
    linger: Option<Linger>,
}

impl ConnIo {
    pub(super) fn new(
        io: Stream,
        peer: SocketAddr,
        (state, refusals): (Arc<ConnState>, Arc<Refusals>),
        limits: Limits,
        now: Instant,
    ) -> Self {
        let idle_until = now + limits.idle;
        Self {
            io,
            peer,
            state,
            refusals,
            rewrite: None,
            canned: false,
            expired: false,
            limits,
            proto: Proto::Sniffing(0),
            mode: Mode::Idle,
            idle_until,
            seen: (0, 0),
            next_scan: None,
            timer: Box::pin(tokio::time::sleep_until(idle_until)),
            armed: idle_until,
            write_timer: None,
            write_blocked: false,
            linger: None,
        }
    }

    /// Works out `mode` again if a request started or ended since.
    fn refresh(&mut self) {
        let counts = self.state.counts();
        if counts == self.seen {
            return;
        }
        self.seen = counts;
        if counts.0 != counts.1 {
            self.mode = Mode::Busy;
        } else {
            // Requests came and went: a new idle period starts now.
            self.mode = Mode::Idle;
            self.idle_until = Instant::now() + self.limits.idle;
        }
    }

    /// Bytes arrived.
    fn on_read(&mut self, bytes: &[u8]) {
        if let Proto::Sniffing(before) = self.proto {
            let rest = &H2_PREFIX[before..];
            let n = rest.iter().zip(bytes).take_while(|(a, b)| a == b).count();
            self.proto = if n == rest.len() {
                Proto::Http2
            } else if n == bytes.len() {
                Proto::Sniffing(before + n)
            } else {
                Proto::Http1
            };
            if self.proto == Proto::Http2 && matches!(self.mode, Mode::Head(_)) {
                // The preface arrived in pieces: idle after all.
                self.mode = Mode::Idle;
            }
        }
        self.refresh();
        // HTTP/2 frames outside a stream (PING, SETTINGS) are no request:
        // only an HTTP/1.1 head (or what may still become one) starts the
        // header clock.
        if self.mode == Mode::Idle && self.proto != Proto::Http2 {
            self.mode = Mode::Head(Instant::now() + self.limits.header);
        }
    }

    fn scan_every(&self) -> Duration {
        (self.limits.write_stall / 4).max(Duration::from_millis(10))
    }

    /// Arms the read-side timer for what the connection waits for now, and
    /// acts on it when it fires: scans watched streams, or reports an idle
    /// connection or a cut-off head.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            self.refresh();
            if !self.state.watching() {
                self.next_scan = None;
            } else if self.next_scan.is_none() {
                self.next_scan = Some(Instant::now() + self.scan_every());
            }
            let deadline = match self.mode {
                Mode::Busy => None,
                Mode::Idle => Some(self.idle_until),
                Mode::Head(at) => Some(at),
            };
            let Some(target) = deadline.into_iter().chain(self.next_scan).min() else {
                return Poll::Pending;
            };
            if self.armed != target {
                self.timer.as_mut().reset(target);
                self.armed = target;
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // `target` has passed (a timer never fires early; taking the
            // later of the two keeps this loop from spinning on a coarse
            // clock).
            let now = Instant::now().max(target);
            if self.next_scan.is_some_and(|at| at <= now) {
                let dropped = self.state.scan(now, self.limits.write_stall);
                if dropped > 0 {
                    self.refusals.write_stall.inc_by(dropped as u64);
                    tracing::info!(
                        message = "HTTP/2 client stopped reading; stream ended and its upstream request cancelled.",
                        peer = %self.peer,
                        streams = dropped,
                        stall_ms = self.limits.write_stall.as_millis() as u64,
                    );
                }
                self.next_scan = None;
            }
            match self.mode {
                Mode::Idle if self.idle_until <= now => return Poll::Ready(Expired::Idle),
                Mode::Head(at) if at <= now => return Poll::Ready(Expired::Header),
                _ => {}
            }
        }
    }

    /// Before a write: if a request ended (or a stream is newly watched)
    /// since the read side last looked, arm the timer from here, since
    /// hyper may not poll the read side again until the client sends.
    fn before_write(&mut self, cx: &mut Context<'_>) {
        let ended_since = self.state.ended() != self.seen.1;
        let unscanned = self.next_scan.is_none() && self.state.watching();
        if (ended_since || unscanned) && self.poll_timer(cx).is_ready() {
            // The read side reports it.
            cx.waker().wake_by_ref();
        }
    }

    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.write_blocked = false;
            return res;
        }
        let stall = self.limits.write_stall;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if !self.write_blocked {
            self.write_blocked = true;
            timer.as_mut().reset(Instant::now() + stall);
        }
        if timer.as_mut().poll(cx).is_ready() {
            self.refusals.write_stall.inc();
            tracing::info!(
                message = "Client stopped reading; connection closed.",
                peer = %self.peer,
                stall_ms = stall.as_millis() as u64,
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} ms", stall.as_millis()),
            )));
        }
        Poll::Pending
    }

    /// If `buf` (`total` bytes in all) is hyper's canned answer to a head
    /// it could not parse, writes OpenAI's shape in its place (see the
    /// module docs); `None` for any other write.
    fn poll_canned(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        total: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        if self.rewrite.is_none() {
            if self.proto == Proto::Http2 || buf.len() != total || buf.len() > canned::LONGEST {
                return None;
            }
            let (started, ended) = self.state.counts();
            if started != ended {
                return None;
            }
            let (status, reason) = canned::parse(buf)?;
            let bytes = canned::answer(status, reason, self.limits.header_bytes);
            let counter = match status {
                400 => &self.refusals.malformed,
                _ => &self.refusals.header_too_large,
            };
            counter.inc();
            tracing::info!(
                message = "Request head refused.",
                peer = %self.peer,
                status,
            );
            self.canned = true;
            self.rewrite = Some(Rewrite {
                bytes,
                replaces: total,
            });
        }
        let rewrite = self.rewrite.as_mut()?;
        while !rewrite.bytes.is_empty() {
            let res = Pin::new(&mut self.io).poll_write(cx, &rewrite.bytes);
            match res {
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => {
                    let _ = rewrite.bytes.split_to(n);
                }
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => {
                    let pending: Poll<io::Result<usize>> = Poll::Pending;
                    return Some(self.after_write(cx, pending));
                }
            }
        }
        let replaced = rewrite.replaces;
        self.rewrite = None;
        self.write_blocked = false;
        Some(Poll::Ready(Ok(replaced)))
    }

    /// Reads and discards what the client still sends, after the answer.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 8192];
        loop {
            let Some(linger) = self.linger.as_mut().filter(|l| l.left > 0) else {
                return Poll::Ready(());
            };
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let n = buf.filled().len() as u64;
                    linger.left = linger.left.saturating_sub(n);
                    if linger.left == 0 {
                        return Poll::Ready(());
                    }
                    let next = (Instant::now() + self.limits.linger_gap).min(linger.until);
                    self.timer.as_mut().reset(next);
                    self.armed = next;
                }
                // The client closed, or reset: done.
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => {
                    return if self.timer.as_mut().poll(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.on_read(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_timer(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Expired::Idle) => {
                    // Housekeeping after requests; a refusal before any.
                    if this.seen.0 == 0 && !std::mem::replace(&mut this.expired, true) {
                        this.refusals.idle.inc();
                    }
                    tracing::debug!(message = "Idle connection closed.", peer = %this.peer);
                    // End of file: hyper closes an idle connection quietly.
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Expired::Header) => {
                    if !std::mem::replace(&mut this.expired, true) {
                        this.refusals.header_timeout.inc();
                    }
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )))
                }
            },
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(res) = this.poll_canned(cx, buf, buf.len()) {
            return res;
        }
        this.before_write(cx);
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A head is one buffer: hyper's canned error is the only slice.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let first: &[u8] = bufs.iter().find(|b| !b.is_empty()).map_or(&[], |b| b);
        if let Some(res) = this.poll_canned(cx, first, total) {
            return res;
        }
        this.before_write(cx);
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Not progress: a flush of a `TcpStream` is always ready.
        let this = self.get_mut();
        this.before_write(cx);
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            // HTTP/2 ends with GOAWAY; an HTTP/1.1 request without a body,
            // or whose body was read to its end, left nothing unread (an
            // idle keep-alive connection or `Connection: close` after an
            // ordinary POST closes at once and frees its slot).
            if this.proto == Proto::Http2 || !(this.state.body_unread() || this.canned) {
                return Poll::Ready(Ok(()));
            }
            let now = Instant::now();
            let until = now + this.limits.linger;
            let first = (now + this.limits.linger_gap).min(until);
            this.timer.as_mut().reset(first);
            this.armed = first;
            this.linger = Some(Linger {
                left: this.limits.linger_bytes,
                until,
            });
        }
        ready!(this.poll_linger(cx));
        if let Some(linger) = this.linger.as_mut() {
            linger.left = 0;
        }
        Poll::Ready(Ok(()))
    }
}

/// hyper's canned answers to a request head it could not parse, and
/// Lifeline's replacements.
pub(super) mod canned {
    use bytes::Bytes;

    /// Longer writes are never a canned head (status line, `content-length:
    /// 0`, `connection: close` and a 29-byte date).
    pub(super) const LONGEST: usize = 160;

    const ANSWERS: [(u16, &str); 3] = [
        (400, "Bad Request"),
        (414, "URI Too Long"),
        (431, "Request Header Fields Too Large"),
    ];

    /// The status of a canned head: a status line of [`ANSWERS`], then only
    /// `content-length: 0`, `date` and `connection` headers, then the blank
    /// line, and nothing after it.
    pub(super) fn parse(buf: &[u8]) -> Option<(u16, &'static str)> {
        let text = std::str::from_utf8(buf).ok()?;
        let head = text.strip_suffix("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let rest = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
        let &(status, reason) = ANSWERS
            .iter()
            .find(|(code, reason)| rest == format!("{code} {reason}"))?;
        for line in lines {
            let (name, value) = line.split_once(':')?;
            let ok = match name.to_ascii_lowercase().as_str() {
                "content-length" => value.trim() == "0",
                "date" | "connection" => true,
                _ => false,
            };
            if !ok {
                return None;
            }
        }
        Some((status, reason))
    }

    /// The same status with a JSON error body that OpenAI's and
    /// Anthropic's SDKs both read: Anthropic's
    /// `{"type":"error","error":{"type","message"}}` with OpenAI's `code`
    /// and `param` beside them in `error` (the path of a request whose head
    /// could not be parsed is unknown, so its protocol is too).
    pub(super) fn answer(status: u16, reason: &str, header_bytes: usize) -> Bytes {
        let (message, code) = match status {
            431 => (
                format!("The request line and headers are too large (at most {header_bytes} bytes and 100 headers)."),
                "headers_too_large",
            ),
            414 => (
                "The request target (URL) is too long.".to_string(),
                "uri_too_long",
            ),
            _ => (
                "We could not parse your request: the request line or a header is malformed."
                    .to_string(),
                "malformed_request",
            ),
        };
        let body = serde_json::json!({
            "type": "error",
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": null,
                "code": code,
            }
        })
        .to_string();
        Bytes::from(format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n{body}",
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        ))
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;

        #[test]
        fn canned_heads_are_recognised_and_nothing_else() {
            let d = "date: Mon, 30 Nov 2026 18:00:00 GMT";
            let head = |s: &str| format!("{s}\r\ncontent-length: 0\r\n{d}\r\n\r\n");
            assert_eq!(
                parse(head("HTTP/1.1 431 Request Header Fields Too Large").as_bytes()),
                Some((431, "Request Header Fields Too Large"))
            );
            assert_eq!(
                parse(head("HTTP/1.1 400 Bad Request").as_bytes())
                    .unwrap()
                    .0,
                400
            );
            assert_eq!(
                parse(head("HTTP/1.1 414 URI Too Long").as_bytes())
                    .unwrap()
                    .0,
                414
            );
            // Our own 400 has a body and a content type: never rewritten.
            let own = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
            assert_eq!(parse(own.as_bytes()), None);
            assert_eq!(parse(head("HTTP/1.1 200 OK").as_bytes()), None);
            assert_eq!(
                parse(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"),
                None
            );
        }

        #[test]
        fn the_answer_is_read_by_both_protocols() {
            let a = answer(431, "Request Header Fields Too Large", 65536);
            let text = std::str::from_utf8(&a).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
            assert!(head.contains("content-type: application/json"));
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"]["code"], "headers_too_large");
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert!(v["error"]["param"].is_null());
            // Anthropic's shape too.
            assert_eq!(v["type"], "error");
            assert!(v["error"]["message"].is_string());
        }
    }
}
