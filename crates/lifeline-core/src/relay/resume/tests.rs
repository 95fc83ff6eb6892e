#![allow(clippy::unwrap_used)]

use super::*;
use crate::providers::Wire;

fn chunk(id: &str, delta: &str, finish: &str) -> String {
    format!("data: {{\"id\":\"{id}\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
}

fn text(id: &str, t: &str) -> String {
    chunk(
        id,
        &format!("{{\"content\":{}}}", serde_json::Value::from(t)),
        "null",
    )
}

fn role(id: &str) -> String {
    chunk(id, "{\"role\":\"assistant\",\"content\":\"\"}", "null")
}

fn sent(parts: &[&str]) -> Sent {
    let chunks: Vec<Bytes> = parts.iter().map(|p| Bytes::from(p.to_string())).collect();
    Sent::parse(&chunks, Wire::OpenAi)
}

/// The client's text and ids after a splice.
fn client_text(out: &[u8]) -> (String, Vec<String>) {
    let s = sent(&[std::str::from_utf8(out).unwrap()]);
    let ids = std::str::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    (s.text, ids)
}

#[test]
fn what_was_sent_is_learnt_from_the_client_bytes() {
    let s = sent(&[&role("a"), &text("a", "Hello"), &text("a", " world ")]);
    assert_eq!(s.id.as_deref(), Some("a"));
    assert_eq!(s.text, "Hello world ");
    assert!(!s.tool_call && !s.ended && s.at_boundary);
    let s = sent(&[
        &text("a", "x"),
        &chunk(
            "a",
            r#"{"tool_calls":[{"index":0,"function":{"name":"f"}}]}"#,
            "null",
        ),
    ]);
    assert!(s.tool_call);
    let s = sent(&[&text("a", "x"), &chunk("a", "{}", "\"stop\"")]);
    assert!(s.ended);
    let s = sent(&["data: {\"id\":\"a\"}\n"]);
    assert!(!s.at_boundary);
}

#[test]
fn seam_is_the_longest_tail_that_reappears() {
    let sent = "one two three four five six seven eight nine ten eleven twelve";
    // The model repeats the last three words, then goes on: a short tail,
    // a seam once the window is complete (and it occurs once in it).
    let new = "ten eleven twelve thirteen";
    assert!(find_seam(sent, new, false).is_none());
    let (end, tail) = find_seam(sent, new, true).unwrap();
    assert_eq!(tail, "ten eleven twelve");
    assert_eq!(&new[end..], " thirteen");
    // Repeating more: the longest tail (40 bytes at most) wins, at once
    // when it is long enough to be sure.
    let new = "seven eight nine ten eleven twelve thirteen";
    let (end, tail) = find_seam(sent, new, false).unwrap();
    assert!(tail.len() >= FULL_SEAM, "{tail}");
    assert_eq!(&new[end..], " thirteen");
    // Too short a repetition is no seam.
    assert!(find_seam(sent, "twelve thirteen", true).is_none());
    // A short answer so far: the whole of it is enough.
    assert_eq!(find_seam("Hi", "Hi there", false).map(|(e, _)| e), Some(2));
    assert!(find_seam("", "x", true).is_none());
}

/// A recap of earlier text that ends like the text sent is no seam: the
/// seam waits for the full tail, or for a short tail that occurs exactly
/// once in a complete window.
#[test]
fn a_recap_that_ends_like_the_tail_is_not_the_seam() {
    let sent = "A: the cat sat on the mat. B: the dog sat on the mat";
    // The recap's first sentence ends with "sat on the mat" (14 bytes).
    let early = "the cat sat on the mat.";
    assert!(find_seam(sent, early, false).is_none());
    let more = "the cat sat on the mat. B: the dog sat on the mat. C: the bird flew";
    let (end, _) = find_seam(sent, more, false).unwrap();
    assert_eq!(&more[end..], ". C: the bird flew");
    // A complete window where the short tail occurs twice: no seam.
    let twice = "the cat sat on the mat, then it sat on the mat again";
    assert!(find_seam(sent, twice, true).is_none());
    // Through the splice, chunk by chunk: B's sentence is not sent twice.
    let s = sent_of(sent);
    let mut sp = Splice::new(Method::Instruction, &s, Bytes::new());
    let mut out = Vec::new();
    for piece in [
        "the cat sat on the mat.",
        " B: the dog",
        " sat on the mat",
        ". C: the bird",
        " flew.",
    ] {
        let r = sp.feed(text("b", piece).as_bytes());
        assert!(r.misfit.is_none(), "{:?}", r.misfit);
        out.extend_from_slice(&r.out);
    }
    assert_eq!(client_text(&out).0, ". C: the bird flew.");
}

/// A recap followed by new text, with only a short tail repeated: the
/// seam waits for the end of the new output, and is taken when the tail
/// occurs once.
#[test]
fn a_short_tail_is_taken_when_the_new_output_ends() {
    let s = sent_of("A: the cat sat on the mat. B: the dog sat on the mat");
    let mut sp = Splice::new(Method::Instruction, &s, Bytes::new());
    let r = sp.feed(text("b", "dog sat on the mat. C: the end.").as_bytes());
    assert!(r.misfit.is_none() && r.out.is_empty());
    let r = sp.feed(chunk("b", "{}", "\"stop\"").as_bytes());
    assert!(r.misfit.is_none(), "{:?}", r.misfit);
    assert!(r.seam.is_some());
    let (t, _) = client_text(&r.out);
    assert_eq!(t, ". C: the end.");
    assert!(std::str::from_utf8(&r.out).unwrap().contains("\"stop\""));
}

fn sent_of(t: &str) -> Sent {
    sent(&[&role("a"), &text("a", t)])
}

#[test]
fn prefill_drops_the_role_chunk_keeps_the_id_and_skips_sent_whitespace() {
    let s = sent(&[&text("first", "alpha beta ")]);
    let mut sp = Splice::new(
        Method::Prefill,
        &s,
        trailing_comment(1, Method::Prefill, "p1/m"),
    );
    let input = format!(
        "{}{}{}{}data: [DONE]\n\n",
        role("second"),
        text("second", " gamma"),
        text("second", " delta"),
        chunk("second", "{}", "\"stop\"")
    );
    let r = sp.feed(input.as_bytes());
    assert!(r.misfit.is_none());
    let out = std::str::from_utf8(&r.out).unwrap();
    let (t, ids) = client_text(&r.out);
    assert_eq!(t, "gamma delta");
    assert!(ids.iter().all(|i| i == "first"), "{out}");
    assert!(!out.contains("role"), "{out}");
    assert!(
        out.ends_with(": lifeline continued=1 method=prefill deployment=p1/m\n\ndata: [DONE]\n\n"),
        "{out}"
    );
}

#[test]
fn instruction_relays_only_what_follows_the_seam_even_across_chunks() {
    let s = sent(&[&text("a", "w1 w2 w3 w4 w5 w6 w7")]);
    let mut sp = Splice::new(Method::Instruction, &s, Bytes::new());
    // "w5 w6 w7" is 8 bytes (< MIN_SEAM): the model repeats four words.
    let r = sp.feed(
        format!(
            "{}{}{}",
            role("b"),
            text("b", "w4 w5 w"),
            text("b", "6 w7 w8")
        )
        .as_bytes(),
    );
    // A short tail: the seam waits for the window to complete (here, the
    // end of the new output).
    assert!(r.misfit.is_none() && r.out.is_empty());
    let r2 = sp.feed(format!("{}{}", text("b", " w9"), chunk("b", "{}", "\"stop\"")).as_bytes());
    assert!(r2.misfit.is_none());
    assert_eq!(r2.seam.as_deref(), Some("w4 w5 w6 w7"));
    assert_eq!(client_text(&r2.out).0, " w8 w9");
}

#[test]
fn instruction_without_a_seam_in_the_window_is_a_misfit() {
    let s = sent(&[&text("a", "the quick brown fox jumps")]);
    let mut sp = Splice::new(Method::Instruction, &s, Bytes::new());
    let long = "z".repeat(SEAM_WINDOW + 1);
    let r = sp.feed(text("b", &long).as_bytes());
    assert!(r.misfit.is_some());
    assert!(r.out.is_empty());
    let mut sp = Splice::new(Method::Instruction, &s, Bytes::new());
    let r = sp.feed(chunk("b", "{}", "\"stop\"").as_bytes());
    assert!(r.misfit.is_some());
}

#[test]
fn replay_relays_the_remainder_or_gives_up_on_a_difference() {
    let s = sent(&[&text("a", "v1 v2"), &text("a", " v3")]);
    let mut sp = Splice::new(Method::Replay, &s, Bytes::new());
    let r = sp.feed(format!("{}{}", role("b"), text("b", "v1")).as_bytes());
    assert!(r.out.is_empty() && r.misfit.is_none());
    let r = sp.feed(text("b", " v2 v3 v4").as_bytes());
    assert_eq!(client_text(&r.out).0, " v4");
    let r = sp.feed(text("b", " v5").as_bytes());
    assert_eq!(client_text(&r.out).0, " v5");

    let mut sp = Splice::new(Method::Replay, &s, Bytes::new());
    let r = sp.feed(text("b", "v1 X").as_bytes());
    assert!(r.misfit.is_some() && r.out.is_empty());
}

fn ev(kind: &str, json: &str) -> String {
    format!("event: {kind}\ndata: {json}\n\n")
}

fn text_delta(index: u32, t: &str) -> String {
    ev(
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
            serde_json::Value::from(t)
        ),
    )
}

/// Anthropic's wire: the client's text is learnt from its `text_delta`s;
/// the new stream's `message_start`, `ping` and text block start are
/// dropped, its block follows on from the client's open one, and the
/// trailing comment comes before `message_stop`.
#[test]
fn anthropic_events_are_spliced_in_their_own_grammar() {
    let first = format!(
        "{}{}{}{}",
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[]}}"#
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#
        ),
        text_delta(1, "one two three"),
        text_delta(1, " four five"),
    );
    let s = Sent::parse(&[Bytes::from(first)], Wire::Anthropic);
    assert_eq!(s.text, "one two three four five");
    assert_eq!(s.text_index, Some(1));
    assert!(!s.ended && !s.tool_call);
    let mut sp = Splice::new(
        Method::Instruction,
        &s,
        trailing_comment(1, Method::Instruction, "a/m"),
    );
    let new = format!(
        "{}{}{}{}{}{}{}{}",
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[]}}"#
        ),
        ev("ping", r#"{"type":"ping"}"#),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
        ),
        text_delta(0, "three four five"),
        text_delta(0, " six"),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#
        ),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#
        ),
        ev("message_stop", r#"{"type":"message_stop"}"#),
    );
    let r = sp.feed(new.as_bytes());
    assert!(r.misfit.is_none(), "{:?}", r.misfit);
    let out = std::str::from_utf8(&r.out).unwrap();
    assert!(
        !out.contains("message_start") && !out.contains("ping"),
        "{out}"
    );
    assert!(!out.contains("content_block_start"), "{out}");
    assert!(out.contains("event: content_block_delta\ndata: "), "{out}");
    assert!(out.contains("\"index\":1"), "{out}");
    assert!(!out.contains("\"index\":0"), "{out}");
    let all = Sent::parse(&[Bytes::from(out.to_owned())], Wire::Anthropic);
    assert_eq!(all.text, " six");
    assert!(out.ends_with(
        ": lifeline continued=1 method=instruction deployment=a/m\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    ), "{out}");
}

#[test]
fn the_output_sent_is_the_usage_or_the_content_events() {
    // No usage yet: one token per content event (the role chunk is none).
    let s = sent(&[&role("a"), &text("a", "one"), &text("a", " two")]);
    assert_eq!((s.deltas, s.output), (2, 2));
    // A usage that says more wins.
    let usage = "data: {\"id\":\"a\",\"choices\":[],\"usage\":{\"completion_tokens\":9}}\n\n";
    let s = sent(&[&role("a"), &text("a", "one"), usage]);
    assert_eq!(s.output, 9);
    let end = length_ending(&s, b"");
    let end = std::str::from_utf8(&end).unwrap();
    assert!(
        end.contains("\"finish_reason\":\"length\"") && end.ends_with("data: [DONE]\n\n"),
        "{end}"
    );
}

/// Checks an Anthropic stream as the SDKs accumulate it: every block is
/// started once at a fresh index, each delta goes to an open block of its
/// kind, each stop closes an open block, none is left open at the end.
fn assert_blocks(stream: &str) {
    let mut kinds: std::collections::HashMap<i64, String> = Default::default();
    let mut open: Vec<i64> = Vec::new();
    for p in stream.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let v: serde_json::Value = serde_json::from_str(p).unwrap();
        let i = v["index"].as_i64();
        match v["type"].as_str().unwrap() {
            "content_block_start" => {
                let i = i.unwrap();
                assert!(!kinds.contains_key(&i), "index {i} reused: {stream}");
                kinds.insert(i, v["content_block"]["type"].as_str().unwrap().to_owned());
                open.push(i);
            }
            "content_block_delta" => {
                let i = i.unwrap();
                assert!(open.contains(&i), "delta to a closed block {i}: {stream}");
                let want = match v["delta"]["type"].as_str().unwrap() {
                    "text_delta" => "text",
                    "thinking_delta" | "signature_delta" => "thinking",
                    _ => "tool_use",
                };
                assert_eq!(kinds[&i], want, "{stream}");
            }
            "content_block_stop" => {
                let i = i.unwrap();
                assert!(open.contains(&i), "stop of a closed block {i}: {stream}");
                open.retain(|o| *o != i);
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "left open {open:?}: {stream}");
}

fn client_start() -> String {
    format!(
        "{}{}{}",
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[]}}"#
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
        ),
        text_delta(0, "one two three four five"),
    )
}

fn message_end() -> String {
    format!(
        "{}{}",
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#
        ),
        ev("message_stop", r#"{"type":"message_stop"}"#),
    )
}

/// A continuation whose first block is reasoning (thinking): the client's
/// open text block is closed, and the new blocks follow it, the text in a
/// block of its own.
#[test]
fn a_continuation_starting_with_thinking_does_not_reuse_the_open_block() {
    let first = client_start();
    let s = Sent::parse(&[Bytes::from(first.clone())], Wire::Anthropic);
    assert_eq!((s.open_block, s.next_index), (Some(0), 1));
    let mut sp = Splice::new(Method::Prefill, &s, Bytes::new());
    let new = format!(
        "{}{}{}{}{}{}{}{}",
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#
        ),
        text_delta(1, " six"),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#
        ),
        message_end(),
        "",
    );
    let r = sp.feed(new.as_bytes());
    assert!(r.misfit.is_none(), "{:?}", r.misfit);
    let out = std::str::from_utf8(&r.out).unwrap();
    assert!(
        out.starts_with("event: content_block_stop\ndata: {\"index\":0,"),
        "{out}"
    );
    assert_blocks(&format!("{first}{out}"));
    let all = Sent::parse(&[Bytes::from(format!("{first}{out}"))], Wire::Anthropic);
    assert_eq!(all.text, "one two three four five six");
}

/// A continuation whose first block is a tool call: the same.
#[test]
fn a_continuation_starting_with_a_tool_call_does_not_reuse_the_open_block() {
    let first = client_start();
    let s = Sent::parse(&[Bytes::from(first.clone())], Wire::Anthropic);
    let mut sp = Splice::new(Method::Prefill, &s, Bytes::new());
    let new = format!(
        "{}{}{}{}",
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#
        ),
        message_end(),
    );
    let r = sp.feed(new.as_bytes());
    assert!(r.misfit.is_none(), "{:?}", r.misfit);
    let out = std::str::from_utf8(&r.out).unwrap();
    assert!(out.contains("\"index\":1"), "{out}");
    assert_blocks(&format!("{first}{out}"));
}

/// Instruction and seam on a thinking model: the reasoning before the seam
/// is dropped whole (its end too), and the text continues the client's
/// open block.
#[test]
fn reasoning_before_the_seam_is_dropped_and_the_text_continues_the_block() {
    let first = client_start();
    let s = Sent::parse(&[Bytes::from(first.clone())], Wire::Anthropic);
    let mut sp = Splice::new(Method::Instruction, &s, Bytes::new());
    let new = format!(
        "{}{}{}{}{}{}{}",
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#
        ),
        text_delta(1, "one two three four five"),
        text_delta(1, " six"),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#
        ),
        message_end(),
    );
    let r = sp.feed(new.as_bytes());
    assert!(r.misfit.is_none(), "{:?}", r.misfit);
    let out = std::str::from_utf8(&r.out).unwrap();
    assert_blocks(&format!("{first}{out}"));
    let all = Sent::parse(&[Bytes::from(format!("{first}{out}"))], Wire::Anthropic);
    assert_eq!(all.text, "one two three four five six");
}
