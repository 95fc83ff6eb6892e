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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Config, ConfigError, EarlyWarningConfig};

    fn parse(health: &str) -> Result<Config, Vec<ConfigError>> {
        let text = format!(
            "[server]\nauth = \"none\"\n\n[health]\n{health}\n\n\
             [[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\n\
             base_url = \"http://127.0.0.1:9/v1\"\napi_key = \"sk-test\"\n\n\
             [[models]]\nname = \"m\"\ntiers = [[{{ provider = \"p\", model = \"x\" }}]]\n"
        );
        Config::parse(&text, "t.toml").map_err(|e| e.0)
    }

    #[test]
    fn early_warning_keys_default_and_parse() {
        let c = parse("").unwrap();
        assert_eq!(c.health.early_warning, EarlyWarningConfig::default());
        assert!(c.health.early_warning.enabled);
        let c = parse(
            "early_warning = false\nearly_warning_window_ms = 500\nearly_warning_band = 6.5\n\
             early_warning_min_factor = 0.25\nearly_warning_min_samples = 20",
        )
        .unwrap();
        assert_eq!(
            c.health.early_warning,
            EarlyWarningConfig {
                enabled: false,
                window: Duration::from_millis(500),
                band: 6.5,
                min_factor: 0.25,
                min_samples: 20,
            }
        );
    }

    #[test]
    fn early_warning_keys_out_of_range_are_errors() {
        for (line, field, needle) in [
            (
                "early_warning_band = 0.0",
                "health.early_warning_band",
                "above 0",
            ),
            (
                "early_warning_band = 1000.0",
                "health.early_warning_band",
                "at most 100",
            ),
            (
                "early_warning_min_factor = 0.0",
                "health.early_warning_min_factor",
                "(0, 1]",
            ),
            (
                "early_warning_min_factor = 1.5",
                "health.early_warning_min_factor",
                "(0, 1]",
            ),
            (
                "early_warning_window_ms = 0",
                "health.early_warning_window_ms",
                "above 0",
            ),
            (
                "early_warning_min_samples = 0",
                "health.early_warning_min_samples",
                "at least 1",
            ),
        ] {
            let errors = parse(line).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.field == field && e.message.contains(needle) && e.line == Some(5)),
                "{line}: {errors:#?}"
            );
        }
    }
}
