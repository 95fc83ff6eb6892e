#!/usr/bin/env bash
# Instructions per request, counted by callgrind: repeatable to a few tenths
# of a percent for the same binary and load, whatever else the machine does,
# so it tells a small regression from noise where CPU time cannot.
#
# usage: bench/instructions.sh [BINARY] [SECONDS]
#   BINARY defaults to target/release/lifeline (built if missing); SECONDS
#   (default 20) of wrk load at 8 connections per mode, after a 5 s warm-up
#   that is not counted. Prints instructions per request, non-streaming and
#   streaming, against the shared harness's nginx mock upstream. The status
#   side runs, as in production (LIFELINE_BENCH_STATUS=off turns it off);
#   its store is in bench/out/instructions, created afresh for each mode.
#   LIFELINE_BENCH_PROTECTION=on runs the issue-10 protection layers as a
#   production gateway would: auth = "keys" with wrk's key (sk-bench) in
#   [[keys]], critical priority, limited to both models, with rpm and tpm
#   (high enough never to refuse: the budgets are charged and settled on
#   every request), per-IP brute-force tracking, admission following the
#   deployments. Default off: auth = "none", no key, no limits (admission's
#   fast path still runs; it cannot be switched off).
#   LIFELINE_BENCH_CONTINUATION=off turns stream continuation off for both
#   models (bench/lifeline-config.sh), to measure what it costs.
# needs: valgrind, nginx (Debian nginx-light), wrk, curl, python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
BIN=${1:-$root/target/release/lifeline}
D=${2:-20}
OUT=$root/bench/out/instructions
mkdir -p "$OUT"
for tool in valgrind callgrind_control nginx wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "instructions: $tool is missing" >&2; exit 2; }
done
[ -x "$BIN" ] || cargo build --release -p lifeline --quiet
MPORT=18190 PPORT=18191 LPORT=18192 APORT=18193
# shellcheck source=bench/callgrind.sh
. "$root/bench/callgrind.sh"

python3 "$HARNESS/make-nginx-conf.py" "$OUT" "$MPORT" "$PPORT" >/dev/null
bash "$root/bench/lifeline-config.sh" "$LPORT" "$APORT" "$MPORT" "$OUT" \
  "${LIFELINE_BENCH_STATUS:-on}" "${LIFELINE_BENCH_PROTECTION:-off}" >"$OUT/lifeline.toml"

cleanup() {
  cg_stop
  nginx -c "$OUT/mock.conf" -p "$OUT" -s stop 2>/dev/null || true
}
trap cleanup EXIT
nginx -c "$OUT/mock.conf" -p "$OUT" 2>/dev/null

for mode in ns s; do
  if [ "$mode" = s ]; then
    body='{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"hi"}]}'
  else
    body='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
  fi
  rm -f "$OUT"/lifeline.db*
  cg_count "$mode" "$OUT/lifeline.toml" "$D" "$body"
  printf '%-3s requests %8s  non-2xx %s  instructions/request %s\n' "$mode" "$CG_N" "$CG_BAD" \
    "$(python3 -c "print(round($CG_IR/$CG_N))")"
done
