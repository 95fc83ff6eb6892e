#!/usr/bin/env bash
# The gateway config every benchmark script uses: model `bench` (non-streaming)
# and `bench-stream` over the shared harness's nginx mock upstream, and the
# status side (on by default, as in production) with its store in OUT_DIR, so
# that a benchmark never writes into the working directory.
# usage: bench/lifeline-config.sh LISTEN_PORT ADMIN_PORT UPSTREAM_PORT OUT_DIR [on|off] [off|key|on] > lifeline.toml
#   on|off: the status side ([status] enabled); default on.
#   off|key|on: the issue-10 protection layers; default off (auth = "none",
#   no key). key: auth = "keys" with wrk's key (sk-bench, harness post.lua),
#   no limits. on: that key with critical priority, both models, and rpm and
#   tpm too high ever to refuse (both budgets charged and settled on every
#   request).
# LIFELINE_BENCH_CONTINUATION=off adds `continuation = false` to both models
# (default on, as in production: every chat stream keeps what it sends for
# a continuation), to measure what stream continuation costs an unbroken
# stream.
set -euo pipefail
case ${LIFELINE_BENCH_CONTINUATION:-on} in
  on) continuation="" ;;
  off) continuation=$'\ncontinuation = false' ;;
  *) echo "lifeline-config: LIFELINE_BENCH_CONTINUATION must be on or off, not ${LIFELINE_BENCH_CONTINUATION}" >&2; exit 2 ;;
esac
[ $# -ge 4 ] || { echo "usage: $0 LISTEN_PORT ADMIN_PORT UPSTREAM_PORT OUT_DIR [on|off] [off|key|on]" >&2; exit 2; }
case ${5:-on} in
  on) enabled=true ;;
  off) enabled=false ;;
  *) echo "lifeline-config: status side must be on or off, not ${5}" >&2; exit 2 ;;
esac
case ${6:-off} in
  off) auth=none ;;
  key | on) auth=keys ;;
  *) echo "lifeline-config: protection must be off, key or on, not ${6}" >&2; exit 2 ;;
esac
dir=$(cd "$4" && pwd)
cat <<TOML
[server]
auth = "$auth"
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"

[store]
url = "sqlite://$dir/lifeline.db"

[status]
enabled = $enabled

[[providers]]
name = "upstream"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$3/v1"

[[providers]]
name = "upstream-sse"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$3/stream/v1"

[[models]]
name = "bench"$continuation
tiers = [ [ { provider = "upstream", model = "gpt-4o-mini" } ] ]

[[models]]
name = "bench-stream"$continuation
tiers = [ [ { provider = "upstream-sse", model = "gpt-4o-mini" } ] ]
TOML
case ${6:-off} in
  key) printf '\n[[keys]]\nname = "bench"\nkey = "sk-bench"\n' ;;
  on) printf '\n[[keys]]\nname = "bench"\nkey = "sk-bench"\npriority = "critical"\nrpm = 1000000000\ntpm = 1000000000000\nmodels = ["bench", "bench-stream"]\n' ;;
esac
