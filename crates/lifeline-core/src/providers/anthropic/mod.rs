//! The Anthropic adapter: Anthropic's Messages API.
//!
//! Requests go to `{base_url}/v1/messages` (the base URL has no `/v1`, as
//! Anthropic's SDKs take it) with `x-api-key` and `anthropic-version`. It
//! serves chat only: from an Anthropic client as passthrough (the model
//! name spliced in, sampling parameters the target refuses dropped by
//! [`crate::translate::request::anthropic_sampling_fixup`]), from an OpenAI
//! client translated ([`crate::translate::request::openai_to_anthropic`],
//! with the provider's `default_max_tokens` when the request sets none).
//! Its stream grammar is [`stream`]; for continuation, what an Anthropic
//! client was sent and a continuation's events rewritten for it are
//! [`continued`].

pub mod continued;
pub mod stream;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::{object_not_starting_with, sensitive, Endpoint, Refused, RequestBody};
use crate::config::AnthropicSettings;
use crate::translate::request::{
    anthropic_sampling_fixup, openai_to_anthropic, Sampling, ToAnthropic,
};
use crate::translate::Untranslatable;

/// `anthropic-version`.
pub const VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// `anthropic-beta`: passed through from the client on passthrough only.
pub const BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// `x-api-key: <key>`.
pub fn auth(
    key: &str,
) -> (
    HeaderName,
    Result<HeaderValue, http::header::InvalidHeaderValue>,
) {
    (HeaderName::from_static("x-api-key"), sensitive(key))
}

/// `{base}/v1/messages` for a chat endpoint; nothing else is served.
pub fn uri(base: &str, endpoint: Endpoint) -> Result<String, String> {
    if endpoint.is_chat() {
        Ok(format!("{base}/v1/messages"))
    } else {
        Err(format!(
            "an Anthropic provider does not serve {}",
            endpoint.family()
        ))
    }
}

/// An Anthropic client's body (the model already spliced in) as it goes
/// to this provider: untouched unless the target model or API version
/// refuses its sampling parameters (`sampling`, the model's rule, computed
/// once per model: with [`Sampling::Any`] the body is not looked at).
///
/// A client's own prefill goes as it is, also to a model that refuses one
/// (Claude 4.6 and later): it is the client's request, and Anthropic's 400
/// is the answer it would get without Lifeline.
pub fn passthrough(spliced: Bytes, sampling: Sampling) -> Bytes {
    match anthropic_sampling_fixup(&spliced, sampling) {
        Some(fixed) => Bytes::from(fixed),
        None => spliced,
    }
}

/// An OpenAI client's request, translated to the Messages API, for a
/// target that continues a final assistant message or not (`prefill`).
pub fn from_openai(
    req: &RequestBody<'_>,
    a: &AnthropicSettings,
    prefill: bool,
) -> Result<Bytes, Untranslatable> {
    let opts = ToAnthropic {
        model: req.model,
        default_max_tokens: a.default_max_tokens,
        version: &a.version,
        prefill,
    };
    openai_to_anthropic(req.body, &opts).map(Bytes::from)
}

/// Whether a 2xx body is a Messages answer, not
/// `{"type":"error",...}`.
pub fn is_answer(body: &[u8]) -> bool {
    object_not_starting_with(body, b"\"type\":\"error\"")
        && object_not_starting_with(body, b"\"type\": \"error\"")
}

/// Sorts an Anthropic 400: `prompt is too long: N tokens > M maximum` and
/// ``input length and `max_tokens` exceed context limit: X + Y > Z`` (its
/// wordings for a prompt, or a prompt and its `max_tokens`, over the
/// context window) are a refusal by this model; anything else the
/// request's own error. Anthropic refuses on
/// content grounds in a 200 (`stop_reason: "refusal"`), never with a 400.
pub fn refusal(status: u16, body: &[u8]) -> Option<Refused> {
    if status != 400 {
        return None;
    }
    let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let message = v.get("error")?.get("message")?.as_str()?;
    let m = message.to_ascii_lowercase();
    let context = m.contains("prompt is too long")
        || m.contains("context window")
        || m.contains("context limit")
        || (m.contains("exceed") && m.contains("context"));
    context.then_some(Refused::ContextLength)
}

/// One public model as Anthropic's `GET /v1/models` lists it.
pub fn model_json(name: &str, created: u64) -> serde_json::Value {
    serde_json::json!({
        "type": "model",
        "id": name,
        "display_name": name,
        "created_at": rfc3339(created),
    })
}

/// Anthropic's model list: `{data, has_more, first_id, last_id}`, every
/// model on one page.
pub fn models_json<'a>(names: impl Iterator<Item = &'a str>, created: u64) -> Bytes {
    let data: Vec<serde_json::Value> = names.map(|n| model_json(n, created)).collect();
    let id = |v: Option<&serde_json::Value>| v.map_or(serde_json::Value::Null, |m| m["id"].clone());
    let body = serde_json::json!({
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": false,
        "data": data,
    });
    Bytes::from(body.to_string())
}

/// Unix seconds as RFC 3339 in UTC (`1970-01-01T00:00:00Z`).
fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_083_199), "2026-11-30T23:59:59Z");
    }

    #[test]
    fn only_chat_is_served_at_v1_messages() {
        assert_eq!(
            uri("https://api.anthropic.com", Endpoint::ChatCompletions).ok(),
            Some("https://api.anthropic.com/v1/messages".into())
        );
        assert_eq!(
            uri("http://h", Endpoint::Messages).ok(),
            Some("http://h/v1/messages".into())
        );
        assert!(uri("http://h", Endpoint::Embeddings).is_err());
    }

    #[test]
    fn both_context_window_wordings_are_refusals() {
        let body = |m: &str| {
            format!(
                r#"{{"type":"error","error":{{"type":"invalid_request_error","message":"{m}"}}}}"#
            )
        };
        for m in [
            "prompt is too long: 250000 tokens > 200000 maximum",
            "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease input length or `max_tokens` and try again",
        ] {
            assert_eq!(
                refusal(400, body(m).as_bytes()),
                Some(Refused::ContextLength),
                "{m}"
            );
        }
        assert_eq!(
            refusal(400, body("max_tokens: field required").as_bytes()),
            None
        );
        assert_eq!(refusal(429, body("prompt is too long").as_bytes()), None);
    }

    #[test]
    fn answers_and_errors_are_told_apart() {
        assert!(is_answer(
            br#"{"id":"msg_1","type":"message","content":[]}"#
        ));
        assert!(!is_answer(
            br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#
        ));
        assert!(!is_answer(b"<html>"));
    }
}
