//! Request inspection ([`crate::request::inspect`]) and the model splice.
//!
//! Properties, for every endpoint:
//!
//! - arbitrary bytes, and token soup made of JSON's pieces and the fields'
//!   names: never a panic, and `Ok` only for a JSON object;
//! - near-valid bodies built field by field (each field right, of a wrong
//!   type, null, absent or twice): `Ok` or the 400 exactly as an
//!   independent reading of the module's rules (on a parsed
//!   [`serde_json::Value`]) predicts, with the same `param`;
//! - whenever `Ok`: the inspected model, `stream` and `include_usage` are
//!   the body's, and splicing another model name in gives valid JSON equal
//!   to the original with only `model` replaced;
//! - bodies nested to any depth, with brackets, quotes and backslashes in
//!   their strings: refused as too deep exactly when they nest deeper than
//!   the limit.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::providers::Endpoint;
use crate::request::{inspect, inspect_within, splice, JSON_TOO_DEEP, MAX_DEPTH};

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop::sample::select(Endpoint::ALL.to_vec())
}

/// Strings with what JSON must escape, and non-ASCII.
pub(super) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9-]{0,10}",
        1 => "\\PC{0,6}",
        1 => prop::sample::select(vec!["\"", "\\", "\n", "\u{0}", "\u{2028}", "é", "😀", "\\u0041"])
            .prop_map(str::to_owned),
    ]
}

/// Any JSON value, a few levels deep.
pub(super) fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Usually right for the field, sometimes of another type.
fn field_value(name: &'static str) -> BoxedStrategy<Value> {
    let right: BoxedStrategy<Value> = match name {
        "model" => text().prop_map(Value::String).boxed(),
        "stream" => prop_oneof![any::<bool>().prop_map(Value::Bool), Just(Value::Null)].boxed(),
        "n" | "max_tokens" | "max_completion_tokens" | "max_output_tokens" => prop_oneof![
            4 => (0i64..5000).prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => Just(Value::Null),
            1 => Just(Value::from(1.5)),
        ]
        .boxed(),
        "messages" => prop::collection::vec(message(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        "input" => embedding_input().boxed(),
        "prompt" => text().prop_map(Value::String).boxed(),
        "stream_options" => prop_oneof![
            any::<bool>().prop_map(|b| serde_json::json!({ "include_usage": b })),
            json(),
        ]
        .boxed(),
        _ => json().boxed(),
    };
    prop_oneof![5 => right, 1 => json()].boxed()
}

/// A chat message: an object with a string role, usually.
fn message() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        4 => prop::sample::select(vec!["user", "assistant", "system", "tool"])
            .prop_map(|r| Some(Value::from(r))),
        1 => json().prop_map(Some),
        1 => Just(None),
    ];
    prop_oneof![
        8 => (role, json()).prop_map(|(role, content)| {
            let mut m = Map::new();
            m.insert("content".into(), content);
            if let Some(role) = role {
                m.insert("role".into(), role);
            }
            Value::Object(m)
        }),
        1 => json(),
    ]
}

/// What an embeddings `input` may be, and some of what it may not.
fn embedding_input() -> impl Strategy<Value = Value> {
    let ints =
        prop::collection::vec(any::<i32>().prop_map(Value::from), 0..4).prop_map(Value::Array);
    prop_oneof![
        text().prop_map(Value::String),
        prop::collection::vec(text().prop_map(Value::String), 0..4).prop_map(Value::Array),
        prop::collection::vec(any::<u32>().prop_map(Value::from), 0..4).prop_map(Value::Array),
        prop::collection::vec(ints, 0..3).prop_map(Value::Array),
        prop::collection::vec(
            prop_oneof![
                text().prop_map(Value::String),
                any::<u16>().prop_map(Value::from),
                Just(Value::from(2.5)),
                Just(Value::Null),
            ],
            0..4
        )
        .prop_map(Value::Array),
    ]
}

/// The fields inspection reads (twice at times), and others.
const FIELDS: [&str; 12] = [
    "model",
    "messages",
    "input",
    "prompt",
    "stream",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "stream_options",
    "temperature",
    "user",
];

/// A body as its fields in order (a name may come twice).
fn fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    let one = prop::sample::select(FIELDS.to_vec())
        .prop_flat_map(|name| (Just(name.to_owned()), field_value(name)));
    // The usual fields first, so that most bodies get past the checks.
    let usual = (
        field_value("model"),
        field_value("messages"),
        field_value("input"),
        field_value("prompt"),
        field_value("max_tokens"),
        prop::collection::vec(prop::bool::weighted(0.85), 5),
    )
        .prop_map(|(model, messages, input, prompt, max, keep)| {
            [
                ("model", model),
                ("messages", messages),
                ("input", input),
                ("prompt", prompt),
                ("max_tokens", max),
            ]
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|((n, v), _)| (n.to_owned(), v))
            .collect::<Vec<_>>()
        });
    (usual, prop::collection::vec(one, 0..4), any::<u64>()).prop_map(|(mut f, more, seed)| {
        f.extend(more);
        // A shuffle, so that `model` is not always first.
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.shuffle(&mut f);
        f
    })
}

/// The body's bytes: compact or spaced out.
fn body(fields: &[(String, Value)], spaced: bool) -> Vec<u8> {
    let sep = if spaced { " \n\t" } else { "" };
    let mut out = String::from("{");
    out.push_str(sep);
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
            out.push_str(sep);
        }
        out.push_str(&serde_json::to_string(k).unwrap());
        out.push_str(sep);
        out.push(':');
        out.push_str(sep);
        let v = if spaced {
            serde_json::to_string_pretty(v).unwrap()
        } else {
            serde_json::to_string(v).unwrap()
        };
        out.push_str(&v);
    }
    out.push_str(sep);
    out.push('}');
    out.into_bytes()
}

/// What the module's docs say inspection answers: `Ok(())`, or `Err` with
/// the `param` at fault.
fn expected(endpoint: Endpoint, fields: &[(String, Value)]) -> Result<(), Option<String>> {
    const READ: [&str; 10] = [
        "model",
        "stream",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "stream_options",
        "prompt",
        "messages",
        "input",
    ];
    for name in READ {
        if fields.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(None);
        }
    }
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let param = |p: &str| Err(Some(p.to_owned()));
    match get("model") {
        Some(Value::String(_)) => {}
        _ => return param("model"),
    }
    if !matches!(get("stream"), None | Some(Value::Null | Value::Bool(_))) {
        return param("stream");
    }
    let is_int = |v: &Value| v.is_i64() || v.is_u64();
    let messages = || -> Result<(), Option<String>> {
        let Some(Value::Array(items)) = get("messages") else {
            return param("messages");
        };
        if items.is_empty() {
            return param("messages");
        }
        for (i, m) in items.iter().enumerate() {
            match m {
                Value::Object(o) if o.get("role").is_some_and(Value::is_string) => {}
                Value::Object(o) if o.contains_key("role") => {
                    return param(&format!("messages.[{i}].role"))
                }
                Value::Object(_) => return param(&format!("messages.[{i}].role")),
                _ => return param(&format!("messages.[{i}]")),
            }
        }
        Ok(())
    };
    match endpoint {
        Endpoint::ChatCompletions => messages()?,
        Endpoint::Messages => {
            messages()?;
            if matches!(get("max_tokens"), None | Some(Value::Null)) {
                return param("max_tokens");
            }
        }
        Endpoint::Embeddings => {
            let kind = |v: &Value| match v {
                Value::String(_) => Some(0),
                v if is_int(v) => Some(1),
                Value::Array(a) if a.iter().all(is_int) => Some(2),
                _ => None,
            };
            match get("input") {
                Some(Value::String(_)) => {}
                Some(Value::Array(items)) => {
                    let first = items.first().map(kind);
                    if items
                        .iter()
                        .any(|i| kind(i).is_none() || Some(kind(i)) != first)
                    {
                        return param("input");
                    }
                }
                _ => return param("input"),
            }
        }
        Endpoint::ImagesGenerations => {
            if !get("prompt").is_some_and(Value::is_string) {
                return param("prompt");
            }
        }
        Endpoint::Responses => match get("input") {
            None if fields.iter().any(|(k, _)| k == "prompt") => {}
            Some(Value::String(_) | Value::Array(_)) => {}
            _ => return param("input"),
        },
    }
    for name in ["n", "max_tokens", "max_completion_tokens"] {
        if get(name).is_some_and(|v| !v.is_null() && !is_int(v)) {
            return param(name);
        }
    }
    Ok(())
}

/// What must hold of any body `inspect` accepts.
fn check_accepted(endpoint: Endpoint, body: &[u8], new_model: &str) -> Result<(), TestCaseError> {
    let Ok(i) = inspect(endpoint, body) else {
        return Ok(());
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // `1e999` is JSON, which inspection skips as such; only a parse
        // into numbers refuses it.
        Err(e) if e.to_string().starts_with("number out of range") => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(format!("accepted, but not JSON: {e}"))),
    };
    let Value::Object(mut object) = value else {
        return Err(TestCaseError::fail("accepted, but not an object"));
    };
    prop_assert_eq!(object.get("model"), Some(&Value::String(i.model.clone())));
    prop_assert_eq!(i.stream, object.get("stream") == Some(&Value::Bool(true)));
    let include_usage = object
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    prop_assert_eq!(i.include_usage, include_usage);
    prop_assert!((1..=crate::request::MAX_CHOICES).contains(&i.choices));
    let replacement = serde_json::to_vec(new_model).unwrap();
    let spliced = splice(&Bytes::copy_from_slice(body), &i.model_span, &replacement);
    let after: Value = serde_json::from_slice(&spliced)
        .map_err(|e| TestCaseError::fail(format!("the splice is not JSON: {e}")))?;
    object.insert("model".into(), Value::String(new_model.to_owned()));
    prop_assert_eq!(after, Value::Object(object));
    // And the spliced body reads the same, with the new name.
    let again = inspect(endpoint, &spliced);
    prop_assert_eq!(again.map(|a| a.model).ok(), Some(new_model.to_owned()));
    Ok(())
}

/// Pieces of JSON and the names inspection looks for, to be strung
/// together at random.
const TOKENS: [&str; 30] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "\"",
    "\\",
    "\"model\"",
    "\"m\"",
    "\"messages\"",
    "\"role\"",
    "\"user\"",
    "\"input\"",
    "\"prompt\"",
    "\"stream\"",
    "\"n\"",
    "\"max_tokens\"",
    "\"stream_options\"",
    "\"include_usage\"",
    "true",
    "null",
    "1",
    "-2",
    "3.5",
    "1e3",
    "\"\\u00e9\"",
    "\u{e9}",
];

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..48)
        .prop_map(|t| t.concat().into_bytes())
}

/// A value nested `opens.len()` deep (`true`: an array, `false`: an
/// object), with `noise` (a string) at the bottom and in every key.
fn nested(opens: &[bool], noise: &str) -> String {
    let key = serde_json::to_string(noise).unwrap();
    let mut out = String::new();
    for array in opens {
        if *array {
            out.push('[');
        } else {
            out.push_str(&format!("{{{key}:"));
        }
    }
    out.push_str(&key);
    for array in opens.iter().rev() {
        out.push(if *array { ']' } else { '}' });
    }
    out
}

/// Strings that look like structure to a careless scan.
fn noise() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["[", "]", "{", "}", "\"", "\\", "a", "\\\""]),
        0..6,
    )
    .prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn nesting_is_refused_exactly_past_the_limit(
        opens in prop::collection::vec(any::<bool>(), 0..140),
        noise in noise(),
        limit in 1..=MAX_DEPTH,
        endpoint in endpoint(),
    ) {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user"}}],"input":"i","prompt":"p","max_tokens":1,"x":{}}}"#,
            nested(&opens, &noise)
        );
        // The top object, then `x`; `messages` nests 3 deep.
        let depth = (1 + opens.len()).max(3);
        let got = inspect_within(endpoint, body.as_bytes(), limit);
        let too_deep = got.as_ref().err().is_some_and(|e| e.code == Some(JSON_TOO_DEEP));
        prop_assert_eq!(too_deep, depth > limit, "depth {} limit {}: {:?}", depth, limit, got.err());
        if depth <= limit {
            prop_assert!(got.is_ok(), "{:?}", got.err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        endpoint in endpoint(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        model in text(),
    ) {
        check_accepted(endpoint, &body, &model)?;
    }

    #[test]
    fn token_soup_is_accepted_only_as_a_json_object(
        endpoint in endpoint(),
        body in soup(),
        model in text(),
    ) {
        check_accepted(endpoint, &body, &model)?;
    }

    #[test]
    fn near_valid_bodies_get_the_documented_verdict(
        endpoint in endpoint(),
        fields in fields(),
        spaced in any::<bool>(),
        model in text(),
    ) {
        let body = body(&fields, spaced);
        let got = inspect(endpoint, &body).map(|_| ()).map_err(|e| e.param.map(|p| p.into_owned()));
        prop_assert_eq!(
            &got,
            &expected(endpoint, &fields),
            "{}",
            String::from_utf8_lossy(&body)
        );
        check_accepted(endpoint, &body, &model)?;
    }

    #[test]
    fn near_valid_bodies_cut_or_mutated_never_panic(
        endpoint in endpoint(),
        fields in fields(),
        edits in prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..4),
        model in text(),
    ) {
        let mut body = body(&fields, false);
        for (at, byte, how) in edits {
            let at = body.len() * usize::from(at) / 65_536;
            match how {
                0 => body.truncate(at),
                1 => body.insert(at, byte),
                _ => { if at < body.len() { body[at] = byte; } }
            }
        }
        check_accepted(endpoint, &body, &model)?;
    }
}
