//! Anthropic's stream events → OpenAI's chat completion chunks.

use std::fmt::Write as _;

use bytes::BytesMut;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{decimal, is_string, is_text, put, put_u64, string_or, word, ErrorBody, StreamOptions};

/// One Anthropic stream event: the union of the fields of every kind, each
/// read only by the kinds that have it.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    content_block: Option<Block<'a>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default, borrow)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    name: Option<&'a RawValue>,
}

/// A `content_block_delta`'s delta, or a `message_delta`'s.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
    #[serde(default, borrow)]
    partial_json: Option<&'a RawValue>,
    #[serde(default, borrow)]
    stop_reason: Option<&'a RawValue>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// What an open content block becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// The `k`-th tool call of the answer.
    Tool(u32),
    /// Thinking, redacted thinking, server tools: not in OpenAI's grammar.
    Dropped,
}

/// The stream's state.
#[derive(Debug)]
pub(super) struct State {
    include_usage: bool,
    /// `created` of the chunks (Unix seconds).
    pub(super) created: u64,
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`,
    /// written at `message_start`; empty before.
    head: String,
    /// Open blocks by index (Anthropic opens one at a time; a few at most).
    blocks: Vec<(u64, Kind)>,
    /// Tool calls opened so far.
    tools: u32,
    /// Uncached input tokens, cache creation, cache read, output (cumulative).
    input: u64,
    cache_creation: u64,
    cache_read: u64,
    output: u64,
    /// `finish_reason` from `message_delta`.
    finish_reason: Option<&'static str>,
    /// The `finish_reason` chunk (and the usage chunk) went out.
    finished: bool,
    /// `[DONE]` went out, or an error: nothing more is written.
    over: bool,
}

impl State {
    pub(super) fn new(opts: StreamOptions, created: u64) -> Self {
        Self {
            include_usage: opts.include_usage,
            created,
            head: String::new(),
            blocks: Vec::new(),
            tools: 0,
            input: 0,
            cache_creation: 0,
            cache_read: 0,
            output: 0,
            finish_reason: None,
            finished: false,
            over: false,
        }
    }

    /// One event: `name` from its `event:` line (if any), `data` its JSON.
    pub(super) fn event(
        &mut self,
        name: &[u8],
        data: &str,
        out: &mut BytesMut,
    ) -> Result<(), String> {
        if self.over {
            return Ok(());
        }
        // Not Anthropic's grammar, but an end all the same.
        if data.trim_ascii() == "[DONE]" {
            self.finish(out);
            return Ok(());
        }
        let ev: Event<'_> = serde_json::from_str(data)
            .map_err(|e| format!("an Anthropic stream event that does not parse: {e}"))?;
        // The JSON's `type` is the event's name; an `error` object alone (as
        // OpenAI writes errors) is an error too.
        let kind = match word(ev.kind) {
            Some(k) => k,
            None if ev.error.is_some() => "error",
            None => std::str::from_utf8(name).unwrap_or_default(),
        };
        match kind {
            "message_start" => self.message_start(ev, out),
            "content_block_start" => self.block_start(ev, out),
            "content_block_delta" => self.block_delta(ev, out),
            "content_block_stop" => {
                if let Some(i) = ev.index {
                    self.blocks.retain(|(b, _)| *b != i);
                }
                Ok(())
            }
            "message_delta" => {
                self.started()?;
                if let Some(r) = word(ev.delta.as_ref().and_then(|d| d.stop_reason)) {
                    self.finish_reason = Some(finish_reason(r));
                }
                if let Some(u) = ev.usage {
                    self.usage(u);
                }
                if !self.finished {
                    self.end_of_answer(out);
                }
                Ok(())
            }
            "message_stop" => {
                self.started()?;
                self.finish(out);
                Ok(())
            }
            "error" => {
                self.error(ev.error, out);
                Ok(())
            }
            "" => Err("an Anthropic stream event without a type".into()),
            // `ping`, and the events Anthropic may add (clients must tolerate them).
            _ => Ok(()),
        }
    }

    /// The upstream ended without `message_stop`: the `finish_reason` chunk
    /// and the usage chunk if they did not go out, then `[DONE]`.
    pub(super) fn finish(&mut self, out: &mut BytesMut) {
        if self.over {
            return;
        }
        if !self.head.is_empty() && !self.finished {
            self.end_of_answer(out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.over = true;
    }

    fn started(&self) -> Result<(), String> {
        if self.head.is_empty() {
            return Err("an Anthropic stream event before message_start".into());
        }
        Ok(())
    }

    fn usage(&mut self, u: Usage) {
        let Usage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
        } = u;
        self.input = input_tokens.unwrap_or(self.input);
        self.output = output_tokens.unwrap_or(self.output);
        self.cache_creation = cache_creation_input_tokens.unwrap_or(self.cache_creation);
        self.cache_read = cache_read_input_tokens.unwrap_or(self.cache_read);
    }

    fn message_start(&mut self, ev: Event<'_>, out: &mut BytesMut) -> Result<(), String> {
        if !self.head.is_empty() {
            return Ok(());
        }
        let msg = ev
            .message
            .ok_or("an Anthropic message_start without message")?;
        let id = msg
            .id
            .filter(|id| is_string(id))
            .ok_or("an Anthropic message_start without message.id")?;
        let model = string_or(msg.model, "\"\"");
        let _ = write!(
            self.head,
            "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{model},\"choices\":[",
            id.get(),
            self.created
        );
        if let Some(u) = msg.usage {
            self.usage(u);
        }
        self.chunk(out, &[br#"{"role":"assistant","content":"""#, b"}"], None);
        Ok(())
    }

    fn block_start(&mut self, ev: Event<'_>, out: &mut BytesMut) -> Result<(), String> {
        self.started()?;
        let index = ev
            .index
            .ok_or("an Anthropic content_block_start without index")?;
        let block = ev
            .content_block
            .ok_or("an Anthropic content_block_start without content_block")?;
        let kind = match word(block.kind) {
            Some("text") => {
                if let Some(text) = block.text.filter(|t| is_text(t)) {
                    self.chunk(out, &[b"{\"content\":", text.get().as_bytes(), b"}"], None);
                }
                Kind::Text
            }
            Some("tool_use") => {
                let id = block
                    .id
                    .filter(|v| is_string(v))
                    .ok_or("an Anthropic tool_use block without id")?;
                let name = block
                    .name
                    .filter(|v| is_string(v))
                    .ok_or("an Anthropic tool_use block without name")?;
                let k = self.tools;
                self.tools += 1;
                let mut n = [0; 20];
                let n = decimal(u64::from(k), &mut n);
                self.chunk(
                    out,
                    &[
                        b"{\"tool_calls\":[{\"index\":",
                        n,
                        b",\"id\":",
                        id.get().as_bytes(),
                        b",\"type\":\"function\",\"function\":{\"name\":",
                        name.get().as_bytes(),
                        b",\"arguments\":\"\"}}]}",
                    ],
                    None,
                );
                Kind::Tool(k)
            }
            Some(_) => Kind::Dropped,
            None => return Err("an Anthropic content block without type".into()),
        };
        self.blocks.retain(|(b, _)| *b != index);
        self.blocks.push((index, kind));
        Ok(())
    }

    fn block_delta(&mut self, ev: Event<'_>, out: &mut BytesMut) -> Result<(), String> {
        self.started()?;
        let index = ev
            .index
            .ok_or("an Anthropic content_block_delta without index")?;
        let delta = ev
            .delta
            .ok_or("an Anthropic content_block_delta without delta")?;
        let kind = self
            .blocks
            .iter()
            .rev()
            .find(|(b, _)| *b == index)
            .map(|(_, k)| *k)
            .ok_or("an Anthropic content_block_delta for a block that is not open")?;
        match (kind, word(delta.kind)) {
            (Kind::Text, Some("text_delta")) => {
                let text = delta
                    .text
                    .filter(|t| is_string(t))
                    .ok_or("an Anthropic text_delta without text")?;
                if is_text(text) {
                    self.chunk(out, &[b"{\"content\":", text.get().as_bytes(), b"}"], None);
                }
            }
            (Kind::Tool(k), Some("input_json_delta")) => {
                let args = delta
                    .partial_json
                    .filter(|t| is_string(t))
                    .ok_or("an Anthropic input_json_delta without partial_json")?;
                if is_text(args) {
                    let mut n = [0; 20];
                    let n = decimal(u64::from(k), &mut n);
                    self.chunk(
                        out,
                        &[
                            b"{\"tool_calls\":[{\"index\":",
                            n,
                            b",\"function\":{\"arguments\":",
                            args.get().as_bytes(),
                            b"}}]}",
                        ],
                        None,
                    );
                }
            }
            // Thinking, signatures, citations, server tools' input.
            _ => {}
        }
        Ok(())
    }

    /// `data: {"error":{…}}` in OpenAI's shape, and the end of the stream.
    fn error(&mut self, body: Option<ErrorBody<'_>>, out: &mut BytesMut) {
        let (kind, message) = match &body {
            Some(b) => (
                string_or(b.kind, "\"api_error\""),
                string_or(b.message, "\"\""),
            ),
            None => ("\"api_error\"", "\"\""),
        };
        put(
            out,
            &[
                b"data: {\"error\":{\"message\":",
                message.as_bytes(),
                b",\"type\":",
                kind.as_bytes(),
                b",\"param\":null,\"code\":null}}\n\n",
            ],
        );
        self.over = true;
    }

    /// The `finish_reason` chunk, then the usage chunk if the client asked.
    fn end_of_answer(&mut self, out: &mut BytesMut) {
        self.finished = true;
        let reason = self.finish_reason.unwrap_or("stop");
        self.chunk(out, &[b"{}"], Some(reason));
        if !self.include_usage {
            return;
        }
        // Saturating: the counts are the upstream's, and may be anything.
        let prompt = self
            .input
            .saturating_add(self.cache_creation)
            .saturating_add(self.cache_read);
        put(out, &[b"data: ", self.head.as_bytes()]);
        out.extend_from_slice(b"],\"usage\":{\"prompt_tokens\":");
        put_u64(out, prompt);
        out.extend_from_slice(b",\"completion_tokens\":");
        let output = self.output;
        put_u64(out, output);
        out.extend_from_slice(b",\"total_tokens\":");
        put_u64(out, prompt.saturating_add(output));
        if self.cache_read > 0 {
            out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
            put_u64(out, self.cache_read);
            out.extend_from_slice(b"}");
        }
        out.extend_from_slice(b"}}\n\n");
    }

    /// One chunk of the only choice: `delta` is the delta object's JSON in
    /// parts.
    fn chunk(&self, out: &mut BytesMut, delta: &[&[u8]], finish: Option<&str>) {
        put(
            out,
            &[b"data: ", self.head.as_bytes(), b"{\"index\":0,\"delta\":"],
        );
        put(out, delta);
        match finish {
            None => out.extend_from_slice(b",\"finish_reason\":null}]}\n\n"),
            Some(r) => put(out, &[b",\"finish_reason\":\"", r.as_bytes(), b"\"}]}\n\n"]),
        }
    }
}

/// Anthropic's `stop_reason` → OpenAI's `finish_reason`.
pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn, and what may come.
        _ => "stop",
    }
}
