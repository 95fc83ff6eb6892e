//! Quota forecast: when will a provider's traffic reach its request or
//! token quota, and how much of it to steer elsewhere before it does.
//!
//! A provider with `rpm` and/or `tpm` has a [`QuotaMeter`]. The request
//! path counts what it sends ([`QuotaMeter::sent`]: two relaxed atomic
//! adds) and the balancer reads the provider's steering factor
//! ([`QuotaMeter::factor`]: one atomic load). Everything else happens once
//! per bucket (`quota_bucket_ms`, default 10 s), when the gateway's quota
//! task closes the bucket ([`QuotaMeter::poll`]) and feeds the
//! [`Forecaster`], which is pure (no clock, no atomics) and tested alone:
//!
//! - **trend**: each bucket's count becomes a per-minute rate; over the
//!   last [`WINDOW`] buckets a least-squares line gives the rate now and
//!   its slope. A slope counts only when it stands out of the noise (at
//!   least [`T_MIN`] standard errors), so steady traffic with the usual
//!   jitter forecasts nothing; the rate now is then the line's value at
//!   the newest bucket, else the mean;
//! - **forecast**: with a rising slope, the time until the line reaches
//!   the quota, `(quota − rate) / slope`, the slope taken at its lower
//!   confidence bound ([`SLOPE_MARGIN`] standard errors less: a 15-minute
//!   forecast from a few minutes of noisy rates is an extrapolation, and
//!   the bound keeps a chance wobble from reaching far); at or over the
//!   quota, zero; flat or falling, none. A **warning** starts when a
//!   forecast has been under the horizon (`quota_horizon_ms`, default 15
//!   minutes) for [`WARN_AFTER`] buckets in a row (at once when the rate
//!   is at the quota already), and ends when no forecast is under it and
//!   the steering factor is back at 1;
//! - **steering**: the rate steering reads plus a short lead
//!   ([`LEAD_BUCKETS`] buckets) along a rising slope, against [`HEADROOM`]
//!   of the quota: the pressure. The rate read is the recent rate (an EWMA
//!   of the buckets' rates, weight [`RECENT_WEIGHT`]: it follows a change
//!   within a bucket or two, where the line's mean would lag and make the
//!   loop overshoot) when a bucket holds [`FAST_COUNT`] requests or more at
//!   the headroom of the `rpm` (without one, at the steady rate); with
//!   fewer, a bucket's count is mostly Poisson noise, and steering reads
//!   the **steady rate** instead: the newest buckets back until they hold
//!   [`STEADY_COUNT`] requests, and if they hold fewer, over the whole
//!   [`steady_span`] (a minute, the quota's own window, longer for a small
//!   quota), the time before the first bucket counting as idle. The slope's lead counts only when
//!   the trend's buckets hold [`STEADY_COUNT`] requests. The factor is
//!   multiplied by `1 / pressure²` while the pressure is over 1 (at most
//!   halved per bucket) and by `1 / pressure` under it (at most ×1.25 per
//!   bucket), between [`MIN_FACTOR`] and 1. The balancer divides its cost
//!   by it, so the provider's share falls smoothly as its traffic nears
//!   the quota and comes back once the traffic falls. The observed rate is
//!   the steered one: the factor settles where the provider gets about
//!   [`HEADROOM`] of its quota.
//!
//! Requests count when sent; tokens are the request's estimate (prompt
//! bytes / 4 plus its output allowance, as the per-key limits estimate
//! them), an upper bound of what the provider will count. With a token
//! quota, the answering attempt's estimate is corrected with its answer's
//! `usage` ([`QuotaCharge`], [`QuotaMeter::used`]: one atomic subtraction,
//! carried into the next bucket when its own closed meanwhile).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Buckets in the trend (four minutes at the default 10 s bucket).
pub const WINDOW: usize = 24;
/// The share of a quota that steering aims to keep a provider under.
pub const HEADROOM: f64 = 0.9;
/// How far ahead, in buckets, steering looks along a rising trend: the
/// time it needs to move traffic.
pub const LEAD_BUCKETS: f64 = 3.0;
/// The weight of the newest bucket in the recent rate steering reads.
pub const RECENT_WEIGHT: f64 = 0.5;
/// Requests a bucket must hold at [`HEADROOM`] of the request quota (by
/// the settings; without an `rpm`, at the steady rate) before steering
/// reads the fast [`RECENT_WEIGHT`] EWMA: with weight 0.5 the EWMA carries
/// about three buckets of evidence, some 27 requests at the headroom.
/// Under it, steering reads the steady rate.
pub const FAST_COUNT: f64 = 9.0;
/// Requests the steady rate is measured over: the newest buckets back until
/// they hold this many (a relative noise of about 10 %), at most
/// [`steady_span`] long.
pub const STEADY_COUNT: u64 = 100;
/// Requests [`HEADROOM`] of the quota must bring in the steady rate's
/// longest span ([`steady_span`]): then traffic at half the quota reads
/// over the headroom only if [`STEADY_COUNT`] requests come in half their
/// expected time (some seven standard deviations).
pub const SPAN_COUNT: f64 = 200.0;
/// The longest history the steady rate may read, in minutes.
pub const STEADY_MAX_MINUTES: f64 = 10.0;
/// The lowest steering factor: a provider near its quota still takes the
/// requests no other deployment can.
pub const MIN_FACTOR: f64 = 0.01;
/// How many standard errors a slope must stand out by to count.
pub const T_MIN: f64 = 4.0;
/// A forecast reads the slope less this many standard errors (its lower
/// confidence bound): a trend barely out of the noise forecasts later.
pub const SLOPE_MARGIN: f64 = 2.0;
/// Consecutive buckets a forecast must stay under the horizon before the
/// warning starts.
pub const WARN_AFTER: u32 = 3;
/// The most the factor falls in one bucket (a multiplier).
const FALL_MAX: f64 = 0.5;
/// The most the factor rises in one bucket (a multiplier).
const RISE_MAX: f64 = 1.25;

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Requests per minute (`rpm`).
    Requests,
    /// Tokens per minute (`tpm`).
    Tokens,
}

impl QuotaKind {
    /// Both, in index order.
    pub const ALL: [QuotaKind; 2] = [QuotaKind::Requests, QuotaKind::Tokens];

    /// The metric label and log word: `requests` or `tokens`.
    pub fn label(self) -> &'static str {
        match self {
            QuotaKind::Requests => "requests",
            QuotaKind::Tokens => "tokens",
        }
    }

    /// Position in [`QuotaKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A provider's quotas and how they are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSettings {
    /// Requests per minute, if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute, if limited.
    pub tpm: Option<u64>,
    /// A forecast under this warns.
    pub horizon: Duration,
    /// Length of one bucket.
    pub bucket: Duration,
}

impl QuotaSettings {
    /// The quota of `kind`, if any.
    pub fn quota(&self, kind: QuotaKind) -> Option<u64> {
        match kind {
            QuotaKind::Requests => self.rpm,
            QuotaKind::Tokens => self.tpm,
        }
    }
}

/// The line fitted through the recent rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The rate now (per minute): the line at the newest bucket.
    pub level: f64,
    /// Change of the rate per bucket; 0 unless it stands out of the noise.
    pub slope: f64,
    /// A rising slope's lower confidence bound ([`SLOPE_MARGIN`]), what
    /// forecasts read; 0 unless the slope rises.
    pub rising: f64,
}

/// The per-minute rates of the last [`WINDOW`] buckets, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Trend {
    rates: [f64; WINDOW],
    len: usize,
    /// Where the next rate goes.
    next: usize,
}

impl Trend {
    /// Adds the newest bucket's rate.
    pub fn push(&mut self, per_minute: f64) {
        self.rates[self.next] = per_minute;
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
    }

    /// The rates, oldest first.
    fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let start = (self.next + WINDOW - self.len) % WINDOW;
        (0..self.len).map(move |i| self.rates[(start + i) % WINDOW])
    }

    /// The least-squares line through the rates; its slope only when it is
    /// at least [`T_MIN`] standard errors from zero and there are three
    /// buckets or more (else the mean rate, flat).
    pub fn fit(&self) -> Fit {
        let n = self.len;
        let nf = n.max(1) as f64;
        let mean_y = self.iter().sum::<f64>() / nf;
        let flat = Fit {
            level: mean_y,
            slope: 0.0,
            rising: 0.0,
        };
        if n < 3 {
            return flat;
        }
        let mean_x = (nf - 1.0) / 2.0;
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for (i, y) in self.iter().enumerate() {
            let dx = i as f64 - mean_x;
            sxx += dx * dx;
            sxy += dx * (y - mean_y);
        }
        let slope = sxy / sxx;
        let line = |i: f64| mean_y + slope * (i - mean_x);
        let sse: f64 = self
            .iter()
            .enumerate()
            .map(|(i, y)| (y - line(i as f64)).powi(2))
            .sum();
        let se = (sse / (nf - 2.0) / sxx).sqrt();
        if slope.abs() < T_MIN * se {
            return flat;
        }
        Fit {
            level: line(nf - 1.0).max(0.0),
            slope,
            rising: (slope - SLOPE_MARGIN * se).max(0.0),
        }
    }
}

/// When the trend `fit` reaches `quota` (its level rising at its
/// [`Fit::rising`] slope), in seconds from now, with buckets of `bucket`:
/// zero at or over it, `None` when the trend is flat or falls.
pub fn seconds_to_quota(fit: Fit, quota: f64, bucket: Duration) -> Option<f64> {
    if fit.level >= quota {
        return Some(0.0);
    }
    if fit.rising <= 0.0 {
        return None;
    }
    Some((quota - fit.level) / fit.rising * bucket.as_secs_f64())
}

/// One kind's view after a bucket closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindForecast {
    /// Which quota.
    pub kind: QuotaKind,
    /// The quota (per minute).
    pub quota: u64,
    /// The rate now (per minute): the trend's line at the newest bucket.
    pub rate: f64,
    /// The recent rate steering reads (per minute).
    pub recent: f64,
    /// Seconds until the trend reaches the quota; `None`: it does not.
    pub seconds_to_quota: Option<f64>,
    /// The rate expected a lead ahead over [`HEADROOM`] of the quota.
    pub pressure: f64,
}

/// The longest span, in minutes, the steady rate reads for a request quota
/// of `rpm`: a minute (the quota's own window), longer when a minute at
/// [`HEADROOM`] of the quota holds fewer than [`SPAN_COUNT`] requests
/// (a small quota), at most [`STEADY_MAX_MINUTES`].
pub fn steady_span(rpm: Option<u64>) -> f64 {
    let floor = rpm.map_or(1.0, |q| SPAN_COUNT / (HEADROOM * q as f64));
    floor.clamp(1.0, STEADY_MAX_MINUTES)
}

/// One closed bucket in the steady history.
#[derive(Debug, Clone, Copy)]
struct Closed {
    counts: [u64; 2],
    minutes: f64,
}

/// What steering reads besides the fast EWMA ([`Forecaster::steady`]).
#[derive(Debug, Clone, Copy)]
struct Steady {
    /// The steady rates by kind, when the requests are too few for the
    /// fast EWMA.
    rates: Option<[f64; 2]>,
    /// Whether the trend's slope may add its lead.
    lead: bool,
}

/// What closing one bucket decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Each configured kind's forecast, by [`QuotaKind::index`].
    pub kinds: [Option<KindForecast>; 2],
    /// The steering factor from now on.
    pub factor: f64,
    /// Whether the provider is under warning now.
    pub warning: bool,
    /// `Some(true)` when the warning started with this bucket,
    /// `Some(false)` when it ended.
    pub changed: Option<bool>,
}

impl Step {
    /// The kind with the nearest forecast (else the highest pressure).
    pub fn nearest(&self) -> Option<KindForecast> {
        self.kinds.iter().flatten().copied().min_by(|a, b| {
            let ta = a.seconds_to_quota.unwrap_or(f64::INFINITY);
            let tb = b.seconds_to_quota.unwrap_or(f64::INFINITY);
            ta.total_cmp(&tb).then(b.pressure.total_cmp(&a.pressure))
        })
    }
}

/// One provider's trends, warning and steering factor (pure: fed a
/// bucket at a time).
#[derive(Debug, Clone)]
pub struct Forecaster {
    settings: QuotaSettings,
    trends: [Trend; 2],
    /// The recent rate of each kind ([`RECENT_WEIGHT`]); `None` before
    /// the first bucket.
    recent: [Option<f64>; 2],
    /// The closed buckets of the last [`STEADY_MAX_MINUTES`] at most,
    /// oldest first, for the steady rate.
    history: VecDeque<Closed>,
    /// The minutes `history` covers.
    kept: f64,
    factor: f64,
    warning: bool,
    /// Consecutive buckets with a forecast under the horizon.
    near: u32,
}

impl Forecaster {
    /// A forecaster with no history, factor 1.
    pub fn new(settings: QuotaSettings) -> Self {
        Self {
            settings,
            trends: Default::default(),
            recent: [None, None],
            history: VecDeque::new(),
            kept: 0.0,
            factor: 1.0,
            warning: false,
            near: 0,
        }
    }

    /// New quotas or timings; the history is kept (a changed bucket length
    /// changes nothing in the per-minute rates already seen).
    pub fn reconfigure(&mut self, settings: QuotaSettings) {
        self.settings = settings;
    }

    /// The settings in force.
    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    /// The steering factor now.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Records a closed bucket in the history and returns the steady rates
    /// (per minute, by kind) when steering should read them (`None` when
    /// the requests are many enough for the fast EWMA: [`FAST_COUNT`] a
    /// bucket). The steady rates are both kinds' counts
    /// over the newest buckets that hold [`STEADY_COUNT`] requests, at most
    /// [`steady_span`] long: the span is chosen by the requests (whose
    /// arrivals are the noise, for tokens too), never by the counts it
    /// then reads, so a chance burst does not pick a short span), and
    /// whether the trend's buckets hold [`STEADY_COUNT`] requests, enough
    /// for its slope to lead steering (with a few requests a bucket, a
    /// chance run such as 0, 1, 2 is a perfect line).
    fn steady(&mut self, counts: [u64; 2], minutes: f64) -> Steady {
        self.history.push_back(Closed { counts, minutes });
        self.kept += minutes;
        while let Some(c) = self.history.front().copied() {
            if self.kept - c.minutes < STEADY_MAX_MINUTES {
                break;
            }
            self.history.pop_front();
            self.kept -= c.minutes;
        }
        let span = steady_span(self.settings.rpm);
        let (mut sum, mut long) = ([0u64; 2], 0.0);
        for c in self.history.iter().rev() {
            if long >= span || sum[0] >= STEADY_COUNT {
                break;
            }
            sum[0] = sum[0].saturating_add(c.counts[0]);
            sum[1] = sum[1].saturating_add(c.counts[1]);
            long += c.minutes;
        }
        // Fewer requests than that over the whole span (or a history
        // shorter than it, just started): over the span, the time before
        // the history idle.
        let long = if sum[0] >= STEADY_COUNT {
            long
        } else {
            long.max(span)
        };
        let rates = [sum[0] as f64 / long, sum[1] as f64 / long];
        // Requests a bucket holds at the headroom of the request quota (a
        // setting, not a noisy count); without one, at the steady rate.
        let per_bucket = match self.settings.rpm {
            Some(q) => HEADROOM * q as f64 * self.settings.bucket.as_secs_f64() / 60.0,
            None => rates[0] * minutes,
        };
        let trend: u64 = self
            .history
            .iter()
            .rev()
            .take(WINDOW)
            .map(|c| c.counts[0])
            .sum();
        Steady {
            rates: (per_bucket < FAST_COUNT).then_some(rates),
            lead: trend >= STEADY_COUNT,
        }
    }

    /// Closes a bucket of `elapsed` in which `counts` (requests, tokens)
    /// were sent.
    pub fn close(&mut self, counts: [u64; 2], elapsed: Duration) -> Step {
        let minutes = elapsed.as_secs_f64().max(1e-3) / 60.0;
        let steady = self.steady(counts, minutes);
        let mut kinds = [None, None];
        let mut pressure: f64 = 0.0;
        for kind in QuotaKind::ALL {
            let rate = counts[kind.index()] as f64 / minutes;
            let trend = &mut self.trends[kind.index()];
            trend.push(rate);
            let recent = self.recent[kind.index()]
                .map_or(rate, |r| RECENT_WEIGHT * rate + (1.0 - RECENT_WEIGHT) * r);
            self.recent[kind.index()] = Some(recent);
            let Some(quota) = self.settings.quota(kind) else {
                continue;
            };
            let fit = trend.fit();
            let q = quota as f64;
            let read = steady.rates.map_or(recent, |s| s[kind.index()]);
            let lead = if steady.lead { fit.slope.max(0.0) } else { 0.0 };
            let expected = read + lead * LEAD_BUCKETS;
            let p = expected / (HEADROOM * q);
            pressure = pressure.max(p);
            kinds[kind.index()] = Some(KindForecast {
                kind,
                quota,
                rate: fit.level,
                recent,
                seconds_to_quota: seconds_to_quota(fit, q, self.settings.bucket),
                pressure: p,
            });
        }
        // Falls faster than it rises: over the target, by the square of
        // the excess (a climb outruns a proportional step), under it, in
        // proportion.
        let step = match pressure {
            p if p > 1.0 => (1.0 / (p * p)).max(FALL_MAX),
            p if p > 0.0 => (1.0 / p).min(RISE_MAX),
            _ => RISE_MAX,
        };
        self.factor = (self.factor * step).clamp(MIN_FACTOR, 1.0);
        let horizon = self.settings.horizon.as_secs_f64();
        let forecasts = || kinds.iter().flatten().filter_map(|k| k.seconds_to_quota);
        let near = forecasts().any(|s| s <= horizon);
        let over = forecasts().any(|s| s <= 0.0);
        self.near = if near { self.near.saturating_add(1) } else { 0 };
        let was = self.warning;
        self.warning = over || self.near >= WARN_AFTER || (was && (near || self.factor < 1.0));
        let changed = (self.warning != was).then_some(self.warning);
        Step {
            kinds,
            factor: self.factor,
            warning: self.warning,
            changed,
        }
    }
}

/// The counters and steering factor of one provider's quotas, shared by its
/// deployments, and the [`Forecaster`] behind them.
#[derive(Debug)]
pub struct QuotaMeter {
    /// Requests sent in the open bucket.
    requests: AtomicU64,
    /// Tokens (estimated) sent in the open bucket, less the corrections
    /// made once answers said what they used ([`QuotaMeter::used`]): signed,
    /// a correction for a request counted in a closed bucket is carried
    /// into the next.
    tokens: AtomicI64,
    /// The steering factor, an `f64`'s bits.
    factor: AtomicU64,
    /// Whether a token quota is set (answers' usage is then read to
    /// correct the token count).
    tpm: AtomicBool,
    state: Mutex<MeterState>,
}

#[derive(Debug)]
struct MeterState {
    forecaster: Forecaster,
    /// When the open bucket started.
    opened: Instant,
}

impl QuotaMeter {
    /// A meter whose first bucket opens at `now`.
    pub fn new(settings: QuotaSettings, now: Instant) -> Self {
        Self {
            requests: AtomicU64::new(0),
            tokens: AtomicI64::new(0),
            factor: AtomicU64::new(1.0f64.to_bits()),
            tpm: AtomicBool::new(settings.tpm.is_some()),
            state: Mutex::new(MeterState {
                forecaster: Forecaster::new(settings),
                opened: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        // Plain numbers: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request sent with an estimated `tokens`.
    #[inline]
    pub fn sent(&self, tokens: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }

    /// Corrects the token count once an answer says what it used: its
    /// request was counted at `estimate` ([`QuotaMeter::sent`]) and used
    /// `used`. Only a lower use is credited (one atomic subtraction); the
    /// estimate's output part is the request's allowance, which the answer
    /// cannot exceed.
    #[inline]
    pub fn used(&self, estimate: u64, used: u64) {
        let over = estimate.saturating_sub(used);
        if over > 0 {
            let over = i64::try_from(over).unwrap_or(i64::MAX);
            self.tokens.fetch_sub(over, Ordering::Relaxed);
        }
    }

    /// The balancer's steering factor, in `[MIN_FACTOR, 1]`.
    #[inline]
    pub fn factor(&self) -> f64 {
        f64::from_bits(self.factor.load(Ordering::Relaxed))
    }

    /// The settings in force.
    pub fn settings(&self) -> QuotaSettings {
        *self.lock().forecaster.settings()
    }

    /// New settings (a reload), keeping the history and the factor.
    pub fn reconfigure(&self, settings: QuotaSettings) {
        self.tpm.store(settings.tpm.is_some(), Ordering::Relaxed);
        self.lock().forecaster.reconfigure(settings);
    }

    /// Whether the provider has a token quota (one atomic load).
    #[inline]
    pub fn watches_tokens(&self) -> bool {
        self.tpm.load(Ordering::Relaxed)
    }

    /// When the open bucket is due to close.
    pub fn due(&self) -> Instant {
        let s = self.lock();
        s.opened + s.forecaster.settings().bucket
    }

    /// Closes the open bucket if it is due at `now`, and returns what the
    /// forecaster decided; `None` when it is not due yet.
    pub fn poll(&self, now: Instant) -> Option<Step> {
        let mut s = self.lock();
        let elapsed = now.saturating_duration_since(s.opened);
        if elapsed < s.forecaster.settings().bucket {
            return None;
        }
        let requests = self.requests.swap(0, Ordering::Relaxed);
        let tokens = self.tokens.swap(0, Ordering::Relaxed);
        if tokens < 0 {
            // Corrections for requests counted in an earlier bucket: they
            // come off the next one.
            self.tokens.fetch_add(tokens, Ordering::Relaxed);
        }
        let counts = [requests, u64::try_from(tokens).unwrap_or(0)];
        s.opened = now;
        let step = s.forecaster.close(counts, elapsed);
        self.factor.store(step.factor.to_bits(), Ordering::Relaxed);
        Some(step)
    }
}

/// A request's token estimate counted on its provider's meter, to be
/// corrected with the answer's usage ([`QuotaMeter::used`]).
#[derive(Debug, Clone)]
pub struct QuotaCharge {
    /// The provider's meter.
    pub meter: Arc<QuotaMeter>,
    /// The tokens counted when the request was sent.
    pub estimate: u64,
}

impl QuotaCharge {
    /// The answer used `used` tokens (prompt and output).
    #[inline]
    pub fn settle(&self, used: u64) {
        self.meter.used(self.estimate, used);
    }
}

#[cfg(test)]
mod tests;
