//! The clients: closed-loop workers sending a realistic mix, and every
//! answer checked as a careful client would check it.
//!
//! Each worker holds one key (critical, standard, standard, batch in turn)
//! and loops: a model of the config, then chat (half of them streamed;
//! one in six in Anthropic's Messages API on `/v1/messages`, the rest
//! OpenAI's Chat Completions) or, for a model whose deployments all speak
//! OpenAI's protocol, embeddings one time in five. Chat requests are `temperature: 0` with one of a few
//! prompts and `max_tokens` from a small set, so identical requests recur
//! (degraded mode can answer them) and the simulated provider's answer is
//! known exactly: words `w1 … wN` with `N = max_tokens`.
//!
//! An answer is a success only if it is whole: status 200 and, for chat,
//! exactly those N words, a `finish_reason` (`stop_reason`), and for a
//! stream `data: [DONE]` (`message_stop`) with no error event. Anything else under status 200 is a **truncated**
//! answer presented as a success, the one failure no scenario tolerates. A
//! stream that ends with an error event, or whose connection breaks, is an
//! honest failure: the client knows. Each request's outcome is kept
//! ([`Outcome`]) with its start and end, for the timeline and the
//! expectations.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::plan::{ClientKey, TrafficModel};

/// How one request ended, as its client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A whole, fresh answer.
    Ok,
    /// A whole answer from degraded mode (`x-lifeline-cache: stale`).
    Stale,
    /// 429.
    Http429,
    /// 5xx (an honest refusal: 502, 503, 504).
    Http5xx,
    /// Another non-200 status.
    HttpOther,
    /// No answer within the client's timeout.
    Timeout,
    /// The gateway could not be reached.
    Connect,
    /// A stream that ended with an error event (an honest failure).
    StreamError,
    /// The connection broke while the body was read (an honest failure).
    Broken,
    /// Status 200 but the answer is not whole: a stream without `[DONE]`,
    /// words missing, no `finish_reason`, an unreadable body.
    Truncated,
}

impl Kind {
    /// Whether the client got what it asked for.
    pub fn is_success(self) -> bool {
        matches!(self, Kind::Ok | Kind::Stale)
    }

    /// Its name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Stale => "stale",
            Kind::Http429 => "http_429",
            Kind::Http5xx => "http_5xx",
            Kind::HttpOther => "http_other",
            Kind::Timeout => "timeout",
            Kind::Connect => "connect",
            Kind::StreamError => "stream_error",
            Kind::Broken => "broken",
            Kind::Truncated => "truncated",
        }
    }
}

/// One request, as recorded.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Sent, ms since the scenario started.
    pub start_ms: u32,
    /// Finished, ms since the scenario started.
    pub end_ms: u32,
    /// The key's priority (`Priority::index`).
    pub priority: u8,
    /// How it ended.
    pub kind: Kind,
    /// Which traffic sent it.
    pub source: Source,
}

/// Which traffic a request belongs to: the steady clients every scenario
/// has, or the extra ones a gateway scenario adds during its window (a
/// surge's clients, an abusive key's flood).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// The steady clients.
    #[default]
    Steady,
    /// A surge's extra clients (the same keys and mix).
    Surge,
    /// The abusive key's flood.
    Flood,
}

/// What the workers record, shared with the runner.
#[derive(Default)]
pub struct Recorder {
    outcomes: Mutex<Vec<Outcome>>,
    /// Requests finished (for the progress line).
    pub total: AtomicU64,
    /// Of which successes.
    pub ok: AtomicU64,
    /// Worst-case example of each failure kind (for the report).
    examples: Mutex<std::collections::BTreeMap<Kind, String>>,
}

impl Recorder {
    /// Every outcome so far, in finishing order.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One example of each failure kind seen.
    pub fn examples(&self) -> std::collections::BTreeMap<Kind, String> {
        self.examples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, o: Outcome, detail: Option<String>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if o.kind.is_success() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(d) = detail {
            self.examples
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(o.kind)
                .or_insert(d);
        }
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(o);
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The running workers.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    workers: tokio::task::JoinSet<()>,
}

/// Where and how the workers send.
#[derive(Clone)]
pub struct Load {
    /// The gateway's data-plane address.
    pub addr: SocketAddr,
    /// Keys, assigned to workers in turn.
    pub keys: Vec<ClientKey>,
    /// Models to call.
    pub models: Vec<TrafficModel>,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Longest a client waits for a whole answer.
    pub client_timeout: Duration,
    /// The traffic's tag on its outcomes.
    pub source: Source,
    /// Least time between two requests of one worker (an open-loop pace);
    /// zero: each sends its next request as soon as the last ended.
    pub pace: Duration,
}

const PROMPTS: [&str; 4] = [
    "Summarize the plot of a short story about a lighthouse.",
    "Give three tips for writing clear error messages.",
    "Explain what a circuit breaker does in a distributed system.",
    "Describe a quiet morning in a small harbour town.",
];
const MAX_TOKENS: [u32; 3] = [8, 12, 16];

impl Traffic {
    /// Starts the workers; outcomes go to `rec`, times from `start`.
    pub fn start(load: Load, rec: Arc<Recorder>, start: Instant) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new()).build(http);
        let mut workers = tokio::task::JoinSet::new();
        for i in 0..load.concurrency.max(1) {
            let key = load.keys[i % load.keys.len().max(1)].clone();
            workers.spawn(worker(
                client.clone(),
                load.clone(),
                key,
                i as u64,
                rec.clone(),
                stop.clone(),
                start,
            ));
        }
        Traffic { stop, workers }
    }

    /// Stops the workers: each finishes (or abandons, after a second) its
    /// request in flight.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        self.workers.shutdown().await;
    }
}

/// One request to send.
struct Req {
    path: &'static str,
    body: Bytes,
    check: Check,
}

#[derive(Clone, Copy)]
enum Check {
    Chat { stream: bool, words: u32 },
    Messages { stream: bool, words: u32 },
    Embeddings,
}

fn next_request(load: &Load, rng: &mut fastrand::Rng) -> Req {
    let model = &load.models[rng.usize(..load.models.len().max(1))];
    if model.embeddings && rng.u8(..5) == 0 {
        let input = PROMPTS[rng.usize(..PROMPTS.len())];
        let body = serde_json::json!({ "model": model.name, "input": input });
        return Req {
            path: "/v1/embeddings",
            body: Bytes::from(body.to_string()),
            check: Check::Embeddings,
        };
    }
    let stream = rng.bool();
    let words = MAX_TOKENS[rng.usize(..MAX_TOKENS.len())];
    let prompt = PROMPTS[rng.usize(..PROMPTS.len())];
    let body = serde_json::json!({
        "model": model.name,
        "stream": stream,
        "temperature": 0,
        "max_tokens": words,
        "messages": [{ "role": "user", "content": prompt }],
    });
    let (path, check) = if rng.u8(..6) == 0 {
        ("/v1/messages", Check::Messages { stream, words })
    } else {
        ("/v1/chat/completions", Check::Chat { stream, words })
    };
    Req {
        path,
        body: Bytes::from(body.to_string()),
        check,
    }
}

async fn worker(
    client: HttpClient,
    load: Load,
    key: ClientKey,
    seed: u64,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    start: Instant,
) {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
    let auth = format!("Bearer {}", key.secret);
    let since = |t: Instant| {
        t.saturating_duration_since(start)
            .as_millis()
            .min(u128::from(u32::MAX)) as u32
    };
    while !stop.load(Ordering::Relaxed) {
        let req = next_request(&load, &mut rng);
        let t0 = Instant::now();
        let result =
            tokio::time::timeout(load.client_timeout, send(&client, load.addr, &auth, &req))
                .await
                .unwrap_or_else(|_| {
                    (
                        Kind::Timeout,
                        Some("no whole answer within the client timeout".into()),
                    )
                });
        let (kind, detail) = result;
        rec.record(
            Outcome {
                start_ms: since(t0),
                end_ms: since(Instant::now()),
                priority: key.priority.index() as u8,
                kind,
                source: load.source,
            },
            detail,
        );
        if !load.pace.is_zero() {
            tokio::time::sleep_until(t0 + load.pace).await;
        }
        if matches!(kind, Kind::Connect) {
            // Not a busy loop while the gateway is unreachable.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    auth: &str,
    req: &Req,
) -> (Kind, Option<String>) {
    let http_req = match http::Request::post(format!("http://{addr}{}", req.path))
        .header("content-type", "application/json")
        .header("authorization", auth)
        .body(Full::new(req.body.clone()))
    {
        Ok(r) => r,
        Err(e) => return (Kind::Connect, Some(e.to_string())),
    };
    let resp = match client.request(http_req).await {
        Ok(r) => r,
        Err(e) => return (Kind::Connect, Some(format!("{e}"))),
    };
    let status = resp.status();
    let stale = resp
        .headers()
        .get("x-lifeline-cache")
        .is_some_and(|v| v.as_bytes() == b"stale");
    let bytes = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let kind = if status.is_success() {
                Kind::Broken
            } else {
                kind_of_status(status)
            };
            return (kind, Some(format!("HTTP {status}, body broke: {e}")));
        }
    };
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&bytes).chars().take(160).collect();
        return (
            kind_of_status(status),
            Some(format!("HTTP {status}: {text}")),
        );
    }
    let verdict = match req.check {
        Check::Embeddings => check_embeddings(&bytes),
        Check::Chat {
            stream: false,
            words,
        } => check_chat(&bytes, words),
        Check::Chat {
            stream: true,
            words,
        } => check_stream(&bytes, words),
        Check::Messages {
            stream: false,
            words,
        } => check_message(&bytes, words),
        Check::Messages {
            stream: true,
            words,
        } => check_message_stream(&bytes, words),
    };
    match verdict {
        Ok(()) if stale => (Kind::Stale, None),
        Ok(()) => (Kind::Ok, None),
        Err((kind, why)) => (kind, Some(why)),
    }
}

fn kind_of_status(status: http::StatusCode) -> Kind {
    match status.as_u16() {
        429 => Kind::Http429,
        500..=599 => Kind::Http5xx,
        _ => Kind::HttpOther,
    }
}

fn check_embeddings(body: &[u8]) -> Result<(), (Kind, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        (
            Kind::Truncated,
            format!("embeddings: unreadable JSON under 200: {e}"),
        )
    })?;
    match v.pointer("/data/0/embedding").and_then(|e| e.as_array()) {
        Some(a) if !a.is_empty() => Ok(()),
        _ => Err((Kind::Truncated, "embeddings: no embedding under 200".into())),
    }
}

fn check_chat(body: &[u8], words: u32) -> Result<(), (Kind, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        (
            Kind::Truncated,
            format!("chat: unreadable JSON under 200: {e}"),
        )
    })?;
    let content = v
        .pointer("/choices/0/message/content")
        .and_then(|c| c.as_str())
        .unwrap_or_default();
    if v.pointer("/choices/0/finish_reason")
        .is_none_or(|f| f.is_null())
    {
        let head: String = String::from_utf8_lossy(body).chars().take(300).collect();
        return Err((
            Kind::Truncated,
            format!("chat: no finish_reason under 200: {head}"),
        ));
    }
    whole(content, words).map_err(|why| (Kind::Truncated, format!("chat: {why}")))
}

/// Reads an OpenAI chat stream: error events, content, finish, `[DONE]`.
fn check_stream(body: &[u8], words: u32) -> Result<(), (Kind, String)> {
    let text = String::from_utf8_lossy(body);
    let (mut content, mut finished, mut done, mut error) = (String::new(), false, false, false);
    for line in text.lines() {
        if line.starts_with("event: error") {
            error = true;
        }
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim_start();
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
            continue;
        };
        if v.get("error").is_some() {
            error = true;
        }
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(|c| c.as_str())
        {
            content.push_str(c);
        }
        if v.pointer("/choices/0/finish_reason")
            .is_some_and(|f| !f.is_null())
        {
            finished = true;
        }
    }
    if error {
        return Err((Kind::StreamError, "stream ended with an error event".into()));
    }
    if !done {
        return Err((
            Kind::Truncated,
            "stream ended without [DONE] under 200".into(),
        ));
    }
    if !finished {
        return Err((
            Kind::Truncated,
            "stream: [DONE] without a finish_reason".into(),
        ));
    }
    // A stream continued from another deployment after a break says so
    // in a trailing comment; the continuation asked for what was left of
    // `max_tokens`, which the simulated provider counts with the words it
    // was given, so its answer may end before word N: whole if its words
    // still run 1, 2, … without a gap or a repeat.
    let continued = text.contains(": lifeline continued=");
    whole(&content, words)
        .or_else(|why| match run_length(&content) {
            Some(n) if continued && n >= 1 && n <= words => Ok(()),
            _ => Err(why),
        })
        .map_err(|why| (Kind::Truncated, format!("stream: {why}: {content:?}")))
}

/// An Anthropic message: its text blocks, a `stop_reason`.
fn check_message(body: &[u8], words: u32) -> Result<(), (Kind, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        (
            Kind::Truncated,
            format!("message: unreadable JSON under 200: {e}"),
        )
    })?;
    let text: String = v
        .get("content")
        .and_then(|c| c.as_array())
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(|t| t.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if v.get("stop_reason").is_none_or(|r| r.is_null()) {
        let head: String = String::from_utf8_lossy(body).chars().take(300).collect();
        return Err((
            Kind::Truncated,
            format!("message: no stop_reason under 200: {head}"),
        ));
    }
    whole(&text, words).map_err(|why| (Kind::Truncated, format!("message: {why}")))
}

/// Reads an Anthropic message stream: `event: error`, text deltas, the
/// `message_delta` stop reason, `message_stop`.
fn check_message_stream(body: &[u8], words: u32) -> Result<(), (Kind, String)> {
    let text = String::from_utf8_lossy(body);
    let (mut content, mut finished, mut done, mut error) = (String::new(), false, false, false);
    for line in text.lines() {
        if line.starts_with("event: error") {
            error = true;
        }
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim_start()) else {
            continue;
        };
        match v.get("type").and_then(|t| t.as_str()) {
            Some("error") => error = true,
            Some("content_block_delta") => {
                if let Some(t) = v.pointer("/delta/text").and_then(|t| t.as_str()) {
                    content.push_str(t);
                }
            }
            Some("message_delta") => {
                finished |= v
                    .pointer("/delta/stop_reason")
                    .is_some_and(|r| !r.is_null());
            }
            Some("message_stop") => done = true,
            _ => {}
        }
    }
    if error {
        return Err((
            Kind::StreamError,
            "message stream ended with an error event".into(),
        ));
    }
    if !done || !finished {
        return Err((
            Kind::Truncated,
            "message stream ended without message_stop or a stop_reason under 200".into(),
        ));
    }
    let continued = text.contains(": lifeline continued=");
    whole(&content, words)
        .or_else(|why| match run_length(&content) {
            Some(n) if continued && n >= 1 && n <= words => Ok(()),
            _ => Err(why),
        })
        .map_err(|why| {
            (
                Kind::Truncated,
                format!("message stream: {why}: {content:?}"),
            )
        })
}

/// How many words `content` has if they run 1, 2, … without a gap.
fn run_length(content: &str) -> Option<u32> {
    let mut n = 0u32;
    for (i, word) in content.split_whitespace().enumerate() {
        let digits = word.trim_start_matches(|c: char| !c.is_ascii_digit());
        if digits.parse::<u32>().ok() != Some(i as u32 + 1) {
            return None;
        }
        n += 1;
    }
    Some(n)
}

/// The simulated provider's answer to `max_tokens = n`: `n` words ending in
/// 1, 2, … n (whatever their stem, which differs between providers).
pub fn whole(content: &str, n: u32) -> Result<(), String> {
    match run_length(content) {
        Some(count) if count == n => Ok(()),
        Some(count) => Err(format!("{count} of {n} words")),
        None => Err("its words do not run 1, 2, 3, …".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_answers_are_told_from_truncated_ones() {
        assert!(whole("mock-a1 mock-a2 mock-a3", 3).is_ok());
        assert!(whole("mock-a1 mock-a2", 3).is_err());
        assert!(whole("mock-a1 mock-b3 mock-b3", 3).is_err());
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"x1 x2\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        assert!(check_stream(stream, 2).is_ok());
        let cut =
            b"data: {\"choices\":[{\"delta\":{\"content\":\"x1 x2\"},\"finish_reason\":null}]}\n\n";
        assert_eq!(check_stream(cut, 2).map_err(|e| e.0), Err(Kind::Truncated));
        let continued = b"data: {\"choices\":[{\"delta\":{\"content\":\"x1 y2\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n: lifeline continued=1\n\n";
        assert!(check_stream(continued, 3).is_ok());
        let gap = b"data: {\"choices\":[{\"delta\":{\"content\":\"x1 y3\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n: lifeline continued=1\n\n";
        assert_eq!(check_stream(gap, 3).map_err(|e| e.0), Err(Kind::Truncated));
        let message = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a1 a2\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert!(check_message_stream(message, 2).is_ok());
        let cut = &message[..message.len() - 60];
        assert_eq!(
            check_message_stream(cut, 2).map_err(|e| e.0),
            Err(Kind::Truncated)
        );
        let whole_message =
            br#"{"content":[{"type":"text","text":"a1 a2"}],"stop_reason":"end_turn"}"#;
        assert!(check_message(whole_message, 2).is_ok());
        assert!(check_message(whole_message, 3).is_err());
        let honest = b"data: {\"choices\":[{\"delta\":{\"content\":\"x1\"},\"finish_reason\":null}]}\n\ndata: {\"error\":{\"message\":\"upstream broke\"}}\n\n";
        assert_eq!(
            check_stream(honest, 2).map_err(|e| e.0),
            Err(Kind::StreamError)
        );
    }
}
