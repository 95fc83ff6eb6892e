//! Whole answers: the fixtures both ways, each stop reason, usage, and
//! answers that are not answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::*;
use crate::translate::testing::{bytes, fixture, fixtures, parse};

/// OpenAI output without `created` (now), after checking it is recent.
fn without_created(mut v: Value) -> Value {
    let created = v.as_object_mut().unwrap().remove("created").unwrap();
    assert!(
        created.as_u64().unwrap() > 1_750_000_000,
        "created: {created}"
    );
    v
}

fn run(name: &str, case: &Value) {
    let direction = case["direction"].as_str().unwrap();
    if direction != "to_anthropic" {
        let out = anthropic_to_openai(&bytes(&case["anthropic"]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            without_created(parse(&out)),
            case["openai"],
            "{name}: Anthropic → OpenAI"
        );
    }
    if direction != "to_openai" {
        let out =
            openai_to_anthropic(&bytes(&case["openai"])).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parse(&out), case["anthropic"], "{name}: OpenAI → Anthropic");
    }
}

fn check(name: &str) {
    run(name, &fixture(&format!("response/{name}.json")));
}

#[test]
fn every_response_fixture_translates_as_written() {
    for (name, case) in fixtures("response") {
        if case.get("direction").is_some() {
            run(&name, &case);
        }
    }
}

#[test]
fn a_text_answer_round_trips_with_the_provider_id() {
    check("text");
}

#[test]
fn tool_calls_round_trip() {
    check("tool_use");
    check("tool_use_only");
}

#[test]
fn usage_counts_cache_reads_and_writes_as_prompt_tokens() {
    check("cache_usage");
    check("cache_usage_back");
}

#[test]
fn thinking_is_dropped_and_counted_as_reasoning() {
    check("thinking_dropped");
}

#[test]
fn each_stop_reason_maps_to_its_finish_reason_and_back() {
    let table = fixture("response/stop_reasons.json");
    for row in table.as_array().unwrap() {
        let stop = row["stop_reason"].as_str().unwrap();
        let message = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
            "content": [{"type": "text", "text": "x"}], "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}});
        let out = parse(&anthropic_to_openai(&bytes(&message)).unwrap());
        assert_eq!(
            out["choices"][0]["finish_reason"], row["finish_reason"],
            "{stop}"
        );
        if let Some(back) = row["back"].as_str() {
            let completion = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "g",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": row["finish_reason"]}]});
            let out = parse(&openai_to_anthropic(&bytes(&completion)).unwrap());
            assert_eq!(out["stop_reason"], back, "{stop}");
        }
    }
}

#[test]
fn function_call_and_unknown_finish_reasons_map_back() {
    for (finish, want) in [("function_call", "tool_use"), ("something_new", "end_turn")] {
        let completion = json!({"id": "chatcmpl-1", "model": "g",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]});
        let out = parse(&openai_to_anthropic(&bytes(&completion)).unwrap());
        assert_eq!(out["stop_reason"], want, "{finish}");
    }
}

#[test]
fn a_refusal_becomes_text() {
    let completion = json!({"id": "chatcmpl-1", "model": "g", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
        "finish_reason": "content_filter"}]});
    let out = parse(&openai_to_anthropic(&bytes(&completion)).unwrap());
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
    assert_eq!(out["stop_reason"], "refusal");
    assert_eq!(out["usage"]["input_tokens"], 0);
}

#[test]
fn answers_that_are_not_answers_are_errors() {
    assert!(anthropic_to_openai(b"<html>").is_err());
    assert!(
        anthropic_to_openai(br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#)
            .is_err()
    );
    assert!(openai_to_anthropic(br#"{"id":"x","choices":[]}"#).is_err());
    let bad_arguments = json!({"id": "chatcmpl-1", "model": "g", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}]}}]});
    let err = openai_to_anthropic(&bytes(&bad_arguments)).unwrap_err();
    assert!(err.contains("call_1"), "{err}");
}

#[test]
fn malformed_answers_are_errors_or_answers_never_a_panic() {
    for body in [
        json!(null),
        json!({}),
        json!({"type": "message", "content": [5, {"type": "tool_use"}, {"type": "text", "text": 5}], "usage": 5}),
        json!({"content": []}),
    ] {
        let _ = anthropic_to_openai(&bytes(&body));
    }
    for body in [
        json!({"choices": [5]}),
        json!({"choices": [{"message": 5}]}),
        json!({"choices": [{"message": {"tool_calls": [5]}}]}),
        json!({"choices": [{"message": {"tool_calls": [{"function": 5}]}}]}),
        json!({"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"arguments": 5}}], "content": 5}}], "usage": 5}),
    ] {
        let _ = openai_to_anthropic(&bytes(&body));
    }
}

#[test]
fn round_trips_give_back_the_original_answer() {
    let mut checked = 0;
    for (name, case) in fixtures("response") {
        if case.get("direction").and_then(Value::as_str) != Some("both") {
            continue;
        }
        let there = anthropic_to_openai(&bytes(&case["anthropic"])).unwrap();
        let back = openai_to_anthropic(&there).unwrap();
        assert_eq!(
            parse(&back),
            case["anthropic"],
            "{name}: Anthropic → OpenAI → Anthropic"
        );
        let there = openai_to_anthropic(&bytes(&case["openai"])).unwrap();
        let back = anthropic_to_openai(&there).unwrap();
        assert_eq!(
            without_created(parse(&back)),
            case["openai"],
            "{name}: OpenAI → Anthropic → OpenAI"
        );
        checked += 1;
    }
    assert!(checked >= 3, "{checked} round-trip fixtures");
}

/// Found by the fuzz tests (`fuzz::translate`): token counts near
/// `u64::MAX` overflowed the sums (a panic in a debug build, a wrong total
/// in release); they saturate.
#[test]
fn huge_token_counts_saturate() {
    let max = u64::MAX;
    let answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": max, "cache_read_input_tokens": max,
                  "cache_creation_input_tokens": max, "output_tokens": max},
    });
    let out = parse(&anthropic_to_openai(&bytes(&answer)).unwrap());
    assert_eq!(out["usage"]["prompt_tokens"], max);
    assert_eq!(out["usage"]["total_tokens"], max);
}
