//! Property-based fuzz tests of the parsers that face untrusted bytes.
//!
//! Run on the stable toolchain with [`proptest`]: each property generates
//! inputs (arbitrary bytes, and valid-looking inputs built by a generator
//! so that the properties reach the parsers' deep states), and checks that
//! the parser never panics, holds no more than its bound, and gives the same
//! result however its input is split into frames.
//!
//! - [`sse`]: the relay's stream scanner, for each grammar.
//! - [`continued`]: continuation's reading of what the client was sent, and
//!   its rewrite of the stream that continues it.
//! - [`request`]: request inspection and the model splice.
//! - [`config`]: the config loader, on arbitrary text and on mutations of
//!   the built-in example.
//! - [`translate`]: request, answer, error and stream translation between
//!   OpenAI's and Anthropic's wires.
//!
//! `cargo test` runs each property for a number of cases sized for CI (the
//! whole set takes seconds); `PROPTEST_CASES=20000 scripts/fuzz.sh` runs
//! them longer. A failing case is shrunk and its seed written to
//! `crates/lifeline-core/proptest-regressions/fuzz/<file>.txt`, which is
//! committed: every later run replays it first. A crash found is also kept
//! as a named unit test next to its fix.
//!
//! This module is test-only and sits above every other in
//! [`crate::layers`] (it reaches into all of them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

mod config;
mod continued;
mod request;
mod sse;
mod translate;

/// The runner's configuration: `cases` cases unless `PROPTEST_CASES` says
/// otherwise, failures persisted under `proptest-regressions/` beside `src/`.
fn cases(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config.failure_persistence = Some(Box::new(FileFailurePersistence::SourceParallel(
        "proptest-regressions",
    )));
    // A failure is shrunk for a bounded time, not for ever.
    config.max_shrink_iters = 20_000;
    config
}

/// Cut points for a buffer of any length: fractions of it, so that a
/// shrunk case stays meaningful whatever the buffer became.
fn cuts() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..12)
}

/// `data` cut at `cuts` (each a fraction of its length, in 1/65536ths),
/// in order: the pieces, some possibly empty, concatenate to `data`.
fn split<'a>(data: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| data.len() * usize::from(*c) / 65_536)
        .collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for a in at {
        pieces.push(&data[start..a]);
        start = a;
    }
    pieces.push(&data[start..]);
    pieces
}

#[test]
fn split_pieces_concatenate_to_the_input() {
    let data = b"0123456789";
    let pieces = split(data, &[65_535, 0, 32_768, 32_768]);
    assert_eq!(pieces.len(), 5);
    assert_eq!(pieces.concat(), data);
    assert_eq!(pieces[0], b"");
    assert_eq!(pieces[4], b"9");
}
