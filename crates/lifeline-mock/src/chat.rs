//! `POST .../chat/completions`: whole answers and token-by-token streams.
//!
//! The answer is `N` deterministic words (`{stem}1 {stem}2 ...`, the stem
//! being the `voice` or else the mock's name), so a test can check which
//! mock answered and that no token was lost or duplicated across a
//! failover. A trailing assistant message is continued, a request to
//! continue is answered with a seam, and tools are called, as `convo`
//! decides; vLLM's extra parameters for a prefill are accepted
//! (`continue_final_message` with `add_generation_prompt: false`), and
//! refused as vLLM refuses them when `add_generation_prompt` is left true. Stream chunks are written from a precomputed JSON prefix
//! rather than built as `serde_json::Value`s: the mock is the floor the
//! gateway is benchmarked against, so it should cost little per token.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::body::{EventSource, MockBody, Pace, CHAT_GRAMMAR};
use crate::convo::{self, Refusal, Reply, Wire, TOOL_ARGUMENTS, TOOL_CALL_TOKENS, TOOL_FRAGMENTS};
use crate::reply::{unix_now, Ctx};

const LIMIT_KEYS: &[&str] = &["max_completion_tokens", "max_tokens"];

/// The 400 a server that does not continue a trailing assistant message
/// gives (`reject_prefill`).
pub(crate) const PREFILL_REJECTED: &str = "The last message is an assistant message, and assistant message prefill is not supported by this server: the conversation must end with a user or tool message.";

/// vLLM's 400 when a request asks to continue the final message and to add
/// a generation prompt (its default) at once.
pub(crate) const CONTINUE_AND_PROMPT: &str =
    "Cannot set both `continue_final_message` and `add_generation_prompt` to True.";

pub(crate) async fn answer(ctx: Ctx) -> Response<MockBody> {
    let flag = |key: &str| ctx.json.get(key).and_then(serde_json::Value::as_bool);
    if flag("continue_final_message") == Some(true) && flag("add_generation_prompt") != Some(false)
    {
        let body = serde_json::json!({
            "error": {
                "message": CONTINUE_AND_PROMPT,
                "type": "invalid_request_error",
                "param": null,
                "code": null,
            }
        });
        return ctx.json_reply(StatusCode::BAD_REQUEST, &body);
    }
    let model = ctx.model();
    let (n, at_limit) = ctx.answer_len(LIMIT_KEYS);
    let reject = ctx.config.faults.reject_prefill;
    let reply = match convo::decide(&ctx.json, Wire::OpenAi, ctx.stem(), n, reject) {
        Ok(reply) => reply,
        Err(Refusal::Prefill | Refusal::TrailingWhitespace) => {
            let body = serde_json::json!({
                "error": {
                    "message": PREFILL_REJECTED,
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": null,
                }
            });
            return ctx.json_reply(StatusCode::BAD_REQUEST, &body);
        }
    };
    let (finish, tokens) = match &reply {
        Reply::Text(words) => (if at_limit { "length" } else { "stop" }, words.tokens()),
        Reply::Tool(_) => ("tool_calls", TOOL_CALL_TOKENS),
    };
    let prompt = ctx.prompt_tokens();
    let usage = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": tokens,
        "total_tokens": u64::from(prompt) + u64::from(tokens),
    });
    let id = format!("chatcmpl-mock-{}", ctx.seq);
    let call_id = format!("call_mock_{}", ctx.seq);
    if ctx.wants_stream() {
        let include_usage = ctx
            .json
            .pointer("/stream_options/include_usage")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        // Written by hand so the keys come in OpenAI's order, `id` first.
        let quoted = |text: String| serde_json::Value::String(text).to_string();
        let prefix = format!(
            r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"system_fingerprint":{},"choices":["#,
            quoted(id),
            unix_now(),
            quoted(model),
            quoted(ctx.fingerprint()),
        );
        let (body, pieces) = match reply {
            Reply::Text(words) => {
                let pieces = words.tokens();
                (StreamBody::Text(words), pieces)
            }
            Reply::Tool(name) => (
                StreamBody::Tool { id: call_id, name },
                TOOL_FRAGMENTS.len() as u32,
            ),
        };
        let source = ChatStream {
            prefix,
            body,
            pieces,
            finish,
            usage: include_usage.then_some(usage),
            no_done: ctx.config.faults.no_done,
            step: 0,
        };
        return ctx.sse_reply(Box::new(source), CHAT_GRAMMAR);
    }
    ctx.generate_whole(tokens).await;
    let message = match reply {
        Reply::Text(words) => serde_json::json!({
            "role": "assistant",
            "content": words.text(),
            "refusal": null,
        }),
        Reply::Tool(name) => serde_json::json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                "function": { "name": name, "arguments": TOOL_ARGUMENTS },
            }],
            "refusal": null,
        }),
    };
    let body = serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "system_fingerprint": ctx.fingerprint(),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage,
    });
    ctx.json_reply(StatusCode::OK, &body)
}

/// What the chunks between the first and the finish carry.
enum StreamBody {
    /// One word per chunk.
    Text(convo::Words),
    /// The call's id and name in the first chunk, then the arguments in
    /// [`TOOL_FRAGMENTS`].
    Tool { id: String, name: String },
}

/// The chunk sequence: role, one per piece, finish, optional usage, `[DONE]`.
struct ChatStream {
    prefix: String,
    body: StreamBody,
    /// Chunks after the first: words, or argument fragments.
    pieces: u32,
    finish: &'static str,
    usage: Option<serde_json::Value>,
    no_done: bool,
    /// Index of the next event in the sequence.
    step: u32,
}

impl ChatStream {
    fn chunk(&self, tail: &str) -> Bytes {
        let mut out = String::with_capacity(8 + self.prefix.len() + tail.len());
        out.push_str("data: ");
        out.push_str(&self.prefix);
        out.push_str(tail);
        out.push_str("\n\n");
        Bytes::from(out)
    }

    fn first_tail(&self) -> String {
        match &self.body {
            StreamBody::Text(_) => r#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#.to_owned(),
            StreamBody::Tool { id, name } => format!(
                r#"{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#,
                serde_json::Value::String(id.clone()),
                serde_json::Value::String(name.clone()),
            ),
        }
    }

    /// The tail of chunk `i` (0-based) after the first.
    fn piece_tail(&self, i: u32) -> String {
        match &self.body {
            StreamBody::Text(words) => {
                let piece = serde_json::Value::String(words.piece(i));
                format!(
                    r#"{{"index":0,"delta":{{"content":{piece}}},"logprobs":null,"finish_reason":null}}]}}"#
                )
            }
            StreamBody::Tool { .. } => {
                let fragment = TOOL_FRAGMENTS.get(i as usize).copied().unwrap_or_default();
                let fragment = serde_json::Value::String(fragment.to_owned());
                format!(
                    r#"{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{fragment}}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
                )
            }
        }
    }
}

impl EventSource for ChatStream {
    fn next_event(&mut self) -> Option<(Pace, Bytes)> {
        let step = self.step;
        self.step = self.step.saturating_add(1);
        let n = self.pieces;
        if step == 0 {
            return Some((Pace::First, self.chunk(&self.first_tail())));
        }
        if step <= n {
            let pace = if step == 1 { Pace::Now } else { Pace::Token };
            return Some((pace, self.chunk(&self.piece_tail(step - 1))));
        }
        let mut after = step - n - 1;
        if after == 0 {
            let tail = format!(
                r#"{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{}"}}]}}"#,
                self.finish
            );
            return Some((Pace::Now, self.chunk(&tail)));
        }
        after -= 1;
        if let Some(usage) = &self.usage {
            if after == 0 {
                let tail = format!("],\"usage\":{usage}}}");
                return Some((Pace::Now, self.chunk(&tail)));
            }
            after -= 1;
        }
        if after == 0 && !self.no_done {
            return Some((Pace::Now, Bytes::from_static(b"data: [DONE]\n\n")));
        }
        None
    }
}
