//! Reads what routing needs from a request body, and nothing more.
//!
//! DESIGN.md §5: parsing a whole request into typed structs and writing it
//! out again is both the main cost of existing gateways and lossy. Here the
//! body is validated as JSON once (serde_json skips unknown fields with
//! `IgnoredAny`, which still checks their syntax), `model` and `stream` are
//! borrowed as raw slices, and the upstream model name is spliced into the
//! original bytes, so every other field reaches the provider byte for byte.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// What the gateway needs to know about a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The public model name the client asked for.
    pub model: String,
    /// Byte range of the `model` value (quotes included) in the body.
    pub model_span: Range<usize>,
    /// `"stream": true`.
    pub stream: bool,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
}

/// Validates `body` as a JSON object and reads `model` and `stream`.
pub fn inspect(body: &[u8]) -> Result<Inspected, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request(
            "We could not parse the JSON body of your request: expected a JSON object.",
            None,
        ));
    }
    let head: Head<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            format!("We could not parse the JSON body of your request: {e}."),
            None,
        )
    })?;
    let Some(raw_model) = head.model else {
        return Err(ApiError::bad_request(
            "You must provide a model parameter.",
            Some("model"),
        ));
    };
    let model: String = serde_json::from_str(raw_model.get()).map_err(|_| {
        ApiError::bad_request(
            format!(
                "Invalid type for 'model': expected a string, but got {}.",
                kind_of(raw_model.get())
            ),
            Some("model"),
        )
    })?;
    let stream = match head.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!(
                    "Invalid type for 'stream': expected a boolean, but got {}.",
                    kind_of(other)
                ),
                Some("stream"),
            ))
        }
    };
    let start = raw_model.get().as_ptr() as usize - body.as_ptr() as usize;
    Ok(Inspected {
        model,
        model_span: start..start + raw_model.get().len(),
        stream,
    })
}

fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Replaces the bytes at `span` with `replacement` (an already JSON-encoded
/// string), copying the body once.
pub fn splice(body: &Bytes, span: &Range<usize>, replacement: &[u8]) -> Bytes {
    if &body[span.clone()] == replacement {
        return body.clone();
    }
    let mut out = BytesMut::with_capacity(body.len() + replacement.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Inspected {
        match inspect(body.as_bytes()) {
            Ok(i) => i,
            Err(e) => panic!("{body}: {e}"),
        }
    }

    fn err(body: &str) -> ApiError {
        match inspect(body.as_bytes()) {
            Ok(i) => panic!("{body} accepted: {i:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn reads_model_and_stream() {
        let i =
            ok(r#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true}"#);
        assert_eq!(i.model, "gpt-4o");
        assert!(i.stream);
        assert!(!ok(r#"{"model":"m"}"#).stream);
        assert!(!ok(r#"{"model":"m","stream":null}"#).stream);
    }

    #[test]
    fn splice_keeps_everything_else_byte_for_byte() {
        let body = Bytes::from_static(
            br#"{"model" : "gpt-4o", "encoding_format":"base64","x":{"y":[1,2.50,null]}}"#,
        );
        let i = ok(std::str::from_utf8(&body).unwrap_or_default());
        let out = splice(&body, &i.model_span, br#""llama-3.1""#);
        assert_eq!(
            &out[..],
            br#"{"model" : "llama-3.1", "encoding_format":"base64","x":{"y":[1,2.50,null]}}"#
        );
    }

    #[test]
    fn escaped_model_names_decode() {
        assert_eq!(ok(r#"{"model":"a\"b\u0041"}"#).model, "a\"bA");
    }

    #[test]
    fn rejects_malformed_and_wrong_types() {
        assert_eq!(err("{").status, 400);
        assert_eq!(err("[1,2]").status, 400);
        assert_eq!(err("").status, 400);
        assert_eq!(err(r#"{"model":"m",}"#).status, 400);
        assert_eq!(err(r#"{"model":"m","x":[1,}"#).status, 400);
        assert_eq!(err(r#"{"messages":[]}"#).param, Some("model"));
        let e = err(r#"{"model":42}"#);
        assert_eq!(e.param, Some("model"));
        assert!(e.message.contains("a number"), "{}", e.message);
        assert_eq!(err(r#"{"model":"m","stream":"yes"}"#).param, Some("stream"));
        assert_eq!(err(r#"{"model":"m","model":"n"}"#).status, 400);
    }
}
