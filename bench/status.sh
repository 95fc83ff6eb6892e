#!/usr/bin/env bash
# The status page under load, and what the status side costs the data plane.
#
# usage: bench/status.sh pages [SECONDS]
#   /api/v2/summary.json and /status under wrk (1 and 64 connections, after a
#   2 s warm-up), the gateway on one core (LIFELINE_WORKER_THREADS=1,
#   pinned to core 0), wrk and the mock upstream on core 1: requests/s,
#   p50/p99, CPU µs per request of the gateway, body size; and the data plane
#   (non-streaming POST) the same way, for scale. SECONDS default 10.
# usage: bench/status.sh cpu [SECONDS] [ROUNDS] [ns|s]
#   Instructions per data-plane request (callgrind, as bench/instructions.sh:
#   wrk -t1 -c8 after a 5 s warm-up; SECONDS default 15) in four runs per
#   round, ROUNDS (default 2) rounds alternating:
#     off    the status side disabled ([status] enabled = false)
#     on     the status side running (driver tick each second, store writes)
#     both   on, and a second wrk -c8 GETting /status and /api/v2/summary.json
#            in turn while the data-plane load runs
#     pages  on, the page load alone: instructions per page request
#   For `both`, the count includes the page requests' own cost; it is shown
#   as measured (all instructions / data-plane requests) and with the page
#   requests taken out at the `pages` run's price per page request.
#   ns (default): non-streaming; s: streaming requests.
# usage: bench/status.sh idle [SECONDS]
#   The status side's own instructions per second with no load at all
#   (callgrind, SECONDS default 60: every minute the page changes and is
#   rendered again, which a shorter window may or may not include), and how
#   much of it is rendering the page.
# needs: nginx (Debian nginx-light), wrk, curl, python3, taskset, valgrind;
# the shared harness (LIFELINE_BENCH_HARNESS, default ../shared/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
BIN=$root/target/release/lifeline
WHAT=${1:-}
case $WHAT in
  pages | cpu | idle) ;;
  *) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
OUT=$root/bench/out/status
mkdir -p "$OUT"
MPORT=18290 PPORT=18291 LPORT=18292 APORT=18293
for tool in nginx wrk curl python3 taskset; do
  command -v "$tool" >/dev/null || { echo "status: $tool is missing" >&2; exit 2; }
done
[ -f "$HARNESS/post.lua" ] || { echo "status: harness not found at $HARNESS (set LIFELINE_BENCH_HARNESS)" >&2; exit 2; }
[ -x "$BIN" ] || cargo build --release -p lifeline --quiet
# shellcheck source=bench/callgrind.sh
. "$root/bench/callgrind.sh"

LPID=
cleanup() {
  cg_stop
  [ -z "$LPID" ] || { kill "$LPID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true; }
  nginx -c "$OUT/mock.conf" -p "$OUT" -s stop 2>/dev/null || true
}
trap cleanup EXIT
python3 "$HARNESS/make-nginx-conf.py" "$OUT" "$MPORT" "$PPORT" >/dev/null
taskset -c 1 nginx -c "$OUT/mock.conf" -p "$OUT" 2>/dev/null
for s in on off; do
  bash "$root/bench/lifeline-config.sh" "$LPORT" "$APORT" "$MPORT" "$OUT" "$s" >"$OUT/status-$s.toml"
done
NS='{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
ST='{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"hi"}]}'
machine="$(uname -m), $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs)"

# CPU ticks (user + system) of a process, all its threads.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ms() {
  python3 -c "import sys,re; m=re.match(r'([0-9.]+)(us|ms|s)\$', sys.argv[1]); print('%.3f' % (float(m.group(1)) * {'us': 0.001, 'ms': 1, 's': 1000}[m.group(2)]) if m else 'NA')" "$1"
}

pages() {
  local d=${1:-10}
  rm -f "$OUT"/lifeline.db*
  LIFELINE_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$OUT/status-on.toml" 2>"$OUT/lifeline.log" &
  LPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && break; sleep 0.1; done
  # A few seconds of traffic first, so the page shows some.
  BODY=$NS taskset -c 1 wrk -t1 -c8 -d3s -s "$HARNESS/post.lua" "http://127.0.0.1:$LPORT/v1/chat/completions" >/dev/null
  sleep 2
  echo "# $(date -u +%FT%TZ) $machine, load $(cut -d" " -f1-3 /proc/loadavg); wrk ${d}s per case; gateway on core 0 (one worker thread), wrk + mock upstream on core 1"
  printf '%-22s %5s %9s %9s %9s %7s %10s %8s\n' path conns req/s p50_ms p99_ms non2xx cpu_us/req bytes
  local path c url res c0 c1 n
  # The data plane (POST, model `bench`) last, for scale: same machine, same minute.
  for path in /api/v2/summary.json /status /v1/chat/completions; do
    url=http://127.0.0.1:$LPORT$path
    for c in 1 64; do
      local script=()
      [ "$path" = /v1/chat/completions ] && script=(-s "$HARNESS/post.lua")
      BODY=$NS taskset -c 1 wrk -t1 -c$c -d2s "${script[@]}" "$url" >/dev/null
      c0=$(cpu "$LPID")
      res=$(BODY=$NS taskset -c 1 wrk -t1 -c$c -d"${d}s" --latency "${script[@]}" "$url" 2>&1)
      c1=$(cpu "$LPID")
      n=$(awk '/requests in/{print $1}' <<<"$res")
      printf '%-22s %5s %9s %9s %9s %7s %10s %8s\n' "$path" "$c" \
        "$(awk '/Requests\/sec/{print $2}' <<<"$res")" \
        "$(ms "$(awk '$1=="50%"{print $2}' <<<"$res")")" \
        "$(ms "$(awk '$1=="99%"{print $2}' <<<"$res")")" \
        "$(awk '/Non-2xx/{print $5}' <<<"$res" | grep . || echo 0)" \
        "$(python3 -c "print(round(($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / $n, 1))")" \
        "$(curl -s -o /dev/null -w '%{size_download}' -H 'content-type: application/json' \
          ${script[@]:+-d "$NS"} "$url")"
    done
  done
  kill "$LPID"; wait "$LPID" 2>/dev/null || true; LPID=
  echo "lifeline warnings/errors logged: $(grep -c -E 'WARN|ERROR' "$OUT/lifeline.log" || true)"
}

# The status side's own share of a dump: the driver's loop and the blocking
# pool (the store's reads and writes; nothing else of the gateway's runs
# there), inclusive. callgrind_annotate lists a function once per file its
# inlined code came from; the largest of those lines is its inclusive cost.
status_share() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null | awk '
    { v = $1; gsub(",", "", v) }
    /status_side::driver::Driver::run::\{\{closure\}\}/ && v + 0 > r { r = v + 0 }
    /tokio::runtime::blocking::pool::Inner::run/ && v + 0 > b { b = v + 0 }
    END { print r + b }'
}

cpu_rounds() {
  local d=${1:-15} rounds=${2:-2} kind=${3:-ns} body
  for tool in valgrind callgrind_control callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "status: $tool is missing" >&2; exit 2; }
  done
  body=$NS; [ "$kind" = s ] && body=$ST
  echo "# $(date -u +%FT%TZ) $machine, load $(cut -d" " -f1-3 /proc/loadavg); callgrind, wrk -c8, ${d}s counted after 5 s, $kind"
  printf '%-5s %-6s %9s %7s %9s %7s %12s %12s %10s\n' round run dp_req/s non2xx pages/s non2xx instr/dp_req dp_own/req status/s
  local r run cfg pages b page_price=0 share own
  for r in $(seq "$rounds"); do
    for run in pages off on both; do
      cfg=$OUT/status-on.toml; [ "$run" = off ] && cfg=$OUT/status-off.toml
      case $run in
        off | on) pages= b=$body ;;
        both) pages=pages b=$body ;;
        pages) pages=pages b= ;;
      esac
      rm -f "$OUT"/lifeline.db*
      cg_count "$run" "$cfg" "$d" "$b" "$pages"
      share=$(status_share "$CG_DUMP")
      if [ "$run" = pages ]; then
        page_price=$(python3 -c "print(($CG_IR - $share) / $CG_PAGES)")
        own=$(python3 -c "print(round($page_price))")/page
      else
        own=$(python3 -c "print(round(($CG_IR - $share - $CG_PAGES * $page_price) / $CG_N))")
      fi
      printf '%-5s %-6s %9s %7s %9s %7s %12s %12s %10s\n' "$r" "$run" \
        "$(python3 -c "print(round($CG_N / $d))")" "$CG_BAD" \
        "$(python3 -c "print(round($CG_PAGES / $d))")" "$CG_PAGES_BAD" \
        "$([ "$run" = pages ] && echo - || python3 -c "print(round($CG_IR / $CG_N))")" "$own" \
        "$(python3 -c "print(round($share / $d))")"
    done
  done
  echo "instr/dp_req: all instructions counted / data-plane requests (as bench/instructions.sh)"
  echo "dp_own/req: less the status side's own work and the page requests (each at the pages run's"
  echo "  price, status side excluded), per data-plane request; for pages: instructions per page request"
  echo "status/s: instructions of the status side's driver loop and its blocking store work, per second"
}

idle() {
  local d=${1:-60} share build
  command -v callgrind_annotate >/dev/null || { echo "status: callgrind_annotate is missing" >&2; exit 2; }
  rm -f "$OUT"/lifeline.db*
  cg_count idle "$OUT/status-on.toml" "$d" "" ""
  share=$(status_share "$CG_DUMP")
  build=$(callgrind_annotate --inclusive=yes --threshold=100 "$CG_DUMP" 2>/dev/null | awk '
    { v = $1; gsub(",", "", v) }
    /lifeline_status::render::Rendered::build/ && v + 0 > m { m = v + 0 }
    END { print m + 0 }')
  echo "# $(date -u +%FT%TZ) $machine, load $(cut -d" " -f1-3 /proc/loadavg); callgrind, ${d}s idle, status side on"
  echo "instructions/s: all $(python3 -c "print(round($CG_IR / $d))"), status side $(python3 -c "print(round($share / $d))"), of which rendering the page $(python3 -c "print(round($build / $d))")"
}

case $WHAT in
  pages) pages "${2:-10}" ;;
  cpu) cpu_rounds "${2:-15}" "${3:-2}" "${4:-ns}" ;;
  idle) idle "${2:-60}" ;;
esac
