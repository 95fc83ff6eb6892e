//! `[server]`'s concurrency keys: the adaptive limit per deployment
//! (`adaptive_concurrency`, `adaptive_min_limit`, `adaptive_initial_limit`,
//! `adaptive_max_limit`) and the wait at the cap (`capacity_waiters`,
//! `capacity_wait_ms`).
//!
//! The three limits are at least 1 and ordered: min ≤ initial ≤ max.

use toml::Spanned;

use super::Validator;
use crate::config::model::ConcurrencyConfig;
use crate::config::raw::RawServer;

impl Validator<'_> {
    pub(super) fn concurrency(&mut self, raw: &RawServer) -> ConcurrencyConfig {
        let d = ConcurrencyConfig::default();
        let min_limit = self.nonzero(
            &raw.adaptive_min_limit,
            "server.adaptive_min_limit",
            d.min_limit,
        );
        let initial_limit = self.nonzero(
            &raw.adaptive_initial_limit,
            "server.adaptive_initial_limit",
            d.initial_limit,
        );
        let max_limit = self.nonzero(
            &raw.adaptive_max_limit,
            "server.adaptive_max_limit",
            d.max_limit,
        );
        let mut out = ConcurrencyConfig {
            adaptive: raw
                .adaptive_concurrency
                .as_ref()
                .map_or(d.adaptive, |b| *b.get_ref()),
            min_limit,
            initial_limit,
            max_limit,
            max_waiters: raw
                .capacity_waiters
                .as_ref()
                .map_or(d.max_waiters, |n| *n.get_ref()),
            max_wait: self.duration(&raw.capacity_wait_ms, "server.capacity_wait_ms", d.max_wait),
        };
        if min_limit > max_limit {
            let msg = format!(
                "must not be above server.adaptive_max_limit ({max_limit}), got {min_limit}"
            );
            self.at_or_default(
                &raw.adaptive_min_limit,
                &raw.adaptive_max_limit,
                "server.adaptive_min_limit",
                msg,
            );
            out.min_limit = d.min_limit.min(out.max_limit);
        }
        if !(out.min_limit..=out.max_limit).contains(&initial_limit) {
            let msg = format!(
                "must be between server.adaptive_min_limit ({}) and server.adaptive_max_limit ({}), got {initial_limit}",
                out.min_limit, out.max_limit
            );
            self.at_or_default(
                &raw.adaptive_initial_limit,
                &raw.adaptive_max_limit,
                "server.adaptive_initial_limit",
                msg,
            );
            out.initial_limit = initial_limit.clamp(out.min_limit, out.max_limit);
        }
        out
    }

    /// Reports `msg` for `field` at `value`'s line, or at `other`'s when
    /// `value` was left at its default (the conflict comes from `other`).
    fn at_or_default(
        &mut self,
        value: &Option<Spanned<u32>>,
        other: &Option<Spanned<u32>>,
        field: &str,
        msg: String,
    ) {
        match value.as_ref().or(other.as_ref()) {
            Some(v) => self.at(v, field, msg),
            None => self.push(None, field.to_owned(), msg),
        }
    }
}
