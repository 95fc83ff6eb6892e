//! A component's status from its traffic, minute by minute.
//!
//! **Reading.** The evaluation window is the minute just closed, widened
//! minute by minute (up to [`Thresholds::window_minutes`], default 5) until
//! it holds [`Thresholds::min_volume`] requests (default 10), so that a busy
//! component reacts within a minute and a quiet one is not judged on one
//! request. In it:
//!
//! - the error ratio `e` is `1 − good/requests`, or the share of broken
//!   streams (`broken / (completed + broken)`) if that is higher; without
//!   requests, the share of failed probes (so an idle component is judged
//!   by its probes, never shown green for lack of traffic);
//! - the slow ratio is the share of answers (first token, for streams)
//!   slower than the component's latency threshold.
//!
//! Thresholds (defaults in [`super::settings`]): `e > 50 %` major outage,
//! `e > 5 %` partial outage, `e > max(1 %, 1 − availability objective)` or
//! slow ratio `> max(5 %, 1 − latency objective)` degraded performance,
//! otherwise operational. A window with neither requests nor probes gives no
//! reading: the status holds (and "no recent data" follows after
//! `no_data_after`).
//!
//! Firing burn-rate alerts ([`super::slo`]) raise the reading to their
//! floor (the 1 h/5 m page to partial outage, the others to degraded
//! performance) while their burn is current: the widest evaluation window
//! still burns faster than the alert's threshold, so a burst that is over
//! stops holding the status down within minutes, whatever the alert's
//! window. For a provider component, its deployments' breakers add a floor:
//! all open → major outage, some open → partial outage, some half-open →
//! degraded performance. Then **hysteresis** (`Hysteresis`): a worse state shows after
//! [`Thresholds::worsen_minutes`] consecutive worse minutes (the least bad of
//! them), except a major outage with `e ≥ 90 %` on at least `min_volume`
//! requests, which shows at once; a better state shows after
//! [`Thresholds::recover_minutes`] consecutive better minutes (the worst of
//! them). Minutes without a reading neither count nor break a streak.

use super::settings::{SloSettings, Thresholds, MINUTE_MS};
use crate::page::ComponentStatus;
use crate::sli::Minute;

use super::history::History;

/// What the evaluation window showed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Reading {
    /// The window's traffic.
    pub window: Minute,
    /// Its length in minutes.
    pub minutes: u32,
    /// Requests, or probes when there were no requests.
    pub volume: u64,
    /// Error ratio (see the module docs), `None` without data.
    pub error_ratio: Option<f64>,
    /// Share of answers slower than the threshold, `None` without latency
    /// samples or objective.
    pub slow_ratio: Option<f64>,
    /// Judged by probes (no requests).
    pub from_probes: bool,
    /// The thresholds' verdict, `None` without data.
    pub state: Option<ComponentStatus>,
    /// The verdict comes from latency alone.
    pub slow_only: bool,
}

/// Reads the window ending with the minute starting at `at`.
pub(crate) fn read(history: &History, at: i64, slo: &SloSettings, th: &Thresholds) -> Reading {
    let mut window = Minute {
        at,
        ..Minute::default()
    };
    let mut minutes = 0;
    for k in 0..th.window_minutes.max(1) {
        let m = history.minute(at - i64::from(k) * MINUTE_MS);
        window.add(&m);
        window.at = m.at;
        minutes = k + 1;
        if window.requests >= th.min_volume
            || (window.requests == 0 && window.probes_ok + window.probes_failed >= th.min_volume)
        {
            break;
        }
    }
    judge(window, minutes, slo, th)
}

/// The thresholds applied to a window.
pub(crate) fn judge(window: Minute, minutes: u32, slo: &SloSettings, th: &Thresholds) -> Reading {
    let probes = window.probes_ok + window.probes_failed;
    let (volume, error_ratio, from_probes) = if window.requests > 0 {
        let errors = 1.0 - window.good as f64 / window.requests as f64;
        let streams = window.streams_completed + window.streams_broken;
        let broken = if streams > 0 {
            window.streams_broken as f64 / streams as f64
        } else {
            0.0
        };
        (window.requests, Some(errors.max(broken)), false)
    } else if probes > 0 {
        (
            probes,
            Some(window.probes_failed as f64 / probes as f64),
            true,
        )
    } else {
        (0, None, false)
    };
    let samples: u64 = window.latency.iter().sum();
    let threshold_ms = u64::try_from(slo.latency_threshold.as_millis()).unwrap_or(u64::MAX);
    let slow_ratio = match slo.latency_target {
        Some(_) if samples > 0 => {
            Some((samples - window.within(threshold_ms).min(samples)) as f64 / samples as f64)
        }
        _ => None,
    };
    let mut slow_only = false;
    let state = error_ratio.map(|e| {
        let degraded_errors = th.degraded_error_ratio.max(1.0 - slo.availability);
        let degraded_slow = th
            .degraded_slow_ratio
            .max(1.0 - slo.latency_target.unwrap_or(1.0));
        if e > th.major_error_ratio {
            ComponentStatus::MajorOutage
        } else if e > th.partial_error_ratio {
            ComponentStatus::PartialOutage
        } else if e > degraded_errors {
            ComponentStatus::DegradedPerformance
        } else if slow_ratio.is_some_and(|s| s > degraded_slow) {
            slow_only = true;
            ComponentStatus::DegradedPerformance
        } else {
            ComponentStatus::Operational
        }
    });
    Reading {
        window,
        minutes,
        volume,
        error_ratio,
        slow_ratio,
        from_probes,
        state,
        slow_only,
    }
}

/// The worse of two statuses.
pub(crate) fn worse(a: ComponentStatus, b: ComponentStatus) -> ComponentStatus {
    if b.severity() > a.severity() {
        b
    } else {
        a
    }
}

/// A component's shown traffic status and the streaks that move it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hysteresis {
    /// The status shown (never under maintenance: that is laid over it).
    pub status: ComponentStatus,
    /// When the current non-operational spell began (the first minute of
    /// the streak that confirmed it); `None` while operational.
    pub since: Option<i64>,
    worse: u32,
    worse_least: ComponentStatus,
    worse_start: i64,
    better: u32,
    better_worst: ComponentStatus,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            status: ComponentStatus::Operational,
            since: None,
            worse: 0,
            worse_least: ComponentStatus::Operational,
            worse_start: 0,
            better: 0,
            better_worst: ComponentStatus::Operational,
        }
    }
}

impl Hysteresis {
    /// A hysteresis showing `status` (never under maintenance) since
    /// `since`, with no streak under way: a component's state taken up
    /// after a restart.
    pub fn restored(status: ComponentStatus, since: i64) -> Hysteresis {
        Hysteresis {
            status,
            since: (status != ComponentStatus::Operational).then_some(since),
            ..Hysteresis::default()
        }
    }

    /// A worse status has been read but not yet confirmed.
    pub fn worsening(&self) -> bool {
        self.worse > 0
    }

    /// Feeds the minute starting at `at` with its verdict (`None`: no
    /// data); `instant` lets a major outage show at once. Returns whether
    /// the status changed.
    pub fn step(
        &mut self,
        at: i64,
        raw: Option<ComponentStatus>,
        instant: bool,
        th: &Thresholds,
    ) -> bool {
        let Some(raw) = raw else {
            return false;
        };
        let before = self.status;
        let (now, cur) = (raw.severity(), self.status.severity());
        if now > cur {
            self.better = 0;
            if self.worse == 0 {
                self.worse_start = at;
                self.worse_least = raw;
            } else if now < self.worse_least.severity() {
                self.worse_least = raw;
            }
            self.worse += 1;
            if instant && raw == ComponentStatus::MajorOutage {
                self.set(raw, at);
            } else if self.worse >= th.worsen_minutes.max(1) {
                let to = self.worse_least;
                let start = self.worse_start;
                self.set(to, start);
            }
        } else if now < cur {
            self.worse = 0;
            if self.better == 0 || now > self.better_worst.severity() {
                self.better_worst = raw;
            }
            self.better += 1;
            if self.better >= th.recover_minutes.max(1) {
                let to = self.better_worst;
                self.set(to, at);
            }
        } else {
            self.worse = 0;
            self.better = 0;
        }
        self.status != before
    }

    fn set(&mut self, to: ComponentStatus, start: i64) {
        if self.status == ComponentStatus::Operational && to != ComponentStatus::Operational {
            self.since = Some(start);
        }
        if to == ComponentStatus::Operational {
            self.since = None;
        }
        self.status = to;
        self.worse = 0;
        self.better = 0;
    }
}
