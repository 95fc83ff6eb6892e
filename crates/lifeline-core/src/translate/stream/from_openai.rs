//! OpenAI's chat completion chunks → Anthropic's stream events.

use bytes::BytesMut;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{decimal, is_string, is_text, put, put_u64, string_or, word, ErrorBody};

/// One chunk (or `{"error": …}`).
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    /// The first choice (index 0): Anthropic has only one.
    #[serde(default, borrow, deserialize_with = "first_choice")]
    choices: Option<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// The choice of index 0 from `choices` (`null` or absent: none), read
/// without collecting the others.
fn first_choice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Choice<'de>>, D::Error> {
    struct First;
    impl<'de> serde::de::Visitor<'de> for First {
        type Value = Option<Choice<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of choices")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(c) = seq.next_element::<Choice<'de>>()? {
                if first.is_none() && c.index.unwrap_or(0) == 0 {
                    first = Some(c);
                }
            }
            Ok(first)
        }
    }
    d.deserialize_any(First)
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(default, borrow)]
    name: Option<&'a RawValue>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize, Clone, Copy)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// The open content block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    /// A tool call, by its OpenAI `index`.
    Tool(u64),
}

/// The stream's state.
#[derive(Debug, Default)]
pub(super) struct State {
    /// `message_start` went out.
    started: bool,
    /// The open block and its Anthropic index.
    open: Option<(Open, u64)>,
    /// The index the next block gets.
    next_block: u64,
    /// The highest tool-call index opened so far.
    last_tool: Option<u64>,
    /// `stop_reason` from the `finish_reason`, once it came.
    stop_reason: Option<&'static str>,
    /// The last usage the upstream reported: prompt, completion, cached.
    usage: Option<(u64, u64, u64)>,
    /// Chunks that carried content: the output tokens when no usage
    /// comes.
    content_chunks: u64,
    /// `message_stop` went out, or an error: nothing more is written.
    over: bool,
}

impl State {
    /// One event's data.
    pub(super) fn event(&mut self, data: &str, out: &mut BytesMut) -> Result<(), String> {
        if self.over {
            return Ok(());
        }
        if data.trim_ascii() == "[DONE]" {
            self.finish(out);
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data)
            .map_err(|e| format!("an OpenAI stream chunk that does not parse: {e}"))?;
        if let Some(e) = chunk.error {
            error(e, out);
            self.over = true;
            return Ok(());
        }
        if !self.started {
            self.message_start(chunk.id, chunk.model, out);
        }
        if let Some(choice) = &chunk.choices {
            if let Some(d) = &choice.delta {
                for text in [d.content, d.refusal].into_iter().flatten() {
                    if is_text(text) {
                        self.text(text, out);
                    }
                }
                for call in d.tool_calls.iter().flatten() {
                    self.tool_call(call, out)?;
                }
            }
            if let Some(r) = word(choice.finish_reason) {
                if self.stop_reason.is_none() {
                    self.close(out);
                    self.stop_reason = Some(stop_reason(r));
                }
            }
        }
        if let Some(u) = chunk.usage {
            let cached = u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0);
            self.usage = Some((u.prompt_tokens, u.completion_tokens, cached));
            // The usage chunk after the finish: the figures are final.
            if self.stop_reason.is_some() {
                self.finish(out);
            }
        }
        Ok(())
    }

    /// Whatever Anthropic's grammar still needs: `message_start`,
    /// `content_block_stop`, `message_delta`, `message_stop`.
    pub(super) fn finish(&mut self, out: &mut BytesMut) {
        if self.over {
            return;
        }
        if !self.started {
            self.message_start(None, None, out);
        }
        self.close(out);
        let (input, output, cached) = match self.usage {
            Some((prompt, completion, cached)) => {
                (Some(prompt.saturating_sub(cached)), completion, cached)
            }
            None => (None, self.content_chunks, 0),
        };
        put(
            out,
            &[
                b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"",
                self.stop_reason.unwrap_or("end_turn").as_bytes(),
                b"\",\"stop_sequence\":null},\"usage\":{",
            ],
        );
        if let Some(input) = input {
            out.extend_from_slice(b"\"input_tokens\":");
            put_u64(out, input);
            out.extend_from_slice(b",");
            if cached > 0 {
                out.extend_from_slice(b"\"cache_read_input_tokens\":");
                put_u64(out, cached);
                out.extend_from_slice(b",");
            }
        }
        out.extend_from_slice(b"\"output_tokens\":");
        put_u64(out, output);
        out.extend_from_slice(b"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        self.over = true;
    }

    fn message_start(
        &mut self,
        id: Option<&RawValue>,
        model: Option<&RawValue>,
        out: &mut BytesMut,
    ) {
        self.started = true;
        // `"chatcmpl-1"` → `"msg_chatcmpl-1"`.
        let id = string_or(id, "\"lifeline\"");
        put(
            out,
            &[
                b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_",
                &id.as_bytes()[1..],
                b",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
                string_or(model, "\"\"").as_bytes(),
                b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n",
            ],
        );
    }

    fn text(&mut self, text: &RawValue, out: &mut BytesMut) {
        let index = match self.open {
            Some((Open::Text, i)) => i,
            _ => {
                self.close(out);
                let i = self.open_block(Open::Text);
                block_start(out, i, &[b"{\"type\":\"text\",\"text\":\"\"}"]);
                i
            }
        };
        block_delta(
            out,
            index,
            &[
                b"{\"type\":\"text_delta\",\"text\":",
                text.get().as_bytes(),
                b"}",
            ],
        );
        self.content_chunks += 1;
    }

    fn tool_call(&mut self, call: &ToolCall<'_>, out: &mut BytesMut) -> Result<(), String> {
        let function = call.function.as_ref();
        let tool = call.index.unwrap_or(0);
        let index = match self.open {
            Some((Open::Tool(t), i)) if t == tool => i,
            _ => {
                if self.last_tool.is_some_and(|t| tool <= t) {
                    return Err(format!(
                        "OpenAI tool call {tool} continued after another one started"
                    ));
                }
                let id = call
                    .id
                    .filter(|v| is_string(v))
                    .ok_or("an OpenAI tool call that starts without id")?;
                let name = function
                    .and_then(|f| f.name)
                    .filter(|v| is_string(v))
                    .ok_or("an OpenAI tool call that starts without function.name")?;
                self.close(out);
                self.last_tool = Some(tool);
                let i = self.open_block(Open::Tool(tool));
                block_start(
                    out,
                    i,
                    &[
                        b"{\"type\":\"tool_use\",\"id\":",
                        id.get().as_bytes(),
                        b",\"name\":",
                        name.get().as_bytes(),
                        b",\"input\":{}}",
                    ],
                );
                i
            }
        };
        if let Some(args) = function.and_then(|f| f.arguments).filter(|a| is_text(a)) {
            block_delta(
                out,
                index,
                &[
                    b"{\"type\":\"input_json_delta\",\"partial_json\":",
                    args.get().as_bytes(),
                    b"}",
                ],
            );
            self.content_chunks += 1;
        }
        Ok(())
    }

    fn open_block(&mut self, kind: Open) -> u64 {
        let i = self.next_block;
        self.next_block += 1;
        self.open = Some((kind, i));
        i
    }

    /// `content_block_stop` for the open block, if one is.
    fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, i)) = self.open.take() {
            let mut n = [0; 20];
            put(
                out,
                &[
                    b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
                    decimal(i, &mut n),
                    b"}\n\n",
                ],
            );
        }
    }
}

fn block_start(out: &mut BytesMut, index: u64, block: &[&[u8]]) {
    let mut n = [0; 20];
    put(
        out,
        &[
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
            decimal(index, &mut n),
            b",\"content_block\":",
        ],
    );
    put(out, block);
    out.extend_from_slice(b"}\n\n");
}

fn block_delta(out: &mut BytesMut, index: u64, delta: &[&[u8]]) {
    let mut n = [0; 20];
    put(
        out,
        &[
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
            decimal(index, &mut n),
            b",\"delta\":",
        ],
    );
    put(out, delta);
    out.extend_from_slice(b"}\n\n");
}

/// `event: error` with Anthropic's body, from OpenAI's `error` (an object,
/// or a bare message string as some servers write it).
fn error(e: &RawValue, out: &mut BytesMut) {
    let body: Option<ErrorBody<'_>> = if is_string(e) {
        None
    } else {
        serde_json::from_str(e.get()).ok()
    };
    let (kind, message) = match &body {
        Some(b) => {
            let code = word(b.code);
            (error_type(word(b.kind), code), string_or(b.message, "\"\""))
        }
        None => ("api_error", string_or(Some(e), "\"\"")),
    };
    put(
        out,
        &[
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"",
            kind.as_bytes(),
            b"\",\"message\":",
            message.as_bytes(),
            b"}}\n\n",
        ],
    );
}

/// Anthropic's error type for an OpenAI error's `type` and `code` (a
/// stream's error has no status to go by).
fn error_type(kind: Option<&str>, code: Option<&str>) -> &'static str {
    const ANTHROPIC: [&str; 11] = [
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "conflict_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "timeout_error",
        "overloaded_error",
    ];
    for word in [code, kind].into_iter().flatten() {
        if let Some(known) = ANTHROPIC.iter().find(|k| **k == word) {
            return known;
        }
        let found = match word {
            "invalid_api_key" | "authentication" | "unauthorized" => "authentication_error",
            "insufficient_quota" | "billing" => "billing_error",
            "permission_denied" | "forbidden" => "permission_error",
            "model_not_found" | "not_found" => "not_found_error",
            "rate_limit_exceeded" | "rate_limit" | "tokens" | "requests" => "rate_limit_error",
            "overloaded" | "server_overloaded" | "engine_overloaded" => "overloaded_error",
            "timeout" | "deadline_exceeded" => "timeout_error",
            "context_length_exceeded" | "invalid_request" | "bad_request" => {
                "invalid_request_error"
            }
            _ => continue,
        };
        return found;
    }
    "api_error"
}

/// OpenAI's `finish_reason` → Anthropic's `stop_reason`.
pub(super) fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        // stop, and what some servers write (`eos`, …).
        _ => "end_turn",
    }
}
