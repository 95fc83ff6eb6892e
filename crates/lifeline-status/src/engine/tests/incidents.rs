//! Automatic incidents through a real store.
#![allow(clippy::unwrap_used)]

use super::*;
use IncidentStatus::*;

fn statuses(i: &IncidentWithUpdates) -> Vec<IncidentStatus> {
    i.incident_updates.iter().map(|u| u.status).collect()
}

#[test]
fn a_blip_does_not_open_an_incident() {
    let mut h = H::new(settings());
    for _ in 0..3 {
        h.minute(100, 100, healthy());
    }
    h.minute(100, 0, p1_failing("status_error"));
    assert_eq!(h.status("chat-m1"), ComponentStatus::MajorOutage);
    for _ in 0..30 {
        h.minute(100, 100, healthy());
    }
    assert_eq!(h.status("chat-m1"), ComponentStatus::Operational);
    assert!(h.incidents().is_empty());
}

#[test]
fn an_outage_opens_one_incident_that_is_identified_monitored_and_resolved() {
    // Thresholds and hysteresis only: burn-rate alerts would open it at
    // two minutes (see the next test).
    let mut h = H::new(without_burn_alerts());
    for _ in 0..5 {
        h.minute(100, 100, healthy());
    }
    let onset = h.now;
    // 30 % of requests fail: p1 fails everything, p2 takes the rest.
    h.minute(100, 70, p1_failing("status_error"));
    h.minute(100, 70, p1_failing("status_error"));
    assert_eq!(h.status("chat-m1"), ComponentStatus::PartialOutage);
    assert!(h.incidents().is_empty(), "not before open_after");
    h.minute(100, 70, p1_failing("status_error"));
    let opened = h.now;
    let all = h.incidents();
    assert_eq!(all.len(), 1, "opened after open_after");
    let inc = &all[0].incident;
    assert!(inc.automatic && !inc.draft);
    assert_eq!(inc.status, Investigating);
    assert_eq!(inc.impact, lifeline_store::Impact::Major);
    assert_eq!(inc.cause.as_deref(), Some("provider_errors"));
    assert_eq!(inc.created_at, opened);
    // The gateway sees the same problem: one incident for both.
    assert_eq!(inc.components, ["chat-m1", "gateway"]);
    assert_eq!(
        inc.name,
        "Partial outage of Chat Completions (m1) and Gateway: upstream errors"
    );
    let body = &all[0].incident_updates[0].body;
    assert!(body.contains("since 2024-06-01 10:05 UTC"), "{body}");
    assert!(
        body.contains("In the last 3 minutes, 30.0 % of 300 requests failed (90)"),
        "{body}"
    );
    // Deployments are counted, not named (`show_providers` is off).
    assert!(
        body.contains(
            "1 of 2 upstream deployments failing: status_error 120 \
             (120 of 220 attempts failed; circuit open on 1). \
             Traffic was moved to 1 other deployment."
        ),
        "{body}"
    );
    assert_eq!(onset, T0 + 5 * MIN);

    // The failing deployment is known: identified at the next minute.
    h.minute(100, 70, p1_failing("status_error"));
    for _ in 0..10 {
        h.minute(100, 70, p1_failing("status_error"));
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1, "no duplicate while it lasts");
    assert_eq!(statuses(&all[0]), [Investigating, Identified]);
    assert!(all[0].incident_updates[1]
        .body
        .starts_with("Identified: the upstream provider answers with errors"));

    // Recovery: monitoring once the status is operational again, resolved
    // after 10 stable minutes.
    let mut monitoring_at = None;
    for _ in 0..40 {
        h.minute(100, 100, healthy());
        let all = h.incidents();
        if monitoring_at.is_none() && all[0].incident.status == Monitoring {
            monitoring_at = Some(h.now);
        }
    }
    let monitoring_at = monitoring_at.unwrap();
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    assert_eq!(
        statuses(&all[0]),
        [Investigating, Identified, Monitoring, Resolved]
    );
    let resolved = &all[0].incident_updates[3];
    assert_eq!(resolved.created_at - monitoring_at, 10 * MIN);
    // Two components: the verbs agree.
    assert!(
        all[0].incident_updates[2]
            .body
            .starts_with("Chat Completions (m1) and Gateway work normally again since"),
        "{}",
        all[0].incident_updates[2].body
    );
    // Recovered: not "slowness", so no answer times (well within the
    // objective) are quoted.
    assert!(!all[0].incident_updates[2].body.contains("Answer time"));
    assert!(
        resolved.body.starts_with(
            "Resolved: Chat Completions (m1) and Gateway have worked normally for 10 minutes"
        ),
        "{}",
        resolved.body
    );
    assert_eq!(all[0].incident.resolved_at, Some(resolved.created_at));

    // Subscribers heard of each step, in order.
    let kinds: Vec<&str> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::IncidentCreated(_) => Some("created"),
            Event::IncidentUpdated { .. } => Some("updated"),
            Event::IncidentResolved { .. } => Some("resolved"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["created", "updated", "updated", "resolved"]);
    assert_eq!(
        h.changes("chat-m1").first(),
        Some(&ComponentStatus::PartialOutage)
    );
    assert_eq!(
        h.changes("chat-m1").last(),
        Some(&ComponentStatus::Operational)
    );
    assert!(h.page().incidents[0].eta.is_none(), "resolved: no estimate");
}

#[test]
fn a_page_alert_opens_an_incident_before_open_after() {
    let mut s = settings();
    s.incidents.open_after = Duration::from_secs(3600);
    let mut h = H::new(s);
    for _ in 0..5 {
        h.minute(100, 100, healthy());
    }
    h.minute(100, 70, p1_failing("status_error"));
    assert!(h.incidents().is_empty());
    h.minute(100, 70, p1_failing("status_error"));
    // The 1 h / 5 m alert fired in both minutes (burn rate > 14.4).
    let page = h.page();
    let alerts = &page
        .component("chat-m1")
        .unwrap()
        .slo
        .as_ref()
        .unwrap()
        .alerts;
    assert!(alerts.iter().any(|a| a.severity == "page"), "{alerts:?}");
    assert_eq!(h.incidents().len(), 1);
}

#[test]
fn a_relapse_during_monitoring_reopens_the_same_incident() {
    let mut h = H::new(settings());
    for _ in 0..6 {
        h.minute(100, 0, p1_failing("timeout"));
    }
    assert_eq!(h.incidents().len(), 1);
    assert_eq!(h.incidents()[0].incident.cause.as_deref(), Some("timeouts"));
    for _ in 0..12 {
        h.minute(100, 100, healthy());
    }
    assert_eq!(h.incidents()[0].incident.status, Monitoring);
    for _ in 0..3 {
        h.minute(100, 0, p1_failing("timeout"));
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1, "the same incident, not a new one");
    assert_eq!(all[0].incident.status, Identified);
    assert!(all[0]
        .incident_updates
        .last()
        .unwrap()
        .body
        .starts_with("The problem is back since"));
    assert_eq!(all[0].incident.resolved_at, None);
}

#[test]
fn an_open_incident_is_never_silent() {
    let mut h = H::new(settings());
    for _ in 0..70 {
        h.minute(100, 0, p1_failing("rate_limited"));
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    let updates = &all[0].incident_updates;
    let times: Vec<i64> = updates.iter().map(|u| u.created_at).collect();
    let opened = times[0];
    // Opened, identified a minute later, then every 30 minutes.
    assert_eq!(
        times,
        [opened, opened + MIN, opened + 31 * MIN, opened + 61 * MIN],
        "{:?}",
        statuses(&all[0])
    );
    assert_eq!(
        statuses(&all[0]),
        [Investigating, Identified, Identified, Identified]
    );
    assert!(updates[2]
        .body
        .starts_with("Still ongoing: major outage of"));
    assert!(updates[2].body.contains("100.0 % of 500 requests failed"));
    assert!(updates[2].body.contains("Next update within 30 minutes."));
    assert_eq!(all[0].incident.cause.as_deref(), Some("rate_limited"));
    assert_eq!(all[0].incident.impact, lifeline_store::Impact::Critical);
}

#[test]
fn drafts_stay_off_the_page_until_published() {
    let mut s = settings();
    s.incidents.publish_automatic = false;
    let mut h = H::new(s);
    for _ in 0..6 {
        h.minute(100, 0, p1_failing("misconfigured"));
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    assert!(all[0].incident.draft);
    assert_eq!(all[0].incident.cause.as_deref(), Some("misconfiguration"));
    assert!(h.page().incidents.is_empty());
    assert!(!h
        .events
        .iter()
        .any(|e| matches!(e, Event::IncidentCreated(_) | Event::IncidentUpdated { .. })));
    // The automation keeps it up to date all the same.
    assert!(all[0].incident_updates.len() >= 2);
}

#[test]
fn manual_incidents_are_shown_and_left_alone() {
    let mut h = H::new(settings());
    let manual = h
        .store
        .inner
        .create_incident(&NewIncident {
            name: "Billing is delayed".into(),
            status: Investigating,
            impact: lifeline_store::Impact::Minor,
            body: "We are looking into it.".into(),
            components: Vec::new(),
            automatic: false,
            draft: false,
            cause: None,
            at_ms: T0,
        })
        .unwrap();
    for _ in 0..6 {
        h.minute(100, 0, p1_failing("status_error"));
    }
    for _ in 0..40 {
        h.minute(100, 100, healthy());
    }
    let m = h.store.inner.incident(manual.incident.id).unwrap().unwrap();
    assert_eq!(m.incident_updates.len(), 1, "never touched");
    assert_eq!(m.incident.status, Investigating);
    let page = h.page();
    assert_eq!(page.incidents.len(), 2);
    assert!(page
        .incidents
        .iter()
        .any(|i| i.incident.incident.id == manual.incident.id && i.eta.is_some()));
}

#[test]
fn a_failing_store_never_stops_evaluation_and_loses_nothing() {
    let mut h = H::new(settings());
    h.minute(100, 100, healthy());
    h.store.failing.store(true, Ordering::SeqCst);
    let broke = h.now;
    for _ in 0..8 {
        h.minute(100, 0, p1_failing("status_error"));
    }
    // Evaluation went on; the writes wait; the page says it is behind.
    assert_eq!(h.status("chat-m1"), ComponentStatus::MajorOutage);
    assert!(h.writer.pending() >= 2, "create and identified queued");
    assert_eq!(h.behind, Some(broke + MIN));
    assert_eq!(h.page().history_behind_since, Some(broke + MIN));
    assert!(h.incidents().is_empty());

    h.store.failing.store(false, Ordering::SeqCst);
    h.minute(100, 0, p1_failing("status_error"));
    assert_eq!(h.writer.pending(), 0);
    assert_eq!(h.behind, None);
    assert_eq!(h.page().history_behind_since, None);
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    assert_eq!(statuses(&all[0]), [Investigating, Identified]);
    // Written with the times they happened at, not the time of the flush.
    assert!(all[0].incident.created_at < broke + 8 * MIN);
}

#[test]
fn after_a_restart_the_open_incident_is_taken_up_not_duplicated() {
    let mut h = H::new(settings());
    for _ in 0..6 {
        h.minute(100, 0, p1_failing("status_error"));
    }
    assert_eq!(h.incidents().len(), 1);
    let id = h.incidents()[0].incident.id;
    // A new engine on the same store, an hour later, the outage ongoing.
    let path = h.dir.path().join("status.db");
    let later = h.now + 60 * MIN;
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    drop(h);
    let mut h = H::with_store(settings(), SqliteStore::open(&path).unwrap(), dir);
    h.now = later;
    h.engine = Engine::new(settings(), later);
    h.flush();
    for _ in 0..6 {
        h.minute(100, 0, p1_failing("status_error"));
    }
    let all = h.incidents();
    assert_eq!(
        all.len(),
        1,
        "{:?}",
        all.iter().map(|i| &i.incident.name).collect::<Vec<_>>()
    );
    // Silent for over 30 minutes across the restart: an update at once.
    assert!(all[0].incident_updates.iter().any(|u| u.created_at > later));
    for _ in 0..40 {
        h.minute(100, 100, healthy());
    }
    let inc = h.store.inner.incident(id).unwrap().unwrap();
    assert_eq!(inc.incident.status, Resolved);
}

#[test]
fn the_cause_is_corrected_once_the_failing_deployment_is_known() {
    let mut h = H::new(settings());
    // Failing requests, but no deployment reports yet: investigating, with
    // the default cause.
    for _ in 0..3 {
        h.minute(100, 0, Vec::new());
    }
    let all = h.incidents();
    assert_eq!(statuses(&all[0]), [Investigating]);
    assert_eq!(all[0].incident.cause.as_deref(), Some("provider_errors"));
    h.minute(100, 0, p1_failing("rate_limited"));
    let all = h.incidents();
    assert_eq!(statuses(&all[0]), [Investigating, Identified]);
    assert_eq!(all[0].incident.cause.as_deref(), Some("rate_limited"));
    assert!(all[0].incident_updates[1]
        .body
        .contains("rate-limiting requests"));
}

#[test]
fn components_join_the_open_incident_and_its_impact_only_grows() {
    let mut h = H::new(settings());
    let both = |h: &mut H, m1: (u64, u64), m2: (u64, u64)| {
        let at = h.now;
        let t = |model: &str, (requests, good): (u64, u64)| TrafficMinute {
            family: Family::Chat,
            model: model.into(),
            minute: traffic(at, requests, good),
        };
        h.tick_at(
            at + MIN,
            vec![t("m1", m1), t("m2", m2)],
            p1_failing("status_error"),
        );
    };
    // m1 partly fails; the gateway, carrying m2's much larger traffic, does
    // not notice.
    for _ in 0..4 {
        both(&mut h, (10, 7), (10_000, 10_000));
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].incident.components, ["chat-m1"]);
    assert_eq!(all[0].incident.impact, lifeline_store::Impact::Major);
    assert_eq!(h.status("gateway"), ComponentStatus::Operational);
    // Then m1 fails completely and m2 partly: the gateway and m2 join the
    // same incident, whose impact rises.
    for _ in 0..4 {
        both(&mut h, (10, 0), (10_000, 7_000));
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1, "one incident for the ongoing problem");
    assert_eq!(
        all[0].incident.components,
        ["chat-m1", "chat-m2", "gateway"]
    );
    assert_eq!(all[0].incident.impact, lifeline_store::Impact::Critical);
}

/// A 30 % outage on `m1` for `minutes` minutes.
fn partial(h: &mut H, minutes: usize) {
    for _ in 0..minutes {
        h.minute(100, 70, p1_failing("status_error"));
    }
}

#[test]
fn a_restart_during_an_outage_keeps_the_status_and_the_incident() {
    let mut h = H::new(without_burn_alerts());
    for _ in 0..5 {
        h.minute(100, 100, healthy());
    }
    partial(&mut h, 6);
    assert_eq!(statuses(&h.incidents()[0]), [Investigating, Identified]);
    let now = h.now;
    let mut h = h.restart(without_burn_alerts(), now);
    // The page shows what it showed before the restart, at once.
    assert_eq!(h.status("chat-m1"), ComponentStatus::PartialOutage);
    // The last minute the previous engine stored stays as it was.
    let last = h.store.inner.minutes("chat-m1", now - MIN, now).unwrap();
    assert_eq!(last[0].minute.requests, 100);
    assert_eq!(h.status("gateway"), ComponentStatus::PartialOutage);
    partial(&mut h, 10);
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    assert_eq!(
        statuses(&all[0]),
        [Investigating, Identified],
        "no false recovery"
    );
    assert!(
        h.changes("chat-m1").is_empty(),
        "no status change announced"
    );
    assert!(h.changes("gateway").is_empty());
    // It still resolves when the outage is over.
    for _ in 0..20 {
        h.minute(100, 100, healthy());
    }
    assert_eq!(
        statuses(&h.incidents()[0]),
        [Investigating, Identified, Monitoring, Resolved]
    );
}

#[test]
fn a_restart_during_an_outage_then_silence_is_no_recovery() {
    let mut h = H::new(without_burn_alerts());
    partial(&mut h, 6);
    // Back 6 minutes later; clients gave up: no traffic, no probes.
    let later = h.now + 6 * MIN;
    let mut h = h.restart(without_burn_alerts(), later);
    for _ in 0..40 {
        h.minute(0, 0, Vec::new());
    }
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    let timeline = statuses(&all[0]);
    eprintln!(
        "DEBUG {timeline:?} {:?}",
        all.iter()
            .map(|i| (&i.incident.name, i.incident.status))
            .collect::<Vec<_>>()
    );
    assert!(
        !timeline.contains(&Monitoring) && !timeline.contains(&Resolved),
        "{timeline:?}"
    );
    let page = h.page();
    let c = page.component("chat-m1").unwrap();
    assert_eq!(c.status, ComponentStatus::PartialOutage);
    assert!(c.no_recent_data);
}

#[test]
fn after_a_long_stop_a_first_bad_minute_is_not_a_recovery() {
    let mut h = H::new(without_burn_alerts());
    partial(&mut h, 6);
    assert_eq!(statuses(&h.incidents()[0]), [Investigating, Identified]);
    // Down for an hour: the stored status is too old to take up.
    let later = h.now + 60 * MIN;
    let mut h = h.restart(without_burn_alerts(), later);
    assert_eq!(h.status("chat-m1"), ComponentStatus::Operational);
    partial(&mut h, 5);
    let all = h.incidents();
    assert_eq!(all.len(), 1);
    let timeline = statuses(&all[0]);
    eprintln!(
        "DEBUG {timeline:?} {:?}",
        all.iter()
            .map(|i| (&i.incident.name, i.incident.status))
            .collect::<Vec<_>>()
    );
    assert!(!timeline.contains(&Monitoring), "{timeline:?}");
    assert_eq!(h.status("chat-m1"), ComponentStatus::PartialOutage);
}

#[test]
fn nothing_opens_before_the_store_was_read_once() {
    // The driver ticks before its first flush; with the store unreadable
    // at start that can last: the open incidents it holds are unknown, so
    // none is opened (it could duplicate one).
    let mut engine = Engine::new(without_burn_alerts(), T0);
    let creates = |out: &TickOutput| {
        out.writes
            .iter()
            .filter(|w| matches!(w, Write::CreateIncident { .. }))
            .count()
    };
    let mut opened = 0;
    for k in 0..6 {
        let out = engine.tick(TickInput {
            now_ms: T0 + (k + 1) * MIN,
            traffic: vec![TrafficMinute {
                family: Family::Chat,
                model: "m1".into(),
                minute: traffic(T0 + k * MIN, 100, 0),
            }],
            deployments: p1_failing("status_error"),
            providers: None,
        });
        opened += creates(&out);
    }
    assert_eq!(opened, 0);
    let h = H::new(without_burn_alerts());
    let mut writer = Writer::new();
    let outcome = writer.flush(&h.store, T0 + 6 * MIN);
    engine.apply_flush(outcome);
    let out = engine.tick(TickInput {
        now_ms: T0 + 7 * MIN,
        traffic: vec![TrafficMinute {
            family: Family::Chat,
            model: "m1".into(),
            minute: traffic(T0 + 6 * MIN, 100, 0),
        }],
        deployments: p1_failing("status_error"),
        providers: None,
    });
    assert_eq!(creates(&out), 1);
}

fn operator_incident(
    h: &H,
    name: &str,
    status: IncidentStatus,
    components: &[&str],
    at: i64,
) -> i64 {
    h.store
        .inner
        .create_incident(&NewIncident {
            name: name.into(),
            status,
            impact: lifeline_store::Impact::Minor,
            body: "Looking into it.".into(),
            components: components.iter().map(|c| c.to_string()).collect(),
            automatic: false,
            draft: false,
            cause: None,
            at_ms: at,
        })
        .unwrap()
        .incident
        .id
}

#[test]
fn an_old_unresolved_incident_stays_on_the_page_and_its_resolution_is_announced() {
    let mut h = H::new(settings());
    let old = operator_incident(&h, "EU region degraded", Investigating, &[], T0 - 600 * MIN);
    for k in 0..55 {
        operator_incident(&h, "A blip", Resolved, &[], T0 - 500 * MIN + k * MIN);
    }
    h.minute(100, 100, healthy());
    let page = h.page();
    assert!(page.incidents.iter().any(|i| i.incident.incident.id == old));
    assert_eq!(page.incidents.len(), 51, "50 newest, and the open one");
    let docs = crate::render::json::documents(&page).unwrap();
    let unresolved: serde_json::Value = serde_json::from_slice(&docs.bodies[4]).unwrap();
    assert_eq!(unresolved["incidents"].as_array().unwrap().len(), 1);
    let summary: serde_json::Value = serde_json::from_slice(&docs.bodies[0]).unwrap();
    assert_eq!(summary["incidents"][0]["name"], "EU region degraded");

    h.store
        .inner
        .add_update(old, Resolved, "Fixed.", h.now)
        .unwrap();
    h.minute(100, 100, healthy());
    let resolved: Vec<i64> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::IncidentResolved { incident, .. } => Some(incident.incident.id),
            _ => None,
        })
        .collect();
    assert_eq!(resolved, [old]);
    // Resolved and older than the 50 newest: off the page now.
    assert!(!h
        .page()
        .incidents
        .iter()
        .any(|i| i.incident.incident.id == old));
}

#[test]
fn a_queued_automatic_update_never_undoes_an_operators_resolution() {
    let mut h = H::new(settings());
    for _ in 0..3 {
        h.minute(100, 0, Vec::new());
    }
    let id = h.incidents()[0].incident.id;
    assert_eq!(statuses(&h.incidents()[0]), [Investigating]);
    // The engine decides "identified" at the minute's end; before its
    // write reaches the store, an operator resolves the incident.
    let at = h.now;
    h.now = at + MIN;
    let out = h.engine.tick(TickInput {
        now_ms: h.now,
        traffic: vec![TrafficMinute {
            family: Family::Chat,
            model: "m1".into(),
            minute: traffic(at, 100, 0),
        }],
        deployments: p1_failing("status_error"),
        providers: None,
    });
    assert!(out.writes.iter().any(|w| matches!(
        w,
        Write::AddUpdate {
            status: Identified,
            ..
        }
    )));
    h.writer.push(out.writes);
    h.store
        .inner
        .add_update(id, Resolved, "Fixed by hand.", h.now + 5_000)
        .unwrap();
    h.flush();
    let inc = h.store.inner.incident(id).unwrap().unwrap();
    assert_eq!(inc.incident.status, Resolved);
    assert_eq!(inc.incident.resolved_at, Some(h.now + 5_000));
    assert_eq!(statuses(&inc), [Investigating, Resolved]);
    // The automation let it go: nothing more is written to it.
    for _ in 0..40 {
        h.minute(100, 0, p1_failing("status_error"));
    }
    let inc = h.store.inner.incident(id).unwrap().unwrap();
    assert_eq!(statuses(&inc), [Investigating, Resolved]);
    assert_eq!(h.writer.pending(), 0);
}

#[test]
fn an_operators_open_incident_covers_its_components() {
    let mut h = H::new(settings());
    let manual = operator_incident(
        &h,
        "Elevated errors on Chat",
        Investigating,
        &["chat-m1"],
        T0,
    );
    for _ in 0..10 {
        h.minute(100, 0, p1_failing("status_error"));
    }
    assert_eq!(h.status("chat-m1"), ComponentStatus::MajorOutage);
    assert_eq!(h.status("gateway"), ComponentStatus::MajorOutage);
    let all = h.incidents();
    assert_eq!(
        all.len(),
        1,
        "no automatic duplicate, not even for the gateway"
    );
    assert_eq!(all[0].incident.id, manual);
    assert_eq!(all[0].incident_updates.len(), 1, "never touched");

    // Another model fails as well: a problem the operator's incident does
    // not explain gets its own.
    let both = |h: &mut H| {
        let at = h.now;
        let t = |model: &str| TrafficMinute {
            family: Family::Chat,
            model: model.into(),
            minute: traffic(at, 100, 0),
        };
        h.tick_at(at + MIN, vec![t("m1"), t("m2")], p1_failing("status_error"));
    };
    for _ in 0..4 {
        both(&mut h);
    }
    let auto: Vec<_> = h
        .incidents()
        .into_iter()
        .filter(|i| i.incident.automatic)
        .collect();
    assert_eq!(auto.len(), 1);
    assert!(auto[0].incident.components.contains(&"chat-m2".to_string()));
    assert!(!auto[0].incident.components.contains(&"chat-m1".to_string()));

    // Once the operator resolves theirs, a problem that lasts is covered by
    // the automation again.
    h.store
        .inner
        .add_update(manual, Resolved, "Handed over.", h.now)
        .unwrap();
    for _ in 0..4 {
        both(&mut h);
    }
    let covered: Vec<String> = h
        .incidents()
        .into_iter()
        .filter(|i| i.incident.automatic && i.incident.status.is_open())
        .flat_map(|i| i.incident.components)
        .collect();
    assert!(covered.contains(&"chat-m1".to_string()), "{covered:?}");
}

#[test]
fn deployments_are_named_only_with_show_providers() {
    let texts = |show_providers: bool| {
        let mut h = H::new(Settings {
            show_providers,
            ..settings()
        });
        for _ in 0..3 {
            h.minute(100, 100, healthy());
        }
        for _ in 0..40 {
            h.minute(100, 70, p1_failing("timeout"));
        }
        let mut texts = Vec::new();
        for i in h.incidents() {
            texts.push(i.incident.name.clone());
            texts.extend(i.incident_updates.iter().map(|u| u.body.clone()));
        }
        assert!(texts.len() >= 3, "{texts:?}");
        texts
    };
    for t in texts(false) {
        assert!(!t.contains("p1") && !t.contains("p2"), "{t}");
    }
    let named = texts(true).join("\n");
    assert!(named.contains("p1/m1 (circuit open"), "{named}");
    assert!(named.contains("Traffic was moved to p2/m1"), "{named}");
}
