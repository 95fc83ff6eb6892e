//! The relay's stream scanner ([`crate::relay::sse::Scanner`]) with each
//! grammar ([`crate::providers::stream`]).
//!
//! Inputs: arbitrary bytes, and event streams of each protocol built by a
//! generator (content, finishes of several choices, `[DONE]`, terminal
//! events, in-band errors, usage up to `u64::MAX`, keep-alives, comments,
//! `id:`/`retry:` fields, malformed chunks, long lines; `\n`, `\r\n` or a
//! lone `\r` at line ends; a stream cut anywhere), fed in pieces cut at
//! arbitrary points. Properties:
//!
//! - never a panic;
//! - the scanner never holds more than its bound (a small one here, so
//!   that it is reached), and says so with an error instead;
//! - what comes out is the same however the input is split: after each
//!   piece, the bytes released so far, the verdict (malformed, too long)
//!   and what the scanner learnt (content, finished, done, upstream error,
//!   events, usage) equal those of a scanner fed the same prefix in one
//!   piece, and a stream refused in pieces is refused whole.

use bytes::Bytes;
use proptest::prelude::*;

use crate::relay::sse::{Protocol, Scanner};

/// The bound the scanner is given here (its own is 32 MiB).
const HELD: usize = 600;

fn protocol() -> impl Strategy<Value = Protocol> {
    prop::sample::select(vec![
        Protocol::Chat,
        Protocol::Responses,
        Protocol::Anthropic,
        Protocol::Generic,
    ])
}

/// A short text, sometimes long enough to pass the bound.
fn words() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z ]{0,8}",
        1 => Just(String::new()),
        1 => (100usize..800).prop_map(|n| "x".repeat(n)),
    ]
}

/// A token count, up to the largest.
fn tokens() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..5000, Just(u64::MAX), any::<u64>()]
}

/// One event (its lines) of an OpenAI chat or generic stream.
pub(super) fn chat_event() -> impl Strategy<Value = Vec<String>> {
    let data = |d: String| vec![format!("data: {d}")];
    prop_oneof![
        6 => words().prop_map(move |t| data(format!(
            r#"{{"id":"c","choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null}}]}}"#
        ))),
        2 => (0u64..4, prop::sample::select(vec!["\"stop\"", "\"length\"", "null", "\"\""]))
            .prop_map(move |(i, r)| data(format!(
                r#"{{"id":"c","choices":[{{"index":{i},"delta":{{}},"finish_reason":{r}}}]}}"#
            ))),
        1 => (tokens(), tokens()).prop_map(move |(p, t)| data(format!(
            r#"{{"id":"c","choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":1,"total_tokens":{t}}}}}"#
        ))),
        1 => Just(data(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1"}]}}]}"#.into())),
        1 => Just(data(r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}"#.into())),
        1 => Just(data(r#"{"b64_json":"aGVsbG8="}"#.into())),
        1 => Just(data(r#"{"error":{"message":"boom","type":"server_error"}}"#.into())),
        2 => Just(data("[DONE]".into())),
        1 => Just(vec!["event: error".to_owned(), r#"data: {"error":{"message":"x"}}"#.to_owned()]),
    ]
}

/// One event of a Responses API stream.
fn responses_event() -> impl Strategy<Value = Vec<String>> {
    let ev = |name: &str, data: String| vec![format!("event: {name}"), format!("data: {data}")];
    prop_oneof![
        2 => Just(ev("response.created", r#"{"type":"response.created","response":{"id":"r"}}"#.into())),
        6 => words().prop_map(move |t| ev(
            "response.output_text.delta",
            format!(r#"{{"type":"response.output_text.delta","delta":"{t}"}}"#),
        )),
        2 => tokens().prop_map(move |t| ev(
            "response.completed",
            format!(r#"{{"type":"response.completed","response":{{"usage":{{"total_tokens":{t}}}}}}}"#),
        )),
        1 => Just(ev("response.incomplete", r#"{"type":"response.incomplete"}"#.into())),
        1 => Just(ev("response.failed", r#"{"type":"response.failed"}"#.into())),
        1 => Just(ev("error", r#"{"type":"error","message":"boom"}"#.into())),
    ]
}

/// One event of an Anthropic stream.
pub(super) fn anthropic_event() -> impl Strategy<Value = Vec<String>> {
    let ev = |name: &str, data: String| vec![format!("event: {name}"), format!("data: {data}")];
    prop_oneof![
        2 => (tokens(), tokens(), tokens()).prop_map(move |(i, r, c)| ev(
            "message_start",
            format!(r#"{{"type":"message_start","message":{{"id":"m","usage":{{"input_tokens":{i},"cache_read_input_tokens":{r},"cache_creation_input_tokens":{c},"output_tokens":1}}}}}}"#),
        )),
        2 => Just(ev("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.into())),
        1 => Just(ev("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#.into())),
        6 => words().prop_map(move |t| ev(
            "content_block_delta",
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{t}"}}}}"#),
        )),
        1 => words().prop_map(move |t| ev(
            "content_block_delta",
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"thinking_delta","thinking":"{t}"}}}}"#),
        )),
        1 => Just(ev("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#.into())),
        1 => Just(ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#.into())),
        2 => (prop::sample::select(vec!["\"end_turn\"", "null", "\"tool_use\""]), tokens()).prop_map(move |(r, o)| ev(
            "message_delta",
            format!(r#"{{"type":"message_delta","delta":{{"stop_reason":{r}}},"usage":{{"output_tokens":{o}}}}}"#),
        )),
        2 => Just(ev("message_stop", r#"{"type":"message_stop"}"#.into())),
        2 => Just(ev("ping", r#"{"type": "ping"}"#.into())),
        1 => Just(ev("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.into())),
    ]
}

/// What any stream may carry besides its events.
fn noise() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        Just(vec![": ping".to_owned()]),
        Just(vec![": keep-alive".to_owned()]),
        Just(vec!["id: 7".to_owned(), "retry: 100".to_owned()]),
        Just(vec!["data: {\"trunc".to_owned()]),
        Just(vec!["data: not json".to_owned()]),
        Just(vec!["data:".to_owned()]),
        Just(vec![String::new()]),
        "[ -~]{0,12}".prop_map(|l| vec![l]),
    ]
}

fn event(protocol: Protocol) -> BoxedStrategy<Vec<String>> {
    let own = match protocol {
        Protocol::Chat | Protocol::Generic => chat_event().boxed(),
        Protocol::Responses => responses_event().boxed(),
        Protocol::Anthropic => anthropic_event().boxed(),
    };
    prop_oneof![10 => own, 1 => noise()].boxed()
}

/// A line end: mostly `\n`, at times `\r\n`, rarely a lone `\r`.
fn line_end() -> impl Strategy<Value = &'static str> {
    prop_oneof![12 => Just("\n"), 3 => Just("\r\n"), 1 => Just("\r")]
}

/// A stream of `protocol`'s events, each ended by a blank line (at times
/// not), cut short at `keep` (a fraction) at times.
fn stream(protocol: Protocol) -> impl Strategy<Value = Vec<u8>> {
    let one = (event(protocol), line_end(), prop::bool::weighted(0.9));
    (
        prop::collection::vec(one, 0..16),
        prop::option::weighted(0.2, any::<u16>()),
    )
        .prop_map(|(events, keep)| {
            let mut out = String::new();
            for (lines, end, blank) in events {
                for line in lines {
                    out.push_str(&line);
                    out.push_str(end);
                }
                if blank {
                    out.push_str(end);
                }
            }
            let mut bytes = out.into_bytes();
            if let Some(keep) = keep {
                bytes.truncate(bytes.len() * usize::from(keep) / 65_536);
            }
            bytes
        })
}

/// Everything a scanner said so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Outcome {
    forwarded: Vec<u8>,
    bad: Option<String>,
    content: bool,
    finished: bool,
    done: bool,
    upstream_error: bool,
    committable: bool,
    events: u64,
    usage: Option<u64>,
}

fn scanner(protocol: Protocol, choices: u32, usage: bool) -> Scanner {
    Scanner::new(protocol)
        .choices(choices)
        .usage(usage)
        .max_held(HELD)
}

fn outcome(s: &Scanner, forwarded: Vec<u8>, bad: Option<String>) -> Outcome {
    Outcome {
        forwarded,
        bad,
        content: s.content,
        finished: s.finished,
        done: s.done,
        upstream_error: s.upstream_error,
        committable: s.committable(),
        events: s.events,
        usage: s.usage,
    }
}

/// `bytes` fed whole.
fn whole(protocol: Protocol, choices: u32, usage: bool, bytes: &[u8]) -> Outcome {
    let mut s = scanner(protocol, choices, usage);
    let feed = s.feed(Bytes::copy_from_slice(bytes));
    outcome(&s, feed.forward.to_vec(), feed.bad)
}

/// Feeds `pieces` one by one, checking the bound and, after each, that the
/// outcome is the one of the same prefix fed whole; stops at a verdict.
fn check_split(
    protocol: Protocol,
    choices: u32,
    usage: bool,
    bytes: &[u8],
    cuts: &[u16],
) -> Result<(), TestCaseError> {
    let pieces = super::split(bytes, cuts);
    let mut s = scanner(protocol, choices, usage);
    let mut forwarded = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        fed += piece.len();
        let feed = s.feed(Bytes::copy_from_slice(piece));
        forwarded.extend_from_slice(&feed.forward);
        let now = outcome(&s, forwarded.clone(), feed.bad.clone());
        if feed.bad.is_none() {
            prop_assert!(s.held() <= HELD, "holds {} bytes", s.held());
        }
        prop_assert_eq!(&now, &whole(protocol, choices, usage, &bytes[..fed]));
        if feed.bad.is_some() {
            // The relay stops there; the stream is refused whole as well.
            let all = whole(protocol, choices, usage, bytes);
            prop_assert_eq!(&all.bad, &now.bad);
            prop_assert_eq!(&all.forwarded, &now.forwarded);
            return Ok(());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn generated_streams_scan_the_same_however_split(
        (protocol, bytes) in protocol().prop_flat_map(|p| (Just(p), stream(p))),
        choices in prop_oneof![4 => Just(1u32), 1 => 2u32..4],
        usage in any::<bool>(),
        cuts in super::cuts(),
    ) {
        check_split(protocol, choices, usage, &bytes, &cuts)?;
    }

    #[test]
    fn arbitrary_bytes_scan_the_same_however_split(
        protocol in protocol(),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        cuts in super::cuts(),
    ) {
        check_split(protocol, 1, true, &bytes, &cuts)?;
    }

    #[test]
    fn byte_by_byte_is_the_same_as_whole(
        (protocol, bytes) in protocol().prop_flat_map(|p| (Just(p), stream(p))),
    ) {
        let cuts: Vec<u16> = (1..bytes.len().min(400))
            .map(|i| u16::try_from(i * 65_536 / bytes.len() + 1).unwrap_or(u16::MAX))
            .collect();
        check_split(protocol, 1, true, &bytes, &cuts)?;
    }
}
