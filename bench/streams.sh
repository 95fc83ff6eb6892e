#!/usr/bin/env bash
# Memory of many concurrent streams: N slow streams (20 tokens at 2 tokens/s,
# about 10 s each) through Lifeline from a `lifeline mock` upstream, all open
# at once. Prints how many completed and Lifeline's peak RSS.
# usage: bench/streams.sh [N]   (default 10000; raises the fd limit, so run as root)
set -euo pipefail
N=${1:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${NO_BUILD:-}" ] || cargo build --release -p lifeline --quiet
bin=$root/target/release/lifeline
out=$root/bench/out; mkdir -p "$out"
# Each process holds at most two sockets per stream (the gateway: client and upstream).
ulimit -n $((N * 2 + 1024))
MPORT=18280 LPORT=18282
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
RUST_LOG=warn "$bin" mock --listen 127.0.0.1:$MPORT --tokens-per-second 2 --completion-tokens 20 --ttft-ms 0 >/dev/null 2>&1 & pids+=($!)
cat >"$out/streams.toml" <<TOML
[server]
auth = "none"
listen = "127.0.0.1:$LPORT"
max_connections = $((N + 1000))
stream_idle_timeout_ms = 30000
[[providers]]
name = "up"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$MPORT/v1"
[[models]]
name = "bench-stream"
tiers = [ [ { provider = "up", model = "m" } ] ]
TOML
RUST_LOG=warn "$bin" serve --config "$out/streams.toml" 2>"$out/streams.log" & LPID=$!; pids+=($LPID)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && break; sleep 0.1; done
base=$(awk '/VmRSS/{print $2}' /proc/$LPID/status)
python3 "$root/bench/streams.py" "http://127.0.0.1:$LPORT/v1/chat/completions" "$N"
peak=$(awk '/VmHWM/{print $2}' /proc/$LPID/status)
echo "lifeline RSS: idle $((base / 1024)) MiB, peak $((peak / 1024)) MiB, $(( (peak - base) / N )) KiB per stream"
echo "lifeline errors logged: $(grep -c -E 'WARN|ERROR' "$out/streams.log" || true)"
