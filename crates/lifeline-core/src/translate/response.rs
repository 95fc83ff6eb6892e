//! Whole (non-streaming) answers between the wires.
//!
//! - Content: Anthropic's text blocks (concatenated) ↔ `message.content`;
//!   `tool_use` blocks ↔ `message.tool_calls` (`input` ↔ `arguments` as a
//!   JSON string). Thinking blocks are dropped: an OpenAI client has no
//!   field for them (LiteLLM's `reasoning_content` is not OpenAI's). An
//!   OpenAI `refusal` becomes a text block.
//! - `stop_reason` → `finish_reason`: `end_turn`, `stop_sequence`,
//!   `pause_turn` (a paused server-tool turn; LiteLLM and Portkey say
//!   `stop` too) → `stop`; `max_tokens`, `model_context_window_exceeded`
//!   → `length` (the answer was cut, not finished; LiteLLM says `stop`);
//!   `tool_use` → `tool_calls`; `refusal` → `content_filter` (as LiteLLM);
//!   anything newer → `stop`. Back: `stop` → `end_turn` (OpenAI does not
//!   say whether a stop sequence ended it, so `stop_sequence` is null),
//!   `length` → `max_tokens`, `tool_calls`/`function_call` → `tool_use`,
//!   `content_filter` → `refusal`.
//! - Usage: `prompt_tokens` = `input_tokens` + `cache_read_input_tokens` +
//!   `cache_creation_input_tokens` (Anthropic's `input_tokens` is only the
//!   uncached part; LiteLLM adds only the cache reads and Portkey none, which
//!   under-reports what the prompt was), `cached_tokens` = the cache reads,
//!   `completion_tokens` = `output_tokens`, `total_tokens` their sum,
//!   `reasoning_tokens` = `thinking_tokens` when given. Back:
//!   `input_tokens` = `prompt_tokens` − `cached_tokens`,
//!   `cache_read_input_tokens` = `cached_tokens`.
//! - Ids: the provider's id is kept as it is (`msg_…` in an OpenAI answer,
//!   `chatcmpl-…` in an Anthropic one): clients treat ids as opaque, and the
//!   provider's id is the one its logs and support know. `model` is the
//!   model the upstream names, `created` is now.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// An Anthropic message → an OpenAI chat completion. Err: the body is not
/// an Anthropic message (treat it like a malformed answer).
pub fn anthropic_to_openai(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut msg = object(body)?;
    if msg
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "message")
    {
        return Err("the answer is not an Anthropic message".into());
    }
    let Some(Value::Array(blocks)) = msg.remove("content") else {
        return Err("the answer has no content array".into());
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for mut block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => {
                let input = block
                    .get_mut("input")
                    .map(Value::take)
                    .unwrap_or_else(|| json!({}));
                let arguments = serde_json::to_string(&input).map_err(|e| e.to_string())?;
                calls.push(json!({
                    "id": block["id"].take(),
                    "type": "function",
                    "function": { "name": block["name"].take(), "arguments": arguments },
                }));
            }
            _ => {}
        }
    }
    let stop_reason = msg.get("stop_reason").and_then(Value::as_str);
    let finish_reason = stop_reason.map(finish_reason);
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    message.insert("content".into(), content);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), calls.into());
    }
    message.insert("refusal".into(), Value::Null);
    let usage = openai_usage(msg.get("usage"));
    let completion = json!({
        "id": msg.remove("id").unwrap_or_default(),
        "object": "chat.completion",
        "created": now(),
        "model": msg.remove("model").unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage,
    });
    serde_json::to_vec(&completion).map_err(|e| e.to_string())
}

/// An OpenAI chat completion → an Anthropic message. Err: the body is not a
/// chat completion, or a tool call's arguments are not a JSON object (an
/// Anthropic client needs the input as an object).
pub fn openai_to_anthropic(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut completion = object(body)?;
    let choice = match completion.get_mut("choices") {
        Some(Value::Array(choices)) if !choices.is_empty() => choices.swap_remove(0),
        _ => return Err("the answer has no choices".into()),
    };
    let Value::Object(mut choice) = choice else {
        return Err("the answer's choice is not an object".into());
    };
    let Some(Value::Object(mut message)) = choice.remove("message") else {
        return Err("the answer's choice has no message".into());
    };
    let mut content = Vec::new();
    for key in ["content", "refusal"] {
        if let Some(Value::String(text)) = message
            .remove(key)
            .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()))
        {
            content.push(json!({ "type": "text", "text": text }));
        }
    }
    if let Some(Value::Array(calls)) = message.remove("tool_calls") {
        for call in calls {
            content.push(tool_use(call)?);
        }
    }
    let stop_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    };
    let message = json!({
        "id": completion.remove("id").unwrap_or_default(),
        "type": "message",
        "role": "assistant",
        "model": completion.remove("model").unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": anthropic_usage(completion.get("usage")),
    });
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

/// An OpenAI tool call → a `tool_use` block; the arguments must be a JSON
/// object (empty arguments count as `{}`).
fn tool_use(call: Value) -> Result<Value, String> {
    let Value::Object(mut call) = call else {
        return Err("a tool call is not an object".into());
    };
    let id = call.remove("id").unwrap_or_default();
    let Some(Value::Object(mut function)) = call.remove("function") else {
        return Err(format!("tool call {id} has no function"));
    };
    let input = match function.get("arguments").and_then(Value::as_str) {
        None => json!({}),
        Some(a) if a.trim().is_empty() => json!({}),
        Some(a) => match serde_json::from_str::<Value>(a) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(format!(
                    "the arguments of tool call {id} are not a JSON object"
                ))
            }
        },
    };
    let name = function.remove("name").unwrap_or_default();
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

/// Anthropic's `stop_reason` → OpenAI's `finish_reason` (module docs).
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's `usage` → OpenAI's (module docs).
pub fn openai_usage(usage: Option<&Value>) -> Value {
    let n = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cache_read = n("cache_read_input_tokens");
    // Saturating: the counts are the upstream's, and may be anything.
    let prompt = n("input_tokens")
        .saturating_add(cache_read)
        .saturating_add(n("cache_creation_input_tokens"));
    let completion = n("output_tokens");
    let mut out = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": { "cached_tokens": cache_read },
    });
    let thinking = usage
        .and_then(|u| u.get("output_tokens_details"))
        .and_then(|d| d.get("thinking_tokens"))
        .and_then(Value::as_u64);
    if let Some(thinking) = thinking {
        out["completion_tokens_details"] = json!({ "reasoning_tokens": thinking });
    }
    out
}

/// OpenAI's `usage` → Anthropic's (module docs).
pub fn anthropic_usage(usage: Option<&Value>) -> Value {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let prompt = n(usage.and_then(|u| u.get("prompt_tokens")));
    let cached = n(usage.and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens")));
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": n(usage.and_then(|u| u.get("completion_tokens"))),
    })
}

/// The body as a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the answer is not a JSON object".into()),
        Err(e) => Err(format!("the answer is not valid JSON: {e}")),
    }
}

/// Seconds since the epoch, for `created`.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
