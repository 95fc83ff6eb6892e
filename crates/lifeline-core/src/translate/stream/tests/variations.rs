//! Upstreams that bend the grammar, and damaged streams.

use super::*;

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
