//! Estimated restoration time of an open incident, from past incidents.
//!
//! Pure: no I/O, no clock. The caller passes the history and the current
//! incident's elapsed time; the page calls [`estimate`] on every render and
//! [`sentence`] to word the result.
//!
//! # Formulas
//!
//! Past incidents are durations `D_i` (resolved) or ages `c_j` of incidents
//! still open or whose end was lost (right-censored). With distinct
//! resolution times `t_k`, `n_k` incidents at risk just before `t_k` (time
//! ≥ `t_k`, a censored one counts while `t_k ≤ c_j`) and `d_k` resolved at
//! `t_k`, the Kaplan–Meier survival estimate is
//!
//! ```text
//! Ŝ(u) = ∏_{t_k ≤ u} (1 − d_k / n_k)
//! ```
//!
//! For an open incident of age `t`, the remaining time survives past `r`
//! with probability `Ŝ(t + r) / Ŝ(t)`: the same product over `t < t_k ≤ t + r`
//! only, which is what [`KaplanMeier::remaining_quantile`] computes. Its
//! `q`-quantile is the smallest resolution time `u > t` with
//! `Ŝ(u) ≤ (1 − q)·Ŝ(t)`, minus `t`; it does not exist when censoring leaves
//! the curve above that level (the estimate then falls to a broader pool).
//! Finished-only estimates ignore that an open incident is still running and
//! come out short; the tests show the difference.
//!
//! # Which history
//!
//! Two sources are kept apart, never mixed in one pool, because their start
//! and end times mean different things ([`Source`]): Lifeline's own
//! incidents first, then the upstream provider's published history. Within a
//! source the narrowest pool with enough data wins: same component and cause
//! class, then same cause class, then all ([`Pool`]). A pool's size `n` is
//! the number of its incidents that lasted longer than the current one
//! (resolved or censored after `t`). Minimum sizes: a median only with
//! `n ≥ 10` ([`MIN_FOR_MEDIAN`]), a 90th percentile only with `n ≥ 30`
//! ([`MIN_FOR_P90`]). A pool of at least 30 incidents whose own 90th
//! percentile the current incident has already outlasted says "longer than
//! most similar incidents" and gives no estimate. An operator's override
//! wins over all of this.

use std::time::Duration;

/// Fewest comparable incidents (lasting longer than the current one) for a
/// median.
pub const MIN_FOR_MEDIAN: usize = 10;

/// Fewest comparable incidents for a 90th percentile; also the fewest in a
/// pool for its own 90th percentile to say "longer than most".
pub const MIN_FOR_P90: usize = 30;

/// Where a past incident's record comes from. The two are never pooled
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Detected by Lifeline itself.
    Local,
    /// Published by the upstream provider (its status page history).
    Upstream,
}

/// How long a past incident lasted, as far as is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Resolved after this long.
    Resolved(Duration),
    /// Still open (or its end was lost) after this long: right-censored.
    OpenFor(Duration),
}

impl Observed {
    fn time(self) -> Duration {
        match self {
            Observed::Resolved(d) | Observed::OpenFor(d) => d,
        }
    }
}

/// One past incident of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastIncident {
    /// The component it affected.
    pub component: String,
    /// Its cause class (errors, latency, capacity, auth, …).
    pub cause: String,
    /// Who recorded it.
    pub source: Source,
    /// Its duration, or its age if it is still open.
    pub observed: Observed,
}

/// The open incident to estimate for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current<'a> {
    /// The component it affects.
    pub component: &'a str,
    /// Its cause class.
    pub cause: &'a str,
    /// How long it has lasted so far.
    pub elapsed: Duration,
}

/// Which past incidents an estimate is drawn from, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Same component and same cause class.
    ComponentAndCause,
    /// Same cause class, any component.
    Cause,
    /// All incidents of the source.
    All,
}

impl Pool {
    const NARROW_TO_BROAD: [Pool; 3] = [Pool::ComponentAndCause, Pool::Cause, Pool::All];

    fn admits(self, past: &PastIncident, current: &Current<'_>) -> bool {
        match self {
            Pool::ComponentAndCause => {
                past.component == current.component && past.cause == current.cause
            }
            Pool::Cause => past.cause == current.cause,
            Pool::All => true,
        }
    }
}

/// What an estimate rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Basis {
    /// The pool it was drawn from.
    pub pool: Pool,
    /// The source of that pool's history.
    pub source: Source,
    /// For an estimate: incidents of the pool that lasted longer than the
    /// current one. For "longer than most": the pool's size.
    pub n: usize,
}

/// The restoration estimate for an open incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eta {
    /// An operator said how much longer it will take; this wins.
    Override {
        /// Remaining time the operator expects.
        remaining: Duration,
    },
    /// Remaining time from history.
    Estimate {
        /// Conditional median of the remaining time.
        median: Duration,
        /// Conditional 90th percentile of the remaining time, with enough
        /// history ([`MIN_FOR_P90`]).
        p90: Option<Duration>,
        /// Pool, source and size.
        basis: Basis,
    },
    /// The incident has outlasted the pool's 90th percentile: no reliable
    /// estimate.
    LongerThanMost {
        /// The pool's (unconditional) 90th percentile of duration.
        p90: Duration,
        /// Pool, source and the pool's size.
        basis: Basis,
    },
    /// No pool has enough comparable incidents.
    NotEnoughHistory,
}

/// The Kaplan–Meier survival curve of a set of durations, some censored.
#[derive(Debug, Clone, PartialEq)]
pub struct KaplanMeier {
    /// Every distinct time (resolution or censoring), ascending, with the
    /// number resolved and censored at it.
    times: Vec<(Duration, usize, usize)>,
    total: usize,
}

impl KaplanMeier {
    /// Builds the curve from observations in any order.
    pub fn new(observed: impl IntoIterator<Item = Observed>) -> Self {
        let mut all: Vec<Observed> = observed.into_iter().collect();
        all.sort_by_key(|o| o.time());
        let total = all.len();
        let mut times: Vec<(Duration, usize, usize)> = Vec::new();
        for o in all {
            let (resolved, censored) = match o {
                Observed::Resolved(_) => (1, 0),
                Observed::OpenFor(_) => (0, 1),
            };
            match times.last_mut() {
                Some(last) if last.0 == o.time() => {
                    last.1 += resolved;
                    last.2 += censored;
                }
                _ => times.push((o.time(), resolved, censored)),
            }
        }
        KaplanMeier { times, total }
    }

    /// Observations whose time is after `t` (resolved or censored later):
    /// the incidents that lasted longer than `t`.
    pub fn at_risk_after(&self, t: Duration) -> usize {
        self.times
            .iter()
            .filter(|(time, _, _)| *time > t)
            .map(|(_, d, c)| d + c)
            .sum()
    }

    /// Ŝ(u): estimated probability of lasting longer than `u`.
    pub fn survival(&self, u: Duration) -> f64 {
        self.survival_steps(Duration::ZERO, false)
            .take_while(|(time, _)| *time <= u)
            .last()
            .map_or(1.0, |(_, s)| s)
    }

    /// The `q`-quantile of the time remaining for an incident that has
    /// lasted `t`: the smallest resolution time `u > t` with
    /// `Ŝ(u) ≤ (1 − q)·Ŝ(t)`, minus `t`. `None` when the curve (after
    /// censoring) never gets that low.
    pub fn remaining_quantile(&self, t: Duration, q: f64) -> Option<Duration> {
        // Ŝ(u)/Ŝ(t) is the product over resolution times in (t, u]: compute
        // it directly, so Ŝ(t) = 0 needs no division.
        let target = 1.0 - q;
        self.survival_steps(t, true)
            .find(|(_, s)| *s <= target + 1e-9)
            .map(|(u, _)| u - t)
    }

    /// The survival curve at each resolution time, counting only times
    /// after `from` when `after` (conditional on lasting past `from`), all
    /// of them otherwise.
    fn survival_steps(
        &self,
        from: Duration,
        after: bool,
    ) -> impl Iterator<Item = (Duration, f64)> + '_ {
        let mut at_risk = self.total;
        let mut s = 1.0;
        self.times
            .iter()
            .filter_map(move |&(time, resolved, censored)| {
                let n = at_risk;
                at_risk -= resolved + censored;
                if (after && time <= from) || resolved == 0 {
                    return None;
                }
                s *= 1.0 - resolved as f64 / n as f64;
                Some((time, s))
            })
    }
}

/// The estimate for `current` from `history`; an operator's `override_`
/// (remaining time) wins.
pub fn estimate(
    history: &[PastIncident],
    current: &Current<'_>,
    override_: Option<Duration>,
) -> Eta {
    if let Some(remaining) = override_ {
        return Eta::Override { remaining };
    }
    let t = current.elapsed;
    for source in [Source::Local, Source::Upstream] {
        for pool in Pool::NARROW_TO_BROAD {
            let km = KaplanMeier::new(
                history
                    .iter()
                    .filter(|p| p.source == source && pool.admits(p, current))
                    .map(|p| p.observed),
            );
            if km.total >= MIN_FOR_P90 {
                if let Some(p90) = km.remaining_quantile(Duration::ZERO, 0.9) {
                    if t >= p90 {
                        let basis = Basis {
                            pool,
                            source,
                            n: km.total,
                        };
                        return Eta::LongerThanMost { p90, basis };
                    }
                }
            }
            let n = km.at_risk_after(t);
            if n < MIN_FOR_MEDIAN {
                continue;
            }
            let Some(median) = km.remaining_quantile(t, 0.5) else {
                continue;
            };
            let p90 = if n >= MIN_FOR_P90 {
                km.remaining_quantile(t, 0.9)
            } else {
                None
            };
            let basis = Basis { pool, source, n };
            return Eta::Estimate { median, p90, basis };
        }
    }
    Eta::NotEnoughHistory
}

/// The sentence the status page shows for `eta`, for an incident that has
/// lasted `elapsed`. English.
pub fn sentence(eta: &Eta, elapsed: Duration) -> String {
    match eta {
        Eta::Override { remaining } => format!(
            "The operator expects this to be resolved within {}.",
            duration_words(*remaining)
        ),
        Eta::Estimate { median, p90, basis } => {
            let mut s = format!(
                "{} that lasted {} were resolved within a median of {}",
                pool_words(basis.pool),
                duration_words(elapsed),
                more_words(*median),
            );
            if let Some(p90) = p90 {
                // "14 more minutes, 90 % within 55": the unit once when both
                // are whole minutes under an hour.
                let p90_words = if *median < HOUR && *p90 < HOUR {
                    minutes(*p90).to_string()
                } else {
                    duration_words(*p90)
                };
                s.push_str(&format!(", 90 % within {p90_words}"));
            }
            s.push_str(&format!("; based on {}.", incidents_words(basis)));
            s
        }
        Eta::LongerThanMost { p90, basis } => format!(
            "This has lasted longer than most similar incidents (90 % of {} were resolved within {}); no reliable estimate.",
            incidents_words(basis),
            duration_words(*p90),
        ),
        Eta::NotEnoughHistory => {
            "Not enough history of similar incidents for an estimate.".to_string()
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn pool_words(pool: Pool) -> &'static str {
    match pool {
        Pool::ComponentAndCause => "Incidents like this",
        Pool::Cause => "Incidents with the same cause",
        Pool::All => "Past incidents",
    }
}

fn incidents_words(basis: &Basis) -> String {
    let noun = if basis.n == 1 {
        "incident"
    } else {
        "incidents"
    };
    match basis.source {
        Source::Local => format!("{} {noun}", basis.n),
        Source::Upstream => format!("{} {noun} the provider published", basis.n),
    }
}

/// Whole minutes, rounded to the nearest, at least 1.
fn minutes(d: Duration) -> u64 {
    ((d.as_secs() + 30) / 60).max(1)
}

/// "1 more minute", "14 more minutes", "1 h more", "3 h 10 min more".
fn more_words(d: Duration) -> String {
    match minutes(d) {
        1 => "1 more minute".to_string(),
        m if m < 60 => format!("{m} more minutes"),
        _ => format!("{} more", duration_words(d)),
    }
}

/// "1 minute", "14 minutes", "1 h", "3 h 10 min".
fn duration_words(d: Duration) -> String {
    let m = minutes(d);
    match (m / 60, m % 60) {
        (0, 1) => "1 minute".to_string(),
        (0, m) => format!("{m} minutes"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests;
