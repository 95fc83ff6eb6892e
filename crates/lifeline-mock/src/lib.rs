//! A simulated OpenAI- and Anthropic-compatible provider with injectable
//! faults.
//!
//! Lifeline's demo, tests, benchmarks and chaos scenarios all need an upstream
//! that speaks the OpenAI HTTP API (and Anthropic's Messages API on
//! `/v1/messages`, on the same address), streams token by token at a known
//! rate, and fails on command: errors, 429 bursts, latency, hangs, TCP
//! resets, mid-stream cuts, stalls, malformed chunks, missing terminators,
//! maintenance 503s, and the whole process dying and coming back. It
//! continues an assistant prefill (or refuses it, on command), answers a
//! request to continue with a findable seam, and calls tools, so stream
//! continuation and protocol translation can be tested end to end. This
//! crate is that upstream.
//!
//! # Layout
//!
//! - [`server`]: accept loop, one task per connection, kill/revive, resets.
//! - `router`: path routing, fault injection, the `/_mock/*` control API.
//! - `chat`, `messages`, `embeddings`, `images`, `responses`: one file per
//!   endpoint.
//! - `convo`: what a chat or messages request is answered with (plain
//!   words, prefill continuation, the instruction-to-continue seam, a tool
//!   call).
//! - `body`: the response body types (whole and paced SSE) and the guard that
//!   counts a request as completed or cancelled.
//! - [`stats`]: what the mock saw, for assertions.
//!
//! Faults and settings can be changed at run time through [`MockHandle`] or
//! over HTTP (`POST /_mock/faults`, `PUT /_mock/config`).

mod body;
mod chat;
mod convo;
mod embeddings;
mod images;
mod messages;
mod reply;
mod responses;
mod router;
pub mod server;
pub mod stats;

#[cfg(test)]
mod tests;

pub use server::{MockHandle, MockServer};
pub use stats::{redact, RecordedRequest, Stats};

/// Settings of one simulated provider.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Appears in generated text and in `system_fingerprint`, so a test can
    /// tell which of several mocks answered.
    pub name: String,
    /// Streaming rate; 0 or less streams as fast as possible.
    pub tokens_per_second: f64,
    /// Delay before the first stream chunk.
    pub ttft_ms: u64,
    /// Tokens per answer when the request sets no `max_tokens` /
    /// `max_completion_tokens` / `max_output_tokens`.
    pub completion_tokens: u32,
    /// The model's context window in tokens, if limited: a chat completion
    /// or response whose prompt (about one token per four request-body
    /// bytes) is larger is answered 400 `context_length_exceeded`, in
    /// OpenAI's shape, like a real provider.
    pub context_window: Option<u32>,
    /// The stem of generated words instead of `name` (`{voice}1 {voice}2
    /// ...`), so several mocks can be deployments of one model with
    /// identical, deterministic output (replay tests). `name` still marks
    /// `system_fingerprint`.
    pub voice: Option<String>,
    /// Faults injected into data-path requests.
    pub faults: Faults,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            name: "mock".to_owned(),
            tokens_per_second: 200.0,
            ttft_ms: 20,
            completion_tokens: 16,
            context_window: None,
            voice: None,
            faults: Faults::default(),
        }
    }
}

/// Injectable faults. All default to off. The JSON shape of
/// `POST /_mock/faults` is exactly this struct.
///
/// They are checked in this order: `maintenance`, `reset`, `hang`,
/// `capacity`, `rpm_quota`, `rate_limit_rate`, `error_rate`, `latency_ms`, then the
/// normal answer (`reject_prefill` refusing it) with the stream faults
/// applied. On `/v1/messages` errors take Anthropic's shape (the type from
/// the status: 429 `rate_limit_error`, 529 `overloaded_error`, ...;
/// `error_code` is OpenAI's only), and stream faults count Anthropic's
/// events (`ping` included); `no_done` drops `message_stop`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction in [0, 1] of requests answered with `error_status`.
    pub error_rate: f64,
    /// Status of injected errors; 0 means 500.
    pub error_status: u16,
    /// `code` in the injected error body, e.g. `context_length_exceeded`.
    pub error_code: Option<String>,
    /// Fraction in [0, 1] of requests answered 429.
    pub rate_limit_rate: f64,
    /// A provider's concurrency limit: a request arriving while more than
    /// this many are in flight (itself included) is answered 429 (with
    /// `retry_after_secs`, if set), counted in `Stats::over_capacity`. Not
    /// limited by `max_injected`.
    pub capacity: Option<u32>,
    /// `Retry-After` on 429s and maintenance 503s when set.
    pub retry_after_secs: Option<u64>,
    /// Added before the response headers.
    pub latency_ms: u64,
    /// Extra delay before the first stream chunk.
    pub first_token_delay_ms: u64,
    /// Accept and never answer, until the client goes away.
    pub hang: bool,
    /// Reset the TCP connection (RST) before any response byte.
    pub reset: bool,
    /// Stream: after N chunks abort the connection (no terminal chunk).
    pub cut_after_chunks: Option<u32>,
    /// Stream: after N chunks stop sending but keep the connection open.
    pub stall_after_chunks: Option<u32>,
    /// Stream: chunk N (0-based) is `data: {"broken\n\n` (invalid JSON).
    pub malformed_chunk_at: Option<u32>,
    /// Stream: after N chunks send an in-band error event and end the
    /// stream there (HTTP 200 already sent): chat `data: {"error":{...}}`,
    /// `/v1/messages` `event: error` (`overloaded_error`), responses
    /// `event: error`.
    pub error_after_chunks: Option<u32>,
    /// Stream: end cleanly but without `data: [DONE]` (`message_stop` on
    /// `/v1/messages`, `response.completed` on responses).
    pub no_done: bool,
    /// 503 `service_unavailable` / `maintenance` to everything.
    pub maintenance: bool,
    /// At most this many requests get a `rate_limit_rate` or `error_rate`
    /// answer after the faults (or the config) are set; later requests are
    /// answered normally, as after a passing blip. Unlimited when unset.
    pub max_injected: Option<u32>,
    /// Refuse assistant prefill: a request whose last message is the
    /// assistant's is answered 400 (chat: OpenAI's shape, a message about
    /// the trailing assistant message; `/v1/messages`: Anthropic's
    /// `invalid_request_error` "This model does not support assistant
    /// message prefill. ..."), as Anthropic's newest models and servers
    /// without prefill do. Not limited by `max_injected`.
    pub reject_prefill: bool,
    /// A provider's request quota, per minute: a request arriving when
    /// this many requests (scaled to `quota_window_ms`) were accepted
    /// within the last window is answered 429 `rate_limit_exceeded` (with
    /// `retry_after_secs`, if set), counted in `Stats::over_quota`; refused
    /// requests do not count against the quota. Checked right after
    /// `capacity`; not limited by `max_injected`.
    pub rpm_quota: Option<u32>,
    /// The length of `rpm_quota`'s sliding window, in ms (default 60 000,
    /// a minute): shorter makes a test quick, the quota scaled with it
    /// (`rpm_quota × quota_window_ms / 60 000` requests per window, at
    /// least 1).
    pub quota_window_ms: Option<u64>,
}

impl Faults {
    /// Status used for `error_rate` errors.
    pub fn effective_error_status(&self) -> u16 {
        if self.error_status == 0 {
            500
        } else {
            self.error_status
        }
    }
}
