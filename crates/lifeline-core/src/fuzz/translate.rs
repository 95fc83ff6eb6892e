//! Translation between OpenAI's and Anthropic's wires ([`crate::translate`]).
//!
//! Inputs: arbitrary bytes, and the fixtures under
//! `src/translate/fixtures/` (requests, answers, errors, streams written
//! from each API's documentation) with random mutations (a value replaced
//! by one of any type, a key removed or added, events dropped, doubled,
//! reordered or mutated, keep-alives and comments added, CRLF line ends).
//! Properties:
//!
//! - never a panic;
//! - a translated request or answer is a JSON object (a request for the
//!   target model); a translated error is the target's error shape;
//! - a stream transcoded whole gives the same bytes (or the same error) as
//!   the same stream fed in pieces cut at arbitrary points, and every
//!   event it writes is whole, with JSON (or `[DONE]`) as its data.

use std::path::PathBuf;
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::request::{json, text};
use crate::translate::stream::{StreamOptions, Transcoder};
use crate::translate::{error, request, response, Wire};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/translate/fixtures")
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The `key` body of every fixture in `dir` (objects, or lists of them).
fn bodies(dir: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(fixtures_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let items = match read_json(&file) {
            Value::Array(items) => items,
            one => vec![one],
        };
        out.extend(
            items
                .into_iter()
                .filter_map(|mut i| i.get_mut(key).map(Value::take)),
        );
    }
    assert!(!out.is_empty(), "no `{key}` in fixtures/{dir}");
    out
}

static OPENAI_REQUESTS: LazyLock<Vec<Value>> = LazyLock::new(|| bodies("request", "openai"));
static ANTHROPIC_REQUESTS: LazyLock<Vec<Value>> = LazyLock::new(|| bodies("request", "anthropic"));
static OPENAI_ANSWERS: LazyLock<Vec<Value>> = LazyLock::new(|| bodies("response", "openai"));
static ANTHROPIC_ANSWERS: LazyLock<Vec<Value>> = LazyLock::new(|| bodies("response", "anthropic"));
static ERRORS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let mut all = bodies("error", "body");
    all.extend(bodies("error", "expected"));
    all
});

/// The events (blank-line separated) of the stream fixtures of `wire`.
static STREAMS: LazyLock<[Vec<Vec<String>>; 2]> = LazyLock::new(|| {
    let read = |prefix: &str| -> Vec<Vec<String>> {
        ["text", "tools"]
            .iter()
            .map(|kind| {
                let file = fixtures_dir().join(format!("stream_{prefix}_{kind}.txt"));
                std::fs::read_to_string(file)
                    .unwrap()
                    .split("\n\n")
                    .filter(|e| !e.trim().is_empty())
                    .map(|e| e.trim_matches('\n').to_owned())
                    .collect()
            })
            .collect()
    };
    [read("openai"), read("anthropic")]
});

/// Keys both wires use, for mutations that add one.
const KEYS: [&str; 24] = [
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "id",
    "name",
    "input",
    "arguments",
    "function",
    "image_url",
    "source",
    "stop",
    "stream",
    "n",
    "max_tokens",
    "tools",
    "tool_choice",
    "system",
    "temperature",
    "usage",
    "choices",
    "index",
    "delta",
];

/// One change to a JSON value, at its `at`-th node (in pre-order).
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Add(usize, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        4 => json(),
        1 => any::<u64>().prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
    ];
    prop_oneof![
        3 => (any::<usize>(), big).prop_map(|(at, v)| Mutation::Replace(at, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        2 => (any::<usize>(), prop::sample::select(KEYS.to_vec()), json())
            .prop_map(|(at, k, v)| Mutation::Add(at, k.to_owned(), v)),
    ]
}

fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Object(o) => o.values().map(nodes).sum(),
        _ => 0,
    }
}

/// The `n`-th node of `v`, in pre-order.
fn nth<'a>(v: &'a mut Value, n: &mut usize) -> Option<&'a mut Value> {
    if *n == 0 {
        return Some(v);
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|c| nth(c, n)),
        Value::Object(o) => o.values_mut().find_map(|c| nth(c, n)),
        _ => None,
    }
}

/// Marks a node to remove.
const GONE: &str = "\u{0}gone\u{0}";

/// Drops the entries marked [`GONE`].
fn sweep(v: &mut Value) {
    match v {
        Value::Array(a) => {
            a.retain(|c| c.as_str() != Some(GONE));
            a.iter_mut().for_each(sweep);
        }
        Value::Object(o) => {
            o.retain(|_, c| c.as_str() != Some(GONE));
            o.values_mut().for_each(sweep);
        }
        _ => {}
    }
}

/// `v` with `mutations` applied.
fn mutate(mut v: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let count = nodes(&v);
        let at = match m {
            Mutation::Replace(at, _) | Mutation::Remove(at) | Mutation::Add(at, _, _) => {
                *at % count
            }
        };
        let Some(node) = nth(&mut v, &mut { at }) else {
            continue;
        };
        match m {
            Mutation::Replace(_, new) => *node = new.clone(),
            Mutation::Remove(_) => *node = Value::from(GONE),
            Mutation::Add(_, k, new) => {
                if let Value::Object(o) = node {
                    o.insert(k.clone(), new.clone());
                }
            }
        }
        sweep(&mut v);
        if v.as_str() == Some(GONE) {
            v = Value::Null;
        }
    }
    v
}

/// A fixture of `corpus`, mutated (or not).
fn mutated(corpus: &'static LazyLock<Vec<Value>>) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<usize>(),
        prop::collection::vec(mutation(), 0..4),
        any::<bool>(),
    )
        .prop_map(move |(i, m, pretty)| {
            let v = mutate(corpus[i % corpus.len()].clone(), &m);
            if pretty {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            }
        })
}

/// Arbitrary bytes, or a mutated fixture.
fn body(corpus: &'static LazyLock<Vec<Value>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..128),
        6 => mutated(corpus),
    ]
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>, TestCaseError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(TestCaseError::fail(format!("not an object: {other}"))),
        Err(e) => Err(TestCaseError::fail(format!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        ))),
    }
}

/// Target models and versions: old, newer, and unknown names.
fn target() -> impl Strategy<Value = (&'static str, &'static str, bool)> {
    (
        prop::sample::select(vec![
            "claude-3-5-sonnet-20241022",
            "claude-sonnet-4-5-20250929",
            "claude-opus-4-7",
            "gpt-4o",
            "",
        ]),
        prop::sample::select(vec!["2023-06-01", "2026-10-21", "x"]),
        any::<bool>(),
    )
}

/// One event of a stream fixture, as it goes on the wire.
#[derive(Debug, Clone)]
enum Event {
    /// The `i`-th event of the stream, its data mutated.
    Fixture(usize, Vec<Mutation>),
    Ping,
    Comment,
    Garbage(String),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        12 => (any::<usize>(), prop::collection::vec(mutation(), 0..2))
            .prop_map(|(i, m)| Event::Fixture(i, m)),
        8 => any::<usize>().prop_map(|i| Event::Fixture(i, Vec::new())),
        1 => Just(Event::Ping),
        1 => Just(Event::Comment),
        1 => text().prop_map(Event::Garbage),
    ]
}

/// The bytes of a stream of `wire` built from fixture `which`'s events.
fn stream_bytes(wire: Wire, which: usize, events: &[Event], crlf: bool, in_order: bool) -> Vec<u8> {
    let fixtures = &STREAMS[usize::from(wire == Wire::Anthropic)];
    let fixture = &fixtures[which % fixtures.len()];
    let mut out = String::new();
    for (n, e) in events.iter().enumerate() {
        let event = match e {
            Event::Fixture(i, m) => {
                // In order: the fixture's events one after another, some
                // mutated (a stream that reaches its end).
                let i = if in_order { n } else { *i };
                let Some(raw) = fixture.get(i % fixture.len()) else {
                    continue;
                };
                if in_order && n >= fixture.len() {
                    continue;
                }
                if m.is_empty() {
                    raw.clone()
                } else {
                    raw.lines()
                        .map(|line| match line.strip_prefix("data: ") {
                            Some(data) => match serde_json::from_str::<Value>(data) {
                                Ok(v) => format!("data: {}", mutate(v, m)),
                                Err(_) => line.to_owned(),
                            },
                            None => line.to_owned(),
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            }
            Event::Ping if wire == Wire::Anthropic => {
                "event: ping\ndata: {\"type\": \"ping\"}".to_owned()
            }
            Event::Ping | Event::Comment => ": keep-alive".to_owned(),
            Event::Garbage(g) => format!("data: {g}"),
        };
        out.push_str(&event);
        out.push_str("\n\n");
    }
    if crlf {
        out = out.replace('\n', "\r\n");
    }
    out.into_bytes()
}

/// Everything a transcoder writes for `pieces` then `finish`, or the first
/// error.
fn transcode(from: Wire, opts: StreamOptions, pieces: &[&[u8]]) -> Result<Vec<u8>, String> {
    let to = if from == Wire::OpenAi {
        Wire::Anthropic
    } else {
        Wire::OpenAi
    };
    let mut t = Transcoder::new(from, to, opts).created(1_700_000_000);
    let mut out = Vec::new();
    for p in pieces {
        let bytes = t.feed(p)?;
        check_events(&bytes).map_err(|e| format!("BAD OUTPUT: {e}"))?;
        out.extend_from_slice(&bytes);
    }
    let end = t.finish();
    check_events(&end).map_err(|e| format!("BAD OUTPUT: {e}"))?;
    out.extend_from_slice(&end);
    Ok(out)
}

/// Whole events, each `data:` JSON or `[DONE]`.
fn check_events(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    if !text.ends_with("\n\n") {
        return Err(format!("not whole events: {text:?}"));
    }
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data: ") {
            if data != "[DONE]" {
                serde_json::from_str::<Value>(data).map_err(|e| format!("{e}: {data}"))?;
            }
        } else if !(line.is_empty() || line.starts_with("event: ")) {
            return Err(format!("not an SSE line: {line:?}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(super::cases(512))]

    #[test]
    fn openai_requests_to_anthropic(body in body(&OPENAI_REQUESTS), (model, version, prefill) in target(), max in 1u32..100_000) {
        let opts = request::ToAnthropic { model, default_max_tokens: max, version, prefill };
        if let Ok(out) = request::openai_to_anthropic(&body, &opts) {
            let o = object(&out)?;
            prop_assert_eq!(o.get("model"), Some(&Value::from(model)));
            prop_assert!(o.get("messages").is_some_and(Value::is_array));
            prop_assert!(o.get("max_tokens").is_some_and(|m| m.as_u64().is_some_and(|m| m > 0)), "{:?}", o.get("max_tokens"));
        }
    }

    #[test]
    fn anthropic_requests_to_openai(body in body(&ANTHROPIC_REQUESTS), (model, version, prefill) in target()) {
        let opts = request::ToOpenAi { model, prefill };
        if let Ok(out) = request::anthropic_to_openai(&body, &opts) {
            let o = object(&out)?;
            prop_assert_eq!(o.get("model"), Some(&Value::from(model)));
            prop_assert!(o.get("messages").is_some_and(Value::is_array));
            if o.get("stream") == Some(&Value::Bool(true)) {
                prop_assert_eq!(o.get("stream_options").and_then(|s| s.get("include_usage")), Some(&Value::Bool(true)));
            }
        }
        let rule = request::sampling_rule(model, version);
        if let Some(out) = request::anthropic_sampling_fixup(&body, rule) {
            object(&out)?;
        }
    }

    #[test]
    fn answers_both_ways(anthropic in body(&ANTHROPIC_ANSWERS), openai in body(&OPENAI_ANSWERS)) {
        if let Ok(out) = response::anthropic_to_openai(&anthropic) {
            object(&out)?;
        }
        if let Ok(out) = response::openai_to_anthropic(&openai) {
            object(&out)?;
        }
    }

    #[test]
    fn errors_both_ways(body in body(&ERRORS), status in prop_oneof![Just(400u16), Just(429), Just(529), any::<u16>()]) {
        let o = object(&error::to_openai(status, &body))?;
        prop_assert!(o.get("error").and_then(|e| e.get("message")).is_some_and(Value::is_string));
        prop_assert!(o.get("error").and_then(|e| e.get("type")).is_some_and(Value::is_string));
        let a = object(&error::to_anthropic(status, &body))?;
        prop_assert_eq!(a.get("type"), Some(&Value::from("error")));
        prop_assert!(a.get("error").and_then(|e| e.get("message")).is_some_and(Value::is_string));
        prop_assert!(a.get("error").and_then(|e| e.get("type")).is_some_and(Value::is_string));
    }

    #[test]
    fn streams_transcode_the_same_however_split(
        anthropic in any::<bool>(),
        which in any::<usize>(),
        events in prop::collection::vec(event(), 0..24),
        in_order in any::<bool>(),
        crlf in prop::bool::weighted(0.2),
        include_usage in any::<bool>(),
        cuts in super::cuts(),
    ) {
        let from = if anthropic { Wire::Anthropic } else { Wire::OpenAi };
        let bytes = stream_bytes(from, which, &events, crlf, in_order);
        let opts = StreamOptions { include_usage };
        let whole = transcode(from, opts, &[&bytes]);
        if let Err(e) = &whole {
            prop_assert!(!e.starts_with("BAD OUTPUT"), "{}", e);
        }
        let split = transcode(from, opts, &super::split(&bytes, &cuts));
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn arbitrary_bytes_transcode_without_panic(
        anthropic in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        cuts in super::cuts(),
    ) {
        let from = if anthropic { Wire::Anthropic } else { Wire::OpenAi };
        let opts = StreamOptions { include_usage: true };
        let whole = transcode(from, opts, &[&bytes]);
        let split = transcode(from, opts, &super::split(&bytes, &cuts));
        prop_assert_eq!(whole, split);
    }
}
