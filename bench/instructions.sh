#!/usr/bin/env bash
# Instructions per request, counted by callgrind: repeatable to a few tenths
# of a percent for the same binary and load, whatever else the machine does,
# so it tells a small regression from noise where CPU time cannot.
#
# usage: bench/instructions.sh [BINARY] [SECONDS]
#   BINARY defaults to target/release/lifeline (built if missing); SECONDS
#   (default 20) of wrk load at 8 connections per mode, after a 5 s warm-up
#   that is not counted. Prints instructions per request, non-streaming and
#   streaming, against the shared harness's nginx mock upstream.
# needs: valgrind, nginx (Debian nginx-light), wrk, curl, python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
harness=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
bin=${1:-$root/target/release/lifeline}
D=${2:-20}
out=$root/bench/out/instructions
mkdir -p "$out"
for tool in valgrind callgrind_control nginx wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "instructions: $tool is missing" >&2; exit 2; }
done
[ -x "$bin" ] || cargo build --release -p lifeline --quiet
MPORT=18190 PPORT=18191 LPORT=18192 APORT=18193

python3 "$harness/make-nginx-conf.py" "$out" "$MPORT" "$PPORT" >/dev/null
bash "$root/bench/lifeline-config.sh" "$LPORT" "$APORT" "$MPORT" >"$out/lifeline.toml"

VP=
cleanup() {
  [ -n "$VP" ] && kill "$VP" 2>/dev/null || true
  nginx -c "$out/mock.conf" -p "$out" -s stop 2>/dev/null || true
}
trap cleanup EXIT
nginx -c "$out/mock.conf" -p "$out" 2>/dev/null

for mode in ns s; do
  if [ "$mode" = s ]; then
    body='{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"hi"}]}'
  else
    body='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
  fi
  rm -f "$out/callgrind.$mode".*
  RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out/callgrind.$mode" "$bin" serve --config "$out/lifeline.toml" \
    2>"$out/valgrind.$mode.log" &
  VP=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && break; sleep 0.2; done
  url=http://127.0.0.1:$LPORT/v1/chat/completions
  BODY=$body wrk -t1 -c8 -d5s -s "$harness/post.lua" "$url" >/dev/null 2>&1
  callgrind_control -i on "$VP" >/dev/null 2>&1
  res=$(BODY=$body wrk -t1 -c8 -d"${D}s" -s "$harness/post.lua" "$url" 2>&1)
  callgrind_control -i off "$VP" >/dev/null 2>&1
  callgrind_control -d "$VP" >/dev/null 2>&1
  sleep 1
  kill "$VP"; wait "$VP" 2>/dev/null || true; VP=
  n=$(awk '/requests in/{print $1}' <<<"$res")
  bad=$(awk '/Non-2xx/{print $5}' <<<"$res")
  # The dump taken under load is the one with a number suffix.
  ir=$(awk '/^totals:/{t+=$2} END{print t+0}' "$out/callgrind.$mode".[0-9]*)
  printf '%-3s requests %8s  non-2xx %s  instructions/request %s\n' "$mode" "$n" "${bad:-0}" \
    "$(python3 -c "print(round($ir/$n))")"
done
