//! Translation between OpenAI Chat Completions and Anthropic Messages.
//!
//! A model's tiers may mix deployments of both protocols, and clients may
//! speak either one, so a request, its answer and its errors sometimes have
//! to cross from one wire to the other. This module does that crossing and
//! nothing else: pure functions from bytes to bytes, no I/O, no knowledge of
//! the request path (layer 1: it imports only serde_json and bytes).
//!
//! - [`request`]: chat requests both ways, and the sampling fix-up that
//!   Anthropic → Anthropic passthrough needs for models and API versions that
//!   refuse sampling parameters.
//! - [`response`]: whole (non-streaming) answers both ways.
//! - [`error`]: provider error bodies both ways, same HTTP status.
//! - [`stream`]: a streamed answer, event by event, from one grammar to the
//!   other ([`stream::Transcoder`]).
//!
//! What cannot be translated faithfully (e.g. `n > 1` or `logprobs` to
//! Anthropic, extended thinking to OpenAI) is refused with an
//! [`Untranslatable`] that says why: the deployment becomes ineligible for
//! the request and the reason reaches the final error, rather than the
//! client getting a silently different answer. What is dropped on purpose,
//! and each choice where gateways differ, is written in the docs of the
//! function that does it and in the README ("Translation between OpenAI and
//! Anthropic").

use std::fmt;

/// A protocol on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

/// Why a request cannot be translated faithfully to the other wire: the
/// deployment is ineligible for it. The text is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable(pub String);

impl fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Untranslatable {}

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod testing;
