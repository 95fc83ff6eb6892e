//! The retry policy's moving parts: how long to wait before a retry
//! ([`full_jitter`], [`retry_after`]) and how many retries the traffic can
//! afford ([`RetryBudget`]).
//!
//! Nothing here knows about deployments or requests: the attempt loop
//! ([`crate::attempt`]) asks, and the route table ([`crate::route::Model`])
//! owns one budget per public model.

mod backoff;
mod budget;

pub use backoff::{full_jitter, retry_after};
pub use budget::RetryBudget;
