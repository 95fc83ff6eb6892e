//! Anthropic Messages → OpenAI Chat Completions.
//!
//! Mapped:
//!
//! - `system` (a string or text blocks, joined with `"\n"`) → a first
//!   `system` message.
//! - User content: a string stays a string; blocks → parts (`text`;
//!   `image` with a base64 source → an `image_url` data URL, with a URL
//!   source → that URL). One text block is sent as a string, the form every
//!   OpenAI-compatible server reads.
//! - `tool_result` blocks → `tool` messages, placed before the rest of their
//!   turn (OpenAI wants them right after the assistant's `tool_calls`), their
//!   text as the content (text blocks joined with `"\n"`).
//! - Assistant content: text blocks → `content` (concatenated), `tool_use`
//!   → `tool_calls` with `arguments` = the input as a JSON string.
//!   `thinking` and `redacted_thinking` blocks of earlier turns are dropped
//!   (OpenAI has no field for them). A final assistant message (a prefill)
//!   stays the final message when the target continues it
//!   (`ToOpenAi::prefill`, the gateway's decision per deployment); to any
//!   other target the request is refused ([`Untranslatable`]): OpenAI and
//!   most compatible servers answer it with a new message, not its
//!   continuation.
//! - `tools` → `function` tools (`input_schema` → `parameters`, `strict`);
//!   `tool_choice` `auto`/`any`/`none`/`tool` → `auto`/`required`/`none`/
//!   named; `disable_parallel_tool_use: true` → `parallel_tool_calls: false`.
//! - `max_tokens` → `max_tokens`, not `max_completion_tokens`: it is the
//!   field every OpenAI-compatible server reads (vLLM, llama.cpp's server,
//!   SGLang, TGI, Ollama, LM Studio), while `max_completion_tokens` is newer
//!   and not read by all of them (an ignored limit lets the answer run to
//!   the context's end). OpenAI accepts `max_tokens` on its non-reasoning
//!   models; its reasoning models (o-series, GPT-5) refuse it, which the
//!   README says.
//! - `stop_sequences` → `stop`; `temperature`, `top_p` as they are;
//!   `metadata.user_id` → `user`; `stream: true` → `stream: true` with
//!   `stream_options.include_usage: true` (so the stream's usage can be
//!   given back in `message_delta`); `output_config.format` (`json_schema`)
//!   → `response_format` `json_schema` named `response`, `strict: true`
//!   (Anthropic's structured outputs are always strict).
//!
//! Refused ([`Untranslatable`]): `thinking` enabled or adaptive (extended
//! thinking and its signed blocks have no OpenAI equivalent); images or
//! documents in a `tool_result`; `document`, `search_result` and server
//! tool blocks; server tools (`web_search_…`, `bash_…`, … : any tool with a
//! `type` other than `custom`); `mcp_servers` and `container`.
//!
//! Dropped: `top_k` (OpenAI itself refuses the unknown parameter; vLLM
//! and llama.cpp would honour it, but the same request must suit every
//! OpenAI-shaped deployment), `is_error` of a tool result (its text says
//! what went wrong), `cache_control` and `citations` (prompt caching and
//! citations are Anthropic's), `service_tier`, `output_config.effort`
//! (OpenAI's `reasoning_effort` is refused by its non-reasoning models),
//! `thinking: {type:"disabled"}`, and any field unknown to both.

use serde_json::{json, Map, Value};

use super::{parse_object, refuse, serialise, ToOpenAi};
use crate::translate::Untranslatable;

/// See the module docs.
pub(super) fn translate(body: &[u8], opts: &ToOpenAi<'_>) -> Result<Vec<u8>, Untranslatable> {
    let mut req = parse_object(body)?;
    refuse_untranslatable(&req)?;
    let mut out = Map::new();
    out.insert("model".into(), opts.model.into());

    let mut messages = Vec::new();
    if let Some(system) = system_text(req.remove("system"))? {
        messages.push(json!({ "role": "system", "content": system }));
    }
    let Some(Value::Array(turns)) = req.remove("messages") else {
        return refuse("messages is not an array");
    };
    for (i, turn) in turns.into_iter().enumerate() {
        let Value::Object(mut turn) = turn else {
            return refuse(format!("messages[{i}] is not an object"));
        };
        match turn.get("role").and_then(Value::as_str) {
            Some("user") => user_turn(turn.remove("content"), i, &mut messages)?,
            Some("assistant") => assistant_turn(turn.remove("content"), i, &mut messages)?,
            _ => {
                return refuse(format!(
                    "messages[{i}]: a role other than user or assistant"
                ))
            }
        }
    }
    if !opts.prefill && messages.last().is_some_and(|m| m["role"] == "assistant") {
        return refuse(
            "the conversation ends with an assistant message (a prefill), which this deployment does not continue",
        );
    }
    out.insert("messages".into(), messages.into());

    if let Some(max) = req.remove("max_tokens").filter(Value::is_number) {
        out.insert("max_tokens".into(), max);
    }
    if let Some(stop) = req
        .remove("stop_sequences")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        out.insert("stop".into(), stop);
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.remove(key).filter(Value::is_number) {
            out.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(mut metadata)) = req.remove("metadata") {
        if let Some(user) = metadata.remove("user_id").filter(Value::is_string) {
            out.insert("user".into(), user);
        }
    }
    match req.remove("stream") {
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), true.into());
            out.insert("stream_options".into(), json!({ "include_usage": true }));
        }
        Some(Value::Bool(false)) => {
            out.insert("stream".into(), false.into());
        }
        _ => {}
    }
    tools(&mut req, &mut out)?;
    if let Some(Value::Object(mut config)) = req.remove("output_config") {
        if let Some(format) = response_format(config.remove("format"))? {
            out.insert("response_format".into(), format);
        }
    }
    serialise(out)
}

/// The fields whose meaning OpenAI cannot give.
fn refuse_untranslatable(req: &Map<String, Value>) -> Result<(), Untranslatable> {
    let thinking = req
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str);
    if thinking.is_some_and(|t| t != "disabled") {
        return refuse("extended thinking cannot be translated to OpenAI");
    }
    let set = |k: &str| {
        req.get(k).is_some_and(|v| match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            _ => true,
        })
    };
    if set("mcp_servers") {
        return refuse("mcp_servers cannot be translated to OpenAI");
    }
    if set("container") {
        return refuse("container cannot be translated to OpenAI");
    }
    Ok(())
}

/// `system` as one string (None when absent or empty).
fn system_text(system: Option<Value>) -> Result<Option<String>, Untranslatable> {
    let text = match system {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Array(blocks)) => texts(blocks, "system")?.join("\n"),
        Some(_) => return refuse("system is neither a string nor an array"),
    };
    Ok((!text.is_empty()).then_some(text))
}

/// The texts of text blocks; `whose` names the place in a refusal.
fn texts(blocks: Vec<Value>, whose: &str) -> Result<Vec<String>, Untranslatable> {
    let mut texts = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block {
            Value::Object(mut b) if b.get("type").and_then(Value::as_str) == Some("text") => {
                if let Some(Value::String(t)) = b.remove("text") {
                    texts.push(t);
                }
            }
            Value::Object(b) if b.get("type").and_then(Value::as_str) == Some("image") => {
                return refuse(format!("images in {whose} cannot be translated to OpenAI"));
            }
            _ => {
                return refuse(format!(
                    "{whose} may hold only text to be translated to OpenAI"
                ))
            }
        }
    }
    Ok(texts)
}

/// A user turn → `tool` messages for its tool results, then a user message
/// with the rest.
fn user_turn(content: Option<Value>, i: usize, out: &mut Vec<Value>) -> Result<(), Untranslatable> {
    let blocks = match content {
        Some(Value::String(s)) => {
            out.push(json!({ "role": "user", "content": s }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return refuse(format!(
                "messages[{i}]: content is neither a string nor an array"
            ))
        }
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for block in blocks {
        let Value::Object(mut b) = block else {
            return refuse(format!("messages[{i}]: a content block is not an object"));
        };
        match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => {
                let text = b.remove("text").unwrap_or_default();
                parts.push(json!({ "type": "text", "text": text }));
            }
            "image" => parts.push(image_part(b.remove("source"), i)?),
            "tool_result" => out.push(tool_message(b)?),
            other => return refuse(format!("{other} blocks cannot be translated to OpenAI")),
        }
    }
    let plain = parts.len() == 1 && parts[0]["type"] == "text";
    let content = match parts.pop() {
        None => return Ok(()),
        Some(Value::Object(mut part)) if plain => part.remove("text").unwrap_or_default(),
        Some(part) => {
            parts.push(part);
            Value::Array(parts)
        }
    };
    out.push(json!({ "role": "user", "content": content }));
    Ok(())
}

/// An image block's source → an `image_url` part.
fn image_part(source: Option<Value>, i: usize) -> Result<Value, Untranslatable> {
    let Some(Value::Object(mut source)) = source else {
        return refuse(format!("messages[{i}]: an image without a source"));
    };
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut url = String::with_capacity(data.len() + media_type.len() + 13);
            url.push_str("data:");
            url.push_str(media_type);
            url.push_str(";base64,");
            url.push_str(data);
            Value::String(url)
        }
        Some("url") => source.remove("url").unwrap_or_default(),
        _ => {
            return refuse("image sources other than base64 and url cannot be translated to OpenAI")
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `tool_result` block → a `tool` message with its text.
fn tool_message(mut block: Map<String, Value>) -> Result<Value, Untranslatable> {
    let id = block.remove("tool_use_id").unwrap_or_default();
    let content = match block.remove("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Array(blocks)) => texts(blocks, "tool results")?.join("\n"),
        Some(_) => return refuse("a tool result's content is neither a string nor an array"),
    };
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": content }))
}

/// An assistant turn → one assistant message (text and tool calls).
fn assistant_turn(
    content: Option<Value>,
    i: usize,
    out: &mut Vec<Value>,
) -> Result<(), Untranslatable> {
    let blocks = match content {
        Some(Value::String(s)) => {
            out.push(json!({ "role": "assistant", "content": s }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return refuse(format!(
                "messages[{i}]: content is neither a string nor an array"
            ))
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        let Value::Object(mut b) = block else {
            return refuse(format!("messages[{i}]: a content block is not an object"));
        };
        match b.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            "tool_use" => {
                let input = b.remove("input").unwrap_or_else(|| json!({}));
                let arguments = serde_json::to_string(&input)
                    .or_else(|e| refuse(format!("a tool call's input cannot be written: {e}")))?;
                calls.push(json!({
                    "id": b.remove("id").unwrap_or_default(),
                    "type": "function",
                    "function": { "name": b.remove("name").unwrap_or_default(), "arguments": arguments },
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => return refuse(format!("{other} blocks cannot be translated to OpenAI")),
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    if calls.is_empty() {
        if text.is_empty() {
            return Ok(());
        }
        message.insert("content".into(), text.into());
    } else {
        let content = if text.is_empty() {
            Value::Null
        } else {
            text.into()
        };
        message.insert("content".into(), content);
        message.insert("tool_calls".into(), calls.into());
    }
    out.push(Value::Object(message));
    Ok(())
}

/// `tools`, `tool_choice` (with `disable_parallel_tool_use`).
fn tools(req: &mut Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), Untranslatable> {
    let tools = match req.remove("tools") {
        Some(Value::Array(tools)) if !tools.is_empty() => tools,
        _ => return Ok(()),
    };
    let mut mapped = Vec::with_capacity(tools.len());
    for tool in tools {
        let Value::Object(mut tool) = tool else {
            return refuse("a tool is not an object");
        };
        if let Some(kind) = tool
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| *t != "custom")
        {
            return refuse(format!(
                "the server tool {kind} cannot be translated to OpenAI"
            ));
        }
        let mut f = Map::new();
        f.insert("name".into(), tool.remove("name").unwrap_or_default());
        if let Some(d) = tool.remove("description").filter(|d| !d.is_null()) {
            f.insert("description".into(), d);
        }
        let schema = tool
            .remove("input_schema")
            .filter(|s| !s.is_null())
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        f.insert("parameters".into(), schema);
        if let Some(s) = tool.remove("strict").filter(Value::is_boolean) {
            f.insert("strict".into(), s);
        }
        mapped.push(json!({ "type": "function", "function": f }));
    }
    out.insert("tools".into(), mapped.into());

    let Some(Value::Object(choice)) = req.remove("tool_choice") else {
        return Ok(());
    };
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => json!({ "type": "function", "function": { "name": choice.get("name") } }),
        _ => return refuse("this tool_choice cannot be translated to OpenAI"),
    };
    out.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

/// `output_config.format` → `response_format`.
fn response_format(format: Option<Value>) -> Result<Option<Value>, Untranslatable> {
    let Some(Value::Object(mut format)) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format.remove("schema").unwrap_or_else(|| json!({}));
            Ok(Some(json!({
                "type": "json_schema",
                "json_schema": { "name": "response", "schema": schema, "strict": true },
            })))
        }
        _ => refuse("this output_config.format cannot be translated to OpenAI"),
    }
}
