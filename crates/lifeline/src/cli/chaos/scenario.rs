//! What a scenario is: a name, a description, a fault schedule relative to
//! the scenario's duration, the traffic it runs under, and the expectations
//! its verdict is made of.
//!
//! The vocabulary is deliberately small and data-only, so a scenario is a
//! value ([`Scenario`]) that the runner interprets: [`Fault`] says what is
//! done to a [`Target`] during a [`Window`], [`Expect`] what clients and
//! operators must have seen. Scenarios of other kinds (gateway-level ones:
//! surges, reloads, restarts) add variants to [`Fault`] and handle them in
//! the runner's `apply`.

use lifeline_core::config::Priority;
use lifeline_mock::Faults;

/// One failure scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name on the command line (`--scenario NAME`) and in the report.
    pub name: &'static str,
    /// One sentence: what happens.
    pub description: &'static str,
    /// The faults, each in its own window.
    pub windows: Vec<Window>,
    /// What must hold for the scenario to pass.
    pub expect: Vec<Expect>,
    /// Why the scenario does not apply to a config (e.g. a tier outage
    /// needs a model with two tiers); `None`: it applies. Decided when the
    /// run is planned.
    pub needs: Needs,
}

/// What a scenario needs of the config to make sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing.
    Nothing,
    /// The primary model has a second tier (for a tier outage).
    SecondTier,
    /// The primary model's first tier has two providers or more, or a
    /// second tier (for the loss of one provider to be survivable).
    Fallback,
}

/// A fault applied to a target from `start` to `end`, both fractions of the
/// scenario's duration.
#[derive(Clone, Debug)]
pub struct Window {
    /// When the fault starts (fraction of the duration, 0 to 1).
    pub start: f64,
    /// When it ends (fraction of the duration, 0 to 1, after `start`).
    pub end: f64,
    /// Who suffers it.
    pub target: Target,
    /// What happens.
    pub fault: Fault,
}

/// The providers a fault is applied to, resolved against the config when
/// the run is planned (`plan::Plan::targets`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The provider of the primary model's first deployment in its first
    /// tier (the heaviest weight): the one most traffic goes to.
    Primary,
    /// Every provider of the primary model's first tier.
    FirstTier,
    /// Every provider.
    All,
    /// The gateway itself (gateway-level faults: no provider is touched).
    Gateway,
}

impl Target {
    /// Its name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary provider",
            Self::FirstTier => "every provider of tier 1",
            Self::All => "every provider",
            Self::Gateway => "the gateway",
        }
    }
}

/// What is done to a target's simulated providers.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The process dies: the listener closes and every connection is reset;
    /// revived at the window's end.
    Kill,
    /// The mock's runtime faults (errors, 429s, latency, hangs, stream
    /// faults), cleared at the window's end.
    Mock(Faults),
    /// Gateway-level faults ([`super::gateway`]): done to the gateway or
    /// its clients, not to the providers.
    Gateway(GatewayFault),
}

/// What a gateway-level scenario does during its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayFault {
    /// Extra clients, `factor - 1` times as many as the steady ones, with
    /// the same keys and mix (a traffic surge to `factor` times the load).
    Surge {
        /// The load during the window, as a multiple of the steady one.
        factor: u32,
    },
    /// An abusive client: `clients` workers on one key (limited to
    /// `plan::ABUSER_RPM`), each sending a request every `every_ms`.
    Flood {
        /// Its workers.
        clients: u32,
        /// Each worker's pace.
        every_ms: u64,
    },
    /// The running config applied again every `every_ms`, the primary
    /// model's first-tier weights changed each time (config reloads under
    /// load).
    Reload {
        /// Time between two reloads.
        every_ms: u64,
    },
    /// At the window's start the gateway is stopped gracefully (no new
    /// connections, requests in flight finish) and started again on the
    /// same address (a restart under load).
    Restart,
    /// A maintenance window on the target providers' components of the
    /// status page, scheduled through the status side's store as the admin
    /// API does when the scenario starts, from the window's start to its
    /// end: the status side drains their deployments on time.
    Maintenance,
    /// The status side's store unavailable: another connection holds its
    /// write lock for the window (`store::Outage`).
    StoreDown,
    /// A disaster-recovery drill (`store::Drill`): at the window's start a
    /// backup is taken and the store is lost; at its end it is restored
    /// from the backup and the status side starts on it again.
    DrDrill,
    /// `connections` slowloris clients (`clients::Slowloris`) open at the
    /// window's start, sending their headers a byte at a time.
    Slowloris {
        /// How many.
        connections: u32,
    },
    /// At the window's start, `silent` connections that never send a byte
    /// (`clients::Silent`), and `stalled` clients that ask for a long
    /// streamed answer and never read it (`clients::Stalled`).
    Silent {
        /// Connections that send nothing.
        silent: u32,
        /// Streams never read.
        stalled: u32,
    },
}

impl GatewayFault {
    /// A short description for the report.
    pub fn describe(&self) -> String {
        match *self {
            Self::Surge { factor } => format!("traffic at {factor}x (extra clients, every priority)"),
            Self::Flood { clients, every_ms } => format!(
                "one key floods: {clients} clients, a request every {every_ms} ms each ({} per second)",
                u64::from(clients) * 1000 / every_ms.max(1)
            ),
            Self::Reload { every_ms } => {
                format!("config reloaded every {every_ms} ms, weights changed")
            }
            Self::Restart => "graceful stop, then started again on the same address".into(),
            Self::Maintenance => "scheduled maintenance window (status page)".into(),
            Self::Slowloris { connections } => format!(
                "{connections} slowloris connections (headers a byte every 500 ms, never finished)"
            ),
            Self::Silent { silent, stalled } => format!(
                "{silent} connections that send nothing, {stalled} streams of {} words never read",
                super::clients::STALLED_WORDS
            ),
            Self::DrDrill => "store backed up, then lost; restored from the backup at the end".into(),
            Self::StoreDown => "the status store unavailable (its write lock held elsewhere)".into(),
        }
    }
}

impl Fault {
    /// A short description for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Kill => "killed (connections reset, port closed)".into(),
            Self::Gateway(g) => g.describe(),
            Self::Mock(f) => {
                let mut parts = Vec::new();
                if f.hang {
                    parts.push("accepts and never answers".to_string());
                }
                if f.latency_ms > 0 {
                    parts.push(format!("+{} ms before answering", f.latency_ms));
                }
                if f.rate_limit_rate > 0.0 {
                    parts.push(format!(
                        "429 to {:.0} % of requests{}",
                        f.rate_limit_rate * 100.0,
                        f.retry_after_secs.map_or_else(
                            || " (no Retry-After)".to_string(),
                            |s| format!(" (Retry-After: {s})")
                        )
                    ));
                }
                if f.error_rate > 0.0 {
                    parts.push(format!(
                        "{} to {:.0} % of requests",
                        f.effective_error_status(),
                        f.error_rate * 100.0
                    ));
                }
                if let Some(n) = f.cut_after_chunks {
                    parts.push(format!("streams cut after {n} chunks"));
                }
                if let Some(n) = f.stall_after_chunks {
                    parts.push(format!("streams stall after {n} chunks"));
                }
                if let Some(n) = f.malformed_chunk_at {
                    parts.push(format!("stream chunk {n} malformed"));
                }
                if f.maintenance {
                    parts.push("503 maintenance".to_string());
                }
                if parts.is_empty() {
                    "no fault".into()
                } else {
                    parts.join(", ")
                }
            }
        }
    }
}

/// One expectation of a scenario.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Successful answers (stale ones included) / requests, over the whole
    /// scenario, at least this.
    SuccessRatio(f64),
    /// The p99 latency of the priority's requests at most this many ms.
    P99 {
        /// Whose requests.
        priority: Priority,
        /// The bound.
        max_ms: u64,
    },
    /// No truncated or wrong answer presented as a success (a stream that
    /// ended without its terminal event, or an answer with words missing,
    /// under status 200). Every scenario has it.
    NoTruncated,
    /// While every provider is down (from a second after the window
    /// starts), every success is a stale answer marked
    /// `x-lifeline-cache: stale`: never a fresh-looking success.
    OnlyStaleDuringOutage,
    /// At least one stale answer was served (degraded mode works).
    StaleServed,
    /// Every window's fault noticed within this many ms of its start: the
    /// breaker of a target deployment opened, or the targets' share of
    /// traffic fell (`measure` has the exact rule).
    DetectWithin(u64),
    /// Every window's end followed within this many ms by traffic back on
    /// the targets, their breakers closed.
    RecoverWithin(u64),
    /// The status page opened an incident after the fault started.
    IncidentOpened,
    /// The status page resolved every incident it opened, by the end of
    /// the scenario (which waits for it, up to `runner::SETTLE_MAX`).
    IncidentsResolved,
    /// Successes / requests of some of the requests at least `min`.
    SuccessRatioOf {
        /// Whose requests.
        who: Who,
        /// The bound.
        min: f64,
    },
    /// The p99 latency of some of the requests at most `max_ms`.
    P99Of {
        /// Whose requests.
        who: Who,
        /// The bound.
        max_ms: u64,
    },
    /// Every failure of these requests is an honest refusal: a 429 or a
    /// 5xx answered at once, never a timeout, a broken connection, an
    /// error inside a stream or another status.
    HonestRefusals(Who),
    /// At least this fraction of the abusive key's requests answered 429.
    FloodLimited(f64),
}

/// Which requests a gateway scenario's expectation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Every request.
    All,
    /// The requests of one priority (steady and surge clients).
    Priority(Priority),
    /// The steady clients' requests (everyone but the abusive key).
    Steady,
    /// The requests the gateway answered: connection refusals (a client
    /// with a retrying SDK connects again) are counted apart.
    Answered,
}

impl Who {
    /// Its name in the report.
    pub fn describe(self) -> String {
        match self {
            Self::All => "all requests".into(),
            Self::Priority(p) => p.as_str().to_string(),
            Self::Steady => "the other keys".into(),
            Self::Answered => "requests answered (connection refusals apart)".into(),
        }
    }
}
