#![allow(clippy::unwrap_used)]

use serde_json::Value;

use super::{StreamOptions, Transcoder};
use crate::translate::Wire;

mod variations;

const A: Wire = Wire::Anthropic;
const O: Wire = Wire::OpenAi;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/src/translate/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn transcoder(from: Wire, to: Wire, include_usage: bool) -> Transcoder {
    Transcoder::new(from, to, StreamOptions { include_usage }).created(1_700_000_000)
}

/// The whole stream in one call, then `finish`.
fn run(from: Wire, to: Wire, include_usage: bool, input: &str) -> String {
    let mut t = transcoder(from, to, include_usage);
    let mut out = t.feed(input.as_bytes()).unwrap().to_vec();
    out.extend_from_slice(&t.finish());
    String::from_utf8(out).unwrap()
}

/// An Anthropic event frame.
fn ev(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An OpenAI chunk frame for choice 0.
fn chunk(delta: &str, finish: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

fn message_start(input_tokens: u64) -> String {
    ev(
        "message_start",
        &format!(
            r#"{{"type":"message_start","message":{{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{input_tokens},"output_tokens":1}}}}}}"#
        ),
    )
}

fn text_block(index: u32, text: &str) -> String {
    ev(
        "content_block_start",
        &format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
        ),
    ) + &ev(
        "content_block_delta",
        &format!(
            r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{}}}}}"#,
            Value::from(text)
        ),
    ) + &ev(
        "content_block_stop",
        &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
    )
}

fn message_end(stop_reason: &str, output_tokens: u64) -> String {
    ev(
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":{output_tokens}}}}}"#
        ),
    ) + &ev("message_stop", r#"{"type":"message_stop"}"#)
}

/// The data payloads of a stream's events, as (event name, JSON or `[DONE]`).
fn events(stream: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for frame in stream.split("\n\n").filter(|f| !f.is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = d.to_string();
            } else {
                panic!("unexpected line {line:?} in {stream}");
            }
        }
        out.push((name, data));
    }
    out
}

/// What an OpenAI client makes of a stream: text, tool calls (id, name,
/// arguments), finish reason, usage chunk, whether `[DONE]` came.
#[derive(Debug, Default, PartialEq)]
struct OpenAiAnswer {
    text: String,
    tools: Vec<(String, String, String)>,
    finish: Option<String>,
    usage: Option<Value>,
    error: Option<Value>,
    done: bool,
}

fn openai_answer(stream: &str) -> OpenAiAnswer {
    let mut a = OpenAiAnswer::default();
    for (name, data) in events(stream) {
        assert!(name.is_empty(), "OpenAI streams have no event names");
        assert!(!a.done, "nothing after [DONE]");
        if data == "[DONE]" {
            a.done = true;
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        if let Some(e) = v.get("error") {
            a.error = Some(e.clone());
            continue;
        }
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(u) = v.get("usage") {
            a.usage = Some(u.clone());
        }
        for c in v["choices"].as_array().unwrap() {
            let d = &c["delta"];
            if let Some(t) = d["content"].as_str() {
                a.text.push_str(t);
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let k = tc["index"].as_u64().unwrap() as usize;
                if let Some(id) = tc["id"].as_str() {
                    assert_eq!(k, a.tools.len(), "tool indexes count tool calls");
                    let name = tc["function"]["name"].as_str().unwrap().to_string();
                    a.tools.push((id.to_string(), name, String::new()));
                }
                if let Some(args) = tc["function"]["arguments"].as_str() {
                    a.tools[k].2.push_str(args);
                }
            }
            if let Some(f) = c["finish_reason"].as_str() {
                assert!(a.finish.is_none(), "one finish_reason");
                a.finish = Some(f.to_string());
            }
        }
    }
    a
}

/// What an Anthropic client makes of a stream: content blocks (text, or
/// tool id/name/input JSON), stop reason, final usage; checks the grammar
/// (one message, blocks opened and closed in order, indexes from 0).
#[derive(Debug, Default, PartialEq)]
struct AnthropicAnswer {
    blocks: Vec<Value>,
    stop_reason: Option<String>,
    usage: Value,
    error: Option<Value>,
    stopped: bool,
}

fn anthropic_answer(stream: &str) -> AnthropicAnswer {
    let mut a = AnthropicAnswer::default();
    let mut open: Option<usize> = None;
    let mut started = false;
    for (name, data) in events(stream) {
        assert!(!a.stopped, "nothing after message_stop");
        let v: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v["type"], name.as_str(), "the event name is the JSON type");
        if name != "message_start" && name != "error" {
            assert!(started, "{name} before message_start");
        }
        match name.as_str() {
            "message_start" => {
                assert!(!started);
                started = true;
                assert!(v["message"]["id"].as_str().unwrap().starts_with("msg_"));
                a.usage = v["message"]["usage"].clone();
            }
            "content_block_start" => {
                assert!(open.is_none(), "one block at a time");
                let i = v["index"].as_u64().unwrap() as usize;
                assert_eq!(i, a.blocks.len());
                let mut b = v["content_block"].clone();
                if b["type"] == "tool_use" {
                    b["input"] = Value::from("");
                }
                a.blocks.push(b);
                open = Some(i);
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(i));
                let d = &v["delta"];
                let (field, add) = match d["type"].as_str().unwrap() {
                    "text_delta" => ("text", d["text"].as_str().unwrap()),
                    "input_json_delta" => ("input", d["partial_json"].as_str().unwrap()),
                    other => panic!("delta {other}"),
                };
                let s = a.blocks[i][field].as_str().unwrap().to_string() + add;
                a.blocks[i][field] = Value::from(s);
            }
            "content_block_stop" => {
                assert_eq!(open.take(), v["index"].as_u64().map(|i| i as usize));
            }
            "message_delta" => {
                assert!(open.is_none(), "blocks closed before message_delta");
                a.stop_reason = v["delta"]["stop_reason"].as_str().map(str::to_string);
                for (k, n) in v["usage"].as_object().unwrap() {
                    a.usage[k] = n.clone();
                }
            }
            "message_stop" => {
                assert!(a.stop_reason.is_some(), "message_delta before message_stop");
                a.stopped = true;
            }
            "error" => a.error = Some(v["error"].clone()),
            other => panic!("event {other}"),
        }
    }
    a
}

/// Anthropic's own tool-use example (the reference, §3), as an OpenAI
/// client receives it.
#[test]
fn the_reference_tool_use_example_becomes_openai_chunks() {
    let input = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01A\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01B\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":22}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let head = r#"data: {"id":"msg_01A","object":"chat.completion.chunk","created":1700000000,"model":"claude-x","choices":["#;
    let expected = [
        r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_01B","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Paris\"}"}}]},"finish_reason":null}]}"#,
        r#"{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"],"usage":{"prompt_tokens":40,"completion_tokens":22,"total_tokens":62}}"#,
    ]
    .iter()
    .map(|c| format!("{head}{c}\n\n"))
    .collect::<String>()
        + "data: [DONE]\n\n";
    assert_eq!(run(A, O, true, input), expected);
    // Without include_usage, no usage chunk.
    let without = run(A, O, false, input);
    assert!(!without.contains("usage"));
    assert_eq!(without.matches("data: ").count(), 5);
}

#[test]
fn a_text_stream_is_byte_exact_both_ways() {
    assert_eq!(
        run(A, O, true, &fixture("stream_anthropic_text.txt")),
        fixture("stream_anthropic_text_to_openai.txt")
    );
    assert_eq!(
        run(O, A, false, &fixture("stream_openai_text.txt")),
        fixture("stream_openai_text_to_anthropic.txt")
    );
}

/// Two tools each way; a thinking block, a `ping` and an unknown event
/// are dropped; `k` counts tool calls, not blocks (the tools are blocks 2
/// and 3, calls 0 and 1).
#[test]
fn tool_calls_stream_both_ways() {
    let out = run(A, O, true, &fixture("stream_anthropic_tools.txt"));
    assert_eq!(out, fixture("stream_anthropic_tools_to_openai.txt"));
    let a = openai_answer(&out);
    assert_eq!(a.text, "Okay, let's check both.");
    assert_eq!(
        a.tools,
        [
            (
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                "get_weather".into(),
                r#"{"location": "San Francisco, CA"}"#.into()
            ),
            (
                "toolu_02AbC".into(),
                "get_time".into(),
                r#"{"timezone": "America/Los_Angeles"}"#.into()
            ),
        ]
    );
    assert!(!out.contains("thinking") && !out.contains("signature"));

    let out = run(O, A, false, &fixture("stream_openai_tools.txt"));
    assert_eq!(out, fixture("stream_openai_tools_to_anthropic.txt"));
    let a = anthropic_answer(&out);
    assert_eq!(a.blocks.len(), 2);
    assert_eq!(a.blocks[0]["id"], "call_DdmO9pD3xa9XTPNJ32zg2hcA");
    assert_eq!(a.blocks[0]["name"], "get_weather");
    assert_eq!(a.blocks[0]["input"], r#"{"location": "Paris"}"#);
    assert_eq!(a.blocks[1]["name"], "get_time");
    assert_eq!(a.blocks[1]["input"], r#"{"tz": "CET"}"#);
    assert_eq!(a.stop_reason.as_deref(), Some("tool_use"));

    // Text, then a tool: the text block closes, the tool gets index 1.
    let input = chunk(r#"{"role":"assistant","content":"Let me look."}"#, "null")
        + &chunk(
            r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}"#,
            "null",
        )
        + &chunk("{}", r#""tool_calls""#)
        + "data: [DONE]\n\n";
    let a = anthropic_answer(&run(O, A, false, &input));
    assert_eq!(
        a.blocks[0],
        serde_json::json!({"type":"text","text":"Let me look."})
    );
    assert_eq!(a.blocks[1]["type"], "tool_use");
    assert_eq!(a.blocks[1]["input"], "{}");
}

#[test]
fn the_usage_chunk_comes_when_asked() {
    // Anthropic → OpenAI: prompt = input + cache creation + cache read;
    // the output is message_delta's cumulative figure.
    let input = ev(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
    ) + &text_block(0, "hi")
        + &message_end("end_turn", 30);
    let a = openai_answer(&run(A, O, true, &input));
    assert_eq!(
        a.usage.unwrap(),
        serde_json::json!({"prompt_tokens":112,"completion_tokens":30,"total_tokens":142,"prompt_tokens_details":{"cached_tokens":100}})
    );
    assert!(openai_answer(&run(A, O, false, &input)).usage.is_none());

    // OpenAI → Anthropic with the usage chunk: the real figures, held
    // until the usage chunk (after the finish chunk, before [DONE]).
    let usage = r#"data: {"id":"c1","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":20}}}"#;
    let mut t = transcoder(O, A, false);
    let first = t
        .feed((chunk(r#"{"content":"a"}"#, "null") + &chunk("{}", r#""stop""#)).as_bytes())
        .unwrap();
    assert!(first.ends_with(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    ));
    let rest = t.feed(format!("{usage}\n\n").as_bytes()).unwrap();
    assert_eq!(
        std::str::from_utf8(&rest).unwrap(),
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":30,\"cache_read_input_tokens\":20,\"output_tokens\":9}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    assert!(t.feed(b"data: [DONE]\n\n").unwrap().is_empty());
    assert!(t.finish().is_empty());

    // Without it: output = chunks that carried content, input unknown (0).
    let input = chunk(r#"{"role":"assistant","content":""}"#, "null")
        + &chunk(r#"{"content":"a"}"#, "null")
        + &chunk(r#"{"content":"b"}"#, "null")
        + &chunk("{}", r#""stop""#)
        + "data: [DONE]\n\n";
    let a = anthropic_answer(&run(O, A, false, &input));
    assert_eq!(
        a.usage,
        serde_json::json!({"input_tokens":0,"output_tokens":2})
    );

    // Usage in the finish chunk itself (servers that report it on every
    // chunk): the end goes out at once.
    let mut t = transcoder(O, A, false);
    let with_usage = chunk(r#"{"content":"a"}"#, r#""length""#).replace(
        "]}\n\n",
        "],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
    );
    let out = String::from_utf8(t.feed(with_usage.as_bytes()).unwrap().to_vec()).unwrap();
    let a = anthropic_answer(&out);
    assert!(a.stopped);
    assert_eq!(a.stop_reason.as_deref(), Some("max_tokens"));
    assert_eq!(a.usage["output_tokens"], 1);
}

#[test]
fn every_stop_reason_maps() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("a_future_reason", "stop"),
    ] {
        let input = message_start(1) + &text_block(0, "x") + &message_end(stop, 2);
        let a = openai_answer(&run(A, O, false, &input));
        assert_eq!(a.finish.as_deref(), Some(finish), "{stop}");
        assert!(a.done);
    }
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("eos", "end_turn"),
    ] {
        let input = chunk(r#"{"content":"x"}"#, "null")
            + &chunk("{}", &format!("\"{finish}\""))
            + "data: [DONE]\n\n";
        let a = anthropic_answer(&run(O, A, false, &input));
        assert_eq!(a.stop_reason.as_deref(), Some(stop), "{finish}");
        assert!(a.stopped);
    }
}

#[test]
fn error_events_both_ways() {
    // Anthropic's `error` event (after HTTP 200) → OpenAI's error payload;
    // the stream ends there: no finish, no [DONE], even from finish().
    let mut t = transcoder(A, O, true);
    let input = message_start(3)
        + &text_block(0, "partial")
        + &ev(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
    let mut out = t.feed(input.as_bytes()).unwrap().to_vec();
    assert!(out.ends_with(b"data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\",\"param\":null,\"code\":null}}\n\n"));
    out.extend_from_slice(&t.feed(message_end("end_turn", 3).as_bytes()).unwrap());
    out.extend_from_slice(&t.finish());
    let a = openai_answer(std::str::from_utf8(&out).unwrap());
    assert_eq!(a.text, "partial");
    assert_eq!(a.error.unwrap()["type"], "overloaded_error");
    assert!(a.finish.is_none() && !a.done);

    // OpenAI's `{"error": …}` → `event: error` with Anthropic's body.
    for (error, kind) in [
        (
            r#"{"message":"The server is overloaded","type":"server_error","param":null,"code":null}"#,
            "api_error",
        ),
        (
            r#"{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}"#,
            "rate_limit_error",
        ),
        (
            r#"{"message":"busy","type":"overloaded_error"}"#,
            "overloaded_error",
        ),
        (r#""a bare message""#, "api_error"),
    ] {
        let mut t = transcoder(O, A, false);
        let input =
            chunk(r#"{"content":"partial"}"#, "null") + &format!("data: {{\"error\":{error}}}\n\n");
        let mut out = t.feed(input.as_bytes()).unwrap().to_vec();
        out.extend_from_slice(&t.feed(b"data: [DONE]\n\n").unwrap());
        out.extend_from_slice(&t.finish());
        let a = anthropic_answer(std::str::from_utf8(&out).unwrap());
        let e = a.error.unwrap();
        assert_eq!(e["type"], kind, "{error}");
        assert!(e["message"].as_str().unwrap().len() > 3);
        assert!(!a.stopped && a.stop_reason.is_none());
    }
    let out = run(
        O,
        A,
        false,
        "data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}\n\n",
    );
    assert_eq!(out, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n");
}

/// Every way of cutting a stream into calls gives the same bytes: a line
/// per call (`event:` and `data:` apart), random cuts at line boundaries,
/// and even cuts inside lines.
#[test]
fn any_split_of_the_input_gives_the_same_output() {
    for (from, to, name) in [
        (A, O, "stream_anthropic_tools.txt"),
        (A, O, "stream_anthropic_text.txt"),
        (O, A, "stream_openai_tools.txt"),
        (O, A, "stream_openai_text.txt"),
    ] {
        let input = fixture(name);
        let whole = run(from, to, true, &input);
        let lines: Vec<&str> = input.split_inclusive('\n').collect();
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..200 {
            let mut t = transcoder(from, to, true);
            let mut out = Vec::new();
            if round < 100 {
                let mut i = 0;
                while i < lines.len() {
                    let n = if round == 0 { 1 } else { rng.usize(1..=4) };
                    let end = (i + n).min(lines.len());
                    out.extend_from_slice(&t.feed(lines[i..end].concat().as_bytes()).unwrap());
                    i = end;
                }
            } else {
                let bytes = input.as_bytes();
                let mut at = 0;
                while at < bytes.len() {
                    let end = (at + rng.usize(1..=60)).min(bytes.len());
                    out.extend_from_slice(&t.feed(&bytes[at..end]).unwrap());
                    at = end;
                }
            }
            out.extend_from_slice(&t.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                whole,
                "{name}, round {round}"
            );
        }
    }
    // `event: error` in one call, its data in the next.
    let mut t = transcoder(A, O, false);
    t.feed(message_start(1).as_bytes()).unwrap();
    assert!(t.feed(b"event: error\n").unwrap().is_empty());
    let out = t
        .feed(b"data: {\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n")
        .unwrap();
    assert!(out.starts_with(b"data: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\""));
}

/// OpenAI stream → Anthropic → OpenAI: the same text, tool calls and finish.
#[test]
fn a_round_trip_keeps_text_tool_calls_and_finish() {
    for name in ["stream_openai_text.txt", "stream_openai_tools.txt"] {
        let original = fixture(name);
        let anthropic = run(O, A, false, &original);
        let back = run(A, O, true, &anthropic);
        let (before, after) = (openai_answer(&original), openai_answer(&back));
        assert_eq!(after.text, before.text, "{name}");
        assert_eq!(after.tools, before.tools, "{name}");
        assert_eq!(after.finish, before.finish, "{name}");
        assert!(after.done && after.usage.is_some());
    }
    // Text then two tools, fragments of every size.
    let original = chunk(r#"{"role":"assistant","content":""}"#, "null")
        + &chunk(r#"{"content":"Checking "}"#, "null")
        + &chunk(r#"{"content":"two \"things\"."}"#, "null")
        + &chunk(
            r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"a","arguments":""}}]}"#,
            "null",
        )
        + &chunk(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}"#,
            "null",
        )
        + &chunk(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}"#,
            "null",
        )
        + &chunk(
            r#"{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"b","arguments":"{}"}}]}"#,
            "null",
        )
        + &chunk("{}", r#""tool_calls""#)
        + "data: [DONE]\n\n";
    let back = run(A, O, false, &run(O, A, false, &original));
    let (before, after) = (openai_answer(&original), openai_answer(&back));
    assert_eq!(after, before);
}

/// An upstream that ends its answer without its terminal event: finish()
/// writes what the client's grammar still needs, once.
#[test]
fn finish_completes_a_cut_stream_once() {
    let mut t = transcoder(A, O, true);
    t.feed((message_start(4) + &text_block(0, "half")).as_bytes())
        .unwrap();
    let end = String::from_utf8(t.finish().to_vec()).unwrap();
    let a = openai_answer(&end);
    assert_eq!(a.finish.as_deref(), Some("stop"));
    assert_eq!(a.usage.unwrap()["prompt_tokens"], 4);
    assert!(a.done);
    assert!(t.finish().is_empty());
    assert!(t
        .feed(message_end("end_turn", 2).as_bytes())
        .unwrap()
        .is_empty());

    // After message_delta, only [DONE] is missing.
    let mut t = transcoder(A, O, false);
    let input = message_start(4) + &text_block(0, "x");
    let delta = r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":2}}"#;
    t.feed((input + &ev("message_delta", delta)).as_bytes())
        .unwrap();
    assert_eq!(&t.finish()[..], b"data: [DONE]\n\n");

    // OpenAI → Anthropic, cut in a tool call: the block closes, then
    // message_delta (end_turn: no finish_reason came) and message_stop.
    let mut t = transcoder(O, A, false);
    t.feed(
        chunk(r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}"#, "null").as_bytes(),
    )
    .unwrap();
    let end = String::from_utf8(t.finish().to_vec()).unwrap();
    assert_eq!(end, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":1}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    assert!(t.finish().is_empty());

    // After the finish chunk but without usage chunk or [DONE].
    let mut t = transcoder(O, A, false);
    let mut out = t
        .feed((chunk(r#"{"content":"x"}"#, "null") + &chunk("{}", r#""length""#)).as_bytes())
        .unwrap()
        .to_vec();
    out.extend_from_slice(&t.finish());
    let a = anthropic_answer(std::str::from_utf8(&out).unwrap());
    assert_eq!(a.stop_reason.as_deref(), Some("max_tokens"));

    // Nothing at all came: still a whole (empty) answer in each grammar.
    assert_eq!(run(A, O, true, ""), "data: [DONE]\n\n");
    let a = anthropic_answer(&run(O, A, false, ""));
    assert!(a.stopped && a.blocks.is_empty());
}

#[test]
fn events_that_cannot_be_translated_are_errors() {
    for (from, to, input) in [
        (
            A,
            O,
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1""#,
            ),
        ),
        (
            A,
            O,
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"model":"m"}}"#,
            ),
        ),
        (A, O, text_block(0, "before message_start")),
        (
            A,
            O,
            message_start(1)
                + &ev(
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":5,"delta":{"type":"text_delta","text":"x"}}"#,
                ),
        ),
        (
            A,
            O,
            message_start(1)
                + &ev(
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"f"}}"#,
                ),
        ),
        (A, O, "data: {\"index\":0}\n\n".to_string()),
        (
            O,
            A,
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}\n\n".to_string(),
        ),
        // A raw control character would end the client's SSE line.
        (
            O,
            A,
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\rb\"}}]}\n\n".to_string(),
        ),
        (
            O,
            A,
            chunk(
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}"#,
                "null",
            ),
        ),
        (
            O,
            A,
            chunk(
                r#"{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f"}}]}"#,
                "null",
            ) + &chunk(
                r#"{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"g"}}]}"#,
                "null",
            ) + &chunk(
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}"#,
                "null",
            ),
        ),
    ] {
        let mut t = transcoder(from, to, false);
        assert!(t.feed(input.as_bytes()).is_err(), "{input}");
    }
}

#[test]
fn the_same_wire_passes_through() {
    for w in [A, O] {
        let mut t = transcoder(w, w, true);
        let input = fixture("stream_openai_text.txt");
        assert_eq!(t.feed(input.as_bytes()).unwrap(), input.as_bytes());
        assert!(t.finish().is_empty());
    }
}

/// Found by the fuzz tests (`fuzz::translate`): token counts near
/// `u64::MAX` overflowed the usage chunk's sums; they saturate.
#[test]
fn huge_token_counts_saturate_in_the_usage_chunk() {
    let max = u64::MAX;
    let input = ev(
        "message_start",
        &format!(
            r#"{{"type":"message_start","message":{{"id":"msg_1","model":"claude-x","usage":{{"input_tokens":{max},"cache_creation_input_tokens":{max},"cache_read_input_tokens":{max},"output_tokens":1}}}}}}"#
        ),
    ) + &text_block(0, "hi")
        + &message_end("end_turn", max);
    let a = openai_answer(&run(A, O, true, &input));
    let usage = a.usage.unwrap();
    assert_eq!(usage["prompt_tokens"], max);
    assert_eq!(usage["total_tokens"], max);
}
