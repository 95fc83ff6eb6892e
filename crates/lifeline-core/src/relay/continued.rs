//! The relay's side of a continuation: what was sent kept for it, the
//! break that starts one (an upstream error event withheld while one may
//! follow), the continuation stream swapped in, and the splice that fits
//! its output into the client's stream.

use super::*;

impl RelayBody {
    /// Keeps `b` (going to the client) for a continuation, if the stream
    /// may be continued.
    pub(super) fn keep(&mut self, b: &Bytes) {
        if b.is_empty() {
            return;
        }
        if let Some(c) = self.cont.as_mut() {
            c.sent_len += b.len();
            let mut keep = c.sent_len <= MAX_SENT;
            let memory = self.hold.as_ref().and_then(|h| h.memory.as_ref());
            if let (true, Some(memory)) = (keep, memory) {
                if c.sent_len as u64 > c.reserved {
                    let step = (c.sent_len as u64 - c.reserved).max(SENT_STEP);
                    keep = memory.grow(step).is_ok();
                    if keep {
                        c.reserved += step;
                    }
                }
            }
            if keep {
                c.sent.push(b.clone());
            } else {
                // Too long to keep, or the memory budget cannot hold it:
                // this stream is no longer continued.
                if let Some(memory) = memory {
                    let _ = memory.resize(memory.bytes().saturating_sub(c.reserved));
                }
                self.cont = None;
                self.stall = self.idle_timeout;
            }
        }
    }

    /// The upstream broke after content: starts a continuation attempt if
    /// this stream may be continued (continuation on, no error event
    /// relayed, no tool call started, the answer not finished). `true`:
    /// a continuation runs, or the output already reached the client's
    /// limit and the stream ends as finished by its length (its end is
    /// the next frame).
    pub(super) fn try_continue(&mut self, why: &str) -> bool {
        if self.ended {
            return false;
        }
        let Some(c) = self.cont.as_mut() else {
            return false;
        };
        let sent = Sent::parse(&c.sent, self.client);
        if sent.ended || sent.tool_call {
            return false;
        }
        let (Some(resume), Some(lease)) = (c.resume.take(), self.lease.take()) else {
            return false;
        };
        let broken = lease.deployment().clone();
        // The broken deployment's lease records its failure.
        lease.finish(Outcome::failure(self.lease_ttft));
        self.end.metrics.attempt(&broken.id, "stream_failed");
        self.upstream = None;
        if resume.max_output().is_some_and(|max| sent.output >= max) {
            // Nothing is left of the client's `max_tokens`: the answer is
            // as long as the client allowed, and ends so.
            let comment = c
                .last
                .as_ref()
                .map(|(m, d)| trailing_comment(c.continued, *m, d))
                .unwrap_or_default();
            self.prefix = Some(resume::length_ending(&sent, &comment));
            tracing::info!(message = "Stream broke at the client's max_tokens; ended as finished by length.", request_id = ?self.end.request_id, deployment = %broken.id, reason = why, output = sent.output);
            self.finish(true, "");
            return true;
        }
        c.splice = None;
        c.trying = None;
        c.why = why.to_owned();
        c.prior_events += self.scanner.events;
        self.scanner.events = 0;
        let text: Arc<str> = sent.text.as_str().into();
        let output = sent.output;
        c.at_break = Some(sent);
        tracing::info!(message = "Stream broke after content; continuing it elsewhere.", request_id = ?self.end.request_id, deployment = %broken.id, reason = why);
        c.resuming = Some(resume.resume(Ask {
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
        if c.resume.is_none() {
            return false;
        }
        let sent = Sent::parse(&c.sent, self.client);
        !(sent.ended || sent.tool_call)
    }

    /// The continuation stream does not fit (`why`): nothing of it was
    /// sent; the next method is asked for.
    pub(super) fn abandon(&mut self, why: &str) {
        self.upstream = None;
        let Some(c) = self.cont.as_mut() else { return };
        let (Some(lease), Some(resume), Some(method), Some(at_break)) = (
            self.lease.take(),
            c.resume.take(),
            c.trying.take(),
            c.at_break.as_ref(),
        ) else {
            return;
        };
        c.splice = None;
        c.prior_events += self.scanner.events;
        self.scanner.events = 0;
        let broken = lease.deployment().clone();
        // It answered: neither its fault nor its success.
        drop(lease);
        let e = &self.end;
        e.metrics
            .continuation(&e.model.name, method.label(), "failed");
        tracing::info!(message = "Stream continuation did not fit; trying the next way.", request_id = ?e.request_id, deployment = %broken.id, method = method.label(), reason = why);
        c.resuming = Some(resume.resume(Ask {
            text: at_break.text.as_str().into(),
            broken,
            abandoned: Some(method),
            output: at_break.output,
        }));
    }

    /// A continuation stream came: it replaces the broken one.
    pub(super) fn swap_in(&mut self, r: Resumed) {
        let Some(c) = self.cont.as_mut() else { return };
        let Some(at_break) = c.at_break.as_ref() else {
            return;
        };
        let dep = r.lease.deployment().id.clone();
        let comment = trailing_comment(c.continued + 1, r.method, &dep);
        // A replay writes the whole answer again: its usage counts it all.
        let before = if r.method == Method::Replay {
            0
        } else {
            at_break.output
        };
        c.splice = Some(Splice::new(r.method, at_break, comment).before(before));
        c.trying = Some(r.method);
        c.separate = !at_break.at_boundary;
        c.output_before = before;
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
        let Some(c) = self.cont.as_mut() else {
            return Ok(forward);
        };
        let Some(splice) = c.splice.as_mut() else {
            return Ok(forward);
        };
        if forward.is_empty() {
            return Ok(forward);
        }
        let s = splice.feed(&forward);
        if let Some(why) = s.misfit {
            return Err(why);
        }
        let fitted = match c.trying {
            Some(Method::Prefill) => true,
            Some(_) => s.seam.is_some(),
            None => false,
        };
        if fitted {
            if let (Some(method), Some(lease)) = (c.trying.take(), self.lease.as_ref()) {
                c.continued += 1;
                let dep = lease.deployment().id.clone();
                let e = &self.end;
                e.metrics
                    .continuation(&e.model.name, method.label(), "continued");
                let seam = s.seam.as_deref().unwrap_or("(appended to the prefill)");
                tracing::info!(message = "Stream continued.", request_id = ?e.request_id, deployment = %dep, method = method.label(), seam, continued = c.continued);
                c.last = Some((method, dep));
            }
        }
        if c.separate && !s.out.is_empty() {
            c.separate = false;
            return Ok(join(Bytes::from_static(b"\n"), s.out));
        }
        Ok(s.out)
    }

    /// The trailing comment of a continued stream, if it was.
    pub(super) fn comment(&self) -> Bytes {
        self.cont
            .as_ref()
            .and_then(|c| {
                c.last
                    .as_ref()
                    .map(|(m, d)| trailing_comment(c.continued, *m, d))
            })
            .unwrap_or_default()
    }
}
