//! Runs one scenario: a fresh [`Rig`], the traffic, the fault schedule,
//! a tick every 250 ms (breaker states, requests each simulated provider
//! received) and every second (the status page's incidents, the progress
//! line), then a settling phase, up to [`SETTLE_MAX`], while the traffic has
//! not come back to a faulted provider or the status page still has an
//! incident open (when the scenario expects those), and the measurements.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::against::Remote;
use super::gateway::Driver;
use super::measure;
use super::plan::Plan;
use super::report::{IncidentSeen, ScenarioResult, WindowReport};
use super::rig::Rig;
use super::scenario::{Expect, Fault, Scenario};
use super::traffic::{Load, Recorder, Traffic};

/// How often breakers and provider counters are sampled.
pub const TICK: Duration = Duration::from_millis(250);
/// Longest the run continues past the scenario's duration for the status
/// page to resolve what it opened.
pub const SETTLE_MAX: Duration = Duration::from_secs(40);

/// One 250 ms sample.
#[derive(Clone, Debug)]
pub struct Tick {
    /// Ms since the scenario started.
    pub t_ms: u32,
    /// (deployment id, provider, breaker state).
    pub breakers: Vec<(String, String, &'static str)>,
    /// Requests each provider's simulated server has received so far.
    pub received: BTreeMap<String, u64>,
}

/// Settings of a run shared by its scenarios.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Length of each scenario's fault schedule.
    pub duration: Duration,
    /// Concurrent clients.
    pub concurrency: usize,
}

/// Where a scenario runs: a fresh rig of its own, or a gateway the run
/// does not control (`--against`, [`Remote`]).
enum World {
    Local(Box<Rig>),
    Remote(Remote),
}

impl World {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Self::Local(r) => r.addr,
            Self::Remote(r) => r.addr,
        }
    }

    async fn apply(&self, fault: &Fault, providers: &[String], on: bool) {
        match self {
            Self::Local(r) => r.apply(fault, providers, on).await,
            Self::Remote(r) => r.apply(fault, providers, on).await,
        }
    }

    /// Breakers are seen only in a rig of the run's own.
    fn breakers(&self) -> Vec<(String, String, &'static str)> {
        match self {
            Self::Local(r) => r.breakers(),
            Self::Remote(_) => Vec::new(),
        }
    }

    async fn received(&self) -> BTreeMap<String, u64> {
        match self {
            Self::Local(r) => r.received(),
            Self::Remote(r) => r.received().await,
        }
    }

    async fn incidents(&self) -> Option<Vec<super::rig::IncidentRow>> {
        match self {
            Self::Local(r) => r.incidents().await,
            Self::Remote(_) => None,
        }
    }

    async fn stop(self) {
        match self {
            Self::Local(r) => r.stop().await,
            Self::Remote(r) => r.clear().await,
        }
    }
}

/// Runs `sc` on a fresh rig (or against `remote`) and measures it.
pub async fn run_scenario(
    plan: &Plan,
    sc: &Scenario,
    settings: &RunSettings,
    remote: Option<&Remote>,
) -> anyhow::Result<ScenarioResult> {
    let mut world = match remote {
        Some(r) => World::Remote(r.clone()),
        None => World::Local(Box::new(Rig::start(plan, sc).await?)),
    };
    let d = settings.duration;
    let windows: Vec<WindowReport> = sc
        .windows
        .iter()
        .map(|w| WindowReport {
            start_s: w.start * d.as_secs_f64(),
            end_s: w.end * d.as_secs_f64(),
            target: w.target.as_str().to_string(),
            providers: plan.targets(w.target),
            fault: w.fault.describe(),
            detected_after_s: None,
            recovered_after_s: None,
        })
        .collect();
    // The schedule: (at, window index, on).
    let mut schedule: Vec<(Duration, usize, bool)> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        schedule.push((Duration::from_secs_f64(w.start_s), i, true));
        schedule.push((Duration::from_secs_f64(w.end_s), i, false));
    }
    schedule.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut schedule = schedule.into_iter().peekable();

    let rec = Arc::new(Recorder::default());
    let start = Instant::now();
    let load = Load {
        addr: world.addr(),
        keys: plan.keys.clone(),
        models: plan.models.clone(),
        concurrency: settings.concurrency,
        client_timeout: Duration::from_secs(30),
        source: super::traffic::Source::Steady,
        pace: Duration::ZERO,
    };
    let mut driver = Driver::new(load.clone(), rec.clone(), start);
    if let World::Local(rig) = &world {
        driver.prepare(rig, sc, plan, d).await;
    }
    let traffic = Traffic::start(load, rec.clone(), start);
    let wants_resolved = sc
        .expect
        .iter()
        .any(|e| matches!(e, Expect::IncidentsResolved));
    let wants_recovery = sc
        .expect
        .iter()
        .any(|e| matches!(e, Expect::RecoverWithin(_)));
    let first_start_ms = windows
        .iter()
        .map(|w| (w.start_s * 1000.0) as u32)
        .min()
        .unwrap_or(0);
    let mut ticks = Vec::new();
    let mut incidents: BTreeMap<i64, IncidentSeen> = BTreeMap::new();
    let tty = std::io::stdout().is_terminal();
    let mut next = start + TICK;
    let mut n = 0u64;
    loop {
        tokio::time::sleep_until(next).await;
        next += TICK;
        n += 1;
        let elapsed = start.elapsed();
        while let Some((at, i, on)) = schedule.peek().copied() {
            if at > elapsed {
                break;
            }
            schedule.next();
            let w = &sc.windows[i];
            match (&w.fault, &mut world) {
                (Fault::Gateway(g), World::Local(rig)) => driver.apply(rig, plan, *g, on).await,
                (f, world) => world.apply(f, &windows[i].providers, on).await,
            }
        }
        if let World::Local(rig) = &world {
            driver.tick(rig).await;
        }
        ticks.push(Tick {
            t_ms: elapsed.as_millis().min(u128::from(u32::MAX)) as u32,
            breakers: world.breakers(),
            received: world.received().await,
        });
        if !n.is_multiple_of(4) {
            continue;
        }
        let t = elapsed.as_secs_f64();
        if let Some(rows) = world.incidents().await {
            for r in rows {
                let seen = incidents.entry(r.id).or_insert_with(|| IncidentSeen {
                    id: r.id,
                    name: r.name.clone(),
                    opened_s: t,
                    resolved_s: None,
                });
                if r.resolved && seen.resolved_s.is_none() {
                    seen.resolved_s = Some(t);
                }
            }
        }
        let open = incidents
            .values()
            .filter(|i| i.resolved_s.is_none())
            .count();
        progress(sc.name, &rec, elapsed, d, open, tty);
        if elapsed < d {
            continue;
        }
        let recovered = || {
            windows
                .iter()
                .all(|w| measure::timings(w, &ticks, first_start_ms).1.is_some())
        };
        let waiting = (wants_resolved && open > 0) || (wants_recovery && !recovered());
        if !waiting || elapsed >= d + SETTLE_MAX {
            break;
        }
    }
    // Faults still on (a window to the end) are lifted before stopping.
    for (_, i, on) in schedule {
        if !on {
            match (&sc.windows[i].fault, &mut world) {
                (Fault::Gateway(g), World::Local(rig)) => driver.apply(rig, plan, *g, false).await,
                (f, world) => world.apply(f, &windows[i].providers, false).await,
            }
        }
    }
    let ran = start.elapsed();
    let notes = driver.finish().await;
    traffic.stop().await;
    if tty {
        println!();
    }
    let outcomes = rec.outcomes();
    let examples = rec.examples();
    world.stop().await;
    let incidents: Vec<IncidentSeen> = incidents.into_values().collect();
    let mut result = measure::evaluate(sc, &windows, &outcomes, &ticks, incidents, examples, ran);
    // What the gateway faults measured themselves (reloads, restarts).
    if notes.iter().any(|e| !e.pass) {
        result.verdict = "fail".into();
    }
    result.expectations.extend(notes);
    Ok(result)
}

fn progress(name: &str, rec: &Recorder, elapsed: Duration, d: Duration, open: usize, tty: bool) {
    let total = rec.total.load(Ordering::Relaxed);
    let ok = rec.ok.load(Ordering::Relaxed);
    let pct = if total == 0 {
        100.0
    } else {
        ok as f64 * 100.0 / total as f64
    };
    let phase = if elapsed > d { " settling" } else { "" };
    let line = format!(
        "  {name:<22} {:>4.0}/{} s{phase}  {total:>6} requests  ok {pct:>6.2}%  incidents open {open}",
        elapsed.as_secs_f64(),
        d.as_secs()
    );
    let mut out = std::io::stdout().lock();
    if tty {
        let _ = write!(out, "\r{line:<100}");
        let _ = out.flush();
    } else if elapsed.as_secs().is_multiple_of(5) {
        let _ = writeln!(out, "{line}");
    }
}
