//! The circuit breaker and the rest of a deployment's health record.
//!
//! States, in the usual sense (not linkerd's inverted one):
//!
//! 1. **Closed**: traffic flows. Opens when the failure rate over the
//!    sliding window reaches `failure_rate` with at least `min_requests`
//!    attempts, or after `consecutive_failures` failures in a row, or at
//!    once on a 401/403 (misconfigured deployment).
//! 2. **Open**: no traffic until `open_until`. The open period is
//!    `cooldown × 2^(openings−1)`, capped at `max_cooldown`; when the opening
//!    failure was a 429 or 503 with `Retry-After`, that is the open period.
//! 3. After `open_until`, an active probe (if configured) must succeed to
//!    move to **HalfOpen**; without probes the first request does.
//! 4. **HalfOpen**: at most `half_open_requests` trial requests at a time;
//!    that many successes close the breaker, one failure re-opens it. A
//!    stream's trial succeeds at its first content ([`HealthRecord::first_content`]);
//!    how it ends is then an ordinary outcome.
//!
//! Idle probes (of a closed deployment without traffic) count like attempts:
//! into the window and the consecutive failures, so one failed probe does not
//! open a deployment; after a failed one the next comes at the probe interval.

use std::time::Duration;

use tokio::time::Instant;

use super::window::Window;
use super::{Outcome, OutcomeClass, PeakEwma};
use crate::config::HealthConfig;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// No traffic until the cooldown ends and a probe succeeds.
    Open,
    /// A few trial requests decide.
    HalfOpen,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// Whether a deployment may take an attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Yes.
    Ready,
    /// Yes, as a half-open trial.
    Trial,
    /// Not before this instant.
    Until(Instant),
}

/// What [`HealthRecord::acquire`] handed out; given back to [`HealthRecord::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticket {
    /// An ordinary attempt.
    Normal,
    /// A half-open trial of round `n` (each half-opening starts a round; a
    /// trial still running from an earlier round counts as an ordinary
    /// attempt, so rounds never mix).
    Trial(u32),
}

/// Everything Lifeline knows about one deployment's health.
#[derive(Debug)]
pub struct HealthRecord {
    state: BreakerState,
    open_until: Instant,
    openings: u32,
    closed_since: Instant,
    trials_in_flight: u32,
    round: u32,
    trial_successes: u32,
    consecutive_failures: u32,
    window: Window,
    latency: PeakEwma,
    last_success: Option<Instant>,
    not_before: Option<Instant>,
    last_used: Instant,
    last_probe: Instant,
    probing: bool,
}

/// A state change made by the record, for the caller to publish.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
    /// Why.
    pub reason: String,
}

impl HealthRecord {
    /// A closed, unused record.
    pub fn new(now: Instant, cfg: &HealthConfig) -> Self {
        Self {
            state: BreakerState::Closed,
            open_until: now,
            openings: 0,
            closed_since: now,
            trials_in_flight: 0,
            round: 0,
            trial_successes: 0,
            consecutive_failures: 0,
            window: Window::new(now, cfg.window),
            latency: PeakEwma::new(now),
            last_success: None,
            not_before: None,
            last_used: now,
            last_probe: now,
            probing: false,
        }
    }

    /// The breaker's state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Adds a latency sample without an outcome (a stream's first content:
    /// its outcome is known only when it ends, its latency now).
    pub fn observe_latency(&mut self, now: Instant, latency: Duration) {
        self.latency.observe(now, latency);
        self.last_success = Some(now);
    }

    /// When the deployment last answered successfully (a whole answer, or a
    /// stream's first content), if ever. Failures do not count: this is the
    /// evidence that a deployment is working.
    pub fn last_success(&self) -> Option<Instant> {
        self.last_success
    }

    /// Whether the deployment's latency was ever measured.
    pub fn latency_measured(&self) -> bool {
        self.latency.measured()
    }

    /// Peak-EWMA latency in nanoseconds (a placeholder until measured).
    pub fn latency_nanos(&self) -> f64 {
        self.latency.nanos()
    }

    /// The balancer's latency cost with `pending` attempts in flight
    /// ([`PeakEwma::cost`]).
    pub fn latency_cost(&self, now: Instant, pending: u32, awaiting: u32) -> f64 {
        self.latency.cost(now, pending, awaiting)
    }

    /// `(successes, failures)` in the sliding window.
    pub fn counts(&self, now: Instant) -> (u32, u32) {
        self.window.counts(now)
    }

    /// When the breaker may next admit traffic, if it is open.
    pub fn open_until(&self) -> Option<Instant> {
        (self.state == BreakerState::Open).then_some(self.open_until)
    }

    /// The deployment asked not to be called before this instant.
    pub fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Whether the deployment may take an attempt now, without reserving it.
    pub fn availability(&self, now: Instant, cfg: &HealthConfig, probes: bool) -> Availability {
        if let Some(nb) = self.not_before.filter(|nb| *nb > now) {
            return Availability::Until(nb);
        }
        match self.state {
            BreakerState::Closed => Availability::Ready,
            BreakerState::Open if !probes && now >= self.open_until => Availability::Trial,
            BreakerState::Open => {
                Availability::Until(self.open_until.max(now + cfg.probe_interval))
            }
            BreakerState::HalfOpen if self.trials_in_flight < cfg.half_open_requests => {
                Availability::Trial
            }
            BreakerState::HalfOpen => Availability::Until(now + cfg.probe_interval),
        }
    }

    /// Reserves an attempt; `None` if the deployment cannot take one now.
    pub fn acquire(
        &mut self,
        now: Instant,
        cfg: &HealthConfig,
        probes: bool,
    ) -> Option<(Ticket, Option<Transition>)> {
        match self.availability(now, cfg, probes) {
            Availability::Until(_) => None,
            Availability::Ready => {
                self.last_used = now;
                Some((Ticket::Normal, None))
            }
            Availability::Trial => {
                let t = (self.state == BreakerState::Open)
                    .then(|| self.half_open("cooldown over, no probe configured"));
                self.trials_in_flight += 1;
                self.last_used = now;
                Some((Ticket::Trial(self.round), t))
            }
        }
    }

    /// Records an attempt's outcome; returns the transition it caused, if any.
    pub fn record(
        &mut self,
        now: Instant,
        ticket: Ticket,
        outcome: Outcome,
        cfg: &HealthConfig,
    ) -> Option<Transition> {
        let ticket = match ticket {
            Ticket::Trial(r) if r == self.round => {
                self.trials_in_flight = self.trials_in_flight.saturating_sub(1);
                ticket
            }
            _ => Ticket::Normal,
        };
        if let Some(ra) = outcome.retry_after {
            self.not_before = Some(now + ra);
        }
        match outcome.class {
            OutcomeClass::Neutral => return None,
            OutcomeClass::Success => {
                self.latency.observe(now, outcome.latency);
                self.last_success = Some(now);
                self.window.record(now, true);
                self.consecutive_failures = 0;
            }
            OutcomeClass::Failure => {
                // A failure is priced as at least a second of latency, so that
                // the balancer steers away from it before the breaker opens.
                self.latency
                    .observe(now, outcome.latency.max(Duration::from_secs(1)));
                self.window.record(now, false);
                self.consecutive_failures += 1;
            }
        }
        let failed = outcome.class == OutcomeClass::Failure;
        match (self.state, ticket) {
            (BreakerState::HalfOpen, Ticket::Trial(_)) if failed => Some(self.open(
                now,
                cfg,
                outcome.retry_after,
                "half-open trial failed".into(),
            )),
            (BreakerState::HalfOpen, Ticket::Trial(_)) => {
                self.trial_successes += 1;
                (self.trial_successes >= cfg.half_open_requests).then(|| self.close(now))
            }
            (BreakerState::Closed, _) if failed => {
                self.trip(now, cfg, outcome.misconfigured, outcome.retry_after, "")
            }
            _ => None,
        }
    }

    /// Whether the prober should probe now; marks the probe as started.
    pub fn start_probe(&mut self, now: Instant, cfg: &HealthConfig) -> bool {
        if self.probing {
            return false;
        }
        let due = match self.state {
            BreakerState::Open => now >= self.open_until,
            BreakerState::Closed => {
                let since_probe = now.saturating_duration_since(self.last_probe);
                now.saturating_duration_since(self.last_used) >= cfg.idle_probe_after
                    && (since_probe >= cfg.idle_probe_after
                        // After a failure, follow up at the probe interval: a
                        // dead idle deployment opens after a few probes, not
                        // after as many idle periods.
                        || (self.consecutive_failures > 0 && since_probe >= cfg.probe_interval))
            }
            BreakerState::HalfOpen => false,
        };
        if due {
            self.probing = true;
            self.last_probe = now;
        }
        due
    }

    /// Records a probe's result.
    pub fn probe_result(
        &mut self,
        now: Instant,
        ok: bool,
        cfg: &HealthConfig,
    ) -> Option<Transition> {
        self.probing = false;
        match (self.state, ok) {
            // A probe started before the breaker opened (an idle probe) says
            // nothing about the open period: the cooldown stands.
            (BreakerState::Open, _) if now < self.open_until => None,
            (BreakerState::Open, true) => Some(self.half_open("probe succeeded")),
            (BreakerState::Open, false) => Some(self.open(now, cfg, None, "probe failed".into())),
            // An idle probe counts like an attempt: one failure (a passing 429
            // or timeout) is not an outage, and must not open a backup tier
            // just before it is needed. Its latency says nothing about
            // inference and is not sampled.
            (BreakerState::Closed, true) => {
                self.window.record(now, true);
                self.consecutive_failures = 0;
                None
            }
            (BreakerState::Closed, false) => {
                self.window.record(now, false);
                self.consecutive_failures += 1;
                self.trip(now, cfg, false, None, ", the last an idle probe")
            }
            _ => None,
        }
    }

    /// A stream reached its first content. A half-open trial is decided now,
    /// as a success: a long stream must not hold its trial slot (and keep
    /// the breaker half-open) until it ends. Returns the ticket to finish
    /// the attempt with, an ordinary one: how the stream ends is recorded
    /// like any other attempt's outcome (a later break is an ordinary
    /// failure, not a failed trial). Also returns the transition, when this
    /// trial closed the breaker.
    pub fn first_content(
        &mut self,
        now: Instant,
        ticket: Ticket,
        cfg: &HealthConfig,
    ) -> (Ticket, Option<Transition>) {
        let Ticket::Trial(round) = ticket else {
            return (ticket, None);
        };
        if round != self.round {
            return (Ticket::Normal, None);
        }
        self.trials_in_flight = self.trials_in_flight.saturating_sub(1);
        if self.state != BreakerState::HalfOpen {
            return (Ticket::Normal, None);
        }
        self.trial_successes += 1;
        let closed = (self.trial_successes >= cfg.half_open_requests).then(|| self.close(now));
        (Ticket::Normal, closed)
    }

    /// Opens a closed breaker if its thresholds are reached (called after a
    /// failure was counted); `why` is appended to the reason.
    fn trip(
        &mut self,
        now: Instant,
        cfg: &HealthConfig,
        misconfigured: bool,
        retry_after: Option<Duration>,
        why: &str,
    ) -> Option<Transition> {
        let (ok, bad) = self.window.counts(now);
        let total = ok + bad;
        let reason = if misconfigured {
            Some("upstream rejected the deployment's credentials (401/403)".to_string())
        } else if self.consecutive_failures >= cfg.consecutive_failures {
            Some(format!(
                "{} consecutive failures{why}",
                self.consecutive_failures
            ))
        } else if total >= cfg.min_requests && f64::from(bad) / f64::from(total) >= cfg.failure_rate
        {
            Some(format!(
                "failure rate {:.2} over {total} attempts{why}",
                f64::from(bad) / f64::from(total)
            ))
        } else {
            None
        };
        reason.map(|r| self.open(now, cfg, retry_after, r))
    }

    fn open(
        &mut self,
        now: Instant,
        cfg: &HealthConfig,
        retry_after: Option<Duration>,
        reason: String,
    ) -> Transition {
        let from = self.state;
        if from == BreakerState::Closed
            && now.saturating_duration_since(self.closed_since) > cfg.max_cooldown
        {
            self.openings = 0;
        }
        self.openings = self.openings.saturating_add(1);
        let factor = 1u32
            .checked_shl(self.openings.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        let cooldown = cfg.cooldown.saturating_mul(factor).min(cfg.max_cooldown);
        let period = retry_after.unwrap_or(cooldown);
        self.state = BreakerState::Open;
        self.open_until = now + period;
        self.trial_successes = 0;
        Transition {
            from,
            to: BreakerState::Open,
            reason: format!("{reason}; open for {} ms", period.as_millis()),
        }
    }

    fn half_open(&mut self, reason: &str) -> Transition {
        let from = self.state;
        self.state = BreakerState::HalfOpen;
        self.trial_successes = 0;
        self.trials_in_flight = 0;
        self.round = self.round.wrapping_add(1);
        Transition {
            from,
            to: BreakerState::HalfOpen,
            reason: reason.to_string(),
        }
    }

    fn close(&mut self, now: Instant) -> Transition {
        let from = self.state;
        self.state = BreakerState::Closed;
        self.closed_since = now;
        self.consecutive_failures = 0;
        self.window.clear();
        Transition {
            from,
            to: BreakerState::Closed,
            reason: "half-open trials succeeded".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        HealthConfig::default()
    }

    fn fail() -> Outcome {
        Outcome::failure(Duration::from_millis(5))
    }

    fn ok() -> Outcome {
        Outcome::success(Duration::from_millis(5))
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_then_probe_half_opens_then_trials_close() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        for i in 0..cfg.consecutive_failures {
            let t = r.record(now, Ticket::Normal, fail(), &cfg);
            assert_eq!(t.is_some(), i + 1 == cfg.consecutive_failures);
        }
        assert_eq!(r.state(), BreakerState::Open);
        assert!(r.acquire(now, &cfg, true).is_none());
        assert!(
            !r.start_probe(now, &cfg),
            "no probe before the cooldown ends"
        );
        let later = now + cfg.cooldown;
        assert!(r.start_probe(later, &cfg));
        r.probe_result(later, true, &cfg);
        assert_eq!(r.state(), BreakerState::HalfOpen);
        let mut tickets = Vec::new();
        for _ in 0..cfg.half_open_requests {
            tickets.push(r.acquire(later, &cfg, true).map(|t| t.0));
        }
        assert!(r.acquire(later, &cfg, true).is_none(), "trials are limited");
        for t in tickets.into_iter().flatten() {
            r.record(later, t, ok(), &cfg);
        }
        assert_eq!(r.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_opens_with_minimum_volume() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        for i in 0..20 {
            let o = if i % 2 == 0 { fail() } else { ok() };
            r.record(now, Ticket::Normal, o, &cfg);
            if i < 9 {
                assert_eq!(r.state(), BreakerState::Closed, "at {i}");
            }
        }
        assert_eq!(r.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_grows_on_reopening_and_retry_after_sets_it() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        let misconf = Outcome {
            misconfigured: true,
            ..fail()
        };
        r.record(now, Ticket::Normal, misconf, &cfg);
        assert_eq!(r.open_until(), Some(now + cfg.cooldown));
        let t1 = now + cfg.cooldown;
        assert!(r.start_probe(t1, &cfg));
        r.probe_result(t1, false, &cfg);
        assert_eq!(r.open_until(), Some(t1 + cfg.cooldown * 2));
        let mut r = HealthRecord::new(now, &cfg);
        let limited = Outcome {
            retry_after: Some(Duration::from_secs(42)),
            misconfigured: true,
            ..fail()
        };
        r.record(now, Ticket::Normal, limited, &cfg);
        assert_eq!(r.open_until(), Some(now + Duration::from_secs(42)));
        assert_eq!(r.not_before(), Some(now + Duration::from_secs(42)));
    }

    #[tokio::test(start_paused = true)]
    async fn without_probes_the_first_request_after_cooldown_is_a_trial() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        r.record(
            now,
            Ticket::Normal,
            Outcome {
                misconfigured: true,
                ..fail()
            },
            &cfg,
        );
        assert!(r.acquire(now, &cfg, false).is_none());
        let later = now + cfg.cooldown;
        let (t, tr) = r
            .acquire(later, &cfg, false)
            .unwrap_or((Ticket::Normal, None));
        assert!(matches!(t, Ticket::Trial(_)));
        assert!(tr.is_some());
        assert!(r.record(later, t, fail(), &cfg).is_some());
        assert_eq!(r.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn trials_of_an_earlier_round_do_not_count_in_the_next() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        r.record(
            now,
            Ticket::Normal,
            Outcome {
                misconfigured: true,
                ..fail()
            },
            &cfg,
        );
        let t1 = now + cfg.cooldown;
        assert!(r.start_probe(t1, &cfg));
        r.probe_result(t1, true, &cfg);
        let old: Vec<Ticket> = (0..cfg.half_open_requests)
            .filter_map(|_| r.acquire(t1, &cfg, true).map(|t| t.0))
            .collect();
        // One trial fails: open again; the cooldown passes; a new round starts.
        let (first, rest) = old
            .split_first()
            .map(|(f, r)| (*f, r.to_vec()))
            .unwrap_or((Ticket::Normal, Vec::new()));
        r.record(t1, first, fail(), &cfg);
        let t2 = t1 + cfg.max_cooldown;
        assert!(r.start_probe(t2, &cfg));
        r.probe_result(t2, true, &cfg);
        assert_eq!(r.state(), BreakerState::HalfOpen);
        // The old round's trials finish well: they must not close the breaker.
        for t in rest {
            r.record(t2, t, ok(), &cfg);
        }
        assert_eq!(r.state(), BreakerState::HalfOpen);
        // The new round admits its full number of trials, and one success of
        // its own (with the old ones, enough to close if they counted) does
        // not close it.
        let fresh: Vec<Ticket> = (0..cfg.half_open_requests)
            .filter_map(|_| r.acquire(t2, &cfg, true).map(|t| t.0))
            .collect();
        assert_eq!(fresh.len() as u32, cfg.half_open_requests);
        r.record(t2, fresh[0], ok(), &cfg);
        assert_eq!(
            r.state(),
            BreakerState::HalfOpen,
            "old trials counted towards closing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_probe_does_not_cut_the_cooldown() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        let idle = now + cfg.idle_probe_after;
        assert!(r.start_probe(idle, &cfg), "idle probe due");
        // Traffic opens the breaker while the idle probe is out.
        r.record(
            idle,
            Ticket::Normal,
            Outcome {
                misconfigured: true,
                ..fail()
            },
            &cfg,
        );
        assert!(r.probe_result(idle, true, &cfg).is_none());
        assert_eq!(r.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn neutral_outcomes_do_not_count() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        for _ in 0..100 {
            r.record(now, Ticket::Normal, Outcome::neutral(Duration::ZERO), &cfg);
        }
        assert_eq!(r.state(), BreakerState::Closed);
        assert_eq!(r.counts(now), (0, 0));
    }

    fn open_then_half_open(r: &mut HealthRecord, now: Instant, cfg: &HealthConfig) -> Instant {
        r.record(
            now,
            Ticket::Normal,
            Outcome {
                misconfigured: true,
                ..fail()
            },
            cfg,
        );
        let later = now + cfg.cooldown;
        assert!(r.start_probe(later, cfg));
        r.probe_result(later, true, cfg);
        assert_eq!(r.state(), BreakerState::HalfOpen);
        later
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_trial_is_decided_at_its_first_content() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        let t = open_then_half_open(&mut r, now, &cfg);
        let trials: Vec<Ticket> = (0..cfg.half_open_requests)
            .filter_map(|_| r.acquire(t, &cfg, true).map(|a| a.0))
            .collect();
        assert_eq!(trials.len() as u32, cfg.half_open_requests);
        assert!(r.acquire(t, &cfg, true).is_none(), "trials are limited");
        // The streams reach their first content and go on: the trials are
        // decided, the breaker closes and everyone may use it at once.
        let mut ongoing = Vec::new();
        for (i, trial) in trials.into_iter().enumerate() {
            let (ticket, closed) = r.first_content(t, trial, &cfg);
            assert_eq!(ticket, Ticket::Normal);
            assert_eq!(closed.is_some(), i as u32 + 1 == cfg.half_open_requests);
            ongoing.push(ticket);
        }
        assert_eq!(r.state(), BreakerState::Closed);
        assert!(matches!(
            r.acquire(t, &cfg, true),
            Some((Ticket::Normal, None))
        ));
        // One of them breaks later: an ordinary failure, counted in the
        // window, not a failed trial that re-opens the breaker.
        let end = t + Duration::from_secs(30);
        assert!(r.record(end, ongoing[0], fail(), &cfg).is_none());
        assert_eq!(r.state(), BreakerState::Closed);
        assert_eq!(r.counts(end), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trial_stream_that_fails_before_content_still_re_opens() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        let t = open_then_half_open(&mut r, now, &cfg);
        let trial = r.acquire(t, &cfg, true).map(|a| a.0);
        assert!(matches!(trial, Some(Ticket::Trial(_))));
        let trial = trial.unwrap_or(Ticket::Normal);
        assert!(r.record(t, trial, fail(), &cfg).is_some());
        assert_eq!(r.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_probes_count_like_attempts_and_one_failure_does_not_open() {
        let cfg = cfg();
        let now = Instant::now();
        let mut r = HealthRecord::new(now, &cfg);
        let mut t = now + cfg.idle_probe_after;
        assert!(r.start_probe(t, &cfg), "idle probe due");
        assert!(
            r.probe_result(t, false, &cfg).is_none(),
            "one failed probe opened it"
        );
        assert_eq!(r.state(), BreakerState::Closed);
        assert_eq!(r.counts(t), (0, 1));
        // The follow-up comes at the probe interval, not after another idle period.
        assert!(!r.start_probe(t, &cfg));
        t += cfg.probe_interval;
        assert!(
            r.start_probe(t, &cfg),
            "no follow-up after a failed idle probe"
        );
        // It answers: the failure streak ends, and probes go back to the idle pace.
        assert!(r.probe_result(t, true, &cfg).is_none());
        assert_eq!(r.counts(t), (1, 1));
        t += cfg.probe_interval;
        assert!(!r.start_probe(t, &cfg));
        // A deployment that keeps failing its probes opens after
        // `consecutive_failures` of them.
        t += cfg.idle_probe_after;
        let mut opened = None;
        for i in 1..=cfg.consecutive_failures {
            assert!(r.start_probe(t, &cfg), "probe {i} not due");
            if let Some(tr) = r.probe_result(t, false, &cfg) {
                opened = Some((i, tr));
                break;
            }
            assert_eq!(r.state(), BreakerState::Closed);
            t += cfg.probe_interval;
        }
        let (i, tr) = opened.unwrap_or_else(|| panic!("never opened"));
        assert_eq!(i, cfg.consecutive_failures);
        assert_eq!(r.state(), BreakerState::Open);
        assert!(tr.reason.contains("idle probe"), "{}", tr.reason);
    }
}
