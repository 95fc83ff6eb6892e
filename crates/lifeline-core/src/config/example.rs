//! The built-in configuration: what `lifeline serve` runs when given none.
//!
//! It needs no network and no secrets: three simulated providers run inside
//! the process, so a newcomer can send requests and watch a failover (in
//! `/metrics` and `lifeline status`) a minute after installing. It is also the first config file most
//! people read, so it is commented for them, and `lifeline serve` can print it
//! as a starting point.

use super::{Config, ConfigErrors};

/// The built-in example, as TOML.
pub const EXAMPLE_TOML: &str = r#"# Lifeline's built-in example configuration.
#
# Lifeline sits between your applications and AI providers. Clients call it
# exactly as they would call the OpenAI API; Lifeline picks a healthy upstream,
# retries and fails over when one breaks, and tells you what happened.
#
# This example needs no API keys: its three providers are simulated inside the
# process. Copy it to lifeline.toml, swap the mocks for real providers, and
# start with `lifeline serve --config lifeline.toml`.

# Where Lifeline listens.
[server]
# The data plane: point your OpenAI SDK's base URL at http://127.0.0.1:8080/v1
listen = "127.0.0.1:8080"
# The operations listener: /healthz, /readyz, /metrics, and the admin API
# (which also needs [admin] token = "${LIFELINE_ADMIN_TOKEN}").
admin_listen = "127.0.0.1:8081"
# Client keys: "keys" (the default) requires one on every data-plane request
# (`lifeline keys create`, or [[keys]] below); "none" serves anyone who can
# reach the listener. This example runs open, on localhost.
auth = "none"
# Timeouts and retries for every model can be set here, for example:
# first_byte_timeout_ms = 10000   # time to the first token before trying elsewhere
# max_attempts = 4                # attempts per request, the first included
# tier_wait_ms = 3000             # waiting to retry in tier 1 before falling back
# TLS on every listener (PEM files, re-read on SIGHUP); required, with an
# admin token, before admin_listen may leave loopback:
# tls_cert = "/etc/lifeline/cert.pem"
# tls_key = "/etc/lifeline/key.pem"

# Providers are the upstreams Lifeline can send a request to. Real ones look like:
#
#   [[providers]]
#   name = "openai"
#   kind = "openai"                   # openai | azure | openai-compatible | mock
#   api_key = "${OPENAI_API_KEY}"     # read from the environment, never logged
#
# These three are simulated ("mock"): each streams made-up tokens at a steady
# rate. Their [providers.mock] settings are those of the mock server, and
# faults can be added there (or at run time) to watch failover happen, e.g.
#   [providers.mock.faults]
#   error_rate = 0.5

[[providers]]
name = "mock-a"
kind = "mock"
[providers.mock]
name = "mock-a"               # shows up in the answers, so you can tell who replied
tokens_per_second = 200.0

[[providers]]
name = "mock-b"
kind = "mock"
[providers.mock]
name = "mock-b"
tokens_per_second = 200.0

[[providers]]
name = "mock-c"
kind = "mock"
[providers.mock]
name = "mock-c"
tokens_per_second = 100.0

# Models are the names clients put in "model". Each has tiers, tried in order:
# traffic is split by weight across the healthy deployments of the first tier,
# and only when none of them is healthy does it move to the next tier.
[[models]]
name = "demo"
tiers = [
  # Tier 1: half of the traffic to each of mock-a and mock-b.
  [ { provider = "mock-a", model = "demo-a", weight = 1 },
    { provider = "mock-b", model = "demo-b", weight = 1 } ],
  # Tier 2: the fallback, used while both of tier 1 are down.
  [ { provider = "mock-c", model = "demo-c" } ],
]

# Client keys: to require one, set auth = "keys" above and create keys with
# `lifeline keys create`, or list them here, for example:
#
#   [[keys]]
#   name = "my-app"
#   key = "${MY_APP_KEY}"             # or sha256 = "<64 hex characters>"
"#;

/// Parses [`EXAMPLE_TOML`]. It always parses (a test checks), and it reads no
/// environment variables, so the result does not depend on the environment.
pub fn example_config() -> Result<Config, ConfigErrors> {
    Config::parse_with_env(EXAMPLE_TOML, "<built-in>", &|_| None)
}
