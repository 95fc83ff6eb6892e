//! One attempt against one deployment: the upstream request, the wait for
//! its answer, and what the answer means.
//!
//! [`classify`] sorts upstream statuses; [`Call::attempt`] turns an answer
//! into the client's response, a refusal by the upstream model (context
//! window, content policy) or a [`Failure`], and records the outcome
//! derived from it on the deployment's lease. The attempt's deadlines are
//! adaptive (`Call::timeout`, [`crate::health::latency`]).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::{timeout_at, Instant};

use super::failure::{client_error_kind, Failure, FailureKind};
use super::{commit, Call, MAX_RESPONSE_BYTES};
use crate::admission::memory::{collect, Collect};
use crate::admission::Shed;
use crate::balance::{has_untried, Scope};
use crate::body::ProxyBody;
use crate::error::ApiError;
use crate::health::latency::{adaptive_timeout, LatencyKind};
use crate::health::Outcome;
use crate::providers::{Endpoint, Wire};
use crate::relay::{Protocol, RelayBody, StreamEnd};
use crate::retry::retry_after;
use crate::route::{Deployment, Lease};
use crate::telemetry::X_REQUEST_ID;
use crate::translate::stream::{StreamOptions, Transcoder};

/// How an upstream answer is treated.
enum Class {
    Success,
    /// A 3xx: the provider's `base_url` points at the wrong place (an API
    /// answers, it does not redirect). A failed attempt, never the answer:
    /// relaying it would send the client's SDK off to the `Location`.
    Redirect,
    ClientError,
    Misconfigured,
    Retryable,
    Fatal,
}

fn classify(status: StatusCode) -> Class {
    match status.as_u16() {
        200..=299 => Class::Success,
        300..=399 => Class::Redirect,
        401 | 403 => Class::Misconfigured,
        408 | 429 => Class::Retryable,
        400..=499 => Class::ClientError,
        // Not implemented / version not supported: the answer stands.
        501 | 505 => Class::Fatal,
        // 500, 502, 503, 504, and the others (Cloudflare's 520-524 in front
        // of providers, 529 overloaded) are the server's trouble: retry.
        500..=599 => Class::Retryable,
        _ => Class::Fatal,
    }
}

/// Why [`Call::response_head`] stopped waiting for the response head.
struct GaveUp {
    /// What happened, for the failure's message.
    why: String,
    /// It gave up at the attempt's first deadline (its first-byte deadline,
    /// adaptive or not, or the request's deadline if that came first),
    /// not after the wait was extended for a working deployment.
    at_first_deadline: bool,
}

impl GaveUp {
    /// Gave up after the wait was `extended` or not.
    fn after(extended: bool, why: String) -> Self {
        Self {
            why,
            at_first_deadline: !extended,
        }
    }
}

/// What an attempt produced.
pub(super) enum Attempted {
    /// A 2xx (a whole answer, or a stream that committed): send this to
    /// the client; the request is over. Counted already.
    Answer(Response<ProxyBody>),
    /// Any other answer that ends the request (the client's own error as
    /// the provider gave it, a 501, a memory shed's 503), not counted yet:
    /// the loop counts it as it returns it ([`Call::count`]); a hedge race
    /// holds it like a failure while the other attempt may still answer
    /// 2xx (`hedge.rs`).
    Error(Response<ProxyBody>),
    /// Try again elsewhere.
    Failed(Failure),
    /// The upstream model refused the request (context window, or content
    /// policy with `content_policy_fallback`): another upstream model may
    /// take it; if none does, this answer goes to the client as it is.
    Refused(Failure, http::response::Parts, Bytes),
}

impl Call {
    /// Makes one attempt on the leased deployment, picked within `scope`
    /// (which also tells whether another deployment could take the request
    /// instead of a slow one: `response_head`). `adaptive` says whether
    /// adaptive deadlines may apply; it is cleared when this attempt was
    /// abandoned at one, so that the request's later attempts wait the
    /// configured time (a request that is long by nature is then not cut
    /// short on every deployment in turn).
    pub(super) async fn attempt(
        &self,
        mut lease: Lease,
        body: Bytes,
        deadline: Instant,
        scope: Scope<'_>,
        adaptive: &mut bool,
    ) -> Attempted {
        let n = scope.tried.len();
        let dep = lease.deployment().clone();
        let policy = &self.model.policy;
        let start = Instant::now();
        let stream = self.inspected.stream;
        let kind = if stream {
            LatencyKind::FirstContent
        } else {
            LatencyKind::Answer
        };
        let first_byte = self.timeout(&dep, kind, policy.first_byte_timeout, *adaptive);
        let attempt_deadline = deadline.min(start + first_byte);
        let body_len = body.len();
        let req = match self.upstream_request(&dep, body) {
            Ok(r) => r,
            Err(what) => {
                return self.failed(lease, Failure::new(FailureKind::BadUrl, &dep.id, what));
            }
        };
        let quota = super::quota::count(&dep, body_len, || {
            super::quota::output_allowance(self.endpoint, &self.inspected)
        });
        let resp = match self
            .response_head(&dep, req, start, first_byte, deadline, scope)
            .await
        {
            Err(gave_up) => {
                // A cut only when the wait ended at the adaptive deadline
                // itself: after an extension (the deployment was working)
                // the wait ended at the configured timeout or the request's
                // deadline, and says nothing about the deployment's p99.
                let cut = gave_up.at_first_deadline
                    && first_byte < policy.first_byte_timeout
                    && start + first_byte <= deadline;
                self.cut(&dep, kind, cut, start, adaptive);
                let f = Failure::new(FailureKind::Timeout, &dep.id, gave_up.why);
                return self.failed(lease, f.after(start.elapsed()));
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    FailureKind::Connect
                } else {
                    FailureKind::Reset
                };
                let f = Failure::new(kind, &dep.id, describe_client_error(&e));
                return self.failed(lease, f.after(start.elapsed()));
            }
            Ok(Ok(r)) => r,
        };
        let head_latency = start.elapsed();
        let status = resp.status();
        let body_deadline =
            deadline.min(attempt_deadline.max(Instant::now() + policy.stream_idle_timeout));
        match classify(status) {
            Class::Success => {}
            Class::ClientError => {
                let (parts, body) = match self.read_body(resp, body_deadline).await {
                    Ok(answer) => answer,
                    Err(ReadFail::Memory(shed)) => return self.shed(lease, shed, n),
                    Err(ReadFail::Attempt(kind, what)) => {
                        let f = Failure::new(kind, &dep.id, what);
                        return self.failed(lease, f.after(start.elapsed()));
                    }
                };
                let kind = client_error_kind(&dep.upstream, status.as_u16(), &body);
                // A 4xx to a request Lifeline translated is the client's
                // own error only when the client's request was wrong, which
                // a translated request cannot tell apart from a translation
                // the provider refused. It is still returned, converted to
                // the client's wire, not retried: every deployment of that
                // protocol gets the same translation and would refuse it the
                // same way, and the provider's own words are what the client
                // needs to see (a 503 would hide them). It stays neutral for
                // the deployment's health, as the client's errors do.
                let translated = dep.upstream.wire != self.endpoint.wire();
                let what = match kind {
                    FailureKind::ContextLength => "the prompt exceeds this model's context window",
                    FailureKind::ContentPolicy => "refused by the provider's content policy",
                    _ if translated => "the request's own error, or its translation's",
                    _ => "the request's own error",
                };
                let body = dep
                    .upstream
                    .error_body(self.endpoint.wire(), status.as_u16(), body);
                let f = Failure::new(kind, &dep.id, format!("HTTP {}: {what}", status.as_u16()))
                    .after(start.elapsed());
                self.record(lease, &f);
                let fallback = match kind {
                    FailureKind::ContextLength => true,
                    FailureKind::ContentPolicy => policy.content_policy_fallback,
                    _ => false,
                };
                if fallback {
                    return Attempted::Refused(f, parts, body);
                }
                return Attempted::Error(self.reply(
                    parts,
                    ProxyBody::full(body),
                    &dep.id,
                    dep.upstream.wire,
                    n,
                ));
            }
            Class::Redirect => {
                let what = format!(
                    "HTTP {} redirect from upstream: check the provider's base_url",
                    status.as_u16()
                );
                let f = Failure::new(FailureKind::Redirect, &dep.id, what);
                return self.failed(lease, f.after(start.elapsed()));
            }
            Class::Misconfigured => {
                let what = format!(
                    "HTTP {} from upstream: the deployment's credentials or access are wrong",
                    status.as_u16()
                );
                let f = Failure::new(FailureKind::Misconfigured, &dep.id, what);
                return self.failed(lease, f.after(start.elapsed()));
            }
            class @ (Class::Retryable | Class::Fatal) => {
                let retry_after = retry_after(resp.headers(), SystemTime::now());
                let kind = match class {
                    Class::Fatal => FailureKind::Unsupported,
                    _ if status == StatusCode::TOO_MANY_REQUESTS => FailureKind::RateLimited,
                    _ => FailureKind::StatusError,
                };
                let ra = retry_after
                    .map(|d| format!(", Retry-After {} s", d.as_secs()))
                    .unwrap_or_default();
                let f = Failure::new(kind, &dep.id, format!("HTTP {}{ra}", status.as_u16()))
                    .after(start.elapsed())
                    .retry_after(retry_after);
                // The provider says it is overloaded: the deployment's
                // in-flight limit comes down (`crate::concurrency`).
                if matches!(status.as_u16(), 429 | 503 | 529) {
                    lease.overloaded();
                }
                self.record(lease, &f);
                if kind == FailureKind::Unsupported {
                    // Not retryable (e.g. 501): the provider's answer stands.
                    let body_deadline = deadline.min(Instant::now() + policy.stream_idle_timeout);
                    if let Ok((parts, body)) = self.read_body(resp, body_deadline).await {
                        let body =
                            dep.upstream
                                .error_body(self.endpoint.wire(), status.as_u16(), body);
                        let body = ProxyBody::full(body);
                        return Attempted::Error(self.reply(
                            parts,
                            body,
                            &dep.id,
                            dep.upstream.wire,
                            n,
                        ));
                    }
                }
                return Attempted::Failed(f);
            }
        }
        let is_sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if stream && is_sse {
            let protocol = Protocol::of(dep.upstream.wire, self.endpoint);
            let stall = self.timeout(
                &dep,
                LatencyKind::StreamGap,
                policy.stream_idle_timeout,
                *adaptive,
            );
            let scanner = crate::relay::Scanner::new(protocol)
                .choices(self.inspected.choices)
                .usage(self.ctx.charge.is_some() || quota.is_some());
            let first = commit::first_content(resp, scanner, attempt_deadline, stall, &mut lease);
            let first = match first.await {
                // A translated stream: what was read so far goes to the
                // client in its own grammar; an event that cannot be
                // translated is a failed attempt like a malformed one.
                Ok(mut c) if dep.upstream.wire != self.endpoint.wire() => {
                    let mut t = Transcoder::new(
                        dep.upstream.wire,
                        self.endpoint.wire(),
                        StreamOptions {
                            include_usage: self.inspected.include_usage,
                        },
                    );
                    match t.feed(&c.prefix) {
                        Ok(prefix) => {
                            c.prefix = prefix;
                            Ok((c, Some(Box::new(t))))
                        }
                        Err(why) => Err(commit::Stopped::failed(format!(
                            "an event that cannot be translated ({why}) before any content"
                        ))),
                    }
                }
                other => other.map(|c| (c, None)),
            };
            return match first {
                Ok((c, transcoder)) => {
                    let ttft = start.elapsed();
                    lease.first_content(ttft);
                    self.attempted(&dep, "success", true);
                    let first_token = self.ctx.started.elapsed();
                    self.metrics
                        .ttft(&self.model.name, first_token.as_secs_f64());
                    let end = StreamEnd {
                        metrics: self.metrics.clone(),
                        model: self.model.clone(),
                        endpoint: self.endpoint,
                        started: self.ctx.started,
                        ttft,
                        first_token,
                        request_id: self.ctx.id.clone(),
                        key_id: self.ctx.tenant.as_ref().map(|t| t.id.clone()),
                        charge: self.ctx.charge.clone(),
                        quota,
                    };
                    // Built in place: the relay is large, and not moved again.
                    let mut relay = Box::new(RelayBody::new(
                        c.prefix,
                        c.body,
                        c.scanner,
                        policy.stream_idle_timeout,
                        lease,
                        end,
                    ));
                    relay.client(self.endpoint.wire());
                    if let Some(t) = transcoder {
                        relay.transcode(t);
                    }
                    let seed = self.seed(scope.tried, &dep, scope.ineligible, deadline, *adaptive);
                    if let Some(seed) = seed {
                        relay.continuation(seed, stall);
                    }
                    self.metrics.in_flight().inc();
                    Attempted::Answer(self.answer(
                        c.parts,
                        ProxyBody::Relay(relay),
                        &dep.id,
                        dep.upstream.wire,
                        n,
                    ))
                }
                Err(stop) => {
                    match stop.timer {
                        Some(commit::Timer::Stall) => self.cut(
                            &dep,
                            LatencyKind::StreamGap,
                            stall < policy.stream_idle_timeout,
                            stop.since,
                            adaptive,
                        ),
                        Some(commit::Timer::FirstContent) => {
                            let cut = first_byte < policy.first_byte_timeout
                                && start + first_byte <= deadline;
                            self.cut(&dep, kind, cut, start, adaptive);
                        }
                        None => {}
                    }
                    let f = Failure::new(stop.kind, &dep.id, stop.message);
                    self.failed(lease, f.after(start.elapsed()))
                }
            };
        }
        match self.read_body(resp, body_deadline).await {
            Err(ReadFail::Memory(shed)) => self.shed(lease, shed, n),
            Ok((_, body)) if !dep.upstream.is_answer(&body) => {
                let what = format!(
                    "HTTP {} with a body that is not a JSON answer ({} bytes)",
                    status.as_u16(),
                    body.len()
                );
                let f = Failure::new(FailureKind::BadBody, &dep.id, what);
                self.failed(lease, f.after(start.elapsed()))
            }
            Ok((parts, body)) => {
                // In the client's wire; an answer that cannot be translated
                // is a bad answer, retried elsewhere.
                let body = match dep.upstream.answer_body(self.endpoint.wire(), body) {
                    Ok(body) => body,
                    Err(why) => {
                        let what = format!(
                            "HTTP {} with an answer that cannot be translated: {why}",
                            status.as_u16()
                        );
                        let f = Failure::new(FailureKind::BadBody, &dep.id, what);
                        return self.failed(lease, f.after(start.elapsed()));
                    }
                };
                self.attempted(&dep, "success", true);
                super::quota::settle(quota.as_ref(), self.endpoint.wire(), &body);
                if !stream {
                    dep.observe_latency(LatencyKind::Answer, head_latency);
                }
                lease.finish(Outcome::success(start.elapsed()));
                Attempted::Answer(self.answer(
                    parts,
                    ProxyBody::full(body),
                    &dep.id,
                    dep.upstream.wire,
                    n,
                ))
            }
            Err(ReadFail::Attempt(kind, what)) => {
                let f = Failure::new(kind, &dep.id, what);
                self.failed(lease, f.after(start.elapsed()))
            }
        }
    }

    /// The memory budget cannot hold the upstream answer: the client gets a
    /// 503 at once (another deployment's answer would not fit either). The
    /// deployment did nothing wrong: its lease ends neutral.
    fn shed(&self, lease: Lease, shed: Shed, n: usize) -> Attempted {
        drop(lease);
        Attempted::Error(self.error_reply(ApiError::from(shed), n))
    }

    /// Reads a whole upstream body, within `deadline` and
    /// [`MAX_RESPONSE_BYTES`], reserving its bytes against the memory
    /// budget first ([`collect`]); a body read but not used is released.
    ///
    /// A hedged attempt and its hedge may read at once into the request's
    /// one reservation: each read grows and shrinks it by its own bytes
    /// only, and the request copy's spare bytes go to the first read that
    /// asks (a read that fails gives them back for the next attempt).
    async fn read_body(
        &self,
        resp: Response<hyper::body::Incoming>,
        deadline: Instant,
    ) -> Result<(http::response::Parts, Bytes), ReadFail> {
        let (parts, body) = resp.into_parts();
        let Some(memory) = self.hold.memory.as_ref() else {
            return read_body(parts, body, deadline).await;
        };
        let expected = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Once the answer comes, the copy of the request sent upstream is
        // gone: its bytes are the answer's first.
        let spare = memory.take_spare();
        let read = collect(body, MAX_RESPONSE_BYTES, expected, spare, memory);
        let failed = match timeout_at(deadline, read).await {
            Ok(Ok(body)) => return Ok((parts, body)),
            Err(_) => ReadFail::Attempt(
                FailureKind::Timeout,
                "response body not received in time".into(),
            ),
            Ok(Err(Collect::TooLarge)) => ReadFail::Attempt(
                FailureKind::BadBody,
                format!("response body over {MAX_RESPONSE_BYTES} bytes"),
            ),
            Ok(Err(Collect::Memory(shed))) => ReadFail::Memory(shed),
            Ok(Err(Collect::Read(e))) => {
                ReadFail::Attempt(FailureKind::Reset, format!("response body failed: {e}"))
            }
        };
        // What the read added is released already (`collect`); the spare
        // bytes it was given are still reserved, for the next read.
        memory.set_spare(spare);
        Err(failed)
    }

    /// Records a failed attempt (its metric and its health outcome, both
    /// derived from `f`) and hands it to the loop.
    fn failed(&self, lease: Lease, f: Failure) -> Attempted {
        self.record(lease, &f);
        Attempted::Failed(f)
    }

    fn record(&self, mut lease: Lease, f: &Failure) {
        if f.kind == FailureKind::Timeout {
            // Silence past the deadline: as good a sign of overload as a 429.
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
        lease.finish(f.outcome());
    }

    /// Counts an attempt on `dep`: its metric (`outcome` label) and the SLI
    /// counters of the model and the deployment (`ok`: a success, or a
    /// failure that is not the deployment's fault).
    fn attempted(&self, dep: &Deployment, outcome: &'static str, ok: bool) {
        self.metrics.attempt(&dep.id, outcome);
        self.sli().attempt(ok);
        dep.sli()
            .attempt(ok, (outcome != "success").then_some(outcome));
    }

    /// The deadline of `kind` for an attempt on `dep`: the configured value,
    /// or with adaptive deadlines `multiplier × p99`, floored and capped by it.
    fn timeout(
        &self,
        dep: &Deployment,
        kind: LatencyKind,
        configured: Duration,
        adaptive: bool,
    ) -> Duration {
        let p = &self.model.policy;
        if !(adaptive && p.adaptive_timeouts) {
            return configured;
        }
        adaptive_timeout(
            dep.latency_p99(kind),
            p.adaptive_multiplier,
            p.adaptive_floor,
            configured,
        )
    }

    /// An attempt was abandoned at a deadline; `adaptive_cut` when that was
    /// an adaptive deadline shorter than the configured one. Then the time
    /// waited counts as a sample of `kind` (so a deployment that really
    /// became slower gets its deadline back within a few such cuts, instead
    /// of being abandoned forever by a p99 of the past), and the request's
    /// later attempts wait the configured time.
    fn cut(
        &self,
        dep: &Deployment,
        kind: LatencyKind,
        adaptive_cut: bool,
        since: Instant,
        adaptive: &mut bool,
    ) {
        if adaptive_cut && *adaptive {
            dep.observe_latency(kind, since.elapsed());
            *adaptive = false;
        }
    }

    /// Waits for the response head of an attempt.
    ///
    /// Streams must start within `first_byte` (the attempt's first-byte
    /// deadline: `first_byte_timeout`, or shorter when adaptive). A
    /// non-streaming answer comes only once it is fully generated, which for
    /// a long answer takes longer than any first-byte timeout that still
    /// catches a frozen server. So when `first_byte` passes, the wait goes on
    /// (one configured `first_byte_timeout` at a time, up to the request's
    /// deadline) only while the deployment shows it is working:
    ///
    /// 1. it answered other requests successfully since this attempt started
    ///    and during the last `first_byte_timeout`: it is busy generating,
    ///    not frozen (failures and timeouts are no such evidence: one
    ///    request timing out must not extend the others' wait on a frozen
    ///    server); or
    /// 2. no untried deployment could take the request instead, and it
    ///    answers a probe (`GET {probe_path}`, no tokens): waiting is the
    ///    only way to an answer, and the server is alive. "Instead" is
    ///    judged as [`crate::balance::pick`] would choose the next attempt:
    ///    a deployment of an upstream model that refused the request does
    ///    not count. A tier the request is held in does not limit it: an
    ///    abandoned attempt is a timeout, which descends (`Call::stay`).
    ///
    /// Otherwise the attempt is abandoned and the request fails over. A
    /// provider whose model list answers while its inference hangs (a common
    /// shape of outage) is thus abandoned after `first_byte_timeout` when
    /// another deployment exists.
    ///
    /// An adaptive `first_byte` only moves the moment this question is first
    /// asked: a deployment that is normally fast and now silent is left in
    /// seconds, while one that is busy keeps its long requests, judged by
    /// the configured timeout as before.
    async fn response_head(
        &self,
        dep: &Deployment,
        req: Request<Full<Bytes>>,
        start: Instant,
        first_byte: Duration,
        deadline: Instant,
        scope: Scope<'_>,
    ) -> Result<Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>, GaveUp>
    {
        let policy = &self.model.policy;
        let send = self.model.client.request(req);
        tokio::pin!(send);
        let mut until = deadline.min(start + first_byte);
        let mut extended = false;
        loop {
            if let Ok(head) = timeout_at(until, &mut send).await {
                return Ok(head);
            }
            let waited = start.elapsed().as_millis();
            if self.inspected.stream || until >= deadline {
                return Err(GaveUp::after(
                    extended,
                    format!("no response headers within {waited} ms"),
                ));
            }
            // Answered something since this attempt started, and recently:
            // busy, not frozen.
            let working = dep
                .last_success()
                .is_some_and(|t| t > start && t + policy.first_byte_timeout > Instant::now());
            if !working {
                let instead = Scope {
                    up_to_tier: None,
                    ..scope
                };
                if has_untried(&self.model, instead) {
                    return Err(GaveUp::after(extended, format!("no response within {waited} ms, and the deployment answered nothing else meanwhile")));
                }
                if !dep.upstream.probes_enabled() {
                    return Err(GaveUp::after(
                        extended,
                        format!("no response headers within {waited} ms"),
                    ));
                }
                let limit = dep
                    .probe_timeout()
                    .min(deadline.saturating_duration_since(Instant::now()));
                let probe = dep.probe(&self.model.client, limit);
                tokio::pin!(probe);
                let alive = tokio::select! {
                    head = &mut send => return Ok(head),
                    alive = &mut probe => alive,
                };
                if !alive {
                    return Err(GaveUp::after(extended, format!("no response headers within {waited} ms, and the deployment does not answer probes")));
                }
            }
            tracing::debug!(message = "Long generation: the deployment is working, waiting on.", request_id = ?self.ctx.id, deployment = %dep.id, waited_ms = waited as u64);
            until = deadline.min(Instant::now() + policy.first_byte_timeout);
            extended = true;
        }
    }

    fn upstream_request(
        &self,
        dep: &Deployment,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        build_request(
            self.endpoint,
            dep,
            body,
            self.inspected.stream,
            &self.ctx.id,
            self.beta.as_ref(),
        )
    }
}

/// The upstream request of an attempt on `dep`: `body` (already spliced
/// for the deployment) to the endpoint's URL, with the deployment's auth.
pub(super) fn build_request(
    endpoint: Endpoint,
    dep: &Deployment,
    body: Bytes,
    stream: bool,
    request_id: &HeaderValue,
    beta: Option<&HeaderValue>,
) -> Result<Request<Full<Bytes>>, String> {
    let uri = dep.uri(endpoint)?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static(if stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    h.insert(X_REQUEST_ID, request_id.clone());
    dep.upstream.headers(h);
    if let Some(beta) = beta {
        if dep.upstream.wire == Wire::Anthropic {
            h.insert(crate::providers::anthropic::BETA, beta.clone());
        }
    }
    Ok(req)
}

/// Why an upstream body was not read.
pub(super) enum ReadFail {
    /// A failed attempt.
    Attempt(FailureKind, String),
    /// The memory budget could not hold it.
    Memory(Shed),
}

/// Reads a whole upstream body, within `deadline` and
/// [`MAX_RESPONSE_BYTES`], for a call without a memory reservation.
async fn read_body(
    parts: http::response::Parts,
    body: hyper::body::Incoming,
    deadline: Instant,
) -> Result<(http::response::Parts, Bytes), ReadFail> {
    match timeout_at(deadline, Limited::new(body, MAX_RESPONSE_BYTES).collect()).await {
        Err(_) => Err(ReadFail::Attempt(
            FailureKind::Timeout,
            "response body not received in time".into(),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ReadFail::Attempt(
            FailureKind::BadBody,
            format!("response body over {MAX_RESPONSE_BYTES} bytes"),
        )),
        Ok(Err(e)) => Err(ReadFail::Attempt(
            FailureKind::Reset,
            format!("response body failed: {e}"),
        )),
        Ok(Ok(c)) => Ok((parts, c.to_bytes())),
    }
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error as _;
    let mut msg = if e.is_connect() {
        "connect error".to_string()
    } else {
        "connection failed".to_string()
    };
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests;
