//! The relay's side of a continuation: what was sent kept for it, the
//! break that starts one (an upstream error event withheld while one may
//! follow), the continuation stream swapped in, and the splice that fits
//! its output into the client's stream.
//!
//! What a stream that may be continued pays while it does not break is
//! kept small: the [`Seed`] the attempt side hands over at commit (no
//! allocation: the continuer itself is made from it at the first break),
//! and a reference to each frame sent: the first inline (an answer that
//! came whole with the first content costs no allocation), the others in
//! a vector allocated at the second frame. Everything a continuation needs
//! after a break ([`Broke`]) is allocated at the first break.

use std::ops::Range;

use http::HeaderValue;

use super::*;
use crate::route::Deployment;

/// Frames of a continued stream's client bytes kept after the first before
/// the vector of them first grows (its first allocation, at the second
/// frame).
const SENT_FRAMES: usize = 16;

/// What continuing a stream needs from its request, handed to the relay at
/// commit ([`RelayBody::continuation`]) and made into the attempt side's
/// [`Resume`] only at the first break, by [`Seed::make`]: a stream that never
/// breaks costs no allocation and no copy for it. The stream's accounting
/// ([`StreamEnd`]: metrics, model, request id, the key's charge) is shared,
/// not copied.
pub struct Seed {
    /// The client's body, as received.
    pub body: Bytes,
    /// Where its `model` value is.
    pub model_span: Range<usize>,
    /// The request's deadline.
    pub deadline: Instant,
    /// Attempts made before commit.
    pub attempts: u32,
    /// Deployments the request tried before commit other than the one that
    /// committed (that one is given to [`Seed::make`]: it is the one that
    /// broke). Usually empty: no allocation.
    pub tried: Vec<Arc<Deployment>>,
    /// Deployments that cannot take the request (the attempt loop's
    /// finding).
    pub ineligible: Vec<Arc<Deployment>>,
    /// Adaptive deadlines apply.
    pub adaptive: bool,
    /// The client's `anthropic-beta` header.
    pub beta: Option<HeaderValue>,
    /// The OpenAI client asked for the usage chunk.
    pub include_usage: bool,
    /// Makes the continuer from the seed, the stream's accounting and the
    /// deployment whose stream broke.
    pub make: fn(Seed, &StreamEnd, Arc<Deployment>) -> Box<dyn Resume>,
}

/// What runs continuation attempts: the seed until the first break, then
/// the continuer made from it.
enum Resumer {
    Seed(Seed),
    Ready(Box<dyn Resume>),
}

/// A stream's continuation state ([`resume`]): inline in the relay and
/// small; what a break needs beyond it is [`Broke`], allocated at the first
/// break.
pub(super) struct Continuation {
    /// Runs continuation attempts; `None` while one runs (it is inside
    /// `resuming`).
    resume: Option<Resumer>,
    /// The client bytes so far (reference counts, not copies): the first
    /// frame, then the others.
    first: Bytes,
    sent: Vec<Bytes>,
    sent_len: usize,
    /// Bytes of `sent` reserved in the request's memory budget.
    reserved: u64,
    /// From the first break on.
    broke: Option<Box<Broke>>,
    /// What the client was sent outgrew what may be kept after a
    /// continuation took over: nothing more is kept and no further break is
    /// continued, but the current continuation stream is still rewritten
    /// to fit the client's.
    full: bool,
}

/// A continued stream's state from its first break on.
#[derive(Default)]
struct Broke {
    /// A continuation attempt in progress.
    resuming: Option<Resuming>,
    /// What the client had at the last break.
    at_break: Option<Sent>,
    /// Filters the current continuation stream.
    splice: Option<Splice>,
    /// The method of the current continuation stream, until it fits.
    trying: Option<Method>,
    /// Continuations that fitted.
    continued: u32,
    /// The last method that fitted and its deployment (the trailing comment).
    last: Option<(Method, Arc<str>)>,
    /// Why the stream broke (the final error if nothing continues it).
    why: String,
    /// Data events of the upstream streams before the current one.
    prior_events: u64,
    /// The client's bytes stopped inside an event (no blank line after
    /// it): the continuation's first bytes start with one.
    separate: bool,
    /// Output tokens the client had when the current upstream stream took
    /// over (0 before a continuation): its usage does not count them.
    output_before: u64,
}

impl Continuation {
    /// Whether a break may still be continued (nothing says whether one
    /// would fit yet).
    pub(super) fn open(&self) -> bool {
        !self.full
    }

    pub(super) fn new(seed: Seed) -> Self {
        Self {
            resume: Some(Resumer::Seed(seed)),
            first: Bytes::new(),
            sent: Vec::new(),
            sent_len: 0,
            reserved: 0,
            broke: None,
            full: false,
        }
    }

    /// What the client was sent, parsed from the frames kept (at a break
    /// or a stall only).
    fn sent(&self, client: Wire) -> Sent {
        let mut all = Vec::with_capacity(self.sent.len() + 1);
        all.push(self.first.clone());
        all.extend(self.sent.iter().cloned());
        Sent::parse(&all, client)
    }
}

impl RelayBody {
    /// Keeps `b` (going to the client) for a continuation, if the stream
    /// may be continued.
    pub(super) fn keep(&mut self, b: &Bytes) {
        let Some(c) = self.cont.as_mut() else { return };
        if b.is_empty() || c.full {
            return;
        }
        c.sent_len += b.len();
        if c.sent_len as u64 > c.reserved && !self.reserve() {
            return;
        }
        let Some(c) = self.cont.as_mut() else { return };
        if c.first.is_empty() {
            c.first = b.clone();
            return;
        }
        if c.sent.capacity() == 0 {
            // Room for a typical answer's frames at once: pushing a frame
            // is then a reference count, not a reallocation.
            c.sent.reserve_exact(SENT_FRAMES);
        }
        c.sent.push(b.clone());
    }

    /// Reserves the bytes kept in the request's memory budget, in steps of
    /// [`SENT_STEP`]; `false`: too long to keep, or the budget cannot hold
    /// it, and this stream is no longer continued.
    #[cold]
    fn reserve(&mut self) -> bool {
        let Some(c) = self.cont.as_mut() else {
            return false;
        };
        let memory = self.hold.as_ref().and_then(|h| h.memory.as_ref());
        let mut keep = c.sent_len <= MAX_SENT;
        if let (true, Some(memory)) = (keep, memory) {
            let step = (c.sent_len as u64 - c.reserved).max(SENT_STEP);
            keep = memory.grow(step).is_ok();
            if keep {
                c.reserved += step;
            }
        } else if keep {
            // No budget to reserve in: nothing to count.
            c.reserved = MAX_SENT as u64;
        }
        if !keep {
            if let Some(memory) = memory {
                let _ = memory.resize(memory.bytes().saturating_sub(c.reserved));
            }
            if c.broke.is_some() {
                // A continuation stream is relayed: its events must still be
                // rewritten to follow the client's (block indexes, chunk
                // ids, usage), so the state stays; only what was sent goes.
                c.full = true;
                c.reserved = 0;
                c.first = Bytes::new();
                c.sent = Vec::new();
            } else {
                self.cont = None;
            }
            self.stall = self.idle_timeout;
        }
        keep
    }

    /// The continuation attempt in progress, if one is.
    pub(super) fn resuming(&mut self) -> Option<&mut Resuming> {
        self.cont.as_mut()?.broke.as_mut()?.resuming.as_mut()
    }

    /// A continuation attempt ended: its continuer is back, with the new
    /// stream or `None`. `Err`: nothing continues the stream, why it
    /// broke.
    pub(super) fn resumed(
        &mut self,
        resume: Box<dyn Resume>,
        got: Option<Resumed>,
    ) -> Result<(), String> {
        let Some(c) = self.cont.as_mut() else {
            return Err(String::new());
        };
        c.resume = Some(Resumer::Ready(resume));
        let Some(b) = c.broke.as_mut() else {
            return Err(String::new());
        };
        b.resuming = None;
        match got {
            Some(r) => {
                self.swap_in(r);
                Ok(())
            }
            None => Err(std::mem::take(&mut b.why)),
        }
    }

    /// Why the stream broke, if a continuation was tried (taken).
    pub(super) fn take_why(&mut self) -> Option<String> {
        self.cont
            .as_mut()
            .and_then(|c| c.broke.as_mut())
            .map(|b| std::mem::take(&mut b.why))
            .filter(|w| !w.is_empty())
    }

    /// Data events of the upstream streams before the current one.
    pub(super) fn prior_events(&self) -> u64 {
        self.broke().map_or(0, |b| b.prior_events)
    }

    /// Output tokens of the upstream streams before the current one (what
    /// the client had when the current one took over).
    pub(super) fn output_before(&self) -> u64 {
        self.broke().map_or(0, |b| b.output_before)
    }

    /// Continuations that fitted.
    pub(super) fn continued(&self) -> u32 {
        self.broke().map_or(0, |b| b.continued)
    }

    /// A continuation stream that must still find its seam is relayed:
    /// its end is not the answer's.
    pub(super) fn mid_splice(&self) -> bool {
        self.broke()
            .is_some_and(|b| b.trying.is_some() && b.trying != Some(Method::Prefill))
    }

    fn broke(&self) -> Option<&Broke> {
        self.cont.as_ref()?.broke.as_deref()
    }

    /// The upstream broke after content: starts a continuation attempt if
    /// this stream may be continued (continuation on, no error event
    /// relayed, no tool call started, the answer not finished). `true`:
    /// a continuation runs, or the output already reached the client's
    /// limit and the stream ends as finished by its length (its end is
    /// the next frame).
    pub(super) fn try_continue(&mut self, why: &str) -> bool {
        if self.ended || self.lease.is_none() {
            return false;
        }
        let Some(c) = self.cont.as_mut() else {
            return false;
        };
        if c.resume.is_none() || c.full {
            return false;
        }
        let sent = c.sent(self.client);
        if sent.ended || sent.tool_call {
            return false;
        }
        let (Some(resume), Some(lease)) = (c.resume.take(), self.lease.take()) else {
            return false;
        };
        let broken = lease.deployment().clone();
        // The first break makes the continuer from the seed.
        let resume = match resume {
            Resumer::Ready(r) => r,
            Resumer::Seed(seed) => (seed.make)(seed, &self.end, broken.clone()),
        };
        // The broken deployment's lease records its failure.
        lease.finish(Outcome::failure(self.lease_ttft));
        self.end.metrics.attempt(&broken.id, "stream_failed");
        self.upstream = None;
        let b = c.broke.get_or_insert_with(Box::default);
        if resume.max_output().is_some_and(|max| sent.output >= max) {
            // Nothing is left of the client's `max_tokens`: the answer is
            // as long as the client allowed, and ends so.
            let comment = b
                .last
                .as_ref()
                .map(|(m, d)| trailing_comment(b.continued, *m, d))
                .unwrap_or_default();
            c.resume = Some(Resumer::Ready(resume));
            self.prefix = Some(resume::length_ending(&sent, &comment));
            tracing::info!(message = "Stream broke at the client's max_tokens; ended as finished by length.", request_id = ?self.end.request_id, deployment = %broken.id, reason = why, output = sent.output);
            self.finish(true, "");
            return true;
        }
        b.splice = None;
        b.trying = None;
        b.why = why.to_owned();
        b.prior_events += self.scanner.events;
        self.scanner.events = 0;
        let text: Arc<str> = sent.text.as_str().into();
        let output = sent.output;
        b.at_break = Some(sent);
        tracing::info!(message = "Stream broke after content; continuing it elsewhere.", request_id = ?self.end.request_id, deployment = %broken.id, reason = why);
        b.resuming = Some(resume.resume(Ask {
            text,
            broken,
            abandoned: None,
            output,
        }));
        true
    }

    /// The upstream's error event in `feed` becomes a break (`feed.bad`)
    /// when the stream may be continued: the bytes before the event go on,
    /// the event does not. If nothing continues the stream, the client gets
    /// Lifeline's error event, which names the upstream's error.
    pub(super) fn withhold_error(&mut self, feed: &mut sse::Feed) {
        if !self.may_continue() {
            return;
        }
        let protocol = self.scanner.protocol();
        let Some(at) = protocol.error_event_start(&feed.forward) else {
            return;
        };
        let why = protocol.error_reason(&feed.forward[at..]);
        feed.forward = feed.forward.slice(..at);
        feed.bad = Some(why);
        // Not relayed: not the client's either.
        self.scanner.upstream_error = false;
    }

    /// Whether a break now would be continued (what [`Self::try_continue`]
    /// checks before it starts): parses what was sent, so only at a stall.
    pub(super) fn may_continue(&self) -> bool {
        let Some(c) = self.cont.as_ref() else {
            return false;
        };
        if c.resume.is_none() || c.full {
            return false;
        }
        let sent = c.sent(self.client);
        !(sent.ended || sent.tool_call)
    }

    /// The continuation stream does not fit (`why`): nothing of it was
    /// sent; the next method is asked for.
    pub(super) fn abandon(&mut self, why: &str) {
        self.upstream = None;
        let Some(c) = self.cont.as_mut() else { return };
        let Some(b) = c.broke.as_mut() else { return };
        let (Some(lease), Some(Resumer::Ready(resume)), Some(method), Some(at_break)) = (
            self.lease.take(),
            c.resume.take(),
            b.trying.take(),
            b.at_break.as_ref(),
        ) else {
            return;
        };
        b.splice = None;
        b.prior_events += self.scanner.events;
        self.scanner.events = 0;
        let broken = lease.deployment().clone();
        // It answered: neither its fault nor its success.
        drop(lease);
        let e = &self.end;
        e.metrics
            .continuation(&e.model.name, method.label(), "failed");
        tracing::info!(message = "Stream continuation did not fit; trying the next way.", request_id = ?e.request_id, deployment = %broken.id, method = method.label(), reason = why);
        b.resuming = Some(resume.resume(Ask {
            text: at_break.text.as_str().into(),
            broken,
            abandoned: Some(method),
            output: at_break.output,
        }));
    }

    /// A continuation stream came: it replaces the broken one.
    fn swap_in(&mut self, r: Resumed) {
        let Some(b) = self.cont.as_mut().and_then(|c| c.broke.as_mut()) else {
            return;
        };
        let Some(at_break) = b.at_break.as_ref() else {
            return;
        };
        let dep = r.lease.deployment().id.clone();
        let comment = trailing_comment(b.continued + 1, r.method, &dep);
        // A replay writes the whole answer again: its usage counts it all.
        let before = if r.method == Method::Replay {
            0
        } else {
            at_break.output
        };
        b.splice = Some(Splice::new(r.method, at_break, comment).before(before));
        b.trying = Some(r.method);
        b.separate = !at_break.at_boundary;
        b.output_before = before;
        self.upstream = Some(r.body);
        self.transcoder = r.transcoder.map(Box::new);
        self.scanner = r.scanner;
        self.lease = Some(r.lease);
        self.lease_ttft = r.ttft;
        self.stall = r.stall.min(self.idle_timeout);
        let wait = self.wait();
        self.idle.as_mut().reset(Instant::now() + wait);
        match self.spliced(r.prefix) {
            Ok(out) => self.prefix = (!out.is_empty()).then_some(out),
            Err(why) => self.abandon(&why),
        }
    }

    /// Runs upstream bytes through the continuation filter, if any; `Err`
    /// when the continuation does not fit.
    pub(super) fn spliced(&mut self, forward: Bytes) -> Result<Bytes, String> {
        let Some(b) = self.cont.as_mut().and_then(|c| c.broke.as_mut()) else {
            return Ok(forward);
        };
        let Some(splice) = b.splice.as_mut() else {
            return Ok(forward);
        };
        if forward.is_empty() {
            return Ok(forward);
        }
        let s = splice.feed(&forward);
        if let Some(why) = s.misfit {
            return Err(why);
        }
        let fitted = match b.trying {
            Some(Method::Prefill) => true,
            Some(_) => s.seam.is_some(),
            None => false,
        };
        if fitted {
            if let (Some(method), Some(lease)) = (b.trying.take(), self.lease.as_ref()) {
                b.continued += 1;
                let dep = lease.deployment().id.clone();
                let e = &self.end;
                e.metrics
                    .continuation(&e.model.name, method.label(), "continued");
                let seam = s.seam.as_deref().unwrap_or("(appended to the prefill)");
                tracing::info!(message = "Stream continued.", request_id = ?e.request_id, deployment = %dep, method = method.label(), seam, continued = b.continued);
                b.last = Some((method, dep));
            }
        }
        if b.separate && !s.out.is_empty() {
            b.separate = false;
            return Ok(join(Bytes::from_static(b"\n"), s.out));
        }
        Ok(s.out)
    }

    /// The trailing comment of a continued stream, if it was.
    pub(super) fn comment(&self) -> Bytes {
        self.broke()
            .and_then(|b| {
                b.last
                    .as_ref()
                    .map(|(m, d)| trailing_comment(b.continued, *m, d))
            })
            .unwrap_or_default()
    }
}
