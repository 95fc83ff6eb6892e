//! A provider's quotas: `rpm`, `tpm` (positive integers) and the forecast's
//! `quota_horizon_ms` and `quota_bucket_ms`, which need one of them.

use std::time::Duration;

use super::Validator;
use crate::config::model::{QuotaConfig, DEFAULT_QUOTA_BUCKET, DEFAULT_QUOTA_HORIZON};
use crate::config::raw::RawProvider;

/// The shortest and longest `quota_bucket_ms`.
const BUCKET_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

impl Validator<'_> {
    /// The provider's [`QuotaConfig`], `None` without `rpm` and `tpm`.
    pub(super) fn quota(
        &mut self,
        raw: &RawProvider,
        f: &dyn Fn(&str) -> String,
    ) -> Option<QuotaConfig> {
        let mut limit = |key: &str, value: &Option<toml::Spanned<u64>>| match value {
            Some(n) if *n.get_ref() == 0 => {
                let msg = "must be a positive number per minute (leave it out for no quota)";
                self.at(n, f(key), msg);
                None
            }
            Some(n) => Some(*n.get_ref()),
            None => None,
        };
        let rpm = limit("rpm", &raw.rpm);
        let tpm = limit("tpm", &raw.tpm);
        let horizon = self.duration(
            &raw.quota_horizon_ms,
            &f("quota_horizon_ms"),
            DEFAULT_QUOTA_HORIZON,
        );
        let bucket = match &raw.quota_bucket_ms {
            Some(ms) if !BUCKET_MS.contains(ms.get_ref()) => {
                let msg = format!(
                    "must be between {} and {} ms, got {}",
                    BUCKET_MS.start(),
                    BUCKET_MS.end(),
                    ms.get_ref()
                );
                self.at(ms, f("quota_bucket_ms"), msg);
                DEFAULT_QUOTA_BUCKET
            }
            Some(ms) => Duration::from_millis(*ms.get_ref()),
            None => DEFAULT_QUOTA_BUCKET,
        };
        let watched = raw.rpm.is_some() || raw.tpm.is_some();
        for (key, value) in [
            ("quota_horizon_ms", &raw.quota_horizon_ms),
            ("quota_bucket_ms", &raw.quota_bucket_ms),
        ] {
            if let Some(v) = value.as_ref().filter(|_| !watched) {
                let msg = "applies only to a provider with rpm or tpm";
                self.at(v, f(key), msg);
            }
        }
        (rpm.is_some() || tpm.is_some()).then_some(QuotaConfig {
            rpm,
            tpm,
            horizon,
            bucket,
        })
    }
}
