//! Continuation's reading of the client's wire ([`crate::providers::continued`]):
//! what the client was sent ([`Sent::parse`], from the bytes kept at a
//! break, which came from an upstream) and the rewrite of a continuation
//! stream's events to follow them ([`Rewrite`]).
//!
//! Inputs: event streams of both wires from the [`super::sse`] generators,
//! with block indexes and token counts of any size, fed in arbitrary pieces.
//! Properties: never a panic; what was sent reads the same however the
//! bytes were cut; the ending and the rewritten events are whole events of
//! JSON.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use serde_json::Value;

use crate::providers::continued::{length_ending, Data, Rewrite, Sent};
use crate::providers::Wire;

/// An event with an index or a count at the ends of their ranges.
fn extreme(wire: Wire) -> impl Strategy<Value = Vec<String>> {
    let n = prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(-1i64), any::<i64>()];
    let u = prop_oneof![Just(u64::MAX), any::<u64>()];
    (n, u).prop_map(move |(i, t)| match wire {
        Wire::Anthropic => vec![
            "event: content_block_delta".to_owned(),
            format!(r#"data: {{"type":"content_block_delta","index":{i},"delta":{{"type":"text_delta","text":"x"}},"usage":{{"output_tokens":{t}}}}}"#),
        ],
        Wire::OpenAi => vec![format!(
            r#"data: {{"id":"c","choices":[{{"index":{i},"delta":{{"content":"x"}}}}],"usage":{{"completion_tokens":{t}}}}}"#
        )],
    })
}

fn stream(wire: Wire) -> impl Strategy<Value = Vec<u8>> {
    let own = match wire {
        Wire::OpenAi => super::sse::chat_event().boxed(),
        Wire::Anthropic => super::sse::anthropic_event().boxed(),
    };
    let event = prop_oneof![6 => own, 1 => extreme(wire)];
    (prop::collection::vec(event, 0..12), prop::bool::ANY).prop_map(|(events, cut)| {
        let mut out = String::new();
        for lines in events {
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
            out.push('\n');
        }
        if cut {
            out.pop();
        }
        out.into_bytes()
    })
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![Just(Wire::OpenAi), Just(Wire::Anthropic)]
}

/// Whole events, each `data:` JSON or `[DONE]`.
fn whole_events(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(text.is_empty() || text.ends_with("\n\n"), "{:?}", text);
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data: ") {
            prop_assert!(
                data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(),
                "{:?}",
                line
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn what_was_sent_reads_the_same_however_cut(
        (wire, sent, next) in wire().prop_flat_map(|w| (Just(w), stream(w), stream(w))),
        cuts in super::cuts(),
        before in prop_oneof![Just(0u64), any::<u64>()],
    ) {
        let pieces: Vec<Bytes> = super::split(&sent, &cuts)
            .into_iter()
            .map(Bytes::copy_from_slice)
            .collect();
        let read = Sent::parse(&pieces, wire);
        prop_assert_eq!(&read, &Sent::parse(&[Bytes::copy_from_slice(&sent)], wire));
        let ending = length_ending(&read, b"");
        whole_events(ending.strip_prefix(b"\n").unwrap_or(&ending))?;
        // A continuation stream rewritten to follow it.
        let mut rewrite = Rewrite::new(&read, before);
        let mut out = BytesMut::new();
        for line in next.split(|b| *b == b'\n') {
            let Some(payload) = line.strip_prefix(b"data: ") else { continue };
            if let Data::Event(mut v) = rewrite.data(payload) {
                rewrite.parts(&mut v);
                rewrite.emit(&mut out, &v);
            }
        }
        whole_events(&out)?;
    }
}
