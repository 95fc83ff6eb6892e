#!/usr/bin/env bash
# The gateway config every benchmark script uses: model `bench` (non-streaming)
# and `bench-stream` over the shared harness's nginx mock upstream, and the
# status side (on by default, as in production) with its store in OUT_DIR, so
# that a benchmark never writes into the working directory.
# usage: bench/lifeline-config.sh LISTEN_PORT ADMIN_PORT UPSTREAM_PORT OUT_DIR [on|off] > lifeline.toml
#   on|off: the status side ([status] enabled); default on.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 LISTEN_PORT ADMIN_PORT UPSTREAM_PORT OUT_DIR [on|off]" >&2; exit 2; }
case ${5:-on} in
  on) enabled=true ;;
  off) enabled=false ;;
  *) echo "lifeline-config: status side must be on or off, not ${5}" >&2; exit 2 ;;
esac
dir=$(cd "$4" && pwd)
cat <<TOML
[server]
auth = "none"
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
name = "bench"
tiers = [ [ { provider = "upstream", model = "gpt-4o-mini" } ] ]

[[models]]
name = "bench-stream"
tiers = [ [ { provider = "upstream-sse", model = "gpt-4o-mini" } ] ]
TOML
