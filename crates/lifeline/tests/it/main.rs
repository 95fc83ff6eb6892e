//! Lifeline's integration tests: one binary (one link step), a module per
//! feature. Everything runs over real sockets on 127.0.0.1 port 0: the real
//! gateway, the real simulated provider, real HTTP clients.

// The whole crate is test code: a panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adaptive;
mod admin_keys;
mod admission;
mod anthropic;
mod anthropic_eligibility;
mod anthropic_wire;
mod api;
mod breaker;
mod browser;
mod capacity;
mod chaos;
mod chaos_gateway;
mod cli;
mod continuation;
mod continuation_limits;
mod deadlines;
mod degraded;
mod docs;
mod early_warning;
mod extension;
mod failover;
mod fo_support;
mod frozen;
mod hardening;
mod harness;
mod health;
mod hedge;
mod hostile;
mod input;
mod ip_limits;
mod keys;
mod limits;
mod listener;
mod quota;
mod raw_upstream;
mod reload;
mod retry;
mod sdk;
mod sli;
mod smoke;
mod status;
mod streaming;
mod tiers;
mod tls;
