use super::*;

#[test]
fn usage_is_read_only_with_a_charge_to_settle() {
    let mut s = Scanner::new(Protocol::Chat);
    s.feed(bytes::Bytes::from_static(
        b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":30}}\n\n",
    ));
    assert_eq!((s.usage, s.events), (Some(30), 2));
    // Without a charge to settle, no search.
    let mut s = Scanner::new(Protocol::Chat).usage(false);
    s.feed(bytes::Bytes::from_static(
        b"data: {\"choices\":[],\"usage\":{\"total_tokens\":30}}\n\n",
    ));
    assert_eq!((s.usage, s.events), (None, 1));
}

pub(super) fn feed_all(s: &mut Scanner, parts: &[&str]) -> (String, Option<String>) {
    let mut out = String::new();
    for p in parts {
        let f = s.feed(Bytes::copy_from_slice(p.as_bytes()));
        out.push_str(std::str::from_utf8(&f.forward).unwrap_or("<utf8>"));
        if f.bad.is_some() {
            return (out, f.bad);
        }
    }
    (out, None)
}

const ROLE: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const TEXT: &str =
    "data: {\"choices\":[{\"delta\":{\"content\":\" hi\"},\"finish_reason\":null}]}\n\n";
const FINISH: &str = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

#[test]
fn role_chunk_is_not_content_but_text_is() {
    let mut s = Scanner::new(Protocol::Chat);
    feed_all(&mut s, &[ROLE]);
    assert!(!s.committable());
    feed_all(&mut s, &[TEXT]);
    assert!(s.committable());
    assert!(!s.finished);
    feed_all(&mut s, &[FINISH, "data: [DONE]\n\n"]);
    assert!(s.finished && s.done);
    assert_eq!(s.events, 3);
}

#[test]
fn reasoning_tokens_start_the_answer() {
    let mut s = Scanner::new(Protocol::Chat);
    feed_all(&mut s, &[ROLE]);
    assert!(!s.committable());
    feed_all(&mut s, &["data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Let me think\"},\"finish_reason\":null}]}\n\n"]);
    assert!(s.committable());
    let mut s = Scanner::new(Protocol::Chat);
    feed_all(
        &mut s,
        &["data: {\"choices\":[{\"delta\":{\"reasoning\":\"Hmm\"}}]}\n\n"],
    );
    assert!(s.committable());
}

#[test]
fn split_lines_are_held_until_complete() {
    let mut s = Scanner::new(Protocol::Chat);
    let (a, b) = TEXT.split_at(20);
    let f = s.feed(Bytes::copy_from_slice(a.as_bytes()));
    assert!(f.forward.is_empty());
    let f2 = s.feed(Bytes::copy_from_slice(b.as_bytes()));
    assert_eq!(&f2.forward[..], TEXT.as_bytes());
    assert!(s.content);
}

#[test]
fn malformed_chunk_is_never_forwarded() {
    let mut s = Scanner::new(Protocol::Chat);
    let (out, bad) = feed_all(&mut s, &[&format!("{TEXT}data: {{\"broken\n\n{TEXT}")]);
    assert_eq!(out, TEXT);
    assert!(bad.is_some());
}

#[test]
fn responses_protocol_ends_on_completed_event() {
    let mut s = Scanner::new(Protocol::Responses);
    feed_all(&mut s, &[
        "event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
    ]);
    assert!(s.content && !s.done);
    feed_all(
        &mut s,
        &["event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n"],
    );
    assert!(s.done);
}

#[test]
fn crlf_and_spaces_are_tolerated() {
    let mut s = Scanner::new(Protocol::Chat);
    feed_all(
        &mut s,
        &[
            "data:{\"choices\":[{\"delta\":{\"content\": \"x\"}}]}\r\n\r\n",
            "data: [DONE]\r\n\r\n",
        ],
    );
    assert!(s.content && s.done);
}

/// Frames arrive split anywhere (TCP and proxies decide); whatever the
/// split, the forwarded bytes and what the scanner learns must be those
/// of the stream read whole.
#[test]
fn any_split_forwards_the_same_bytes_and_learns_the_same() {
    let stream = format!(
        "{ROLE}: keep-alive\n\n{TEXT}data:{{\"choices\":[{{\"delta\":{{\"tool_calls\":[{{}}]}}}}]}}\r\n\r\n{TEXT}{FINISH}data: [DONE]\n\n"
    );
    let bytes = stream.as_bytes();
    let mut whole = Scanner::new(Protocol::Chat);
    let expected = whole.feed(Bytes::copy_from_slice(bytes));
    assert!(expected.bad.is_none());
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2000 {
        let mut s = Scanner::new(Protocol::Chat);
        let mut out = Vec::new();
        let mut at = 0;
        let mut content_seen_at = None;
        while at < bytes.len() {
            let end = (at + rng.usize(1..=40)).min(bytes.len());
            let f = s.feed(Bytes::copy_from_slice(&bytes[at..end]));
            assert!(f.bad.is_none(), "split at {at}..{end}");
            out.extend_from_slice(&f.forward);
            if s.content && content_seen_at.is_none() {
                content_seen_at = Some(out.len());
            }
            at = end;
        }
        assert_eq!(out, &expected.forward[..]);
        assert_eq!(
            (s.content, s.finished, s.done),
            (whole.content, whole.finished, whole.done)
        );
        // Content is never reported before the line that carries it was released.
        assert!(content_seen_at.is_some_and(|n| n >= ROLE.len() + 14 + TEXT.len() - 1));
    }
}

fn choice(index: u32, delta: &str, finish: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":{index},\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n")
}

/// With `n = 2`, the first choice's `finish_reason` does not finish the
/// stream; the second's does. A tool call's own `index` inside a delta
/// does not count as a choice.
#[test]
fn a_stream_of_several_choices_finishes_when_all_do() {
    let mut s = Scanner::new(Protocol::Chat).choices(2);
    feed_all(
        &mut s,
        &[
            &choice(0, r#"{"content":"a"}"#, "null"),
            &choice(
                1,
                r#"{"tool_calls":[{"index":1,"function":{"name":"f"}}]}"#,
                "null",
            ),
            &choice(0, "{}", r#""stop""#),
        ],
    );
    assert!(s.content && !s.finished);
    // The same choice finishing twice is still one choice.
    feed_all(&mut s, &[&choice(0, "{}", r#""stop""#)]);
    assert!(!s.finished);
    feed_all(&mut s, &[&choice(1, "{}", r#""tool_calls""#)]);
    assert!(s.finished);

    // Both finishes in one chunk, in another key order.
    let mut s = Scanner::new(Protocol::Chat).choices(2);
    feed_all(&mut s, &[&choice(0, r#"{"content":"a"}"#, "null")]);
    feed_all(&mut s, &["data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":1,\"delta\":{}},{\"delta\":{},\"finish_reason\":\"length\",\"index\":0}]}\n\n"]);
    assert!(s.finished);

    // One choice (the default): any finish ends the answer, as before.
    let mut s = Scanner::new(Protocol::Chat);
    feed_all(&mut s, &[&choice(0, r#"{"content":"a"}"#, r#""stop""#)]);
    assert!(s.finished);
    // An index out of range or an empty reason finishes nothing.
    let mut s = Scanner::new(Protocol::Chat).choices(2);
    feed_all(
        &mut s,
        &[
            &choice(0, r#"{"content":"a"}"#, r#""""#),
            &choice(200, "{}", r#""stop""#),
            &choice(1, "{}", r#""stop""#),
        ],
    );
    assert!(!s.finished);
}

/// A 4 MiB line (a streamed base64 image) in 4 KiB frames: every byte
/// is scanned for a line end once and copied once, not once per frame.
#[test]
fn a_long_line_in_small_frames_costs_linear_work() {
    let payload = "A".repeat(4 << 20);
    let line = format!("data: {{\"b64_json\":\"{payload}\"}}\n\n");
    let bytes = Bytes::from(line);
    let mut s = Scanner::new(Protocol::Generic);
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

/// Bytes of a line that has not ended are activity (a long line must not
/// look like a stall); a comment, whole or partial, is not.
#[test]
fn partial_lines_are_activity_but_comments_are_not() {
    let mut s = Scanner::new(Protocol::Chat);
    assert!(
        s.feed(Bytes::from_static(b"data: {\"choices\":[{\"delta\":"))
            .activity
    );
    assert!(
        s.feed(Bytes::from_static(b"{\"content\":\"xxxxxxxx"))
            .activity
    );
    let f = s.feed(Bytes::from_static(b"\"}}]}\n\n: pi"));
    assert!(f.activity && s.content);
    assert!(!s.feed(Bytes::from_static(b"ng\n\n")).activity);
    assert!(!s.feed(Bytes::from_static(b": keep")).activity);
    assert!(!s.feed(Bytes::from_static(b"-alive")).activity);
    assert!(!s.feed(Bytes::from_static(b"\n\n")).activity);
    assert!(!s.feed(Bytes::from_static(b"\n")).activity);
    assert!(s.feed(Bytes::from_static(b"\ndata: {\"choices\"")).activity);
}

#[test]
fn structural_json_check() {
    for ok in [r#"{"a":"}{\"x"}"#, "[1,{\"b\":[]}]", " {} "] {
        assert!(looks_like_json(ok.as_bytes()), "{ok}");
    }
    for bad in [r#"{"broken"#, "{\"a\":1", "x", "{\"a\":[1,2"] {
        assert!(!looks_like_json(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn upstream_error_payload_is_flagged() {
    let mut s = Scanner::new(Protocol::Chat);
    feed_all(
        &mut s,
        &["data: {\"error\":{\"message\":\"overloaded\"}}\n\n"],
    );
    assert!(s.upstream_error && !s.committable());
}

/// Chat is released line by line, but an `event:` line waits for the line
/// after it: a client never gets an event name without its data.
#[test]
fn a_chat_event_line_waits_for_its_data_line() {
    let mut s = Scanner::new(Protocol::Chat);
    let f = s.feed(Bytes::from(format!("{TEXT}event: error\n")));
    assert_eq!(&f.forward[..], TEXT.as_bytes());
    assert!(s.upstream_error);
    let f = s.feed(Bytes::from_static(
        b"data: {\"error\":{\"message\":\"x\"}}\n",
    ));
    assert_eq!(
        &f.forward[..],
        b"event: error\ndata: {\"error\":{\"message\":\"x\"}}\n"
    );
    // The usual chunk, split inside its data line, still goes out as soon
    // as the line is whole (no copy when a frame ends on a line end).
    let f = s.feed(Bytes::from_static(b"\ndata: {\"choices\":[{\"delta\":"));
    assert_eq!(&f.forward[..], b"\n");
    let f = s.feed(Bytes::from_static(b"{\"content\":\"x\"}}]}\n"));
    assert!(f.forward.ends_with(b"}]}\n") && s.content);
}

/// The Responses API's events are released whole, and its terminal event
/// ends the stream only once all of it can go out.
#[test]
fn a_responses_event_is_released_whole() {
    let mut s = Scanner::new(Protocol::Responses);
    let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n";
    let f = s.feed(Bytes::from(format!("{delta}event: response.completed\n")));
    assert_eq!(&f.forward[..], delta.as_bytes());
    assert!(s.content && !s.done);
    let f = s.feed(Bytes::from_static(
        b"data: {\"type\":\"response.completed\",\"usage\":{\"total_tokens\":7}}\n",
    ));
    assert!(f.forward.is_empty() && !s.done);
    let f = s.feed(Bytes::from_static(b"\n"));
    assert!(s.done && s.usage == Some(7));
    assert_eq!(
        &f.forward[..],
        b"event: response.completed\ndata: {\"type\":\"response.completed\",\"usage\":{\"total_tokens\":7}}\n\n"
    );
    // Content counts when its event is released, not before.
    let mut s = Scanner::new(Protocol::Responses);
    s.feed(Bytes::from_static(b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n"));
    assert!(!s.committable());
    assert_eq!(
        &s.feed(Bytes::from_static(b"\n")).forward[..],
        &delta.as_bytes()[..delta.len()]
    );
    assert!(s.committable());
}

mod anthropic;

/// Found by the fuzz tests (`fuzz::sse`): a line longer than the bound was
/// refused when it came in pieces but forwarded when one frame brought it
/// whole. The verdict is now the same however the frames are cut.
#[test]
fn a_line_longer_than_the_bound_is_refused_however_it_arrives() {
    let line = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "x".repeat(200)
    );
    for protocol in [Protocol::Chat, Protocol::Anthropic] {
        for cut in [0, 60, line.len() - 1] {
            let mut s = Scanner::new(protocol).max_held(100);
            let (out, bad) = feed_all(&mut s, &[&line[..cut], &line[cut..]]);
            assert_eq!(out, "", "{protocol:?}, cut at {cut}");
            assert_eq!(bad.as_deref(), Some(too_long().as_str()));
        }
        // A line within the bound passes, whole or in pieces.
        let mut s = Scanner::new(protocol).max_held(line.len() + 1);
        assert_eq!(feed_all(&mut s, &[&line]), (line.clone(), None));
    }
}
