//! Relaying a committed SSE stream to the client, and ending it honestly.
//!
//! Before the first content, the attempt loop owns the stream and may still
//! fail over ([`crate::attempt`]). Once committed, [`RelayBody`] forwards
//! upstream frames as they arrive (hyper pulls, so a slow client slows the
//! upstream read: backpressure without buffers), and ends the stream in one
//! of three ways:
//!
//! - **complete**: `[DONE]` (or the Responses API's terminal event) was
//!   relayed; or the answer finished (a `finish_reason` for every choice the
//!   request asked for with `n`) and the upstream then closed or went quiet
//!   for [`FINISH_GRACE`] without `[DONE]`: Lifeline adds `data: [DONE]` so
//!   the client finishes promptly. Anything sent meanwhile (the usage chunk
//!   of `stream_options.include_usage`) is relayed first, and restarts the
//!   grace.
//! - **continued**: a chat stream handed a [`Seed`] at commit
//!   (continuation on) that breaks after content is not ended: the broken
//!   deployment's lease records a failure, a continuation attempt runs, and
//!   its stream is relayed into the same client stream through a
//!   [`resume::Splice`] (see [`resume`]); it may break and be continued
//!   again. Such a stream counts as broken after the deployment's adaptive
//!   stall figure rather than the idle timeout, while it could be
//!   continued (no tool call started). An upstream error event after
//!   content is such a break: it is not relayed while the stream may be
//!   continued. A stream whose output reached the client's `max_tokens`
//!   is not continued but ends as finished by length. It then ends in one
//!   of the other ways, counted once.
//! - **broken**: the upstream reset, stalled past the idle timeout, sent a
//!   malformed chunk, or closed before the answer finished, and nothing
//!   continued it. The client gets an SSE `error` event and no `[DONE]`: a
//!   broken answer never looks complete. Counted as a failure of the
//!   deployment.
//! - **cancelled**: the client went away; the upstream body is dropped at
//!   once, which closes the upstream connection.
//!
//! The endings speak the client's wire ([`RelayBody::client`]), written by
//! its adapter ([`broken_event`], [`Protocol::missing_end`]): an Anthropic
//! client's broken stream ends with Anthropic's `event: error`
//! (`{"type":"error","error":{"type":"api_error",...}}`), and an answer that
//! finished without its terminal event gets `message_stop` instead of
//! `[DONE]`. A translated stream ([`RelayBody::transcode`]: the deployment
//! speaks the other protocol) is scanned in the upstream's grammar, and
//! each batch the scanner releases (whole lines, or whole events) goes
//! through a [`Transcoder`] to the client's; its missing end is
//! [`Transcoder::finish`]'s, and an event it cannot translate ends the
//! stream as broken, like a malformed one.
//!
//! Lifeline's endings always start a new event, and never make one without
//! data: the scanner releases whole events of the event grammars (Anthropic's,
//! the Responses API's) and never an `event:` line without the line after
//! it, and a transcoder writes whole events, so the client is on an event
//! boundary, except in a chat stream relayed as is, which is released line
//! by line: there the ending starts with a blank line, which ends the event
//! whose `data:` line went out last ([`Protocol::whole_events`]).
//!
//! Keep-alives (`: ping` comments, Anthropic's `ping` events) are no
//! progress: they restart neither the idle timer nor the stream's gaps.

mod continued;
pub mod resume;

pub use continued::Seed;
pub mod sse;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::admission::Hold;
use crate::context::Charge;
use crate::health::latency::LatencyKind;
use crate::health::quota::QuotaCharge;
use crate::health::Outcome;
use crate::providers::stream::broken_event;
use crate::providers::Endpoint;
use crate::route::{Lease, Model};
use crate::telemetry::{Metrics, StreamEnding};
use crate::translate::stream::Transcoder;
use crate::translate::Wire;
use continued::Continuation;
use resume::{trailing_comment, Ask, Method, Resume, Resumed, Resuming, Sent, Splice, MAX_SENT};
pub use sse::{Protocol, Scanner};

/// Errors a response body can end with (the connection is then closed).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The memory reservation for the bytes a continued stream keeps grows in
/// steps of this much.
const SENT_STEP: u64 = 16 * 1024;

/// How long after a `finish_reason` the relay waits for `[DONE]`.
pub const FINISH_GRACE: Duration = Duration::from_secs(2);

/// Request-level accounting that ends with the stream.
pub struct StreamEnd {
    /// Metrics sink.
    pub metrics: Arc<Metrics>,
    /// Public model (its name for the metrics, its SLI counters).
    pub model: Arc<Model>,
    /// Which endpoint, for the SLI counters' family.
    pub endpoint: Endpoint,
    /// When the client request started.
    pub started: Instant,
    /// Time to first content, for the deployment's health record.
    pub ttft: Duration,
    /// Time from the request's arrival to its first content (what the
    /// client waited), for the SLI counters.
    pub first_token: Duration,
    /// Request id, for logs.
    pub request_id: http::HeaderValue,
    /// The key's id, for logs (`None`: no key).
    pub key_id: Option<Arc<str>>,
    /// The key's token charge, settled when the stream ends.
    pub charge: Option<Charge>,
    /// The provider's token-quota charge, corrected with the stream's
    /// `usage` when it ends (not after a continuation, whose usage is
    /// another attempt's).
    pub quota: Option<QuotaCharge>,
}

impl StreamEnd {
    /// Counts the stream's request in the model's SLI counters: its answer
    /// time is its time to first token.
    fn stream_ended(&self, status: u16, ending: StreamEnding) {
        self.model.sli.family(self.endpoint.family_index()).stream(
            status,
            self.first_token,
            ending,
        );
    }

    fn key_id(&self) -> &str {
        self.key_id.as_deref().unwrap_or("-")
    }

    /// Settles the key's token charge: the stream's `usage` if it sent one
    /// (plus `before`, the output of the upstream streams a continuation
    /// replaced, which that usage does not count); else, for chat and
    /// Responses streams, the prompt's estimate plus one token per event of
    /// every upstream stream (about what providers send); else the estimate
    /// stands.
    fn settle(&self, scanner: &Scanner, events: u64, before: u64) {
        if let (Some(q), Some(n), 0) = (&self.quota, scanner.usage, before) {
            q.settle(n);
        }
        let Some(charge) = &self.charge else { return };
        let used = match scanner.usage {
            Some(n) => n + before,
            None if scanner.protocol().open_ended() => charge.estimate,
            None => charge.prompt + events,
        };
        charge.settle(used);
    }
}

/// A committed stream being relayed to the client.
pub struct RelayBody {
    prefix: Option<Bytes>,
    upstream: Option<Incoming>,
    scanner: Scanner,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    /// The silence after which the stream counts as broken: the
    /// deployment's adaptive stall figure while the stream may be
    /// continued, else `idle_timeout`.
    stall: Duration,
    lease: Option<Lease>,
    /// Time to first content of the current upstream stream (the outcome
    /// its lease records).
    lease_ttft: Duration,
    /// The request's admission slot and memory reservation, released with
    /// the lease.
    hold: Option<Hold>,
    end: StreamEnd,
    ended: bool,
    /// The client's wire, for the endings Lifeline writes.
    client: Wire,
    /// Upstream grammar → the client's, for a translated stream.
    transcoder: Option<Box<Transcoder>>,
    /// Continuation after a break, when on ([`resume`]); inline and
    /// small, so that a stream that may be continued costs no allocation
    /// for it until it is sent its first frame, or breaks.
    cont: Option<Continuation>,
}

/// What the relay does after a break or the end of an upstream.
enum Next {
    /// Send this and go on.
    Frame(Option<Result<Frame<Bytes>, BoxError>>),
    /// A continuation attempt started: poll it.
    Resuming,
}

impl RelayBody {
    /// Wraps an upstream body whose first bytes (`prefix`) were already read.
    ///
    /// What the scanner learnt before commit counts as if the relay had
    /// seen it: an answer that already finished gets [`FINISH_GRACE`], not
    /// the idle timeout, to send `[DONE]`; a stream whose `[DONE]` (or
    /// terminal event) was in the prefix ends right after it, without
    /// waiting for the upstream to close.
    pub fn new(
        prefix: Bytes,
        upstream: Incoming,
        scanner: Scanner,
        idle_timeout: Duration,
        lease: Lease,
        end: StreamEnd,
    ) -> Self {
        let wait = if scanner.finished {
            FINISH_GRACE.min(idle_timeout)
        } else {
            idle_timeout
        };
        let lease_ttft = end.ttft;
        Self {
            prefix: (!prefix.is_empty()).then_some(prefix),
            upstream: Some(upstream),
            idle: Box::pin(tokio::time::sleep(wait)),
            scanner,
            idle_timeout,
            stall: idle_timeout,
            lease: Some(lease),
            lease_ttft,
            hold: None,
            end,
            ended: false,
            client: Wire::OpenAi,
            transcoder: None,
            cont: None,
        }
    }

    /// Continues the stream after a break with what `seed` makes (chat
    /// streams of one choice only), and counts it broken after `stall` of
    /// silence (the deployment's adaptive stall figure) instead of the idle
    /// timeout.
    pub fn continuation(&mut self, seed: Seed, stall: Duration) {
        if !self.scanner.protocol().is_chat() {
            return;
        }
        self.stall = stall.min(self.idle_timeout);
        if !self.scanner.finished {
            // As if the timer had been set with the stall figure.
            let at = self.idle.deadline() - (self.idle_timeout - self.stall);
            self.idle.as_mut().reset(at);
        }
        self.cont = Some(Continuation::new(seed));
    }

    /// The client speaks `wire` (default OpenAI's): the endings Lifeline
    /// writes are in its grammar.
    pub fn client(&mut self, wire: Wire) {
        self.client = wire;
    }

    /// Translates the relayed lines with `t` (the prefix given to
    /// [`RelayBody::new`] is already the client's).
    pub fn transcode(&mut self, t: Box<Transcoder>) {
        self.transcoder = Some(t);
    }

    /// Holds the request's admission slot and memory reservation until the
    /// stream ends (or the body is dropped).
    pub fn hold(&mut self, hold: Hold) {
        self.hold = Some(hold);
    }

    /// The silence allowed now.
    fn wait(&self) -> Duration {
        if self.scanner.finished {
            FINISH_GRACE.min(self.idle_timeout)
        } else {
            self.stall
        }
    }

    /// Data events of every upstream stream so far.
    fn events(&self) -> u64 {
        self.scanner.events + self.prior_events()
    }

    /// Whether the stream may still be continued after a break.
    pub fn continues(&self) -> bool {
        self.cont.as_ref().is_some_and(Continuation::open)
    }

    /// Bytes going to the client, kept for a continuation (up to
    /// [`MAX_SENT`], reserved in the request's memory budget in steps).
    fn out(&mut self, b: Bytes) -> Option<Result<Frame<Bytes>, BoxError>> {
        self.keep(&b);
        Some(Ok(Frame::data(b)))
    }

    fn finish(&mut self, ok: bool, why: &str) -> Option<Bytes> {
        // An upstream error event relayed to the client is not a success,
        // even when the upstream then ended the stream cleanly.
        let ok = ok && !self.scanner.upstream_error;
        let why = if !ok && why.is_empty() {
            "the upstream sent an error event"
        } else {
            why
        };
        self.upstream = None;
        self.ended = true;
        let outcome = if ok {
            Outcome::success(self.lease_ttft)
        } else {
            Outcome::failure(self.lease_ttft)
        };
        let deployment = self.lease.as_ref().map(|l| l.deployment().id.clone());
        if let Some(lease) = self.lease.take() {
            lease.finish(outcome);
        }
        self.hold = None;
        let events = self.events();
        let e = &self.end;
        e.metrics
            .stream(&e.model.name, if ok { "complete" } else { "broken" });
        e.metrics
            .request(&e.model.name, 200, e.started.elapsed().as_secs_f64());
        let ending = if ok {
            StreamEnding::Complete
        } else {
            StreamEnding::Broken
        };
        e.stream_ended(200, ending);
        e.metrics.in_flight().dec();
        e.settle(&self.scanner, events, self.output_before());
        let continued = self.continued();
        if ok {
            tracing::debug!(message = "Stream complete.", request_id = ?e.request_id, key_id = e.key_id(), events, continued);
            None
        } else {
            tracing::warn!(message = "Stream broken after content was sent.", request_id = ?e.request_id, key_id = e.key_id(), deployment = ?deployment, reason = why, continued);
            Some(broken_event(self.client, why, self.open()))
        }
    }
}

impl RelayBody {
    /// Whether the client may be inside an event: a line grammar relayed as
    /// is releases a `data:` line before its blank line has come. Whole
    /// events (an event grammar, or a translated stream, whose transcoder
    /// writes whole events) leave it on an event boundary.
    fn open(&self) -> bool {
        self.transcoder.is_none() && !self.scanner.protocol().whole_events()
    }
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(fut) = this.resuming() {
                let Poll::Ready((resume, got)) = fut.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                match this.resumed(resume, got) {
                    Ok(()) => continue,
                    Err(why) => {
                        let ev = this.finish(false, &why).unwrap_or_default();
                        return Poll::Ready(Some(Ok(Frame::data(ev))));
                    }
                }
            }
            if this.scanner.done && !this.ended {
                // `[DONE]` was read before commit (or before a continuation
                // was handed over): the prefix is the whole rest of the
                // stream, nothing is left to wait for.
                this.finish(true, "");
            }
            if let Some(p) = this.prefix.take() {
                return Poll::Ready(this.out(p));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let Some(up) = this.upstream.as_mut() else {
                // Not ended, yet nothing to read and no continuation running:
                // end honestly rather than silently.
                let why = this
                    .take_why()
                    .unwrap_or_else(|| "the stream could not be continued".into());
                let ev = this.finish(false, &why).unwrap_or_default();
                return Poll::Ready(Some(Ok(Frame::data(ev))));
            };
            match Pin::new(up).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let was_error = this.scanner.upstream_error;
                    let mut feed = this.scanner.feed(data);
                    if this.scanner.upstream_error && !was_error && feed.bad.is_none() {
                        // An error event after content (Anthropic's
                        // `overloaded_error` after HTTP 200, OpenAI's
                        // `{"error":…}` chunk) is a break like any other:
                        // while the stream may be continued, the client
                        // does not get it.
                        this.withhold_error(&mut feed);
                    }
                    // Only data, events and bytes of a line still being
                    // written prove progress: a keep-alive (comment or
                    // `ping` event) from a stuck upstream must not hold
                    // the stream.
                    if feed.activity {
                        let now = Instant::now();
                        let wait = this.wait();
                        this.idle.as_mut().reset(now + wait);
                        // The stream's longest silence, for adaptive deadlines.
                        if let Some(lease) = this.lease.as_mut() {
                            lease.activity(now);
                        }
                    }
                    let (forward, bad) = match this.transcoder.as_mut() {
                        None => (feed.forward, feed.bad),
                        Some(t) => match t.feed(&feed.forward) {
                            Ok(out) => (out, feed.bad),
                            Err(why) => (
                                Bytes::new(),
                                Some(format!("an event that cannot be translated ({why})")),
                            ),
                        },
                    };
                    let forward = match this.spliced(forward) {
                        Ok(f) => f,
                        Err(why) => {
                            this.abandon(&why);
                            continue;
                        }
                    };
                    if let Some(bad) = bad {
                        // What came before the bad event is the client's,
                        // and part of what a continuation continues.
                        this.keep(&forward);
                        if this.try_continue(&bad) {
                            if forward.is_empty() {
                                continue;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(forward))));
                        }
                        let ev = this.finish(false, &bad).unwrap_or_default();
                        return Poll::Ready(Some(Ok(Frame::data(join(forward, ev)))));
                    }
                    if this.scanner.done {
                        this.finish(true, "");
                    }
                    if !forward.is_empty() {
                        return Poll::Ready(this.out(forward));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let why = format!("upstream connection failed ({e})");
                    if this.try_continue(&why) {
                        continue;
                    }
                    let ev = this.finish(false, &why).unwrap_or_default();
                    return Poll::Ready(Some(Ok(Frame::data(ev))));
                }
                Poll::Ready(None) => {
                    match this.end_of_upstream(
                        true,
                        "upstream closed the stream before the answer finished",
                    ) {
                        Next::Frame(f) => return Poll::Ready(f),
                        Next::Resuming => continue,
                    }
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let stall = this.wait();
                        if stall < this.idle_timeout
                            && !this.scanner.finished
                            && !this.may_continue()
                        {
                            // Nothing could continue it (a tool call has
                            // started, say): the configured idle timeout
                            // applies, as to a stream without continuation.
                            let at = this.idle.deadline() + (this.idle_timeout - stall);
                            this.stall = this.idle_timeout;
                            this.idle.as_mut().reset(at);
                            continue;
                        }
                        if stall < this.idle_timeout && !this.scanner.finished {
                            // An adaptive stall: the silence is a sample of
                            // this deployment's gaps, so a deployment that
                            // really became slower gets a longer figure.
                            if let Some(lease) = this.lease.as_ref() {
                                lease
                                    .deployment()
                                    .observe_latency(LatencyKind::StreamGap, stall);
                            }
                        }
                        let why = format!("no data for {} ms", stall.as_millis());
                        match this.end_of_upstream(false, &why) {
                            Next::Frame(f) => return Poll::Ready(f),
                            Next::Resuming => continue,
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl RelayBody {
    /// The upstream ended or went quiet: complete if the answer finished,
    /// continued elsewhere or broken otherwise.
    fn end_of_upstream(&mut self, closed: bool, why: &str) -> Next {
        let mid_splice = self.mid_splice();
        if !mid_splice {
            if self.scanner.done || (closed && self.scanner.protocol().open_ended()) {
                self.finish(true, "");
                return Next::Frame(None);
            }
            let protocol = self.scanner.protocol();
            if self.scanner.finished && protocol.is_chat() {
                // What the client's grammar still needs to end, after the
                // trailing comment of a continued stream.
                let comment = self.comment();
                let end = match self.transcoder.as_mut() {
                    Some(t) => t.finish(),
                    None => protocol.missing_end(),
                };
                self.finish(true, "");
                return Next::Frame(Some(Ok(Frame::data(join(comment, end)))));
            }
        }
        if self.try_continue(why) {
            return Next::Resuming;
        }
        let ev = self.finish(false, why).unwrap_or_default();
        Next::Frame(Some(Ok(Frame::data(ev))))
    }
}

fn join(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    let mut out = BytesMut::with_capacity(a.len() + b.len());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out.freeze()
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        if !self.ended {
            // The client went away mid-stream: the lease records a neutral
            // outcome and the upstream body is dropped, closing its connection.
            let e = &self.end;
            e.metrics.stream(&e.model.name, "cancelled");
            e.metrics
                .request(&e.model.name, 499, e.started.elapsed().as_secs_f64());
            e.stream_ended(499, StreamEnding::Cancelled);
            e.metrics.in_flight().dec();
            e.settle(&self.scanner, self.events(), self.output_before());
            tracing::info!(message = "Client went away mid-stream.", request_id = ?e.request_id, key_id = e.key_id());
        }
    }
}
