//! Maintenance windows move on time and drain their deployments.
#![allow(clippy::unwrap_used)]

use super::*;

fn schedule(h: &H, from: i64, until: i64, components: &[&str]) -> ScheduledMaintenance {
    h.store
        .inner
        .create_maintenance(&NewMaintenance {
            name: "Upgrade".into(),
            scheduled_for: from,
            scheduled_until: until,
            components: components.iter().map(|c| c.to_string()).collect(),
            body: "Upgrading.".into(),
            at_ms: T0,
        })
        .unwrap()
}

fn deps() -> Vec<DeploymentState> {
    let mut d = healthy();
    d.push(deployment("p1/m2", 10, 10, "", Breaker::Closed));
    d
}

#[test]
fn maintenance_moves_on_time_and_drains_its_deployments() {
    let mut h = H::new(without_burn_alerts());
    let from = T0 + 5 * MIN;
    let until = T0 + 10 * MIN;
    let w = schedule(&h, from, until, &["chat-m1"]);
    h.flush();
    let shown = |h: &mut H| h.page().maintenances[0].status;

    // A second before the start: nothing yet.
    h.tick_at(from - 1_000, Vec::new(), deps());
    assert_eq!(shown(&mut h), MaintenanceStatus::Scheduled);
    assert!(h.drain.is_empty());
    assert_eq!(h.status("chat-m1"), ComponentStatus::Operational);

    // On the dot: in progress, written, announced; m1's deployments drain,
    // m2's do not; the component shows under maintenance, the gateway not.
    h.tick_at(from, Vec::new(), deps());
    assert_eq!(shown(&mut h), MaintenanceStatus::InProgress);
    assert_eq!(
        h.drain,
        BTreeSet::from(["p1/m1".to_string(), "p2/m1".to_string()])
    );
    assert_eq!(h.status("chat-m1"), ComponentStatus::UnderMaintenance);
    assert_eq!(h.status("chat-m2"), ComponentStatus::Operational);
    assert_eq!(h.status("gateway"), ComponentStatus::Operational);
    let stored = h.window(w.id);
    assert_eq!(
        (stored.status, stored.updated_at),
        (MaintenanceStatus::InProgress, from)
    );
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::MaintenanceStarted(m) if m.id == w.id)));
    assert!(!h.page().component("chat-m1").unwrap().no_recent_data);

    // Traffic failing during the window opens no incident for it, and its
    // major outage underneath is never shown.
    for k in 5..10 {
        let good = if k < 7 { 0 } else { 100 };
        h.tick_at(
            T0 + (k + 1) * MIN,
            vec![TrafficMinute {
                family: Family::Chat,
                model: "m1".into(),
                minute: traffic(T0 + k * MIN, 100, good),
            }],
            deps(),
        );
    }
    assert!(h.incidents().is_empty());
    // On the dot at the end: completed, undrained, back to operational.
    assert_eq!(h.now, until);
    assert_eq!(shown(&mut h), MaintenanceStatus::Completed);
    assert!(h.drain.is_empty());
    assert_eq!(h.status("chat-m1"), ComponentStatus::Operational);
    let stored = h.window(w.id);
    assert_eq!(
        (stored.status, stored.updated_at),
        (MaintenanceStatus::Completed, until)
    );
    let transitions: Vec<&str> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MaintenanceStarted(_) => Some("started"),
            Event::MaintenanceCompleted(_) => Some("completed"),
            _ => None,
        })
        .collect();
    assert_eq!(transitions, ["started", "completed"]);
    let changes = h.changes("chat-m1");
    assert_eq!(
        changes,
        [
            ComponentStatus::UnderMaintenance,
            ComponentStatus::Operational
        ]
    );
    // The day's bar remembers the maintenance.
    let bar = h
        .page()
        .component("chat-m1")
        .unwrap()
        .uptime
        .last()
        .cloned()
        .unwrap();
    assert_eq!(bar.worst, ComponentStatus::UnderMaintenance);
}

#[test]
fn a_window_missed_while_down_is_caught_up_and_the_gateway_drains_nothing() {
    let mut h = H::new(settings());
    let missed = schedule(&h, T0 + MIN, T0 + 3 * MIN, &["chat-m1"]);
    let long = schedule(&h, T0 + 2 * MIN, T0 + 60 * MIN, &["gateway", "chat-m2"]);
    h.flush();
    // The first tick comes after the whole first window, inside the second.
    h.tick_at(T0 + 5 * MIN, Vec::new(), deps());
    let at = T0 + 5 * MIN;
    let stored = (h.window(long.id), h.window(missed.id));
    assert_eq!(
        (stored.0.status, stored.0.updated_at),
        (MaintenanceStatus::InProgress, at)
    );
    assert_eq!(
        (stored.1.status, stored.1.updated_at),
        (MaintenanceStatus::Completed, at)
    );
    let started: Vec<i64> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MaintenanceStarted(m) => Some(m.id),
            _ => None,
        })
        .collect();
    assert_eq!(started, [long.id]);
    // Only m2's deployment: a window on the gateway drains nothing.
    assert_eq!(h.drain, BTreeSet::from(["p1/m2".to_string()]));
    assert_eq!(h.status("gateway"), ComponentStatus::UnderMaintenance);
    assert_eq!(h.status("chat-m2"), ComponentStatus::UnderMaintenance);
    assert_eq!(h.status("chat-m1"), ComponentStatus::Operational);
    // Nothing more to write once the store has it.
    h.tick_at(T0 + 6 * MIN, Vec::new(), deps());
    assert_eq!(h.window(long.id).updated_at, at);
    assert_eq!(h.writer.pending(), 0);
}

#[test]
fn the_nearest_window_starts_even_with_many_later_ones() {
    let mut h = H::new(without_burn_alerts());
    let from = T0 + 5 * MIN;
    let until = T0 + 10 * MIN;
    let near = schedule(&h, from, until, &["chat-m1"]);
    // A year of weekly windows after it: more than the 50 the page lists.
    let week = 7 * 86_400_000;
    for k in 1..=60 {
        schedule(&h, from + k * week, until + k * week, &["chat-m1"]);
    }
    h.flush();
    h.tick_at(from + MIN, Vec::new(), deps());
    assert_eq!(
        h.drain,
        BTreeSet::from(["p1/m1".to_string(), "p2/m1".to_string()])
    );
    assert_eq!(h.status("chat-m1"), ComponentStatus::UnderMaintenance);
    assert_eq!(h.window(near.id).status, MaintenanceStatus::InProgress);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::MaintenanceStarted(m) if m.id == near.id)));
    // The page (and so upcoming.json and active.json) lists every window
    // not yet completed.
    let page = h.page();
    let active: Vec<i64> = page
        .maintenances
        .iter()
        .filter(|m| m.status == MaintenanceStatus::InProgress)
        .map(|m| m.id)
        .collect();
    assert_eq!(active, [near.id]);
    let upcoming = page
        .maintenances
        .iter()
        .filter(|m| m.status == MaintenanceStatus::Scheduled)
        .count();
    assert_eq!(upcoming, 60);
    // It ends on time.
    h.tick_at(until, Vec::new(), deps());
    assert_eq!(h.window(near.id).status, MaintenanceStatus::Completed);
    assert!(h.drain.is_empty());
}
