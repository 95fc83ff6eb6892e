//! Chat requests between the wires, and the sampling fix-up for Anthropic
//! passthrough.
//!
//! Each direction parses the body once into a [`serde_json::Value`], moves
//! its parts (strings, base64 images) into the other wire's shape without
//! copying them, and serialises once. Key order is not kept (JSON objects
//! have none).
//!
//! [`openai_to_anthropic`] is written in [`to_anthropic`]'s docs item by item;
//! [`anthropic_to_openai`] in [`to_openai`]'s. Both refuse with
//! [`Untranslatable`] what would give a silently different answer, and drop
//! what only tunes the answer where the other wire has no such knob.
//!
//! # Sampling parameters on newer Anthropic models
//!
//! Anthropic refuses (400) `temperature` together with `top_p` on Opus 4.1,
//! Sonnet 4.5, Haiku 4.5 and later models, and any of `temperature`, `top_p`,
//! `top_k` on Opus 4.7 and later and with `anthropic-version: 2026-10-21` or
//! newer, even at their default values. A client cannot understand such a
//! 400 from a fallback it did not choose, so [`sampling_rule`] decides from
//! the model and the version what the target accepts, and both the
//! translation and [`anthropic_sampling_fixup`] (same wire) drop what it
//! would refuse: all three, or `top_p` when both are set (the temperature
//! is kept, as Anthropic's own migration guide suggests). A model name that
//! is not recognised as a Claude model keeps what the client sent.

use memchr::memmem;
use serde_json::{Map, Value};

use super::Untranslatable;

pub mod to_anthropic;
pub mod to_openai;

/// Options of [`openai_to_anthropic`].
#[derive(Debug, Clone, Copy)]
pub struct ToAnthropic<'a> {
    /// The upstream model name (the deployment's `model`).
    pub model: &'a str,
    /// `max_tokens` when the request has neither `max_completion_tokens`
    /// nor `max_tokens` (Anthropic requires it).
    pub default_max_tokens: u32,
    /// The `anthropic-version` the request will be sent with.
    pub version: &'a str,
    /// Whether the target continues a final assistant message (a
    /// prefill). When it does not, a request ending with an assistant
    /// message is [`Untranslatable`]: the answer would not be the
    /// continuation the client asked for (or a 400 from the target).
    pub prefill: bool,
}

/// An OpenAI Chat Completions request → an Anthropic Messages request for
/// `opts.model` (`stream` as the OpenAI body had it).
///
/// See [`to_anthropic`] for what is mapped, refused and dropped.
pub fn openai_to_anthropic(body: &[u8], opts: &ToAnthropic<'_>) -> Result<Vec<u8>, Untranslatable> {
    to_anthropic::translate(body, opts)
}

/// Options of [`anthropic_to_openai`].
#[derive(Debug, Clone, Copy)]
pub struct ToOpenAi<'a> {
    /// The upstream model name (the deployment's `model`).
    pub model: &'a str,
    /// Whether the target continues a final assistant message (a
    /// prefill; most OpenAI-shaped servers answer it with a new message).
    /// When it does not, a request ending with an assistant message (an
    /// Anthropic client's prefill) is [`Untranslatable`].
    pub prefill: bool,
}

/// An Anthropic Messages request → an OpenAI Chat Completions request for
/// `opts.model`; a stream also asks for the usage chunk
/// (`stream_options.include_usage`).
///
/// See [`to_openai`] for what is mapped, refused and dropped.
pub fn anthropic_to_openai(body: &[u8], opts: &ToOpenAi<'_>) -> Result<Vec<u8>, Untranslatable> {
    to_openai::translate(body, opts)
}

/// Which sampling parameters an Anthropic target accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// `temperature`, `top_p` and `top_k`, in any combination.
    Any,
    /// Not `temperature` and `top_p` together: `top_p` is dropped then.
    TemperatureOrTopP,
    /// None of them (Opus 4.7+, or API version `2026-10-21` and newer).
    None,
}

/// The first API version whose requests may carry no sampling parameter.
const VERSION_WITHOUT_SAMPLING: &str = "2026-10-21";

/// What an Anthropic target accepts of the sampling parameters, from its
/// model name and the `anthropic-version` sent.
///
/// Model names are read in both of Anthropic's spellings
/// (`claude-opus-4-1-20250805`, `claude-3-5-sonnet-20241022`) and in the
/// cloud forms (`anthropic.claude-sonnet-4-5-20250929-v1:0`,
/// `claude-opus-4-7@…`, `claude-opus-4.7`).
pub fn sampling_rule(model: &str, version: &str) -> Sampling {
    if is_date(version) && version >= VERSION_WITHOUT_SAMPLING {
        return Sampling::None;
    }
    let Some((family, major, minor)) = claude_model(model) else {
        return Sampling::Any;
    };
    let at_least = |m: u32, n: u32| (major, minor) >= (m, n);
    match family {
        Family::Opus if at_least(4, 7) => Sampling::None,
        Family::Opus if at_least(4, 1) => Sampling::TemperatureOrTopP,
        Family::Sonnet | Family::Haiku if at_least(4, 5) => Sampling::TemperatureOrTopP,
        _ => Sampling::Any,
    }
}

/// Whether a Claude model is known to refuse an assistant prefill (a 400
/// "This model does not support assistant message prefill"): Claude 4.6
/// and later (Opus and Sonnet 4.6, Opus 4.7 and later, any later version
/// of a family, and the Mythos family). A name not recognised as a Claude
/// model is not known to refuse it.
pub fn rejects_prefill(model: &str) -> bool {
    match claude_model(model) {
        Some((Family::Mythos, _, _)) => true,
        Some((_, major, minor)) => (major, minor) >= (4, 6),
        None => false,
    }
}

/// Anthropic → Anthropic (passthrough) when the target refuses sampling
/// parameters (`rule`: [`sampling_rule`] of its model and version, which
/// the caller computes once per deployment): `Some(new body)` with them
/// dropped (or `temperature` + `top_p` reduced to `temperature`), `None`
/// when the body is fine as it is (also when it is not a JSON object: the
/// upstream will say so). With [`Sampling::Any`] the body is not even
/// looked at.
pub fn anthropic_sampling_fixup(body: &[u8], rule: Sampling) -> Option<Vec<u8>> {
    if rule == Sampling::Any {
        return None;
    }
    // Most requests carry no sampling parameter at all: no parse for them.
    let mentions = |key: &[u8]| memmem::find(body, key).is_some();
    if !mentions(b"\"temperature\"") && !mentions(b"\"top_p\"") && !mentions(b"\"top_k\"") {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    if !apply_sampling(value.as_object_mut()?, rule) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// Drops from an Anthropic request what `rule` refuses; true when it
/// changed anything.
pub(super) fn apply_sampling(request: &mut Map<String, Value>, rule: Sampling) -> bool {
    match rule {
        Sampling::Any => false,
        Sampling::TemperatureOrTopP => {
            let set = |k: &str| request.get(k).is_some_and(|v| !v.is_null());
            set("temperature") && set("top_p") && request.remove("top_p").is_some()
        }
        Sampling::None => {
            let mut changed = false;
            for key in ["temperature", "top_p", "top_k"] {
                changed |= request.remove(key).is_some();
            }
            changed
        }
    }
}

/// Claude model families, as the sampling rules name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Opus,
    Sonnet,
    Haiku,
    /// Claude Mythos (no sampling rule known; refuses prefill).
    Mythos,
}

/// The family and version of a Claude model name: the version numbers
/// follow the family (`claude-opus-4-1-…`) or, in the older spelling,
/// precede it (`claude-3-5-sonnet-…`). A date (8 digits) is not a version.
/// Allocates nothing: it walks the name's alphanumeric tokens.
fn claude_model(model: &str) -> Option<(Family, u32, u32)> {
    let tokens = || {
        model
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
    };
    let (at, family) = tokens().enumerate().find_map(|(i, t)| {
        let family = if t.eq_ignore_ascii_case("opus") {
            Family::Opus
        } else if t.eq_ignore_ascii_case("sonnet") {
            Family::Sonnet
        } else if t.eq_ignore_ascii_case("haiku") {
            Family::Haiku
        } else if t.eq_ignore_ascii_case("mythos") {
            Family::Mythos
        } else {
            return None;
        };
        Some((i, family))
    })?;
    // A version number has one or two digits; a date has eight.
    let number = |t: &str| {
        (t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u32>().ok())
            .flatten()
    };
    let mut after = tokens().skip(at + 1).map_while(number);
    if let Some(major) = after.next() {
        return Some((family, major, after.next().unwrap_or(0)));
    }
    // The older spelling: the (at most two) numbers right before the
    // family, e.g. `3-5-sonnet`.
    let mut last_two = (None, None);
    for t in tokens().take(at) {
        last_two = match number(t) {
            Some(n) => (last_two.1, Some(n)),
            None => (None, None),
        };
    }
    match last_two {
        (Some(major), Some(minor)) => Some((family, major, minor)),
        (None, Some(major)) => Some((family, major, 0)),
        // A family that has no numbered versions (yet).
        _ if family == Family::Mythos => Some((family, 0, 0)),
        _ => None,
    }
}

/// `YYYY-MM-DD`, so that versions compare as strings.
fn is_date(version: &str) -> bool {
    let b = version.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Shorthand for a refusal.
pub(super) fn refuse<T>(why: impl Into<String>) -> Result<T, Untranslatable> {
    Err(Untranslatable(why.into()))
}

/// The body as a JSON object.
pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Untranslatable> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => refuse("the request body is not a JSON object"),
        Err(e) => refuse(format!("the request body is not valid JSON: {e}")),
    }
}

/// The translated request's bytes.
pub(super) fn serialise(request: Map<String, Value>) -> Result<Vec<u8>, Untranslatable> {
    serde_json::to_vec(&Value::Object(request))
        .or_else(|e| refuse(format!("the translated request cannot be written: {e}")))
}

#[cfg(test)]
mod tests;
