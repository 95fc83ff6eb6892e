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
//! A half-open deployment without traffic for `idle_probe_after` (a fallback
//! tier's while the first tier serves) is probed at the probe interval, each
//! probe standing in for a trial request: otherwise nothing would ever
//! decide it. Closed so, it is on probation: a probe does not prove that
//! completions work, so its first failed request re-opens it (as a failed
//! trial would have), and its first successful one ends the probation.
//!
//! Every transition bumps the record's epoch, and a probe is tagged with the
//! epoch it began in: a result from before the last transition (a probe out
//! while a trial re-opened the breaker for a short `Retry-After`) is stale,
//! and only ends the probe; a fresh probe decides.

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
    /// Closed by probes standing in for trials (an idle half-open
    /// deployment): the first failed request re-opens it, the first
    /// successful one ends the probation.
    probation: bool,
    window: Window,
    latency: PeakEwma,
    last_success: Option<Instant>,
    not_before: Option<Instant>,
    last_used: Instant,
    last_probe: Instant,
    probing: bool,
    /// Bumped by every transition (open, half-open, close): a probe result
    /// whose evidence began in an earlier epoch is stale and neutral.
    epoch: u64,
    /// The epoch [`Self::start_probe`] started the running probe in.
    probe_epoch: u64,
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
            probation: false,
            window: Window::new(now, cfg.window),
            latency: PeakEwma::new(now),
            last_success: None,
            not_before: None,
            last_used: now,
            last_probe: now,
            probing: false,
            epoch: 0,
            probe_epoch: 0,
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
                self.probation = false;
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
            (BreakerState::Closed, _) if failed && self.probation => Some(self.open(
                now,
                cfg,
                outcome.retry_after,
                "the first request since probes closed it failed".into(),
            )),
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
            // Half-open without traffic (a fallback tier's deployment while
            // the first tier serves): no trial request will come, so probes
            // stand in for them, one per probe interval, or it would stay
            // half-open (and its provider shown down) indefinitely.
            BreakerState::HalfOpen => {
                self.trials_in_flight == 0
                    && now.saturating_duration_since(self.last_used) >= cfg.idle_probe_after
                    && now.saturating_duration_since(self.last_probe) >= cfg.probe_interval
            }
        };
        if due {
            self.probing = true;
            self.last_probe = now;
            self.probe_epoch = self.epoch;
        }
        due
    }

    /// The current epoch: bumped by every transition. A probe's evidence is
    /// tagged with the epoch it began in ([`Self::probe_result_from`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Records the result of the probe [`Self::start_probe`] started.
    pub fn probe_result(
        &mut self,
        now: Instant,
        ok: bool,
        cfg: &HealthConfig,
    ) -> Option<Transition> {
        self.probe_result_from(now, ok, self.probe_epoch, cfg)
    }

    /// Records a probe's result whose request began in epoch `began` (a
    /// probe the prober joined may have begun before [`Self::start_probe`]).
    /// A result from before the last transition is stale, and neutral: it
    /// only ends the probe. Otherwise a probe running across a re-opening
    /// (a half-open idle probe, then a failed trial with a short
    /// `Retry-After`) could half-open the breaker on pre-failure evidence
    /// once the short open period ended.
    pub fn probe_result_from(
        &mut self,
        now: Instant,
        ok: bool,
        began: u64,
        cfg: &HealthConfig,
    ) -> Option<Transition> {
        self.probing = false;
        if began != self.epoch || self.probe_epoch != self.epoch {
            return None;
        }
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
            // Standing in for a trial request (see `start_probe`): as many
            // successes as trials close the breaker, a failure re-opens it.
            // Closed on probation: a probe (`GET /models` by default) does
            // not prove that completions work, so the first failed request
            // re-opens it at once, as a failed trial would have.
            (BreakerState::HalfOpen, true) => {
                self.trial_successes += 1;
                (self.trial_successes >= cfg.half_open_requests).then(|| {
                    let mut t = self.close(now);
                    self.probation = true;
                    t.reason =
                        "half-open probes succeeded (on probation until a request succeeds)".into();
                    t
                })
            }
            (BreakerState::HalfOpen, false) => Some(self.open(
                now,
                cfg,
                None,
                "probe of the idle half-open deployment failed".into(),
            )),
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
        self.epoch = self.epoch.wrapping_add(1);
        self.probation = false;
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
        self.epoch = self.epoch.wrapping_add(1);
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
        self.epoch = self.epoch.wrapping_add(1);
        self.closed_since = now;
        self.consecutive_failures = 0;
        self.probation = false;
        self.window.clear();
        Transition {
            from,
            to: BreakerState::Closed,
            reason: "half-open trials succeeded".into(),
        }
    }
}

#[cfg(test)]
mod tests;
