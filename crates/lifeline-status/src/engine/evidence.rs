//! What the gateway's deployments say about a problem: which ones fail, why
//! (the cause class) and where the traffic went.
//!
//! The binary reports every deployment at each tick ([`DeploymentState`]),
//! with the attempts it made since the previous tick. The engine keeps the
//! last [`EVIDENCE_MINUTES`] minutes of those counts per deployment.
//!
//! **Cause classes** from the gateway's failure labels:
//!
//! | labels | cause |
//! |---|---|
//! | `rate_limited` | `rate_limited` |
//! | `timeout` | `timeouts` |
//! | `misconfigured` (401/403), `bad_url`, `redirect` | `misconfiguration` |
//! | `connect`, `reset`, `status_error`, `bad_body`, `stream_failed`, anything else | `provider_errors` |
//! | `client_error`, `context_length`, `content_policy` | none: the client's request, not the service |
//!
//! An incident's cause is `slowness` when its components are degraded by
//! latency alone; otherwise the class with the most failures among the
//! deployments serving them; with no failures counted, `maintenance` when
//! some of those deployments are drained for a maintenance window, and
//! `provider_errors` else.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::components::ComponentDef;

/// Minutes of deployment counts kept as evidence.
pub const EVIDENCE_MINUTES: usize = 5;
/// Fewest attempts in the evidence window for a failure ratio to name a
/// deployment as failing (an open breaker names it regardless).
pub const MIN_EVIDENCE_ATTEMPTS: u64 = 3;
/// Share of failed attempts at which a deployment counts as failing.
pub const FAILING_RATIO: f64 = 0.5;

/// A deployment's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breaker {
    /// Taking traffic.
    #[default]
    Closed,
    /// Shut after failures.
    Open,
    /// Letting trial requests through.
    HalfOpen,
}

impl Breaker {
    /// Parses the gateway's label: "closed", "open", "half_open".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "closed" => Some(Self::Closed),
            "open" => Some(Self::Open),
            "half_open" => Some(Self::HalfOpen),
            _ => None,
        }
    }

    /// The gateway's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// One deployment at a tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentState {
    /// Deployment id (`provider/model`).
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// The public models it serves.
    pub models: Vec<String>,
    /// Its breaker.
    pub breaker: Breaker,
    /// Drained (by an operator or for maintenance).
    pub drained: bool,
    /// Demoted by the gateway's early warning (drifting out of its normal
    /// band, before it fails).
    pub demoted: bool,
    /// Attempts since the previous tick.
    pub attempts: u64,
    /// Of those, the successful ones.
    pub ok: u64,
    /// Failed attempts since the previous tick by the gateway's failure
    /// label (`timeout`, `rate_limited`, ...).
    pub failures: Vec<(String, u64)>,
}

/// Why an incident happened, in the classes restoration estimates pool by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The provider answers with errors or breaks connections.
    ProviderErrors,
    /// The provider rate-limits.
    RateLimited,
    /// Requests time out or hang.
    Timeouts,
    /// Answers are slow.
    Slowness,
    /// Credentials or URLs are wrong (401/403, redirects).
    Misconfiguration,
    /// Deployments are drained for maintenance.
    Maintenance,
}

impl Cause {
    /// The stored spelling ("provider_errors", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProviderErrors => "provider_errors",
            Self::RateLimited => "rate_limited",
            Self::Timeouts => "timeouts",
            Self::Slowness => "slowness",
            Self::Misconfiguration => "misconfiguration",
            Self::Maintenance => "maintenance",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::ProviderErrors,
            Self::RateLimited,
            Self::Timeouts,
            Self::Slowness,
            Self::Misconfiguration,
            Self::Maintenance,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The class of a gateway failure label; `None` for the client's own
    /// errors.
    pub fn of_failure(label: &str) -> Option<Self> {
        match label {
            "client_error" | "context_length" | "content_policy" => None,
            "rate_limited" => Some(Self::RateLimited),
            "timeout" => Some(Self::Timeouts),
            "misconfigured" | "bad_url" | "redirect" => Some(Self::Misconfiguration),
            _ => Some(Self::ProviderErrors),
        }
    }
}

/// Attempt counts over a stretch of time.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    pub attempts: u64,
    pub ok: u64,
    pub failures: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, attempts: u64, ok: u64, failures: &[(String, u64)]) {
        self.attempts += attempts;
        self.ok += ok;
        for (label, n) in failures {
            *self.failures.entry(label.clone()).or_default() += n;
        }
    }

    /// Failures that are the deployment's fault, by class.
    fn by_cause(&self) -> BTreeMap<Cause, u64> {
        let mut out = BTreeMap::new();
        for (label, n) in &self.failures {
            if let Some(c) = Cause::of_failure(label) {
                *out.entry(c).or_default() += n;
            }
        }
        out
    }

    /// Attempts that count for health: all but the client's own errors.
    pub fn fault_attempts(&self) -> u64 {
        let client: u64 = self
            .failures
            .iter()
            .filter(|(l, _)| Cause::of_failure(l).is_none())
            .map(|(_, n)| n)
            .sum();
        self.attempts.saturating_sub(client)
    }
}

/// One deployment as the engine remembers it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracked {
    pub state: DeploymentState,
    /// Counts since the last closed minute.
    pub pending: Counts,
    /// Counts of the last closed minutes, oldest first.
    pub recent: VecDeque<Counts>,
}

impl Tracked {
    /// Takes a tick's report.
    pub fn report(&mut self, state: &DeploymentState) {
        self.pending.add(state.attempts, state.ok, &state.failures);
        self.state = DeploymentState {
            attempts: 0,
            ok: 0,
            failures: Vec::new(),
            ..state.clone()
        };
    }

    /// Closes a minute: returns its counts and keeps them as evidence.
    pub fn close_minute(&mut self) -> Counts {
        let counts = std::mem::take(&mut self.pending);
        self.recent.push_back(counts.clone());
        while self.recent.len() > EVIDENCE_MINUTES {
            self.recent.pop_front();
        }
        counts
    }

    fn window(&self) -> Counts {
        let mut sum = Counts::default();
        for c in &self.recent {
            sum.attempts += c.attempts;
            sum.ok += c.ok;
            for (l, n) in &c.failures {
                *sum.failures.entry(l.clone()).or_default() += n;
            }
        }
        sum
    }
}

/// A deployment named as failing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failing {
    pub id: String,
    pub breaker: Breaker,
    pub attempts: u64,
    pub failed: u64,
    /// Its failure labels, most frequent first.
    pub kinds: Vec<(String, u64)>,
}

/// The evidence about some components.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Evidence {
    /// Deployments serving the components (drained ones included).
    pub serving: usize,
    pub failing: Vec<Failing>,
    /// Deployments serving the same components that answer.
    pub moved_to: Vec<String>,
    pub by_cause: BTreeMap<Cause, u64>,
    /// Serving deployments drained for maintenance.
    pub in_maintenance: Vec<String>,
}

impl Evidence {
    /// Gathers the evidence for `components` from the deployments;
    /// `maintenance_drains` are those drained for maintenance now.
    pub fn gather<'a>(
        components: impl IntoIterator<Item = &'a ComponentDef> + Clone,
        deployments: &BTreeMap<String, Tracked>,
        maintenance_drains: &BTreeSet<String>,
    ) -> Evidence {
        let mut out = Evidence::default();
        for (id, d) in deployments {
            let serves = components
                .clone()
                .into_iter()
                .any(|c| c.served_by(&d.state.provider, &d.state.models));
            if !serves {
                continue;
            }
            out.serving += 1;
            if maintenance_drains.contains(id) {
                out.in_maintenance.push(id.clone());
                continue;
            }
            let w = d.window();
            let classes = w.by_cause();
            let failed: u64 = classes.values().sum();
            let attempts = w.fault_attempts();
            let by_ratio = attempts >= MIN_EVIDENCE_ATTEMPTS
                && failed as f64 >= FAILING_RATIO * attempts as f64;
            if d.state.breaker != Breaker::Closed || by_ratio {
                let mut kinds: Vec<(String, u64)> = w
                    .failures
                    .iter()
                    .filter(|(l, n)| Cause::of_failure(l).is_some() && **n > 0)
                    .map(|(l, n)| (l.clone(), *n))
                    .collect();
                kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                for (c, n) in classes {
                    *out.by_cause.entry(c).or_default() += n;
                }
                out.failing.push(Failing {
                    id: id.clone(),
                    breaker: d.state.breaker,
                    attempts,
                    failed,
                    kinds,
                });
            } else if !d.state.drained && w.ok > 0 {
                out.moved_to.push(id.clone());
            }
        }
        out
    }

    /// The cause class (see the module docs).
    pub fn cause(&self, slow_only: bool) -> Cause {
        if slow_only {
            return Cause::Slowness;
        }
        let top = self
            .by_cause
            .iter()
            .filter(|(_, n)| **n > 0)
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
        match top {
            Some((c, _)) => *c,
            None if !self.in_maintenance.is_empty() => Cause::Maintenance,
            None => Cause::ProviderErrors,
        }
    }
}
