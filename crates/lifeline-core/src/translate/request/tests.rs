//! Request translation: the fixtures (written from each API's
//! documentation) both ways, then one test per rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::*;
use crate::translate::testing::{bytes, fixture, fixtures, parse};
use crate::translate::Wire;

fn opts(case: &Value) -> ToAnthropic<'_> {
    let o = &case["opts"];
    ToAnthropic {
        model: o["model"].as_str().unwrap(),
        default_max_tokens: u32::try_from(o["default_max_tokens"].as_u64().unwrap()).unwrap(),
        version: o["version"].as_str().unwrap(),
        prefill: true,
    }
}

fn run(name: &str, case: &Value) {
    let direction = case["direction"].as_str().unwrap();
    if direction != "to_openai" {
        let out = openai_to_anthropic(&bytes(&case["openai"]), &opts(case))
            .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        assert_eq!(parse(&out), case["anthropic"], "{name}: OpenAI → Anthropic");
    }
    if direction != "to_anthropic" {
        let model = case["openai"]["model"].as_str().unwrap();
        let out = anthropic_to_openai(
            &bytes(&case["anthropic"]),
            &ToOpenAi {
                model,
                prefill: true,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        assert_eq!(parse(&out), case["openai"], "{name}: Anthropic → OpenAI");
    }
}

fn check(name: &str) {
    run(name, &fixture(&format!("request/{name}.json")));
}

/// OpenAI → Anthropic of a small body, with Sonnet 4.5 at the default
/// version.
fn to_anthropic(body: Value) -> Result<Value, Untranslatable> {
    let opts = ToAnthropic {
        model: "claude-sonnet-4-5",
        default_max_tokens: 4096,
        version: "2023-06-01",
        prefill: true,
    };
    openai_to_anthropic(&bytes(&body), &opts).map(|b| parse(&b))
}

fn to_openai(body: Value) -> Result<Value, Untranslatable> {
    anthropic_to_openai(
        &bytes(&body),
        &ToOpenAi {
            model: "gpt-4o",
            prefill: true,
        },
    )
    .map(|b| parse(&b))
}

#[test]
fn every_request_fixture_translates_as_written() {
    let all = fixtures("request");
    assert!(all.len() >= 15, "fixtures missing: {}", all.len());
    for (name, case) in all {
        run(&name, &case);
    }
}

#[test]
fn plain_chat_round_trips() {
    check("plain_chat");
}

#[test]
fn system_prompt_and_both_image_kinds_round_trip() {
    check("system_and_images");
}

#[test]
fn system_and_developer_messages_anywhere_are_hoisted_and_turns_merged() {
    check("system_anywhere");
}

#[test]
fn tools_tool_calls_and_tool_results_round_trip() {
    check("tools");
}

#[test]
fn tool_results_come_before_the_text_of_their_turn() {
    check("tool_results_then_text");
    // Also when the client wrote the text first (Anthropic requires results first).
    let out = to_anthropic(json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "then this"},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]}))
    .unwrap();
    let turn = &out["messages"][2]["content"];
    assert_eq!(turn[0]["type"], "tool_result");
    assert_eq!(turn[1], json!({"type": "text", "text": "then this"}));
}

#[test]
fn named_tool_choice_and_parallel_flag_round_trip() {
    check("named_tool_choice");
}

#[test]
fn tool_choice_none_and_choices_without_tools() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": tools, "tool_choice": "none", "parallel_tool_calls": false}),
    )
    .unwrap();
    assert_eq!(out["tool_choice"], json!({"type": "none"}));
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": tools, "parallel_tool_calls": false}),
    )
    .unwrap();
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tool_choice": "required", "parallel_tool_calls": false}),
    )
    .unwrap();
    assert!(
        out.get("tool_choice").is_none() && out.get("tools").is_none(),
        "{out}"
    );
}

#[test]
fn stop_sequences_drop_whitespace_only_ones() {
    check("stop_sequences");
    check("stop_string");
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": " \n"}),
    )
    .unwrap();
    assert!(out.get("stop_sequences").is_none(), "{out}");
}

#[test]
fn stop_temperature_user_and_stream_round_trip() {
    check("stop_round_trip");
}

#[test]
fn max_tokens_default_and_dropped_fields() {
    check("default_max_tokens_and_dropped");
    check("max_completion_tokens_first");
}

#[test]
fn temperature_is_capped_at_one() {
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 2}),
    )
    .unwrap();
    assert_eq!(out["temperature"], json!(1.0));
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.3}),
    )
    .unwrap();
    assert_eq!(out["temperature"], json!(0.3));
}

#[test]
fn sampling_rules_apply_to_translated_requests() {
    check("sampling_sonnet_4_5");
    check("sampling_opus_4_7");
    check("sampling_version_2026_10_21");
    check("sampling_older_model");
}

#[test]
fn prefill_is_kept_with_trailing_whitespace_trimmed() {
    check("prefill");
    check("prefill_to_openai");
    // A prefill of whitespace only is no prefill.
    let out = to_anthropic(json!({"model": "m", "messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "content": "  \n"}]}))
    .unwrap();
    assert_eq!(out["messages"], json!([{"role": "user", "content": "x"}]));
}

#[test]
fn a_prefill_to_a_target_that_does_not_continue_it_is_refused() {
    let openai = json!({"model": "m", "messages": [
        {"role": "user", "content": "Say a colour"}, {"role": "assistant", "content": "The colour is"}]});
    let opts = ToAnthropic {
        model: "claude-opus-4-6",
        default_max_tokens: 64,
        version: "2023-06-01",
        prefill: false,
    };
    let e = openai_to_anthropic(&bytes(&openai), &opts).unwrap_err();
    assert!(e.0.contains("prefill"), "{e}");
    let anthropic = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "Say a colour"}, {"role": "assistant", "content": "The colour is"}]});
    let e = anthropic_to_openai(
        &bytes(&anthropic),
        &ToOpenAi {
            model: "gpt-4o",
            prefill: false,
        },
    )
    .unwrap_err();
    assert!(e.0.contains("prefill"), "{e}");
    // A conversation ending with the user is fine either way.
    let ends_with_user = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]});
    assert!(anthropic_to_openai(
        &bytes(&ends_with_user),
        &ToOpenAi {
            model: "gpt-4o",
            prefill: false
        }
    )
    .is_ok());
    // A whitespace-only final assistant message is no prefill.
    let blank = json!({"model": "m", "messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]});
    assert!(openai_to_anthropic(&bytes(&blank), &opts).is_ok());
}

#[test]
fn claude_4_6_and_later_reject_prefill() {
    for model in [
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-7",
        "claude-opus-4.7",
        "anthropic.claude-sonnet-4-6-20260101-v1:0",
        "claude-sonnet-5",
        "claude-haiku-5-0",
        "claude-mythos-preview",
    ] {
        assert!(rejects_prefill(model), "{model}");
    }
    for model in [
        "claude-opus-4-5",
        "claude-sonnet-4-5-20250929",
        "claude-3-5-sonnet-20241022",
        "claude-opus-4-1-20250805",
        "gpt-4o",
        "up-0",
    ] {
        assert!(!rejects_prefill(model), "{model}");
    }
}

#[test]
fn json_schema_response_format_round_trips() {
    check("json_schema");
}

#[test]
fn anthropic_blocks_translate_to_openai_messages() {
    check("anthropic_blocks_to_openai");
}

#[test]
fn empty_turns_are_left_out() {
    let out = to_anthropic(json!({"model": "m", "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}]}))
    .unwrap();
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    );
}

#[test]
fn a_stream_to_openai_asks_for_the_usage_chunk() {
    let out = to_openai(
        json!({"model": "c", "max_tokens": 5, "stream": true, "top_k": 3,
        "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert!(out.get("top_k").is_none(), "top_k is dropped: {out}");
}

#[test]
fn untranslatable_requests_are_refused_with_the_reason() {
    for (file, to) in [
        ("untranslatable/to_anthropic.json", Wire::Anthropic),
        ("untranslatable/to_openai.json", Wire::OpenAi),
    ] {
        let cases = fixture(file);
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let body = case["body"].clone();
            let result = match to {
                Wire::Anthropic => to_anthropic(body),
                Wire::OpenAi => to_openai(body),
            };
            let reason = case["reason"].as_str().unwrap();
            match result {
                Err(Untranslatable(why)) => assert!(
                    why.contains(reason),
                    "{}: {why:?} lacks {reason:?}",
                    case["about"]
                ),
                Ok(out) => panic!("{}: translated: {out}", case["about"]),
            }
        }
    }
}

#[test]
fn the_n_refusal_says_why() {
    let err =
        to_anthropic(json!({"model": "m", "n": 3, "messages": [{"role": "user", "content": "x"}]}))
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "n > 1 cannot be translated to Anthropic (it returns one candidate)"
    );
}

#[test]
fn model_names_are_read_in_every_spelling() {
    for (name, want) in [
        ("claude-opus-4-1-20250805", Some((Family::Opus, 4, 1))),
        ("claude-opus-4-20250514", Some((Family::Opus, 4, 0))),
        ("claude-3-5-sonnet-20241022", Some((Family::Sonnet, 3, 5))),
        ("claude-3-opus-20240229", Some((Family::Opus, 3, 0))),
        (
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some((Family::Sonnet, 4, 5)),
        ),
        ("claude-opus-4-7@20260101", Some((Family::Opus, 4, 7))),
        ("claude-opus-4.7", Some((Family::Opus, 4, 7))),
        ("claude-haiku-4-5", Some((Family::Haiku, 4, 5))),
        ("gpt-4o", None),
        ("claude-sonnet", None),
    ] {
        assert_eq!(claude_model(name), want, "{name}");
    }
}

#[test]
fn the_sampling_rule_follows_model_and_version() {
    let v = "2023-06-01";
    for (model, version, want) in [
        ("claude-3-5-sonnet-20241022", v, Sampling::Any),
        ("claude-opus-4-20250514", v, Sampling::Any),
        ("claude-sonnet-4-20250514", v, Sampling::Any),
        ("claude-opus-4-1-20250805", v, Sampling::TemperatureOrTopP),
        ("claude-sonnet-4-5-20250929", v, Sampling::TemperatureOrTopP),
        ("claude-haiku-4-5", v, Sampling::TemperatureOrTopP),
        ("claude-opus-4-6", v, Sampling::TemperatureOrTopP),
        ("claude-sonnet-5", v, Sampling::TemperatureOrTopP),
        ("claude-opus-4-7", v, Sampling::None),
        ("claude-opus-5", v, Sampling::None),
        ("claude-3-5-haiku-20241022", "2026-10-21", Sampling::None),
        ("claude-3-5-haiku-20241022", "2027-01-01", Sampling::None),
        ("claude-3-5-haiku-20241022", "2026-10-20", Sampling::Any),
        ("my-local-model", v, Sampling::Any),
        ("my-local-model", "garbage", Sampling::Any),
    ] {
        assert_eq!(sampling_rule(model, version), want, "{model} {version}");
    }
}

#[test]
fn sampling_fixup_drops_what_the_target_refuses() {
    let body = br#"{"model":"claude-opus-4-7","max_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":4,"messages":[{"role":"user","content":"x"}]}"#;
    let out = parse(
        &anthropic_sampling_fixup(body, sampling_rule("claude-opus-4-7", "2023-06-01")).unwrap(),
    );
    assert_eq!(
        out,
        json!({"model":"claude-opus-4-7","max_tokens":5,"messages":[{"role":"user","content":"x"}]})
    );

    let out = parse(
        &anthropic_sampling_fixup(body, sampling_rule("claude-sonnet-4-5", "2023-06-01")).unwrap(),
    );
    assert_eq!(out["temperature"], json!(0.5));
    assert!(
        out.get("top_p").is_none() && out["top_k"] == json!(4),
        "{out}"
    );

    let out = parse(
        &anthropic_sampling_fixup(
            body,
            sampling_rule("claude-3-5-haiku-20241022", "2026-10-21"),
        )
        .unwrap(),
    );
    assert!(out.get("temperature").is_none(), "{out}");
}

#[test]
fn sampling_fixup_leaves_acceptable_bodies_alone() {
    let both = br#"{"model":"m","max_tokens":5,"temperature":0.5,"top_p":0.9,"messages":[]}"#;
    assert_eq!(
        anthropic_sampling_fixup(
            both,
            sampling_rule("claude-3-5-sonnet-20241022", "2023-06-01")
        ),
        None
    );
    let one = br#"{"model":"m","max_tokens":5,"top_p":0.9,"messages":[]}"#;
    assert_eq!(
        anthropic_sampling_fixup(one, sampling_rule("claude-sonnet-4-5", "2023-06-01")),
        None
    );
    let none =
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"temperature"}]}"#;
    assert_eq!(
        anthropic_sampling_fixup(none, sampling_rule("claude-opus-4-7", "2023-06-01")),
        None
    );
    assert_eq!(
        anthropic_sampling_fixup(
            b"not json \"top_p\"",
            sampling_rule("claude-opus-4-7", "2023-06-01")
        ),
        None
    );
}

#[test]
fn whitespace_only_texts_are_left_out() {
    let out = to_anthropic(json!({"model": "m", "messages": [
        {"role": "system", "content": " "},
        {"role": "user", "content": [{"type": "text", "text": "\n"}, {"type": "text", "text": "a"}]},
        {"role": "assistant", "content": " \t"},
        {"role": "user", "content": "b"}]}))
    .unwrap();
    assert!(out.get("system").is_none(), "{out}");
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    );
}

#[test]
fn an_empty_tool_result_has_no_content() {
    let out = to_anthropic(json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""}]}))
    .unwrap();
    assert_eq!(
        out["messages"][2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "c1"}])
    );
}

#[test]
fn image_jpg_is_sent_as_image_jpeg() {
    let out = to_anthropic(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/"}}]}]}),
    )
    .unwrap();
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}])
    );
}

#[test]
fn safety_identifier_stands_in_for_user() {
    let out = to_anthropic(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "safety_identifier": "hash-1"})).unwrap();
    assert_eq!(out["metadata"], json!({"user_id": "hash-1"}));
}

#[test]
fn malformed_requests_are_refused_or_translated_never_a_panic() {
    let openai = [
        json!(null),
        json!([]),
        json!("x"),
        json!({}),
        json!({"messages": {}}),
        json!({"messages": [1, "x", null]}),
        json!({"messages": [{"role": 5}]}),
        json!({"messages": [{"role": "user", "content": 5}]}),
        json!({"messages": [{"role": "user", "content": [1, {"type": "image_url"}, {"type": "image_url", "image_url": 5}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [1]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": 5}}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": 5}]}),
        json!({"messages": [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text"}]}]}),
        json!({"messages": [{"role": "tool", "content": "x"}]}),
        json!({"messages": [{"role": "system", "content": [5]}]}),
        json!({"messages": [], "tools": [1]}),
        json!({"messages": [], "tools": [{"type": "function"}]}),
        json!({"messages": [], "tools": [{"type": "function", "function": 5}]}),
        json!({"messages": [], "tools": [{"function": {"name": "f"}}], "tool_choice": {"type": "function", "function": "x"}}),
        json!({"messages": [], "tools": [{"function": {"name": "f"}}], "tool_choice": 5}),
        json!({"messages": [], "stop": [1, null], "temperature": "hot", "n": "2", "response_format": {"type": "json_schema"}}),
    ];
    for body in openai {
        let _ = to_anthropic(body);
    }
    let anthropic = [
        json!(null),
        json!({}),
        json!({"messages": [5]}),
        json!({"messages": [{"role": "user"}]}),
        json!({"system": [5], "messages": []}),
        json!({"system": 5, "messages": []}),
        json!({"messages": [{"role": "user", "content": [5, {"type": "image", "source": 5}, {"type": "image", "source": {"type": "file"}}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": [5]}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": 5}]}]}),
        json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": "x"}, 5]}]}),
        json!({"messages": [], "tools": [5], "tool_choice": "auto"}),
        json!({"messages": [], "tools": [{"name": "f"}], "tool_choice": {"type": "weird"}}),
        json!({"messages": [], "metadata": 5, "output_config": {"format": 5}, "thinking": 5}),
    ];
    for body in anthropic {
        let _ = to_openai(body);
    }
}

#[test]
fn round_trips_give_back_the_original_request() {
    let mut checked = 0;
    for (name, case) in fixtures("request") {
        if case["direction"] != "both" {
            continue;
        }
        let model = case["openai"]["model"].as_str().unwrap();
        let there = openai_to_anthropic(&bytes(&case["openai"]), &opts(&case)).unwrap();
        let back = anthropic_to_openai(
            &there,
            &ToOpenAi {
                model,
                prefill: true,
            },
        )
        .unwrap();
        assert_eq!(
            parse(&back),
            case["openai"],
            "{name}: OpenAI → Anthropic → OpenAI"
        );
        let there = anthropic_to_openai(
            &bytes(&case["anthropic"]),
            &ToOpenAi {
                model,
                prefill: true,
            },
        )
        .unwrap();
        let back = openai_to_anthropic(&there, &opts(&case)).unwrap();
        assert_eq!(
            parse(&back),
            case["anthropic"],
            "{name}: Anthropic → OpenAI → Anthropic"
        );
        checked += 1;
    }
    assert!(checked >= 6, "{checked} round-trip fixtures");
}
