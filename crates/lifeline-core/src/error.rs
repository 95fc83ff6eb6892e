//! The error vocabulary of the data plane, and its body in each client wire.
//!
//! Every answer Lifeline gives on its own behalf uses the shape of the
//! client's wire, with the status code the official SDKs map to their usual
//! exceptions: OpenAI's `{"error":{"message","type","code","param"}}`, or,
//! on Anthropic's `POST /v1/messages` (and `GET /v1/models` asked with
//! `anthropic-version`), Anthropic's `{"type":"error","error":{"type",
//! "message"}}` with the `type` its SDKs expect for the status
//! ([`crate::translate::error::anthropic_error_type`]). [`ApiError`] is
//! built once, where the failure is understood, and rendered once, in
//! [`ApiError::into_response_for`].

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::admission::{Shed, ShedReason};
use crate::body::ProxyBody;
use crate::translate::Wire;

/// An error answered to the client by Lifeline itself.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message; never contains secrets or prompt text.
    pub message: String,
    /// OpenAI's `type` (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// OpenAI's `code`, if any.
    pub code: Option<&'static str>,
    /// The request field at fault, if any (`model`, `messages.[0].role`).
    pub param: Option<Cow<'static, str>>,
    /// `Retry-After`, in whole seconds on the wire.
    pub retry_after: Option<Duration>,
    /// `x-should-retry`: `Some(false)` when Lifeline already spent retries.
    pub should_retry: Option<bool>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            code: None,
            param: None,
            retry_after: None,
            should_retry: None,
        }
    }

    /// 400: the body is not what the endpoint accepts.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = param.map(Cow::Borrowed);
        e
    }

    /// 400 about a field whose name is built at run time (`messages.[3].role`).
    pub fn bad_param(message: impl Into<String>, param: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = Some(param.into());
        e
    }

    /// 401: missing or unknown client key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message);
        e.code = Some("invalid_api_key");
        e
    }

    /// 404: the public model does not exist. The name is echoed [`bounded`]:
    /// a client's megabyte-long `model` must not become a megabyte-long
    /// answer or log line.
    pub fn unknown_model(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                bounded(model)
            ),
        );
        e.code = Some("model_not_found");
        e.param = Some(Cow::Borrowed("model"));
        e
    }

    /// 404: no such path.
    pub fn unknown_path(method: &http::Method, path: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unrecognized request URL ({method} {path})."),
        );
        e.code = Some("unknown_url");
        e
    }

    /// 405: the path exists with another method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("Method {method} is not allowed on {path}."),
        );
        e.code = Some("method_not_allowed");
        e
    }

    /// 413: the body is larger than `max_body_bytes`.
    pub fn too_large(limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes."),
        );
        e.code = Some("request_too_large");
        e
    }

    /// 408: the client was too slow sending its body.
    pub fn body_timeout() -> Self {
        let mut e = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "The request body was not received in time.",
        );
        e.code = Some("request_timeout");
        e
    }

    /// 429: a client key's own rate limit (OpenAI's shape: `type`
    /// `requests` or `tokens`, `code` `rate_limit_exceeded`).
    pub fn rate_limited(
        kind: &'static str,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, kind, message);
        e.code = Some("rate_limit_exceeded");
        e.retry_after = retry_after;
        e
    }

    /// 503: no deployment could answer.
    pub fn unavailable(message: impl Into<String>, retry_after: Duration) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message);
        e.code = Some("all_deployments_failed");
        e.retry_after = Some(retry_after);
        e
    }

    /// 503: refused by admission (overload shedding, a full queue, a queue
    /// wait past its deadline, the memory budget, a key over its share),
    /// answered at once.
    pub fn overloaded(shed: &Shed) -> Self {
        let why = match shed.reason {
            ShedReason::Overload => "Lifeline is overloaded and is shedding requests of priority",
            ShedReason::QueueFull => "Lifeline is at capacity and its queue is full for priority",
            ShedReason::QueueTimeout => {
                "Lifeline is at capacity and no slot freed up in time for priority"
            }
            ShedReason::Memory => {
                "Lifeline's memory budget for request and response bodies is spent; refused priority"
            }
            ShedReason::KeyShare => {
                "Lifeline is at capacity and this key holds its share of it already; refused priority"
            }
        };
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!(
                "{why} `{}` ({}). Please retry after the time in the Retry-After header.",
                shed.priority.as_str(),
                shed.reason.label()
            ),
        );
        e.code = Some("overloaded");
        e.retry_after = Some(shed.retry_after);
        e
    }

    /// 504: the request's end-to-end deadline passed.
    pub fn deadline(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::GATEWAY_TIMEOUT, "server_error", message);
        e.code = Some("deadline_exceeded");
        e
    }

    /// The JSON body, `{"error":{...}}`.
    pub fn body_json(&self) -> String {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
                "param": self.param,
            }
        })
        .to_string()
    }

    /// Anthropic's JSON body, `{"type":"error","error":{"type","message"}}`:
    /// the `type` follows the status, as Anthropic's SDKs read it.
    pub fn anthropic_body_json(&self) -> String {
        serde_json::json!({
            "type": "error",
            "error": {
                "type": crate::translate::error::anthropic_error_type(self.status.as_u16()),
                "message": self.message,
            }
        })
        .to_string()
    }

    /// Renders the error as an HTTP response in OpenAI's shape.
    pub fn into_response(self) -> Response<ProxyBody> {
        self.into_response_for(Wire::OpenAi)
    }

    /// Renders the error as an HTTP response in the shape of the client's
    /// `wire`.
    pub fn into_response_for(self, wire: Wire) -> Response<ProxyBody> {
        let body = match wire {
            Wire::OpenAi => self.body_json(),
            Wire::Anthropic => self.anthropic_body_json(),
        };
        let mut resp = Response::new(ProxyBody::full(Bytes::from(body)));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(retry) = self.should_retry {
            h.insert(
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("POST, GET"));
        }
        resp
    }
}

/// Longest piece of client text echoed in an answer or a log line.
pub const ECHO_LIMIT: usize = 256;

/// `text` as it may be echoed or logged: whole up to [`ECHO_LIMIT`] bytes,
/// else its first bytes (cut on a character boundary) and `…(N bytes)`.
pub fn bounded(text: &str) -> Cow<'_, str> {
    if text.len() <= ECHO_LIMIT {
        return Cow::Borrowed(text);
    }
    let mut cut = ECHO_LIMIT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}…({} bytes)", &text[..cut], text.len()))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<Shed> for ApiError {
    fn from(shed: Shed) -> Self {
        Self::overloaded(&shed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let e = ApiError::unknown_model("nope");
        let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap_or_default();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nope"));
    }

    #[test]
    fn echoed_text_is_bounded_on_a_char_boundary() {
        assert_eq!(bounded("gpt-4o"), "gpt-4o");
        let exact = "m".repeat(ECHO_LIMIT);
        assert_eq!(bounded(&exact), exact.as_str());
        // 'é' is two bytes: byte 256 falls inside one.
        let long = format!("a{}", "é".repeat(1000));
        let b = bounded(&long);
        assert!(b.ends_with("…(2001 bytes)"), "{b}");
        assert!(b.len() < ECHO_LIMIT + 20, "{}", b.len());
        assert!(b.starts_with("aéé"));
        let e = ApiError::unknown_model(&"x".repeat(1 << 20));
        assert!(e.message.len() < 400, "{}", e.message.len());
        assert!(e.message.contains("(1048576 bytes)"), "{}", e.message);
    }

    #[test]
    fn admission_refusals_are_503_overloaded_with_retry_after() {
        let shed = Shed {
            reason: ShedReason::Overload,
            priority: crate::config::Priority::Batch,
            retry_after: Duration::from_millis(2500),
        };
        let r = ApiError::from(shed).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        let e = ApiError::overloaded(&shed);
        let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap_or_default();
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "overloaded");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("`batch`") && msg.contains("(overload)"),
            "{msg}"
        );
    }

    #[test]
    fn anthropic_clients_get_anthropic_shape_with_the_same_status() {
        let r = ApiError::unknown_model("nope").into_response_for(Wire::Anthropic);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let e = ApiError::unavailable("down", Duration::from_secs(2));
        let v: serde_json::Value =
            serde_json::from_str(&e.anthropic_body_json()).unwrap_or_default();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["message"], "down");
        assert_eq!(
            v["error"]["type"],
            crate::translate::error::anthropic_error_type(503)
        );
        let r = e.into_response_for(Wire::Anthropic);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = ApiError::unavailable("x", Duration::from_millis(1500)).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = ApiError::unavailable("x", Duration::ZERO).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
