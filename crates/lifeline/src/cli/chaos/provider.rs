//! The provider-fault scenarios: every way an AI provider fails, each with
//! what clients and operators must see. Windows are fractions of the
//! scenario's duration (`--duration`, 30 s by default).
//!
//! The thresholds are what a correctly configured gateway passes on a
//! loaded two-core machine with room to spare, and what a broken feature
//! does not: without failover a provider outage costs about a third of the
//! requests (the provider's share during 40 % of the run), far below the
//! 97–99 % asked here; without breakers nothing is ever detected; without
//! degraded mode no stale answer is served.

use lifeline_core::config::Priority;
use lifeline_mock::Faults;

use super::scenario::{Expect, Fault, Needs, Scenario, Target, Window};

fn window(start: f64, end: f64, target: Target, fault: Fault) -> Window {
    Window {
        start,
        end,
        target,
        fault,
    }
}

/// The expectations every provider scenario shares: success ratio,
/// critical p99, no truncated answer.
fn base(min_success: f64, critical_p99_ms: u64) -> Vec<Expect> {
    vec![
        Expect::SuccessRatio(min_success),
        Expect::P99 {
            priority: Priority::Critical,
            max_ms: critical_p99_ms,
        },
        Expect::NoTruncated,
    ]
}

fn with(mut v: Vec<Expect>, more: impl IntoIterator<Item = Expect>) -> Vec<Expect> {
    v.extend(more);
    v
}

/// Every provider-fault scenario, in run order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "provider-down",
            description: "The primary provider dies hard (connections reset, port closed) for 40 % of the run, then comes back.",
            windows: vec![window(0.2, 0.6, Target::Primary, Fault::Kill)],
            expect: with(
                base(0.99, 3000),
                [
                    Expect::DetectWithin(3000),
                    Expect::RecoverWithin(12000),
                    Expect::IncidentOpened,
                    Expect::IncidentsResolved,
                ],
            ),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "provider-slow",
            description: "The primary provider answers 1.5 s late for 40 % of the run: traffic moves to the faster deployments.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults { latency_ms: 1500, ..Faults::default() }),
            )],
            expect: with(
                base(0.99, 3000),
                [
                    Expect::DetectWithin(5000),
                    Expect::RecoverWithin(12000),
                ],
            ),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "provider-frozen",
            description: "The primary provider accepts connections and never answers for 40 % of the run.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults { hang: true, ..Faults::default() }),
            )],
            expect: with(
                base(0.98, 6000),
                [
                    Expect::DetectWithin(8000),
                    // Slow on purpose: the deployment's peak-EWMA latency
                    // holds the timed-out attempts, and a tier of two
                    // always picks the other one until it decays (about
                    // 30 s measured on the built-in config).
                    Expect::RecoverWithin(45000),
                    Expect::IncidentOpened,
                    Expect::IncidentsResolved,
                ],
            ),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "rate-limit-storm",
            description: "The primary provider answers every request 429 with Retry-After: 5 for 40 % of the run.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults {
                    rate_limit_rate: 1.0,
                    retry_after_secs: Some(5),
                    ..Faults::default()
                }),
            )],
            expect: with(
                base(0.99, 3000),
                [
                    Expect::DetectWithin(3000),
                    Expect::RecoverWithin(15000),
                ],
            ),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "rate-limit-storm-bare",
            description: "The primary provider answers every request 429 without Retry-After for 40 % of the run.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults { rate_limit_rate: 1.0, ..Faults::default() }),
            )],
            expect: with(
                base(0.99, 3000),
                [
                    Expect::DetectWithin(5000),
                    Expect::RecoverWithin(15000),
                ],
            ),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "provider-flapping",
            description: "The primary provider dies and comes back three times (10 % of the run down, 10 % up).",
            windows: vec![
                window(0.15, 0.25, Target::Primary, Fault::Kill),
                window(0.35, 0.45, Target::Primary, Fault::Kill),
                window(0.55, 0.65, Target::Primary, Fault::Kill),
            ],
            expect: with(
                base(0.98, 3000),
                [Expect::DetectWithin(3000)],
            ),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "streams-cut",
            description: "The primary provider's streams are cut (connection aborted) after 3 chunks for 40 % of the run.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults { cut_after_chunks: Some(3), ..Faults::default() }),
            )],
            expect: base(0.98, 3000),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "streams-stalled",
            description: "The primary provider's streams stop after 3 chunks and stay open, silent, for 40 % of the run.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults { stall_after_chunks: Some(3), ..Faults::default() }),
            )],
            expect: base(0.97, 5000),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "streams-malformed",
            description: "The primary provider's streams carry a malformed chunk (invalid JSON) at chunk 3 for 40 % of the run.",
            windows: vec![window(
                0.2,
                0.6,
                Target::Primary,
                Fault::Mock(Faults { malformed_chunk_at: Some(3), ..Faults::default() }),
            )],
            expect: base(0.98, 3000),
            needs: Needs::Fallback,
        },
        Scenario {
            name: "tier-down",
            description: "Every provider of the primary model's first tier dies for 40 % of the run: the next tier serves.",
            windows: vec![window(0.2, 0.6, Target::FirstTier, Fault::Kill)],
            expect: with(
                base(0.98, 4000),
                [
                    Expect::DetectWithin(3000),
                    Expect::RecoverWithin(15000),
                    Expect::IncidentOpened,
                    Expect::IncidentsResolved,
                ],
            ),
            needs: Needs::SecondTier,
        },
        Scenario {
            name: "all-down",
            description: "Every provider dies for 30 % of the run: degraded mode answers repeated requests stale, the rest get honest 503s, never a fresh-looking success.",
            windows: vec![window(0.3, 0.6, Target::All, Fault::Kill)],
            expect: vec![
                Expect::NoTruncated,
                Expect::OnlyStaleDuringOutage,
                Expect::StaleServed,
                Expect::SuccessRatio(0.6),
                Expect::DetectWithin(4000),
                Expect::RecoverWithin(15000),
                // Not `IncidentsResolved` within the run: through a total
                // outage the fallback tier's breaker re-opens at every
                // failed probe with a doubled cooldown, so after the
                // outage it waits up to `max_cooldown_ms` before a probe
                // may close it (idle half-open deployments are decided by
                // probes: `health/breaker.rs`), and its provider's
                // incident resolves after the scenario's settling time.
                Expect::IncidentOpened,
            ],
            needs: Needs::Nothing,
        },
    ]
}
