//! Burn-rate alerts and error budgets, on hand-computed numbers.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::engine::history::History;
use crate::engine::settings::DAY_MS;
use crate::engine::slo;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// `minutes` minutes of `requests` each, `bad` of them failed, ending
/// (exclusive) at `end`.
fn fill(h: &mut History, end: i64, minutes: i64, requests: u64, bad: u64) {
    for k in (1..=minutes).rev() {
        h.add_minute(&traffic(end - k * MIN, requests, requests - bad));
    }
}

#[test]
fn burn_rate_alerts_on_hand_computed_numbers() {
    let slo = SloSettings::default(); // 99.9 %: B = 0.001
    let rules = settings::default_burn_rules();
    let end = T0 + 6 * 60 * MIN;

    // 5 clean hours, then an hour at 2 % errors, 1000 requests a minute.
    let mut h = History::default();
    fill(&mut h, end - 60 * MIN, 300, 1000, 0);
    fill(&mut h, end, 60, 1000, 20);
    let alerts = slo::alerts(&h, end, &slo, &rules, 100);
    // 1 h and 5 m: 2 % / 0.1 % = 20 > 14.4: page.
    // 6 h: 1 200 / 360 000 = 0.333 % → 3.33 < 6: no.
    // 3 d (all we have: the same 6 h) 3.33 > 1, and 6 h 3.33 > 1: ticket.
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let page = &alerts[0];
    assert_eq!(page.severity, "page");
    assert_eq!(page.objective, "availability");
    assert_eq!(page.long_window, Duration::from_secs(3600));
    assert_eq!(page.short_window, Duration::from_secs(300));
    assert!(close(page.burn_rate, 20.0), "{}", page.burn_rate);
    assert!(close(page.threshold, 14.4));
    let ticket = &alerts[1];
    assert_eq!(ticket.severity, "ticket");
    assert!(close(ticket.burn_rate, 1200.0 / 360_000.0 / 0.001));
    // The fast page raises the status to a partial outage while the last
    // minutes still burn; the ticket to degraded; a clean recent window
    // imposes nothing.
    let burning = h.window(end, 5 * MIN);
    assert_eq!(
        slo::floor(&alerts, &rules, &burning, &slo),
        ComponentStatus::PartialOutage
    );
    let clean = traffic(end, 1000, 1000);
    assert_eq!(
        slo::floor(&alerts, &rules, &clean, &slo),
        ComponentStatus::Operational
    );

    // 1.4 % errors for an hour: a burn rate of 14, under 14.4: no fast
    // page (the 6 h rule, seeing only this hour, fires at 14 > 6).
    let mut h = History::default();
    fill(&mut h, end, 60, 1000, 14);
    let alerts = slo::alerts(&h, end, &slo, &rules, 100);
    assert!(
        alerts
            .iter()
            .all(|a| a.long_window != Duration::from_secs(3600)),
        "{alerts:?}"
    );
    assert!(alerts.iter().any(
        |a| a.long_window == Duration::from_secs(6 * 3600) && (a.burn_rate - 14.0).abs() < 1e-6
    ));

    // The short window must burn too: an hour at 2 % that ended 5 minutes
    // ago fires no page.
    let mut h = History::default();
    fill(&mut h, end - 5 * MIN, 55, 1000, 20);
    fill(&mut h, end, 5, 1000, 0);
    let alerts = slo::alerts(&h, end, &slo, &rules, 100);
    assert!(alerts
        .iter()
        .all(|a| a.long_window != Duration::from_secs(3600)));

    // Minimum volume: 1 request a minute, all failing, is under 100 in the
    // long window for an hour.
    let mut h = History::default();
    fill(&mut h, end, 60, 1, 1);
    assert!(slo::alerts(&h, end, &slo, &rules, 100)
        .iter()
        .all(|a| a.long_window != Duration::from_secs(3600)));
    assert!(!slo::alerts(&h, end, &slo, &rules, 10).is_empty());
}

#[test]
fn latency_burn_counts_answers_over_the_threshold() {
    let slo = SloSettings::default(); // 99 % within 5 s: B = 0.01
    let rules = settings::default_burn_rules();
    let end = T0 + 60 * MIN;
    let mut h = History::default();
    for k in 1..=60 {
        let mut m = traffic(end - k * MIN, 100, 100);
        m.latency = [0; crate::sli::BUCKETS];
        m.latency[bucket_of(100)] = 80;
        m.latency[bucket_of(8_000)] = 20; // 20 % slow: 20× the budget
        h.add_minute(&m);
    }
    let alerts = slo::alerts(&h, end, &slo, &rules, 100);
    let latency: Vec<_> = alerts.iter().filter(|a| a.objective == "latency").collect();
    assert!(latency
        .iter()
        .any(|a| a.severity == "page" && close(a.burn_rate, 20.0)));
    assert!(alerts.iter().all(|a| a.objective == "latency"));
    assert_eq!(
        slo::floor(&alerts, &rules, &h.window(end, 5 * MIN), &slo),
        ComponentStatus::DegradedPerformance
    );
}

#[test]
fn budget_left_over_the_period_from_day_sums() {
    let mut h = H::new(settings());
    let today = settings::day_floor(T0);
    // 29 past days of 1 000 000 requests, 500 failed and 2 500 slow each.
    let days: Vec<SliDay> = (1..=29)
        .map(|k| {
            let mut traffic = traffic(0, 1_000_000, 999_500);
            traffic.latency = [0; crate::sli::BUCKETS];
            traffic.latency[bucket_of(100)] = 997_500;
            traffic.latency[bucket_of(8_000)] = 2_500;
            SliDay {
                day: today - k * DAY_MS,
                totals: traffic,
                status_minutes: StatusMinutes::default(),
                upstream_down_minutes: 0,
            }
        })
        .collect();
    // A 30th day before the period does not count.
    let mut old = days[0].clone();
    old.day = today - 30 * DAY_MS;
    old.totals.good = 0;
    h.engine
        .load_history("chat-m1", &[days.clone(), vec![old]].concat(), &[]);
    let page = h.page();
    let slo = page.component("chat-m1").unwrap().slo.clone().unwrap();
    // Availability: 14 500 bad of 29 000 000, budget 0.1 % → 29 000 allowed.
    assert!(close(slo.availability_budget_left, 0.5), "{slo:?}");
    assert!(close(
        slo.availability.unwrap(),
        1.0 - 14_500.0 / 29_000_000.0
    ));
    // Latency: 72 500 slow of 29 000 000, budget 1 % → 290 000 allowed.
    assert!(close(slo.latency_budget_left.unwrap(), 0.75));
    assert_eq!(slo.period, Duration::from_secs(30 * 86_400));
    assert_eq!(slo.latency_threshold, Some(Duration::from_secs(5)));
    // Today's minutes count too: 14 500 more bad requests spend the rest.
    h.minute(14_500, 0, Vec::new());
    let slo = h.page().component("chat-m1").unwrap().slo.clone().unwrap();
    assert!(
        close(
            slo.availability_budget_left,
            1.0 - 29_000.0 / (0.001 * 29_014_500.0)
        ),
        "{slo:?}"
    );
    assert!(slo.alerts.iter().any(|a| a.severity == "page"));
}

#[test]
fn after_a_restart_today_keeps_counting() {
    let mut h = H::new(without_burn_alerts());
    for _ in 0..5 {
        h.minute(100, 100, Vec::new());
    }
    // A restart the same day: today's rollup (500 good requests) comes
    // back from the store, then 500 requests fail.
    let now = h.now;
    let mut h = h.restart(without_burn_alerts(), now);
    for _ in 0..5 {
        h.minute(100, 0, Vec::new());
    }
    let today = settings::day_floor(h.now);
    let stored = h
        .store
        .inner
        .days("chat-m1", today, today + DAY_MS)
        .unwrap();
    assert_eq!(
        (stored[0].totals.requests, stored[0].totals.good),
        (1000, 500)
    );
    let page = h.page();
    let c = page.component("chat-m1").unwrap();
    let bar = c.uptime.last().unwrap();
    assert_eq!(bar.day, today);
    assert_eq!(bar.requests, 1000, "{bar:?}");
    assert!(close(bar.effective.unwrap(), 0.5), "{bar:?}");
    let slo = c.slo.clone().unwrap();
    assert!(close(slo.availability.unwrap(), 0.5), "{slo:?}");
}
