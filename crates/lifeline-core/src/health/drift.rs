//! Early warning: a deployment drifting out of its normal band, seen
//! before it fails.
//!
//! Four signals per deployment: the latency of whole answers, the time to
//! a stream's first token, the ratio of failed attempts (429s aside) and
//! the ratio of 429s. The request path adds samples to a [`Tally`]
//! (atomics, no lock); once per window (`early_warning_window_ms`) the
//! prober's round hands the window to the deployment's [`Detector`], which
//! judges each signal with enough samples:
//!
//! - **Baseline**: an EWMA of the signal's window values (logarithms of
//!   milliseconds for the latencies, so that "twice as slow" weighs the
//!   same at 50 ms and at 5 s; the ratio itself for the ratios), fed only
//!   by windows that were not out of band, so a drift does not drag its own
//!   reference along. The first [`WARMUP`] windows only learn it.
//! - **Band**: the robust spread of recent in-band windows: the median
//!   absolute deviation of successive differences (× 1.4826 / √2, a
//!   standard deviation for normal noise), which a steady trend does not
//!   widen, floored at [`LOG_FLOOR`] for latencies and, for ratios, at the
//!   sampling noise of a binomial ratio over the window's attempts.
//! - **Trend**: Holt's linear trend (level and slope) over the same
//!   values, projected [`HORIZON`] windows ahead: a steady climb is out of
//!   band early, while it is still at least half the band above its
//!   baseline.
//!
//! A window is *out* when some signal is more than `early_warning_band`
//! spreads above its baseline (or projected to be, as above), *in* when
//! every signal is under half of that and not projected out (or has no
//! samples). After [`CONFIRM_OUT`] windows out in a row the weight factor falls
//! by [`DOWN`] per window to `early_warning_min_factor` (1 → 0.1 in five
//! windows): the deployment is *demoted*, and the balancer divides its cost
//! by the factor. After [`CONFIRM_IN`] windows in, it rises by [`UP`] per
//! window back to 1 (0.1 → 1 in eight): *promoted*. In between it holds. A
//! demoted deployment that gets too few requests to judge is promoted step
//! by step all the same after [`QUIET_HOLD`] windows, so it is tried again;
//! if it is still out of band, it falls again. A window without any sample
//! changes nothing otherwise (windows out of band stay in a row across
//! it). A signal out of band for [`RELEARN`] windows in a row
//! is taken as the new normal: its baseline is learnt afresh.
//!
//! Only upward drift counts: a deployment getting faster or failing less
//! is never demoted. Everything here is pure (no clock, no I/O): the unit
//! tests feed synthetic series.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::EarlyWarningConfig;

/// Windows that only learn a signal's baseline, before it is judged.
pub const WARMUP: u32 = 20;
/// Consecutive windows out of band before the factor falls.
pub const CONFIRM_OUT: u32 = 3;
/// Consecutive windows in band before the factor rises.
pub const CONFIRM_IN: u32 = 2;
/// The factor's step down per window out of band.
pub const DOWN: f64 = 0.6;
/// The factor's step back up per window in band (divided by it).
pub const UP: f64 = 0.75;
/// How many windows ahead Holt's trend is projected.
pub const HORIZON: f64 = 5.0;
/// Windows without a sample after which a demoted deployment is promoted
/// step by step all the same (30 s of 1 s windows), so that it is tried
/// again.
pub const QUIET_HOLD: u32 = 30;
/// Windows out of band in a row after which a signal's level is the new
/// normal (5 minutes of 1 s windows).
pub const RELEARN: u32 = 300;
/// The smallest spread of a latency signal, in natural log units (5 %): a
/// perfectly steady provider is not demoted for a 10 % wobble.
pub const LOG_FLOOR: f64 = 0.05;
/// The smallest spread of a ratio signal.
const RATIO_FLOOR: f64 = 0.02;
/// The smallest baseline rate a ratio's sampling noise is computed from.
const RATIO_PRIOR: f64 = 0.05;
/// Recent in-band values the spread is computed from.
const RECENT: usize = 96;
/// The baseline's EWMA weight once warm (a time constant of 50 windows).
const ALPHA: f64 = 0.02;
/// Holt's level and trend weights.
const HOLT_LEVEL: f64 = 0.3;
const HOLT_TREND: f64 = 0.1;

/// A signal the detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Latency of whole (non-streaming) answers.
    Latency,
    /// Time to a stream's first token.
    FirstToken,
    /// Failed attempts (429s aside) per attempt.
    Errors,
    /// 429 answers per attempt.
    RateLimited,
}

impl Signal {
    /// Every signal, in [`Self::index`] order.
    pub const ALL: [Signal; 4] = [
        Signal::Latency,
        Signal::FirstToken,
        Signal::Errors,
        Signal::RateLimited,
    ];

    /// Its name in metrics, logs and events.
    pub fn label(self) -> &'static str {
        match self {
            Signal::Latency => "latency",
            Signal::FirstToken => "first_token",
            Signal::Errors => "error_ratio",
            Signal::RateLimited => "rate_limited_ratio",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn is_latency(self) -> bool {
        matches!(self, Signal::Latency | Signal::FirstToken)
    }
}

/// One window's samples of one deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// Mean latency in milliseconds and sample count, for
    /// [`Signal::Latency`] and [`Signal::FirstToken`].
    pub latency_ms: [Option<(f64, u64)>; 2],
    /// Attempts that succeeded or failed, failed ones (429s aside) and
    /// 429s, once there are enough attempts.
    pub outcomes: Option<(u64, u64, u64)>,
}

impl Window {
    /// With `n` whole answers of mean latency `mean_ms`.
    #[must_use]
    pub fn latency(mut self, mean_ms: f64, n: u64) -> Self {
        self.latency_ms[0] = Some((mean_ms, n));
        self
    }

    /// With `n` streams of mean time to first token `mean_ms`.
    #[must_use]
    pub fn first_token(mut self, mean_ms: f64, n: u64) -> Self {
        self.latency_ms[1] = Some((mean_ms, n));
        self
    }

    /// With `attempts`, of which `errors` failed and `limited` were 429s.
    #[must_use]
    pub fn outcomes(mut self, attempts: u64, errors: u64, limited: u64) -> Self {
        self.outcomes = Some((attempts, errors, limited));
        self
    }

    /// Each signal's window value (log milliseconds, or a ratio) and sample count.
    fn values(&self) -> [Option<(f64, u64)>; 4] {
        let log = |v: Option<(f64, u64)>| v.map(|(ms, n)| (ms.max(0.01).ln(), n));
        let ratio = |limited: bool| {
            self.outcomes.filter(|(n, _, _)| *n > 0).map(|(n, e, l)| {
                let bad = if limited { l } else { e };
                (bad as f64 / n as f64, n)
            })
        };
        [
            log(self.latency_ms[0]),
            log(self.latency_ms[1]),
            ratio(false),
            ratio(true),
        ]
    }
}

/// What the request path adds to, without a lock: sums and counts since
/// the last window that took them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Microseconds, by latency signal.
    sums: [AtomicU64; 2],
    counts: [AtomicU64; 2],
    attempts: AtomicU64,
    errors: AtomicU64,
    limited: AtomicU64,
}

impl Tally {
    /// One latency sample: a whole answer's, or a stream's first token.
    pub fn latency(&self, first_token: bool, latency: Duration) {
        let i = usize::from(first_token);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.sums[i].fetch_add(us, Ordering::Relaxed);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One attempt that succeeded or failed (a neutral one says nothing);
    /// `rate_limited`: it was answered 429.
    pub fn outcome(&self, failed: bool, rate_limited: bool) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if rate_limited {
            self.limited.fetch_add(1, Ordering::Relaxed);
        } else if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes every signal that has at least `min` samples; the others keep
    /// theirs for the next window. A sample added meanwhile may land in
    /// either window, which is harmless.
    pub fn take(&self, min: u32) -> Window {
        let min = u64::from(min.max(1));
        let mut w = Window::default();
        for i in 0..2 {
            if self.counts[i].load(Ordering::Relaxed) >= min {
                let n = self.counts[i].swap(0, Ordering::Relaxed);
                let us = self.sums[i].swap(0, Ordering::Relaxed);
                w.latency_ms[i] = Some((us as f64 / n.max(1) as f64 / 1000.0, n));
            }
        }
        if self.attempts.load(Ordering::Relaxed) >= min {
            let n = self.attempts.swap(0, Ordering::Relaxed);
            let e = self.errors.swap(0, Ordering::Relaxed);
            let l = self.limited.swap(0, Ordering::Relaxed);
            w.outcomes = Some((n, e.min(n), l.min(n)));
        }
        w
    }
}

/// One signal's judgement in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The signal.
    pub signal: Signal,
    /// Its window value: milliseconds, or a ratio.
    pub value: f64,
    /// Its baseline, in the same unit.
    pub baseline: f64,
    /// How many spreads above the baseline the value is.
    pub z: f64,
    /// How many spreads above the baseline Holt's trend puts it
    /// [`HORIZON`] windows ahead.
    pub trend_z: f64,
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.signal.is_latency() {
            write!(
                f,
                "{} {:.0} ms against a baseline of {:.0} ms",
                self.signal.label(),
                self.value,
                self.baseline
            )?;
        } else {
            write!(
                f,
                "{} {:.3} against a baseline of {:.3}",
                self.signal.label(),
                self.value,
                self.baseline
            )?;
        }
        write!(f, " ({:.1} spreads, trend {:.1})", self.z, self.trend_z)
    }
}

/// How a window moved the factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// From 1 down: the deployment is demoted.
    Demoted,
    /// Further down.
    Lowered,
    /// Up, still below 1.
    Raised,
    /// Back to 1: promoted.
    Promoted,
}

/// A change of the factor, and the reading behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The factor before.
    pub from: f64,
    /// The factor now.
    pub to: f64,
    /// Which way.
    pub kind: Move,
    /// The signal furthest out of band (down), or the one closest to its
    /// band (up); `None` when nothing had samples.
    pub reading: Option<Reading>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Warming,
    In,
    Between,
    Out,
}

/// One signal's baseline, spread and trend.
#[derive(Debug, Clone, Default)]
struct Track {
    seen: u32,
    base: f64,
    recent: VecDeque<f64>,
    level: f64,
    trend: f64,
    out_for: u32,
}

impl Track {
    fn judge(&mut self, signal: Signal, x: f64, n: u64, band: f64) -> (Verdict, Reading) {
        let natural = |v: f64| if signal.is_latency() { v.exp() } else { v };
        if self.seen < WARMUP {
            self.seen += 1;
            self.base += (x - self.base) / f64::from(self.seen);
            if self.seen == 1 {
                self.level = x;
            } else {
                self.holt(x);
            }
            self.remember(x);
            let reading = Reading {
                signal,
                value: natural(x),
                baseline: natural(self.base),
                z: 0.0,
                trend_z: 0.0,
            };
            return (Verdict::Warming, reading);
        }
        self.holt(x);
        let spread = self.spread(signal, n);
        let z = (x - self.base) / spread;
        let trend_z = (self.level + HORIZON * self.trend - self.base) / spread;
        let verdict = if z > band || (trend_z > band && z > band / 2.0) {
            Verdict::Out
        } else if z < band / 2.0 && trend_z <= band {
            Verdict::In
        } else {
            Verdict::Between
        };
        let reading = Reading {
            signal,
            value: natural(x),
            baseline: natural(self.base),
            z,
            trend_z,
        };
        if verdict == Verdict::Out {
            self.out_for += 1;
            if self.out_for >= RELEARN {
                *self = Track::default();
            }
        } else {
            self.out_for = 0;
            self.base += ALPHA * (x - self.base);
            self.remember(x);
        }
        (verdict, reading)
    }

    fn holt(&mut self, x: f64) {
        let previous = self.level;
        self.level = HOLT_LEVEL * x + (1.0 - HOLT_LEVEL) * (self.level + self.trend);
        self.trend = HOLT_TREND * (self.level - previous) + (1.0 - HOLT_TREND) * self.trend;
    }

    fn remember(&mut self, x: f64) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(x);
    }

    /// The robust spread of recent values: the MAD of their successive
    /// differences as a standard deviation, floored.
    fn spread(&self, signal: Signal, n: u64) -> f64 {
        let diffs: Vec<f64> = self
            .recent
            .iter()
            .zip(self.recent.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        let mad = mad(diffs) * 1.4826 / std::f64::consts::SQRT_2;
        let floor = if signal.is_latency() {
            LOG_FLOOR
        } else {
            let p = self.base.max(RATIO_PRIOR);
            (p * (1.0 - p) / n.max(1) as f64).sqrt().max(RATIO_FLOOR)
        };
        mad.max(floor)
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Median absolute deviation from the median.
fn mad(mut v: Vec<f64>) -> f64 {
    let m = median(&mut v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    median(&mut dev)
}

/// One deployment's judge: every signal's track and the weight factor.
#[derive(Debug, Clone)]
pub struct Detector {
    band: f64,
    min_factor: f64,
    tracks: [Track; 4],
    factor: f64,
    out_streak: u32,
    in_streak: u32,
    quiet: u32,
}

impl Detector {
    /// A detector with `cfg`'s band and floor, at factor 1.
    pub fn new(cfg: &EarlyWarningConfig) -> Self {
        Self {
            band: cfg.band,
            min_factor: cfg.min_factor.clamp(f64::MIN_POSITIVE, 1.0),
            tracks: Default::default(),
            factor: 1.0,
            out_streak: 0,
            in_streak: 0,
            quiet: 0,
        }
    }

    /// The weight factor now, in [`EarlyWarningConfig::min_factor`], 1].
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Judges one window; `Some` when the factor moved.
    pub fn observe(&mut self, w: &Window) -> Option<Step> {
        let mut out: Option<Reading> = None;
        let mut closest: Option<Reading> = None;
        let mut all_in = true;
        let mut any = false;
        for (signal, value) in Signal::ALL.into_iter().zip(w.values()) {
            let Some((x, n)) = value else { continue };
            any = true;
            let (verdict, r) = self.tracks[signal.index()].judge(signal, x, n, self.band);
            match verdict {
                Verdict::Out => {
                    all_in = false;
                    if out.is_none_or(|o| r.z > o.z) {
                        out = Some(r);
                    }
                }
                Verdict::Between => all_in = false,
                Verdict::In | Verdict::Warming => {}
            }
            if verdict != Verdict::Warming && closest.is_none_or(|c| r.z > c.z) {
                closest = Some(r);
            }
        }
        self.quiet = if any { 0 } else { self.quiet.saturating_add(1) };
        if !any && (self.factor >= 1.0 || self.quiet <= QUIET_HOLD) {
            // No evidence either way.
        } else if out.is_some() {
            self.out_streak = self.out_streak.saturating_add(1);
            self.in_streak = 0;
        } else if all_in {
            self.in_streak = self.in_streak.saturating_add(1);
            self.out_streak = 0;
        } else {
            self.in_streak = 0;
            self.out_streak = 0;
        }
        let from = self.factor;
        if self.out_streak >= CONFIRM_OUT && from > self.min_factor {
            self.factor = (from * DOWN).max(self.min_factor);
            let kind = if from >= 1.0 {
                Move::Demoted
            } else {
                Move::Lowered
            };
            return Some(self.step(from, kind, out));
        }
        if self.in_streak >= CONFIRM_IN && from < 1.0 {
            let up = from / UP;
            self.factor = if up >= 0.99 { 1.0 } else { up };
            let kind = if self.factor >= 1.0 {
                Move::Promoted
            } else {
                Move::Raised
            };
            return Some(self.step(from, kind, closest));
        }
        None
    }

    fn step(&self, from: f64, kind: Move, reading: Option<Reading>) -> Step {
        Step {
            from,
            to: self.factor,
            kind,
            reading,
        }
    }
}

#[cfg(test)]
mod tests;
