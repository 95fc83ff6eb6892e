//! `POST .../chat/completions`: whole answers and token-by-token streams.
//!
//! The answer is `N` deterministic words (`{name}1 {name}2 ...`), so a test
//! can check which mock answered and that no token was lost or duplicated
//! across a failover. Stream chunks are written from a precomputed JSON prefix
//! rather than built as `serde_json::Value`s: the mock is the floor the
//! gateway is benchmarked against, so it should cost little per token.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::body::{EventSource, MockBody, Pace};
use crate::reply::{answer_text, token_piece, unix_now, Ctx};

const LIMIT_KEYS: &[&str] = &["max_completion_tokens", "max_tokens"];

pub(crate) fn answer(ctx: Ctx) -> Response<MockBody> {
    let model = ctx.model();
    let (n, at_limit) = ctx.answer_len(LIMIT_KEYS);
    let finish = if at_limit { "length" } else { "stop" };
    let prompt = ctx.prompt_tokens();
    let usage = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": n,
        "total_tokens": u64::from(prompt) + u64::from(n),
    });
    let id = format!("chatcmpl-mock-{}", ctx.seq);
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
        let source = ChatStream {
            prefix,
            name: ctx.config.name.clone(),
            tokens: n,
            finish,
            usage: include_usage.then_some(usage),
            no_done: ctx.config.faults.no_done,
            step: 0,
        };
        return ctx.sse_reply(Box::new(source));
    }
    let body = serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "system_fingerprint": ctx.fingerprint(),
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": answer_text(&ctx.config.name, n),
                "refusal": null,
            },
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage,
    });
    ctx.json_reply(StatusCode::OK, &body)
}

/// The chunk sequence: role, one per token, finish, optional usage, `[DONE]`.
struct ChatStream {
    prefix: String,
    name: String,
    tokens: u32,
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
}

impl EventSource for ChatStream {
    fn next_event(&mut self) -> Option<(Pace, Bytes)> {
        let step = self.step;
        self.step = self.step.saturating_add(1);
        let n = self.tokens;
        if step == 0 {
            let tail = r#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
            return Some((Pace::First, self.chunk(tail)));
        }
        if step <= n {
            let piece = serde_json::Value::String(token_piece(&self.name, step));
            let tail = format!(
                r#"{{"index":0,"delta":{{"content":{piece}}},"logprobs":null,"finish_reason":null}}]}}"#
            );
            let pace = if step == 1 { Pace::Now } else { Pace::Token };
            return Some((pace, self.chunk(&tail)));
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
