//! Status from traffic: thresholds, hysteresis, probes, no recent data.
#![allow(clippy::unwrap_used)]

use super::*;
use ComponentStatus::*;

#[test]
fn flapping_input_does_not_flap_the_status() {
    // Hysteresis alone (burn-rate alerts off): 30 % errors every other
    // minute never shows.
    let mut h = H::new(without_burn_alerts());
    for i in 0..20 {
        let good = if i % 2 == 0 { 70 } else { 100 };
        h.minute(100, good, healthy());
        assert_eq!(h.status("chat-m1"), Operational, "minute {i}");
    }
    assert!(h.changes("chat-m1").is_empty());

    // With the default rules, total failure every other minute shows a
    // major outage at once and holds it: one change, no flapping back.
    let mut h = H::new(settings());
    for i in 0..20 {
        let good = if i % 2 == 0 { 0 } else { 100 };
        h.minute(100, good, healthy());
    }
    assert_eq!(h.changes("chat-m1"), [MajorOutage]);
    // Once it stays clean, it recovers (through what the burn-rate alerts
    // still say) and stays recovered.
    for _ in 0..80 {
        h.minute(100, 100, healthy());
    }
    assert_eq!(h.status("chat-m1"), Operational);
    assert_eq!(h.changes("chat-m1").last(), Some(&Operational));
}

#[test]
fn a_worse_state_needs_two_minutes_and_a_better_one_three() {
    let mut h = H::new(without_burn_alerts());
    h.minute(100, 100, healthy());
    h.minute(100, 90, healthy()); // 10 %: partial, first minute
    assert_eq!(h.status("chat-m1"), Operational);
    h.minute(100, 98, healthy()); // 2 %: degraded, second worse minute
                                  // The least bad of the streak shows.
    assert_eq!(h.status("chat-m1"), DegradedPerformance);
    h.minute(100, 90, healthy());
    h.minute(100, 90, healthy());
    assert_eq!(h.status("chat-m1"), PartialOutage);
    h.minute(100, 100, healthy());
    h.minute(100, 100, healthy());
    assert_eq!(h.status("chat-m1"), PartialOutage);
    h.minute(100, 100, healthy());
    assert_eq!(h.status("chat-m1"), Operational);
    // 60 % errors: a major outage, after two minutes (under 90 %, so not
    // at once).
    h.minute(100, 40, healthy());
    assert_eq!(h.status("chat-m1"), Operational);
    h.minute(100, 40, healthy());
    assert_eq!(h.status("chat-m1"), MajorOutage);
}

#[test]
fn slow_answers_degrade() {
    let mut h = H::new(without_burn_alerts());
    let mut slow = traffic(0, 100, 100);
    slow.latency = [0; crate::sli::BUCKETS];
    slow.latency[bucket_of(100)] = 90;
    slow.latency[bucket_of(8_000)] = 10; // 10 % over the 5 s threshold
    h.minute_with(slow.clone(), healthy());
    h.minute_with(slow, healthy());
    assert_eq!(h.status("chat-m1"), DegradedPerformance);
}

#[test]
fn idle_components_are_judged_by_probes_and_never_green_without_data() {
    let mut h = H::new(settings());
    let probes = |ok: u64, failed: u64| Minute {
        probes_ok: ok,
        probes_failed: failed,
        ..Minute::default()
    };
    // Failing probes, no traffic: an outage, not a green light.
    h.minute_with(probes(0, 10), Vec::new());
    assert_eq!(h.status("chat-m1"), MajorOutage);
    for _ in 0..3 {
        h.minute_with(probes(10, 0), Vec::new());
    }
    assert_eq!(h.status("chat-m1"), Operational);
    assert!(!h.page().component("chat-m1").unwrap().no_recent_data);

    // m2 never had traffic or probes; after more than 10 minutes it has no
    // recent data, and m1 after more than 10 silent minutes too.
    for _ in 0..10 {
        h.minute_with(Minute::default(), Vec::new());
    }
    assert!(!h.page().component("chat-m1").unwrap().no_recent_data);
    for _ in 0..1 {
        h.minute_with(Minute::default(), Vec::new());
    }
    let page = h.page();
    assert!(page.component("chat-m2").unwrap().no_recent_data);
    assert!(page.component("chat-m1").unwrap().no_recent_data);
    h.minute_with(probes(1, 0), Vec::new());
    assert!(!h.page().component("chat-m1").unwrap().no_recent_data);
}

#[test]
fn the_gateway_sees_all_traffic_and_models_their_own() {
    let mut h = H::new(without_burn_alerts());
    for _ in 0..3 {
        let at = h.now;
        h.tick_at(
            at + MIN,
            vec![
                TrafficMinute {
                    family: Family::Chat,
                    model: "m1".into(),
                    minute: traffic(at, 100, 0),
                },
                TrafficMinute {
                    family: Family::Chat,
                    model: "m2".into(),
                    minute: traffic(at, 900, 900),
                },
            ],
            Vec::new(),
        );
    }
    assert_eq!(h.status("chat-m1"), MajorOutage);
    assert_eq!(h.status("chat-m2"), Operational);
    // 10 % of all requests fail: a partial outage of the gateway.
    assert_eq!(h.status("gateway"), PartialOutage);
}
