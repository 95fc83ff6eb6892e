//! `POST .../responses`: a minimal Responses API object, whole or streamed.
//!
//! The stream uses named events (`response.created`, `response.output_text.delta`,
//! `response.completed`) and, as OpenAI does, no `[DONE]`. The `no_done` fault
//! drops `response.completed` instead, the equivalent missing terminator.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::body::{EventSource, Grammar, MockBody, Pace};
use crate::convo::Words;
use crate::reply::{sse_named, unix_now, Ctx};

const LIMIT_KEYS: &[&str] = &["max_output_tokens"];

/// What the stream faults send: a chunk that is not JSON, and the Responses
/// API's in-band `error` event.
const GRAMMAR: Grammar = Grammar {
    malformed: b"data: {\"broken\n\n",
    error: b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"Overloaded (simulated)\",\"param\":null}\n\n",
};

pub(crate) fn answer(ctx: Ctx) -> Response<MockBody> {
    let (n, _) = ctx.answer_len(LIMIT_KEYS);
    let input_tokens = ctx.prompt_tokens();
    let shell = Shell {
        id: format!("resp_mock_{}", ctx.seq),
        item_id: format!("msg_mock_{}", ctx.seq),
        created_at: unix_now(),
        model: ctx.model(),
        input_tokens,
        output_tokens: n,
    };
    let words = Words::plain(ctx.stem(), n);
    if ctx.wants_stream() {
        let source = ResponseStream {
            text: String::new(),
            shell,
            words,
            tokens: n,
            no_done: ctx.config.faults.no_done,
            step: 0,
        };
        return ctx.sse_reply(Box::new(source), GRAMMAR);
    }
    let body = shell.object("completed", &words.text());
    ctx.json_reply(StatusCode::OK, &body)
}

/// The fixed fields of one response object.
struct Shell {
    id: String,
    item_id: String,
    created_at: u64,
    model: String,
    input_tokens: u32,
    output_tokens: u32,
}

impl Shell {
    fn object(&self, status: &str, text: &str) -> serde_json::Value {
        let done = status == "completed";
        let output = if done {
            serde_json::json!([{
                "type": "message",
                "id": self.item_id,
                "status": "completed",
                "role": "assistant",
                "content": [{ "type": "output_text", "text": text, "annotations": [] }],
            }])
        } else {
            serde_json::json!([])
        };
        let usage = if done {
            serde_json::json!({
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": u64::from(self.input_tokens) + u64::from(self.output_tokens),
            })
        } else {
            serde_json::Value::Null
        };
        serde_json::json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": self.model,
            "output": output,
            "usage": usage,
        })
    }
}

/// `response.created`, one delta per token, `response.completed`.
struct ResponseStream {
    /// Text sent so far, for the final object.
    text: String,
    shell: Shell,
    words: Words,
    tokens: u32,
    no_done: bool,
    step: u32,
}

impl EventSource for ResponseStream {
    fn next_event(&mut self) -> Option<(Pace, Bytes)> {
        let step = self.step;
        self.step = self.step.saturating_add(1);
        if step == 0 {
            let event = serde_json::json!({
                "type": "response.created",
                "sequence_number": 0,
                "response": self.shell.object("in_progress", ""),
            });
            return Some((Pace::First, sse_named("response.created", &event)));
        }
        if step <= self.tokens {
            let piece = self.words.piece(step - 1);
            self.text.push_str(&piece);
            let event = serde_json::json!({
                "type": "response.output_text.delta",
                "sequence_number": step,
                "item_id": self.shell.item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
            });
            let pace = if step == 1 { Pace::Now } else { Pace::Token };
            return Some((pace, sse_named("response.output_text.delta", &event)));
        }
        if step == self.tokens + 1 && !self.no_done {
            let event = serde_json::json!({
                "type": "response.completed",
                "sequence_number": step,
                "response": self.shell.object("completed", &self.text),
            });
            return Some((Pace::Now, sse_named("response.completed", &event)));
        }
        None
    }
}
