//! Unit tests of request inspection.

use super::*;
use bytes::Bytes;

const CHAT: Endpoint = Endpoint::ChatCompletions;
const MSGS: &str = r#""messages":[{"role":"user","content":"hi"}]"#;

fn ok_on(endpoint: Endpoint, body: &str) -> Inspected {
    match inspect(endpoint, body.as_bytes()) {
        Ok(i) => i,
        Err(e) => panic!("{body}: {e}"),
    }
}

fn ok(body: &str) -> Inspected {
    ok_on(CHAT, body)
}

fn err_on(endpoint: Endpoint, body: &str) -> ApiError {
    match inspect(endpoint, body.as_bytes()) {
        Ok(i) => panic!("{body} accepted: {i:?}"),
        Err(e) => e,
    }
}

fn err(body: &str) -> ApiError {
    err_on(CHAT, body)
}

fn err_bytes(body: &[u8]) -> ApiError {
    match inspect(CHAT, body) {
        Ok(i) => panic!("accepted: {i:?}"),
        Err(e) => e,
    }
}

/// The 400's `param` and `message`.
fn fault(e: &ApiError) -> (Option<&str>, &str) {
    assert_eq!(e.status, 400, "{e}");
    (e.param.as_deref(), e.message.as_str())
}

#[test]
fn reads_model_and_stream() {
    let i = ok(r#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true}"#);
    assert_eq!(i.model, "gpt-4o");
    assert!(i.stream);
    assert_eq!(i.choices, 1);
    assert!(!ok(&format!(r#"{{"model":"m",{MSGS}}}"#)).stream);
    assert!(!ok(&format!(r#"{{"model":"m",{MSGS},"stream":null}}"#)).stream);
}

#[test]
fn splice_keeps_everything_else_byte_for_byte() {
    let body = Bytes::from_static(
        br#"{"model" : "gpt-4o", "encoding_format":"base64","x":{"y":[1,2.50,null]},"input":"a"}"#,
    );
    let i = ok_on(
        Endpoint::Embeddings,
        std::str::from_utf8(&body).unwrap_or_default(),
    );
    let out = splice(&body, &i.model_span, br#""llama-3.1""#);
    assert_eq!(
        &out[..],
        br#"{"model" : "llama-3.1", "encoding_format":"base64","x":{"y":[1,2.50,null]},"input":"a"}"#
    );
}

#[test]
fn escaped_model_names_decode() {
    assert_eq!(
        ok(&format!(r#"{{"model":"a\"b\u0041",{MSGS}}}"#)).model,
        "a\"bA"
    );
}

#[test]
fn rejects_bad_utf8_and_deep_nesting_even_in_skipped_fields() {
    let mut bad = br#"{"model":"m","messages":[{"content":"x"#.to_vec();
    bad.extend_from_slice(&[0xff, b'"', b'}', b']', b'}']);
    assert!(err_bytes(&bad).message.contains("UTF-8"));
    let deep = format!(
        r#"{{"model":"m",{MSGS},"x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(err_bytes(deep.as_bytes()).message.contains("nested deeper"));
    let fine = format!(
        r#"{{"model":"m",{MSGS},"x":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(inspect(CHAT, fine.as_bytes()).is_ok());
    // Brackets inside strings, and escaped quotes, do not count.
    let strings = format!(
        r#"{{"model":"m",{MSGS},"x":"{}\"{}"}}"#,
        "[".repeat(300),
        "{".repeat(300)
    );
    assert!(
        inspect(CHAT, strings.as_bytes()).is_ok(),
        "{:?}",
        inspect(CHAT, strings.as_bytes()).err().map(|e| e.message)
    );
}

#[test]
fn rejects_malformed_and_wrong_types() {
    assert_eq!(err("{").status, 400);
    assert_eq!(err("[1,2]").status, 400);
    assert_eq!(err("").status, 400);
    assert_eq!(err(r#"{"model":"m",}"#).status, 400);
    assert_eq!(err(r#"{"model":"m","x":[1,}"#).status, 400);
    // Syntax is still checked inside the fields that are only looked at.
    assert_eq!(
        err(r#"{"model":"m","messages":[{"role":"user","x":[1,}]}"#).param,
        None
    );
    assert_eq!(err(r#"{"messages":[]}"#).param.as_deref(), Some("model"));
    let e = err(r#"{"model":42}"#);
    assert_eq!(e.param.as_deref(), Some("model"));
    assert!(e.message.contains("a number"), "{}", e.message);
    assert_eq!(
        err(r#"{"model":"m","stream":"yes"}"#).param.as_deref(),
        Some("stream")
    );
    assert_eq!(err(r#"{"model":"m","model":"n"}"#).status, 400);
}

#[test]
fn chat_messages_must_be_a_non_empty_array_of_objects_with_a_role() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"model":"m"}"#,
            "messages",
            "Missing required parameter: 'messages'.",
        ),
        (
            r#"{"model":"m","messages":null}"#,
            "messages",
            "Invalid type for 'messages': expected an array of objects, but got null.",
        ),
        (
            r#"{"model":"m","messages":"hi"}"#,
            "messages",
            "Invalid type for 'messages': expected an array of objects, but got a string.",
        ),
        (
            r#"{"model":"m","messages":{"role":"user"}}"#,
            "messages",
            "Invalid type for 'messages': expected an array of objects, but got an object.",
        ),
        (
            r#"{"model":"m","messages":[]}"#,
            "messages",
            "Invalid 'messages': empty array. 'messages' must be a non-empty array.",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"a"},"hi"]}"#,
            "messages.[1]",
            "Invalid type for 'messages[1]': expected an object, but got a string.",
        ),
        (
            r#"{"model":"m","messages":[[{"role":"user"}]]}"#,
            "messages.[0]",
            "Invalid type for 'messages[0]': expected an object, but got an array.",
        ),
        (
            r#"{"model":"m","messages":[{"content":"a"}]}"#,
            "messages.[0].role",
            "Missing required parameter: 'messages[0].role'.",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"},{"content":"x","role":7},{"role":null}]}"#,
            "messages.[1].role",
            "Invalid type for 'messages[1].role': expected a string, but got a number.",
        ),
    ];
    for (body, param, message) in cases {
        let e = err(body);
        assert_eq!(fault(&e), (Some(*param), *message), "{body}");
        assert_eq!(e.kind, "invalid_request_error");
    }
    // Unknown fields and unknown message fields pass; a nested "role" deeper
    // in a message does not count as the message's own.
    ok(
        r#"{"model":"m","messages":[{"content":[{"type":"text","text":"x"}],"role":"user","name":"a"}],"extra":{"messages":1}}"#,
    );
    let e = err(r#"{"model":"m","messages":[{"content":{"role":"user"}}]}"#);
    assert_eq!(e.param.as_deref(), Some("messages.[0].role"));
    // Other endpoints do not need `messages`.
    ok_on(
        Endpoint::Embeddings,
        r#"{"model":"m","input":"x","messages":3}"#,
    );
}

#[test]
fn embeddings_input_is_a_string_or_an_array_of_one_kind() {
    let e = Endpoint::Embeddings;
    for good in [
        r#""hello""#,
        r#"["a","b\"c"]"#,
        "[1,2,-3]",
        "[[1,2],[3, 4]]",
        "[]",
    ] {
        ok_on(e, &format!(r#"{{"model":"m","input":{good}}}"#));
    }
    let cases: &[(&str, &str)] = &[
        ("null", "null"),
        ("42", "a number"),
        (r#"{"text":"a"}"#, "an object"),
        (r#"["a",{"b":1}]"#, "an array whose item 1 is an object"),
        (r#"["a",1]"#, "an array whose item 1 is an integer"),
        ("[1,2.5]", "an array whose item 1 is a decimal"),
        (
            r#"[[1,2],["a"]]"#,
            "an array whose item 1 is an array that is not of integers",
        ),
        (
            "[[1,[2]]]",
            "an array whose item 0 is an array that is not of integers",
        ),
    ];
    for (input, got) in cases {
        let body = format!(r#"{{"model":"m","input":{input}}}"#);
        let err = err_on(e, &body);
        let (param, message) = fault(&err);
        assert_eq!(param, Some("input"), "{body}");
        assert_eq!(
            message,
            format!("Invalid type for 'input': expected a string, an array of strings, an array of integers or an array of arrays of integers, but got {got}."),
            "{body}"
        );
    }
    let err = err_on(e, r#"{"model":"m","encoding_format":"float"}"#);
    assert_eq!(
        fault(&err),
        (Some("input"), "Missing required parameter: 'input'.")
    );
}

#[test]
fn images_need_a_string_prompt_and_responses_an_input() {
    let img = Endpoint::ImagesGenerations;
    ok_on(
        img,
        r#"{"model":"m","prompt":"a cat","n":2,"size":"256x256"}"#,
    );
    assert_eq!(
        fault(&err_on(img, r#"{"model":"m"}"#)),
        (Some("prompt"), "Missing required parameter: 'prompt'.")
    );
    assert_eq!(
        fault(&err_on(img, r#"{"model":"m","prompt":["a cat"]}"#)),
        (
            Some("prompt"),
            "Invalid type for 'prompt': expected a string, but got an array."
        )
    );
    let r = Endpoint::Responses;
    ok_on(r, r#"{"model":"m","input":"hi"}"#);
    ok_on(
        r,
        r#"{"model":"m","input":[{"role":"user","content":"hi"}]}"#,
    );
    ok_on(r, r#"{"model":"m","prompt":{"id":"pmpt_1"}}"#);
    assert_eq!(
        fault(&err_on(r, r#"{"model":"m"}"#)),
        (Some("input"), "Missing required parameter: 'input'.")
    );
    assert_eq!(
        fault(&err_on(r, r#"{"model":"m","input":5}"#)),
        (
            Some("input"),
            "Invalid type for 'input': expected a string or an array, but got a number."
        )
    );
}

#[test]
fn counts_are_integers_where_present() {
    let body = |field: &str, v: &str| format!(r#"{{"model":"m",{MSGS},"{field}":{v}}}"#);
    for field in ["n", "max_tokens", "max_completion_tokens"] {
        for good in ["1", "250", "null", "-1"] {
            ok(&body(field, good));
        }
        for (bad, got) in [
            (r#""2""#, "a string"),
            ("2.5", "a decimal"),
            ("1e3", "a decimal"),
            ("true", "a boolean"),
            ("[2]", "an array"),
        ] {
            let e = err(&body(field, bad));
            assert_eq!(
                fault(&e),
                (
                    Some(field),
                    format!("Invalid type for '{field}': expected an integer, but got {got}.")
                        .as_str()
                )
            );
        }
    }
    assert_eq!(ok(&body("n", "3")).choices, 3);
    assert_eq!(ok(&body("n", "0")).choices, 1);
    assert_eq!(ok(&body("n", "100000")).choices, MAX_CHOICES);
    // The output allowance a token limit charges.
    assert_eq!(ok(&body("max_tokens", "70")).max_output, Some(70));
    assert_eq!(ok(&body("max_completion_tokens", "9")).max_output, Some(9));
    assert_eq!(ok(&body("max_output_tokens", "12")).max_output, Some(12));
    assert_eq!(ok(&body("max_tokens", "null")).max_output, None);
    assert_eq!(ok(&body("n", "2")).max_output, None);
    assert_eq!(
        fault(&err_on(
            Endpoint::ImagesGenerations,
            r#"{"model":"m","prompt":"x","n":"2"}"#
        ))
        .0,
        Some("n")
    );
}

/// Big strings are skipped, not decoded: a 4 MiB message full of escapes
/// passes, and so does a large batch of embeddings inputs.
#[test]
fn big_bodies_pass() {
    let text = "line \\\"quoted\\\"\\n".repeat(250_000);
    ok(&format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#
    ));
    let batch = vec![format!("\"{text}\""); 4].join(",");
    ok_on(
        Endpoint::Embeddings,
        &format!(r#"{{"model":"m","input":[{batch}]}}"#),
    );
}

#[test]
fn the_depth_limit_is_the_listeners() {
    // The object itself is level 1, `messages` 2, a message 3: "x" at 4..
    let nested = |levels: usize| {
        format!(
            r#"{{"model":"m",{MSGS},"x":{}1{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    assert!(inspect_within(CHAT, nested(7).as_bytes(), 8).is_ok());
    let e = inspect_within(CHAT, nested(8).as_bytes(), 8).unwrap_err();
    assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    assert_eq!(e.code, Some(JSON_TOO_DEEP));
    assert!(e.message.contains("deeper than 8 levels"), "{}", e.message);
    // Never beyond serde_json's own limit.
    assert!(inspect_within(CHAT, nested(200).as_bytes(), 10_000).is_err());
}

#[test]
fn anthropic_messages_need_max_tokens_and_well_formed_messages() {
    let m = Endpoint::Messages;
    let i = ok_on(
        m,
        &format!(r#"{{"model":"claude","max_tokens":256,"stream":true,{MSGS}}}"#),
    );
    assert_eq!(
        (i.model.as_str(), i.stream, i.max_output),
        ("claude", true, Some(256))
    );
    let e = err_on(m, &format!(r#"{{"model":"claude",{MSGS}}}"#));
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    let e = err_on(
        m,
        &format!(r#"{{"model":"claude","max_tokens":null,{MSGS}}}"#),
    );
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    let e = err_on(
        m,
        &format!(r#"{{"model":"claude","max_tokens":"many",{MSGS}}}"#),
    );
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    let e = err_on(m, r#"{"model":"claude","max_tokens":5,"messages":[]}"#);
    assert_eq!(e.param.as_deref(), Some("messages"));
    let e = err_on(m, r#"{"model":"claude","max_tokens":5}"#);
    assert_eq!(e.param.as_deref(), Some("messages"));
}

#[test]
fn include_usage_is_read_from_stream_options() {
    let i = ok(&format!(
        r#"{{"model":"m","stream":true,"stream_options":{{"include_usage": true}},{MSGS}}}"#
    ));
    assert!(i.include_usage);
    let i = ok(&format!(
        r#"{{"model":"m","stream":true,"stream_options":{{"include_usage":false}},{MSGS}}}"#
    ));
    assert!(!i.include_usage);
    assert!(!ok(&format!(r#"{{"model":"m",{MSGS}}}"#)).include_usage);
}

/// Found by the fuzz tests (`fuzz::request`): serde reads a struct from an
/// array too, so `"stream_options": [true]` passed for `include_usage`.
#[test]
fn include_usage_needs_stream_options_to_be_an_object() {
    let i = ok(&format!(
        r#"{{"model":"m","stream":true,"stream_options":[true],{MSGS}}}"#
    ));
    assert!(!i.include_usage);
}
