#!/usr/bin/env bash
# The property-based fuzz tests of the parsers (crates/lifeline-core/src/fuzz/:
# SSE scanner, request inspection, config loader, protocol translation), run
# longer than `cargo test` runs them: PROPTEST_CASES cases per property
# (default 20000), for at most FUZZ_SECONDS seconds in all (default 1800).
# Stable toolchain, debug build (overflow checks on). A failing case is shrunk
# and its seed written under crates/lifeline-core/proptest-regressions/fuzz/:
# commit that file (and fix the bug, with a named test) so that every later
# run replays it first.
# usage: scripts/fuzz.sh                 (every property)
#        scripts/fuzz.sh sse             (only fuzz::sse; also request, config, translate)
#        PROPTEST_CASES=100000 FUZZ_SECONDS=7200 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES=${PROPTEST_CASES:-20000}
seconds=${FUZZ_SECONDS:-1800}
filter="fuzz::${1:-}"
# With the simulated provider, the config properties mutate the built-in
# example itself.
cargo test -p lifeline-core --features simulated --lib --no-run --quiet
echo "== $filter: $PROPTEST_CASES cases per property, at most ${seconds}s"
status=0
timeout --signal=INT "$seconds" \
  cargo test -p lifeline-core --features simulated --lib --quiet "$filter" || status=$?
if [ "$status" = 124 ] || [ "$status" = 130 ]; then
  echo "== stopped after ${seconds}s with no failure so far"
  exit 0
fi
git status --short -- crates/lifeline-core/proptest-regressions
exit "$status"
