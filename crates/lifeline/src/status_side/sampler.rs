//! From the gateway's cumulative SLI counters to closed minutes.
//!
//! The data plane only adds to lock-free counters
//! ([`Gateway::sli_totals`](lifeline_core::Gateway::sli_totals)). Every tick
//! the sampler reads them, takes the difference from the last reading and
//! adds it to the minute in progress, per (API family, public model) and
//! per deployment. When the status clock passes a minute boundary, the
//! minute in progress is closed and handed to the engine.

use std::collections::HashMap;

use lifeline_core::telemetry::sli::{DeploymentCounts, SliCounts, SliTotals, BUCKETS};
use lifeline_status::engine::{Family, TrafficMinute};
use lifeline_status::sli::{Minute, MINUTE_MS};

/// Per-deployment counts since the previous tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentDelta {
    /// Attempts.
    pub attempts: u64,
    /// Successful attempts.
    pub ok: u64,
    /// Failed attempts by the gateway's failure label.
    pub failures: Vec<(String, u64)>,
}

/// The sampler's memory: the last reading and the minute in progress.
#[derive(Debug, Default)]
pub struct Sampler {
    models: HashMap<(&'static str, String), SliCounts>,
    deployments: HashMap<String, DeploymentCounts>,
    /// Start of the minute in progress (unix ms on the status clock).
    open_at: Option<i64>,
    open: HashMap<(&'static str, String), Minute>,
    /// (family, model) pairs that have had requests since start.
    used: std::collections::HashSet<(&'static str, String)>,
}

/// `now - before`, counting a counter that went backwards (a model removed
/// and added again by a reload) from zero.
fn diff(now: u64, before: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

fn minute_floor(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

impl Sampler {
    /// The minute in progress, closed early (at shutdown), with its start.
    pub fn take_open(&mut self) -> Option<(i64, Vec<TrafficMinute>)> {
        let at = self.open_at?;
        let mut minutes: Vec<TrafficMinute> = self
            .open
            .drain()
            .filter_map(|((family, model), mut m)| {
                m.at = at;
                Family::parse(family).map(|f| TrafficMinute {
                    family: f,
                    model,
                    minute: m,
                })
            })
            .collect();
        minutes.sort_by(|a, b| (a.family.as_str(), &a.model).cmp(&(b.family.as_str(), &b.model)));
        Some((at, minutes))
    }

    /// Takes a reading at `now_ms`: returns the minutes that closed (if the
    /// clock passed a boundary since the last reading) and each
    /// deployment's counts since the last reading.
    pub fn sample(
        &mut self,
        totals: &SliTotals,
        now_ms: i64,
    ) -> (Vec<TrafficMinute>, HashMap<String, DeploymentDelta>) {
        let minute = minute_floor(now_ms);
        let mut closed = Vec::new();
        match self.open_at {
            Some(at) if at < minute => {
                for ((family, model), mut m) in self.open.drain() {
                    if let Some(f) = Family::parse(family) {
                        m.at = at;
                        closed.push(TrafficMinute {
                            family: f,
                            model,
                            minute: m,
                        });
                    }
                }
                closed.sort_by(|a, b| {
                    (a.family.as_str(), &a.model).cmp(&(b.family.as_str(), &b.model))
                });
                self.open_at = Some(minute);
            }
            Some(_) => {}
            None => self.open_at = Some(minute),
        }
        // Probes are per deployment; they count for every public model the
        // deployment serves, on the chat family and on every family that
        // model has had traffic on since start (an idle component is judged
        // by them; a family never used gets none, so it does not appear in
        // the default layout on probes alone).
        let mut probes: HashMap<&str, (u64, u64)> = HashMap::new();
        let mut deployments = HashMap::with_capacity(totals.deployments.len());
        for d in &totals.deployments {
            let before = self.deployments.get(&d.id).cloned().unwrap_or_default();
            let c = &d.counts;
            let delta = DeploymentDelta {
                attempts: diff(c.attempts, before.attempts),
                ok: diff(c.attempts_ok, before.attempts_ok),
                failures: c
                    .failures
                    .iter()
                    .map(|(label, n)| {
                        let old = before
                            .failures
                            .iter()
                            .find(|(l, _)| l == label)
                            .map_or(0, |(_, n)| *n);
                        ((*label).to_string(), diff(*n, old))
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect(),
            };
            let probes_ok = diff(c.probes_ok, before.probes_ok);
            let probes_failed = diff(c.probes_failed, before.probes_failed);
            for m in &d.public_models {
                let e = probes.entry(m.as_str()).or_default();
                e.0 += probes_ok;
                e.1 += probes_failed;
            }
            self.deployments.insert(d.id.clone(), c.clone());
            deployments.insert(d.id.clone(), delta);
        }
        for t in &totals.models {
            let key = (t.family, t.model.clone());
            let before = self.models.get(&key).cloned().unwrap_or_default();
            let c = &t.counts;
            let mut add = Minute {
                at: minute,
                requests: diff(c.requests, before.requests),
                good: diff(c.good, before.good),
                streams_completed: diff(c.streams_completed, before.streams_completed),
                streams_broken: diff(c.streams_broken, before.streams_broken),
                upstream_attempts: diff(c.upstream_attempts, before.upstream_attempts),
                upstream_ok: diff(c.upstream_ok, before.upstream_ok),
                ..Minute::default()
            };
            for i in 0..BUCKETS {
                add.latency[i] = diff(c.latency[i], before.latency[i]);
                add.ttft[i] = diff(c.ttft[i], before.ttft[i]);
            }
            if c.requests > 0 {
                self.used.insert(key.clone());
            }
            if t.family == "chat" || self.used.contains(&key) {
                if let Some((ok, failed)) = probes.get(t.model.as_str()) {
                    add.probes_ok = *ok;
                    add.probes_failed = *failed;
                }
            }
            // Any counter that moved: failed attempts often end in a second
            // in which no request finished (a stream, a retried request).
            let has_data = add
                != Minute {
                    at: minute,
                    ..Minute::default()
                };
            self.models.insert(key.clone(), c.clone());
            if has_data {
                self.open.entry(key).or_default().add(&add);
            }
        }
        (closed, deployments)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeline_core::telemetry::sli::{DeploymentTotals, ModelTotals};

    fn totals(requests: u64, good: u64, probes_failed: u64) -> SliTotals {
        SliTotals {
            models: vec![ModelTotals {
                family: "chat",
                model: "m".into(),
                counts: SliCounts {
                    requests,
                    good,
                    ..SliCounts::default()
                },
            }],
            deployments: vec![DeploymentTotals {
                id: "p/m".into(),
                provider: "p".into(),
                model: "m".into(),
                public_models: vec!["m".into()],
                counts: DeploymentCounts {
                    probes_failed,
                    attempts: requests,
                    attempts_ok: good,
                    ..DeploymentCounts::default()
                },
            }],
        }
    }

    #[test]
    fn differences_add_up_into_the_minute_that_closes() {
        let mut s = Sampler::default();
        let (closed, _) = s.sample(&totals(5, 5, 0), 60_000);
        assert!(closed.is_empty());
        let (closed, d) = s.sample(&totals(8, 6, 1), 90_000);
        assert!(closed.is_empty());
        assert_eq!(d["p/m"].attempts, 3);
        let (closed, _) = s.sample(&totals(9, 6, 1), 120_000);
        assert_eq!(closed.len(), 1);
        let m = &closed[0].minute;
        assert_eq!(m.at, 60_000);
        // Counters start at zero with the gateway: all of it counts.
        assert_eq!((m.requests, m.good, m.probes_failed), (8, 6, 1));
        let (closed, _) = s.sample(&totals(9, 6, 1), 180_000);
        assert_eq!(closed[0].minute.requests, 1);
        assert_eq!(closed[0].minute.at, 120_000);
    }

    #[test]
    fn attempts_count_even_in_a_second_in_which_no_request_finished() {
        let mut s = Sampler::default();
        let mut t = totals(0, 0, 0);
        t.models[0].counts.upstream_attempts = 2;
        t.models[0].counts.upstream_ok = 1;
        s.sample(&t, 1_000);
        let mut t2 = totals(1, 1, 0);
        t2.models[0].counts.upstream_attempts = 2;
        t2.models[0].counts.upstream_ok = 1;
        s.sample(&t2, 2_000);
        let (closed, _) = s.sample(&t2, 60_000);
        let m = &closed[0].minute;
        assert_eq!((m.requests, m.upstream_attempts, m.upstream_ok), (1, 2, 1));
    }

    #[test]
    fn probes_count_for_chat_and_for_the_families_in_use() {
        let mut s = Sampler::default();
        let mut t = totals(0, 0, 2);
        t.models.push(ModelTotals {
            family: "embeddings",
            model: "m".into(),
            counts: SliCounts::default(),
        });
        t.models.push(ModelTotals {
            family: "images",
            model: "m".into(),
            counts: SliCounts {
                requests: 1,
                good: 1,
                ..SliCounts::default()
            },
        });
        s.sample(&t, 1_000);
        let (closed, _) = s.sample(&t, 60_000);
        let probes = |f: &str| {
            closed
                .iter()
                .find(|m| m.family.as_str() == f)
                .map(|m| m.minute.probes_failed)
        };
        assert_eq!(probes("chat"), Some(2));
        assert_eq!(probes("images"), Some(2));
        assert_eq!(probes("embeddings"), None, "never used: no minute at all");
    }

    #[test]
    fn the_minute_in_progress_is_handed_over_at_shutdown() {
        let mut s = Sampler::default();
        s.sample(&totals(3, 3, 0), 61_000);
        s.sample(&totals(5, 4, 0), 62_000);
        let (at, minutes) = s.take_open().unwrap();
        assert_eq!(at, 60_000);
        assert_eq!((minutes[0].minute.requests, minutes[0].minute.good), (5, 4));
    }

    #[test]
    fn the_gateway_counts_in_the_status_sides_buckets() {
        assert_eq!(
            lifeline_core::telemetry::sli::LATENCY_BUCKETS_MS,
            lifeline_status::sli::LATENCY_BUCKETS_MS
        );
    }

    #[test]
    fn a_counter_that_restarts_counts_from_zero() {
        let mut s = Sampler::default();
        s.sample(&totals(100, 100, 0), 0);
        let (closed, _) = s.sample(&totals(100, 100, 0), 60_000);
        assert_eq!(closed[0].minute.requests, 100);
        // The counter restarts below the last reading: its new value is
        // what happened since, not a negative difference.
        s.sample(&totals(2, 1, 0), 61_000);
        let (closed, _) = s.sample(&totals(2, 1, 0), 120_000);
        assert_eq!((closed[0].minute.requests, closed[0].minute.good), (2, 1));
    }
}
