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
//!    [`RetryBudget`]; retrying a deployment already tried first waits a
//!    full-jitter backoff.
//! 4. The upstream answer is classified ([`classify`]): success, the
//!    client's own error (returned as the provider gave it, never retried),
//!    a misconfigured deployment (401/403: opened at once, fail over), or a
//!    retryable failure (connect error, reset, timeout, 408, 429, 5xx).
//! 5. Streams are read until their first content ([`commit`]); a failure
//!    before that is retried like any other, after it the stream is the
//!    client's and ends honestly ([`crate::relay`]).
//! 6. When attempts run out: 503 listing every attempt's error, with
//!    `x-should-retry: false` so official SDKs do not multiply the retries.

mod backoff;
mod budget;
mod commit;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use tokio::time::{timeout_at, Instant};

pub use backoff::{full_jitter, retry_after};
pub use budget::RetryBudget;

use crate::balance::{pick, Pick};
use crate::body::ProxyBody;
use crate::error::ApiError;
use crate::health::Outcome;
use crate::providers::Endpoint;
use crate::relay::{Protocol, RelayBody, StreamEnd};
use crate::request::{splice, Inspected};
use crate::route::{Deployment, Lease, Model};
use crate::telemetry::{
    Metrics, KEEP_ALIVE, X_LIFELINE_ATTEMPTS, X_LIFELINE_DEPLOYMENT, X_REQUEST_ID,
};

/// The upstream HTTP client (HTTP/1.1 and HTTP/2, plain and TLS).
pub type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// How long a request at capacity waits on one deployment before looking again.
const SATURATION_SLICE: Duration = Duration::from_millis(50);

/// Largest non-streaming upstream answer accepted (images in `b64_json` are big).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// One client request, ready to be attempted.
pub struct Call {
    /// Metrics sink.
    pub metrics: Arc<Metrics>,
    /// The upstream client.
    pub client: HttpClient,
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

/// Why one attempt failed.
#[derive(Debug, Clone)]
struct Failed {
    deployment: Arc<str>,
    what: String,
}

/// How an upstream answer is treated.
enum Class {
    Success,
    ClientError,
    Misconfigured,
    Retryable,
    Fatal,
}

fn classify(status: StatusCode) -> Class {
    match status.as_u16() {
        200..=299 => Class::Success,
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

/// What an attempt produced.
enum Attempted {
    /// Send this to the client; the request is over.
    Answer(Response<ProxyBody>),
    /// Try again elsewhere.
    Failed(Failed),
}

impl Call {
    /// Runs the attempt loop to an answer for the client. A client that goes
    /// away first drops this future: its upstream attempt is cancelled with
    /// it, and the request is counted with status 499.
    pub async fn run(self) -> Response<ProxyBody> {
        let mut gone = Abandoned {
            metrics: self.metrics.clone(),
            model: self.model.name.clone(),
            started: self.started,
            request_id: self.request_id.clone(),
            armed: true,
        };
        let resp = self.attempts().await;
        gone.armed = false;
        resp
    }

    async fn attempts(self) -> Response<ProxyBody> {
        let policy = &self.model.policy;
        let deadline = self.started + policy.request_timeout;
        // Counted while the attempt loop runs (or until the client leaves);
        // a committed stream holds its own count until it ends.
        let _in_flight = InFlight::new(self.metrics.in_flight());
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

    async fn attempt(
        &self,
        mut lease: Lease,
        deadline: Instant,
        tried: &[Arc<Deployment>],
    ) -> Attempted {
        let n = tried.len();
        let dep = lease.deployment().clone();
        let policy = &self.model.policy;
        let start = Instant::now();
        let attempt_deadline = deadline.min(start + policy.first_byte_timeout);
        let fail = |what: String| Failed {
            deployment: dep.id.clone(),
            what,
        };
        let req = match self.upstream_request(&dep) {
            Ok(r) => r,
            Err(what) => {
                lease.finish(Outcome::failure(Duration::ZERO));
                return Attempted::Failed(fail(what));
            }
        };
        let resp = match self.response_head(&dep, req, start, deadline, tried).await {
            Err(why) => {
                self.metrics.attempt(&dep.id, "timeout");
                lease.finish(Outcome::failure(start.elapsed()));
                return Attempted::Failed(fail(why));
            }
            Ok(Err(e)) => {
                let connect = e.is_connect();
                self.metrics
                    .attempt(&dep.id, if connect { "connect" } else { "reset" });
                lease.finish(Outcome::failure(start.elapsed()));
                return Attempted::Failed(fail(describe_client_error(&e)));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        match classify(status) {
            Class::Success => {}
            Class::ClientError => {
                self.metrics.attempt(&dep.id, "client_error");
                return match read_body(
                    resp,
                    deadline.min(attempt_deadline.max(Instant::now() + policy.stream_idle_timeout)),
                )
                .await
                {
                    Ok((parts, body)) => {
                        lease.finish(Outcome::neutral(start.elapsed()));
                        Attempted::Answer(self.answer(parts, ProxyBody::full(body), &dep, n))
                    }
                    Err(what) => {
                        lease.finish(Outcome::failure(start.elapsed()));
                        Attempted::Failed(fail(what))
                    }
                };
            }
            Class::Misconfigured => {
                self.metrics.attempt(&dep.id, "misconfigured");
                lease.finish(Outcome {
                    misconfigured: true,
                    ..Outcome::failure(start.elapsed())
                });
                return Attempted::Failed(fail(format!(
                    "HTTP {} from upstream: the deployment's credentials or access are wrong",
                    status.as_u16()
                )));
            }
            Class::Retryable | Class::Fatal => {
                let retry_after = retry_after(resp.headers(), SystemTime::now());
                let label = if status == StatusCode::TOO_MANY_REQUESTS {
                    "rate_limited"
                } else {
                    "status_error"
                };
                self.metrics.attempt(&dep.id, label);
                let outcome = Outcome {
                    retry_after,
                    ..Outcome::failure(start.elapsed())
                };
                lease.finish(outcome);
                if matches!(classify(status), Class::Fatal) {
                    // Not retryable (e.g. 501): the provider's answer stands.
                    if let Ok((parts, body)) = read_body(
                        resp,
                        deadline.min(Instant::now() + policy.stream_idle_timeout),
                    )
                    .await
                    {
                        return Attempted::Answer(self.answer(
                            parts,
                            ProxyBody::full(body),
                            &dep,
                            n,
                        ));
                    }
                }
                let ra = retry_after
                    .map(|d| format!(", Retry-After {} s", d.as_secs()))
                    .unwrap_or_default();
                return Attempted::Failed(fail(format!("HTTP {}{ra}", status.as_u16())));
            }
        }
        let is_sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if self.inspected.stream && is_sse {
            let protocol = match self.endpoint {
                Endpoint::Responses => Protocol::Responses,
                Endpoint::ChatCompletions => Protocol::Chat,
                Endpoint::ImagesGenerations | Endpoint::Embeddings => Protocol::Generic,
            };
            return match commit::first_content(resp, protocol, attempt_deadline).await {
                Ok(c) => {
                    let ttft = start.elapsed();
                    lease.first_content(ttft);
                    self.metrics.attempt(&dep.id, "success");
                    self.metrics
                        .ttft(&self.model.name, self.started.elapsed().as_secs_f64());
                    let end = StreamEnd {
                        metrics: self.metrics.clone(),
                        model: self.model.name.clone(),
                        started: self.started,
                        ttft,
                        request_id: self.request_id.clone(),
                    };
                    let relay = RelayBody::new(
                        c.prefix,
                        c.body,
                        c.scanner,
                        policy.stream_idle_timeout,
                        lease,
                        end,
                    );
                    self.metrics.in_flight().inc();
                    Attempted::Answer(self.answer(
                        c.parts,
                        ProxyBody::Relay(Box::new(relay)),
                        &dep,
                        n,
                    ))
                }
                Err(what) => {
                    self.metrics.attempt(&dep.id, "stream_failed");
                    lease.finish(Outcome::failure(start.elapsed()));
                    Attempted::Failed(fail(what))
                }
            };
        }
        match read_body(
            resp,
            deadline.min(attempt_deadline.max(Instant::now() + policy.stream_idle_timeout)),
        )
        .await
        {
            Ok((_, body)) if !is_json_answer(&body) => {
                self.metrics.attempt(&dep.id, "bad_body");
                lease.finish(Outcome::failure(start.elapsed()));
                Attempted::Failed(fail(format!(
                    "HTTP {} with a body that is not a JSON answer ({} bytes)",
                    status.as_u16(),
                    body.len()
                )))
            }
            Ok((parts, body)) => {
                self.metrics.attempt(&dep.id, "success");
                lease.finish(Outcome::success(start.elapsed()));
                Attempted::Answer(self.answer(parts, ProxyBody::full(body), &dep, n))
            }
            Err(what) => {
                self.metrics.attempt(&dep.id, "reset");
                lease.finish(Outcome::failure(start.elapsed()));
                Attempted::Failed(fail(what))
            }
        }
    }

    /// Waits for the response head of an attempt.
    ///
    /// Streams must start within `first_byte_timeout`. A non-streaming answer
    /// comes only once it is fully generated, which for a long answer takes
    /// longer than any first-byte timeout that still catches a frozen
    /// server. So when `first_byte_timeout` passes, the wait goes on (one
    /// `first_byte_timeout` at a time, up to the request's deadline) only
    /// while the deployment shows it is working:
    ///
    /// 1. it answered other requests during the last `first_byte_timeout`:
    ///    it is busy generating, not frozen; or
    /// 2. no untried deployment could take the request instead, and it
    ///    answers a probe (`GET {probe_path}`, no tokens): waiting is the
    ///    only way to an answer, and the server is alive.
    ///
    /// Otherwise the attempt is abandoned and the request fails over. A
    /// provider whose model list answers while its inference hangs (a common
    /// shape of outage) is thus abandoned after `first_byte_timeout` when
    /// another deployment exists.
    async fn response_head(
        &self,
        dep: &Deployment,
        req: Request<Full<Bytes>>,
        start: Instant,
        deadline: Instant,
        tried: &[Arc<Deployment>],
    ) -> Result<Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>, String>
    {
        let policy = &self.model.policy;
        let send = self.client.request(req);
        tokio::pin!(send);
        let mut until = deadline.min(start + policy.first_byte_timeout);
        loop {
            if let Ok(head) = timeout_at(until, &mut send).await {
                return Ok(head);
            }
            let waited = start.elapsed().as_millis();
            if self.inspected.stream || until >= deadline {
                return Err(format!("no response headers within {waited} ms"));
            }
            // Answered something during the last wait: busy, not frozen.
            let working = dep
                .last_answer()
                .is_some_and(|t| t > start && t + policy.first_byte_timeout > Instant::now());
            if !working {
                if crate::balance::has_untried(&self.model, tried) {
                    return Err(format!("no response within {waited} ms, and the deployment answered nothing else meanwhile"));
                }
                if !dep.upstream.probes_enabled() {
                    return Err(format!("no response headers within {waited} ms"));
                }
                let limit = dep
                    .probe_timeout()
                    .min(deadline.saturating_duration_since(Instant::now()));
                let probe = crate::health::probe::probe(&self.client, dep, limit);
                tokio::pin!(probe);
                let alive = tokio::select! {
                    head = &mut send => return Ok(head),
                    alive = &mut probe => alive,
                };
                if !alive {
                    return Err(format!("no response headers within {waited} ms, and the deployment does not answer probes"));
                }
            }
            tracing::debug!(message = "Long generation: the deployment is working, waiting on.", request_id = ?self.request_id, deployment = %dep.id, waited_ms = waited as u64);
            until = deadline.min(Instant::now() + policy.first_byte_timeout);
        }
    }

    fn upstream_request(&self, dep: &Deployment) -> Result<Request<Full<Bytes>>, String> {
        let uri = dep.uri(self.endpoint)?;
        let body = splice(&self.body, &self.inspected.model_span, &dep.model_json);
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
            HeaderValue::from_static(if self.inspected.stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        h.insert(X_REQUEST_ID, self.request_id.clone());
        if let Some((name, value)) = dep.upstream.auth() {
            h.insert(name.clone(), value.clone());
        }
        Ok(req)
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

/// One count on the in-flight gauge, given back when dropped.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a request whose client left before its answer was ready.
struct Abandoned {
    metrics: Arc<Metrics>,
    model: Arc<str>,
    started: Instant,
    request_id: HeaderValue,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self.armed {
            self.metrics
                .request(&self.model, 499, self.started.elapsed().as_secs_f64());
            tracing::info!(message = "Client went away before the answer; upstream attempt cancelled.", request_id = ?self.request_id);
        }
    }
}

/// Whether a 2xx non-streaming body is a JSON object that is not an error.
///
/// Some servers (proxies in front of a provider, a few OpenAI-compatible
/// servers) answer 200 with an HTML page, a truncated body or
/// `{"error": ...}`. Relaying that would hand the client's SDK something it
/// cannot parse; it is a failed attempt, retried elsewhere. The check looks
/// at the ends and the first key only, so it costs nothing measurable.
fn is_json_answer(body: &[u8]) -> bool {
    let b = body.trim_ascii();
    if !(b.first() == Some(&b'{') && b.last() == Some(&b'}')) {
        return false;
    }
    let inner = b[1..].trim_ascii_start();
    !inner.starts_with(b"\"error\"")
}

/// Reads a whole upstream body, within `deadline` and [`MAX_RESPONSE_BYTES`].
async fn read_body(
    resp: Response<hyper::body::Incoming>,
    deadline: Instant,
) -> Result<(http::response::Parts, Bytes), String> {
    let (parts, body) = resp.into_parts();
    match timeout_at(deadline, Limited::new(body, MAX_RESPONSE_BYTES).collect()).await {
        Err(_) => Err("response body not received in time".into()),
        Ok(Err(e)) => Err(format!("response body failed: {e}")),
        Ok(Ok(c)) => Ok((parts, c.to_bytes())),
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
mod tests {
    use super::*;

    #[test]
    fn json_answers_are_told_from_junk() {
        assert!(is_json_answer(br#" {"id":"x","choices":[]} "#));
        assert!(!is_json_answer(b"<html>502 Bad Gateway</html>"));
        assert!(!is_json_answer(br#"{"id":"x","choi"#));
        assert!(!is_json_answer(br#"{ "error": {"message": "overloaded"}}"#));
        assert!(!is_json_answer(b""));
    }

    #[test]
    fn classification_follows_the_issue() {
        for s in [408, 429, 500, 502, 503, 504, 520, 524, 529] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(s).unwrap_or_default()),
                    Class::Retryable
                ),
                "{s}"
            );
        }
        for s in [400, 404, 409, 413, 422] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(s).unwrap_or_default()),
                    Class::ClientError
                ),
                "{s}"
            );
        }
        for s in [401, 403] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(s).unwrap_or_default()),
                    Class::Misconfigured
                ),
                "{s}"
            );
        }
        assert!(matches!(classify(StatusCode::OK), Class::Success));
        assert!(matches!(
            classify(StatusCode::NOT_IMPLEMENTED),
            Class::Fatal
        ));
    }
}
