//! One attempt against one deployment: the upstream request, the wait for
//! its answer, and what the answer means.
//!
//! [`classify`] sorts upstream statuses; [`Call::attempt`] turns an answer
//! into either the client's response or a failure to retry elsewhere, and
//! records the outcome on the deployment's lease.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::{timeout_at, Instant};

use super::{commit, Call, MAX_RESPONSE_BYTES};
use crate::body::ProxyBody;
use crate::health::Outcome;
use crate::providers::Endpoint;
use crate::relay::{Protocol, RelayBody, StreamEnd};
use crate::request::splice;
use crate::retry::retry_after;
use crate::route::{Deployment, Lease};
use crate::telemetry::X_REQUEST_ID;

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    pub(super) deployment: Arc<str>,
    pub(super) what: String,
}

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

/// What an attempt produced.
pub(super) enum Attempted {
    /// Send this to the client; the request is over.
    Answer(Response<ProxyBody>),
    /// Try again elsewhere.
    Failed(Failed),
}

impl Call {
    pub(super) async fn attempt(
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
            Class::Redirect => {
                self.metrics.attempt(&dep.id, "status_error");
                lease.finish(Outcome::failure(start.elapsed()));
                return Attempted::Failed(fail(format!(
                    "HTTP {} redirect from upstream: check the provider's base_url",
                    status.as_u16()
                )));
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
            let scanner = crate::relay::Scanner::new(protocol).choices(self.inspected.choices);
            return match commit::first_content(resp, scanner, attempt_deadline).await {
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
        let send = self.model.client.request(req);
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
                let probe = dep.probe(&self.model.client, limit);
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
        for s in [300, 301, 302, 303, 307, 308] {
            assert!(
                matches!(
                    classify(StatusCode::from_u16(s).unwrap_or_default()),
                    Class::Redirect
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
