//! The attempt loop: one request, as many attempts as it takes and is allowed.
//!
//! Steps:
//!
//! 1. The request's end-to-end deadline is fixed (`request_timeout`); every
//!    attempt's timeout is the smaller of its own (`first_byte_timeout`, or
//!    the deployment's adaptive deadline) and the time left.
//! 2. [`crate::balance::pick`] reserves a deployment, preferring ones not yet
//!    tried. Nothing available before any attempt: a fast 503 with
//!    `Retry-After` set to when something may be. Every deployment at its
//!    in-flight limit: the request waits for a slot (`wait.rs`, woken when
//!    one frees, no polling), if fewer than `capacity_waiters` requests of
//!    the model wait already, for at most `capacity_wait_ms` within its
//!    deadline; otherwise, or when no slot frees in time, a 503 with
//!    `Retry-After` (code `at_capacity`).
//! 3. An attempt after the first needs a token from the model's
//!    [`crate::retry::RetryBudget`]; retrying a deployment already tried first waits a
//!    full-jitter backoff.
//! 4. The request body goes out in the deployment's protocol (its adapter,
//!    [`crate::providers::Upstream::request_body`]); the upstream answer is
//!    classified (`upstream.rs`) into a success (in the client's protocol),
//!    the client's own error (returned as the provider gave it, in the
//!    client's protocol, never retried),
//!    a refusal by the upstream model, or a [`Failure`] (`failure.rs`), whose
//!    kind says what comes next ([`Next`]).
//! 5. After a transient failure the request stays in its tier
//!    (`Call::stay`): the next pick is limited to that tier, a tried
//!    deployment is retried after its backoff or `Retry-After`, and all of
//!    that waiting is bounded by `tier_wait_ms`. A persistent failure, a
//!    wait that does not fit, or a last attempt that a later tier could
//!    take (it is kept for descending) lets it descend.
//! 6. A refusal (context window; content policy with
//!    `content_policy_fallback`) excludes that upstream model
//!    ([`crate::balance::Refusal`]); the next attempt, free of the retry
//!    budget, goes to another model. If none takes the request, the last
//!    refusal is returned as the provider sent it.
//!    A deployment that cannot take the request (its adapter does not serve
//!    the endpoint, the request cannot be translated to its protocol
//!    faithfully, a final assistant message goes to a deployment that does
//!    not continue it, an `anthropic-beta` to an OpenAI-shaped one:
//!    `Call::convert`) is ineligible before any attempt: it is skipped
//!    ([`Scope::ineligible`]), with no attempt, health outcome or budget
//!    token. If no deployment of the model can take the request at all, a
//!    400 `no_eligible_deployment` says why for each; if some can but none
//!    of them is available, the 503 of step 2, with the reasons of the
//!    others in its message.
//!    A translated body is made once per target (protocol, upstream model
//!    and settings) and kept in the `Call` ([`Converted`]): a retry, a hedge
//!    or a second deployment of that target reuses it.
//! 7. Streams are read until their first content (`commit.rs`); a failure
//!    before that is retried like any other, after it the stream is the
//!    client's: a chat stream is continued from another deployment
//!    (`resume.rs`, [`crate::relay::resume`]) or ends honestly
//!    ([`crate::relay`]).
//! 8. When attempts run out: 503 listing every attempt's error, with
//!    `x-should-retry: false` so official SDKs do not multiply the retries,
//!    and `Retry-After` set to when the first deployment is expected back
//!    (`degraded.rs`). With degraded mode on the model, an identical recent
//!    request's answer (the same key's) is served instead, marked stale (`degraded.rs`; the
//!    model's successful whole answers are remembered as they are returned).
//! 9. With `hedge` on the model, an attempt slower than its deployment's p95
//!    gets a second one beside it on another deployment; the first to
//!    commit with a 2xx wins, any other end of one side waits for the
//!    other's (`hedge.rs`).

mod commit;
mod convert;
mod degraded;
mod failure;
mod hedge;
mod quota;
mod resume;
mod upstream;
mod wait;

pub use degraded::X_LIFELINE_CACHE;
pub use failure::{client_error_kind, Failure, FailureKind, Next};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response};
use tokio::time::Instant;

use crate::admission::Hold;
use crate::balance::{has_untried_after, pick, Pick, Refusal, Scope};
use crate::body::ProxyBody;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::providers::{Endpoint, Wire};
use crate::request::Inspected;
use crate::retry::full_jitter;
use crate::route::{Deployment, Model};
use crate::telemetry::{
    FamilySli, Metrics, KEEP_ALIVE, X_LIFELINE_ATTEMPTS, X_LIFELINE_DEPLOYMENT, X_REQUEST_ID,
};
pub use convert::Converted;
use upstream::Attempted;
use wait::Slot;

/// Largest non-streaming upstream answer accepted (images in `b64_json` are big).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// One client request, ready to be attempted.
pub struct Call {
    /// Metrics sink.
    pub metrics: Arc<Metrics>,
    /// The public model.
    pub model: Arc<Model>,
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The client's body, as received.
    pub body: Bytes,
    /// What [`crate::request::inspect`] read from it.
    pub inspected: Inspected,
    /// The client's `anthropic-beta` header (on `/v1/messages` only),
    /// passed to Anthropic deployments: on passthrough only, since a beta
    /// feature is not something a translation can promise.
    pub beta: Option<HeaderValue>,
    /// Who asked, and when: request id, peer, arrival time, key
    /// ([`RequestContext`]).
    pub ctx: RequestContext,
    /// The translated bodies made for this request so far
    /// (`Call::convert`); start with `Converted::default()`.
    pub converted: Converted,
    /// The request's admission slot and memory reservation
    /// ([`crate::admission`]): non-streaming answers are reserved in it
    /// before they are read, and the answer's body holds it to its end.
    pub hold: Hold,
}

impl Call {
    /// Runs the attempt loop to an answer for the client. A client that goes
    /// away first drops this future: its upstream attempt is cancelled with
    /// it, and the request is counted with status 499.
    pub async fn run(self) -> Response<ProxyBody> {
        let mut pending = Pending::new(&self);
        let resp = self.attempts().await;
        pending.answered = true;
        let Self { hold, body, .. } = self;
        if let Some(memory) = &hold.memory {
            // From here the request holds its answer's bytes only (a
            // stream buffers none): its own body is freed just below. A
            // stream that may be continued keeps the body (a continuation
            // re-sends it); the bytes it keeps of its answer are reserved
            // as they go ([`crate::relay`]).
            let answer = match resp.body() {
                ProxyBody::Full(Some(b)) | ProxyBody::Held(Some(b), _) => b.len() as u64,
                ProxyBody::Relay(r) if r.continues() => body.len() as u64,
                _ => 0,
            };
            let _ = memory.resize(answer.min(memory.bytes()));
        }
        drop(body);
        resp.map(|b| b.hold(hold))
    }

    async fn attempts(&self) -> Response<ProxyBody> {
        let policy = &self.model.policy;
        let deadline = self.ctx.started + policy.request_timeout;
        self.model.budget.deposit();
        if let Some(hedges) = &self.model.hedge_budget {
            hedges.deposit();
        }
        let mut hedged = false;
        let mut tried: Vec<Arc<Deployment>> = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        // Upstream models that refused the request, and the last refusal's
        // answer, returned as it was if no other model takes the request.
        let mut refused: Vec<Refusal> = Vec::new();
        let mut refusal: Option<(http::response::Parts, Bytes, Arc<str>, Wire)> = None;
        let mut free_retry = false;
        // Held in a tier after a transient failure: the tier, and the end of
        // the `Retry-After` being waited for, if any.
        let mut held: Option<(usize, Option<Instant>)> = None;
        let mut tier_waited = Duration::ZERO;
        let mut adaptive = true;
        let mut budget_refused = false;
        let mut same_retries = 0u32;
        let mut backed_off = false;
        // A place among the requests waiting at the cap, held from the first
        // wait until a slot is found, and the end of that wait.
        let mut waiting = None;
        let mut wait_until: Option<Instant> = None;
        // The deployments that cannot take this request (see
        // `Call::convert`).
        let mut ineligible: Vec<Arc<Deployment>> = Vec::new();
        while (tried.len() as u32) < policy.max_attempts {
            let scope = Scope {
                tried: &tried,
                up_to_tier: held.map(|(tier, _)| tier),
                refused: &refused,
                ineligible: &ineligible,
            };
            let (lease, retry_of_tried, place) = match pick(&self.model, scope) {
                Pick::Lease {
                    lease,
                    retry_of_tried,
                    place,
                } => (lease, retry_of_tried, place),
                Pick::Saturated { .. } if held.is_some() => {
                    // Its tier is full: load spills over to later tiers, as
                    // it would for a request that never failed.
                    held = None;
                    continue;
                }
                Pick::Saturated { .. } => {
                    // Every healthy deployment is at its in-flight limit:
                    // wait for a slot, boundedly, instead of refusing.
                    if waiting.is_none() {
                        waiting = self.model.waiting.enter();
                        if waiting.is_none() {
                            self.metrics.capacity_refusal(&self.model.name, "waiters");
                            if tried.is_empty() {
                                return self.at_capacity(format!(
                                    "Every deployment of model `{}` is at its concurrency limit and {} requests already wait for a slot (capacity_waiters).",
                                    self.model.name,
                                    self.model.waiting.waiting()
                                ));
                            }
                            break;
                        }
                        self.metrics.capacity_wait(&self.model.name);
                    }
                    let until = *wait_until.get_or_insert_with(|| {
                        deadline.min(Instant::now() + self.model.waiting.max_wait)
                    });
                    match wait::for_slot(&self.model, scope, until).await {
                        Slot::Lease(lease, place) => {
                            let dep = lease.deployment();
                            let again = tried.iter().any(|t| Arc::ptr_eq(t, dep));
                            (lease, again, place)
                        }
                        Slot::Again => continue,
                        Slot::TimedOut => {
                            self.metrics.capacity_refusal(&self.model.name, "timeout");
                            if tried.is_empty() {
                                return self.at_capacity(format!(
                                    "Every deployment of model `{}` is at its concurrency limit and none freed up within {} ms.",
                                    self.model.name,
                                    until.saturating_duration_since(self.ctx.started).as_millis()
                                ));
                            }
                            break;
                        }
                    }
                }
                Pick::Unavailable { until } => {
                    // No attempt made: nothing is available, or only
                    // deployments that cannot take the request were found.
                    if tried.is_empty() {
                        if !failures.is_empty() && !self.any_eligible(&ineligible) {
                            return self.no_eligible(&failures);
                        }
                        if let Some(stale) = self.stale(0) {
                            return stale;
                        }
                        let wait = until.map_or(Duration::from_secs(1), |u| {
                            u.saturating_duration_since(Instant::now())
                        });
                        let others = if failures.is_empty() {
                            String::new()
                        } else {
                            format!(" Others cannot take this request: {}.", list(&failures))
                        };
                        let mut e = ApiError::unavailable(
                            format!("No deployment of model `{}` is available right now (all are failing, open or drained).{others}{}", self.model.name, degraded::expected_back_in(wait)),
                            wait,
                        );
                        e.code = Some("no_deployment_available");
                        return self.error(e, 0);
                    }
                    if let Some((_, retry_until)) = held {
                        // The tier is unavailable for now. Waiting is worth
                        // it only for the `Retry-After` the request stayed
                        // for; anything else (a breaker) means descending.
                        let wait = until
                            .filter(|u| retry_until.is_some_and(|r| *u <= r))
                            .map(|u| u.saturating_duration_since(Instant::now()));
                        match wait {
                            Some(w) if self.may_wait(w, tier_waited, deadline) => {
                                tier_waited += w;
                                tokio::time::sleep(w).await;
                                // The wait was the backoff.
                                backed_off = true;
                            }
                            _ => held = None,
                        }
                        continue;
                    }
                    break;
                }
            };
            // A slot: no longer waiting at the cap.
            waiting = None;
            // Only deployments already tried are left: back off first, without
            // holding the reservation (its slot, trial and in-flight count are
            // others' meanwhile), then pick again.
            if retry_of_tried && !backed_off {
                drop(lease);
                let pause = full_jitter(policy.backoff_base, policy.backoff_max, same_retries);
                if held.is_some() {
                    if !self.may_wait(pause, tier_waited, deadline) {
                        held = None;
                        continue;
                    }
                    tier_waited += pause;
                }
                same_retries += 1;
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                backed_off = true;
                continue;
            }
            backed_off = false;
            if Instant::now() >= deadline {
                break;
            }
            // The body for this deployment's protocol. A deployment that
            // cannot take the request is skipped before it costs anything:
            // no attempt, no health outcome (the lease ends neutral), no
            // retry-budget token; only its reason in the final error.
            let body = match self.convert(lease.deployment()) {
                Ok(body) => body,
                Err(f) => {
                    ineligible.push(lease.deployment().clone());
                    drop(lease);
                    tracing::debug!(message = "Deployment ineligible.", request_id = ?self.ctx.id, deployment = %f.deployment, error = %f.message);
                    failures.push(f);
                    continue;
                }
            };
            // Charged only for an attempt that is really made. The attempt
            // after a refusal is not: see `Refusal` in the README.
            if !tried.is_empty() {
                if !std::mem::take(&mut free_retry) && !self.model.budget.withdraw() {
                    budget_refused = true;
                    self.metrics.budget_refusal(&self.model.name);
                    break;
                }
                self.metrics.retry(&self.model.name);
            }
            let dep = lease.deployment().clone();
            tried.push(dep.clone());
            let up_to_tier = held.map(|(tier, _)| tier);
            // One attempt, or with a hedge beside it (`hedge.rs`): each
            // that failed is handled in turn.
            let (first, second) = if self.may_hedge(hedged, tried.len()) {
                let base = Scope {
                    tried: &[],
                    up_to_tier,
                    refused: &refused,
                    ineligible: &ineligible,
                };
                let t = &mut tried;
                // Boxed: a race holds two attempts, and inline it would make
                // every request's future (moved whole) twice as large.
                Box::pin(self.race(lease, body, place, t, base, &mut adaptive, &mut hedged)).await
            } else {
                let scope = Scope {
                    tried: &tried,
                    up_to_tier,
                    refused: &refused,
                    ineligible: &ineligible,
                };
                let a = self
                    .attempt(lease, body, deadline, scope, &mut adaptive)
                    .await;
                ((dep, place, a), None)
            };
            for (dep, place, ended) in std::iter::once(first).chain(second) {
                let f = match ended {
                    Attempted::Answer(resp) => return self.remember(resp),
                    Attempted::Error(resp) => return self.count(resp),
                    Attempted::Failed(f) => {
                        let scope = Scope {
                            tried: &tried,
                            up_to_tier: None,
                            refused: &refused,
                            ineligible: &ineligible,
                        };
                        held = self.stay(&f, &dep, place.tier, tier_waited, deadline, scope);
                        f
                    }
                    Attempted::Refused(f, parts, body) => {
                        let wire = dep.upstream.wire;
                        refused.push(Refusal {
                            deployment: dep,
                            place,
                            context_length: f.kind == FailureKind::ContextLength,
                        });
                        refusal = Some((parts, body, f.deployment.clone(), wire));
                        free_retry = true;
                        held = None;
                        f
                    }
                };
                tracing::info!(message = "Attempt failed.", request_id = ?self.ctx.id, key_id = self.ctx.key_id(), deployment = %f.deployment, kind = f.kind.label(), error = %f.message);
                failures.push(f);
            }
        }
        if let Some((parts, body, deployment, wire)) = refusal {
            return self.answer(parts, ProxyBody::full(body), &deployment, wire, tried.len());
        }
        self.exhausted(&failures, tried.len(), budget_refused, deadline)
    }

    /// After a failure on `dep` (in tier `tier`): whether the request stays
    /// in that tier, and until when a `Retry-After` asks it to wait.
    ///
    /// It stays after a transient failure (a 5xx, a reset, a 429 whose
    /// `Retry-After` ends within what is left of `tier_wait_ms` and before
    /// the deadline), the first time that deployment fails for this
    /// request, while its breaker is closed and the retry budget allows a
    /// retry. Otherwise it descends at once.
    ///
    /// It also descends when only one attempt is left and a later tier has
    /// a deployment that could take it (untried, not ruled out by a refusal
    /// in `scope`, available): held, that last attempt would go to the same
    /// tier again and the fallback would never be tried.
    fn stay(
        &self,
        f: &Failure,
        dep: &Arc<Deployment>,
        tier: usize,
        tier_waited: Duration,
        deadline: Instant,
        scope: Scope<'_>,
    ) -> Option<(usize, Option<Instant>)> {
        if f.kind.next() != Next::Transient {
            return None;
        }
        let tried = scope.tried;
        let failed_before = tried.iter().filter(|t| Arc::ptr_eq(t, dep)).count() > 1;
        if failed_before || dep.is_open() {
            return None;
        }
        let left = self
            .model
            .policy
            .max_attempts
            .saturating_sub(u32::try_from(tried.len()).unwrap_or(u32::MAX));
        if left <= 1 && has_untried_after(&self.model, scope, tier) {
            return None;
        }
        let wait = f.retry_after.unwrap_or(Duration::ZERO);
        if !self.may_wait(wait, tier_waited, deadline) {
            return None;
        }
        Some((tier, f.retry_after.map(|ra| Instant::now() + ra)))
    }

    /// Whether the request may wait `wait` more to stay in its tier.
    fn may_wait(&self, wait: Duration, tier_waited: Duration, deadline: Instant) -> bool {
        let policy = &self.model.policy;
        !policy.tier_wait.is_zero()
            && tier_waited + wait <= policy.tier_wait
            && Instant::now() + wait < deadline
            && self.model.budget.can_withdraw()
    }

    /// The client's response: upstream status and headers (hop-by-hop ones
    /// removed), plus Lifeline's; counted ([`Self::count`]). A translated
    /// answer (`wire`, the deployment's, is not the client's) loses the
    /// provider's own protocol headers ([`strip_protocol_headers`]) and says
    /// what its body now is in `content-type`. The key's own
    /// `x-ratelimit-*` are added after this, by the pipeline.
    fn answer(
        &self,
        parts: http::response::Parts,
        body: ProxyBody,
        deployment: &str,
        wire: Wire,
        attempts: usize,
    ) -> Response<ProxyBody> {
        self.count(self.reply(parts, body, deployment, wire, attempts))
    }

    /// [`Self::answer`]'s response, not counted yet: an error answer held
    /// by a hedge race (`hedge.rs`) is counted only if it is returned.
    fn reply(
        &self,
        parts: http::response::Parts,
        body: ProxyBody,
        deployment: &str,
        wire: Wire,
        attempts: usize,
    ) -> Response<ProxyBody> {
        let mut resp = Response::from_parts(parts, body);
        let stream = matches!(resp.body(), ProxyBody::Relay(_));
        let h = resp.headers_mut();
        strip_hop_by_hop(h);
        if wire != self.endpoint.wire() {
            strip_protocol_headers(h, wire);
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }),
            );
        }
        if let Ok(v) = HeaderValue::from_str(deployment) {
            h.insert(X_LIFELINE_DEPLOYMENT, v);
        }
        h.insert(X_LIFELINE_ATTEMPTS, HeaderValue::from(attempts));
        h.insert(X_REQUEST_ID, self.ctx.id.clone());
        resp
    }

    /// Counts the response the request ends with (a committed stream
    /// counts when it ends): its metrics, SLI counters and the key's
    /// token charge.
    fn count(&self, resp: Response<ProxyBody>) -> Response<ProxyBody> {
        if !matches!(resp.body(), ProxyBody::Relay(_)) {
            self.finished(resp.status().as_u16());
            self.settle(resp.status(), resp.body());
        }
        resp
    }

    /// Settles the key's token charge for a whole answer: the `usage` of a
    /// success (the estimate if it has none); nothing for the
    /// provider's refusal of the request (an error is not billed). A
    /// committed stream settles when it ends ([`crate::relay`]).
    fn settle(&self, status: http::StatusCode, body: &ProxyBody) {
        let Some(charge) = &self.ctx.charge else {
            return;
        };
        if !status.is_success() {
            charge.settle(0);
            return;
        }
        let used = match body {
            ProxyBody::Full(Some(b)) => crate::providers::answer_tokens(self.endpoint.wire(), b),
            _ => None,
        };
        // Settled even at the estimate: the key's token counter counts it.
        charge.settle(used.unwrap_or(charge.estimate));
    }

    /// Counts a request answered with `status` (not a committed stream,
    /// which counts when it ends): its metrics and SLI counters.
    fn finished(&self, status: u16) {
        let took = self.ctx.started.elapsed();
        self.metrics
            .request(&self.model.name, status, took.as_secs_f64());
        self.sli().request(status, took);
    }

    /// The SLI counters of this request's model and endpoint family.
    fn sli(&self) -> &FamilySli {
        self.model.sli.family(self.endpoint.family_index())
    }

    fn exhausted(
        &self,
        failures: &[Failure],
        attempts: usize,
        budget_refused: bool,
        deadline: Instant,
    ) -> Response<ProxyBody> {
        if let Some(stale) = self.stale(attempts) {
            return stale;
        }
        let list = list(failures);
        let mut e = if Instant::now() >= deadline {
            ApiError::deadline(format!(
                "Model `{}` did not answer within the request deadline of {} ms after {attempts} attempt(s): {list}.",
                self.model.name,
                self.model.policy.request_timeout.as_millis()
            ))
        } else {
            let why = if budget_refused {
                " (retry budget spent)"
            } else {
                ""
            };
            let back = self.expected_back();
            ApiError::unavailable(
                format!(
                    "All {attempts} attempt(s) for model `{}` failed{why}: {list}.{}",
                    self.model.name,
                    degraded::expected_back_in(back)
                ),
                back,
            )
        };
        e.should_retry = Some(false);
        tracing::warn!(message = "Request failed.", request_id = ?self.ctx.id, peer = %self.ctx.peer, key_id = self.ctx.key_id(), model = %self.model.name, attempts, error = %e.message);
        self.error(e, attempts)
    }

    /// 503 at once, before any attempt: every deployment is at its limit.
    fn at_capacity(&self, message: String) -> Response<ProxyBody> {
        let mut e = ApiError::unavailable(message, Duration::from_secs(1));
        e.code = Some("at_capacity");
        // Debug: one line per refusal in a surge; counted in
        // lifeline_capacity_refusals_total.
        tracing::debug!(message = "Request refused at the concurrency limit.", request_id = ?self.ctx.id, model = %self.model.name, error = %e.message);
        self.error(e, 0)
    }

    fn error(&self, e: ApiError, attempts: usize) -> Response<ProxyBody> {
        // Counted as an error: no answer came from a provider, nothing
        // was used.
        self.count(self.error_reply(e, attempts))
    }

    /// [`Self::error`]'s response, not counted yet ([`Self::reply`]).
    fn error_reply(&self, e: ApiError, attempts: usize) -> Response<ProxyBody> {
        let mut resp = e.into_response_for(self.endpoint.wire());
        resp.headers_mut()
            .insert(X_LIFELINE_ATTEMPTS, HeaderValue::from(attempts));
        resp.headers_mut().insert(X_REQUEST_ID, self.ctx.id.clone());
        resp
    }
}

/// A request between arrival and its answer: one count on the in-flight
/// gauge (a committed stream then holds its own until it ends), and, if the
/// client leaves first (this guard is dropped unanswered), the request is
/// counted with status 499.
struct Pending {
    metrics: Arc<Metrics>,
    model: Arc<Model>,
    endpoint: Endpoint,
    started: Instant,
    request_id: HeaderValue,
    key_id: Option<Arc<str>>,
    answered: bool,
}

impl Pending {
    fn new(call: &Call) -> Self {
        call.metrics.in_flight().inc();
        Self {
            metrics: call.metrics.clone(),
            model: call.model.clone(),
            endpoint: call.endpoint,
            started: call.ctx.started,
            request_id: call.ctx.id.clone(),
            key_id: call.ctx.tenant.as_ref().map(|t| t.id.clone()),
            answered: false,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.metrics.in_flight().dec();
        if !self.answered {
            let took = self.started.elapsed();
            self.metrics
                .request(&self.model.name, 499, took.as_secs_f64());
            self.model
                .sli
                .family(self.endpoint.family_index())
                .request(499, took);
            tracing::info!(message = "Client went away before the answer; upstream attempt cancelled.", request_id = ?self.request_id, key_id = self.key_id.as_deref().unwrap_or("-"));
        }
    }
}

/// The failures, one after the other, for an error message.
fn list(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(Failure::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Removes from a translated answer the provider's own protocol headers,
/// which describe the other protocol: from an Anthropic provider every
/// `anthropic-*` header (`anthropic-ratelimit-*`, `anthropic-organization-id`)
/// and its `request-id`; from an OpenAI-shaped one every `openai-*` header
/// (`openai-organization`, `openai-processing-ms`, `openai-version`) and its
/// `x-ratelimit-*` (the key's own are added after, by the pipeline).
/// `retry-after` and `x-should-retry` mean the same in both and stay.
fn strip_protocol_headers(h: &mut HeaderMap, provider: Wire) {
    let foreign: Vec<header::HeaderName> = h
        .keys()
        .filter(|name| {
            let n = name.as_str();
            match provider {
                Wire::Anthropic => n.starts_with("anthropic-") || n == "request-id",
                Wire::OpenAi => n.starts_with("openai-") || n.starts_with("x-ratelimit-"),
            }
        })
        .cloned()
        .collect();
    for name in foreign {
        h.remove(name);
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
    ] {
        h.remove(name);
    }
    h.remove(KEEP_ALIVE);
}

#[cfg(test)]
mod tests;
