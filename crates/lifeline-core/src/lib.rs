//! Lifeline's core: the request path, health tracking and operations endpoints.
//!
//! # Layout
//!
//! The modules follow the request path of DESIGN.md §3, in order:
//!
//! - [`server`]: listeners (connection limit, header and body timeouts, body
//!   size limit, HTTP/1.1 and HTTP/2) and the path table; [`server::pipeline`]
//!   is the one place where the order of the layers is written.
//! - [`context`]: the request context every layer reads and extends.
//! - [`auth`]: client keys, compared by SHA-256 in constant time.
//! - [`admission`]: the global in-flight limit, its priority queue with
//!   CoDel shedding, and the memory budget for buffered bodies.
//! - [`request`]: reads `model` and `stream` from a body without parsing the
//!   rest, and splices the upstream model name in.
//! - [`route`]: public model → tiers of deployments.
//! - [`balance`]: power of two choices over peak-EWMA latency.
//! - [`concurrency`]: each deployment's adaptive in-flight limit, and the
//!   bounded wait for a slot at it.
//! - [`attempt`]: the attempt loop (deadline, retries, failover).
//! - [`retry`]: backoff, `Retry-After` and the retry budget.
//! - [`providers`]: the protocol adapters (OpenAI, Azure, compatible;
//!   Anthropic): URLs, headers, request and answer conversion, stream
//!   grammars, and what a continued stream's client was sent.
//! - [`translate`]: OpenAI ↔ Anthropic requests, answers, errors and streams
//!   (pure functions).
//! - [`relay`]: SSE relay, commit-before-first-content, honest endings,
//!   continuation's state machines (asking the adapters).
//! - [`health`]: per-deployment breaker, latency, and the health events.
//! - [`telemetry`]: Prometheus metrics and request ids.
//! - [`admin`]: the admin API on its own listener.
//! - [`extension`]: the hook for routes the gateway does not own (the
//!   status page's public and admin routes).
//!
//! [`gateway::Gateway`] owns the live, reloadable state that all of them read.

pub mod admin;
pub mod admission;
pub mod attempt;
pub mod auth;
pub mod balance;
pub mod body;
pub mod concurrency;
pub mod config;
pub mod context;
pub mod degraded;
pub mod error;
pub mod extension;
#[cfg(test)]
mod fuzz;
pub mod gateway;
pub mod gcra;
pub mod health;
pub mod ip_limit;
#[cfg(test)]
mod layers;
pub mod limit;
pub mod providers;
pub mod relay;
pub mod request;
pub mod retry;
pub mod route;
pub mod server;
pub mod telemetry;
pub mod translate;

pub use config::Config;
pub use gateway::Gateway;
pub use server::{BoundServer, Server};
