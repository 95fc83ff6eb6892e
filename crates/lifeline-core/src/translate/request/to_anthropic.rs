//! OpenAI Chat Completions → Anthropic Messages.
//!
//! Mapped:
//!
//! - `system` and `developer` messages, wherever they stand, → the top-level
//!   `system` string, their texts joined with `"\n"` (as Anthropic's own
//!   OpenAI compatibility layer hoists them).
//! - `user`/`assistant` content, a string or parts: `text` → text blocks;
//!   `image_url` with a `data:…;base64,` URL → an `image` block with a
//!   `base64` source (the media type split off), any other URL → a `url`
//!   source; `detail` is dropped. A `refusal` (part or field) of an earlier
//!   assistant turn becomes its text; `image/jpg` is sent as `image/jpeg`.
//!   Texts that are empty or only whitespace are left out, and a turn left
//!   empty is dropped (Anthropic refuses both with a 400).
//! - assistant `tool_calls` → `tool_use` blocks after the turn's text, with
//!   `input` = the parsed `arguments` (an empty string counts as `{}`).
//! - `tool` messages → `tool_result` blocks of one user turn, placed before
//!   any text of that turn (Anthropic requires it); an empty result has no
//!   `content`.
//! - Consecutive turns of one role are merged into one turn (Anthropic
//!   requires alternation; its API merges them the same way). A turn that
//!   is one plain text is sent as a string.
//! - A final assistant message is Anthropic's prefill, kept as such, its
//!   trailing whitespace trimmed (Anthropic refuses it with a 400). To a
//!   target that refuses a prefill (`ToAnthropic::prefill` false: Claude
//!   4.6 and later) such a request is refused ([`Untranslatable`]).
//! - `tools` (`function` tools) → `{name, description, input_schema, strict}`
//!   (no `parameters` → an empty object schema); `tool_choice` `none`/`auto`/
//!   `required`/named → `none`/`auto`/`any`/`{type:"tool",name}`;
//!   `parallel_tool_calls: false` → `disable_parallel_tool_use: true`.
//!   Without tools, `tool_choice` and `parallel_tool_calls` are dropped.
//! - `max_completion_tokens`, else `max_tokens`, else the configured default
//!   → `max_tokens` (required by Anthropic; LiteLLM defaults to 4096, Bifrost
//!   to the model's maximum: here the deployment's configuration says).
//! - `stop` (string or array) → `stop_sequences`, whitespace-only sequences
//!   dropped (Anthropic refuses them).
//! - `temperature` capped at 1 (OpenAI's range is 0–2, Anthropic's 0–1, as
//!   the compatibility layer does); `top_p`; `top_k` (a vLLM extension);
//!   then [`super::sampling_rule`] for the target model and version.
//! - `user` (else `safety_identifier`) → `metadata.user_id`; `stream` as is;
//!   `response_format` `json_schema` → `output_config.format`.
//!
//! Refused ([`Untranslatable`]): `n > 1`; `logprobs`/`top_logprobs`;
//! audio output (`audio`, `modalities` with `audio`); `response_format`
//! `json_object` (Anthropic has JSON schemas only); a non-empty
//! `logit_bias`; `input_audio` and `file` parts; images in `tool` messages;
//! tool call `arguments` that are not a JSON object; legacy
//! `functions`/`function_call`/`function` messages; non-function tools and
//! the `allowed_tools` choice; `web_search_options`.
//!
//! Where gateways differ, refusing is chosen whenever the answer would
//! otherwise differ in form: for `n > 1` Anthropic's compatibility layer
//! requires 1 and LiteLLM errors unless told to drop parameters, but
//! Portkey drops it and returns one choice, which breaks a client that
//! reads `choices[1]`; `logprobs` are ignored by the compatibility layer and
//! answered with `logprobs: null` by Portkey, which a client that asked for
//! them cannot use; for `json_object` LiteLLM forces a synthetic tool and
//! returns its arguments as the content, and the compatibility layer
//! ignores it (an answer that may not be JSON at all). Another deployment
//! of the model, of OpenAI's protocol, gives the answer the client asked
//! for.
//!
//! Dropped silently, as Anthropic's compatibility layer does: `seed`
//! (LiteLLM refuses it unless told to drop parameters; Anthropic has no
//! seeded sampling, and a seed only makes repeats likelier),
//! `presence_penalty` and `frequency_penalty` (Anthropic has no penalties;
//! a client that relies on them against repetition gets the model's own
//! behaviour, as through the compatibility layer), `stream_options` (the stream
//! transcoder produces the usage chunk itself), `service_tier`, `store`,
//! `metadata` (OpenAI's stored-completion tags; Anthropic's `metadata` holds
//! only `user_id`), `reasoning_effort` (extended thinking would need
//! model-specific budgets and returns blocks an OpenAI client cannot
//! replay), `prediction`, `prompt_cache_key`, `verbosity`, a user message's
//! `name`, and any field unknown to both.

use serde_json::{json, Map, Value};

use super::{apply_sampling, parse_object, refuse, sampling_rule, serialise, ToAnthropic};
use crate::translate::Untranslatable;

/// See the module docs.
pub(super) fn translate(body: &[u8], opts: &ToAnthropic<'_>) -> Result<Vec<u8>, Untranslatable> {
    let mut req = parse_object(body)?;
    refuse_untranslatable(&req)?;
    let mut out = Map::new();
    out.insert("model".into(), opts.model.into());

    let (system, messages) = messages(req.remove("messages"))?;
    if !opts.prefill && messages.last().is_some_and(|m| m["role"] == "assistant") {
        return refuse(
            "the conversation ends with an assistant message (a prefill), which this Claude model does not continue",
        );
    }
    if !system.is_empty() {
        out.insert("system".into(), system.into());
    }
    out.insert("messages".into(), messages.into());

    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| req.get(*k).and_then(Value::as_u64))
        .unwrap_or(u64::from(opts.default_max_tokens));
    out.insert("max_tokens".into(), max_tokens.into());

    if let Some(stop) = stop_sequences(req.remove("stop")) {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(t) = req.remove("temperature").filter(Value::is_number) {
        let capped = if t.as_f64().is_some_and(|t| t > 1.0) {
            json!(1.0)
        } else {
            t
        };
        out.insert("temperature".into(), capped);
    }
    for key in ["top_p", "top_k"] {
        if let Some(v) = req.remove(key).filter(Value::is_number) {
            out.insert(key.into(), v);
        }
    }
    apply_sampling(&mut out, sampling_rule(opts.model, opts.version));

    let user = ["user", "safety_identifier"].into_iter().find_map(|k| {
        req.remove(k)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    });
    if let Some(user) = user {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(stream) = req.remove("stream").filter(Value::is_boolean) {
        out.insert("stream".into(), stream);
    }
    tools(&mut req, &mut out)?;
    if let Some(format) = response_format(req.remove("response_format"))? {
        out.insert("output_config".into(), json!({ "format": format }));
    }
    serialise(out)
}

/// The fields whose meaning Anthropic cannot give.
fn refuse_untranslatable(req: &Map<String, Value>) -> Result<(), Untranslatable> {
    let get = |k: &str| req.get(k).filter(|v| !v.is_null());
    if get("n").and_then(Value::as_f64).is_some_and(|n| n > 1.0) {
        return refuse("n > 1 cannot be translated to Anthropic (it returns one candidate)");
    }
    if get("logprobs").and_then(Value::as_bool) == Some(true)
        || get("top_logprobs")
            .and_then(Value::as_f64)
            .is_some_and(|n| n > 0.0)
    {
        return refuse(
            "logprobs cannot be translated to Anthropic (it returns no token probabilities)",
        );
    }
    let audio_out = get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|m| m == "audio"));
    if get("audio").is_some() || audio_out {
        return refuse("audio output cannot be translated to Anthropic");
    }
    if get("logit_bias").is_some_and(|b| b.as_object().is_none_or(|b| !b.is_empty())) {
        return refuse("logit_bias cannot be translated to Anthropic");
    }
    if get("functions").is_some() || get("function_call").is_some() {
        return refuse(
            "legacy functions/function_call cannot be translated to Anthropic (use tools)",
        );
    }
    if get("web_search_options").is_some() {
        return refuse("web_search_options cannot be translated to Anthropic");
    }
    Ok(())
}

/// One Anthropic turn being built.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// The system text and the Anthropic turns of OpenAI's `messages`.
fn messages(messages: Option<Value>) -> Result<(String, Vec<Value>), Untranslatable> {
    let Some(Value::Array(messages)) = messages else {
        return refuse("messages is not an array");
    };
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        let Value::Object(mut m) = message else {
            return refuse(format!("messages[{i}] is not an object"));
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                let text = system_text(m.remove("content"), i)?;
                if !text.trim().is_empty() {
                    system.push(text);
                }
                continue;
            }
            "user" => ("user", content_blocks(m.remove("content"), i)?),
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" => ("user", vec![tool_result(m, i)?]),
            "function" => {
                return refuse(
                    "legacy function messages cannot be translated to Anthropic (use tools)",
                )
            }
            other => {
                return refuse(format!(
                    "messages[{i}]: role {other:?} has no Anthropic equivalent"
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    if let Some(last) = turns.last_mut().filter(|t| t.role == "assistant") {
        trim_prefill(&mut last.blocks);
        if last.blocks.is_empty() {
            turns.pop();
        }
    }
    let turns = turns.into_iter().map(|mut turn| {
        if turn.role == "user" {
            // Tool results first: a stable partition keeps each side's order.
            let (mut results, rest): (Vec<Value>, Vec<Value>) = turn
                .blocks
                .into_iter()
                .partition(|b| b["type"] == "tool_result");
            results.extend(rest);
            turn.blocks = results;
        }
        json!({ "role": turn.role, "content": compact(turn.blocks) })
    });
    Ok((system.join("\n"), turns.collect()))
}

/// A system or developer message's text (a string or text parts).
fn system_text(content: Option<Value>, i: usize) -> Result<String, Untranslatable> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match (
                    part["type"].as_str(),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(text)) => texts.push(text.to_owned()),
                    _ => {
                        return refuse(format!(
                            "messages[{i}]: a system message may hold only text"
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => refuse(format!(
            "messages[{i}]: content is neither a string nor an array"
        )),
    }
}

/// User (or assistant) content → Anthropic blocks.
fn content_blocks(content: Option<Value>, i: usize) -> Result<Vec<Value>, Untranslatable> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(text_block(s).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return refuse(format!(
                "messages[{i}]: content is neither a string nor an array"
            ))
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for part in parts {
        let Value::Object(mut part) = part else {
            return refuse(format!("messages[{i}]: a content part is not an object"));
        };
        let kind = part
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "text" | "refusal" => {
                if let Some(Value::String(s)) = part.remove(kind.as_str()) {
                    blocks.extend(text_block(s));
                }
            }
            "image_url" => blocks.push(image_block(part.remove("image_url"), i)?),
            "input_audio" => {
                return refuse("audio input (input_audio parts) cannot be translated to Anthropic")
            }
            "file" => return refuse("file parts cannot be translated to Anthropic"),
            other => {
                return refuse(format!(
                    "content parts of type {other:?} cannot be translated to Anthropic"
                ))
            }
        }
    }
    Ok(blocks)
}

/// A text block, or none for a text that is empty or only whitespace
/// (Anthropic refuses both: "text content blocks must contain
/// non-whitespace text").
fn text_block(text: String) -> Option<Value> {
    (!text.trim().is_empty()).then(|| json!({ "type": "text", "text": text }))
}

/// An `image_url` part → an image block: a data URL becomes a base64
/// source, anything else a URL source.
fn image_block(image: Option<Value>, i: usize) -> Result<Value, Untranslatable> {
    let url = match image {
        Some(Value::Object(mut image)) => image.remove("url"),
        other => other,
    };
    let Some(Value::String(mut url)) = url else {
        return refuse(format!("messages[{i}]: an image_url part without a url"));
    };
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    };
    let Some((meta, _)) = rest.split_once(',') else {
        return refuse(format!("messages[{i}]: an image data URL without data"));
    };
    let mut params = meta.split(';');
    let media_type = match params.next().unwrap_or_default() {
        // A common misspelling that Anthropic refuses.
        "image/jpg" => "image/jpeg".to_owned(),
        other => other.to_owned(),
    };
    if !params.any(|p| p == "base64") {
        return refuse(format!(
            "messages[{i}]: an image data URL that is not base64"
        ));
    }
    // The data stays in the URL's buffer: only its prefix is removed.
    let data_at = "data:".len() + meta.len() + 1;
    url.drain(..data_at);
    Ok(json!({
        "type": "image",
        "source": { "type": "base64", "media_type": media_type, "data": url },
    }))
}

/// An assistant message → text blocks then `tool_use` blocks.
fn assistant_blocks(mut m: Map<String, Value>, i: usize) -> Result<Vec<Value>, Untranslatable> {
    if m.get("audio").is_some_and(|a| !a.is_null()) {
        return refuse("assistant audio cannot be translated to Anthropic");
    }
    if m.get("function_call").is_some_and(|f| !f.is_null()) {
        return refuse("legacy function_call cannot be translated to Anthropic (use tools)");
    }
    let mut blocks = content_blocks(m.remove("content"), i)?;
    if blocks.is_empty() {
        if let Some(Value::String(refusal)) = m.remove("refusal") {
            blocks.extend(text_block(refusal));
        }
    }
    let calls = match m.remove("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls,
        Some(_) => return refuse(format!("messages[{i}]: tool_calls is not an array")),
    };
    for call in calls {
        blocks.push(tool_use(call, i)?);
    }
    Ok(blocks)
}

/// One OpenAI tool call → a `tool_use` block.
fn tool_use(call: Value, i: usize) -> Result<Value, Untranslatable> {
    let Value::Object(mut call) = call else {
        return refuse(format!("messages[{i}]: a tool call is not an object"));
    };
    if call
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "function")
    {
        return refuse("tool calls other than function calls cannot be translated to Anthropic");
    }
    let id = call.remove("id").unwrap_or_default();
    let mut function = match call.remove("function") {
        Some(Value::Object(f)) => f,
        _ => return refuse(format!("messages[{i}]: a tool call without a function")),
    };
    let name = function.remove("name").unwrap_or_default();
    let input = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(a)) if a.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(a)) => match serde_json::from_str::<Value>(a) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return refuse(format!(
                    "the arguments of tool call {id} are not a JSON object"
                ))
            }
            Err(_) => {
                return refuse(format!(
                    "the arguments of tool call {id} are not valid JSON"
                ))
            }
        },
        Some(Value::Object(a)) => Value::Object(a.clone()),
        Some(_) => {
            return refuse(format!(
                "the arguments of tool call {id} are not a JSON string"
            ))
        }
    };
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

/// A `tool` message → a `tool_result` block (its text; images refused).
/// An empty result has no `content` (Anthropic refuses empty text).
fn tool_result(mut m: Map<String, Value>, i: usize) -> Result<Value, Untranslatable> {
    let Some(id @ Value::String(_)) = m.remove("tool_call_id") else {
        return refuse(format!(
            "messages[{i}]: a tool message without tool_call_id"
        ));
    };
    let content = match m.remove("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => (!s.trim().is_empty()).then_some(Value::String(s)),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                let text = match part {
                    Value::Object(mut p)
                        if p.get("type").and_then(Value::as_str) == Some("text") =>
                    {
                        p.remove("text")
                    }
                    _ => None,
                };
                let Some(Value::String(text)) = text else {
                    return refuse(
                        "image results in tool messages cannot be translated to Anthropic",
                    );
                };
                blocks.extend(text_block(text));
            }
            (!blocks.is_empty()).then_some(Value::Array(blocks))
        }
        Some(_) => {
            return refuse(format!(
                "messages[{i}]: content is neither a string nor an array"
            ))
        }
    };
    let mut block = json!({ "type": "tool_result", "tool_use_id": id });
    if let Some(content) = content {
        block["content"] = content;
    }
    Ok(block)
}

/// Anthropic refuses a prefill that ends with whitespace: trim the last
/// text block, and drop it if nothing is left.
fn trim_prefill(blocks: &mut Vec<Value>) {
    let Some(last) = blocks.last_mut().filter(|b| b["type"] == "text") else {
        return;
    };
    if let Some(Value::String(text)) = last.get_mut("text") {
        text.truncate(text.trim_end().len());
        if text.is_empty() {
            blocks.pop();
        }
    }
}

/// One plain text block is sent as a string, as a native client writes it.
fn compact(mut blocks: Vec<Value>) -> Value {
    let plain = blocks.len() == 1
        && blocks[0]["type"] == "text"
        && blocks[0].as_object().is_some_and(|b| b.len() == 2);
    match blocks.pop() {
        Some(Value::Object(mut block)) if plain => block.remove("text").unwrap_or_default(),
        Some(block) => {
            blocks.push(block);
            Value::Array(blocks)
        }
        None => Value::Array(blocks),
    }
}

/// `stop` → `stop_sequences`, without whitespace-only sequences.
fn stop_sequences(stop: Option<Value>) -> Option<Value> {
    let keep = |s: &String| !s.trim().is_empty();
    let sequences: Vec<Value> = match stop? {
        Value::String(s) => keep(&s).then_some(Value::String(s)).into_iter().collect(),
        Value::Array(a) => a
            .into_iter()
            .filter(|v| matches!(v, Value::String(s) if keep(s)))
            .collect(),
        _ => Vec::new(),
    };
    (!sequences.is_empty()).then_some(Value::Array(sequences))
}

/// `tools`, `tool_choice`, `parallel_tool_calls`.
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
        if tool
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "function")
        {
            return refuse("tools other than function tools cannot be translated to Anthropic");
        }
        let Some(Value::Object(mut f)) = tool.remove("function") else {
            return refuse("a function tool without its function");
        };
        let mut t = Map::new();
        t.insert("name".into(), f.remove("name").unwrap_or_default());
        if let Some(d) = f.remove("description").filter(|d| !d.is_null()) {
            t.insert("description".into(), d);
        }
        let schema = f
            .remove("parameters")
            .filter(|p| !p.is_null())
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        t.insert("input_schema".into(), schema);
        if let Some(s) = f.remove("strict").filter(Value::is_boolean) {
            t.insert("strict".into(), s);
        }
        mapped.push(Value::Object(t));
    }
    out.insert("tools".into(), mapped.into());

    let mut choice = match req.remove("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "none" => Some(json!({ "type": "none" })),
            "auto" => Some(json!({ "type": "auto" })),
            "required" => Some(json!({ "type": "any" })),
            other => {
                return refuse(format!(
                    "tool_choice {other:?} cannot be translated to Anthropic"
                ))
            }
        },
        Some(Value::Object(c)) => match (c.get("type").and_then(Value::as_str), &c.get("function"))
        {
            (Some("function"), Some(f)) => Some(json!({ "type": "tool", "name": f["name"] })),
            _ => return refuse("this tool_choice cannot be translated to Anthropic"),
        },
        Some(_) => return refuse("tool_choice is neither a string nor an object"),
    };
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    Ok(())
}

/// `response_format`: `json_schema` → `output_config.format`; `text` is the
/// default; `json_object` is refused.
fn response_format(format: Option<Value>) -> Result<Option<Value>, Untranslatable> {
    let Some(Value::Object(mut format)) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_schema") => {
            let schema = match format.remove("json_schema") {
                Some(Value::Object(mut s)) => s.remove("schema").filter(Value::is_object),
                _ => None,
            };
            let Some(schema) = schema else {
                return refuse("response_format json_schema without a schema cannot be translated to Anthropic");
            };
            Ok(Some(json!({ "type": "json_schema", "schema": schema })))
        }
        Some("json_object") => refuse("response_format json_object cannot be translated to Anthropic (it has JSON schemas only)"),
        Some(other) => refuse(format!("response_format {other:?} cannot be translated to Anthropic")),
    }
}
