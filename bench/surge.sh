#!/usr/bin/env bash
# Surge: offered load from 0.5x to 10x of the gateway's measured capacity,
# mixed priorities, against a simulated provider with finite capacity.
#
# usage: bench/surge.sh [SECONDS_PER_LEVEL] [LEVELS]
#   SECONDS_PER_LEVEL default 10; LEVELS default "0.5 1 2 5 10".
#
# The simulated provider (`lifeline mock --latency-ms 100`) sits behind a
# deployment capped at max_concurrency = 16, so the system's capacity is
# about 80 requests/s whatever the CPU (100 ms added latency plus 16 tokens
# at the mock's 200 tokens/s: about 200 ms an answer). Three keys, one per
# priority class (critical, standard, batch), share the load 5/35/60
# (SURGE_MIX): the surge is mostly standard and batch traffic, and at 10x
# the critical share alone is half the capacity (with 20/50/30, critical
# alone would be twice the capacity at 10x, and no admission policy can
# serve twice its capacity). Capacity is measured
# first (closed loop, 64 clients: goodput with everything admitted that can
# be); then each level offers MULT x capacity open-loop (examples/surge.rs:
# a request every 1/R s whatever the answers do). Per level: goodput, per
# class p50/p99 of admitted requests, success and shed ratios, whether every
# refusal carried Retry-After, and the gateway's peak RSS (VmHWM, reset
# before each level). Results: bench/out/surge/results.jsonl, a Markdown
# table on stdout and bench/surge.svg (the plot BENCHMARKS.md shows).
# The gateway is pinned to core 0, the mock and the load generator to core 1.
# needs: curl, python3, taskset; builds --release.
set -euo pipefail
D=${1:-10}
LEVELS=${2:-0.5 1 2 5 10}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=$root/bench/out/surge
mkdir -p "$OUT"
for tool in curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "surge: $tool is missing" >&2; exit 2; }
done
cargo build --release -p lifeline --quiet --bin lifeline --example surge
BIN=$root/target/release/lifeline
GEN=$root/target/release/examples/surge
MPORT=18390 LPORT=18391 APORT=18392

MPID= LPID=
cleanup() {
  for p in $LPID $MPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

export SURGE_CRITICAL=ll-surge-critical-0001 SURGE_STANDARD=ll-surge-standard-0002 SURGE_BATCH=ll-surge-batch-0003
cat >"$OUT/lifeline.toml" <<TOML
[server]
listen = "127.0.0.1:$LPORT"
admin_listen = "127.0.0.1:$APORT"
${SURGE_SERVER_EXTRA:-}

[store]
url = "sqlite://$OUT/lifeline.db"

[[providers]]
name = "sim"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$MPORT/v1"
max_concurrency = 16

[[models]]
name = "bench"
tiers = [ [ { provider = "sim", model = "gpt-4o-mini" } ] ]

[[keys]]
name = "critical"
key = "\${SURGE_CRITICAL}"
priority = "critical"

[[keys]]
name = "standard"
key = "\${SURGE_STANDARD}"
priority = "standard"

[[keys]]
name = "batch"
key = "\${SURGE_BATCH}"
priority = "batch"
${SURGE_EXTRA:-}
TOML
rm -f "$OUT"/lifeline.db* "$OUT/results.jsonl"

taskset -c 1 "$BIN" mock --listen "127.0.0.1:$MPORT" --latency-ms 100 2>"$OUT/mock.log" &
MPID=$!
RUST_LOG=warn LIFELINE_WORKER_THREADS=1 taskset -c 0 "$BIN" serve --config "$OUT/lifeline.toml" 2>"$OUT/lifeline.log" &
LPID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && curl -sf "http://127.0.0.1:$MPORT/healthz" >/dev/null && break
  sleep 0.1
done
keys="critical=$SURGE_CRITICAL,standard=$SURGE_STANDARD,batch=$SURGE_BATCH"
url="http://127.0.0.1:$LPORT/v1/chat/completions"
gen() { taskset -c 1 "$GEN" "$@" --url "$url" --keys "$keys" --mix "${SURGE_MIX:-5,35,60}" --seconds "$D"; }
peak_reset() { echo 5 >"/proc/$LPID/clear_refs" 2>/dev/null || true; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$LPID/status"; }

# Warm-up, then capacity.
gen closed --concurrency 16 >/dev/null
peak_reset
cap=$(gen closed --concurrency 64 | tee -a "$OUT/results.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["goodput_rps"])')
echo "{\"capacity_rps\": $cap, \"peak_rss_kib\": $(peak_kib)}" >>"$OUT/results.jsonl"
echo "surge: measured capacity $cap requests/s" >&2
for m in $LEVELS; do
  rate=$(python3 -c "print($m * $cap)")
  sleep 2
  peak_reset
  line=$(gen open --rate "$rate")
  echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); d['multiple']=$m; d['peak_rss_kib']=$(peak_kib); print(json.dumps(d))" >>"$OUT/results.jsonl"
  echo "surge: ${m}x done" >&2
done
python3 "$root/bench/surge_report.py" "$OUT/results.jsonl" "$root/bench/surge.svg"
