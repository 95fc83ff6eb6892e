//! Degraded mode in the attempt loop, and when the model is expected back.
//!
//! With `degraded = true` on a model, every successful whole answer (status
//! 200, non-streaming; a stream is not stored) to a request that qualifies
//! ([`crate::degraded::fingerprint`]: an explicit `temperature: 0` unless
//! `degraded_any_temperature`) is remembered in the gateway's bounded
//! [`crate::degraded::AnswerCache`] ([`Call::remember`]), under the key
//! that asked (one key's answers are never another's). When every
//! deployment has failed (the attempt loop's final 503/504, or no
//! deployment available before any attempt), an identical request made
//! within `degraded_max_age_ms` by the same key is answered from it ([`Call::stale`]):
//! status 200, the stored body (to a streaming chat or messages request,
//! re-emitted as a stream in its wire's grammar by the adapter:
//! [`crate::providers::stream::answer_as_stream`]),
//! `x-lifeline-cache: stale` and `Age` in seconds, counted in
//! `lifeline_degraded_answers_total{model}`. Models
//! without degraded mode pay nothing: no parse, no hash, no lock.
//!
//! Otherwise the final 503's `Retry-After` (and its message) says when the
//! first deployment of the model is expected back ([`Call::expected_back`]):
//! the earliest end of an open breaker's cooldown or of an upstream's
//! `Retry-After` among the model's deployments that are not drained, at
//! least 1 s.

use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

use super::Call;
use crate::body::ProxyBody;
use crate::degraded::{fingerprint, Fingerprint};
use crate::providers::stream::answer_as_stream;
use crate::providers::Endpoint;
use crate::telemetry::{X_LIFELINE_ATTEMPTS, X_REQUEST_ID};

/// `x-lifeline-cache`, on an answer served by degraded mode.
pub const X_LIFELINE_CACHE: &str = "x-lifeline-cache";

impl Call {
    /// The request's identity in the answer cache, if the model has one and
    /// the request qualifies.
    fn fingerprint(&self) -> Option<Fingerprint> {
        self.model.answers.as_ref()?;
        // A stream can be answered only in the chat and messages grammars.
        if self.inspected.stream
            && !matches!(
                self.endpoint,
                Endpoint::ChatCompletions | Endpoint::Messages
            )
        {
            return None;
        }
        // Keyed by the client's endpoint, not the upstream path: a chat
        // request asked in both wires goes to the same `/chat/completions`
        // upstream, but each client must get its answer in its own wire.
        let endpoint = match self.endpoint {
            Endpoint::Messages => "/messages",
            e => e.path(),
        };
        fingerprint(
            endpoint,
            &self.model.name,
            self.ctx.tenant.as_ref().map(|t| &*t.id),
            &self.body,
            self.model.policy.degraded.any_temperature,
        )
    }

    /// Passes the client's answer through, remembering it first when it is
    /// a successful whole answer of a model in degraded mode.
    pub(super) fn remember(&self, resp: Response<ProxyBody>) -> Response<ProxyBody> {
        let Some(cache) = &self.model.answers else {
            return resp;
        };
        if resp.status() != StatusCode::OK {
            return resp;
        }
        if let ProxyBody::Full(Some(b)) | ProxyBody::Held(Some(b), _) = resp.body() {
            if let Some(key) = self.fingerprint() {
                cache.put(key, b);
            }
        }
        resp
    }

    /// Every deployment failed: the answer to an identical recent request,
    /// marked stale, if the model is in degraded mode and has one.
    pub(super) fn stale(&self, attempts: usize) -> Option<Response<ProxyBody>> {
        let cache = self.model.answers.as_ref()?;
        let key = self.fingerprint()?;
        let stored = cache.get(&key, self.model.policy.degraded.max_age)?;
        let age = stored.stored.elapsed().as_secs();
        let (body, content_type) = if self.inspected.stream {
            let sse = answer_as_stream(
                self.endpoint.wire(),
                &stored.body,
                self.inspected.include_usage,
            )?;
            (sse, "text/event-stream")
        } else {
            (stored.body, "application/json")
        };
        let mut resp = Response::new(ProxyBody::full(body));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(X_LIFELINE_CACHE, HeaderValue::from_static("stale"));
        h.insert(header::AGE, HeaderValue::from(age));
        h.insert(X_LIFELINE_ATTEMPTS, HeaderValue::from(attempts));
        h.insert(X_REQUEST_ID, self.ctx.id.clone());
        self.metrics.degraded_answer(&self.model.name);
        self.finished(200);
        // No provider was used for it.
        if let Some(charge) = &self.ctx.charge {
            charge.settle(0);
        }
        tracing::warn!(message = "Every deployment failed: answered from the degraded-mode cache.", request_id = ?self.ctx.id, key_id = self.ctx.key_id(), model = %self.model.name, attempts, age_s = age);
        Some(resp)
    }

    /// How long until the first deployment of the model is expected to take
    /// traffic again: the earliest end of an open breaker's cooldown or of
    /// an upstream's `Retry-After`, among the deployments not drained; at
    /// least 1 s (also when one is neither open nor told to wait: it may
    /// be tried at once, and failed just now).
    pub(super) fn expected_back(&self) -> Duration {
        let earliest = self
            .model
            .tiers
            .iter()
            .flatten()
            .filter(|m| !m.deployment.is_drained())
            .map(|m| {
                let s = m.deployment.snapshot();
                let ms = s
                    .open_for_ms
                    .unwrap_or(0)
                    .max(s.retry_after_ms.unwrap_or(0));
                Duration::from_millis(ms)
            })
            .min();
        earliest
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1))
    }
}

/// The sentence of a final 503 about `wait`, in whole seconds rounded up
/// (as `Retry-After` says it).
pub(super) fn expected_back_in(wait: Duration) -> String {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    format!(" The first deployment is expected back in about {secs} s.")
}
