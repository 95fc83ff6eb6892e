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

/// Deepest nesting accepted (serde_json's own limit when it parses values;
/// skipping a value, as `inspect` does for unknown fields, checks none).
const MAX_DEPTH: usize = 128;

/// Validates `body` as a JSON object and reads `model` and `stream`.
///
/// Skipping a field with `IgnoredAny` checks its brackets but neither the
/// UTF-8 inside its strings nor its depth, so those two are checked here
/// first: a body no provider would accept never costs a provider request.
pub fn inspect(body: &[u8]) -> Result<Inspected, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request(
            "We could not parse the JSON body of your request: it is not valid UTF-8.",
            None,
        ));
    }
    if nested_deeper_than(body, MAX_DEPTH) {
        return Err(ApiError::bad_request(
            format!("We could not parse the JSON body of your request: it is nested deeper than {MAX_DEPTH} levels."),
            None,
        ));
    }
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

/// Whether arrays and objects in `body` nest deeper than `limit`. Strings
/// are skipped with `memchr` (they are most of a chat body), so the scan
/// touches structural bytes one by one and string bytes in bulk.
fn nested_deeper_than(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[i.min(body.len())..]) {
                        // Unterminated: the parser reports it.
                        None => return false,
                        Some(j) if body[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
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
    fn rejects_bad_utf8_and_deep_nesting_even_in_skipped_fields() {
        let mut bad = br#"{"model":"m","messages":[{"content":"x"#.to_vec();
        bad.extend_from_slice(&[0xff, b'"', b'}', b']', b'}']);
        assert!(err_bytes(&bad).message.contains("UTF-8"));
        let deep = format!(
            r#"{{"model":"m","messages":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(err_bytes(deep.as_bytes()).message.contains("nested deeper"));
        let fine = format!(
            r#"{{"model":"m","messages":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(inspect(fine.as_bytes()).is_ok());
        // Brackets inside strings, and escaped quotes, do not count.
        let strings = format!(
            r#"{{"model":"m","x":"{}\"{}"}}"#,
            "[".repeat(300),
            "{".repeat(300)
        );
        assert!(
            inspect(strings.as_bytes()).is_ok(),
            "{:?}",
            inspect(strings.as_bytes()).err().map(|e| e.message)
        );
    }

    fn err_bytes(body: &[u8]) -> ApiError {
        match inspect(body) {
            Ok(i) => panic!("accepted: {i:?}"),
            Err(e) => e,
        }
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
