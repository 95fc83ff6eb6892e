//! Anthropic's grammar: what counts as content, finish, end, error,
//! keep-alive and usage, and whole-event release.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;

use super::super::tests::feed_all;
use super::super::{Protocol, Scanner};

fn ev(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

const A_START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":1}}}"#;

#[test]
fn anthropic_text_stream_commits_on_text_and_ends_on_message_stop() {
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(
        &mut s,
        &[
            &ev("message_start", A_START),
            &ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            &ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
            ),
        ],
    );
    // message_start, an empty text block, a ping and an empty delta are not content.
    assert!(!s.committable());
    feed_all(
        &mut s,
        &[&ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        )],
    );
    assert!(s.committable() && !s.finished);
    feed_all(
        &mut s,
        &[
            &ev(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            &ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":22}}"#,
            ),
        ],
    );
    assert!(s.finished && !s.done);
    assert_eq!(s.usage, Some(62));
    feed_all(&mut s, &[&ev("message_stop", r#"{"type":"message_stop"}"#)]);
    assert!(s.done && !s.upstream_error);
}

#[test]
fn anthropic_tool_use_and_json_deltas_are_content() {
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(&mut s, &[&ev("message_start", A_START)]);
    feed_all(
        &mut s,
        &[&ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        )],
    );
    assert!(s.committable());
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(
        &mut s,
        &[&ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        )],
    );
    assert!(s.committable());
    // A message_delta without a stop reason finishes nothing.
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(
        &mut s,
        &[&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":3}}"#,
        )],
    );
    assert!(!s.finished);
}

#[test]
fn anthropic_error_event_is_flagged_and_not_content() {
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(&mut s, &[&ev("message_start", A_START)]);
    feed_all(
        &mut s,
        &[&ev(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )],
    );
    assert!(s.upstream_error && !s.committable());
    // The data alone says it too (a server that writes no event names).
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(
        &mut s,
        &["data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n"],
    );
    assert!(s.upstream_error);
    // A malformed event is caught as on the OpenAI wire.
    let mut s = Scanner::new(Protocol::Anthropic);
    let (_, bad) = feed_all(
        &mut s,
        &["event: content_block_delta\ndata: {\"type\":\"content_bl\n\n"],
    );
    assert!(bad.is_some());
}

const DELTA: &str =
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#;
const DELTA_EVENT: &str = "event: content_block_delta\n";
const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
const PING: &str = "event: ping\ndata: {\"type\": \"ping\"}\n\n";

fn feed(s: &mut Scanner, part: &str) -> super::super::Feed {
    s.feed(Bytes::copy_from_slice(part.as_bytes()))
}

/// An upstream that dies inside an event must not leave the client an
/// `event:` line without its data: nothing of an event is released before
/// its blank line, however the frame is split.
#[test]
fn nothing_of_an_event_is_released_before_it_is_whole() {
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(&mut s, &[&ev("message_start", A_START)]);
    // A frame ending right after the event line.
    let f = feed(&mut s, DELTA_EVENT);
    assert!(f.forward.is_empty() && f.bad.is_none() && f.activity);
    // Then inside the data line.
    let data = format!("data: {DELTA}\n");
    let (a, b) = data.split_at(30);
    let f = feed(&mut s, a);
    assert!(f.forward.is_empty() && f.activity);
    // The data line ends; its event has not.
    let f = feed(&mut s, b);
    assert!(f.forward.is_empty() && f.activity);
    assert!(
        !s.committable(),
        "content counted before its event was released"
    );
    // The blank line releases the whole event, and the content with it.
    let f = feed(&mut s, "\n");
    assert_eq!(&f.forward[..], format!("{DELTA_EVENT}{data}\n").as_bytes());
    assert!(s.committable());

    // A frame with a whole event and half of the next releases the first.
    let mut s = Scanner::new(Protocol::Anthropic);
    let whole = ev("message_start", A_START);
    let f = feed(&mut s, &format!("{whole}{DELTA_EVENT}data: {{\"type\""));
    assert_eq!(&f.forward[..], whole.as_bytes());
    // A malformed data line: its event line never leaves either.
    let f = feed(&mut s, ":\"content_bl\n\n");
    assert!(f.bad.is_some() && f.forward.is_empty());
}

/// Whatever the split, only whole events are released, the bytes are those
/// of the stream read whole, and what is learnt is the same.
#[test]
fn any_split_releases_whole_events_only() {
    let stream = [
        ev("message_start", A_START),
        PING.to_string(),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        format!("{DELTA_EVENT}data: {DELTA}\r\n\r\n"),
        ": comment\n\n".to_string(),
        ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#,
        ),
        STOP.to_string(),
    ]
    .concat();
    let bytes = stream.as_bytes();
    let mut whole = Scanner::new(Protocol::Anthropic);
    let expected = whole.feed(Bytes::copy_from_slice(bytes));
    assert!(expected.bad.is_none() && whole.done);
    assert_eq!(&expected.forward[..], bytes);
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..2000 {
        let mut s = Scanner::new(Protocol::Anthropic);
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + rng.usize(1..=40)).min(bytes.len());
            let f = s.feed(Bytes::copy_from_slice(&bytes[at..end]));
            assert!(f.bad.is_none(), "split at {at}..{end}");
            out.extend_from_slice(&f.forward);
            let boundary = out.ends_with(b"\n\n") || out.ends_with(b"\n\r\n");
            assert!(out.is_empty() || boundary, "{out:?}");
            // The end is never known before the end went out.
            assert_eq!(s.done, out.len() == bytes.len());
            at = end;
        }
        assert_eq!(out, bytes);
        assert_eq!(
            (s.content, s.finished, s.done, s.events, s.usage),
            (
                whole.content,
                whole.finished,
                whole.done,
                whole.events,
                whole.usage
            )
        );
    }
}

/// `message_stop`'s event line does not end the stream, nor its data line
/// alone: the relay ends the stream once the whole event went out.
#[test]
fn message_stop_is_done_only_once_its_event_is_whole() {
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(&mut s, &[&ev("message_start", A_START)]);
    let f = feed(&mut s, "event: message_stop\n");
    assert!(!s.done && f.forward.is_empty());
    let f = feed(&mut s, "data: {\"type\":\"message_stop\"}\n");
    assert!(!s.done && f.forward.is_empty());
    let f = feed(&mut s, "\n");
    assert!(s.done);
    assert_eq!(&f.forward[..], STOP.as_bytes());
}

/// A `ping` event is a keep-alive: it proves nothing, whole or in pieces,
/// before content or after, and is not counted as an event.
#[test]
fn pings_are_not_activity() {
    let mut s = Scanner::new(Protocol::Anthropic);
    assert!(feed(&mut s, &ev("message_start", A_START)).activity);
    let f = feed(&mut s, PING);
    assert!(!f.activity, "a ping before content");
    assert_eq!(&f.forward[..], PING.as_bytes());
    feed_all(&mut s, &[&ev("content_block_delta", DELTA)]);
    assert!(s.committable());
    let events = s.events;
    // After content: a ping-only tail, whole, twice in a frame, in pieces.
    assert!(!feed(&mut s, PING).activity);
    assert!(!feed(&mut s, &format!("{PING}{PING}")).activity);
    for part in ["event: ping\n", "data: {\"ty", "pe\": \"ping\"}\n", "\n"] {
        let f = feed(&mut s, part);
        assert!(!f.activity, "{part:?}");
    }
    // A ping without its event line (data alone says it).
    assert!(!feed(&mut s, "data: {\"type\":\"ping\"}\n\n").activity);
    assert_eq!(s.events, events);
    // A real event after the pings is progress again.
    assert!(feed(&mut s, &ev("content_block_delta", DELTA)).activity);
    assert_eq!(s.events, events + 1);
}

/// The prompt's tokens include the cache's reads and writes (Anthropic's
/// `input_tokens` is only the uncached part), in a stream and in a whole
/// answer.
#[test]
fn usage_counts_cached_prompt_tokens() {
    let start = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}"#;
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(&mut s, &[&ev("message_start", start)]);
    assert_eq!(s.usage, Some(2106));
    feed_all(
        &mut s,
        &[&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":30}}"#,
        )],
    );
    assert_eq!(s.usage, Some(2135));
    // A message_delta that repeats every count (newer API versions).
    feed_all(
        &mut s,
        &[&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":31}}"#,
        )],
    );
    assert_eq!(s.usage, Some(2136));
    let answer = br#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":400,"output_tokens":5}}"#;
    assert_eq!(
        crate::providers::anthropic::stream::answer_tokens(answer),
        Some(420)
    );
}

/// Holding whole events keeps the splitter linear: a 4 MiB event in 4 KiB
/// frames is scanned once and copied once.
#[test]
fn a_long_event_in_small_frames_costs_linear_work() {
    let text = "A".repeat(4 << 20);
    let event = ev(
        "content_block_delta",
        &format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
        ),
    );
    let bytes = Bytes::from(format!("{}{event}", ev("message_start", A_START)));
    let mut s = Scanner::new(Protocol::Anthropic);
    let mut out = Vec::new();
    for chunk in bytes.chunks(4096) {
        let f = s.feed(bytes.slice_ref(chunk));
        assert!(f.bad.is_none());
        out.extend_from_slice(&f.forward);
    }
    assert_eq!(out, &bytes[..]);
    assert!(s.content);
    assert!(
        s.work <= 2 * bytes.len() + 64,
        "{} units of work for {} bytes",
        s.work,
        bytes.len()
    );
}

/// Found by the fuzz tests (`fuzz::sse`): token counts near `u64::MAX`
/// overflowed the usage sum (a panic in a debug build, a wrong charge in
/// release); it saturates, in a stream and in a whole answer.
#[test]
fn huge_token_counts_saturate() {
    let max = u64::MAX;
    let start = format!(
        r#"{{"type":"message_start","message":{{"id":"m","usage":{{"input_tokens":{max},"cache_read_input_tokens":{max},"cache_creation_input_tokens":{max},"output_tokens":{max}}}}}}}"#
    );
    let mut s = Scanner::new(Protocol::Anthropic);
    feed_all(&mut s, &[&ev("message_start", &start)]);
    assert_eq!(s.usage, Some(max));
    let answer = format!(r#"{{"usage":{{"input_tokens":{max},"output_tokens":{max}}}}}"#);
    assert_eq!(
        crate::providers::stream::answer_tokens(
            crate::providers::Wire::Anthropic,
            answer.as_bytes()
        ),
        Some(max)
    );
}
