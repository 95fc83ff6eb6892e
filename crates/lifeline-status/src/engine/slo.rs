//! Error budgets and multi-window, multi-burn-rate alerts.
//!
//! With an objective `SLO`, the error budget is `B = 1 − SLO` and the burn
//! rate over a window is `r = bad/total / B` (`r = 1` spends exactly the
//! budget over the period). A [`BurnRule`] fires when `r` exceeds its rate
//! over both its long and its short window (SRE workbook, "Alerting on
//! SLOs"), and only with at least [`Thresholds::burn_min_requests`]
//! (default 100) requests in the long window and one in the short one.
//!
//! Two objectives: availability (bad = requests − good, out of requests) and
//! latency (bad = answers slower than the threshold, out of answers with a
//! latency sample), each with its own budget.
//!
//! Budget left over the period: `1 − bad / (B · total)` over the days of
//! the period (today included): 1.0 untouched, 0.0 spent, negative
//! overspent.
//!
//! [`Thresholds::burn_min_requests`]: super::Thresholds::burn_min_requests

use super::history::History;
use super::settings::{day_floor, ms, BurnRule, SloSettings, DAY_MS};
use crate::page::{BurnAlert, ComponentStatus, SloView};
use crate::sli::Minute;

/// Which objective an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Objective {
    Availability,
    Latency,
}

impl Objective {
    fn as_str(self) -> &'static str {
        match self {
            Self::Availability => "availability",
            Self::Latency => "latency",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "latency" {
            Self::Latency
        } else {
            Self::Availability
        }
    }

    /// (bad, total) of a window for this objective.
    pub fn counts(self, m: &Minute, slo: &SloSettings) -> (u64, u64) {
        match self {
            Self::Availability => (m.requests.saturating_sub(m.good), m.requests),
            Self::Latency => {
                let samples: u64 = m.latency.iter().sum();
                let threshold =
                    u64::try_from(slo.latency_threshold.as_millis()).unwrap_or(u64::MAX);
                (samples.saturating_sub(m.within(threshold)), samples)
            }
        }
    }

    /// The error budget `B`, `None` for a latency objective not set.
    pub fn budget(self, slo: &SloSettings) -> Option<f64> {
        match self {
            Self::Availability => Some(1.0 - slo.availability),
            Self::Latency => slo.latency_target.map(|t| 1.0 - t),
        }
        .filter(|b| *b > 0.0)
    }
}

/// The burn rate of `bad` out of `total` against budget `b`.
pub(crate) fn burn_rate(bad: u64, total: u64, b: f64) -> f64 {
    if total == 0 || b <= 0.0 {
        0.0
    } else {
        bad as f64 / total as f64 / b
    }
}

/// The alerts firing for windows ending at `end` (exclusive).
pub(crate) fn alerts(
    history: &History,
    end: i64,
    slo: &SloSettings,
    rules: &[BurnRule],
    min_requests: u64,
) -> Vec<BurnAlert> {
    // Each distinct window summed once.
    let mut windows: Vec<(i64, Minute)> = Vec::new();
    for rule in rules {
        for len in [ms(rule.long), ms(rule.short)] {
            if !windows.iter().any(|(l, _)| *l == len) {
                windows.push((len, history.window(end, len)));
            }
        }
    }
    let window = |len: i64| windows.iter().find(|(l, _)| *l == len).map(|(_, m)| m);
    let mut out = Vec::new();
    for objective in [Objective::Availability, Objective::Latency] {
        let Some(b) = objective.budget(slo) else {
            continue;
        };
        for rule in rules {
            let (Some(long), Some(short)) = (window(ms(rule.long)), window(ms(rule.short))) else {
                continue;
            };
            let (long_bad, long_total) = objective.counts(long, slo);
            let (short_bad, short_total) = objective.counts(short, slo);
            if long_total < min_requests.max(1) || short_total == 0 {
                continue;
            }
            let long = burn_rate(long_bad, long_total, b);
            let short = burn_rate(short_bad, short_total, b);
            if long > rule.rate && short > rule.rate {
                out.push(BurnAlert {
                    severity: rule.severity.as_str(),
                    objective: objective.as_str(),
                    long_window: rule.long,
                    short_window: rule.short,
                    burn_rate: long,
                    threshold: rule.rate,
                });
            }
        }
    }
    out
}

/// The least status the firing alerts impose while their burn is current:
/// an alert counts only while `recent` (the last few minutes) still burns
/// faster than its threshold, so a burst that is over does not hold the
/// status down for the length of an alert's window (up to 6 hours for the
/// ticket rule). Availability alerts impose their rule's floor, latency
/// alerts at most degraded performance.
pub(crate) fn floor(
    alerts: &[BurnAlert],
    rules: &[BurnRule],
    recent: &Minute,
    slo: &SloSettings,
) -> ComponentStatus {
    let mut out = ComponentStatus::Operational;
    for alert in alerts.iter().filter(|a| burns(a, recent, slo)) {
        let rule_floor = rules
            .iter()
            .find(|r| {
                r.long == alert.long_window
                    && r.short == alert.short_window
                    && r.rate == alert.threshold
            })
            .map_or(ComponentStatus::DegradedPerformance, |r| r.floor);
        let f = match Objective::parse(alert.objective) {
            Objective::Availability => rule_floor,
            Objective::Latency => ComponentStatus::DegradedPerformance,
        };
        if f.severity() > out.severity() {
            out = f;
        }
    }
    out
}

/// Whether `window` burns faster than the alert's threshold.
fn burns(alert: &BurnAlert, window: &Minute, slo: &SloSettings) -> bool {
    let objective = Objective::parse(alert.objective);
    let Some(b) = objective.budget(slo) else {
        return false;
    };
    let (bad, total) = objective.counts(window, slo);
    total > 0 && burn_rate(bad, total, b) > alert.threshold
}

/// Whether a firing page-severity alert still burns in `window` (the
/// evaluation window): the problem behind it is current, not the tail of a
/// longer window.
pub(crate) fn paging_now(alerts: &[BurnAlert], window: &Minute, slo: &SloSettings) -> bool {
    alerts
        .iter()
        .any(|a| a.severity == "page" && burns(a, window, slo))
}

/// The SLO view at `now`: budgets over the period's days, and the alerts.
pub(crate) fn view(
    history: &History,
    now: i64,
    slo: &SloSettings,
    alerts: &[BurnAlert],
) -> SloView {
    let period_days = (ms(slo.period) / DAY_MS).max(1);
    let from = day_floor(now) - (period_days - 1) * DAY_MS;
    let mut sum = Minute::default();
    for (_, day) in history.days_from(from) {
        sum.add(&day.traffic);
    }
    let left = |objective: Objective| {
        objective.budget(slo).map(|b| {
            let (bad, total) = objective.counts(&sum, slo);
            if total == 0 {
                1.0
            } else {
                1.0 - bad as f64 / (b * total as f64)
            }
        })
    };
    SloView {
        period: slo.period,
        availability_target: slo.availability,
        availability: sum.availability(),
        availability_budget_left: left(Objective::Availability).unwrap_or(1.0),
        latency_target: slo.latency_target,
        latency_threshold: slo.latency_target.map(|_| slo.latency_threshold),
        latency_budget_left: left(Objective::Latency),
        alerts: alerts.to_vec(),
    }
}

/// Whether a page-severity alert is among these.
pub(crate) fn pages(alerts: &[BurnAlert]) -> bool {
    alerts.iter().any(|a| a.severity == "page")
}
