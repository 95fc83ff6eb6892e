//! The status engine: from traffic and deployment health to component
//! statuses, SLO budgets, automatic incidents, maintenance on time,
//! notifications and the [`Page`].
//!
//! Pure and deterministic: no I/O, no clock of its own. The binary's driver
//! calls [`Engine::tick`] at least once a minute with the time (unix ms) and
//! what happened since the last call ([`TickInput`]: the per-(family,
//! model) [`Minute`]s that closed, every deployment's state), and gets back
//! what to do ([`TickOutput`]: store writes (incidents, maintenance
//! transitions, the per-component SLI minutes), events for subscribers, the
//! deployments to drain for maintenance).
//! Store writes go through a [`Writer`] whose [`Writer::flush`] the driver
//! runs on a blocking thread, handing its [`FlushOutcome`] back to
//! [`Engine::apply_flush`]; [`Engine::build_page`] builds the page and says
//! whether it changed.
//!
//! # Driving it
//!
//! ```text
//! engine = Engine::new(settings, now)
//! at start-up: engine.load_history(id, days, minutes) per component with
//!   SLI history (which also takes up the status each one showed, if
//!   recent); engine.mark_in_use(family, model, now) per family seen
//! at least once a minute (and right after each minute boundary):
//!   out = engine.tick(TickInput { now_ms, traffic, deployments, providers })
//!   writer.push(out.writes)
//!   on a blocking thread: outcome = writer.flush(&*store, now_ms)
//!   events = out.events + engine.apply_flush(outcome)
//!   drain what is new in out.drain, undrain what left it; deliver events
//!   built = engine.build_page(now_ms); if built.changed { publish it }
//! ```
//!
//! Each closed minute is evaluated once, in order, at its end: the
//! component's traffic is added to its history, read against thresholds
//! and burn-rate alerts (`evaluate`, `slo`), passed through hysteresis, and
//! then the incident automation runs (`incidents`). Maintenance moves on
//! every tick (`maintenance`). Each of those modules documents its rules and
//! thresholds.
//!
//! - [`settings`]: configuration and the default thresholds.
//! - [`components`]: the layout (configured, or one group per API family).
//! - [`history`]: minutes and day sums in memory; bars and charts.
//! - [`evidence`]: deployments, cause classes, where traffic went.
//! - `text`: the words of automatic incidents.
//! - [`writer`]: queued store writes and the view read back.

pub mod components;
mod evaluate;
pub mod evidence;
pub mod history;
mod incidents;
mod io;
mod maintenance;
pub mod settings;
mod slo;
mod text;
pub mod writer;

mod page_build;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use lifeline_store::sli::{SliDay, SliMinute};

pub use components::slug;
pub use evidence::{Breaker, Cause, DeploymentState};
pub use io::{BuiltPage, Event, TickInput, TickOutput, TrafficMinute};
pub use settings::{
    BurnRule, ComponentConfig, Family, IncidentSettings, Settings, Severity, SloOverrides,
    SloSettings, Thresholds,
};
pub use writer::{FlushOutcome, SliRow, StoreView, Target, Write, Writer};

use crate::eta::PastIncident;
use crate::page::{BurnAlert, ComponentStatus, Page, ProviderReport};
use crate::sli::Minute;
use components::{layout, Layout};
use evaluate::{Hysteresis, Reading};
use evidence::{Breaker as B, Tracked};
use history::{History, BAR_DAYS};
use incidents::{Automation, ComponentNow, Step};
use maintenance::{Maintenances, Transition};
use settings::{minute_floor, ms, MINUTE_MS};

/// Most closed minutes evaluated one by one in a tick; older ones (after a
/// long pause) are only recorded.
pub const MAX_CATCH_UP_MINUTES: i64 = 60;

/// One component's state.
#[derive(Debug, Clone)]
pub(crate) struct ComponentState {
    pub history: History,
    pub hysteresis: Hysteresis,
    /// Shown status (maintenance laid over the traffic status).
    pub shown: ComponentStatus,
    /// When `shown` last changed.
    pub shown_since: i64,
    pub created_at: i64,
    pub alerts: Vec<BurnAlert>,
    pub live: bool,
    pub page_streak: u32,
    pub reading: Reading,
    /// The traffic status rests on evidence: taken up from the store after
    /// a restart, or read from traffic or probes since the start. Until
    /// then an operational status is only the starting value, and the
    /// automation does not take it for a recovery.
    pub warm: bool,
}

impl Default for ComponentState {
    fn default() -> Self {
        ComponentState {
            history: History::default(),
            hysteresis: Hysteresis::default(),
            shown: ComponentStatus::Operational,
            shown_since: 0,
            created_at: 0,
            alerts: Vec::new(),
            live: false,
            page_streak: 0,
            reading: Reading::default(),
            warm: false,
        }
    }
}

/// The status engine (see the module docs).
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    seen: BTreeSet<(Family, String)>,
    providers_seen: BTreeSet<String>,
    layout: Layout,
    states: HashMap<String, ComponentState>,
    pending: BTreeMap<i64, Vec<TrafficMinute>>,
    deployments: BTreeMap<String, Tracked>,
    last_evaluated: Option<i64>,
    automation: Automation,
    maintenance: Maintenances,
    view: Option<StoreView>,
    /// When the engine started (unix ms).
    started_at: i64,
    behind_since: Option<i64>,
    upstream_history: Vec<PastIncident>,
    /// Writes made outside a tick (component registrations), handed out
    /// with the next one.
    queued: Vec<Write>,
    providers: Vec<ProviderReport>,
    /// The last page built, with both timestamps zero, and its
    /// `updated_at`.
    last_page: Option<Page>,
    last_updated_at: i64,
    /// Notification baseline: updates seen per published incident, drafts,
    /// the highest id seen; `None` before the first view.
    seen_incidents: Option<(HashMap<i64, usize>, HashSet<i64>, i64)>,
}

impl Engine {
    /// An engine with `settings`, started at `now_ms`.
    pub fn new(settings: Settings, now_ms: i64) -> Engine {
        let mut engine = Engine {
            settings,
            seen: BTreeSet::new(),
            providers_seen: BTreeSet::new(),
            layout: Layout::default(),
            states: HashMap::new(),
            pending: BTreeMap::new(),
            deployments: BTreeMap::new(),
            // Minutes closed before the start are not evaluated: there is
            // no traffic for them (the previous process, if any, evaluated
            // and stored them).
            last_evaluated: Some(minute_floor(now_ms) - MINUTE_MS),
            automation: Automation::default(),
            maintenance: Maintenances::default(),
            view: None,
            started_at: now_ms,
            behind_since: None,
            upstream_history: Vec::new(),
            queued: Vec::new(),
            providers: Vec::new(),
            last_page: None,
            last_updated_at: now_ms,
            seen_incidents: None,
        };
        engine.relayout(now_ms);
        engine
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Notes that `family` has been used for `model` (from the store's
    /// history at start-up), so the default layout shows it.
    pub fn mark_in_use(&mut self, family: Family, model: &str, now_ms: i64) {
        self.seen.insert((family, model.to_string()));
        self.relayout(now_ms);
    }

    /// Takes a component's history from the store: day rollups (which
    /// stand for what was stored of their day; minutes recorded later add
    /// to them) and recent minutes (at least the longest burn-rate window,
    /// 3 days by default).
    ///
    /// With the default layout, a family's component with history (such
    /// as `embeddings-<model>`) puts that family in use again.
    ///
    /// The component shows again the status of its last stored minute when
    /// that minute ended at most `no_data_after` before the engine's start
    /// (a restart during an outage keeps the outage on the page, without a
    /// status-change event and without a new hysteresis streak); older, it
    /// starts operational, and only traffic or probes make that a
    /// recovery for the automation.
    pub fn load_history(&mut self, component: &str, days: &[SliDay], minutes: &[SliMinute]) {
        if self.settings.components.is_none() && !(days.is_empty() && minutes.is_empty()) {
            let settings = &self.settings;
            let keys: Vec<(Family, String)> = Family::ALL
                .into_iter()
                .flat_map(|f| {
                    components::model_ids(settings, f)
                        .into_iter()
                        .filter(|(_, id)| id == component)
                        .map(move |(m, _)| (f, m))
                })
                .collect();
            if !keys.is_empty() {
                self.seen.extend(keys);
                let at = days
                    .iter()
                    .map(|d| d.day)
                    .chain(minutes.iter().map(|m| m.minute.at))
                    .min()
                    .unwrap_or(0);
                self.relayout(at);
            }
        }
        let state = self.states.entry(component.to_string()).or_default();
        for d in days {
            state.history.load_day(d);
        }
        for m in minutes {
            state.history.load_minute(&m.minute);
            if let Some(status) = history::parse_status(&m.status) {
                state.history.note_status(m.minute.at, status);
            }
        }
        let no_data_after = ms(self.settings.thresholds.no_data_after);
        restore(state, minutes, self.started_at, no_data_after);
    }

    /// Sets the upstream providers' published incident history for
    /// restoration estimates ([`crate::eta::Source::Upstream`]), as
    /// [`crate::upstream::past_incidents`] reads it from the store.
    pub fn set_upstream_history(&mut self, history: Vec<PastIncident>) {
        self.upstream_history = history;
    }

    /// The component ids of the page, in order.
    pub fn component_ids(&self) -> Vec<String> {
        self.layout
            .components
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    fn relayout(&mut self, now: i64) {
        let next = layout(&self.settings, &self.seen, &self.providers_seen);
        if next == self.layout {
            return;
        }
        for def in &next.components {
            if !self.layout.components.iter().any(|c| c.id == def.id) {
                self.queued.push(Write::TouchComponent {
                    id: def.id.clone(),
                    name: def.name.clone(),
                    at_ms: now,
                });
            }
            let state = self.states.entry(def.id.clone()).or_default();
            if state.created_at == 0 {
                state.created_at = now;
            }
            if state.shown_since == 0 {
                state.shown_since = now;
            }
        }
        self.layout = next;
    }

    /// Takes what happened since the previous tick; evaluates every minute
    /// that closed, moves maintenance windows, and says what to do.
    pub fn tick(&mut self, input: TickInput) -> TickOutput {
        let now = input.now_ms;
        let mut out = TickOutput::default();
        out.writes.append(&mut self.queued);
        for tm in &input.traffic {
            if tm.minute.requests > 0 {
                self.seen.insert((tm.family, tm.model.clone()));
            }
        }
        let present: HashSet<&str> = input.deployments.iter().map(|d| d.id.as_str()).collect();
        self.deployments
            .retain(|id, _| present.contains(id.as_str()));
        for d in &input.deployments {
            self.providers_seen.insert(d.provider.clone());
            self.deployments.entry(d.id.clone()).or_default().report(d);
        }
        if let Some(reports) = input.providers {
            self.providers = reports;
        }
        self.relayout(now);
        out.writes.append(&mut self.queued);

        let last_closed = minute_floor(now) - MINUTE_MS;
        let mut start = self.last_evaluated.map_or(last_closed, |m| m + MINUTE_MS);
        start = start.max(last_closed - (MAX_CATCH_UP_MINUTES - 1) * MINUTE_MS);
        for tm in input.traffic {
            if tm.minute.at >= start {
                self.pending.entry(tm.minute.at).or_default().push(tm);
            } else {
                self.record_late(&tm, &mut out);
            }
        }
        let stale: Vec<i64> = self.pending.range(..start).map(|(at, _)| *at).collect();
        for at in stale {
            for tm in self.pending.remove(&at).unwrap_or_default() {
                self.record_late(&tm, &mut out);
            }
        }
        let mut m = start;
        while m <= last_closed {
            self.evaluate_minute(m, &mut out);
            m += MINUTE_MS;
        }
        if self.last_evaluated.is_none_or(|l| l < last_closed) {
            self.last_evaluated = Some(last_closed);
        }

        let (writes, transitions) = self.maintenance.step(now);
        out.writes.extend(writes);
        for t in transitions {
            out.events.push(match t {
                Transition::Started(w) => Event::MaintenanceStarted(w),
                Transition::Completed(w) => Event::MaintenanceCompleted(w),
            });
        }
        let under = self.maintenance.components(now);
        for def in &self.layout.components {
            if let Some(state) = self.states.get_mut(&def.id) {
                refresh_shown(&def.id, state, under.contains(&def.id), now, &mut out);
            }
        }
        out.drain = self
            .maintenance
            .drains(now, &self.layout, &self.deployments);
        let kept = self.settings.minutes_kept();
        let days = BAR_DAYS.max(ms(self.settings.slo.period) / settings::DAY_MS) + 1;
        for state in self.states.values_mut() {
            state.history.prune(now, kept, days);
        }
        out
    }

    /// Records a minute that arrived after its evaluation, and keeps the
    /// components' whole minutes again (the store replaces them).
    fn record_late(&mut self, tm: &TrafficMinute, out: &mut TickOutput) {
        let mut rows = Vec::new();
        for def in &self.layout.components {
            if def.covers(tm.family, &tm.model) {
                if let Some(state) = self.states.get_mut(&def.id) {
                    state.history.add_minute(&tm.minute);
                    rows.push(SliRow {
                        component: def.id.clone(),
                        minute: state.history.minute(tm.minute.at),
                        status: state.shown,
                    });
                }
            }
        }
        if !rows.is_empty() {
            out.writes.push(Write::Minutes(rows));
        }
    }

    fn evaluate_minute(&mut self, m: i64, out: &mut TickOutput) {
        let end = m + MINUTE_MS;
        let th = self.settings.thresholds;
        let window_ms = i64::from(th.window_minutes.max(1)) * MINUTE_MS;
        let traffic = self.pending.remove(&m).unwrap_or_default();
        let closed: BTreeMap<String, evidence::Counts> = self
            .deployments
            .iter_mut()
            .map(|(id, d)| (id.clone(), d.close_minute()))
            .collect();
        let under = self.maintenance.components(end);
        let drains = self
            .maintenance
            .drains(end, &self.layout, &self.deployments);
        let mut rows = Vec::new();
        for def in &self.layout.components {
            let Some(state) = self.states.get_mut(&def.id) else {
                continue;
            };
            let mut sum = Minute {
                at: m,
                ..Minute::default()
            };
            let mut breaker_floor = ComponentStatus::Operational;
            if let Some(provider) = &def.provider {
                let mine: Vec<&Tracked> = self
                    .deployments
                    .values()
                    .filter(|d| &d.state.provider == provider && !d.state.drained)
                    .collect();
                for (id, c) in &closed {
                    if self
                        .deployments
                        .get(id)
                        .is_some_and(|d| &d.state.provider == provider)
                    {
                        let attempts = c.fault_attempts();
                        sum.requests += attempts;
                        sum.good += c.ok.min(attempts);
                        sum.upstream_attempts += attempts;
                        sum.upstream_ok += c.ok.min(attempts);
                    }
                }
                let open = mine.iter().filter(|d| d.state.breaker == B::Open).count();
                let half = mine.iter().any(|d| d.state.breaker == B::HalfOpen);
                let demoted = self.settings.early_warning && mine.iter().any(|d| d.state.demoted);
                breaker_floor = if !mine.is_empty() && open == mine.len() {
                    ComponentStatus::MajorOutage
                } else if open > 0 {
                    ComponentStatus::PartialOutage
                } else if half || demoted {
                    ComponentStatus::DegradedPerformance
                } else {
                    ComponentStatus::Operational
                };
            } else {
                for tm in traffic.iter().filter(|t| def.covers(t.family, &t.model)) {
                    sum.add(&tm.minute);
                }
            }
            state.history.add_minute(&sum);
            let reading = evaluate::read(&state.history, m, &def.slo, &th);
            state.alerts = if def.provider.is_some() {
                Vec::new()
            } else {
                slo::alerts(
                    &state.history,
                    end,
                    &def.slo,
                    &self.settings.burn_rules,
                    th.burn_min_requests,
                )
            };
            let recent = state.history.window(end, window_ms);
            let floor = evaluate::worse(
                slo::floor(&state.alerts, &self.settings.burn_rules, &recent, &def.slo),
                breaker_floor,
            );
            let raw = match reading.state {
                Some(s) => Some(evaluate::worse(s, floor)),
                None if breaker_floor != ComponentStatus::Operational => Some(breaker_floor),
                None => None,
            };
            let instant = reading.volume >= th.min_volume
                && reading
                    .error_ratio
                    .is_some_and(|e| e >= th.instant_major_error_ratio);
            state.hysteresis.step(m, raw, instant, &th);
            state.warm |= raw.is_some();
            state.live = reading
                .state
                .is_some_and(|s| s != ComponentStatus::Operational)
                || slo::paging_now(&state.alerts, &reading.window, &def.slo)
                || breaker_floor != ComponentStatus::Operational;
            state.page_streak = if slo::pages(&state.alerts) {
                state.page_streak + 1
            } else {
                0
            };
            state.reading = reading;
            refresh_shown(&def.id, state, under.contains(&def.id), end, out);
            let shown = state.shown;
            state.history.note_status(m, shown);
            let empty = sum.requests == 0
                && sum.probes_ok + sum.probes_failed == 0
                && sum.upstream_attempts == 0;
            if !empty || shown != ComponentStatus::Operational {
                rows.push(SliRow {
                    component: def.id.clone(),
                    minute: sum,
                    status: shown,
                });
            }
        }
        if !rows.is_empty() {
            out.writes.push(Write::Minutes(rows));
        }

        let now: Vec<ComponentNow<'_>> = self
            .layout
            .components
            .iter()
            .filter_map(|def| {
                let st = self.states.get(&def.id)?;
                let len = st
                    .hysteresis
                    .since
                    .map_or(window_ms, |since| (end - since).clamp(MINUTE_MS, window_ms));
                Some(ComponentNow {
                    def,
                    status: st.hysteresis.status,
                    since: st.hysteresis.since,
                    live: st.live,
                    settled: st.warm && !st.hysteresis.worsening(),
                    page_streak: st.page_streak,
                    under_maintenance: under.contains(&def.id),
                    slow_only: st.reading.slow_only,
                    window: st.history.window(end, len),
                    window_minutes: u32::try_from(len / MINUTE_MS).unwrap_or(1),
                })
            })
            .collect();
        let step = Step {
            at: end,
            layout: &self.layout,
            components: &now,
            deployments: &self.deployments,
            maintenance_drains: &drains,
            settings: &self.settings.incidents,
            name_deployments: self.settings.show_providers,
            worsen_minutes: th.worsen_minutes,
        };
        out.writes.extend(self.automation.step(&step));
    }

    /// Takes a flush's outcome: incident ids, the store's view, whether the
    /// history is behind. Returns the events for incidents that appeared
    /// or changed in the store (operators' included; drafts left out).
    pub fn apply_flush(&mut self, outcome: FlushOutcome) -> Vec<Event> {
        self.behind_since = outcome.behind_since;
        self.automation.learn(&outcome.created, &outcome.refused);
        let Some(view) = outcome.view else {
            return Vec::new();
        };
        for known in &view.components {
            if let Some(state) = self.states.get_mut(&known.id) {
                state.created_at = state.created_at.min(known.created_at);
            }
        }
        self.automation.sync(&view.recent);
        self.maintenance.replace(view.maintenances.clone());
        let events = self.incident_events(&view);
        self.view = Some(view);
        events
    }

    fn incident_events(&mut self, view: &StoreView) -> Vec<Event> {
        let drafts: HashSet<i64> = view
            .recent
            .iter()
            .filter(|i| i.draft)
            .map(|i| i.id)
            .collect();
        let counts: HashMap<i64, usize> = view
            .incidents
            .iter()
            .map(|i| (i.incident.id, i.incident_updates.len()))
            .collect();
        let max_id = view.recent.iter().map(|i| i.id).max().unwrap_or(0);
        let mut events = Vec::new();
        if let Some((seen, was_draft, seen_max)) = &self.seen_incidents {
            for inc in &view.incidents {
                let id = inc.incident.id;
                match seen.get(&id) {
                    None if id > *seen_max || was_draft.contains(&id) => {
                        events.push(Event::IncidentCreated(inc.clone()));
                    }
                    Some(n) => {
                        for update in inc.incident_updates.iter().skip(*n) {
                            let incident = inc.clone();
                            let update = update.clone();
                            events.push(if update.status.is_open() {
                                Event::IncidentUpdated { incident, update }
                            } else {
                                Event::IncidentResolved { incident, update }
                            });
                        }
                    }
                    None => {}
                }
            }
        }
        let prev_max = self.seen_incidents.as_ref().map_or(0, |s| s.2);
        self.seen_incidents = Some((counts, drafts, max_id.max(prev_max)));
        events
    }
}

/// Takes up the status a component showed before a restart, from the
/// stored minutes (each holds the status shown that minute): when the last
/// one ended at most `no_data_after` before `start`, the component shows
/// that status again (no event, no new hysteresis streak), its
/// non-operational spell dating from the first minute of the run of
/// non-operational minutes before it. A window that was under maintenance
/// leaves the traffic status operational beneath it. A component whose
/// last stored status was operational, however old, is warm as well: an
/// operational status is what it showed last.
fn restore(state: &mut ComponentState, minutes: &[SliMinute], start: i64, no_data_after: i64) {
    let mut sorted: Vec<(i64, ComponentStatus)> = minutes
        .iter()
        .filter_map(|m| history::parse_status(&m.status).map(|s| (m.minute.at, s)))
        .collect();
    sorted.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let Some(&(last_at, shown)) = sorted.first() else {
        return;
    };
    if start - (last_at + MINUTE_MS) > no_data_after {
        state.warm |= shown == ComponentStatus::Operational;
        return;
    }
    // The start of a run of consecutive minutes, back from the last one.
    let run_start = |same: &dyn Fn(ComponentStatus) -> bool| {
        let mut first = last_at;
        for &(at, s) in &sorted {
            if at != first && at != first - MINUTE_MS || !same(s) {
                break;
            }
            first = at;
        }
        first
    };
    let traffic = match shown {
        ComponentStatus::UnderMaintenance => ComponentStatus::Operational,
        s => s,
    };
    let spell =
        run_start(&|s| s != ComponentStatus::Operational && s != ComponentStatus::UnderMaintenance);
    state.hysteresis = Hysteresis::restored(traffic, spell);
    state.shown = shown;
    state.shown_since = run_start(&|s| s == shown);
    state.warm = true;
}

/// Lays maintenance over the traffic status; an event when it changes.
fn refresh_shown(
    id: &str,
    state: &mut ComponentState,
    under_maintenance: bool,
    at: i64,
    out: &mut TickOutput,
) {
    let shown = if under_maintenance {
        ComponentStatus::UnderMaintenance
    } else {
        state.hysteresis.status
    };
    if shown != state.shown {
        out.events.push(Event::ComponentStatusChanged {
            component: id.to_string(),
            from: state.shown,
            to: shown,
            at_ms: at,
        });
        state.shown = shown;
        state.shown_since = at;
    }
}
