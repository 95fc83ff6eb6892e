//! The gateway-level scenarios themselves: each one's faults, windows and
//! expectations, in run order.

use super::*;

fn window(start: f64, end: f64, fault: GatewayFault) -> Window {
    Window {
        start,
        end,
        target: Target::Gateway,
        fault: Fault::Gateway(fault),
    }
}

fn on(target: Target, start: f64, end: f64, fault: GatewayFault) -> Window {
    Window {
        target,
        ..window(start, end, fault)
    }
}

/// The surge's load, in steady clients. Twenty, not ten: the clients are
/// closed-loop, so ten times the clients is not ten times the requests,
/// and on a two-core machine a 10x surge of the default 8 clients is
/// absorbed (slower answers, no refusal) without reaching the admission
/// queue whose priorities the scenario rehearses.
pub const SURGE_FACTOR: u32 = 20;

/// Every gateway-level scenario, in run order.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        // Without priority admission a surge is served first come, first
        // served: critical requests wait and are refused like batch ones
        // (critical's success ratio and p99 fail); a gateway that gives
        // way by timing out or cutting answers fails the honest-refusal
        // and truncation checks.
        Scenario {
            name: "traffic-surge",
            description: "Traffic surges to 20x the clients for 40 % of the run, every priority at once: critical is served on time, the rest may be refused honestly (429/503), never cut.",
            windows: vec![window(0.2, 0.6, GatewayFault::Surge { factor: SURGE_FACTOR })],
            expect: vec![
                Expect::SuccessRatioOf {
                    who: Who::Priority(Priority::Critical),
                    min: 0.99,
                },
                Expect::P99Of {
                    who: Who::Priority(Priority::Critical),
                    max_ms: 4000,
                },
                Expect::HonestRefusals(Who::All),
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // Without per-key limits the flood is served (no 429: the
        // limited-ratio check fails) and takes the capacity the other keys
        // need (their success ratio and p99 suffer). The key's rpm allows
        // a minute's worth at once, then one a second: over a 6 s window
        // or longer, at least 60 % of the flood is over it.
        Scenario {
            name: "abusive-key",
            description: "One key (rpm = 60) floods the gateway with up to 100 requests a second for 60 % of the run: its excess is refused with 429, the other keys do not notice.",
            windows: vec![window(
                0.2,
                0.8,
                GatewayFault::Flood {
                    clients: 4,
                    every_ms: 40,
                },
            )],
            expect: vec![
                Expect::FloodLimited(0.6),
                Expect::SuccessRatioOf {
                    who: Who::Steady,
                    min: 0.995,
                },
                Expect::P99Of {
                    who: Who::Steady,
                    max_ms: 3000,
                },
                Expect::HonestRefusals(Who::All),
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // A reload that rebuilt deployments with fresh health, dropped
        // requests in flight or refused connections while it swapped the
        // state would fail a request: every request must succeed. The
        // driver also checks every reload was accepted.
        Scenario {
            name: "config-reload",
            description: "The config is reloaded every second for 60 % of the run, the primary model's weights changed each time: not one request fails.",
            windows: vec![window(0.2, 0.8, GatewayFault::Reload { every_ms: 1000 })],
            expect: vec![
                Expect::SuccessRatio(1.0),
                Expect::P99 {
                    priority: Priority::Critical,
                    max_ms: 3000,
                },
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // Without a graceful drain the requests in flight at the stop are
        // cut (broken connections, truncated streams: the honest-refusal
        // and truncation checks fail); connection refusals while the new
        // process binds are what a retrying SDK reconnects through, so
        // they are counted apart.
        Scenario {
            name: "gateway-restart",
            description: "The gateway restarts under load (graceful drain, then a new one on the same address): requests in flight finish, clients reconnect and succeed.",
            windows: vec![window(0.4, 0.5, GatewayFault::Restart)],
            expect: vec![
                Expect::SuccessRatioOf {
                    who: Who::Answered,
                    min: 0.995,
                },
                Expect::HonestRefusals(Who::Answered),
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // Without the maintenance drain the primary provider keeps its
        // traffic through its window (never detected: its share does not
        // fall); a drain that cut requests in flight, or a page that did
        // not show the window, fails the success ratio or the driver's
        // check of the page.
        Scenario {
            name: "maintenance-window",
            description: "A maintenance window is scheduled on the primary provider for 40 % of the run: its deployments are drained on time, traffic moves, no request fails, the status page shows it.",
            windows: vec![on(Target::Primary, 0.3, 0.7, GatewayFault::Maintenance)],
            expect: vec![
                Expect::SuccessRatio(0.999),
                Expect::P99 {
                    priority: Priority::Critical,
                    max_ms: 3000,
                },
                Expect::NoTruncated,
                Expect::DetectWithin(3000),
                Expect::RecoverWithin(8000),
            ],
            needs: Needs::Fallback,
        },
        // A data plane that waited on the status store (a write or a read
        // per request) would stall behind the held lock for its busy
        // timeout: critical's p99 and the success ratio would fail. The
        // driver checks the outage was real (history stopped) and that the
        // status side caught up once the store returned.
        Scenario {
            name: "store-unavailable",
            description: "The status page's store cannot be written for 40 % of the run: clients do not notice, and the status history catches up when it returns.",
            windows: vec![window(0.2, 0.6, GatewayFault::StoreDown)],
            expect: vec![
                Expect::SuccessRatio(0.999),
                Expect::P99 {
                    priority: Priority::Critical,
                    max_ms: 3000,
                },
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // A data plane that needed the store would fail while it is lost;
        // a backup that missed committed records, or a restore that did not
        // bring them back, fails the drill's count of what survived.
        Scenario {
            name: "disaster-recovery",
            description: "Drill: a backup is taken and the store is lost while serving, then restored from the backup: clients do not notice; the recovery time and what was lost are measured.",
            windows: vec![window(0.3, 0.6, GatewayFault::DrDrill)],
            expect: vec![
                Expect::SuccessRatio(0.999),
                Expect::P99 {
                    priority: Priority::Critical,
                    max_ms: 3000,
                },
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // Without a header timeout the slowloris connections are never cut
        // (the driver's check fails) and, enough of them, take the
        // listener's connection slots from real clients.
        Scenario {
            name: "slow-clients",
            description: "200 slowloris clients send their headers a byte at a time from 20 % of the run: the gateway cuts each at its header timeout, the other clients do not notice.",
            windows: vec![window(0.2, 0.9, GatewayFault::Slowloris { connections: 200 })],
            expect: vec![
                Expect::SuccessRatio(0.999),
                Expect::P99 {
                    priority: Priority::Critical,
                    max_ms: 3000,
                },
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
        // Without an idle timeout the silent connections are never closed;
        // without the write-stall timeout a stream nobody reads holds its
        // connection, its request slot and its upstream request for as long
        // as the answer lasts (minutes): the driver's checks of the cuts and
        // of the in-flight requests afterwards fail. The chaos copy of the
        // config shortens both timeouts for this scenario (`tune`) so they
        // are seen within a run, and the simulated providers stream as
        // fast as they can, so the never-read answers fill the sockets'
        // buffers at once.
        Scenario {
            name: "silent-clients",
            description: "From 20 % of the run, 50 connections send nothing and 12 clients ask for a long stream and never read it: the gateway closes each at its idle or write-stall timeout, frees their requests, the other clients do not notice.",
            windows: vec![window(
                0.2,
                0.9,
                GatewayFault::Silent {
                    silent: 50,
                    stalled: STALLED,
                },
            )],
            expect: vec![
                Expect::SuccessRatio(0.999),
                Expect::P99 {
                    priority: Priority::Critical,
                    max_ms: 3000,
                },
                Expect::NoTruncated,
            ],
            needs: Needs::Nothing,
        },
    ]
}
