//! One component's traffic history in memory: the recent minutes (for the
//! evaluation window, burn-rate windows and the 24-hour chart) and day sums
//! (for uptime bars and SLO budgets).
//!
//! Minutes are kept sparse (minutes without traffic or probes are absent)
//! for [`Settings::minutes_kept`](super::Settings) minutes; days for the 90
//! bars or the SLO period, whichever is longer. Day rollups handed over
//! from the store ([`SliDay`]) stand for the part of their day that was
//! stored: a minute read back from the store for a day with a loaded
//! rollup is not counted twice, while every minute recorded after that
//! (the rest of the day, after a restart) adds to the day's sum, as it
//! adds to the store's rollup.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::settings::{day_floor, DAY_MS, MINUTE_MS};
use crate::page::{ComponentStatus, LatencyPoint};
use crate::sli::{Minute, SliDay};

/// Days of uptime bars on the page.
pub const BAR_DAYS: i64 = 90;
/// Width of one latency-chart point.
pub const LATENCY_POINT_MS: i64 = 5 * MINUTE_MS;

/// A status from its Statuspage spelling.
pub(crate) fn parse_status(s: &str) -> Option<ComponentStatus> {
    [
        ComponentStatus::Operational,
        ComponentStatus::UnderMaintenance,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
    ]
    .into_iter()
    .find(|c| c.as_str() == s)
}

/// One day in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Day {
    pub traffic: Minute,
    pub worst: Option<ComponentStatus>,
    /// Minutes without requests whose probes ran, and of those the ones
    /// whose probes all passed: the day's availability when it had no
    /// requests.
    pub probed_minutes: u32,
    pub probed_good_minutes: u32,
}

impl Day {
    /// Share of good requests, or of good probed minutes on a day without
    /// requests.
    pub fn effective(&self) -> Option<f64> {
        self.traffic.availability().or_else(|| {
            (self.probed_minutes > 0)
                .then(|| f64::from(self.probed_good_minutes) / f64::from(self.probed_minutes))
        })
    }
}

/// A component's history.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    minutes: VecDeque<Minute>,
    days: BTreeMap<i64, Day>,
    /// Days whose sums came from the store (minutes read back for them
    /// are already counted).
    loaded_days: BTreeSet<i64>,
}

impl History {
    /// Records a minute (in any order; one per `at`, later ones add up),
    /// in its day's sum too.
    pub fn add_minute(&mut self, m: &Minute) {
        self.record(m, false);
    }

    /// Records a minute read back from the store: a day whose rollup was
    /// loaded already counts it.
    pub fn load_minute(&mut self, m: &Minute) {
        self.record(m, true);
    }

    fn record(&mut self, m: &Minute, stored: bool) {
        if m.requests == 0 && m.probes_ok + m.probes_failed == 0 && m.upstream_attempts == 0 {
            return;
        }
        let pos = self.minutes.partition_point(|x| x.at < m.at);
        match self.minutes.get_mut(pos) {
            Some(x) if x.at == m.at => x.add(m),
            _ => self.minutes.insert(pos, m.clone()),
        }
        let day_at = day_floor(m.at);
        if stored && self.loaded_days.contains(&day_at) {
            return;
        }
        let day = self.days.entry(day_at).or_default();
        day.traffic.add(m);
        day.traffic.at = day_at;
        if m.requests == 0 && m.probes_ok + m.probes_failed > 0 {
            day.probed_minutes += 1;
            if m.probes_failed == 0 {
                day.probed_good_minutes += 1;
            }
        }
    }

    /// Takes a day's rollup from the store (replacing what was counted).
    pub fn load_day(&mut self, sum: &SliDay) {
        let day_at = day_floor(sum.day);
        self.loaded_days.insert(day_at);
        let mut traffic = sum.totals.clone();
        traffic.at = day_at;
        self.days.insert(
            day_at,
            Day {
                traffic,
                worst: sum.worst().and_then(parse_status),
                probed_minutes: 0,
                probed_good_minutes: 0,
            },
        );
    }

    /// Notes the status shown at `at` in that day's worst.
    pub fn note_status(&mut self, at: i64, status: ComponentStatus) {
        let day = self.days.entry(day_floor(at)).or_default();
        if day.worst.is_none_or(|w| status.severity() > w.severity()) {
            day.worst = Some(status);
        }
    }

    /// Drops what is older than needed at `now`.
    pub fn prune(&mut self, now: i64, minutes_kept: i64, days_kept: i64) {
        let cutoff = now - minutes_kept * MINUTE_MS;
        while self.minutes.front().is_some_and(|m| m.at < cutoff) {
            self.minutes.pop_front();
        }
        let day_cutoff = day_floor(now) - days_kept * DAY_MS;
        self.days = self.days.split_off(&day_cutoff);
        self.loaded_days = self.loaded_days.split_off(&day_cutoff);
    }

    /// The minute starting at `at` (empty if none was recorded).
    pub fn minute(&self, at: i64) -> Minute {
        let pos = self.minutes.partition_point(|x| x.at < at);
        match self.minutes.get(pos) {
            Some(m) if m.at == at => m.clone(),
            _ => Minute {
                at,
                ..Minute::default()
            },
        }
    }

    /// The sum of the minutes starting in `[end − len, end)`.
    pub fn window(&self, end: i64, len_ms: i64) -> Minute {
        let start = end - len_ms;
        let mut sum = Minute {
            at: start,
            ..Minute::default()
        };
        for m in self.minutes.iter().rev() {
            if m.at >= end {
                continue;
            }
            if m.at < start {
                break;
            }
            sum.add(m);
        }
        sum
    }

    /// Start of the latest minute with traffic or probes.
    pub fn last_data_at(&self) -> Option<i64> {
        self.minutes
            .iter()
            .rev()
            .find(|m| m.requests > 0 || m.probes_ok + m.probes_failed > 0)
            .map(|m| m.at)
    }

    /// Day sums from `from` (midnight) on.
    pub fn days_from(&self, from: i64) -> impl Iterator<Item = (&i64, &Day)> {
        self.days.range(from..)
    }

    /// The day at `day` (midnight), if any.
    pub fn day(&self, day: i64) -> Option<&Day> {
        self.days.get(&day)
    }

    /// Latency points for `[end − 24 h, end)`, one per 5 minutes with
    /// traffic, oldest first.
    pub fn latency_points(&self, end: i64) -> Vec<LatencyPoint> {
        let start = end - DAY_MS;
        let mut points: Vec<(i64, Minute)> = Vec::new();
        for m in self.minutes.iter().filter(|m| m.at >= start && m.at < end) {
            let slot = m.at.div_euclid(LATENCY_POINT_MS) * LATENCY_POINT_MS;
            match points.last_mut() {
                Some((at, sum)) if *at == slot => sum.add(m),
                _ => points.push((slot, m.clone())),
            }
        }
        points
            .into_iter()
            .filter_map(|(at, sum)| {
                let point = LatencyPoint {
                    at,
                    p50_ms: sum.latency_quantile_ms(0.5),
                    p99_ms: sum.latency_quantile_ms(0.99),
                    ttft_p50_ms: sum.ttft_quantile_ms(0.5),
                };
                (point.p50_ms.is_some() || point.ttft_p50_ms.is_some()).then_some(point)
            })
            .collect()
    }

    /// Minutes in `[end − 24 h, end)` whose upstream attempts mostly failed
    /// (success below `down_ratio`).
    pub fn upstream_down_minutes(&self, end: i64, down_ratio: f64) -> u32 {
        let start = end - DAY_MS;
        let n = self
            .minutes
            .iter()
            .filter(|m| m.at >= start && m.at < end)
            .filter(|m| m.upstream_availability().is_some_and(|a| a < down_ratio))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}
