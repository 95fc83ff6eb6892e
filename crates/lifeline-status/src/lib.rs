//! Lifeline's status page.
//!
//! This crate sits beside the request path, never in it: it depends on no
//! request-path internals (`lifeline-core` is not a dependency), and what it
//! learns of health it will learn from the health feed.
//!
//! - [`eta`]: estimated restoration time of an open incident from past
//!   incidents (Kaplan–Meier over right-censored history, pooled from narrow
//!   to broad), and the sentence the page shows for it.
//!
//! The page itself, components and incidents will join this crate.

pub mod eta;
