//! A broken stream continued by another upstream stream through the same
//! transcoder, and upstreams that bend the grammar.

use super::*;

/// Anthropic → OpenAI: the continuation's `message_start` is not repeated,
/// its text follows, its tool call is numbered after the first stream's,
/// and the output tokens add up.
#[test]
fn a_continued_anthropic_stream_reads_as_one_answer() {
    let mut t = transcoder(A, O, true);
    let first = message_start(10)
        + &ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
        )
        + &ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        )
        + &ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        )
        + &ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        )
        + &ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello, wor"}}"#,
        )
        + "event: content_block_delta\ndata: {\"type\":\"content_bl";
    let mut out = t.feed(first.as_bytes()).unwrap().to_vec();
    t.resume();
    let second = message_start(30)
        + &text_block(0, "ld!")
        + &ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"g","input":{}}}"#,
        )
        + &message_end("tool_use", 3);
    out.extend_from_slice(&t.feed(second.as_bytes()).unwrap());
    let a = openai_answer(std::str::from_utf8(&out).unwrap());
    assert_eq!(a.text, "Hello, world!");
    assert_eq!(
        a.tools,
        [
            ("toolu_1".into(), "f".into(), "{}".into()),
            ("toolu_2".into(), "g".into(), String::new())
        ]
    );
    assert_eq!(a.finish.as_deref(), Some("tool_calls"));
    // 1 (the first stream's message_start) + 3; the prompt is the first one's.
    let usage = a.usage.unwrap();
    assert_eq!(
        (
            usage["completion_tokens"].as_u64(),
            usage["prompt_tokens"].as_u64()
        ),
        (Some(4), Some(10))
    );
    assert_eq!(out.windows(6).filter(|w| w == b"\"role\"").count(), 1);
}

/// OpenAI → Anthropic: one `message_start`, the text block continues, a
/// tool call of index 0 in the continuation is a new block after the first
/// stream's tool 0, and the output tokens add up.
#[test]
fn a_continued_openai_stream_reads_as_one_answer() {
    let mut t = transcoder(O, A, false);
    let first = chunk(r#"{"role":"assistant","content":""}"#, "null")
        + &chunk(r#"{"content":"Hello, wor"}"#, "null");
    let mut out = t.feed(first.as_bytes()).unwrap().to_vec();
    t.resume();
    let second = chunk(r#"{"role":"assistant","content":""}"#, "null")
        + &chunk(r#"{"content":"ld!"}"#, "null")
        + &chunk(
            r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}"#,
            "null",
        );
    out.extend_from_slice(&t.feed(second.as_bytes()).unwrap());
    // It breaks again after the tool call's arguments; the next one calls
    // another tool, index 0 again in its own stream.
    t.resume();
    let third = chunk(r#"{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"g","arguments":"{\"a\":1}"}}]}"#, "null")
        + &chunk("{}", r#""tool_calls""#)
        + "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":7}}\n\n"
        + "data: [DONE]\n\n";
    out.extend_from_slice(&t.feed(third.as_bytes()).unwrap());
    out.extend_from_slice(&t.finish());
    let a = anthropic_answer(std::str::from_utf8(&out).unwrap());
    assert_eq!(a.blocks.len(), 3);
    assert_eq!(
        a.blocks[0],
        serde_json::json!({"type":"text","text":"Hello, world!"})
    );
    assert_eq!(
        (&a.blocks[1]["id"], &a.blocks[1]["input"]),
        (&Value::from("call_1"), &Value::from("{}"))
    );
    assert_eq!(
        (&a.blocks[2]["id"], &a.blocks[2]["input"]),
        (&Value::from("call_2"), &Value::from(r#"{"a":1}"#))
    );
    assert_eq!(a.stop_reason.as_deref(), Some("tool_use"));
    // 1 + 2 counted chunks, then 7 reported.
    assert_eq!(a.usage["output_tokens"], 10);
    assert_eq!(a.usage["input_tokens"], 40);
}

/// What some upstreams write that the grammars do not quite say: `null`
/// indexes and fields, `[DONE]` after Anthropic events, an SSE comment,
/// CRLF line ends, `data:` without a space.
#[test]
fn tolerated_variations() {
    let input = ": keep-alive\r\n\r\ndata:{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":null,\"delta\":{\"content\":\"a\",\"tool_calls\":null,\"refusal\":null},\"finish_reason\":null}],\"usage\":null}\r\n\r\n"
        .to_string()
        + &chunk(r#"{"tool_calls":[{"index":null,"id":"call_1","function":{"name":"f","arguments":null}}]}"#, "null")
        + &chunk(r#"{"refusal":"no."}"#, r#""content_filter""#)
        + "data: {\"id\":\"c1\",\"choices\":null,\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"prompt_tokens_details\":null}}\n\n";
    let a = anthropic_answer(&run(O, A, false, &input));
    assert_eq!(a.blocks.len(), 3);
    assert_eq!(a.blocks[2]["text"], "no.");
    assert_eq!(a.stop_reason.as_deref(), Some("refusal"));
    assert_eq!(
        (&a.usage["input_tokens"], &a.usage["output_tokens"]),
        (&Value::from(2), &Value::from(3))
    );

    let mut t = transcoder(A, O, false);
    t.feed(message_start(1).as_bytes()).unwrap();
    let out = t
        .feed(b"data: {\"error\":{\"type\":\"api_error\",\"message\":\"m\"}}\n\n")
        .unwrap();
    assert_eq!(&out[..], b"data: {\"error\":{\"message\":\"m\",\"type\":\"api_error\",\"param\":null,\"code\":null}}\n\n");

    let input = message_start(1) + &text_block(0, "x") + "data: [DONE]\n\n";
    let a = openai_answer(&run(A, O, false, &input));
    assert_eq!(
        (a.text.as_str(), a.finish.as_deref(), a.done),
        ("x", Some("stop"), true)
    );
}

/// Whatever the upstream sends (events cut short, bytes flipped), the
/// transcoder answers an error or whole events, and never panics.
#[test]
fn damaged_streams_give_errors_or_whole_events() {
    let mut rng = fastrand::Rng::with_seed(5);
    for (from, to, name) in [
        (A, O, "stream_anthropic_tools.txt"),
        (O, A, "stream_openai_tools.txt"),
        (A, O, "stream_anthropic_text.txt"),
        (O, A, "stream_openai_text.txt"),
    ] {
        let input = fixture(name).into_bytes();
        for _ in 0..300 {
            let mut damaged = input.clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..damaged.len());
                match rng.u8(..3) {
                    0 => damaged[at] = rng.u8(..),
                    1 => {
                        damaged.remove(at);
                    }
                    _ => damaged.insert(at, b"{}\":,[]\\n"[rng.usize(..9)]),
                }
            }
            let mut t = transcoder(from, to, true);
            let mut out = Vec::new();
            for part in damaged.split_inclusive(|b| *b == b'\n') {
                match t.feed(part) {
                    Ok(o) => {
                        assert!(o.is_empty() || o.ends_with(b"\n\n"));
                        out.extend_from_slice(&o);
                    }
                    Err(_) => break,
                }
            }
            let end = t.finish();
            assert!(end.is_empty() || end.ends_with(b"\n\n"));
            out.extend_from_slice(&end);
            // Every event written is valid JSON.
            for (_, data) in events(std::str::from_utf8(&out).unwrap()) {
                assert!(
                    data == "[DONE]" || serde_json::from_str::<Value>(&data).is_ok(),
                    "{data}"
                );
            }
        }
    }
}
