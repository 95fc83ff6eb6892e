//! Shared pieces of every answer: the request context handed to endpoints,
//! OpenAI-shaped errors, JSON and SSE responses, and the deterministic text.
//!
//! Keeping these in one place makes every endpoint produce the same error
//! shape (`{"error":{"message","type","code","param"}}`) and the same headers,
//! which is what official SDKs key their exceptions on.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{EventSource, Grammar, Guard, MockBody, StreamPlan};
use crate::MockConfig;

/// Everything an endpoint needs to answer one request.
pub(crate) struct Ctx {
    pub(crate) config: Arc<MockConfig>,
    /// The request body as received.
    pub(crate) body: Bytes,
    /// The parsed JSON body (`Null` when the body was empty).
    pub(crate) json: serde_json::Value,
    /// Azure deployment from the path, which then names the answering model.
    pub(crate) deployment: Option<String>,
    /// Sequence number of this request, for ids.
    pub(crate) seq: u64,
    /// The server's address, for image URLs.
    pub(crate) base: String,
    pub(crate) guard: Guard,
}

impl Ctx {
    /// The model that answers: the Azure deployment, else the request's `model`.
    pub(crate) fn model(&self) -> String {
        if let Some(deployment) = &self.deployment {
            return deployment.clone();
        }
        self.json
            .get("model")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("mock-model")
            .to_owned()
    }

    /// Prompt tokens: about one per four request bytes, at least one.
    pub(crate) fn prompt_tokens(&self) -> u32 {
        u32::try_from(self.body.len() / 4)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// The first of `keys` that holds a number, as a token limit.
    pub(crate) fn max_tokens(&self, keys: &[&str]) -> Option<u32> {
        keys.iter()
            .find_map(|key| self.json.get(*key).and_then(serde_json::Value::as_u64))
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Tokens to generate and whether the answer stops at the request's limit.
    pub(crate) fn answer_len(&self, keys: &[&str]) -> (u32, bool) {
        match self.max_tokens(keys) {
            Some(limit) => (limit.min(MAX_ANSWER_TOKENS), true),
            None => (self.config.completion_tokens.min(MAX_ANSWER_TOKENS), false),
        }
    }

    pub(crate) fn wants_stream(&self) -> bool {
        self.json.get("stream").and_then(serde_json::Value::as_bool) == Some(true)
    }

    /// The stem of generated words: the configured `voice`, else the name.
    pub(crate) fn stem(&self) -> &str {
        self.config.voice.as_deref().unwrap_or(&self.config.name)
    }

    /// Waits as long as generating `tokens` tokens takes at the configured
    /// pace: a real server answers a non-streaming request only once the
    /// whole answer is generated, as long as its stream would take.
    pub(crate) async fn generate_whole(&self, tokens: u32) {
        let tps = self.config.tokens_per_second;
        let per_token = if tps > 0.0 && tps.is_finite() {
            f64::from(tokens) / tps
        } else {
            0.0
        };
        let first = self
            .config
            .ttft_ms
            .saturating_add(self.config.faults.first_token_delay_ms);
        let delay = Duration::from_millis(first) + Duration::from_secs_f64(per_token.min(3600.0));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    pub(crate) fn fingerprint(&self) -> String {
        format!("lifeline-mock-{}", self.config.name)
    }

    /// A whole JSON answer that completes this request.
    pub(crate) fn json_reply(
        self,
        status: StatusCode,
        value: &serde_json::Value,
    ) -> Response<MockBody> {
        json_response(status, value, Some(self.guard))
    }

    /// An Anthropic-shaped error that completes this request.
    pub(crate) fn anthropic_error(self, status: StatusCode, message: &str) -> Response<MockBody> {
        anthropic_error_response(status, message, self.seq, Some(self.guard))
    }

    /// A paced SSE answer built from `source`, with this config's stream faults.
    /// `grammar` holds what the stream faults send in this API's grammar.
    pub(crate) fn sse_reply(
        self,
        source: Box<dyn EventSource>,
        grammar: Grammar,
    ) -> Response<MockBody> {
        let faults = &self.config.faults;
        let tps = self.config.tokens_per_second;
        let interval = if tps > 0.0 && tps.is_finite() {
            Duration::from_secs_f64(1.0 / tps)
        } else {
            Duration::ZERO
        };
        let plan = StreamPlan {
            first_delay: Duration::from_millis(
                self.config
                    .ttft_ms
                    .saturating_add(faults.first_token_delay_ms),
            ),
            interval,
            cut_after: faults.cut_after_chunks,
            stall_after: faults.stall_after_chunks,
            malformed_at: faults.malformed_chunk_at,
            error_after: faults.error_after_chunks,
            grammar,
        };
        let body = MockBody::sse(source, plan, self.guard);
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// Upper bound on generated tokens, so a huge `max_tokens` cannot exhaust memory.
pub(crate) const MAX_ANSWER_TOKENS: u32 = 100_000;

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Frames one SSE event with an `event:` line (Responses API style).
pub(crate) fn sse_named(event: &str, value: &serde_json::Value) -> Bytes {
    let mut out = format!("event: {event}\ndata: ").into_bytes();
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(crate) fn json_response(
    status: StatusCode,
    value: &serde_json::Value,
    guard: Option<Guard>,
) -> Response<MockBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(MockBody::full(Bytes::from(bytes), guard));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The error type OpenAI uses for a status class.
pub(crate) fn error_type_for(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    }
}

/// An OpenAI-shaped error body.
pub(crate) fn error_body(message: &str, kind: &str, code: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "error": { "message": message, "type": kind, "code": code, "param": null }
    })
}

/// An OpenAI-shaped error response.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
    guard: Option<Guard>,
) -> Response<MockBody> {
    json_response(status, &error_body(message, kind, code), guard)
}

/// Adds `Retry-After` when configured.
pub(crate) fn with_retry_after(
    mut response: Response<MockBody>,
    secs: Option<u64>,
) -> Response<MockBody> {
    if let Some(secs) = secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Anthropic's `error.type` for an HTTP status (its error reference).
pub(crate) fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An Anthropic-shaped error response, with `request-id` set by the router:
/// `{"type":"error","error":{"type","message"},"request_id"}`.
pub(crate) fn anthropic_error_response(
    status: StatusCode,
    message: &str,
    seq: u64,
    guard: Option<Guard>,
) -> Response<MockBody> {
    let body = serde_json::json!({
        "type": "error",
        "error": { "type": anthropic_error_type(status), "message": message },
        "request_id": request_id(seq),
    });
    json_response(status, &body, guard)
}

/// The id of request number `seq`, in `x-request-id` and Anthropic's
/// `request-id` and error bodies.
pub(crate) fn request_id(seq: u64) -> String {
    format!("req_mock_{seq}")
}
