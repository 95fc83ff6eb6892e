//! The OpenAI adapter: OpenAI, Azure OpenAI, OpenAI-compatible servers and
//! the simulated provider. Its URL shapes and auth headers, what its 400s
//! mean, its answers' shape, and the request of an Anthropic client
//! translated to it; its stream grammars ([`stream`]: chat completions,
//! the Responses API, generic streams) and, for continuation, what an
//! OpenAI client was sent and a continuation's chunks rewritten for it
//! ([`continued`]).

pub mod continued;
pub mod stream;

use http::{HeaderName, HeaderValue};

use super::{object_not_starting_with, sensitive, Endpoint, Refused, RequestBody};
use crate::translate::request::{anthropic_to_openai, ToOpenAi};
use crate::translate::Untranslatable;

/// `Authorization: Bearer <key>`.
pub fn auth(
    key: &str,
) -> (
    HeaderName,
    Result<HeaderValue, http::header::InvalidHeaderValue>,
) {
    (
        http::header::AUTHORIZATION,
        sensitive(&format!("Bearer {key}")),
    )
}

/// Azure OpenAI's `api-key: <key>`.
pub fn azure_auth(
    key: &str,
) -> (
    HeaderName,
    Result<HeaderValue, http::header::InvalidHeaderValue>,
) {
    (HeaderName::from_static("api-key"), sensitive(key))
}

/// Azure OpenAI's `{base}/openai/deployments/{model}{path}?api-version=`.
pub fn azure_uri(base: &str, endpoint: Endpoint, model: &str, api_version: &str) -> String {
    format!(
        "{base}/openai/deployments/{model}{}?api-version={api_version}",
        endpoint.path()
    )
}

/// An Anthropic client's request, translated to Chat Completions, for a
/// target that continues a final assistant message or not (`prefill`).
pub fn from_anthropic(
    req: &RequestBody<'_>,
    prefill: bool,
) -> Result<bytes::Bytes, Untranslatable> {
    let opts = ToOpenAi {
        model: req.model,
        prefill,
    };
    anthropic_to_openai(req.body, &opts).map(bytes::Bytes::from)
}

/// Whether a 2xx body is a JSON answer, not `{"error": ...}`.
///
/// Some servers (proxies in front of a provider, a few OpenAI-compatible
/// servers) answer 200 with an HTML page, a truncated body or
/// `{"error": ...}`. Relaying that would hand the client's SDK something it
/// cannot parse; it is a failed attempt, retried elsewhere. The check looks
/// at the ends and the first key only, so it costs nothing measurable.
pub fn is_answer(body: &[u8]) -> bool {
    object_not_starting_with(body, b"\"error\"")
}

/// Sorts an OpenAI-shaped 400: a context-window or content-policy refusal,
/// or (`None`) the client's own error.
///
/// Recognised, on a 400 only (the error object is read from `error`, or
/// from the top level as older vLLM versions send it):
///
/// - context window: `code` `context_length_exceeded` (OpenAI, Azure
///   OpenAI, LiteLLM), `type` `exceed_context_size_error` (llama.cpp's
///   server), or a `message` containing "maximum context length" (OpenAI's
///   wording, which vLLM and most OpenAI-compatible servers copy);
/// - content policy: `code` `content_policy_violation` (OpenAI) or
///   `content_filter` (Azure OpenAI).
pub fn refusal(status: u16, body: &[u8]) -> Option<Refused> {
    if status != 400 {
        return None;
    }
    let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let err = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
    let field = |k: &str| err.get(k).and_then(serde_json::Value::as_str);
    let code = field("code");
    if code == Some("context_length_exceeded")
        || field("type") == Some("exceed_context_size_error")
        || field("message")
            .is_some_and(|m| m.to_ascii_lowercase().contains("maximum context length"))
    {
        return Some(Refused::ContextLength);
    }
    if matches!(code, Some("content_policy_violation" | "content_filter")) {
        return Some(Refused::ContentPolicy);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_are_told_from_junk() {
        assert!(is_answer(br#" {"id":"x","choices":[]} "#));
        assert!(!is_answer(b"<html>502 Bad Gateway</html>"));
        assert!(!is_answer(br#"{"id":"x","choi"#));
        assert!(!is_answer(br#"{ "error": {"message": "overloaded"}}"#));
        assert!(!is_answer(b""));
    }
}
