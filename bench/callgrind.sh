# Instructions counted by callgrind while wrk drives the gateway; sourced by
# bench/instructions.sh and bench/status.sh. Needs valgrind, wrk, curl,
# python3, and these variables: BIN (the lifeline binary), OUT (a directory
# for the dumps and logs), LPORT (the config's listen port), HARNESS (the
# shared harness, for post.lua).
#
# cg_count NAME CONFIG SECONDS BODY [pages]
#   Starts `$BIN serve --config CONFIG` under callgrind with instrumentation
#   off, waits for /healthz, runs 5 s of the load as a warm-up that is not
#   counted, then counts the instructions of SECONDS of it. The load: wrk
#   -t1 -c8 POSTing BODY to CG_PATH (default /v1/chat/completions; none if
#   BODY is empty)
#   and, with `pages`, a second wrk -t1 -c8 at the same time GETting
#   /status and /api/v2/summary.json in turn (bench/pages.lua); with
#   neither, SECONDS of idling. Every
#   thread's instructions count, the status side's included.
#   Sets CG_IR (instructions), CG_N and CG_BAD (data-plane requests and
#   non-2xx), CG_PAGES and CG_PAGES_BAD (page requests and non-2xx),
#   CG_DUMP (the dump of the counted interval, for callgrind_annotate).

CG_PID=
# Stops the gateway cg_count started, if it still runs (for an EXIT trap).
cg_stop() {
  if [ -n "$CG_PID" ]; then
    kill "$CG_PID" 2>/dev/null || true
    wait "$CG_PID" 2>/dev/null || true
    CG_PID=
  fi
}

# cg_load SECONDS BODY PAGES: the load, wrk's outputs in $OUT/wrk.{data,pages}.
cg_load() {
  local d=$1 body=$2 pages=$3 here
  here=$(dirname "${BASH_SOURCE[0]}")
  : >"$OUT/wrk.data"; : >"$OUT/wrk.pages"
  local wp=
  if [ -n "$pages" ]; then
    wrk -t1 -c8 -d"${d}s" -s "$here/pages.lua" "http://127.0.0.1:$LPORT" >"$OUT/wrk.pages" 2>&1 &
    wp=$!
  fi
  if [ -n "$body" ]; then
    BODY=$body wrk -t1 -c8 -d"${d}s" -s "$HARNESS/post.lua" \
      "http://127.0.0.1:$LPORT${CG_PATH:-/v1/chat/completions}" >"$OUT/wrk.data" 2>&1
  fi
  [ -z "$wp" ] || wait "$wp"
  [ -n "$body" ] || [ -n "$pages" ] || sleep "$d"
}

cg_count() {
  local name=$1 config=$2 d=$3 body=$4 pages=${5:-}
  rm -f "$OUT/callgrind.$name".*
  RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$OUT/callgrind.$name" "$BIN" serve --config "$config" \
    2>"$OUT/valgrind.$name.log" &
  CG_PID=$!
  local up=
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$LPORT/healthz" >/dev/null && { up=1; break; }
    sleep 0.2
  done
  [ -n "$up" ] || { echo "callgrind: the gateway did not start, see $OUT/valgrind.$name.log" >&2; exit 1; }
  cg_load 5 "$body" "$pages"
  callgrind_control -i on "$CG_PID" >/dev/null 2>&1
  cg_load "$d" "$body" "$pages"
  callgrind_control -i off "$CG_PID" >/dev/null 2>&1
  callgrind_control -d "$CG_PID" >/dev/null 2>&1
  sleep 1
  cg_stop
  CG_N=$(awk '/requests in/{print $1}' "$OUT/wrk.data"); CG_N=${CG_N:-0}
  CG_BAD=$(awk '/Non-2xx/{print $5}' "$OUT/wrk.data"); CG_BAD=${CG_BAD:-0}
  CG_PAGES=$(awk '/requests in/{print $1}' "$OUT/wrk.pages"); CG_PAGES=${CG_PAGES:-0}
  CG_PAGES_BAD=$(awk '/Non-2xx/{print $5}' "$OUT/wrk.pages"); CG_PAGES_BAD=${CG_PAGES_BAD:-0}
  # The dump taken under load is the one with a number suffix.
  CG_DUMP=$(ls "$OUT/callgrind.$name".[0-9]* | head -1)
  CG_IR=$(awk '/^totals:/{t+=$2} END{print t+0}' "$OUT/callgrind.$name".[0-9]*)
}
