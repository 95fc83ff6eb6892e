//! What to answer: reads the conversation of a chat completion or an
//! Anthropic message request and decides between plain words, the
//! continuation of an assistant prefill, the "instruction to continue"
//! answer, and a tool call.
//!
//! The rules, in order:
//!
//! 1. The last message is a tool result (OpenAI `role: "tool"`, Anthropic a
//!    user message with a `tool_result` block): plain words.
//! 2. The last message is the assistant's: a prefill. Its `k` words are
//!    taken as the first `k` words of the answer, which continues with
//!    words `k+1 ..= N` (a leading space first, unless the prefill is empty
//!    or ends in whitespace), as llama.cpp, vLLM and Anthropic continue a
//!    trailing assistant message. Refused when `reject_prefill` is set, and
//!    on Anthropic's wire when the prefill ends in whitespace.
//! 3. Tools are offered, the tool choice is not `none`, and either the tool
//!    choice requires a call or the last user text mentions `weather`: one
//!    call to the named (else the first) tool with `{"city":"Paris"}`.
//! 4. The last message is a user message containing `continue` right after
//!    an assistant turn of `k` words: the last three words of that turn
//!    verbatim, then words `k+1 ..= N`, so a gateway can find the seam.
//! 5. Otherwise plain words `1 ..= N`.
//!
//! `N` is the length the answer has without any of this (the request's
//! limit or the configured length), so a client that joins a prefill and
//! its continuation sees exactly the answer an unbroken stream would have
//! carried.

use std::fmt::Write as _;

use serde_json::Value;

/// Which API's request shape is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    OpenAi,
    Anthropic,
}

/// Arguments of every tool call the mock makes.
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;
/// [`TOOL_ARGUMENTS`] in the two fragments a stream sends.
pub(crate) const TOOL_FRAGMENTS: [&str; 2] = [r#"{"city":"#, r#""Paris"}"#];
/// Output tokens a tool call counts.
pub(crate) const TOOL_CALL_TOKENS: u32 = 8;
/// How many words of the partial answer the instruction answer repeats.
const SEAM_WORDS: usize = 3;

/// The answer to give.
#[derive(Debug)]
pub(crate) enum Reply {
    Text(Words),
    /// One call to the tool of this name.
    Tool(String),
}

/// Why a request is refused with a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A trailing assistant message while `reject_prefill` is set.
    Prefill,
    /// Anthropic: a prefill ending in whitespace.
    TrailingWhitespace,
}

/// The text of an answer as a sequence of tokens: some words repeated
/// verbatim, then the generated words `{stem}{first} ..= {stem}{last}`.
#[derive(Debug)]
pub(crate) struct Words {
    repeat: Vec<String>,
    stem: String,
    first: u32,
    last: u32,
    /// Whether the first token starts with a space (it continues a prefill).
    leading_space: bool,
}

impl Words {
    /// Words `1 ..= n`.
    pub(crate) fn plain(stem: &str, n: u32) -> Self {
        Self::numbered(stem, 1, n)
    }

    fn numbered(stem: &str, first: u32, last: u32) -> Self {
        Self {
            repeat: Vec::new(),
            stem: stem.to_owned(),
            first,
            last,
            leading_space: false,
        }
    }

    /// How many tokens (words) the answer has.
    pub(crate) fn tokens(&self) -> u32 {
        let repeated = u32::try_from(self.repeat.len()).unwrap_or(u32::MAX);
        let generated = (self.last.saturating_add(1)).saturating_sub(self.first);
        repeated.saturating_add(generated)
    }

    /// Appends token `i` (0-based) to `out`: the word, with a space before
    /// it unless it is the first of an answer that starts afresh.
    pub(crate) fn push_piece(&self, i: u32, out: &mut String) {
        if i > 0 || self.leading_space {
            out.push(' ');
        }
        let index = i as usize;
        match self.repeat.get(index) {
            Some(word) => out.push_str(word),
            None => {
                let offset = i - u32::try_from(self.repeat.len()).unwrap_or(u32::MAX);
                let _ = write!(out, "{}{}", self.stem, self.first + offset);
            }
        }
    }

    /// Token `i` as a string.
    pub(crate) fn piece(&self, i: u32) -> String {
        let mut out = String::with_capacity(self.stem.len() + 8);
        self.push_piece(i, &mut out);
        out
    }

    /// The whole text.
    pub(crate) fn text(&self) -> String {
        let n = self.tokens();
        let mut out = String::with_capacity(n as usize * (self.stem.len() + 7));
        for i in 0..n {
            self.push_piece(i, &mut out);
        }
        out
    }
}

fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The text of a message's content: a string, or its text parts joined.
pub(crate) fn text_of(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn is_tool_result(message: &Value, wire: Wire) -> bool {
    match wire {
        Wire::OpenAi => matches!(role(message), "tool" | "function"),
        Wire::Anthropic => {
            role(message) == "user"
                && message
                    .get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|blocks| {
                        blocks.iter().any(|block| {
                            block.get("type").and_then(Value::as_str) == Some("tool_result")
                        })
                    })
        }
    }
}

/// The tool to call, if the request's tools and tool choice (and the last
/// user text) ask for one.
fn tool_to_call(json: &Value, wire: Wire, last: Option<&Value>) -> Option<String> {
    let tools = json.get("tools").and_then(Value::as_array)?;
    let name_of = |tool: &Value| {
        let name = match wire {
            Wire::OpenAi => tool.pointer("/function/name"),
            Wire::Anthropic => tool.get("name"),
        };
        name.and_then(Value::as_str).map(str::to_owned)
    };
    let first = tools.iter().find_map(name_of)?;
    let choice = json.get("tool_choice");
    let (forced, named) = match (wire, choice) {
        (_, None | Some(Value::Null)) => (false, None),
        (Wire::OpenAi, Some(Value::String(mode))) => match mode.as_str() {
            "none" => return None,
            "required" => (true, None),
            _ => (false, None),
        },
        (Wire::OpenAi, Some(choice)) => {
            let named = choice.pointer("/function/name").and_then(Value::as_str);
            (named.is_some(), named)
        }
        (Wire::Anthropic, Some(choice)) => match choice.get("type").and_then(Value::as_str) {
            Some("none") => return None,
            Some("any") => (true, None),
            Some("tool") => (true, choice.get("name").and_then(Value::as_str)),
            _ => (false, None),
        },
    };
    let asks = forced
        || last.is_some_and(|message| {
            role(message) == "user" && text_of(message).to_lowercase().contains("weather")
        });
    asks.then(|| named.map_or(first, str::to_owned))
}

/// Decides the answer to a request whose plain answer has `total` words.
pub(crate) fn decide(
    json: &Value,
    wire: Wire,
    stem: &str,
    total: u32,
    reject_prefill: bool,
) -> Result<Reply, Refusal> {
    let messages = json
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let last = messages.last();
    if last.is_some_and(|message| is_tool_result(message, wire)) {
        return Ok(Reply::Text(Words::plain(stem, total)));
    }
    if let Some(prefill) = last.filter(|message| role(message) == "assistant") {
        if reject_prefill {
            return Err(Refusal::Prefill);
        }
        let text = text_of(prefill);
        let trimmed = text.trim_end();
        if wire == Wire::Anthropic && trimmed.len() != text.len() {
            return Err(Refusal::TrailingWhitespace);
        }
        let k = u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX);
        let mut words = Words::numbered(stem, k.saturating_add(1), total);
        words.leading_space = !trimmed.is_empty() && trimmed.len() == text.len();
        return Ok(Reply::Text(words));
    }
    if let Some(tool) = tool_to_call(json, wire, last) {
        return Ok(Reply::Tool(tool));
    }
    if let [.., partial, request] = messages {
        let asks = role(request) == "user"
            && role(partial) == "assistant"
            && text_of(request).to_lowercase().contains("continue");
        if asks {
            let text = text_of(partial);
            let said: Vec<&str> = text.split_whitespace().collect();
            let k = u32::try_from(said.len()).unwrap_or(u32::MAX);
            let mut words = Words::numbered(stem, k.saturating_add(1), total);
            let seam = said.len().saturating_sub(SEAM_WORDS);
            words.repeat = said[seam..].iter().map(|word| (*word).to_owned()).collect();
            return Ok(Reply::Text(words));
        }
    }
    Ok(Reply::Text(Words::plain(stem, total)))
}
