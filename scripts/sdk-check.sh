#!/usr/bin/env bash
# The official OpenAI SDKs, Python and Node, against a real Lifeline and two
# real `lifeline mock` processes: normal use, then every provider failing,
# then a stream broken mid-answer; then the official Anthropic Python SDK on
# /v1/messages (passthrough to an Anthropic deployment, translated to OpenAI
# ones, tools, typed errors) and the OpenAI SDK on a model whose first tier
# is an Anthropic deployment. Needs python3 with `pip install openai
# anthropic`, and node with npm (the Node SDK is installed into a temporary
# folder).
# usage: scripts/sdk-check.sh       (builds the release binary first)
#        LIFELINE_BIN=target/debug/lifeline scripts/sdk-check.sh   (uses that binary)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LIFELINE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -p lifeline --quiet
  bin=$root/target/release/lifeline
fi
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
M1=$(free_port); M2=$(free_port); GW=$(free_port); AD=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" mock --listen 127.0.0.1:$M1 --name alpha --ttft-ms 0 >/dev/null 2>&1 & pids+=($!)
"$bin" mock --listen 127.0.0.1:$M2 --name bravo --ttft-ms 0 >/dev/null 2>&1 & pids+=($!)
cat >"$dir/lifeline.toml" <<TOML
[server]
listen = "127.0.0.1:$GW"
admin_listen = "127.0.0.1:$AD"
[health]
consecutive_failures = 100
[store]
url = "sqlite://$dir/status.db"
[[keys]]
name = "sdk"
key = "unused"
[[keys]]
name = "limited"
key = "sk-limited"
rpm = 1
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://127.0.0.1:$M1"
api_key = "sk-ant-sdk"
[[providers]]
name = "alpha"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$M1/v1"
[[providers]]
name = "bravo"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$M2/v1"
[[models]]
name = "demo"
tiers = [ [ { provider = "alpha", model = "alpha-1" }, { provider = "bravo", model = "bravo-1" } ] ]
[[models]]
name = "claude-first"
tiers = [ [ { provider = "claude", model = "claude-1" } ], [ { provider = "bravo", model = "bravo-1" } ] ]
TOML
"$bin" serve --config "$dir/lifeline.toml" 2>"$dir/log" & pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$GW/healthz" >/dev/null && break; sleep 0.1; done
python3 "$root/scripts/sdk-check.py" "http://127.0.0.1:$GW/v1" "http://127.0.0.1:$M1/v1" "http://127.0.0.1:$M2/v1"
# The local npm cache first (no registry round trip when it has the SDK), and
# one retry: a registry hiccup should not fail the check.
( cd "$dir" && npm init -y >/dev/null && {
    npm install --prefer-offline --silent --no-audit --no-fund openai >/dev/null ||
    npm install --silent --no-audit --no-fund openai >/dev/null; } )
cp "$root/scripts/sdk-check.mjs" "$dir/"
node "$dir/sdk-check.mjs" "http://127.0.0.1:$GW/v1" "http://127.0.0.1:$M1/v1" "http://127.0.0.1:$M2/v1"
python3 "$root/scripts/sdk-check-anthropic.py" "http://127.0.0.1:$GW" "http://127.0.0.1:$M1/v1" "http://127.0.0.1:$M2/v1"
