//! `[admission]`: the global in-flight limit, its priority queue and
//! shedding, and the memory budget for buffered bodies.
//!
//! The numbers are checked against each other and against `[server]`: the
//! shedding target must be shorter than its interval, and the memory budget
//! must hold at least one request body of `max_body_bytes` (else no
//! full-size request could ever be admitted).

use toml::Spanned;

use super::Validator;
use crate::config::model::{AdmissionConfig, ServerConfig};
use crate::config::raw::RawAdmission;

/// Largest `max_in_flight` and `max_queue`: far above what one process serves.
const MAX_COUNT: u64 = 1_000_000;

impl Validator<'_> {
    pub(super) fn admission(
        &mut self,
        raw: &RawAdmission,
        server: &ServerConfig,
    ) -> AdmissionConfig {
        let d = AdmissionConfig::default();
        let max_in_flight = self.nonzero(
            &raw.max_in_flight,
            "admission.max_in_flight",
            d.max_in_flight as u64,
        );
        let max_in_flight =
            self.at_most(&raw.max_in_flight, "admission.max_in_flight", max_in_flight);
        let max_queue = raw
            .max_queue
            .as_ref()
            .map_or(d.max_queue as u64, |q| *q.get_ref());
        let max_queue = self.at_most(&raw.max_queue, "admission.max_queue", max_queue);
        let queue_timeout = self.duration(
            &raw.queue_timeout_ms,
            "admission.queue_timeout_ms",
            d.queue_timeout,
        );
        let target_delay = self.duration(
            &raw.target_delay_ms,
            "admission.target_delay_ms",
            d.target_delay,
        );
        let interval = self.duration(&raw.interval_ms, "admission.interval_ms", d.interval);
        if target_delay >= interval {
            let msg = format!(
                "admission.target_delay_ms ({} ms) must be shorter than admission.interval_ms ({} ms): the queueing delay is judged over the interval",
                target_delay.as_millis(),
                interval.as_millis()
            );
            self.blame_pair(
                [
                    (&raw.target_delay_ms, "target_delay_ms"),
                    (&raw.interval_ms, "interval_ms"),
                ],
                "admission",
                msg,
            );
        }
        let budget = self.nonzero(
            &raw.memory_budget_bytes,
            "admission.memory_budget_bytes",
            d.memory_budget_bytes,
        );
        if let Some(b) = &raw.memory_budget_bytes {
            let body = server.max_body_bytes as u64;
            if *b.get_ref() != 0 && *b.get_ref() < body {
                let msg = format!(
                    "is below server.max_body_bytes ({body}): a request body of the allowed size could never be admitted; raise it or lower max_body_bytes"
                );
                self.at(b, "admission.memory_budget_bytes", msg);
            }
        }
        let key_share_percent = match &raw.key_share_percent {
            None => d.key_share_percent,
            Some(v) => match u8::try_from(*v.get_ref()) {
                Ok(n @ 1..=100) => n,
                _ => {
                    self.at(
                        v,
                        "admission.key_share_percent",
                        "must be between 1 and 100 (100: no per-key share)",
                    );
                    d.key_share_percent
                }
            },
        };
        AdmissionConfig {
            max_in_flight: usize::try_from(max_in_flight).unwrap_or(usize::MAX),
            follow_deployments: raw
                .follow_deployments
                .as_ref()
                .map_or(d.follow_deployments, |f| *f.get_ref()),
            max_queue: usize::try_from(max_queue).unwrap_or(usize::MAX),
            queue_timeout,
            target_delay,
            interval,
            memory_budget_bytes: budget,
            key_share_percent,
        }
    }

    /// `value` (read from `raw`), or an error when above [`MAX_COUNT`].
    fn at_most(&mut self, raw: &Option<Spanned<u64>>, field: &str, value: u64) -> u64 {
        match raw {
            Some(n) if *n.get_ref() > MAX_COUNT => {
                self.at(n, field, format!("must be at most {MAX_COUNT}"));
                MAX_COUNT
            }
            _ => value,
        }
    }
}
