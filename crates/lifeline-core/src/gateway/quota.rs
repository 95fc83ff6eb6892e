//! The quota task: closes each provider's quota buckets when they are due
//! ([`crate::health::quota`]), and says what the forecast found.
//!
//! Every provider with `rpm` or `tpm` has a [`QuotaMeter`] on its
//! [`Upstream`]. The task sleeps until the earliest bucket is due (at most
//! [`IDLE`], so that a reload's new providers are picked up), closes it,
//! and then: sets the provider's metrics
//! ([`crate::telemetry::quota`]), and when a warning starts or ends, logs
//! it (provider, quota, rate, forecast, steering factor), counts it, and
//! publishes a [`Change::Quota`] health event for each of the provider's
//! deployments. The steering factor itself is already in the meter, where
//! the balancer reads it.
//!
//! A reload that rebuilds a provider's adapter hands the new one the same
//! meter ([`carried_quota`]), with the new settings: its trend and factor
//! go on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Gateway;
use crate::config::ProviderConfig;
use crate::health::quota::{QuotaMeter, QuotaSettings, Step};
use crate::health::Change;
use crate::providers::{quota_settings, Upstream};

/// The longest the task sleeps, even when no bucket is due sooner.
pub const IDLE: Duration = Duration::from_secs(1);

impl Gateway {
    pub(super) fn spawn_quota_watch(&self) {
        let gw = self.clone();
        self.inner.tracker.spawn(async move {
            let mut watched = HashSet::new();
            loop {
                let next = gw.quota_round(&mut watched);
                tokio::select! {
                    () = gw.inner.shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(next) => {}
                }
            }
        });
    }

    /// Closes the buckets that are due; returns when the next one is.
    /// `watched`: the providers whose gauges are set, so that those of a
    /// provider a reload removed (or left without a quota) are removed.
    fn quota_round(&self, watched: &mut HashSet<Arc<str>>) -> Instant {
        let now = Instant::now();
        let mut next = now + IDLE;
        let upstreams: Vec<Arc<Upstream>> = self
            .inner
            .upstreams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|u| u.quota.is_some())
            .cloned()
            .collect();
        let metrics = self.inner.metrics.quota();
        watched.retain(|p| {
            let kept = upstreams.iter().any(|u| u.name == *p);
            if !kept {
                metrics.forget(p);
            }
            kept
        });
        for up in &upstreams {
            let Some(meter) = &up.quota else {
                continue;
            };
            if let Some(step) = meter.poll(now) {
                watched.insert(up.name.clone());
                self.quota_step(up, &step);
            }
            next = next.min(meter.due());
        }
        next
    }

    /// Metrics, and on a warning's start or end, the log line, the counter
    /// and the health events.
    fn quota_step(&self, up: &Upstream, step: &Step) {
        let metrics = self.inner.metrics.quota();
        for k in step.kinds.iter().flatten() {
            metrics.observe(&up.name, k.kind.label(), k.rate, k.seconds_to_quota);
        }
        metrics.factor(&up.name, step.factor);
        let (Some(warning), Some(k)) = (step.changed, step.nearest()) else {
            return;
        };
        let kind = k.kind.label();
        let rate = k.rate.round() as u64;
        let seconds = k.seconds_to_quota.map(|s| s.round() as u64);
        if warning {
            metrics.warning(&up.name, kind);
            tracing::warn!(
                message = "Quota forecast: the provider's traffic reaches its quota within the horizon; steering traffic to other deployments.",
                provider = %up.name,
                kind,
                rate_per_minute = rate,
                quota_per_minute = k.quota,
                forecast_seconds = ?seconds,
                factor = step.factor,
            );
        } else {
            tracing::info!(
                message = "Quota forecast: warning over; the provider takes its full share again.",
                provider = %up.name,
                kind,
                rate_per_minute = rate,
                quota_per_minute = k.quota,
                factor = step.factor,
            );
        }
        for d in self
            .live()
            .deployments
            .iter()
            .filter(|d| d.upstream.name == up.name)
        {
            self.inner.events.publish(
                d.id.clone(),
                Change::Quota {
                    warning,
                    kind,
                    rate,
                    quota: k.quota,
                    seconds_to_quota: seconds,
                    factor: step.factor,
                },
            );
        }
    }
}

/// The quota meter of a rebuilt provider adapter: the previous adapter's,
/// when both have quotas (a new one otherwise, as [`Upstream::new`] made
/// it), and the new settings for it. The live meter is left as it is: the
/// caller reconfigures it only once the reload can no longer fail, so a
/// rejected reload changes nothing.
pub(super) fn carried_quota(
    prev: &Upstream,
    p: &ProviderConfig,
) -> Option<(Arc<QuotaMeter>, QuotaSettings)> {
    let (Some(meter), Some(q)) = (&prev.quota, &p.quota) else {
        return None;
    };
    Some((meter.clone(), quota_settings(q)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn provider(quota: &str) -> ProviderConfig {
        let text = format!(
            "[[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n{quota}\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p\", model = \"x\" }} ] ]\n"
        );
        let mut config = Config::parse(&text, "<test>").unwrap();
        config.providers.remove(0)
    }

    /// A reload that changes the quota keeps the meter (its trend and
    /// factor) with the new settings; one that drops it drops the meter.
    #[tokio::test]
    async fn a_rebuilt_provider_keeps_its_meter_with_the_new_settings() {
        let old = Upstream::new(&provider("rpm = 100\n"), "http://127.0.0.1:9/v1".into()).unwrap();
        let meter = old.quota.clone().unwrap();
        let changed = provider("rpm = 200\ntpm = 5000\nquota_bucket_ms = 500\n");
        let (carried, settings) = carried_quota(&old, &changed).unwrap();
        assert!(Arc::ptr_eq(&carried, &meter));
        // Not yet: the reload may still fail.
        assert_eq!(carried.settings().rpm, Some(100));
        carried.reconfigure(settings);
        let s = carried.settings();
        assert_eq!((s.rpm, s.tpm), (Some(200), Some(5000)));
        assert_eq!(s.bucket, Duration::from_millis(500));
        assert!(carried_quota(&old, &provider("")).is_none());
        let none = Upstream::new(&provider(""), "http://127.0.0.1:9/v1".into()).unwrap();
        assert!(none.quota.is_none());
        assert_eq!(none.quota_factor(), 1.0);
    }
}
