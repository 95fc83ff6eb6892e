//! Reads what routing needs from a request body, and checks the types of
//! the fields the endpoint requires, and nothing more.
//!
//! DESIGN.md §5: parsing a whole request into typed structs and writing it
//! out again is both the main cost of existing gateways and lossy. Here the
//! body is validated as JSON once, in one pass: unknown fields are skipped
//! with `IgnoredAny` (which still checks their syntax), `model`, `stream`
//! and the other small fields are borrowed as raw slices, and the fields an
//! endpoint requires (`messages`, `input`) are checked while they are
//! skipped, without copying their strings. The upstream model name is then
//! spliced into the original bytes, so every other field reaches the
//! provider byte for byte.
//!
//! What is checked, before any provider request (a 400 with `param`):
//!
//! - every endpoint: `model` a string; `stream` a boolean; `n`,
//!   `max_tokens`, `max_completion_tokens` integers (`null` or absent is
//!   fine for these four);
//! - chat completions: `messages` a non-empty array of objects, each with a
//!   string `role`;
//! - embeddings: `input` a string, or an array of strings, of integers or of
//!   arrays of integers;
//! - image generations: `prompt` a string;
//! - responses: `input` a string or an array (it may be absent when a stored
//!   `prompt` is used);
//! - Anthropic's messages (`POST /v1/messages`): `messages` as for chat
//!   completions, and `max_tokens`, which Anthropic requires (a 400
//!   without it, in Anthropic's shape like every error of that route).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::providers::Endpoint;

/// What the gateway needs to know about a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The public model name the client asked for.
    pub model: String,
    /// Byte range of the `model` value (quotes included) in the body.
    pub model_span: Range<usize>,
    /// `"stream": true`.
    pub stream: bool,
    /// Choices asked for (`n`, 1 when absent; at most [`MAX_CHOICES`]): a
    /// chat stream is finished only when every choice is.
    pub choices: u32,
    /// The output tokens the request allows per choice:
    /// `max_completion_tokens`, else `max_tokens`, else the Responses API's
    /// `max_output_tokens` (`None` when it sets none). Part of the token
    /// estimate a per-key token limit charges at admission.
    pub max_output: Option<u64>,
    /// `stream_options.include_usage: true` (an OpenAI client asked for the
    /// usage chunk of a stream).
    pub include_usage: bool,
}

/// Most choices tracked in a stream (OpenAI's own limit on `n`).
pub const MAX_CHOICES: u32 = 128;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    n: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    // `null` is kept (as "null") for the required fields below, so that it
    // is reported as a wrong type, not as a missing field.
    #[serde(borrow, default, deserialize_with = "present")]
    prompt: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    messages: Option<Messages>,
    #[serde(default, deserialize_with = "present")]
    input: Option<Input>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Deepest nesting [`inspect`] accepts: serde_json's own limit when it
/// parses values (skipping a value, as `inspect` does for unknown fields,
/// checks none). The listener passes its `max_json_depth` to
/// [`inspect_within`].
pub const MAX_DEPTH: usize = 128;

/// The `code` of the 400 for a body nested deeper than allowed.
pub const JSON_TOO_DEEP: &str = "json_too_deep";

/// Validates `body` as a JSON object, reads `model` and `stream`, and checks
/// the types of the fields `endpoint` requires.
///
/// Skipping a field with `IgnoredAny` checks its brackets but neither the
/// UTF-8 inside its strings nor its depth, so those two are checked here
/// first: a body no provider would accept never costs a provider request.
/// (Parsing from the checked `&str` also spares serde_json a second UTF-8
/// check of every string it borrows.)
pub fn inspect(endpoint: Endpoint, body: &[u8]) -> Result<Inspected, ApiError> {
    inspect_within(endpoint, body, MAX_DEPTH)
}

/// [`inspect`], refusing JSON nested deeper than `max_depth` (at most
/// [`MAX_DEPTH`]) with a 400 whose code is [`JSON_TOO_DEEP`].
pub fn inspect_within(
    endpoint: Endpoint,
    body: &[u8],
    max_depth: usize,
) -> Result<Inspected, ApiError> {
    let max_depth = max_depth.min(MAX_DEPTH);
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(ApiError::bad_request(
            "We could not parse the JSON body of your request: it is not valid UTF-8.",
            None,
        ));
    };
    if nested_deeper_than(body, max_depth) {
        let mut e = ApiError::bad_request(
            format!("We could not parse the JSON body of your request: it is nested deeper than {max_depth} levels."),
            None,
        );
        e.code = Some(JSON_TOO_DEEP);
        return Err(e);
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request(
            "We could not parse the JSON body of your request: expected a JSON object.",
            None,
        ));
    }
    let head: Head<'_> = serde_json::from_str(text).map_err(|e| {
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
            invalid_type("model", "a string", kind_of(raw_model.get())),
            Some("model"),
        )
    })?;
    let stream = match head.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                invalid_type("stream", "a boolean", kind_of(other)),
                Some("stream"),
            ))
        }
    };
    match endpoint {
        Endpoint::ChatCompletions => check_messages(head.messages)?,
        Endpoint::Messages => {
            check_messages(head.messages)?;
            if matches!(head.max_tokens.map(RawValue::get), None | Some("null")) {
                return Err(missing("max_tokens"));
            }
        }
        Endpoint::Embeddings => check_embeddings_input(head.input)?,
        Endpoint::ImagesGenerations => match head.prompt.map(RawValue::get) {
            None => return Err(missing("prompt")),
            Some(raw) if !raw.starts_with('"') => {
                return Err(ApiError::bad_request(
                    invalid_type("prompt", "a string", kind_of(raw)),
                    Some("prompt"),
                ))
            }
            Some(_) => {}
        },
        Endpoint::Responses => match head.input {
            // A stored prompt template may stand in for the input.
            None if head.prompt.is_some() => {}
            None => return Err(missing("input")),
            Some(Input::Str | Input::Array(_)) => {}
            Some(Input::Other(kind)) => {
                return Err(ApiError::bad_request(
                    invalid_type("input", "a string or an array", kind),
                    Some("input"),
                ))
            }
        },
    }
    let n = integer("n", head.n)?;
    let max_tokens = integer("max_tokens", head.max_tokens)?;
    let max_completion = integer("max_completion_tokens", head.max_completion_tokens)?;
    let max_output = max_completion
        .or(max_tokens)
        .or_else(|| head.max_output_tokens.map(RawValue::get))
        .and_then(|n| n.parse::<u64>().ok());
    let choices = n
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES);
    let start = raw_model.get().as_ptr() as usize - body.as_ptr() as usize;
    // An object only: serde would also read `[true]` as the struct below.
    let include_usage = head.stream_options.is_some_and(|o| {
        #[derive(Deserialize)]
        struct Options {
            #[serde(default)]
            include_usage: Option<bool>,
        }
        o.get().starts_with('{')
            && serde_json::from_str::<Options>(o.get()).is_ok_and(|o| o.include_usage == Some(true))
    });
    Ok(Inspected {
        model,
        model_span: start..start + raw_model.get().len(),
        stream,
        choices,
        max_output,
        include_usage,
    })
}

fn invalid_type(field: &str, expected: &str, got: &str) -> String {
    format!("Invalid type for '{field}': expected {expected}, but got {got}.")
}

fn missing(field: &'static str) -> ApiError {
    ApiError::bad_request(
        format!("Missing required parameter: '{field}'."),
        Some(field),
    )
}

/// An optional integer field: absent, `null`, or an integer (its digits).
fn integer<'a>(
    field: &'static str,
    raw: Option<&'a RawValue>,
) -> Result<Option<&'a str>, ApiError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(raw) if is_integer(raw) => Ok(Some(raw)),
        Some(raw) => {
            let got = match kind_of(raw) {
                "a number" => "a decimal",
                other => other,
            };
            Err(ApiError::bad_request(
                invalid_type(field, "an integer", got),
                Some(field),
            ))
        }
    }
}

fn is_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_messages(messages: Option<Messages>) -> Result<(), ApiError> {
    let bad = |message: String, param: String| Err(ApiError::bad_param(message, param));
    match messages {
        None => Err(missing("messages")),
        Some(Messages::Ok) => Ok(()),
        Some(Messages::NotArray(kind)) => Err(ApiError::bad_request(
            invalid_type("messages", "an array of objects", kind),
            Some("messages"),
        )),
        Some(Messages::Empty) => Err(ApiError::bad_request(
            "Invalid 'messages': empty array. 'messages' must be a non-empty array.",
            Some("messages"),
        )),
        Some(Messages::Item(i, Item::NotObject(kind))) => bad(
            invalid_type(&format!("messages[{i}]"), "an object", kind),
            format!("messages.[{i}]"),
        ),
        Some(Messages::Item(i, Item::NoRole)) => bad(
            format!("Missing required parameter: 'messages[{i}].role'."),
            format!("messages.[{i}].role"),
        ),
        Some(Messages::Item(i, Item::RoleNotString(kind))) => bad(
            invalid_type(&format!("messages[{i}].role"), "a string", kind),
            format!("messages.[{i}].role"),
        ),
        Some(Messages::Item(_, Item::Ok)) => Ok(()),
    }
}

fn check_embeddings_input(input: Option<Input>) -> Result<(), ApiError> {
    const EXPECTED: &str =
        "a string, an array of strings, an array of integers or an array of arrays of integers";
    let got = match input {
        None => return Err(missing("input")),
        Some(Input::Str | Input::Array(None)) => return Ok(()),
        Some(Input::Other(kind)) => Cow::Borrowed(kind),
        Some(Input::Array(Some((i, kind)))) => {
            Cow::Owned(format!("an array whose item {i} is {kind}"))
        }
    };
    Err(ApiError::bad_request(
        invalid_type("input", EXPECTED, &got),
        Some("input"),
    ))
}

/// What `messages` turned out to be; learnt while it is skipped.
#[derive(Debug)]
enum Messages {
    Ok,
    NotArray(&'static str),
    Empty,
    /// The first item that is wrong, and how.
    Item(usize, Item),
}

/// One item of `messages`.
#[derive(Debug)]
enum Item {
    Ok,
    NotObject(&'static str),
    NoRole,
    RoleNotString(&'static str),
}

/// What `input` turned out to be. For an array: the first item that is not
/// an embeddings input (a string, an integer, an array of integers) or not
/// of the same kind as item 0, if any.
#[derive(Debug)]
enum Input {
    Str,
    Array(Option<(usize, &'static str)>),
    Other(&'static str),
}

/// The `visit_*` methods for scalars of a visitor that accepts any JSON
/// value: each names the value's kind, wrapped in `$wrap`.
macro_rules! scalar_kinds {
    ($wrap:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($wrap("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($wrap("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($wrap("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($wrap("a number"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap("null"))
        }
    };
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Messages;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            scalar_kinds!(Messages::NotArray);
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Messages, E> {
                Ok(Messages::NotArray("a string"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Messages, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Messages::NotArray("an object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                let mut i = 0;
                let mut found = None;
                while found.is_none() {
                    match seq.next_element::<Item>()? {
                        None if i == 0 => return Ok(Messages::Empty),
                        None => return Ok(Messages::Ok),
                        Some(Item::Ok) => i += 1,
                        Some(wrong) => found = Some(Messages::Item(i, wrong)),
                    }
                }
                // The rest is only skipped (its syntax still checked).
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(found.unwrap_or(Messages::Ok))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            scalar_kinds!(Item::NotObject);
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
                Ok(Item::NotObject("a string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::NotObject("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let mut item = Item::NoRole;
                while let Some(key) = map.next_key::<Key>()? {
                    if key == Key::Role {
                        let role: &'de RawValue = map.next_value()?;
                        if matches!(item, Item::NoRole) {
                            item = if role.get().starts_with('"') {
                                Item::Ok
                            } else {
                                Item::RoleNotString(kind_of(role.get()))
                            };
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(item)
            }
        }
        d.deserialize_any(V)
    }
}

/// A key of a message object: `role` or another.
#[derive(PartialEq, Eq)]
enum Key {
    Role,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(if k == "role" { Key::Role } else { Key::Other })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Input;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            scalar_kinds!(Input::Other);
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Input, E> {
                Ok(Input::Str)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Input, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Input::Other("an object"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Input, A::Error> {
                // Items are borrowed raw: a string item is skipped, not
                // decoded, and only its first byte is looked at.
                let mut first = None;
                let mut i = 0;
                let mut wrong = None;
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    if wrong.is_none() {
                        let kind = embedding_item(item.get());
                        match (first, kind) {
                            (_, Err(kind)) => wrong = Some((i, kind)),
                            (None, Ok(k)) => first = Some(k),
                            (Some(f), Ok(k)) if f != k => wrong = Some((i, k)),
                            _ => {}
                        }
                    }
                    i += 1;
                }
                Ok(Input::Array(wrong))
            }
        }
        d.deserialize_any(V)
    }
}

/// An embeddings input item's kind (`Ok`: a string, an integer, an array of
/// integers; `Err`: anything else), named for messages.
fn embedding_item(raw: &str) -> Result<&'static str, &'static str> {
    match raw.as_bytes().first() {
        Some(b'"') => Ok("a string"),
        Some(b'[') => {
            let inner = &raw.as_bytes()[1..raw.len() - 1];
            if inner.iter().all(|b| {
                b.is_ascii_digit() || matches!(b, b'-' | b',' | b' ' | b'\t' | b'\n' | b'\r')
            }) {
                Ok("an array of integers")
            } else {
                Err("an array that is not of integers")
            }
        }
        _ if is_integer(raw) => Ok("an integer"),
        Some(b'-' | b'0'..=b'9') => Err("a decimal"),
        _ => Err(kind_of(raw)),
    }
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

pub use crate::providers::splice;

#[cfg(test)]
mod tests;
