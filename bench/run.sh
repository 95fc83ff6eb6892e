#!/usr/bin/env bash
# Side-by-side proxy benchmark: the nginx mock upstream reached directly, through
# nginx as a plain reverse proxy, and through Lifeline (metrics, health
# tracking and the status side on, as in production; the status store in
# bench/out). Uses the shared harness in ../shared/bench.
#
# usage: bench/run.sh [SECONDS_PER_CASE]      (default 10)
# needs: nginx (Debian nginx-light), wrk, python3, taskset; builds --release.
# Pinning: the proxy under test on core 0; wrk and the mock upstream on core 1.
set -euo pipefail
D=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
harness=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
out=$root/bench/out
mkdir -p "$out"
for tool in nginx wrk taskset python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y nginx-light wrk util-linux curl)" >&2; exit 2; }
done
[ -x "$harness/matrix.sh" ] || { echo "bench: harness not found at $harness (set LIFELINE_BENCH_HARNESS)" >&2; exit 2; }

cargo build --release -p lifeline --quiet
MPORT=18180 PPORT=18181 LPORT=18182 APORT=18183

cleanup() {
  [ -n "${LPID:-}" ] && kill "$LPID" 2>/dev/null || true
  for c in mock proxy; do [ -f "$out/$c.pid" ] && kill "$(cat "$out/$c.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup

python3 "$harness/make-nginx-conf.py" "$out" "$MPORT" "$PPORT"
taskset -c 1 nginx -c "$out/mock.conf" -p "$out" 2>/dev/null
taskset -c 0 nginx -c "$out/proxy.conf" -p "$out" 2>/dev/null

bash "$root/bench/lifeline-config.sh" "$LPORT" "$APORT" "$MPORT" "$out" >"$out/lifeline.toml"
rm -f "$out"/lifeline.db*
RUST_LOG=warn taskset -c 0 "$root/target/release/lifeline" serve --config "$out/lifeline.toml" 2>"$out/lifeline.log" &
LPID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && break; sleep 0.1; done

npid=$(cat "$out/proxy.pid")
cat >"$out/targets" <<T
direct|http://127.0.0.1:$MPORT/v1/chat/completions|http://127.0.0.1:$MPORT/stream/v1/chat/completions|gpt-4o-mini|gpt-4o-mini|-
nginx|http://127.0.0.1:$PPORT/v1/chat/completions|http://127.0.0.1:$PPORT/stream/v1/chat/completions|gpt-4o-mini|gpt-4o-mini|$npid
lifeline|http://127.0.0.1:$LPORT/v1/chat/completions|http://127.0.0.1:$LPORT/v1/chat/completions|bench|bench-stream|$LPID
T

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs)"
echo "# wrk ${D}s per case; proxy under test on core 0, wrk + mock upstream on core 1"
bash "$harness/matrix.sh" "$D" "$out/targets"

# Time to first chunk of a stream at one connection (median of 200 curl runs).
echo
printf '%-10s %s\n' target ttfc_p50_ms
while IFS='|' read -r name _ us _ ms _; do
  body="{\"model\":\"$ms\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
  for _ in $(seq 200); do
    taskset -c 1 curl -s -o /dev/null -w '%{time_starttransfer}\n' -H 'content-type: application/json' -d "$body" "$us"
  done | sort -n | awk '{a[NR]=$1} END {printf "%.3f\n", a[int(NR/2)+1]*1000}' | xargs printf '%-10s %s\n' "$name"
done <"$out/targets"
echo
echo "lifeline errors logged: $(grep -c -E 'WARN|ERROR' "$out/lifeline.log" || true)"
