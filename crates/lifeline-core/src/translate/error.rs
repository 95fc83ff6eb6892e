//! Provider error bodies between the wires; the HTTP status is kept.
//!
//! - Anthropic → OpenAI: `{"error":{"message","type","param":null,
//!   "code":null}}` with Anthropic's `error.type` as the type (Portkey's
//!   shape; OpenAI's SDKs pick their exception class by status, so the type
//!   is only read by people, and Anthropic's says more than a guess).
//! - OpenAI → Anthropic: `{"type":"error","error":{"type","message"}}`, the
//!   type from the status ([`anthropic_error_type`]), which is what
//!   Anthropic's SDKs and tools read. An Anthropic-shaped body keeps its
//!   type.
//!
//! A body that is neither (a proxy's HTML page, `{"detail": …}` from a
//! FastAPI server, `{"error": "…"}`, nothing at all) gives its text as the
//! message, at most [`MAX_MESSAGE`] bytes, or "upstream answered HTTP N".
//! Anthropic's 529 has no OpenAI twin: it stays 529, which OpenAI's SDKs
//! retry like any status of 500 and above.

use serde_json::{json, Value};

/// The most of an unparsable body kept as the message.
pub const MAX_MESSAGE: usize = 1000;

/// An Anthropic error body → OpenAI's shape (same status).
pub fn to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let Read { kind, message, .. } = read(status, body);
    let kind = kind.unwrap_or_else(|| anthropic_error_type(status).to_owned());
    let error = json!({
        "error": { "message": message, "type": kind, "param": null, "code": null },
    });
    serde_json::to_vec(&error).unwrap_or_default()
}

/// An OpenAI error body (or anything else) → Anthropic's shape (same
/// status).
pub fn to_anthropic(status: u16, body: &[u8]) -> Vec<u8> {
    let Read {
        kind,
        message,
        anthropic,
    } = read(status, body);
    let kind = match kind {
        Some(kind) if anthropic => kind,
        _ => anthropic_error_type(status).to_owned(),
    };
    let error = json!({ "type": "error", "error": { "type": kind, "message": message } });
    serde_json::to_vec(&error).unwrap_or_default()
}

/// Anthropic's `error.type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
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

/// What an error body says.
struct Read {
    /// `error.type`, if the body has one.
    kind: Option<String>,
    /// The message, or the body's text.
    message: String,
    /// The body is Anthropic's envelope (`"type": "error"`).
    anthropic: bool,
}

/// Reads an error body of either wire, or anything else.
fn read(status: u16, body: &[u8]) -> Read {
    let fallback = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("upstream answered HTTP {status}")
        } else {
            truncate(text).to_owned()
        }
    };
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(body) else {
        return Read {
            kind: None,
            message: fallback(),
            anthropic: false,
        };
    };
    let anthropic = v.get("type").and_then(Value::as_str) == Some("error");
    let string = |v: Option<Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let (kind, message) = match v.remove("error") {
        Some(Value::Object(mut e)) => {
            let kind = string(e.remove("type"));
            (kind, string(e.remove("message")))
        }
        Some(Value::String(message)) if !message.is_empty() => (None, Some(message)),
        _ => (
            None,
            string(v.remove("message")).or_else(|| string(v.remove("detail"))),
        ),
    };
    Read {
        kind,
        message: message.unwrap_or_else(fallback),
        anthropic,
    }
}

/// At most [`MAX_MESSAGE`] bytes, cut at a character boundary.
fn truncate(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests;
