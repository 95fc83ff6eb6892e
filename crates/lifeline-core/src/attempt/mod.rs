//! The attempt loop: one request, as many attempts as it takes and is allowed.
//!
//! Steps:
//!
//! 1. The request's end-to-end deadline is fixed (`request_timeout`); every
//!    attempt's timeout is the smaller of its own (`first_byte_timeout`) and
//!    the time left.
//! 2. [`crate::balance::pick`] reserves a deployment, preferring ones not yet
//!    tried. Nothing available before any attempt: a fast 503 with
//!    `Retry-After` set to when something may be.
//! 3. An attempt after the first needs a token from the model's
//!    [`crate::retry::RetryBudget`]; retrying a deployment already tried first waits a
//!    full-jitter backoff.
//! 4. The upstream answer is classified (`upstream.rs`): success, the
//!    client's own error (returned as the provider gave it, never retried),
//!    a misconfigured deployment (401/403: opened at once, fail over), or a
//!    retryable failure (connect error, reset, timeout, 408, 429, 5xx).
//! 5. Streams are read until their first content (`commit.rs`); a failure
//!    before that is retried like any other, after it the stream is the
//!    client's and ends honestly ([`crate::relay`]).
//! 6. When attempts run out: 503 listing every attempt's error, with
//!    `x-should-retry: false` so official SDKs do not multiply the retries.

mod commit;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response};
use tokio::time::{timeout_at, Instant};

use crate::balance::{pick, Pick};
use crate::body::ProxyBody;
use crate::error::ApiError;
use crate::providers::Endpoint;
use crate::request::Inspected;
use crate::retry::full_jitter;
use crate::route::{Deployment, Model};
use crate::telemetry::{
    Metrics, KEEP_ALIVE, X_LIFELINE_ATTEMPTS, X_LIFELINE_DEPLOYMENT, X_REQUEST_ID,
};
use upstream::{Attempted, Failed};

/// How long a request at capacity waits on one deployment before looking again.
const SATURATION_SLICE: Duration = Duration::from_millis(50);

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
    /// `x-request-id`.
    pub request_id: HeaderValue,
    /// When the request arrived.
    pub started: Instant,
}

impl Call {
    /// Runs the attempt loop to an answer for the client. A client that goes
    /// away first drops this future: its upstream attempt is cancelled with
    /// it, and the request is counted with status 499.
    pub async fn run(self) -> Response<ProxyBody> {
        let mut pending = Pending::new(&self);
        let resp = self.attempts().await;
        pending.answered = true;
        resp
    }

    async fn attempts(self) -> Response<ProxyBody> {
        let policy = &self.model.policy;
        let deadline = self.started + policy.request_timeout;
        self.model.budget.deposit();
        let mut tried: Vec<Arc<Deployment>> = Vec::new();
        let mut failures: Vec<Failed> = Vec::new();
        let mut budget_refused = false;
        let mut same_retries = 0u32;
        let mut backed_off = false;
        while (tried.len() as u32) < policy.max_attempts {
            let (lease, retry_of_tried) = match pick(&self.model, &tried) {
                Pick::Lease {
                    lease,
                    retry_of_tried,
                } => (lease, retry_of_tried),
                Pick::Saturated { deployment } => {
                    // Every healthy deployment is at its concurrency cap: wait
                    // for a slot instead of refusing, in short slices so that
                    // another deployment freeing up or recovering is seen too.
                    let slice = deadline.min(Instant::now() + SATURATION_SLICE);
                    match timeout_at(slice, deployment.lease_when_free()).await {
                        Ok(Some(lease)) => {
                            let again = tried.iter().any(|t| Arc::ptr_eq(t, &deployment));
                            (lease, again)
                        }
                        // Drained or opened while waiting: pick again.
                        Ok(None) => continue,
                        Err(_) if Instant::now() < deadline => continue,
                        Err(_) if tried.is_empty() => {
                            let mut e = ApiError::unavailable(
                                format!(
                                    "Every deployment of model `{}` is at its concurrency limit (max_concurrency) and none freed up within the request deadline.",
                                    self.model.name
                                ),
                                Duration::from_secs(1),
                            );
                            e.code = Some("at_capacity");
                            return self.error(e, 0);
                        }
                        Err(_) => break,
                    }
                }
                Pick::Unavailable { until } => {
                    if tried.is_empty() {
                        let wait = until.map_or(Duration::from_secs(1), |u| {
                            u.saturating_duration_since(Instant::now())
                        });
                        let mut e = ApiError::unavailable(
                            format!("No deployment of model `{}` is available right now (all are failing, open or drained).", self.model.name),
                            wait,
                        );
                        e.code = Some("no_deployment_available");
                        return self.error(e, 0);
                    }
                    break;
                }
            };
            // Only deployments already tried are left: back off first, without
            // holding the reservation (its slot, trial and in-flight count are
            // others' meanwhile), then pick again.
            if retry_of_tried && !backed_off {
                drop(lease);
                let pause = full_jitter(policy.backoff_base, policy.backoff_max, same_retries);
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
            // Charged only for an attempt that is really made.
            if !tried.is_empty() {
                if !self.model.budget.withdraw() {
                    budget_refused = true;
                    self.metrics.budget_refusal(&self.model.name);
                    break;
                }
                self.metrics.retry(&self.model.name);
            }
            tried.push(lease.deployment().clone());
            match self.attempt(lease, deadline, &tried).await {
                Attempted::Answer(resp) => return resp,
                Attempted::Failed(f) => {
                    tracing::info!(message = "Attempt failed.", request_id = ?self.request_id, deployment = %f.deployment, error = %f.what);
                    failures.push(f);
                }
            }
        }
        self.exhausted(&failures, tried.len(), budget_refused, deadline)
    }

    /// The client's response: upstream status and headers (hop-by-hop ones
    /// removed), plus Lifeline's.
    fn answer(
        &self,
        parts: http::response::Parts,
        body: ProxyBody,
        dep: &Deployment,
        attempts: usize,
    ) -> Response<ProxyBody> {
        let mut resp = Response::from_parts(parts, body);
        let h = resp.headers_mut();
        strip_hop_by_hop(h);
        if let Ok(v) = HeaderValue::from_str(&dep.id) {
            h.insert(X_LIFELINE_DEPLOYMENT, v);
        }
        h.insert(X_LIFELINE_ATTEMPTS, HeaderValue::from(attempts));
        h.insert(X_REQUEST_ID, self.request_id.clone());
        if !matches!(resp.body(), ProxyBody::Relay(_)) {
            self.metrics.request(
                &self.model.name,
                resp.status().as_u16(),
                self.started.elapsed().as_secs_f64(),
            );
        }
        resp
    }

    fn exhausted(
        &self,
        failures: &[Failed],
        attempts: usize,
        budget_refused: bool,
        deadline: Instant,
    ) -> Response<ProxyBody> {
        let list = failures
            .iter()
            .map(|f| format!("{}: {}", f.deployment, f.what))
            .collect::<Vec<_>>()
            .join("; ");
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
            ApiError::unavailable(
                format!(
                    "All {attempts} attempt(s) for model `{}` failed{why}: {list}.",
                    self.model.name
                ),
                Duration::from_secs(1),
            )
        };
        e.should_retry = Some(false);
        tracing::warn!(message = "Request failed.", request_id = ?self.request_id, model = %self.model.name, attempts, error = %e.message);
        self.error(e, attempts)
    }

    fn error(&self, e: ApiError, attempts: usize) -> Response<ProxyBody> {
        let status = e.status.as_u16();
        let mut resp = e.into_response();
        resp.headers_mut()
            .insert(X_LIFELINE_ATTEMPTS, HeaderValue::from(attempts));
        resp.headers_mut()
            .insert(X_REQUEST_ID, self.request_id.clone());
        self.metrics.request(
            &self.model.name,
            status,
            self.started.elapsed().as_secs_f64(),
        );
        resp
    }
}

/// A request between arrival and its answer: one count on the in-flight
/// gauge (a committed stream then holds its own until it ends), and, if the
/// client leaves first (this guard is dropped unanswered), the request is
/// counted with status 499.
struct Pending {
    metrics: Arc<Metrics>,
    model: Arc<str>,
    started: Instant,
    request_id: HeaderValue,
    answered: bool,
}

impl Pending {
    fn new(call: &Call) -> Self {
        call.metrics.in_flight().inc();
        Self {
            metrics: call.metrics.clone(),
            model: call.model.name.clone(),
            started: call.started,
            request_id: call.request_id.clone(),
            answered: false,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.metrics.in_flight().dec();
        if !self.answered {
            self.metrics
                .request(&self.model, 499, self.started.elapsed().as_secs_f64());
            tracing::info!(message = "Client went away before the answer; upstream attempt cancelled.", request_id = ?self.request_id);
        }
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
