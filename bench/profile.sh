#!/usr/bin/env bash
# Where Lifeline's CPU goes under load: perf (software cpu-clock sampling, which
# works where hardware counters do not) on the release binary, while wrk drives
# 64 connections through it to the nginx mock upstream.
#
# usage: bench/profile.sh [ns|s] [SECONDS]   (ns: non-streaming, s: streaming)
# needs: what bench/run.sh needs, plus perf (Debian linux-perf).
set -euo pipefail
MODE=${1:-ns}; D=${2:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
harness=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
out=$root/bench/out; mkdir -p "$out"
cargo build --release -p lifeline --quiet
MPORT=18190 LPORT=18192
cleanup() { [ -n "${LPID:-}" ] && kill "$LPID" 2>/dev/null; [ -f "$out/mock.pid" ] && kill "$(cat "$out/mock.pid")" 2>/dev/null; true; }
trap cleanup EXIT
python3 "$harness/make-nginx-conf.py" "$out" "$MPORT" 18191
taskset -c 1 nginx -c "$out/mock.conf" -p "$out" 2>/dev/null
cat >"$out/profile.toml" <<TOML
[server]
auth = "none"
listen = "127.0.0.1:$LPORT"
[[providers]]
name = "up"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$MPORT/v1"
[[providers]]
name = "up-sse"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$MPORT/stream/v1"
[[models]]
name = "bench"
tiers = [ [ { provider = "up", model = "gpt-4o-mini" } ] ]
[[models]]
name = "bench-stream"
tiers = [ [ { provider = "up-sse", model = "gpt-4o-mini" } ] ]
TOML
RUST_LOG=warn taskset -c 0 "$root/target/release/lifeline" serve --config "$out/profile.toml" 2>/dev/null &
LPID=$!
sleep 0.5
model=bench; stream=false
[ "$MODE" = s ] && { model=bench-stream; stream=true; }
export BODY="{\"model\":\"$model\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
taskset -c 1 wrk -t1 -c64 -d2s -s "$harness/post.lua" "http://127.0.0.1:$LPORT/v1/chat/completions" >/dev/null
taskset -c 1 wrk -t1 -c64 -d"${D}s" -s "$harness/post.lua" "http://127.0.0.1:$LPORT/v1/chat/completions" > "$out/profile-wrk.txt" &
WPID=$!
perf record -e cpu-clock -F 2999 -g -p "$LPID" -o "$out/perf.data" -- sleep "$((D - 1))" 2>/dev/null
wait "$WPID"
grep -E "Requests/sec|Non-2xx" "$out/profile-wrk.txt" || true
perf report -i "$out/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -45
