//! `[health]`'s early-warning keys: `early_warning`,
//! `early_warning_window_ms`, `early_warning_band`,
//! `early_warning_min_factor`, `early_warning_min_samples`.
//!
//! The band is a number of robust standard deviations above 0 (at most 100,
//! past which nothing would ever be out of band); the floor of the weight
//! factor lies in (0, 1] (1 watches and reports without moving traffic).

use toml::Spanned;

use super::Validator;
use crate::config::model::EarlyWarningConfig;
use crate::config::raw::RawHealth;

impl Validator<'_> {
    /// The early-warning settings of `[health]`.
    pub(super) fn early_warning(&mut self, raw: &RawHealth) -> EarlyWarningConfig {
        let d = EarlyWarningConfig::default();
        let band = self.number(
            &raw.early_warning_band,
            "health.early_warning_band",
            |b| b > 0.0 && b <= 100.0,
            "must be above 0 and at most 100 (robust standard deviations)",
            d.band,
        );
        let min_factor = self.number(
            &raw.early_warning_min_factor,
            "health.early_warning_min_factor",
            |f| f > 0.0 && f <= 1.0,
            "must be in (0, 1], the lowest weight factor of a demoted deployment",
            d.min_factor,
        );
        EarlyWarningConfig {
            enabled: raw
                .early_warning
                .as_ref()
                .map_or(d.enabled, |b| *b.get_ref()),
            window: self.duration(
                &raw.early_warning_window_ms,
                "health.early_warning_window_ms",
                d.window,
            ),
            band,
            min_factor,
            min_samples: self.nonzero(
                &raw.early_warning_min_samples,
                "health.early_warning_min_samples",
                d.min_samples,
            ),
        }
    }

    /// A float that `ok` accepts, else `why` is reported and `default` used.
    fn number(
        &mut self,
        raw: &Option<Spanned<f64>>,
        field: &str,
        ok: impl Fn(f64) -> bool,
        why: &str,
        default: f64,
    ) -> f64 {
        match raw {
            Some(v) if !ok(*v.get_ref()) => {
                let msg = format!("{why}, got {}", v.get_ref());
                self.at(v, field, msg);
                default
            }
            Some(v) => *v.get_ref(),
            None => default,
        }
    }
}
