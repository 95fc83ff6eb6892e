//! Translation between OpenAI's Chat Completions API and Anthropic's
//! Messages API, as pure functions (no I/O): a deployment of one protocol
//! can answer a client of the other.
//!
//! - [`stream`]: a streamed answer, event by event, from one grammar to the
//!   other ([`stream::Transcoder`]).

pub mod stream;

/// The protocol a client speaks or a deployment answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI's Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic's Messages (`POST /v1/messages`).
    Anthropic,
}
