#!/usr/bin/env bash
# What translation between OpenAI and Anthropic costs: instructions per
# request (callgrind, as bench/instructions.sh counts them) for the four
# ways a chat request can cross the gateway, each non-streaming and
# streaming, against the same nginx mock upstream serving the same answer
# in both protocols (bench/anthropic-fixtures.py writes Anthropic's twin of
# the shared harness's answers: same text, same deltas):
#   o2o  OpenAI client -> OpenAI deployment (passthrough, today's path)
#   o2a  OpenAI client -> Anthropic deployment (translated)
#   a2a  Anthropic client (POST /v1/messages) -> Anthropic deployment (passthrough)
#   a2o  Anthropic client -> OpenAI deployment (translated)
# usage: bench/translate.sh [BINARY] [SECONDS]   (defaults: target/release/lifeline, 20)
# The status side is off (LIFELINE_BENCH_STATUS=on turns it on): this
# measures the data plane. Needs valgrind, nginx, wrk, curl, python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${LIFELINE_BENCH_HARNESS:-$root/../shared/bench}
BIN=${1:-$root/target/release/lifeline}
D=${2:-20}
OUT=$root/bench/out/translate
mkdir -p "$OUT"
for tool in valgrind callgrind_control nginx wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "translate: $tool is missing" >&2; exit 2; }
done
[ -x "$BIN" ] || cargo build --release -p lifeline --quiet
MPORT=18290 LPORT=18292 APORT=18293
# shellcheck source=bench/callgrind.sh
. "$root/bench/callgrind.sh"

python3 "$root/bench/anthropic-fixtures.py" "$HARNESS" "$OUT"
cat >"$OUT/mock.conf" <<NGINX
worker_processes 1;
pid $OUT/mock.pid;
error_log $OUT/mock-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $OUT/tmp-mock;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$MPORT reuseport;
    # POST on a static file is a 405 in nginx; error_page re-enters as GET and serves the file.
    location = /v1/chat/completions { default_type application/json; alias $HARNESS/mock-completion.json; error_page 405 =200 \$uri; }
    location = /stream/v1/chat/completions { default_type text/event-stream; alias $HARNESS/mock-stream.sse; error_page 405 =200 \$uri; }
    location = /anthropic/v1/messages { default_type application/json; alias $OUT/anthropic-message.json; error_page 405 =200 \$uri; }
    location = /anthropic-stream/v1/messages { default_type text/event-stream; alias $OUT/anthropic-stream.sse; error_page 405 =200 \$uri; }
  }
}
NGINX
bash "$root/bench/lifeline-config.sh" "$LPORT" "$APORT" "$MPORT" "$OUT" \
  "${LIFELINE_BENCH_STATUS:-off}" off >"$OUT/lifeline.toml"
cat >>"$OUT/lifeline.toml" <<TOML

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://127.0.0.1:$MPORT/anthropic"
api_key = "sk-ant-bench"

[[providers]]
name = "claude-sse"
kind = "anthropic"
base_url = "http://127.0.0.1:$MPORT/anthropic-stream"
api_key = "sk-ant-bench"

[[models]]
name = "claude"
tiers = [ [ { provider = "claude", model = "claude-bench" } ] ]

[[models]]
name = "claude-stream"
tiers = [ [ { provider = "claude-sse", model = "claude-bench" } ] ]
TOML

cleanup() {
  cg_stop
  nginx -c "$OUT/mock.conf" -p "$OUT" -s stop 2>/dev/null || true
}
trap cleanup EXIT
nginx -c "$OUT/mock.conf" -p "$OUT" 2>/dev/null

openai='"messages":[{"role":"user","content":"hi"}]'
anthropic='"max_tokens":64,"messages":[{"role":"user","content":"hi"}]'
for mode in o2o o2a a2a a2o; do
  for s in ns s; do
    case $mode in
      o2o) path=/v1/chat/completions model=bench shape=$openai ;;
      o2a) path=/v1/chat/completions model=claude shape=$openai ;;
      a2a) path=/v1/messages model=claude shape=$anthropic ;;
      a2o) path=/v1/messages model=bench shape=$anthropic ;;
    esac
    stream=
    if [ "$s" = s ]; then model=$model-stream stream=',"stream":true'; fi
    body="{\"model\":\"$model\"$stream,$shape}"
    rm -f "$OUT"/lifeline.db*
    CG_PATH=$path cg_count "$mode-$s" "$OUT/lifeline.toml" "$D" "$body"
    printf '%-4s %-3s requests %8s  non-2xx %s  instructions/request %s\n' "$mode" "$s" "$CG_N" "$CG_BAD" \
      "$(python3 -c "print(round($CG_IR/max($CG_N,1)))")"
  done
done
