#!/usr/bin/env bash
# What the issue-10 protection layers cost in CPU per request, measured
# natively (no valgrind): the gateway on one core (LIFELINE_WORKER_THREADS=1,
# pinned to core 0), wrk -t1 -c64 and the shared harness's nginx mock
# upstream on core 1; CPU µs per request of the gateway from /proc (user +
# system), ROUNDS rounds alternating off and on, SECONDS each after a 3 s
# warm-up. Off and on as in bench/instructions.sh (LIFELINE_BENCH_PROTECTION):
# off: auth = "none", no key, no limits; on: wrk's key in [[keys]] with rpm,
# tpm, models and critical priority, per-IP tracking, admission following
# the deployments. PROTECTION_CASES="off key on" adds `key`: auth = "keys"
# with wrk's key and no limits (what checking a key alone costs).
#
# usage: bench/protection.sh [SECONDS] [ROUNDS]     (default 10, 3)
# needs: nginx (Debian nginx-light), wrk, curl, python3, taskset.
set -euo pipefail
D=${1:-10}
ROUNDS=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
BIN=$root/target/release/lifeline
OUT=$root/bench/out/protection
mkdir -p "$OUT"
for tool in nginx wrk curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "protection: $tool is missing" >&2; exit 2; }
done
[ -x "$BIN" ] || cargo build --release -p lifeline --quiet
MPORT=18490 PPORT=18491 LPORT=18492 APORT=18493
python3 "$HARNESS/make-nginx-conf.py" "$OUT" "$MPORT" "$PPORT" >/dev/null
LPID=
cleanup() {
  [ -z "$LPID" ] || { kill "$LPID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true; }
  nginx -c "$OUT/mock.conf" -p "$OUT" -s stop 2>/dev/null || true
}
trap cleanup EXIT
taskset -c 1 nginx -c "$OUT/mock.conf" -p "$OUT" 2>/dev/null
for p in off key on; do
  bash "$root/bench/lifeline-config.sh" "$LPORT" "$APORT" "$MPORT" "$OUT" on "$p" >"$OUT/$p.toml"
done
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
body='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
printf '| round | protection | req/s | CPU µs/req |\n|---|---|---|---|\n'
for r in $(seq "$ROUNDS"); do
  for p in ${PROTECTION_CASES:-off on}; do
    rm -f "$OUT"/lifeline.db*
    RUST_LOG=warn LIFELINE_WORKER_THREADS=1 taskset -c 0 "$BIN" serve --config "$OUT/$p.toml" 2>"$OUT/$p.log" &
    LPID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && break; sleep 0.1; done
    BODY=$body taskset -c 1 wrk -t1 -c64 -d3s -s "$HARNESS/post.lua" "http://127.0.0.1:$LPORT/v1/chat/completions" >/dev/null
    c0=$(cpu "$LPID")
    BODY=$body taskset -c 1 wrk -t1 -c64 -d"${D}s" -s "$HARNESS/post.lua" "http://127.0.0.1:$LPORT/v1/chat/completions" >"$OUT/wrk.$p"
    c1=$(cpu "$LPID")
    n=$(awk '/requests in/ {print $1}' "$OUT/wrk.$p")
    bad=$(awk '/Non-2xx/ {print $NF}' "$OUT/wrk.$p")
    [ -z "$bad" ] || { echo "protection: $bad non-2xx answers with protection $p" >&2; exit 1; }
    python3 -c "print(f'| $r | $p | {$n/$D:.0f} | {($c1-$c0)*1e6/$n:.1f} |')"
    kill "$LPID"; wait "$LPID" 2>/dev/null || true; LPID=
  done
done
