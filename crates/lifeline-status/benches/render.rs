//! Cost of the status page's renderers: `Rendered::build` for a realistic
//! page, and `Rendered::serve` for `/api/v2/summary.json` and `/status`.
//!
//! `cargo bench -p lifeline-status --bench render` (a plain timing loop,
//! no framework: each case runs for about a second after a warm-up and
//! prints the mean time per call).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
// A benchmark measures wall-clock time; tokio's clock is for the server.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use http::Method;
use lifeline_status::eta::{Basis, Eta, Pool, Source};
use lifeline_status::page::{
    Component, ComponentStatus, DayBar, EtaView, Group, IncidentView, LatencyPoint, Page, SloView,
};
use lifeline_status::render::Rendered;
use lifeline_store::{
    Impact, Incident, IncidentStatus, IncidentUpdate, IncidentWithUpdates, MaintenanceStatus,
    ScheduledMaintenance,
};

const NOW: i64 = 1_787_479_500_000;
const DAY: i64 = 86_400_000;

/// 4 groups of 3 components (90 daily bars, 288 latency points, SLOs
/// each), 50 incidents of 4 updates, 10 maintenances.
fn page() -> Page {
    let mut groups = Vec::new();
    let mut components = Vec::new();
    for g in 0..4 {
        let ids: Vec<String> = (0..3).map(|c| format!("g{g}c{c}")).collect();
        for id in &ids {
            components.push(Component {
                id: id.clone(),
                name: format!("Model {id}"),
                description: Some("POST /v1/chat/completions".into()),
                group_id: Some(format!("g{g}")),
                status: ComponentStatus::Operational,
                no_recent_data: false,
                created_at: NOW - 200 * DAY,
                updated_at: NOW - DAY,
                slo: Some(SloView {
                    period: Duration::from_secs(30 * 86_400),
                    availability_target: 0.999,
                    availability: Some(0.9995),
                    availability_budget_left: 0.5,
                    latency_target: Some(0.99),
                    latency_threshold: Some(Duration::from_secs(2)),
                    latency_budget_left: Some(0.8),
                    alerts: vec![],
                }),
                uptime: (0..90)
                    .map(|d| DayBar {
                        day: NOW - (89 - d) * DAY,
                        effective: Some(0.9995),
                        upstream: Some(0.99),
                        requests: 100_000,
                        incidents: if d % 9 == 0 { vec![d] } else { vec![] },
                        worst: ComponentStatus::Operational,
                    })
                    .collect(),
                latency: (0..288)
                    .map(|i| LatencyPoint {
                        at: NOW - DAY + i * 300_000,
                        p50_ms: Some(300.0 + (i % 17) as f64),
                        p99_ms: Some(900.0 + (i % 31) as f64),
                        ttft_p50_ms: Some(200.0),
                    })
                    .collect(),
                effective_24h: Some(0.9997),
                upstream_24h: Some(0.98),
                upstream_down_minutes_24h: 12,
            });
        }
        groups.push(Group {
            id: format!("g{g}"),
            name: format!("Group {g}"),
            components: ids,
        });
    }
    let incidents = (0..50)
        .map(|i| {
            let status = if i == 0 {
                IncidentStatus::Investigating
            } else {
                IncidentStatus::Resolved
            };
            let start = NOW - i * 2 * DAY;
            IncidentView {
                incident: IncidentWithUpdates {
                    incident: Incident {
                        id: 100 - i,
                        name: format!("Elevated errors on Model g0c{}", i % 3),
                        status,
                        impact: Impact::Minor,
                        created_at: start,
                        updated_at: start + 3_600_000,
                        resolved_at: (i > 0).then_some(start + 3_600_000),
                        components: vec![format!("g0c{}", i % 3)],
                        automatic: true,
                        draft: false,
                        cause: Some("provider_errors".into()),
                        expected_resolved_at: None,
                    },
                    incident_updates: (0..4)
                        .map(|u| IncidentUpdate {
                            id: (100 - i) * 10 + u,
                            incident_id: 100 - i,
                            status: IncidentStatus::Investigating,
                            body: "Error ratio **4.2 %** on `gpt-4o` via provider *a*; traffic moved to provider b. See [the runbook](https://example.com/runbook).".into(),
                            created_at: start + u * 900_000,
                        })
                        .collect(),
                },
                eta: (i == 0).then_some(EtaView {
                    eta: Eta::Estimate {
                        median: Duration::from_secs(14 * 60),
                        p90: Some(Duration::from_secs(55 * 60)),
                        basis: Basis {
                            pool: Pool::ComponentAndCause,
                            source: Source::Local,
                            n: 23,
                        },
                    },
                    elapsed: Duration::from_secs(20 * 60),
                }),
            }
        })
        .collect();
    let maintenances = (0..10)
        .map(|m| ScheduledMaintenance {
            id: m,
            name: format!("Maintenance {m}"),
            status: MaintenanceStatus::Completed,
            scheduled_for: NOW - m * DAY,
            scheduled_until: NOW - m * DAY + 1_800_000,
            components: vec!["g1c0".into()],
            body: "Database failover drill.".into(),
            created_at: NOW - 20 * DAY,
            updated_at: NOW - m * DAY,
        })
        .collect();
    Page {
        id: "bench".into(),
        name: "Bench AI status".into(),
        url: "https://status.example.com".into(),
        updated_at: NOW,
        generated_at: NOW,
        groups,
        components,
        incidents,
        maintenances,
        providers: vec![],
        history_behind_since: None,
    }
}

/// Runs `f` for about a second after a short warm-up; prints and returns
/// the mean time per call.
fn time(name: &str, mut f: impl FnMut()) -> Duration {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        f();
    }
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..16 {
            f();
        }
        calls += 16;
    }
    let per_call = start.elapsed() / calls as u32;
    println!(
        "{name:<40} {:>12.3} µs/call  ({calls} calls)",
        per_call.as_secs_f64() * 1e6
    );
    per_call
}

fn main() {
    let page = page();
    let rendered = Rendered::build(&page).unwrap();
    let status_len = rendered
        .serve(&Method::GET, "/status", None, None)
        .unwrap()
        .body()
        .len();
    let summary_len = rendered
        .serve(&Method::GET, "/api/v2/summary.json", None, None)
        .unwrap()
        .body()
        .len();
    println!(
        "page: {} components, {} incidents, {} maintenances; /status {} KiB, summary.json {} KiB",
        page.components.len(),
        page.incidents.len(),
        page.maintenances.len(),
        status_len / 1024,
        summary_len / 1024
    );
    time("Rendered::build", || {
        black_box(Rendered::build(black_box(&page)).unwrap());
    });
    time("serve GET /api/v2/summary.json", || {
        black_box(rendered.serve(&Method::GET, black_box("/api/v2/summary.json"), None, None));
    });
    time("serve GET /status (Accept-Language de)", || {
        black_box(rendered.serve(
            &Method::GET,
            black_box("/status"),
            None,
            Some("de-DE,de;q=0.9,en;q=0.8"),
        ));
    });
    time("serve GET /status/incidents/100?lang=zh", || {
        black_box(rendered.serve(
            &Method::GET,
            black_box("/status/incidents/100"),
            Some("lang=zh"),
            None,
        ));
    });
}
