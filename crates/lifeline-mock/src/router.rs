//! Request handling: control API, recording, fault injection, routing.
//!
//! Data paths are matched by suffix so the mock answers under any prefix
//! (`/v1/chat/completions`, `/chat/completions`, Azure's
//! `/openai/deployments/{deployment}/chat/completions`, Anthropic's
//! `/v1/messages`). Faults are checked in the documented order before
//! routing, so they hit every data path, GET models included (health probes
//! must see them); on `/messages` (and on `/models` asked with
//! `anthropic-version`) every error is in Anthropic's shape and every answer
//! carries Anthropic's `request-id` header. `/_mock/*` is never
//! faulted and never counted.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::body::{Guard, MockBody};
use crate::convo::Wire;
use crate::reply::{
    anthropic_error_response, error_body, error_response, error_type_for, json_response,
    request_id, with_retry_after, Ctx,
};
use crate::server::Shared;
use crate::stats::{recorded_body, Ending, RecordedRequest};
use crate::{chat, embeddings, images, messages, responses, Faults, MockConfig};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
    Images,
    Responses,
    Messages,
    Models,
}

impl Endpoint {
    fn from_path(path: &str) -> Option<Self> {
        let table = [
            ("/chat/completions", Self::Chat),
            ("/embeddings", Self::Embeddings),
            ("/images/generations", Self::Images),
            ("/responses", Self::Responses),
            ("/messages", Self::Messages),
            ("/models", Self::Models),
        ];
        table
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix))
            .map(|(_, endpoint)| *endpoint)
    }

    /// Anthropic's API on `/messages`, and on `/models` when the request
    /// carries `anthropic-version` (an Anthropic client's health probe);
    /// OpenAI's everywhere else.
    fn wire(path: &str, headers: &HeaderMap) -> Wire {
        match Self::from_path(path.trim_end_matches('/')) {
            Some(Self::Messages) => Wire::Anthropic,
            Some(Self::Models) if headers.contains_key("anthropic-version") => Wire::Anthropic,
            _ => Wire::OpenAi,
        }
    }

    fn method(self) -> Method {
        match self {
            Self::Models => Method::GET,
            _ => Method::POST,
        }
    }
}

/// The Azure deployment in `/openai/deployments/{deployment}/...`.
fn azure_deployment(path: &str) -> Option<String> {
    let rest = &path[path.find("/openai/deployments/")? + "/openai/deployments/".len()..];
    let deployment = rest.split('/').next().filter(|d| !d.is_empty())?;
    Some(deployment.to_owned())
}

/// Every header as received, names in lower case, in order.
/// The headers that carry a provider key: recorded redacted only.
const CREDENTIALS: [&str; 3] = ["authorization", "api-key", "x-api-key"];

fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = if CREDENTIALS.contains(&name.as_str()) {
                crate::stats::redact(&value)
            } else {
                value.into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// A credential header, redacted ([`crate::stats::redact`]).
fn credential(headers: &HeaderMap, name: &str) -> Option<String> {
    header_string(headers, name).map(|v| crate::stats::redact(&v))
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

async fn read_body(body: Incoming, errors: Errors) -> Result<Bytes, Response<MockBody>> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            let (status, message) = if error.is::<http_body_util::LengthLimitError>() {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large".to_owned(),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("could not read request body: {error}"),
                )
            };
            Err(errors.response(status, &message, "invalid_request_error", None, None))
        }
    }
}

/// The hyper service: every request on every connection comes here.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    abort: CancellationToken,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let path = request.uri().path().to_owned();
    if let Some(action) = path.strip_prefix("/_mock/") {
        return Ok(control(&shared, action, request).await);
    }
    let guard = Guard::start(Arc::clone(&shared.recorder), &path);
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let errors = Errors {
        wire: Endpoint::wire(&path, request.headers()),
        seq,
    };
    let mut response = data(shared, abort, request, path, guard, errors).await;
    if let Ok(value) = HeaderValue::from_str(&request_id(seq)) {
        if errors.wire == Wire::Anthropic {
            response.headers_mut().insert("request-id", value.clone());
        }
        response.headers_mut().insert("x-request-id", value);
    }
    Ok(response)
}

/// Errors in the shape of the API the path belongs to.
#[derive(Clone, Copy)]
struct Errors {
    wire: Wire,
    seq: u64,
}

impl Errors {
    /// OpenAI's `{"error":{message,type,code,param}}` with `kind` and `code`,
    /// or Anthropic's `{"type":"error","error":{type,message},"request_id"}`
    /// with the type its API gives `status`.
    fn response(
        self,
        status: StatusCode,
        message: &str,
        kind: &str,
        code: Option<&str>,
        guard: Option<Guard>,
    ) -> Response<MockBody> {
        match self.wire {
            Wire::OpenAi => error_response(status, message, kind, code, guard),
            Wire::Anthropic => anthropic_error_response(status, message, self.seq, guard),
        }
    }
}

async fn data(
    shared: Arc<Shared>,
    abort: CancellationToken,
    request: Request<Incoming>,
    path: String,
    mut guard: Guard,
    errors: Errors,
) -> Response<MockBody> {
    let (parts, body) = request.into_parts();
    let body = match read_body(body, errors).await {
        Ok(body) => body,
        Err(response) => {
            guard.end(Ending::Completed);
            return response;
        }
    };
    shared.recorder.record(RecordedRequest {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| path.clone(), ToString::to_string),
        authorization: credential(&parts.headers, "authorization"),
        api_key: credential(&parts.headers, "api-key"),
        x_api_key: credential(&parts.headers, "x-api-key"),
        anthropic_version: header_string(&parts.headers, "anthropic-version"),
        request_id: header_string(&parts.headers, "x-request-id"),
        headers: recorded_headers(&parts.headers),
        body: recorded_body(&body),
    });

    let config = shared.config();
    let guard = match inject_faults(&shared, &config.faults, &abort, guard, errors).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };

    let trimmed = path.trim_end_matches('/');
    let Some(endpoint) = Endpoint::from_path(trimmed) else {
        let message = format!("Unknown request URL: {} {path}", parts.method);
        return errors.response(
            StatusCode::NOT_FOUND,
            &message,
            "invalid_request_error",
            Some("unknown_url"),
            Some(guard),
        );
    };
    if parts.method != endpoint.method() {
        let message = format!("Method {} not allowed on {path}", parts.method);
        return errors.response(
            StatusCode::METHOD_NOT_ALLOWED,
            &message,
            "invalid_request_error",
            Some("method_not_allowed"),
            Some(guard),
        );
    }
    if endpoint == Endpoint::Models {
        return models(guard, errors.wire);
    }
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(json @ serde_json::Value::Object(_)) => json,
        Ok(_) => {
            let message = "We could not parse the JSON body of your request: expected an object";
            return errors.response(
                StatusCode::BAD_REQUEST,
                message,
                "invalid_request_error",
                None,
                Some(guard),
            );
        }
        Err(error) => {
            let message = format!("We could not parse the JSON body of your request: {error}");
            return errors.response(
                StatusCode::BAD_REQUEST,
                &message,
                "invalid_request_error",
                None,
                Some(guard),
            );
        }
    };
    let ctx = Ctx {
        config,
        body,
        json,
        deployment: azure_deployment(trimmed),
        seq: errors.seq,
        base: shared.origin.clone(),
        guard,
    };
    if let Some((window, prompt)) = over_context_window(endpoint, &ctx) {
        return context_length_exceeded(ctx, window, prompt, errors.wire);
    }
    match endpoint {
        Endpoint::Chat => chat::answer(ctx).await,
        Endpoint::Messages => messages::answer(ctx).await,
        Endpoint::Embeddings => embeddings::answer(ctx),
        Endpoint::Images => images::answer(ctx),
        Endpoint::Responses => responses::answer(ctx),
        Endpoint::Models => models(ctx.guard, errors.wire),
    }
}

/// The prompt's size in tokens if it does not fit the configured
/// `context_window` (chat completions, messages and responses only).
fn over_context_window(endpoint: Endpoint, ctx: &Ctx) -> Option<(u32, u32)> {
    let window = ctx.config.context_window?;
    let prompt = ctx.prompt_tokens();
    let limited = matches!(
        endpoint,
        Endpoint::Chat | Endpoint::Messages | Endpoint::Responses
    );
    (limited && prompt > window).then_some((window, prompt))
}

/// OpenAI's 400 `context_length_exceeded`, or Anthropic's "prompt is too
/// long" on `/messages`.
fn context_length_exceeded(ctx: Ctx, window: u32, prompt: u32, wire: Wire) -> Response<MockBody> {
    if wire == Wire::Anthropic {
        let message = format!("prompt is too long: {prompt} tokens > {window} maximum");
        return ctx.anthropic_error(StatusCode::BAD_REQUEST, &message);
    }
    let message = format!(
        "This model's maximum context length is {window} tokens. However, your messages resulted in {prompt} tokens. Please reduce the length of the messages."
    );
    let body = serde_json::json!({
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    });
    json_response(StatusCode::BAD_REQUEST, &body, Some(ctx.guard))
}

fn hit(rate: f64) -> bool {
    rate > 0.0 && fastrand::f64() < rate
}

/// Applies the request-level faults in order; `Err` is the injected answer.
async fn inject_faults(
    shared: &Shared,
    faults: &Faults,
    abort: &CancellationToken,
    mut guard: Guard,
    errors: Errors,
) -> Result<Guard, Response<MockBody>> {
    if faults.maintenance {
        let response = errors.response(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is under maintenance (simulated)",
            "service_unavailable",
            Some("maintenance"),
            Some(guard),
        );
        return Err(with_retry_after(response, faults.retry_after_secs));
    }
    if faults.reset {
        guard.end(Ending::Faulted);
        // The connection task sees this and drops the connection with an RST.
        abort.cancel();
        std::future::pending::<()>().await;
    }
    if faults.hang {
        // Never answers; when the client leaves, hyper drops this future and
        // the guard counts the request as cancelled.
        std::future::pending::<()>().await;
    }
    if faults
        .capacity
        .is_some_and(|cap| shared.recorder.over_capacity(cap))
    {
        let response = errors.response(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many concurrent requests (simulated capacity)",
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            Some(guard),
        );
        return Err(with_retry_after(response, faults.retry_after_secs));
    }
    if faults.rpm_quota.is_some_and(|rpm| {
        let window = Duration::from_millis(faults.quota_window_ms.unwrap_or(60_000).max(1));
        let limit = (u128::from(rpm) * window.as_millis() / 60_000).max(1);
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        shared
            .recorder
            .over_quota(limit, window, tokio::time::Instant::now())
    }) {
        let response = errors.response(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests per minute (simulated quota)",
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            Some(guard),
        );
        return Err(with_retry_after(response, faults.retry_after_secs));
    }
    if hit(faults.rate_limit_rate) && shared.may_inject(faults) {
        let response = errors.response(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached (simulated)",
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            Some(guard),
        );
        return Err(with_retry_after(response, faults.retry_after_secs));
    }
    if hit(faults.error_rate) && shared.may_inject(faults) {
        let status = StatusCode::from_u16(faults.effective_error_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let response = errors.response(
            status,
            "Simulated error",
            error_type_for(status),
            faults.error_code.as_deref(),
            Some(guard),
        );
        let response = if status == StatusCode::TOO_MANY_REQUESTS {
            with_retry_after(response, faults.retry_after_secs)
        } else {
            response
        };
        return Err(response);
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    Ok(guard)
}

/// The model list, in OpenAI's shape or Anthropic's.
fn models(guard: Guard, wire: Wire) -> Response<MockBody> {
    let body = match wire {
        Wire::OpenAi => {
            let ids = [
                "mock-model",
                "gpt-4o",
                "gpt-4o-mini",
                "text-embedding-3-small",
                "gpt-image-1",
            ];
            let data: Vec<serde_json::Value> = ids
                .iter()
                .map(|id| serde_json::json!({ "id": id, "object": "model", "created": 1_700_000_000, "owned_by": "lifeline-mock" }))
                .collect();
            serde_json::json!({ "object": "list", "data": data })
        }
        Wire::Anthropic => {
            let ids = ["claude-mock", "mock-model"];
            let data: Vec<serde_json::Value> = ids
                .iter()
                .map(|id| serde_json::json!({ "type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z" }))
                .collect();
            serde_json::json!({ "data": data, "has_more": false, "first_id": ids[0], "last_id": ids[1] })
        }
    };
    json_response(StatusCode::OK, &body, Some(guard))
}

/// `/_mock/*`: faults, stats, config, the image. Never faulted or counted.
async fn control(shared: &Shared, action: &str, request: Request<Incoming>) -> Response<MockBody> {
    let method = request.method().clone();
    let errors = Errors {
        wire: Wire::OpenAi,
        seq: 0,
    };
    let body = match read_body(request.into_body(), errors).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let to_json = |value: serde_json::Result<serde_json::Value>| match value {
        Ok(value) => json_response(StatusCode::OK, &value, None),
        Err(error) => bad_request(&error.to_string()),
    };
    match (action.trim_end_matches('/'), method) {
        ("faults", Method::GET) => to_json(serde_json::to_value(shared.config().faults.clone())),
        ("faults", Method::POST | Method::PUT) => match serde_json::from_slice::<Faults>(&body) {
            Ok(faults) => {
                tracing::debug!(?faults, "mock provider faults set");
                let reply = serde_json::to_value(&faults);
                shared.set_faults(faults);
                to_json(reply)
            }
            Err(error) => bad_request(&error.to_string()),
        },
        ("faults", Method::DELETE) => {
            shared.set_faults(Faults::default());
            to_json(serde_json::to_value(Faults::default()))
        }
        ("stats", Method::GET) => to_json(serde_json::to_value(shared.recorder.snapshot())),
        ("config", Method::GET) => {
            to_json(serde_json::to_value(MockConfig::clone(&shared.config())))
        }
        ("config", Method::PUT | Method::POST) => match serde_json::from_slice::<MockConfig>(&body)
        {
            Ok(config) => {
                let reply = serde_json::to_value(&config);
                shared.set_config(config);
                to_json(reply)
            }
            Err(error) => bad_request(&error.to_string()),
        },
        ("image.png", Method::GET) => images::png_response(),
        (action, method) => {
            let message = format!("Unknown control request: {method} /_mock/{action}");
            json_response(
                StatusCode::NOT_FOUND,
                &error_body(&message, "invalid_request_error", Some("unknown_url")),
                None,
            )
        }
    }
}

fn bad_request(message: &str) -> Response<MockBody> {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
        None,
    )
}
