//! `POST /v1/messages`: Anthropic's Messages API, whole answers and streams
//! in Anthropic's event grammar.
//!
//! The same deterministic words as chat completions (`{stem}1 {stem}2 ...`),
//! at most `max_tokens` of them (required, as Anthropic requires it: missing,
//! a 400 `invalid_request_error`): the configured `completion_tokens` end
//! the turn (`end_turn`), a smaller `max_tokens` cuts it (`max_tokens`).
//! Prefill, the instruction to continue and tool calls follow `convo`'s
//! rules. The stream is `message_start`, `ping`, `content_block_start`, one
//! `content_block_delta` per token (`text_delta`, or `input_json_delta`
//! fragments for a tool call), `content_block_stop`, `message_delta` (stop
//! reason, cumulative usage), `message_stop`; the `no_done` fault drops
//! `message_stop`. Events are written from precomputed pieces, as chat's are.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::Value;

use crate::body::{EventSource, Grammar, MockBody, Pace};
use crate::convo::{self, Refusal, Reply, Wire, TOOL_CALL_TOKENS, TOOL_FRAGMENTS};
use crate::reply::{Ctx, MAX_ANSWER_TOKENS};

/// Anthropic's 400 for a trailing assistant message on models that refuse
/// prefill (`reject_prefill`).
pub(crate) const PREFILL_REJECTED: &str = "This model does not support assistant message prefill. The conversation must end with a user message.";
/// Anthropic's 400 for a prefill ending in whitespace.
pub(crate) const TRAILING_WHITESPACE: &str =
    "messages: final assistant content cannot end with trailing whitespace";
/// What the stream faults send: a `content_block_delta` that is not JSON,
/// and Anthropic's in-band `error` event (`overloaded_error`).
const GRAMMAR: Grammar = Grammar {
    malformed: b"event: content_block_delta\ndata: {\"broken\n\n",
    error: b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded (simulated)\"}}\n\n",
};

const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";
const TEXT_START: &[u8] = b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const TEXT_DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":";
const JSON_DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":";
const BLOCK_STOP: &[u8] =
    b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

pub(crate) async fn answer(ctx: Ctx) -> Response<MockBody> {
    let limit = match ctx.json.get("max_tokens") {
        None | Some(Value::Null) => {
            return ctx.anthropic_error(StatusCode::BAD_REQUEST, "max_tokens: Field required")
        }
        Some(value) => match value.as_u64() {
            Some(limit) => u32::try_from(limit).unwrap_or(u32::MAX),
            None => {
                return ctx.anthropic_error(
                    StatusCode::BAD_REQUEST,
                    "max_tokens: Input should be a valid integer",
                )
            }
        },
    };
    if !matches!(ctx.json.get("messages"), Some(Value::Array(_))) {
        return ctx.anthropic_error(StatusCode::BAD_REQUEST, "messages: Field required");
    }
    let natural = ctx.config.completion_tokens.min(MAX_ANSWER_TOKENS);
    let n = natural.min(limit);
    let reject = ctx.config.faults.reject_prefill;
    let reply = match convo::decide(&ctx.json, Wire::Anthropic, ctx.stem(), n, reject) {
        Ok(reply) => reply,
        Err(Refusal::Prefill) => {
            return ctx.anthropic_error(StatusCode::BAD_REQUEST, PREFILL_REJECTED)
        }
        Err(Refusal::TrailingWhitespace) => {
            return ctx.anthropic_error(StatusCode::BAD_REQUEST, TRAILING_WHITESPACE)
        }
    };
    let (stop_reason, output_tokens) = match &reply {
        Reply::Text(words) => (
            if limit < natural {
                "max_tokens"
            } else {
                "end_turn"
            },
            words.tokens(),
        ),
        Reply::Tool(_) => ("tool_use", TOOL_CALL_TOKENS),
    };
    let input_tokens = ctx.prompt_tokens();
    let id = format!("msg_mock-{}", ctx.seq);
    let tool_id = format!("toolu_mock_{}", ctx.seq);
    let model = ctx.model();
    if ctx.wants_stream() {
        let start = serde_json::json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens.min(1) },
            }
        });
        let finish = serde_json::json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
        });
        let (block, pieces) = match reply {
            Reply::Text(words) => {
                let pieces = words.tokens();
                (Block::Text(words), pieces)
            }
            Reply::Tool(name) => {
                let start = serde_json::json!({
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": { "type": "tool_use", "id": tool_id, "name": name, "input": {} },
                });
                (
                    Block::Tool(event("content_block_start", &start)),
                    TOOL_FRAGMENTS.len() as u32,
                )
            }
        };
        let source = MessageStream {
            start: event("message_start", &start),
            has_block: pieces > 0 || matches!(block, Block::Tool(_)),
            block,
            pieces,
            finish: event("message_delta", &finish),
            no_done: ctx.config.faults.no_done,
            step: 0,
        };
        return ctx.sse_reply(Box::new(source), GRAMMAR);
    }
    ctx.generate_whole(output_tokens).await;
    let content = match reply {
        Reply::Text(words) if words.tokens() == 0 => serde_json::json!([]),
        Reply::Text(words) => serde_json::json!([{ "type": "text", "text": words.text() }]),
        Reply::Tool(name) => serde_json::json!([{
            "type": "tool_use",
            "id": tool_id,
            "name": name,
            "input": { "city": "Paris" },
        }]),
    };
    let body = serde_json::json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
    });
    ctx.json_reply(StatusCode::OK, &body)
}

/// One named SSE event.
fn event(name: &str, value: &Value) -> Bytes {
    let mut out = format!("event: {name}\ndata: ").into_bytes();
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `prefix` + `value` as a JSON string + `}}\n\n`: one delta event.
fn delta(prefix: &str, value: &str) -> Bytes {
    let quoted = Value::String(value.to_owned()).to_string();
    let mut out = String::with_capacity(prefix.len() + quoted.len() + 4);
    out.push_str(prefix);
    out.push_str(&quoted);
    out.push_str("}}\n\n");
    Bytes::from(out)
}

/// The one content block of the answer.
enum Block {
    Text(convo::Words),
    /// Its `content_block_start` event, then [`TOOL_FRAGMENTS`].
    Tool(Bytes),
}

/// message_start, ping, the block (start, deltas, stop), message_delta,
/// message_stop.
struct MessageStream {
    start: Bytes,
    block: Block,
    /// Deltas in the block.
    pieces: u32,
    /// Whether the block is sent at all (an empty answer has none).
    has_block: bool,
    finish: Bytes,
    no_done: bool,
    /// Index of the next event in the sequence.
    step: u32,
}

impl EventSource for MessageStream {
    fn next_event(&mut self) -> Option<(Pace, Bytes)> {
        let step = self.step;
        self.step = self.step.saturating_add(1);
        match step {
            0 => return Some((Pace::First, self.start.clone())),
            1 => return Some((Pace::Now, Bytes::from_static(PING))),
            _ => {}
        }
        let mut at = step - 2;
        if self.has_block {
            if at == 0 {
                let start = match &self.block {
                    Block::Text(_) => Bytes::from_static(TEXT_START),
                    Block::Tool(start) => start.clone(),
                };
                return Some((Pace::Now, start));
            }
            at -= 1;
            if at < self.pieces {
                let pace = if at == 0 { Pace::Now } else { Pace::Token };
                let bytes = match &self.block {
                    Block::Text(words) => delta(TEXT_DELTA, &words.piece(at)),
                    Block::Tool(_) => delta(
                        JSON_DELTA,
                        TOOL_FRAGMENTS.get(at as usize).copied().unwrap_or_default(),
                    ),
                };
                return Some((pace, bytes));
            }
            at -= self.pieces;
            if at == 0 {
                return Some((Pace::Now, Bytes::from_static(BLOCK_STOP)));
            }
            at -= 1;
        }
        match at {
            0 => Some((Pace::Now, self.finish.clone())),
            1 if !self.no_done => Some((Pace::Now, Bytes::from_static(MESSAGE_STOP))),
            _ => None,
        }
    }
}
