//! Continuing a broken stream: the attempt side of [`crate::relay::resume`].
//!
//! A [`Seed`] is handed to the relay at commit when the request may be
//! continued (continuation on for the model, a chat stream of one choice);
//! at the first break after content the relay makes a [`Continuer`] from
//! it (so a stream that does not break pays for neither), and asks it for
//! a new stream; it makes continuation attempts as the attempt loop makes
//! retries:
//!
//! - a deployment is picked by [`crate::balance::pick`], with the ones this
//!   request used so far (the broken one among them) tried last;
//! - each attempt needs a token of the model's retry budget and counts
//!   towards `max_attempts`, within the request's deadline, with the
//!   deployment's adaptive first-content deadline;
//! - on the deployment, the first way not yet tried there, in order:
//!   [`Method::Prefill`] where the deployment takes a prefill (declared,
//!   and not rejected since the last reload), [`Method::Instruction`],
//!   [`Method::Replay`]. A 400 about the trailing assistant message
//!   answers a prefill: the deployment is remembered as not taking one
//!   (not its fault), and the instruction goes to it at once, in the same
//!   attempt;
//! - a prefill or instruction request asks for what is left of the
//!   client's `max_tokens` / `max_completion_tokens` (less the output
//!   already sent; [`Resume::max_output`] tells the relay the limit, so a
//!   stream that reached it ends as finished by length instead); the
//!   client's adapter writes it ([`crate::providers::continued::request`]);
//! - the upstream request is built as for any attempt, and read to its
//!   first content by [`super::commit::first_content`].
//!
//! Every attempt's outcome is recorded on its deployment as the attempt
//! loop records it: a continuation is an attempt like the others.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::time::{timeout_at, Instant};

use super::commit;
use super::failure::{Failure, FailureKind};
use super::upstream::build_request;
use super::Call;
use crate::balance::{pick, Pick, Scope};
use crate::health::latency::{adaptive_timeout, LatencyKind};
use crate::providers::continued;
use crate::providers::Endpoint;
use crate::providers::{prefill_refusal, RequestBody};
use crate::relay::resume::{
    split_trailing_whitespace, Ask, Method, Resume, Resumed, Resuming, CONTINUE_INSTRUCTION,
};
use crate::relay::{Protocol, Scanner, Seed, StreamEnd};
use crate::retry::full_jitter;
use crate::route::{Deployment, Lease, Model};
use crate::telemetry::Metrics;
use crate::translate::stream::{StreamOptions, Transcoder};

/// Most bytes of a 400 answer read to tell a prefill rejection.
const MAX_REFUSAL_BYTES: usize = 64 * 1024;

/// Continuation attempts for one client stream.
struct Continuer {
    metrics: Arc<Metrics>,
    model: Arc<Model>,
    endpoint: Endpoint,
    /// The client's body, as received.
    body: Bytes,
    /// Where its `model` value is.
    model_span: Range<usize>,
    request_id: HeaderValue,
    /// The request's deadline.
    deadline: Instant,
    /// Attempts made so far (the attempt loop's included).
    attempts: u32,
    /// Deployments this request used.
    tried: Vec<Arc<Deployment>>,
    /// Ways that did not fit on a deployment.
    failed: Vec<(Arc<Deployment>, Method)>,
    /// Whether to read `usage` (a key's token charge to settle).
    want_usage: bool,
    /// Adaptive deadlines apply.
    adaptive: bool,
    /// Deployments that cannot take the request (the attempt loop's
    /// finding).
    ineligible: Vec<Arc<Deployment>>,
    /// The client's `anthropic-beta` header.
    beta: Option<HeaderValue>,
    /// The OpenAI client asked for the usage chunk.
    include_usage: bool,
}

/// How one way of continuing went on a deployment.
enum Tried {
    Resumed(Box<Resumed>),
    /// The deployment rejected the prefill; the lease is still good.
    PrefillRejected(Lease),
    Failed,
}

impl Resume for Continuer {
    fn resume(mut self: Box<Self>, ask: Ask) -> Resuming {
        Box::pin(async move {
            let got = self.run(ask).await;
            (self as Box<dyn Resume>, got)
        })
    }

    fn max_output(&self) -> Option<u64> {
        continued::max_output(self.endpoint.wire(), &self.body)
    }
}

impl Call {
    /// What continues this stream after a break, if it may be continued
    /// (continuation on for the model, a chat stream of one choice): the
    /// relay keeps it, and makes the [`Continuer`] from it only at a break
    /// ([`Continuer::make`]). `committed`: the deployment whose stream is
    /// relayed, left out of the `tried` it keeps (it is the one that breaks).
    pub(super) fn seed(
        &self,
        tried: &[Arc<Deployment>],
        committed: &Arc<Deployment>,
        ineligible: &[Arc<Deployment>],
        deadline: Instant,
        adaptive: bool,
    ) -> Option<Seed> {
        if !self.model.continuation
            || !self.endpoint.is_chat()
            || !self.inspected.stream
            || self.inspected.choices > 1
        {
            return None;
        }
        Some(Seed {
            body: self.body.clone(),
            model_span: self.inspected.model_span.clone(),
            deadline,
            attempts: u32::try_from(tried.len()).unwrap_or(u32::MAX),
            // Usually empty (the committed deployment was the only one
            // tried): no allocation.
            tried: tried
                .iter()
                .filter(|t| !Arc::ptr_eq(t, committed))
                .cloned()
                .collect(),
            ineligible: ineligible.to_vec(),
            adaptive,
            beta: self.beta.clone(),
            include_usage: self.inspected.include_usage,
            make: Continuer::make,
        })
    }
}

impl Continuer {
    /// The continuer of a stream that broke on `broken`, made from its
    /// seed and the stream's accounting at the first break.
    fn make(seed: Seed, end: &StreamEnd, broken: Arc<Deployment>) -> Box<dyn Resume> {
        let mut tried = seed.tried;
        tried.push(broken);
        Box::new(Continuer {
            metrics: end.metrics.clone(),
            model: end.model.clone(),
            endpoint: end.endpoint,
            body: seed.body,
            model_span: seed.model_span,
            request_id: end.request_id.clone(),
            deadline: seed.deadline,
            attempts: seed.attempts,
            tried,
            failed: Vec::new(),
            want_usage: end.charge.is_some(),
            adaptive: seed.adaptive,
            ineligible: seed.ineligible,
            beta: seed.beta,
            include_usage: seed.include_usage,
        })
    }

    async fn run(&mut self, ask: Ask) -> Option<Resumed> {
        // A way that did not fit: the next way goes to the same deployment
        // first (it answered; only the way did not fit).
        let mut prefer = None;
        if let Some(method) = ask.abandoned {
            self.failed.push((ask.broken.clone(), method));
            prefer = Some(ask.broken.clone());
        }
        let text = split_trailing_whitespace(&ask.text).0.to_owned();
        let output = ask.output;
        let policy = &self.model.policy;
        loop {
            if self.attempts >= policy.max_attempts {
                tracing::info!(message = "Stream not continued: no attempts left (max_attempts).", request_id = ?self.request_id);
                return None;
            }
            if Instant::now() >= self.deadline {
                tracing::info!(message = "Stream not continued: the request's deadline passed.", request_id = ?self.request_id);
                return None;
            }
            let scope = Scope {
                tried: &self.tried,
                up_to_tier: None,
                refused: &[],
                ineligible: &self.ineligible,
            };
            let preferred = prefer
                .take()
                .filter(|d| {
                    Method::ALL
                        .iter()
                        .any(|m| self.allows(d, *m, text.is_empty()))
                })
                .and_then(|d| d.lease());
            let (mut lease, again) = match preferred {
                // Answered a moment ago: no pause needed.
                Some(lease) => (lease, false),
                None => match pick(&self.model, scope) {
                    Pick::Lease {
                        lease,
                        retry_of_tried,
                        ..
                    } => (lease, retry_of_tried),
                    _ => {
                        tracing::info!(message = "Stream not continued: no deployment available.", request_id = ?self.request_id);
                        return None;
                    }
                },
            };
            let dep = lease.deployment().clone();
            let methods: Vec<Method> = Method::ALL
                .into_iter()
                .filter(|m| self.allows(&dep, *m, text.is_empty()))
                .collect();
            if methods.is_empty() {
                drop(lease);
                if again {
                    return None;
                }
                self.tried.push(dep);
                continue;
            }
            if !self.model.budget.withdraw() {
                self.metrics.budget_refusal(&self.model.name);
                tracing::info!(message = "Stream not continued: retry budget spent.", request_id = ?self.request_id);
                return None;
            }
            self.metrics.retry(&self.model.name);
            self.attempts += 1;
            if again {
                // The same deployment again (a reset connection, say):
                // a short jittered pause first, as for a retry.
                drop(lease);
                let pause = full_jitter(policy.backoff_base, policy.backoff_max, 0);
                if Instant::now() + pause >= self.deadline {
                    return None;
                }
                tokio::time::sleep(pause).await;
                lease = match dep.lease() {
                    Some(l) => l,
                    None => continue,
                };
            } else if !self.tried.iter().any(|t| Arc::ptr_eq(t, &dep)) {
                self.tried.push(dep.clone());
            }
            for method in methods {
                match self.try_method(lease, method, &text, output).await {
                    Tried::Resumed(r) => return Some(*r),
                    Tried::PrefillRejected(l) => {
                        dep.set_prefill_rejected(true);
                        lease = l;
                    }
                    Tried::Failed => break,
                }
            }
        }
    }

    /// Whether `method` may continue the stream on `dep`.
    fn allows(&self, dep: &Arc<Deployment>, method: Method, no_text: bool) -> bool {
        if self
            .failed
            .iter()
            .any(|(d, m)| Arc::ptr_eq(d, dep) && *m == method)
        {
            return false;
        }
        match method {
            Method::Prefill => {
                !no_text
                    && !dep.prefill_rejected()
                    && self
                        .model
                        .tiers
                        .iter()
                        .flatten()
                        .find(|m| Arc::ptr_eq(&m.deployment, dep))
                        .is_some_and(|m| m.prefill)
            }
            Method::Instruction => !no_text,
            Method::Replay => true,
        }
    }

    /// The deadline of `kind` on `dep` (adaptive, as for any attempt).
    fn timeout(&self, dep: &Deployment, kind: LatencyKind, configured: Duration) -> Duration {
        let p = &self.model.policy;
        if !(self.adaptive && p.adaptive_timeouts) {
            return configured;
        }
        adaptive_timeout(
            dep.latency_p99(kind),
            p.adaptive_multiplier,
            p.adaptive_floor,
            configured,
        )
    }

    /// The request body for `method` on `dep`: the client's request (in
    /// the client's wire; a chat message `{role, content}` is the same in
    /// both), with the partial answer added and its token limit lowered by
    /// the `output` already sent, then spliced or translated by the
    /// deployment's adapter as for any attempt.
    fn body_for(
        &self,
        dep: &Deployment,
        method: Method,
        text: &str,
        output: u64,
    ) -> Result<Bytes, String> {
        let up = &dep.upstream;
        let client = self.endpoint.wire();
        if method == Method::Replay {
            return up
                .request_body(&RequestBody {
                    client,
                    body: &self.body,
                    model_span: &self.model_span,
                    model: &dep.model,
                    model_json: &dep.model_json,
                })
                .map_err(|u| u.0);
        }
        let instruction = (method == Method::Instruction).then_some(CONTINUE_INSTRUCTION);
        let (body, span) = continued::request(client, &self.body, text, instruction, output)?;
        up.request_body(&RequestBody {
            client,
            body: &body,
            model_span: &span,
            model: &dep.model,
            model_json: &dep.model_json,
        })
        .map_err(|u| u.0)
    }

    /// One way of continuing on the leased deployment.
    async fn try_method(&self, mut lease: Lease, method: Method, text: &str, output: u64) -> Tried {
        let dep = lease.deployment().clone();
        let policy = &self.model.policy;
        let start = Instant::now();
        let first_byte = self.timeout(&dep, LatencyKind::FirstContent, policy.first_byte_timeout);
        let attempt_deadline = self.deadline.min(start + first_byte);
        let req = self.body_for(&dep, method, text, output).and_then(|body| {
            let _ = super::quota::count(&dep, body.len(), || super::quota::DEFAULT_OUTPUT);
            build_request(
                self.endpoint,
                &dep,
                body,
                true,
                &self.request_id,
                self.beta.as_ref(),
            )
        });
        let req = match req {
            Ok(r) => r,
            Err(what) => {
                let f = Failure::new(FailureKind::BadUrl, &dep.id, what);
                return self.failed(lease, method, f);
            }
        };
        let resp = match timeout_at(attempt_deadline, self.model.client.request(req)).await {
            Err(_) => {
                let what = format!(
                    "no response headers within {} ms",
                    start.elapsed().as_millis()
                );
                let f = Failure::new(FailureKind::Timeout, &dep.id, what);
                return self.failed(lease, method, f.after(start.elapsed()));
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    FailureKind::Connect
                } else {
                    FailureKind::Reset
                };
                let f = Failure::new(kind, &dep.id, format!("connection failed: {e}"));
                return self.failed(lease, method, f.after(start.elapsed()));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let (parts, body) = resp.into_parts();
            if status == StatusCode::BAD_REQUEST && method == Method::Prefill {
                let read = Limited::new(body, MAX_REFUSAL_BYTES).collect();
                let body = match timeout_at(attempt_deadline, read).await {
                    Ok(Ok(b)) => b.to_bytes(),
                    _ => Bytes::new(),
                };
                if prefill_refusal(&body) {
                    tracing::info!(message = "Deployment rejects an assistant prefill; remembered until the next reload.", request_id = ?self.request_id, deployment = %dep.id);
                    self.metrics
                        .continuation(&self.model.name, method.label(), "failed");
                    self.metrics.attempt(&dep.id, "client_error");
                    return Tried::PrefillRejected(lease);
                }
            }
            let kind = match status.as_u16() {
                429 | 408 => FailureKind::RateLimited,
                500..=599 => FailureKind::StatusError,
                401 | 403 => FailureKind::Misconfigured,
                _ => FailureKind::ClientError,
            };
            if matches!(status.as_u16(), 429 | 503 | 529) {
                lease.overloaded();
            }
            let retry_after =
                crate::retry::retry_after(&parts.headers, std::time::SystemTime::now());
            let f = Failure::new(kind, &dep.id, format!("HTTP {}", status.as_u16()))
                .after(start.elapsed())
                .retry_after(retry_after);
            return self.failed(lease, method, f);
        }
        let is_sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let f = Failure::new(FailureKind::BadBody, &dep.id, "not an event stream");
            return self.failed(lease, method, f.after(start.elapsed()));
        }
        let stall = self.timeout(&dep, LatencyKind::StreamGap, policy.stream_idle_timeout);
        let scanner =
            Scanner::new(Protocol::of(dep.upstream.wire, self.endpoint)).usage(self.want_usage);
        let first = commit::first_content(resp, scanner, attempt_deadline, stall, &mut lease).await;
        // A deployment of the other protocol: its stream goes through a
        // transcoder of its own to the client's wire.
        let first = match first {
            Ok(mut c) if dep.upstream.wire != self.endpoint.wire() => {
                let mut t = Transcoder::new(
                    dep.upstream.wire,
                    self.endpoint.wire(),
                    StreamOptions {
                        include_usage: self.include_usage,
                    },
                );
                match t.feed(&c.prefix) {
                    Ok(prefix) => {
                        c.prefix = prefix;
                        Ok((c, Some(t)))
                    }
                    Err(why) => Err(commit::Stopped::failed(format!(
                        "an event that cannot be translated ({why}) before any content"
                    ))),
                }
            }
            other => other.map(|c| (c, None)),
        };
        match first {
            Ok((c, transcoder)) => {
                let ttft = start.elapsed();
                lease.first_content(ttft);
                self.attempted(&dep, "success", true);
                Tried::Resumed(Box::new(Resumed {
                    prefix: c.prefix,
                    body: c.body,
                    scanner: c.scanner,
                    lease,
                    method,
                    stall,
                    ttft,
                    transcoder,
                }))
            }
            Err(stop) => {
                let f = Failure::new(stop.kind, &dep.id, stop.message);
                self.failed(lease, method, f.after(start.elapsed()))
            }
        }
    }

    /// Records a failed continuation attempt, as the attempt loop records
    /// a failed attempt.
    fn failed(&self, mut lease: Lease, method: Method, f: Failure) -> Tried {
        if f.kind == FailureKind::Timeout {
            lease.overloaded();
        }
        if f.kind == FailureKind::RateLimited {
            lease.rate_limited();
        }
        self.attempted(
            lease.deployment(),
            f.kind.label(),
            !f.kind.is_deployments_fault(),
        );
        self.metrics
            .continuation(&self.model.name, method.label(), "failed");
        tracing::info!(message = "Continuation attempt failed.", request_id = ?self.request_id, deployment = %f.deployment, method = method.label(), kind = f.kind.label(), error = %f.message);
        lease.finish(f.outcome());
        Tried::Failed
    }

    fn attempted(&self, dep: &Deployment, outcome: &'static str, ok: bool) {
        self.metrics.attempt(&dep.id, outcome);
        self.model
            .sli
            .family(self.endpoint.family_index())
            .attempt(ok);
        dep.sli()
            .attempt(ok, (outcome != "success").then_some(outcome));
    }
}
