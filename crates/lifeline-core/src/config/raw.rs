//! The configuration file as written: serde structs that mirror the TOML.
//!
//! These types accept exactly the keys of the file format and nothing else
//! (`deny_unknown_fields`), so a misspelt key is an error instead of a silently
//! ignored setting. Values that validation may still reject are wrapped in
//! [`Spanned`], which keeps their byte range so that [`super::validate`] can
//! name the line. No defaults are applied here: an absent key is `None`, and
//! [`super::validate`] decides what it means.
//!
//! This module also turns TOML syntax errors and serde errors (unknown key,
//! wrong type, missing key) into [`ConfigError`]s with a line and, found from
//! the error's position in the parsed document, the key's path.

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    pub server: RawServer,
    pub admin: RawAdmin,
    pub health: RawHealth,
    pub providers: Vec<Spanned<RawProvider>>,
    pub models: Vec<Spanned<RawModel>>,
    pub keys: Vec<Spanned<RawKey>>,
    pub store: RawStore,
    pub status: RawStatus,
    pub admission: RawAdmission,
}

/// `[server]`: listeners, limits, and the default [`RawPolicy`] of every model.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub admin_listen: Option<Spanned<String>>,
    pub status_listen: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<u64>>,
    pub max_connections: Option<Spanned<u64>>,
    pub header_read_timeout_ms: Option<Spanned<u64>>,
    pub body_read_timeout_ms: Option<Spanned<u64>>,
    pub drain_timeout_ms: Option<Spanned<u64>>,
    pub idle_timeout_ms: Option<Spanned<u64>>,
    pub http2_keepalive_ms: Option<Spanned<u64>>,
    pub auth: Option<Spanned<String>>,
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub ip_requests_per_minute: Option<Spanned<u64>>,
    pub ip_auth_failures_per_minute: Option<Spanned<u64>>,
    pub ip_lockout_max_ms: Option<Spanned<u64>>,
    pub ip_table_size: Option<Spanned<u64>>,
    pub max_header_bytes: Option<Spanned<u64>>,
    pub max_json_depth: Option<Spanned<u64>>,
    pub max_requests_per_connection: Option<Spanned<u64>>,
    pub max_connection_age_ms: Option<Spanned<u64>>,
    pub http2_max_concurrent_streams: Option<Spanned<u64>>,
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    // The policy keys, repeated in `RawModel`. serde's `flatten` cannot be
    // combined with `deny_unknown_fields`, so they are written out twice.
    pub connect_timeout_ms: Option<Spanned<u64>>,
    pub first_byte_timeout_ms: Option<Spanned<u64>>,
    pub stream_idle_timeout_ms: Option<Spanned<u64>>,
    pub request_timeout_ms: Option<Spanned<u64>>,
    pub max_attempts: Option<Spanned<u32>>,
    pub backoff_base_ms: Option<Spanned<u64>>,
    pub backoff_max_ms: Option<Spanned<u64>>,
    pub retry_budget_ratio: Option<Spanned<f64>>,
    pub retry_budget_min_per_sec: Option<Spanned<u32>>,
    pub tier_wait_ms: Option<Spanned<u64>>,
    pub content_policy_fallback: Option<Spanned<bool>>,
    pub adaptive_timeouts: Option<Spanned<bool>>,
    pub adaptive_timeout_multiplier: Option<Spanned<f64>>,
    pub adaptive_timeout_floor_ms: Option<Spanned<u64>>,
    // Adaptive concurrency per deployment and waiting at the cap
    // (`validate/concurrency.rs`).
    pub adaptive_concurrency: Option<Spanned<bool>>,
    pub adaptive_min_limit: Option<Spanned<u32>>,
    pub adaptive_initial_limit: Option<Spanned<u32>>,
    pub adaptive_max_limit: Option<Spanned<u32>>,
    pub capacity_waiters: Option<Spanned<u32>>,
    pub capacity_wait_ms: Option<Spanned<u64>>,
    // Hedged requests and degraded mode (policy keys too).
    pub hedge: Option<Spanned<bool>>,
    pub hedge_budget_percent: Option<Spanned<f64>>,
    pub degraded: Option<Spanned<bool>>,
    pub degraded_max_age_ms: Option<Spanned<u64>>,
    pub degraded_any_temperature: Option<Spanned<bool>>,
    /// The degraded-mode cache's bound, gateway-wide.
    pub degraded_cache_bytes: Option<Spanned<u64>>,
}

/// `[admission]`: global admission, priority shedding and the memory budget.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAdmission {
    pub max_in_flight: Option<Spanned<u64>>,
    pub follow_deployments: Option<Spanned<bool>>,
    pub max_queue: Option<Spanned<u64>>,
    pub queue_timeout_ms: Option<Spanned<u64>>,
    pub target_delay_ms: Option<Spanned<u64>>,
    pub interval_ms: Option<Spanned<u64>>,
    pub memory_budget_bytes: Option<Spanned<u64>>,
    pub key_share_percent: Option<Spanned<u64>>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub token: Option<Spanned<String>>,
}

/// `[health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawHealth {
    pub window_ms: Option<Spanned<u64>>,
    pub failure_rate: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<u32>>,
    pub consecutive_failures: Option<Spanned<u32>>,
    pub cooldown_ms: Option<Spanned<u64>>,
    pub max_cooldown_ms: Option<Spanned<u64>>,
    pub half_open_requests: Option<Spanned<u32>>,
    pub probe_interval_ms: Option<Spanned<u64>>,
    pub idle_probe_after_ms: Option<Spanned<u64>>,
    pub probe_timeout_ms: Option<Spanned<u64>>,
    pub early_warning: Option<Spanned<bool>>,
    pub early_warning_window_ms: Option<Spanned<u64>>,
    pub early_warning_band: Option<Spanned<f64>>,
    pub early_warning_min_factor: Option<Spanned<f64>>,
    pub early_warning_min_samples: Option<Spanned<u32>>,
}

/// One `[[providers]]` table. Its span is that of its `[[providers]]` header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub api_key: Option<Spanned<String>>,
    #[serde(default)]
    pub max_concurrency: Option<Spanned<u32>>,
    #[serde(default)]
    pub api_version: Option<Spanned<String>>,
    #[serde(default)]
    pub probe_path: Option<Spanned<String>>,
    #[serde(default)]
    pub probe_completion: Option<Spanned<bool>>,
    #[serde(default)]
    pub prefill: Option<Spanned<bool>>,
    /// `kind = "anthropic"` (and `kind = "mock"` with `protocol = "anthropic"`).
    #[serde(default)]
    pub anthropic_version: Option<Spanned<String>>,
    #[serde(default)]
    pub default_max_tokens: Option<Spanned<u32>>,
    /// `kind = "mock"` only: `openai` (default) or `anthropic`.
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
    /// `[providers.mock]`, handed whole to the simulated provider.
    #[serde(default)]
    pub mock: Option<Spanned<super::model::SimulatedSettings>>,
    /// The provider's quotas and their forecast (`validate/quota.rs`).
    #[serde(default)]
    pub rpm: Option<Spanned<u64>>,
    #[serde(default)]
    pub tpm: Option<Spanned<u64>>,
    #[serde(default)]
    pub quota_horizon_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub quota_bucket_ms: Option<Spanned<u64>>,
}

/// One `[[models]]` table. Its span is that of its `[[models]]` header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub name: Spanned<String>,
    pub tiers: Spanned<Vec<Spanned<Vec<Spanned<RawDeployment>>>>>,
    #[serde(default)]
    pub connect_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub first_byte_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub stream_idle_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub request_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_attempts: Option<Spanned<u32>>,
    #[serde(default)]
    pub backoff_base_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub backoff_max_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub retry_budget_ratio: Option<Spanned<f64>>,
    #[serde(default)]
    pub retry_budget_min_per_sec: Option<Spanned<u32>>,
    #[serde(default)]
    pub tier_wait_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub content_policy_fallback: Option<Spanned<bool>>,
    #[serde(default)]
    pub adaptive_timeouts: Option<Spanned<bool>>,
    #[serde(default)]
    pub adaptive_timeout_multiplier: Option<Spanned<f64>>,
    #[serde(default)]
    pub adaptive_timeout_floor_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub continuation: Option<Spanned<bool>>,
    #[serde(default)]
    pub hedge: Option<Spanned<bool>>,
    #[serde(default)]
    pub hedge_budget_percent: Option<Spanned<f64>>,
    #[serde(default)]
    pub degraded: Option<Spanned<bool>>,
    #[serde(default)]
    pub degraded_max_age_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub degraded_any_temperature: Option<Spanned<bool>>,
}

/// One `{ provider, model, weight, context_window }` entry of a tier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeployment {
    pub provider: Spanned<String>,
    pub model: Spanned<String>,
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
    #[serde(default)]
    pub context_window: Option<Spanned<u32>>,
    #[serde(default)]
    pub prefill: Option<Spanned<bool>>,
}

/// One `[[keys]]` table. Its span is that of its `[[keys]]` header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub name: Spanned<String>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub sha256: Option<Spanned<String>>,
    #[serde(default)]
    pub priority: Option<Spanned<String>>,
    #[serde(default)]
    pub rpm: Option<Spanned<u64>>,
    #[serde(default)]
    pub tpm: Option<Spanned<u64>>,
    #[serde(default)]
    pub models: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[store]`: where the status side keeps its history.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    pub url: Option<Spanned<String>>,
    pub sli_retention_days: Option<Spanned<u32>>,
}

/// `[status]`: the status page.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStatus {
    pub enabled: Option<Spanned<bool>>,
    pub title: Option<Spanned<String>>,
    pub page_url: Option<Spanned<String>>,
    pub publish_automatic: Option<Spanned<bool>>,
    pub open_after_ms: Option<Spanned<u64>>,
    pub update_interval_ms: Option<Spanned<u64>>,
    pub resolve_after_ms: Option<Spanned<u64>>,
    pub no_data_after_ms: Option<Spanned<u64>>,
    pub show_providers: Option<Spanned<bool>>,
    pub early_warning: Option<Spanned<bool>>,
    pub static_dir: Option<Spanned<String>>,
    pub clock_speed: Option<Spanned<u32>>,
    pub slo: RawSlo,
    pub components: Vec<Spanned<RawComponent>>,
    pub upstream: Vec<Spanned<RawStatusUpstream>>,
}

/// `[status.slo]`, and the same keys as overrides in a component.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSlo {
    pub availability: Option<Spanned<f64>>,
    pub latency_ms: Option<Spanned<u64>>,
    pub latency_target: Option<Spanned<f64>>,
    pub period_days: Option<Spanned<u32>>,
}

/// One `[[status.components]]` table. Its span is that of its header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponent {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    pub models: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    // The `[status.slo]` keys, as overrides (written out: `flatten` and
    // `deny_unknown_fields` do not mix).
    #[serde(default)]
    pub availability: Option<Spanned<f64>>,
    #[serde(default)]
    pub latency_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub latency_target: Option<Spanned<f64>>,
    #[serde(default)]
    pub period_days: Option<Spanned<u32>>,
}

impl RawComponent {
    /// The SLO keys this component overrides.
    pub fn slo(&self) -> RawSlo {
        RawSlo {
            availability: self.availability.clone(),
            latency_ms: self.latency_ms.clone(),
            latency_target: self.latency_target.clone(),
            period_days: self.period_days.clone(),
        }
    }
}

/// One `[[status.upstream]]` table: a provider's public status feed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatusUpstream {
    pub provider: Spanned<String>,
    pub url: Spanned<String>,
    pub format: Spanned<String>,
    #[serde(default)]
    pub interval_ms: Option<Spanned<u64>>,
}

/// The timeout and retry keys allowed both in `[server]` (as defaults) and in
/// each `[[models]]` (as overrides).
#[derive(Debug, Default)]
pub(super) struct RawPolicy {
    pub connect_timeout_ms: Option<Spanned<u64>>,
    pub first_byte_timeout_ms: Option<Spanned<u64>>,
    pub stream_idle_timeout_ms: Option<Spanned<u64>>,
    pub request_timeout_ms: Option<Spanned<u64>>,
    pub max_attempts: Option<Spanned<u32>>,
    pub backoff_base_ms: Option<Spanned<u64>>,
    pub backoff_max_ms: Option<Spanned<u64>>,
    pub retry_budget_ratio: Option<Spanned<f64>>,
    pub retry_budget_min_per_sec: Option<Spanned<u32>>,
    pub tier_wait_ms: Option<Spanned<u64>>,
    pub content_policy_fallback: Option<Spanned<bool>>,
    pub adaptive_timeouts: Option<Spanned<bool>>,
    pub adaptive_timeout_multiplier: Option<Spanned<f64>>,
    pub adaptive_timeout_floor_ms: Option<Spanned<u64>>,
    pub hedge: Option<Spanned<bool>>,
    pub hedge_budget_percent: Option<Spanned<f64>>,
    pub degraded: Option<Spanned<bool>>,
    pub degraded_max_age_ms: Option<Spanned<u64>>,
    pub degraded_any_temperature: Option<Spanned<bool>>,
}

impl RawServer {
    /// The policy keys of `[server]`.
    pub fn policy(&self) -> RawPolicy {
        RawPolicy {
            connect_timeout_ms: self.connect_timeout_ms.clone(),
            first_byte_timeout_ms: self.first_byte_timeout_ms.clone(),
            stream_idle_timeout_ms: self.stream_idle_timeout_ms.clone(),
            request_timeout_ms: self.request_timeout_ms.clone(),
            max_attempts: self.max_attempts.clone(),
            backoff_base_ms: self.backoff_base_ms.clone(),
            backoff_max_ms: self.backoff_max_ms.clone(),
            retry_budget_ratio: self.retry_budget_ratio.clone(),
            retry_budget_min_per_sec: self.retry_budget_min_per_sec.clone(),
            tier_wait_ms: self.tier_wait_ms.clone(),
            content_policy_fallback: self.content_policy_fallback.clone(),
            adaptive_timeouts: self.adaptive_timeouts.clone(),
            adaptive_timeout_multiplier: self.adaptive_timeout_multiplier.clone(),
            adaptive_timeout_floor_ms: self.adaptive_timeout_floor_ms.clone(),
            hedge: self.hedge.clone(),
            hedge_budget_percent: self.hedge_budget_percent.clone(),
            degraded: self.degraded.clone(),
            degraded_max_age_ms: self.degraded_max_age_ms.clone(),
            degraded_any_temperature: self.degraded_any_temperature.clone(),
        }
    }
}

impl RawModel {
    /// The policy keys this model overrides.
    pub fn policy(&self) -> RawPolicy {
        RawPolicy {
            connect_timeout_ms: self.connect_timeout_ms.clone(),
            first_byte_timeout_ms: self.first_byte_timeout_ms.clone(),
            stream_idle_timeout_ms: self.stream_idle_timeout_ms.clone(),
            request_timeout_ms: self.request_timeout_ms.clone(),
            max_attempts: self.max_attempts.clone(),
            backoff_base_ms: self.backoff_base_ms.clone(),
            backoff_max_ms: self.backoff_max_ms.clone(),
            retry_budget_ratio: self.retry_budget_ratio.clone(),
            retry_budget_min_per_sec: self.retry_budget_min_per_sec.clone(),
            tier_wait_ms: self.tier_wait_ms.clone(),
            content_policy_fallback: self.content_policy_fallback.clone(),
            adaptive_timeouts: self.adaptive_timeouts.clone(),
            adaptive_timeout_multiplier: self.adaptive_timeout_multiplier.clone(),
            adaptive_timeout_floor_ms: self.adaptive_timeout_floor_ms.clone(),
            hedge: self.hedge.clone(),
            hedge_budget_percent: self.hedge_budget_percent.clone(),
            degraded: self.degraded.clone(),
            degraded_max_age_ms: self.degraded_max_age_ms.clone(),
            degraded_any_temperature: self.degraded_any_temperature.clone(),
        }
    }
}

/// Parses `text` into a [`RawConfig`]. On failure returns every TOML syntax
/// error, or else the first serde error, each with its line and key path.
pub(super) fn parse(text: &str, file: &str) -> Result<RawConfig, Vec<ConfigError>> {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let mut errors: Vec<(usize, ConfigError)> = syntax_errors
            .iter()
            .map(|e| {
                let start = e.span().map_or(usize::MAX, |s| s.start);
                let error = ConfigError {
                    file: file.to_owned(),
                    line: e.span().map(|s| line_at(text, s.start)),
                    // The recovered document is unreliable around the error.
                    field: String::new(),
                    message: format!("TOML syntax error: {}", e.message()),
                };
                (start, error)
            })
            .collect();
        errors.sort_by_key(|(start, _)| *start);
        return Err(errors.into_iter().map(|(_, e)| e).collect());
    }
    toml::from_str::<RawConfig>(text).map_err(|e| {
        let span = e.span();
        vec![ConfigError {
            file: file.to_owned(),
            line: span.as_ref().map(|s| line_at(text, s.start)),
            field: span
                .map(|s| path_at(document.get_ref(), s.start))
                .unwrap_or_default(),
            message: e.message().to_owned(),
        }]
    })
}

/// The 1-based line holding byte `offset` of `text`. An offset at the very
/// end of a file that ends in a newline counts as the last line.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    if offset == text.len() && text.ends_with('\n') {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or(text);
    before.bytes().filter(|b| *b == b'\n').count() + 1
}

/// The key path (`models[0].tiers[1][0].weight`) of the innermost key or value
/// that holds byte `pos` of the document, or `""` if none does.
fn path_at(table: &DeTable<'_>, pos: usize) -> String {
    let mut path = String::new();
    if find_in_table(table, pos, &mut path) {
        path
    } else {
        String::new()
    }
}

fn find_in_table(table: &DeTable<'_>, pos: usize, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let mut candidate = if path.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{path}.{}", key.get_ref())
        };
        if holds(&key.span(), pos) || find_in_value(value, pos, &mut candidate) {
            *path = candidate;
            return true;
        }
    }
    false
}

/// Looks inside tables and arrays first: a `[[table]]`'s span covers only its
/// header, not the keys under it.
fn find_in_value(value: &Spanned<DeValue<'_>>, pos: usize, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) if find_in_table(table, pos, path) => return true,
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                let mut candidate = format!("{path}[{i}]");
                if find_in_value(item, pos, &mut candidate) {
                    *path = candidate;
                    return true;
                }
            }
        }
        _ => {}
    }
    holds(&value.span(), pos)
}

fn holds(span: &std::ops::Range<usize>, pos: usize) -> bool {
    span.contains(&pos) || (span.is_empty() && span.start == pos)
}
