//! The gateway-level scenarios: what happens to the gateway itself, its
//! store or its clients rather than to a provider (a surge, an abusive key,
//! a maintenance window, slowloris, silent and never-reading clients,
//! config reloads and a restart
//! under load, the store unavailable, a disaster-recovery drill), each with
//! what its clients must see, and the [`Driver`] that carries their faults
//! out for the runner (extra traffic, reloads, the restart, the window, the
//! outage, the drill) and reports what they measured as expectations of
//! their own.
//!
//! Each expectation names what it would catch if the protection it
//! rehearses were missing (see each scenario's comment).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lifeline_core::config::Priority;
use tokio::time::Instant;

use super::plan::Plan;
use super::report::ExpectationResult;
use super::rig::Rig;
use super::scenario::{Expect, Fault, GatewayFault, Needs, Scenario, Target, Who, Window};
use super::traffic::{Kind, Load, Outcome, Recorder, Source, Traffic};

mod list;
pub use list::scenarios;

/// `silent-clients`' streams never read: more than the steady clients by
/// default, so that if they were never freed the gateway's in-flight count
/// could not fall back to the steady clients' level.
pub const STALLED: u32 = 12;

/// `silent-clients`' `[server] idle_timeout_ms` in the chaos copy (the
/// default, a minute, is longer than a scenario).
pub const SILENT_IDLE: Duration = Duration::from_secs(2);

/// `silent-clients`' write-stall timeout (`[server] stream_idle_timeout_ms`,
/// whose model defaults are resolved already, so only the listener's
/// write-stall timeout changes) in the chaos copy.
pub const SILENT_WRITE_STALL: Duration = Duration::from_secs(3);

/// Longest `silent-clients` waits, from its window's start, for the
/// gateway to cut its clients.
const SILENT_WAIT_MAX: Duration = Duration::from_secs(30);

fn is_silent(sc: &Scenario) -> bool {
    sc.windows
        .iter()
        .any(|w| matches!(w.fault, Fault::Gateway(GatewayFault::Silent { .. })))
}

/// What a scenario changes in the chaos copy of the config: for
/// `silent-clients`, the listener's idle and write-stall timeouts, short
/// enough to be seen within a run.
pub fn tune(sc: &Scenario, config: &mut lifeline_core::Config) {
    if is_silent(sc) {
        config.server.idle_timeout = SILENT_IDLE;
        config.server.defaults.stream_idle_timeout = SILENT_WRITE_STALL;
    }
}

/// What a scenario changes in the simulated providers: for
/// `silent-clients`, they stream as fast as they can (a never-read answer
/// fills the sockets' buffers within a second instead of minutes).
pub fn tune_mock(sc: &Scenario, mock: &mut lifeline_mock::MockConfig) {
    if is_silent(sc) {
        mock.tokens_per_second = 0.0;
    }
}

fn matches(who: Who, o: &Outcome) -> bool {
    match who {
        Who::All => true,
        Who::Priority(p) => usize::from(o.priority) == p.index(),
        Who::Steady => o.source != Source::Flood,
        Who::Answered => o.kind != Kind::Connect,
    }
}

fn result(name: String, required: String, measured: String, pass: bool) -> ExpectationResult {
    ExpectationResult {
        name,
        required,
        measured,
        pass,
    }
}

/// The verdict of a gateway scenario's expectation (`None` for the
/// others, which `measure` judges).
pub fn judge(e: &Expect, outcomes: &[Outcome]) -> Option<ExpectationResult> {
    Some(match *e {
        Expect::SuccessRatioOf { who, min } => {
            let of: Vec<&Outcome> = outcomes.iter().filter(|o| matches(who, o)).collect();
            let ok = of.iter().filter(|o| o.kind.is_success()).count();
            let ratio = ok as f64 / of.len().max(1) as f64;
            result(
                format!("success ratio, {}", who.describe()),
                format!(">= {:.1} %", min * 100.0),
                format!("{:.2} % ({ok} of {})", ratio * 100.0, of.len()),
                !of.is_empty() && ratio >= min,
            )
        }
        Expect::P99Of { who, max_ms } => {
            let mut v: Vec<f64> = outcomes
                .iter()
                .filter(|o| matches(who, o))
                .map(|o| f64::from(o.end_ms.saturating_sub(o.start_ms)))
                .collect();
            let n = v.len();
            let p99 = super::measure::quantile(&mut v, 0.99);
            result(
                format!("p99 latency, {}", who.describe()),
                format!("<= {max_ms} ms"),
                format!("{p99:.0} ms ({n} requests)"),
                n > 0 && p99 <= max_ms as f64,
            )
        }
        Expect::HonestRefusals(who) => {
            let mut dishonest = std::collections::BTreeMap::<&str, usize>::new();
            let mut refused = [0usize; 3];
            for o in outcomes.iter().filter(|o| matches(who, o)) {
                match o.kind {
                    Kind::Ok | Kind::Stale => {}
                    Kind::Http429 | Kind::Http5xx => {
                        refused[usize::from(o.priority).min(2)] += 1;
                    }
                    k => *dishonest.entry(k.as_str()).or_default() += 1,
                }
            }
            let n: usize = dishonest.values().sum();
            let kinds: Vec<String> = dishonest.iter().map(|(k, n)| format!("{n} {k}")).collect();
            result(
                format!("failures other than 429/5xx, {}", who.describe()),
                "0".into(),
                if n == 0 {
                    format!(
                        "0 (refused honestly: {} critical, {} standard, {} batch)",
                        refused[0], refused[1], refused[2]
                    )
                } else {
                    kinds.join(", ")
                },
                n == 0,
            )
        }
        Expect::FloodLimited(min) => {
            let flood: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.source == Source::Flood)
                .collect();
            let limited = flood.iter().filter(|o| o.kind == Kind::Http429).count();
            let ratio = limited as f64 / flood.len().max(1) as f64;
            result(
                "abusive key's requests answered 429".into(),
                format!(">= {:.0} %", min * 100.0),
                format!("{:.1} % ({limited} of {})", ratio * 100.0, flood.len()),
                !flood.is_empty() && ratio >= min,
            )
        }
        _ => return None,
    })
}

/// Carries out the gateway faults of one scenario: the extra traffic of a
/// surge or a flood, the reloads, the restart; and what they measured,
/// as expectations of their own ([`Driver::finish`]).
pub struct Driver {
    rec: Arc<Recorder>,
    start: Instant,
    base: Load,
    extra: Vec<(GatewayFault, Traffic)>,
    stopping: Vec<tokio::task::JoinHandle<()>>,
    reload: Option<(Duration, Instant)>,
    reloads: u32,
    rejected: Vec<String>,
    turn: Arc<AtomicU32>,
    restarts: Vec<Result<super::rig::Restarted, String>>,
    maintenance: Vec<Maintenance>,
    checked: Option<Instant>,
    store: StoreWatch,
    drill: Option<super::store::Drill>,
    slowloris: Option<super::clients::Slowloris>,
    header_timeout: Duration,
    silent: Option<SilentWatch>,
}

/// `silent-clients`: its clients, and the gateway's count of the streams it
/// cut for a write stall, as it grew.
struct SilentWatch {
    silent: super::clients::Silent,
    stalled: super::clients::Stalled,
    began: Instant,
    gw: lifeline_core::Gateway,
    mocks: Vec<lifeline_mock::MockHandle>,
    idle: Duration,
    write_stall: Duration,
    /// `lifeline_listener_refusals_total{reason="write_stall"}` at the start.
    stalls_before: u64,
    /// (since `began`, write-stall cuts since then), when it grew.
    stalls: Vec<(Duration, u64)>,
    /// Requests the simulated providers saw cancelled, at the start.
    cancelled_before: u64,
}

impl SilentWatch {
    fn stall_cuts(&self) -> u64 {
        self.gw
            .metrics()
            .listener_refusal("data", "write_stall")
            .get()
            .saturating_sub(self.stalls_before)
    }

    fn sample(&mut self) {
        let n = self.stall_cuts();
        if n > self.stalls.last().map_or(0, |(_, m)| *m) {
            self.stalls.push((self.began.elapsed(), n));
        }
    }
}

/// A store outage and the status history's progress around it.
#[derive(Default)]
struct StoreWatch {
    outage: Option<super::store::Outage>,
    failed: Option<String>,
    watch: bool,
    /// (when, the latest minute written then).
    seen: Vec<(Instant, Option<i64>)>,
    began: Option<Instant>,
    ended: Option<Instant>,
    sampled: Option<Instant>,
}

/// A maintenance window the driver scheduled, and what the page showed.
struct Maintenance {
    name: Result<String, String>,
    active: bool,
    shown: bool,
}

impl Driver {
    /// A driver whose extra traffic is like `base` (the steady clients'
    /// load) and records into `rec`.
    pub fn new(base: Load, rec: Arc<Recorder>, start: Instant) -> Driver {
        Driver {
            rec,
            start,
            base,
            extra: Vec::new(),
            stopping: Vec::new(),
            reload: None,
            reloads: 0,
            rejected: Vec::new(),
            turn: Arc::new(AtomicU32::new(0)),
            restarts: Vec::new(),
            maintenance: Vec::new(),
            checked: None,
            store: StoreWatch::default(),
            drill: None,
            slowloris: None,
            header_timeout: Duration::ZERO,
            silent: None,
        }
    }

    /// Before the traffic starts: schedules the scenario's maintenance
    /// windows (`d`: its duration), each on its providers.
    pub async fn prepare(&mut self, rig: &Rig, sc: &Scenario, plan: &Plan, d: Duration) {
        self.store.watch = sc
            .windows
            .iter()
            .any(|w| matches!(w.fault, Fault::Gateway(GatewayFault::StoreDown)));
        if sc
            .windows
            .iter()
            .any(|w| matches!(w.fault, Fault::Gateway(GatewayFault::DrDrill)))
        {
            let mut drill = super::store::Drill::default();
            drill.prepare(rig).await;
            self.drill = Some(drill);
        }
        for w in &sc.windows {
            if !matches!(w.fault, Fault::Gateway(GatewayFault::Maintenance)) {
                continue;
            }
            for p in plan.targets(w.target) {
                let name = rig
                    .schedule_maintenance(&p, d.mul_f64(w.start), d.mul_f64(w.end - w.start))
                    .await
                    .map_err(|e| format!("{e:#}"));
                self.maintenance.push(Maintenance {
                    name,
                    active: false,
                    shown: false,
                });
            }
        }
    }

    /// Starts (`on`) or ends a gateway fault.
    pub async fn apply(&mut self, rig: &mut Rig, plan: &Plan, fault: GatewayFault, on: bool) {
        match (fault, on) {
            (GatewayFault::Surge { factor }, true) => {
                let load = Load {
                    concurrency: self.base.concurrency * factor.saturating_sub(1) as usize,
                    source: Source::Surge,
                    ..self.base.clone()
                };
                self.extra
                    .push((fault, Traffic::start(load, self.rec.clone(), self.start)));
            }
            (GatewayFault::Flood { clients, every_ms }, true) => {
                let load = Load {
                    keys: vec![plan.abuser.clone()],
                    concurrency: clients as usize,
                    source: Source::Flood,
                    pace: Duration::from_millis(every_ms),
                    ..self.base.clone()
                };
                self.extra
                    .push((fault, Traffic::start(load, self.rec.clone(), self.start)));
            }
            (GatewayFault::Surge { .. } | GatewayFault::Flood { .. }, false) => {
                let (done, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.extra)
                    .into_iter()
                    .partition(|(f, _)| *f == fault);
                self.extra = kept;
                // Stopped aside: the tick loop goes on meanwhile.
                self.stopping
                    .extend(done.into_iter().map(|(_, t)| tokio::spawn(t.stop())));
            }
            (GatewayFault::Reload { every_ms }, true) => {
                let every = Duration::from_millis(every_ms.max(100));
                self.reload = Some((every, Instant::now()));
            }
            (GatewayFault::Reload { .. }, false) => self.reload = None,
            (GatewayFault::Restart, true) => {
                let r = rig.restart().await.map_err(|e| format!("{e:#}"));
                self.restarts.push(r);
            }
            (GatewayFault::Restart, false) => {}
            (GatewayFault::StoreDown, true) => {
                let path = rig.store_path();
                match tokio::task::spawn_blocking(move || super::store::Outage::begin(&path)).await
                {
                    Ok(Ok(o)) => {
                        self.store.outage = Some(o);
                        self.store.began = Some(Instant::now());
                    }
                    Ok(Err(e)) => self.store.failed = Some(format!("{e:#}")),
                    Err(e) => self.store.failed = Some(e.to_string()),
                }
            }
            (GatewayFault::StoreDown, false) => {
                if let Some(o) = self.store.outage.take() {
                    o.end().await;
                    self.store.ended = Some(Instant::now());
                }
            }
            (GatewayFault::Slowloris { connections }, true) => {
                self.header_timeout = rig.config.server.header_read_timeout;
                self.slowloris =
                    Some(super::clients::Slowloris::start(rig.addr, connections as usize).await);
            }
            // They go on until the gateway cuts them (`finish` waits).
            (GatewayFault::Slowloris { .. }, false) => {}
            (GatewayFault::Silent { silent, stalled }, true) => {
                let stalls_before = rig
                    .gw
                    .metrics()
                    .listener_refusal("data", "write_stall")
                    .get();
                let began = Instant::now();
                let silent = super::clients::Silent::start(rig.addr, silent as usize).await;
                let key = plan.keys.first().map_or("", |k| k.secret.as_str());
                let stalled = super::clients::Stalled::start(
                    rig.addr,
                    stalled as usize,
                    &plan.primary_model,
                    key,
                )
                .await;
                let cancelled_before = cancelled(rig.mocks.values());
                self.silent = Some(SilentWatch {
                    cancelled_before,
                    silent,
                    stalled,
                    began,
                    gw: rig.gw.clone(),
                    mocks: rig.mocks.values().cloned().collect(),
                    idle: rig.config.server.idle_timeout,
                    write_stall: rig.config.server.defaults.stream_idle_timeout,
                    stalls_before,
                    stalls: Vec::new(),
                });
            }
            // Held until the gateway cuts them (`finish` waits).
            (GatewayFault::Silent { .. }, false) => {}
            (GatewayFault::DrDrill, true) => {
                if let Some(d) = &mut self.drill {
                    d.lose(rig).await;
                }
            }
            (GatewayFault::DrDrill, false) => {
                if let Some(d) = &mut self.drill {
                    d.recover(rig).await;
                }
            }
            (GatewayFault::Maintenance, on) => {
                for m in &mut self.maintenance {
                    m.active = on;
                }
            }
        }
    }

    /// Called at every tick: a reload due is done; once a second while a
    /// maintenance window is on, the status page is read.
    pub async fn tick(&mut self, rig: &Rig) {
        if let Some(w) = &mut self.silent {
            w.sample();
        }
        let now = Instant::now();
        if self.maintenance.iter().any(|m| m.active && !m.shown)
            && self
                .checked
                .is_none_or(|t| now >= t + Duration::from_secs(1))
        {
            self.checked = Some(now);
            let page = rig.get("/api/v2/scheduled-maintenances/active.json").await;
            for m in &mut self.maintenance {
                if let (Ok(name), Some(page)) = (&m.name, &page) {
                    m.shown |= m.active && page.contains(name.as_str());
                }
            }
        }
        if self.store.watch
            && self
                .store
                .sampled
                .is_none_or(|t| now >= t + Duration::from_millis(500))
        {
            self.store.sampled = Some(now);
            let last = super::store::last_minute(&rig.store_path()).await;
            self.store.seen.push((now, last));
        }
        let Some((every, due)) = self.reload else {
            return;
        };
        if Instant::now() < due {
            return;
        }
        self.reload = Some((every, due + every));
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut config = rig.config.clone();
        // Weights move between the first tier's deployments: 3:1, 1:3, …
        if let Some(tier) = config.models.first_mut().and_then(|m| m.tiers.first_mut()) {
            for (i, d) in tier.iter_mut().enumerate() {
                d.weight = if (i as u32 + turn).is_multiple_of(2) {
                    3
                } else {
                    1
                };
            }
        }
        match rig.gw.apply(config).await {
            Ok(()) => self.reloads += 1,
            Err(e) => self.rejected.push(e.to_string()),
        }
    }

    /// Stops the extra traffic still running and says what the faults
    /// measured: reloads applied, restarts done (with their drain and
    /// downtime).
    pub async fn finish(mut self) -> Vec<ExpectationResult> {
        for (_, t) in std::mem::take(&mut self.extra) {
            t.stop().await;
        }
        for h in std::mem::take(&mut self.stopping) {
            let _ = h.await;
        }
        let mut out = Vec::new();
        if let Some(s) = self.slowloris.take() {
            // Cut at the header timeout, give or take the machine's load.
            let bound = self.header_timeout + Duration::from_secs(3);
            let (n, cut) = s.finish(Instant::now() + bound).await;
            let in_time = cut.iter().filter(|d| **d <= bound).count();
            let worst = cut.iter().max().copied().unwrap_or_default();
            out.push(result(
                "slowloris connections cut by the gateway".into(),
                format!("all, within {:.0} s", bound.as_secs_f64()),
                format!(
                    "{in_time} of {n} (the last after {:.1} s)",
                    worst.as_secs_f64()
                ),
                n > 0 && in_time == n,
            ));
        }
        if let Some(w) = self.silent.take() {
            out.extend(silent_verdicts(w, self.base.concurrency).await);
        }
        if self.reloads > 0 || !self.rejected.is_empty() {
            out.push(result(
                "config reloads applied".into(),
                "all".into(),
                match self.rejected.first() {
                    None => format!("{} of {}", self.reloads, self.reloads),
                    Some(e) => format!(
                        "{} of {} ({e})",
                        self.reloads,
                        self.reloads as usize + self.rejected.len()
                    ),
                },
                self.rejected.is_empty(),
            ));
        }
        if self.store.watch {
            out.extend(self.store.verdicts());
        }
        if let Some(d) = &self.drill {
            out.extend(d.verdicts());
        }
        for m in &self.maintenance {
            out.push(result(
                "status page shows the maintenance".into(),
                "in active.json during the window".into(),
                match &m.name {
                    Ok(_) if m.shown => "shown".into(),
                    Ok(_) => "never shown".into(),
                    Err(e) => format!("not scheduled: {e}"),
                },
                m.shown,
            ));
        }
        for r in &self.restarts {
            out.push(match r {
                Ok(r) => result(
                    "gateway restarted".into(),
                    "drained, then serving again".into(),
                    format!(
                        "drained in {:.2} s, accepting again after {:.2} s",
                        r.drained.as_secs_f64(),
                        r.down.as_secs_f64()
                    ),
                    true,
                ),
                Err(e) => result(
                    "gateway restarted".into(),
                    "drained, then serving again".into(),
                    e.clone(),
                    false,
                ),
            });
        }
        out
    }
}

fn cancelled<'a>(mocks: impl Iterator<Item = &'a lifeline_mock::MockHandle>) -> u64 {
    mocks.map(|m| m.stats().cancelled).sum()
}

/// `silent-clients`' own checks: every silent connection closed at the idle
/// timeout, every never-read stream cut at the write-stall timeout (from the
/// gateway's refusal counter: the clients cannot see it without reading),
/// and the requests they held released (the gateway's in-flight count back
/// to what the steady clients alone can hold, one request each; the
/// simulated providers saw their upstream requests cancelled, not served to
/// the end).
async fn silent_verdicts(mut w: SilentWatch, steady: usize) -> Vec<ExpectationResult> {
    let (asked, sent) = w.stalled.counts();
    // The answers must first fill the sockets' buffers (megabytes each
    // through the gateway: up to ten seconds on a loaded two-core machine
    // with a debug build), then the stall timeout runs.
    let stall_bound = w.write_stall + Duration::from_secs(25);
    // Waits at most `SILENT_WAIT_MAX` whatever the timeouts (a gateway
    // without the protection would keep the run waiting for ever).
    let deadline = w.began + stall_bound.min(SILENT_WAIT_MAX);
    while w.stall_cuts() < sent as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.sample();
    }
    w.sample();
    let cuts = w.stall_cuts();
    let first_cut = w.stalls.first().map(|(t, _)| *t).unwrap_or_default();
    let last_cut = w.stalls.last().map(|(t, _)| *t).unwrap_or_default();
    // The requests the stalled clients held are released with their
    // connection; a moment for the upstream cancellations to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let in_flight = w.gw.metrics().in_flight().get();
    let upstream_cancelled = cancelled(w.mocks.iter()).saturating_sub(w.cancelled_before);
    w.stalled.close();

    let idle_bound = w.idle + Duration::from_secs(3);
    let (n, cut) = w
        .silent
        .finish(w.began + idle_bound.min(SILENT_WAIT_MAX))
        .await;
    let in_time = cut.iter().filter(|d| **d <= idle_bound).count();
    let worst = cut.iter().max().copied().unwrap_or_default();
    let limit = steady as i64;
    vec![
        result(
            "silent connections closed by the gateway".into(),
            format!("all, within {:.0} s", idle_bound.as_secs_f64()),
            format!(
                "{in_time} of {n} (the last after {:.1} s)",
                worst.as_secs_f64()
            ),
            n > 0 && in_time == n,
        ),
        result(
            "never-read streams cut by the gateway".into(),
            format!("all, within {:.0} s", stall_bound.as_secs_f64()),
            format!(
                "{cuts} of {asked} ({sent} sent; the first after {:.1} s, the last after {:.1} s)",
                first_cut.as_secs_f64(),
                last_cut.as_secs_f64()
            ),
            sent == asked && sent > 0 && cuts >= sent as u64 && last_cut <= stall_bound,
        ),
        result(
            "requests in flight at the gateway after the cuts".into(),
            format!("<= {limit} (the steady clients' own)"),
            in_flight.to_string(),
            in_flight <= limit,
        ),
        result(
            "upstream requests of the cut streams cancelled".into(),
            format!(">= {sent}"),
            format!("{upstream_cancelled} cancelled at the providers"),
            upstream_cancelled >= sent as u64,
        ),
    ]
}

impl StoreWatch {
    /// The outage was real (the history stopped while the store was held)
    /// and the status side caught up after it returned.
    fn verdicts(&self) -> Vec<ExpectationResult> {
        let (Some(began), Some(ended)) = (self.began, self.ended) else {
            return vec![result(
                "store made unavailable".into(),
                "yes".into(),
                self.failed.clone().unwrap_or_else(|| "never".into()),
                false,
            )];
        };
        // Writes already past the lock when it was taken may land: the
        // history is read from two seconds in.
        let at = |t: Instant| {
            self.seen
                .iter()
                .rev()
                .find(|(when, _)| *when <= t)
                .and_then(|(_, m)| *m)
        };
        let held_from = at(began + Duration::from_secs(2));
        let held_to = at(ended);
        let stopped = held_from.is_some() && held_from == held_to;
        let caught_up = self
            .seen
            .iter()
            .find(|(when, m)| *when > ended && *m > held_to)
            .map(|(when, _)| when.saturating_duration_since(ended));
        vec![
            result(
                "status history written while the store was unavailable".into(),
                "none (the outage was real)".into(),
                if stopped {
                    "none".into()
                } else {
                    format!("still advancing ({held_from:?} to {held_to:?})")
                },
                stopped,
            ),
            result(
                "status history caught up after the store returned".into(),
                "<= 15.0 s".into(),
                caught_up.map_or_else(
                    || "not by the end".into(),
                    |d| format!("{:.2} s", d.as_secs_f64()),
                ),
                caught_up.is_some_and(|d| d <= Duration::from_secs(15)),
            ),
        ]
    }
}

#[cfg(test)]
mod tests;
