#!/usr/bin/env bash
# The gateway config every benchmark script uses: model `bench` (non-streaming)
# and `bench-stream` over the shared harness's nginx mock upstream.
# usage: bench/lifeline-config.sh LISTEN_PORT ADMIN_PORT UPSTREAM_PORT > lifeline.toml
set -euo pipefail
cat <<TOML
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"

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
