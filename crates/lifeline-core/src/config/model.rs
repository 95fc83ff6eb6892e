//! The validated configuration: what the rest of Lifeline reads.
//!
//! Every value here has passed validation in `validate.rs`: durations are
//! typed, provider references resolve, secrets are expanded from the
//! environment and client keys are hashed. Nothing downstream re-checks them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod quota;
mod status;
pub use quota::*;
pub use status::*;

/// A whole, validated Lifeline configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listeners and request limits.
    pub server: ServerConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// Circuit breaker and active probe settings, shared by every deployment.
    pub health: HealthConfig,
    /// Upstream accounts and servers, in file order.
    pub providers: Vec<ProviderConfig>,
    /// Public model names and their tiers, in file order.
    pub models: Vec<ModelConfig>,
    /// Client keys. Empty means the data plane needs no key.
    pub keys: Vec<KeyConfig>,
    /// Where the status side keeps its history (`[store]`).
    pub store: StoreConfig,
    /// The status page (`[status]`).
    pub status: StatusConfig,
    /// Global admission and the memory budget (`[admission]`).
    pub admission: AdmissionConfig,
    /// The file this was read from, if any (the built-in example has none).
    pub source: Option<PathBuf>,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Data-plane listener (`listen`).
    pub listen: SocketAddr,
    /// Admin API, `/metrics` and health listener (`admin_listen`), if any.
    pub admin_listen: Option<SocketAddr>,
    /// The status listener (`status_listen`), if any: `/healthz` and the
    /// extension's public routes ([`crate::extension`]) only. With it, the
    /// data-plane listener no longer serves those routes.
    pub status_listen: Option<SocketAddr>,
    /// Largest accepted request body (`max_body_bytes`, default 16 MiB).
    pub max_body_bytes: usize,
    /// Most client connections open at once (`max_connections`, default 10 000).
    pub max_connections: usize,
    /// Time allowed to send a request's headers, from their first byte
    /// (`header_read_timeout_ms`, default 10 s).
    pub header_read_timeout: Duration,
    /// Time allowed to send the request body (`body_read_timeout_ms`, default 30 s).
    pub body_read_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests (`drain_timeout_ms`, default 30 s).
    pub drain_timeout: Duration,
    /// A connection with no request in flight that sends nothing for this
    /// long is closed (`idle_timeout_ms`, default 60 s): before its first
    /// byte, between keep-alive requests, an HTTP/2 connection with no open
    /// stream.
    pub idle_timeout: Duration,
    /// HTTP/2: a `PING` goes out after this long without a frame from the
    /// client, and the connection is closed if the ping is not answered
    /// within the same time (`http2_keepalive_ms`, default 20 s).
    pub http2_keepalive: Duration,
    /// Whether the data plane checks client keys (`auth`, default `"keys"`).
    pub auth: AuthMode,
    /// Per-client-IP limits and how the client's IP is found.
    pub ip: IpLimitConfig,
    /// Largest request head (`max_header_bytes`, default 64 KiB): an
    /// HTTP/1.1 request line and headers (431 above), an HTTP/2 header list.
    pub max_header_bytes: usize,
    /// Deepest JSON nesting accepted in a request body (`max_json_depth`,
    /// default 64; 400 above).
    pub max_json_depth: usize,
    /// Requests served on one connection before it is closed gracefully
    /// (`max_requests_per_connection`, default 10 000; HTTP/1.1 answers the
    /// last with `Connection: close`, HTTP/2 sends `GOAWAY`).
    pub max_requests_per_connection: u64,
    /// Age at which a connection is closed gracefully, its in-flight requests
    /// finished first (`max_connection_age_ms`, default 1 h).
    pub max_connection_age: Duration,
    /// HTTP/2: most streams open at once on one connection
    /// (`http2_max_concurrent_streams`, default 256).
    pub http2_max_concurrent_streams: u32,
    /// TLS on every listener (`tls_cert`, `tls_key`), if configured: the
    /// files, read (and checked) when the config is loaded, so a reload
    /// re-reads them.
    pub tls: Option<TlsFiles>,
    /// Defaults for every model's timeouts and retries (`[server]` keys of the
    /// same names as the per-model ones). Its `stream_idle_timeout` is also
    /// the listener's write-stall timeout: how long a response may wait for a
    /// client that stopped reading.
    pub defaults: RequestPolicy,
    /// Adaptive concurrency per deployment, and waiting at the cap.
    pub concurrency: ConcurrencyConfig,
    /// Bound of the degraded-mode answer cache, all models together
    /// (`degraded_cache_bytes`, default 64 MiB).
    pub degraded_cache_bytes: u64,
}

/// `[server]` keys of the in-flight limit per deployment and of the wait
/// for a slot when every deployment of a model is at its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct ConcurrencyConfig {
    /// The limit follows each deployment's latency and overload answers
    /// (`adaptive_concurrency`, default on); off: the provider's
    /// `max_concurrency` alone, if any.
    pub adaptive: bool,
    /// The adaptive limit never goes below this (`adaptive_min_limit`, default 2).
    pub min_limit: u32,
    /// A new deployment's limit (`adaptive_initial_limit`, default 20).
    pub initial_limit: u32,
    /// The adaptive limit of a deployment whose provider has no
    /// `max_concurrency` never goes above this (`adaptive_max_limit`,
    /// default 256); a provider's `max_concurrency` is the bound otherwise.
    pub max_limit: u32,
    /// Most requests of one public model waiting for a slot at once
    /// (`capacity_waiters`, default 128); past it, 503 at once.
    pub max_waiters: u32,
    /// Longest wait for a slot, within the request deadline
    /// (`capacity_wait_ms`, default 10 s); then 503.
    pub max_wait: Duration,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self {
            adaptive: true,
            min_limit: 2,
            initial_limit: 20,
            max_limit: 256,
            max_waiters: 128,
            max_wait: Duration::from_secs(10),
        }
    }
}

/// `[server] auth`: whether the data plane checks client keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// `"keys"` (the default): every data-plane request needs a key from
    /// `[[keys]]` or the store; with no key anywhere, every one is refused.
    #[default]
    Keys,
    /// `"none"`: no key is checked; the data plane is open to anyone who can
    /// reach the listener. `[[keys]]` may not be configured with it.
    None,
}

/// Per-client-IP limits (`[server]` keys `trusted_proxies` and `ip_*`).
#[derive(Clone, Debug, PartialEq)]
pub struct IpLimitConfig {
    /// Peers whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_proxies: Vec<Cidr>,
    /// Requests per minute per client IP while `auth = "none"`
    /// (`ip_requests_per_minute`; none: unlimited).
    pub requests_per_minute: Option<u64>,
    /// Failed authentications per minute per client IP before it is locked
    /// out (`ip_auth_failures_per_minute`, default 10).
    pub auth_failures_per_minute: u64,
    /// Longest lockout (`ip_lockout_max_ms`, default 15 min).
    pub lockout_max: Duration,
    /// Most client IPs tracked at once (`ip_table_size`, default 100 000).
    pub table_size: usize,
}

impl Default for IpLimitConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            requests_per_minute: None,
            auth_failures_per_minute: 10,
            lockout_max: Duration::from_secs(15 * 60),
            table_size: 100_000,
        }
    }
}

/// An address block (`10.0.0.0/8`, `::1/128`; a bare address is a block of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`; `None` when it is neither, or the
    /// prefix is too long for the address family.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let addr = addr.parse::<std::net::IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let (net, ip, bits) = match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(i)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        if host_bits >= 128 {
            return true;
        }
        (net >> host_bits) == (ip >> host_bits)
    }
}

/// `[server] tls_cert` and `tls_key`: PEM files, and what they held when
/// the config was loaded.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain (`tls_cert`), leaf first.
    pub cert: PathBuf,
    /// The private key (`tls_key`).
    pub key: PathBuf,
    /// The chain and key, parsed and checked to match.
    pub certified: std::sync::Arc<rustls::sign::CertifiedKey>,
}

/// `[admission]`: the gateway's own capacity, the priority queue in front
/// of it, and the budget for buffered bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// Client requests served at once, gateway-wide (`max_in_flight`,
    /// default 1024); more wait in the queue.
    pub max_in_flight: usize,
    /// Whether the in-flight limit also follows the deployments' own
    /// (`follow_deployments`, default true): the sum of their current
    /// concurrency limits, when every deployment has one.
    pub follow_deployments: bool,
    /// Requests that may wait for a slot (`max_queue`, default 1024; 0: none
    /// wait, a request beyond `max_in_flight` is refused at once).
    pub max_queue: usize,
    /// Longest wait in the queue (`queue_timeout_ms`, default 5 s); never
    /// beyond the request's own deadline.
    pub queue_timeout: Duration,
    /// Queueing delay that counts as a standing queue (`target_delay_ms`,
    /// default 100 ms).
    pub target_delay: Duration,
    /// How long the queueing delay must stay above the target before the
    /// lowest priority is shed (`interval_ms`, default 1 s).
    pub interval: Duration,
    /// Bytes of request and response bodies buffered at once, gateway-wide
    /// (`memory_budget_bytes`, default 1 GiB).
    pub memory_budget_bytes: u64,
    /// The share of the in-flight limit one key may hold, in flight and
    /// queued together, once requests have to queue and other keys hold
    /// requests too (`key_share_percent`, 1 to 100, default 50; at least
    /// one slot; 100: no share). Requests without a key count as one key.
    pub key_share_percent: u8,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            follow_deployments: true,
            max_queue: 1024,
            queue_timeout: Duration::from_secs(5),
            target_delay: Duration::from_millis(100),
            interval: Duration::from_secs(1),
            memory_budget_bytes: 1 << 30,
            key_share_percent: 50,
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, Default)]
pub struct AdminConfig {
    /// Bearer token for the admin API (`token`, usually `"${LIFELINE_ADMIN_TOKEN}"`).
    /// With none, the admin listener serves only `/healthz`, `/readyz` and `/metrics`.
    pub token: Option<Secret>,
}

/// `[health]`: circuit breaker and probes.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// Sliding window over which the failure rate is computed (`window_ms`, default 10 s).
    pub window: Duration,
    /// Failure rate in the window that opens the breaker (`failure_rate`, default 0.5).
    pub failure_rate: f64,
    /// Fewest attempts in the window before the rate is judged (`min_requests`, default 10).
    pub min_requests: u32,
    /// Consecutive failures that open the breaker at once (`consecutive_failures`, default 5).
    pub consecutive_failures: u32,
    /// First open period (`cooldown_ms`, default 5 s); doubles on each re-opening.
    pub cooldown: Duration,
    /// Longest open period (`max_cooldown_ms`, default 60 s).
    pub max_cooldown: Duration,
    /// Successful trial requests in half-open that close the breaker (`half_open_requests`, default 3).
    pub half_open_requests: u32,
    /// How often the prober looks at deployments (`probe_interval_ms`, default 1 s).
    pub probe_interval: Duration,
    /// A deployment with no traffic for this long is probed (`idle_probe_after_ms`, default 30 s).
    pub idle_probe_after: Duration,
    /// Timeout of one probe (`probe_timeout_ms`, default 3 s).
    pub probe_timeout: Duration,
    /// Early warning: drift detection and demotion (`early_warning*`).
    pub early_warning: EarlyWarningConfig,
}

/// `[health] early_warning*`: each deployment's latency, time to first
/// token, error and 429 ratios watched for drift out of their normal band
/// (`crate::health::drift`), and a drifting deployment demoted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyWarningConfig {
    /// Watch and demote (`early_warning`, default true).
    pub enabled: bool,
    /// One judgement per window (`early_warning_window_ms`, default 1 s;
    /// judged on the prober's round, so never more often than
    /// `probe_interval_ms`).
    pub window: Duration,
    /// How far out of its baseline a window must be, in robust standard
    /// deviations, to count as out of band (`early_warning_band`, default 4).
    pub band: f64,
    /// The lowest weight factor a demotion reaches, in (0, 1]
    /// (`early_warning_min_factor`, default 0.1).
    pub min_factor: f64,
    /// Samples a signal needs before a window of it is judged
    /// (`early_warning_min_samples`, default 10; fewer carry over to the
    /// next window).
    pub min_samples: u32,
}

impl Default for EarlyWarningConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(1),
            band: 4.0,
            min_factor: 0.1,
            min_samples: 10,
        }
    }
}

/// The protocol and URL shape of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// api.openai.com (default base URL `https://api.openai.com/v1`).
    OpenAi,
    /// Azure OpenAI: `{base_url}/openai/deployments/{model}/...?api-version=...`, `api-key` header.
    Azure,
    /// Any server speaking the OpenAI API (vLLM, Ollama, LiteLLM, ...). Needs `base_url`.
    OpenAiCompatible,
    /// Lifeline's simulated provider, run in-process on a loopback port.
    Mock,
    /// Anthropic's Messages API: `{base_url}/v1/messages`, `x-api-key`,
    /// `anthropic-version` (default base URL `https://api.anthropic.com`).
    Anthropic,
}

/// How a provider speaking Anthropic's Messages API is called: present
/// for `kind = "anthropic"` and for `kind = "mock"` with
/// `protocol = "anthropic"`, absent for every OpenAI-shaped provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnthropicSettings {
    /// The `anthropic-version` header (`anthropic_version`, default `2023-06-01`).
    pub version: String,
    /// `max_tokens` for a translated request that sets none
    /// (`default_max_tokens`, default 4096): Anthropic requires it.
    pub default_max_tokens: u32,
}

/// `[[providers]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    /// Unique name, referenced by `models[].tiers[][].provider`.
    pub name: String,
    /// Protocol and URL shape.
    pub kind: ProviderKind,
    /// Base URL without trailing slash, e.g. `http://127.0.0.1:9001/v1`.
    /// `None` only for `kind = "mock"`, whose address is known once it is bound.
    pub base_url: Option<String>,
    /// Upstream API key (`api_key`), already expanded from `${VAR}`.
    pub api_key: Option<Secret>,
    /// Cap on in-flight requests to this provider (`max_concurrency`).
    pub max_concurrency: Option<u32>,
    /// Azure `api-version` query value (`api_version`, default `2024-10-21`).
    pub api_version: String,
    /// Path, relative to `base_url`, that active probes GET (`probe_path`, default `/models`).
    /// `None` (`probe_path = ""`) disables active probes: open breakers half-open after their cooldown.
    pub probe_path: Option<String>,
    /// Probe each deployment with a one-token chat completion for its own
    /// model instead of `GET {probe_path}` (`probe_completion`, default
    /// false). Costs a token per probe; catches a provider whose model list
    /// answers while inference is down.
    pub probe_completion: bool,
    /// Whether its deployments continue a trailing assistant message (an
    /// assistant prefill), used to continue a broken stream (`prefill`;
    /// `None`: the kind's default, [`ProviderConfig::prefill`]).
    pub prefill: Option<bool>,
    /// Settings of the in-process simulated provider (`[providers.mock]`), for `kind = "mock"`.
    pub mock: Option<SimulatedSettings>,
    /// `Some` when the provider speaks Anthropic's Messages API instead of
    /// OpenAI's ([`AnthropicSettings`]).
    pub anthropic: Option<AnthropicSettings>,
    /// Its request and token quotas (`rpm`, `tpm`), if it has either.
    pub quota: Option<QuotaConfig>,
}

impl ProviderConfig {
    /// Whether its deployments take an assistant prefill: the `prefill`
    /// key, else the kind's default. Anthropic and the simulated provider
    /// continue a trailing assistant message (Anthropic's newest models
    /// refuse it with a 400, which is then remembered); OpenAI documents no
    /// prefill (and Azure OpenAI follows it), and OpenAI-compatible servers
    /// differ (llama.cpp's server continues one by default, vLLM only with
    /// `continue_final_message`), so those are off unless declared.
    pub fn prefill(&self) -> bool {
        self.prefill.unwrap_or(matches!(
            self.kind,
            ProviderKind::Mock | ProviderKind::Anthropic
        ))
    }
}

/// `[providers.mock]`: the simulated provider's own settings, with the
/// `simulated` feature; without it, any table (which validation rejects).
#[cfg(feature = "simulated")]
pub type SimulatedSettings = lifeline_mock::MockConfig;

/// `[providers.mock]`: the simulated provider's own settings, with the
/// `simulated` feature; without it, any table (which validation rejects).
#[cfg(not(feature = "simulated"))]
pub type SimulatedSettings = toml::Table;

/// `[[models]]`.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Public name clients send in `model`.
    pub name: String,
    /// Tiers in order; each is a non-empty list of deployments.
    pub tiers: Vec<Vec<DeploymentRef>>,
    /// Timeouts and retries, `[server]` defaults overridden by this model's keys.
    pub policy: RequestPolicy,
    /// Whether a chat stream that breaks after content is continued from
    /// another deployment (`continuation`, default true).
    pub continuation: bool,
}

/// One `{ provider, model, weight, context_window }` entry of a tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentRef {
    /// A provider name that exists in `providers`.
    pub provider: String,
    /// Upstream model name sent to that provider.
    pub model: String,
    /// Relative share of traffic within the tier (>= 1, default 1).
    pub weight: u32,
    /// The upstream model's context window in tokens (`context_window`), if
    /// known: after a context-length refusal, a deployment with a larger one
    /// may take the request.
    pub context_window: Option<u32>,
    /// Overrides the provider's `prefill` for this deployment (`prefill`).
    pub prefill: Option<bool>,
}

/// Timeouts and retry settings of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestPolicy {
    /// TCP connect timeout (`connect_timeout_ms`, default 2 s).
    pub connect_timeout: Duration,
    /// Time from sending an attempt to its response headers, and for streams to
    /// the first content (`first_byte_timeout_ms`, default 10 s).
    pub first_byte_timeout: Duration,
    /// Longest silence inside a stream after it started (`stream_idle_timeout_ms`, default 10 s).
    pub stream_idle_timeout: Duration,
    /// End-to-end deadline of a request, all attempts included (`request_timeout_ms`, default 120 s).
    pub request_timeout: Duration,
    /// Most attempts per request, the first included (`max_attempts`, default 4).
    pub max_attempts: u32,
    /// Base of exponential backoff (`backoff_base_ms`, default 50 ms).
    pub backoff_base: Duration,
    /// Cap of exponential backoff (`backoff_max_ms`, default 2 s).
    pub backoff_max: Duration,
    /// Retries allowed as a fraction of recent requests (`retry_budget_ratio`, default 0.2).
    pub retry_budget_ratio: f64,
    /// Retries per second always allowed (`retry_budget_min_per_sec`, default 5).
    pub retry_budget_min_per_sec: u32,
    /// Most time a request waits (backoff, `Retry-After`) to be retried in
    /// its tier after a transient failure before it descends to a later
    /// tier (`tier_wait_ms`, default 3 s; zero descends at once).
    pub tier_wait: Duration,
    /// Whether a content-policy refusal moves the request to another
    /// upstream model instead of being returned (`content_policy_fallback`,
    /// default false).
    pub content_policy_fallback: bool,
    /// Whether deadlines follow each deployment's recent p99 latency
    /// (`adaptive_timeouts`, default true).
    pub adaptive_timeouts: bool,
    /// Adaptive deadline = this × the recent p99 (`adaptive_timeout_multiplier`, default 3).
    pub adaptive_multiplier: f64,
    /// Shortest adaptive deadline (`adaptive_timeout_floor_ms`, default 2 s).
    pub adaptive_floor: Duration,
    /// Hedged requests (`hedge`, `hedge_budget_percent`).
    pub hedge: HedgePolicy,
    /// Degraded mode (`degraded`, `degraded_max_age_ms`,
    /// `degraded_any_temperature`).
    pub degraded: DegradedPolicy,
}

/// Hedged requests of one model: a second attempt on another deployment
/// once the first has waited longer than its deployment's recent p95.
#[derive(Clone, Debug, PartialEq)]
pub struct HedgePolicy {
    /// On (`hedge`, default false).
    pub enabled: bool,
    /// Most hedges, in percent of the model's requests over the retry
    /// budget's window (`hedge_budget_percent`, default 5); each hedge also
    /// takes a retry-budget token.
    pub budget_percent: f64,
}

impl Default for HedgePolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            budget_percent: 5.0,
        }
    }
}

/// Degraded mode of one model: when every deployment failed, an identical
/// recent request's answer, from a bounded cache.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradedPolicy {
    /// On (`degraded`, default false).
    pub enabled: bool,
    /// Oldest answer served (`degraded_max_age_ms`, default 10 min).
    pub max_age: Duration,
    /// Answers to requests with any temperature qualify
    /// (`degraded_any_temperature`, default false: only `temperature: 0`).
    pub any_temperature: bool,
}

impl Default for DegradedPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            max_age: Duration::from_secs(600),
            any_temperature: false,
        }
    }
}

/// `[[keys]]`: one client key, kept only as its SHA-256.
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// Display name (for logs and metrics; never the key).
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// Its priority class (`priority`, default `standard`).
    pub priority: Priority,
    /// Requests per minute (`rpm`), if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute (`tpm`), if limited.
    pub tpm: Option<u64>,
    /// The public models it may use (`models`); empty: all.
    pub models: Vec<String>,
}

/// A request's priority class: who is served first under overload, and
/// shed last. Ordered: `Critical < Standard < Batch` (lower is more
/// important).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Served first, shed last.
    Critical,
    /// The default.
    #[default]
    Standard,
    /// Shed first.
    Batch,
}

impl Priority {
    /// Every class, most important first.
    pub const ALL: [Priority; 3] = [Priority::Critical, Priority::Standard, Priority::Batch];

    /// From its config/store spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "critical" => Some(Self::Critical),
            "standard" => Some(Self::Standard),
            "batch" => Some(Self::Batch),
            _ => None,
        }
    }

    /// Its config/store spelling (also the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Standard => "standard",
            Self::Batch => "batch",
        }
    }

    /// 0, 1, 2: an index for per-class arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A secret string that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for building upstream requests only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Default for RequestPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_attempts: 4,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 5,
            tier_wait: Duration::from_secs(3),
            content_policy_fallback: false,
            adaptive_timeouts: true,
            adaptive_multiplier: 3.0,
            adaptive_floor: Duration::from_secs(2),
            hedge: HedgePolicy::default(),
            degraded: DegradedPolicy::default(),
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            failure_rate: 0.5,
            min_requests: 10,
            consecutive_failures: 5,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
            half_open_requests: 3,
            probe_interval: Duration::from_secs(1),
            idle_probe_after: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(3),
            early_warning: EarlyWarningConfig::default(),
        }
    }
}
