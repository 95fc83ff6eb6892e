//! From what was recorded (every request's [`Outcome`], the 250 ms
//! [`Tick`]s, the incidents seen) to the per-second samples, the windows'
//! detection and recovery times, and each expectation's verdict.
//!
//! Detection and recovery, per window, from the ticks:
//!
//! - **detected** at the first tick from the window's start where every
//!   target provider has a deployment whose breaker is open or half-open,
//!   or where the targets' share of the requests all simulated providers
//!   received (over the last second) fell below a third of their share
//!   before the first fault (traffic moved off them);
//! - **recovered** at the first tick from its end where no target
//!   deployment's breaker is open, the deployments of the target providers
//!   that carried traffic before the first fault are closed, and the
//!   targets' share is back above a sixth of what it was (a deployment that
//!   carried no traffic before, such as a fallback tier's, may stay
//!   half-open: no trial request reaches it while the first tier serves).

use std::collections::BTreeMap;
use std::time::Duration;

use lifeline_core::config::Priority;

use super::report::{ExpectationResult, IncidentSeen, Sample, ScenarioResult, WindowReport};
use super::runner::Tick;
use super::scenario::{Expect, Scenario};
use super::traffic::{Kind, Outcome};

/// Builds the scenario's result.
pub fn evaluate(
    sc: &Scenario,
    windows: &[WindowReport],
    outcomes: &[Outcome],
    ticks: &[Tick],
    incidents: Vec<IncidentSeen>,
    examples: BTreeMap<Kind, String>,
    ran: Duration,
) -> ScenarioResult {
    let mut windows = windows.to_vec();
    let first_start_ms = windows
        .iter()
        .map(|w| (w.start_s * 1000.0) as u32)
        .min()
        .unwrap_or(0);
    for w in &mut windows {
        let (d, r) = timings(w, ticks, first_start_ms);
        w.detected_after_s = d;
        w.recovered_after_s = r;
    }
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for o in outcomes {
        *totals.entry(o.kind.as_str().to_string()).or_default() += 1;
    }
    let expectations: Vec<ExpectationResult> = sc
        .expect
        .iter()
        .map(|e| judge(e, outcomes, &windows, &incidents))
        .collect();
    let pass = expectations.iter().all(|e| e.pass);
    ScenarioResult {
        name: sc.name.to_string(),
        description: sc.description.to_string(),
        verdict: if pass { "pass" } else { "fail" }.to_string(),
        skipped_because: None,
        ran_s: ran.as_secs_f64(),
        samples: samples(outcomes, ticks, &incidents),
        windows,
        expectations,
        totals,
        examples: examples
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect(),
        incidents,
    }
}

fn latency_ms(o: &Outcome) -> f64 {
    f64::from(o.end_ms.saturating_sub(o.start_ms))
}

/// The `p` quantile (nearest rank) of `v`, sorted in place; 0 when empty.
pub fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn judge(
    e: &Expect,
    outcomes: &[Outcome],
    windows: &[WindowReport],
    incidents: &[IncidentSeen],
) -> ExpectationResult {
    let r = |name: String, required: String, measured: String, pass: bool| ExpectationResult {
        name,
        required,
        measured,
        pass,
    };
    match e {
        Expect::SuccessRatioOf { .. }
        | Expect::P99Of { .. }
        | Expect::HonestRefusals(_)
        | Expect::FloodLimited(_) => super::gateway::judge(e, outcomes)
            .unwrap_or_else(|| r(format!("{e:?}"), String::new(), String::new(), false)),
        Expect::SuccessRatio(min) => {
            let ok = outcomes.iter().filter(|o| o.kind.is_success()).count();
            let ratio = if outcomes.is_empty() {
                0.0
            } else {
                ok as f64 / outcomes.len() as f64
            };
            r(
                "success ratio".into(),
                format!(">= {:.1} %", min * 100.0),
                format!("{:.2} % ({ok} of {})", ratio * 100.0, outcomes.len()),
                !outcomes.is_empty() && ratio >= *min,
            )
        }
        Expect::P99 { priority, max_ms } => {
            let mut v: Vec<f64> = outcomes
                .iter()
                .filter(|o| usize::from(o.priority) == priority.index())
                .map(latency_ms)
                .collect();
            let n = v.len();
            let p99 = quantile(&mut v, 0.99);
            r(
                format!("p99 latency, {}", priority.as_str()),
                format!("<= {max_ms} ms"),
                format!("{p99:.0} ms ({n} requests)"),
                n > 0 && p99 <= *max_ms as f64,
            )
        }
        Expect::NoTruncated => {
            let n = outcomes
                .iter()
                .filter(|o| o.kind == Kind::Truncated)
                .count();
            r(
                "truncated answers shown as success".into(),
                "0".into(),
                n.to_string(),
                n == 0,
            )
        }
        Expect::OnlyStaleDuringOutage => {
            let mut inside = 0usize;
            let mut fresh = 0usize;
            for w in windows
                .iter()
                .filter(|w| w.target == super::scenario::Target::All.as_str())
            {
                let from = (w.start_s * 1000.0) as u32 + 1000;
                let to = (w.end_s * 1000.0) as u32;
                for o in outcomes
                    .iter()
                    .filter(|o| o.start_ms >= from && o.end_ms <= to)
                {
                    inside += 1;
                    if o.kind == Kind::Ok {
                        fresh += 1;
                    }
                }
            }
            r(
                "fresh-looking successes, all down".into(),
                "0 (stale or honest errors)".into(),
                format!("{fresh} of {inside} requests"),
                fresh == 0 && inside > 0,
            )
        }
        Expect::StaleServed => {
            let n = outcomes.iter().filter(|o| o.kind == Kind::Stale).count();
            r(
                "stale answers served".into(),
                ">= 1".into(),
                n.to_string(),
                n >= 1,
            )
        }
        Expect::DetectWithin(max_ms) => {
            let worst = worst(windows.iter().map(|w| w.detected_after_s));
            r(
                "time to detect".into(),
                format!("<= {:.1} s", *max_ms as f64 / 1000.0),
                describe_worst(worst, "never detected"),
                matches!(worst, Some(Some(s)) if s * 1000.0 <= *max_ms as f64),
            )
        }
        Expect::RecoverWithin(max_ms) => {
            let worst = worst(windows.iter().map(|w| w.recovered_after_s));
            r(
                "time to recover".into(),
                format!("<= {:.1} s", *max_ms as f64 / 1000.0),
                describe_worst(worst, "not recovered by the end"),
                matches!(worst, Some(Some(s)) if s * 1000.0 <= *max_ms as f64),
            )
        }
        Expect::IncidentOpened => {
            let first = windows
                .iter()
                .map(|w| w.start_s)
                .fold(f64::INFINITY, f64::min);
            let opened = incidents.iter().filter(|i| i.opened_s >= first).count();
            r(
                "status page incident opened".into(),
                ">= 1".into(),
                opened.to_string(),
                opened > 0,
            )
        }
        Expect::IncidentsResolved => {
            let open = incidents.iter().filter(|i| i.resolved_s.is_none()).count();
            r(
                "status page incidents resolved".into(),
                "all".into(),
                format!("{} of {}", incidents.len() - open, incidents.len()),
                open == 0,
            )
        }
    }
}

/// `None`: no window; `Some(None)`: a window never got there; else the
/// largest time.
fn worst(times: impl Iterator<Item = Option<f64>>) -> Option<Option<f64>> {
    let mut acc: Option<Option<f64>> = None;
    for t in times {
        acc = Some(match (acc, t) {
            (Some(None), _) | (_, None) => None,
            (Some(Some(a)), Some(b)) => Some(a.max(b)),
            (None, Some(b)) => Some(b),
        });
    }
    acc
}

fn describe_worst(w: Option<Option<f64>>, never: &str) -> String {
    match w {
        None => "no fault window".into(),
        Some(None) => never.into(),
        Some(Some(s)) => format!("{s:.2} s"),
    }
}

/// Requests received by `providers` and by all over the second before `i`.
fn received_last_second(ticks: &[Tick], i: usize, providers: &[String]) -> (u64, u64) {
    let back = i.saturating_sub(4);
    let (now, then) = (&ticks[i].received, &ticks[back].received);
    let delta = |p: &String| {
        now.get(p)
            .copied()
            .unwrap_or(0)
            .saturating_sub(then.get(p).copied().unwrap_or(0))
    };
    let targets = providers.iter().map(delta).sum();
    let all = now.keys().map(delta).sum();
    (targets, all)
}

/// Seconds from a window's start to its detection, and from its end to
/// its recovery (module docs), each if it happened.
pub fn timings(
    w: &WindowReport,
    ticks: &[Tick],
    first_start_ms: u32,
) -> (Option<f64>, Option<f64>) {
    let start_ms = (w.start_s * 1000.0) as u32;
    let end_ms = (w.end_s * 1000.0) as u32;
    // Before the first fault, from the end of the first second.
    let before: Vec<usize> = (0..ticks.len())
        .filter(|&i| ticks[i].t_ms >= 1000 && ticks[i].t_ms <= first_start_ms)
        .collect();
    let got = |p: &String| match (before.first(), before.last()) {
        (Some(&a), Some(&b)) => ticks[b]
            .received
            .get(p)
            .copied()
            .unwrap_or(0)
            .saturating_sub(ticks[a].received.get(p).copied().unwrap_or(0)),
        _ => 0,
    };
    let tgt: u64 = w.providers.iter().map(got).sum();
    let all: u64 = ticks.last().map_or(0, |t| t.received.keys().map(got).sum());
    let share_before = if all == 0 {
        0.0
    } else {
        tgt as f64 / all as f64
    };
    let carried: Vec<&String> = w.providers.iter().filter(|p| got(p) > 0).collect();
    let share = |i: usize| {
        let (t, a) = received_last_second(ticks, i, &w.providers);
        if a == 0 {
            0.0
        } else {
            t as f64 / a as f64
        }
    };
    let detected = ticks.iter().enumerate().find(|(i, t)| {
        t.t_ms >= start_ms
            && (w.providers.iter().all(|p| {
                t.breakers
                    .iter()
                    .any(|(_, prov, s)| prov == p && *s != "closed")
            }) || (share_before > 0.0
                && *i >= 4
                && ticks[*i - 4].t_ms + 50 >= start_ms
                && share(*i) < share_before / 3.0))
    });
    let recovered = ticks.iter().enumerate().find(|(i, t)| {
        t.t_ms >= end_ms
            && t.breakers.iter().all(|(_, prov, s)| {
                !w.providers.contains(prov)
                    || *s == "closed"
                    || (*s == "half_open" && !carried.contains(&prov))
            })
            && (share_before == 0.0
                || (*i >= 4
                    && ticks[*i - 4].t_ms + 50 >= end_ms
                    && share(*i) >= share_before / 6.0))
    });
    let after = |t: Option<(usize, &Tick)>, from: u32| {
        t.map(|(_, t)| f64::from(t.t_ms.saturating_sub(from)) / 1000.0)
    };
    (after(detected, start_ms), after(recovered, end_ms))
}

/// One sample per second: outcomes by the second they finished in;
/// breakers at their worst in it; providers' received requests.
fn samples(outcomes: &[Outcome], ticks: &[Tick], incidents: &[IncidentSeen]) -> Vec<Sample> {
    let last = outcomes.iter().map(|o| o.end_ms / 1000).max().unwrap_or(0);
    let last = last.max(ticks.last().map_or(0, |t| t.t_ms / 1000));
    let mut out = Vec::new();
    for sec in 0..=last {
        let in_sec: Vec<&Outcome> = outcomes.iter().filter(|o| o.end_ms / 1000 == sec).collect();
        let mut s = Sample {
            t_s: sec,
            requests: in_sec.len() as u64,
            ..Sample::default()
        };
        for o in &in_sec {
            if o.kind.is_success() {
                s.successes += 1;
            } else {
                *s.failures.entry(o.kind.as_str().to_string()).or_default() += 1;
            }
            if o.kind == Kind::Stale {
                s.stale += 1;
            }
        }
        s.success_ratio = if s.requests == 0 {
            1.0
        } else {
            s.successes as f64 / s.requests as f64
        };
        let mut all: Vec<f64> = in_sec.iter().map(|o| latency_ms(o)).collect();
        s.p50_ms = quantile(&mut all, 0.5);
        s.p99_ms = quantile(&mut all, 0.99);
        for p in Priority::ALL {
            let mut v: Vec<f64> = in_sec
                .iter()
                .filter(|o| usize::from(o.priority) == p.index())
                .map(|o| latency_ms(o))
                .collect();
            if !v.is_empty() {
                s.p99_by_priority_ms
                    .insert(p.as_str().to_string(), quantile(&mut v, 0.99));
            }
        }
        let in_ticks: Vec<&Tick> = ticks.iter().filter(|t| t.t_ms / 1000 == sec).collect();
        for t in &in_ticks {
            for (id, _, state) in &t.breakers {
                let e = s
                    .breakers
                    .entry(id.clone())
                    .or_insert_with(|| "closed".to_string());
                if rank(state) > rank(e) {
                    *e = (*state).to_string();
                }
            }
        }
        if let (Some(first), Some(last)) = (
            ticks.iter().rev().find(|t| t.t_ms / 1000 < sec),
            in_ticks.last(),
        ) {
            for (p, n) in &last.received {
                let before = first.received.get(p).copied().unwrap_or(0);
                s.received.insert(p.clone(), n.saturating_sub(before));
            }
        }
        let t_end = f64::from(sec + 1);
        s.incidents_open = incidents
            .iter()
            .filter(|i| i.opened_s < t_end && i.resolved_s.is_none_or(|r| r >= t_end))
            .count() as u32;
        out.push(s);
    }
    out
}

fn rank(state: &str) -> u8 {
    match state {
        "open" => 2,
        "half_open" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::chaos::scenario::{Fault, Needs, Target, Window};

    fn outcome(start_ms: u32, kind: Kind) -> Outcome {
        Outcome {
            start_ms,
            end_ms: start_ms + 100,
            priority: 0,
            kind,
            source: Default::default(),
        }
    }

    fn scenario(expect: Vec<Expect>) -> Scenario {
        Scenario {
            name: "t",
            description: "t",
            windows: vec![Window {
                start: 0.2,
                end: 0.6,
                target: Target::All,
                fault: Fault::Kill,
            }],
            expect,
            needs: Needs::Nothing,
        }
    }

    fn window() -> WindowReport {
        WindowReport {
            start_s: 2.0,
            end_s: 6.0,
            target: Target::All.as_str().into(),
            providers: vec!["a".into()],
            fault: "killed".into(),
            detected_after_s: None,
            recovered_after_s: None,
        }
    }

    /// A bound that is not met fails its expectation and the scenario;
    /// one that is met passes.
    #[test]
    fn a_missed_bound_fails_the_verdict() {
        let mut outcomes: Vec<Outcome> = (0..90).map(|i| outcome(i * 10, Kind::Ok)).collect();
        outcomes.extend((0..10).map(|i| outcome(i * 10, Kind::Http5xx)));
        let run = |expect| {
            evaluate(
                &scenario(expect),
                &[window()],
                &outcomes,
                &[],
                Vec::new(),
                BTreeMap::new(),
                Duration::from_secs(10),
            )
        };
        let failed = run(vec![Expect::SuccessRatio(0.95), Expect::NoTruncated]);
        assert_eq!(failed.verdict, "fail");
        assert!(!failed.expectations[0].pass);
        assert!(failed.expectations[0].measured.starts_with("90.00 %"));
        assert!(failed.expectations[1].pass);
        let passed = run(vec![Expect::SuccessRatio(0.9)]);
        assert_eq!(passed.verdict, "pass");
        // Never detected (no ticks at all) is a failure, not a pass.
        let undetected = run(vec![Expect::DetectWithin(5000)]);
        assert_eq!(undetected.verdict, "fail");
        assert_eq!(undetected.expectations[0].measured, "never detected");
    }

    /// A fresh-looking success while every provider is down fails
    /// `OnlyStaleDuringOutage`; stale answers and honest errors do not.
    #[test]
    fn a_fresh_success_during_a_total_outage_fails() {
        let w = window();
        let mut outcomes = vec![outcome(3500, Kind::Stale), outcome(3600, Kind::Http5xx)];
        let judge_it = |o: &[Outcome]| {
            judge(
                &Expect::OnlyStaleDuringOutage,
                o,
                std::slice::from_ref(&w),
                &[],
            )
        };
        assert!(judge_it(&outcomes).pass);
        outcomes.push(outcome(4000, Kind::Ok));
        assert!(!judge_it(&outcomes).pass);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut [], 0.99), 0.0);
    }
}
