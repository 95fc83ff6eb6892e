//! The keys of hedged requests and degraded mode: per model (and as
//! `[server]` defaults) `hedge`, `hedge_budget_percent`, `degraded`,
//! `degraded_max_age_ms`, `degraded_any_temperature`; gateway-wide
//! `[server] degraded_cache_bytes`.
//!
//! `hedge_budget_percent` lies in [0, 100] (0: hedging never spends; a
//! hedge per request is the most there can be); the ages are above 0.

use toml::Spanned;

use super::Validator;
use crate::config::model::{DegradedPolicy, HedgePolicy};
use crate::config::raw::{RawPolicy, RawServer};

/// Default bound of the degraded-mode cache: 64 MiB.
const DEGRADED_CACHE_BYTES: u64 = 64 << 20;

impl Validator<'_> {
    /// `base` overridden by the hedge keys of `raw` (`prefix`: `server` or `models[i]`).
    pub(super) fn hedge_policy(
        &mut self,
        raw: &RawPolicy,
        prefix: &str,
        base: &HedgePolicy,
    ) -> HedgePolicy {
        let budget_percent = match &raw.hedge_budget_percent {
            Some(p) if !(0.0..=100.0).contains(p.get_ref()) => {
                let msg = format!(
                    "must be between 0 and 100 (percent of requests), got {}",
                    p.get_ref()
                );
                self.at(p, format!("{prefix}.hedge_budget_percent"), msg);
                base.budget_percent
            }
            Some(p) => *p.get_ref(),
            None => base.budget_percent,
        };
        HedgePolicy {
            enabled: flag(&raw.hedge, base.enabled),
            budget_percent,
        }
    }

    /// `base` overridden by the degraded-mode keys of `raw`.
    pub(super) fn degraded_policy(
        &mut self,
        raw: &RawPolicy,
        prefix: &str,
        base: &DegradedPolicy,
    ) -> DegradedPolicy {
        DegradedPolicy {
            enabled: flag(&raw.degraded, base.enabled),
            max_age: self.duration(
                &raw.degraded_max_age_ms,
                &format!("{prefix}.degraded_max_age_ms"),
                base.max_age,
            ),
            any_temperature: flag(&raw.degraded_any_temperature, base.any_temperature),
        }
    }

    /// `[server] degraded_cache_bytes`.
    pub(super) fn degraded_cache_bytes(&mut self, raw: &RawServer) -> u64 {
        self.nonzero(
            &raw.degraded_cache_bytes,
            "server.degraded_cache_bytes",
            DEGRADED_CACHE_BYTES,
        )
    }
}

fn flag(v: &Option<Spanned<bool>>, base: bool) -> bool {
    v.as_ref().map_or(base, |b| *b.get_ref())
}
