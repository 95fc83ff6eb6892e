//! The quota forecast's metrics ([`crate::health::quota`]), set once per
//! bucket by the gateway's quota task, never on the request path:
//!
//! - `lifeline_provider_quota_rate{provider,kind}`: the rate now, per
//!   minute (`kind` `requests` or `tokens`);
//! - `lifeline_provider_quota_forecast_seconds{provider,kind}`: seconds
//!   until the trend reaches the quota (0 at or over it, `+Inf` when the
//!   trend does not rise);
//! - `lifeline_provider_quota_factor{provider}`: the balancer's steering
//!   factor for the provider's deployments (1: no steering);
//! - `lifeline_provider_quota_warnings_total{provider,kind}`: warnings
//!   started, by the quota nearest to being reached.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderKind {
    provider: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Provider {
    provider: Arc<str>,
}

/// The `kind` label values.
const KINDS: [&str; 2] = ["requests", "tokens"];

/// The quota forecast's metrics; one per [`super::Metrics`].
pub struct QuotaMetrics {
    rate: Family<ProviderKind, Gauge<f64, AtomicU64>>,
    forecast: Family<ProviderKind, Gauge<f64, AtomicU64>>,
    factor: Family<Provider, Gauge<f64, AtomicU64>>,
    warnings: Family<ProviderKind, Counter>,
}

impl QuotaMetrics {
    /// Creates the families and registers them in `registry`.
    pub(super) fn new(registry: &mut Registry) -> Self {
        let m = Self {
            rate: Family::default(),
            forecast: Family::default(),
            factor: Family::default(),
            warnings: Family::default(),
        };
        registry.register(
            "provider_quota_rate",
            "A provider's recent rate per minute against its quota, by kind (requests, tokens)",
            m.rate.clone(),
        );
        registry.register(
            "provider_quota_forecast_seconds",
            "Seconds until a provider's traffic trend reaches its quota, by kind (0 at or over it, +Inf when the trend does not rise)",
            m.forecast.clone(),
        );
        registry.register(
            "provider_quota_factor",
            "The balancer's quota steering factor for a provider's deployments (1: not steered)",
            m.factor.clone(),
        );
        registry.register(
            "provider_quota_warnings",
            "Quota warnings started (the forecast under the horizon), by provider and the quota nearest to being reached",
            m.warnings.clone(),
        );
        m
    }

    fn key(provider: &Arc<str>, kind: &'static str) -> ProviderKind {
        ProviderKind {
            provider: provider.clone(),
            kind,
        }
    }

    /// One quota's rate and forecast after a bucket.
    pub fn observe(
        &self,
        provider: &Arc<str>,
        kind: &'static str,
        rate: f64,
        seconds: Option<f64>,
    ) {
        let key = Self::key(provider, kind);
        self.rate.get_or_create(&key).set(rate);
        self.forecast
            .get_or_create(&key)
            .set(seconds.unwrap_or(f64::INFINITY));
    }

    /// The provider's steering factor after a bucket.
    pub fn factor(&self, provider: &Arc<str>, factor: f64) {
        self.factor
            .get_or_create(&Provider {
                provider: provider.clone(),
            })
            .set(factor);
    }

    /// A warning started for the provider, its `kind` quota nearest.
    pub fn warning(&self, provider: &Arc<str>, kind: &'static str) {
        self.warnings
            .get_or_create(&Self::key(provider, kind))
            .inc();
    }

    /// Removes the gauges of a provider that no longer has a quota (its
    /// warning counters stay, as counters do).
    pub fn forget(&self, provider: &Arc<str>) {
        for kind in KINDS {
            let key = Self::key(provider, kind);
            self.rate.remove(&key);
            self.forecast.remove(&key);
        }
        self.factor.remove(&Provider {
            provider: provider.clone(),
        });
    }
}
