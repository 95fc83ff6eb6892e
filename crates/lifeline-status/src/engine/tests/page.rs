//! The page: layout, history, restoration estimates, change detection.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::engine::settings::DAY_MS;
use crate::eta::{Basis, Eta, Pool, Source};
use crate::page::Component;

#[test]
fn the_default_layout_grows_with_the_families_in_use() {
    let mut h = H::new(settings());
    let page = h.page();
    let ids: Vec<&str> = page.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["gateway", "chat-m1", "chat-m2"]);
    assert_eq!(page.groups.len(), 1);
    assert_eq!(page.groups[0].id, "group-chat-completions");
    assert_eq!(page.groups[0].name, "Chat Completions");
    assert_eq!(page.groups[0].components, ["chat-m1", "chat-m2"]);
    assert_eq!(page.name, "Acme status");
    assert_eq!(page.url, "https://status.example");

    let at = h.now;
    h.tick_at(
        at + MIN,
        vec![TrafficMinute {
            family: Family::Embeddings,
            model: "m2".into(),
            minute: traffic(at, 5, 5),
        }],
        Vec::new(),
    );
    let page = h.page();
    let ids: Vec<&str> = page.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["gateway", "chat-m1", "chat-m2", "embeddings-m2"]);
    assert_eq!(page.groups[1].name, "Embeddings");
    let e = page.component("embeddings-m2").unwrap();
    assert_eq!(e.group_id.as_deref(), Some("group-embeddings"));
    // Its first minute counted for it and for the gateway, not for chat.
    assert_eq!(e.uptime.last().unwrap().requests, 5);
    assert_eq!(
        page.component("gateway")
            .unwrap()
            .uptime
            .last()
            .unwrap()
            .requests,
        5
    );
    assert_eq!(
        page.component("chat-m2")
            .unwrap()
            .uptime
            .last()
            .unwrap()
            .requests,
        0
    );

    // After a restart, history in the store brings a family back.
    let mut h = H::new(settings());
    h.engine.load_history(
        "images-m1",
        &[],
        &[SliMinute {
            minute: traffic(T0 - 60 * MIN, 2, 2),
            status: "operational".into(),
        }],
    );
    let page = h.page();
    let images = page.component("images-m1").unwrap();
    assert_eq!(images.group_id.as_deref(), Some("group-images"));
    assert_eq!(images.uptime.last().unwrap().requests, 2);
    assert_eq!(images.created_at, T0 - 60 * MIN);
}

#[test]
fn configured_components_and_the_providers_group() {
    let s = Settings {
        components: Some(vec![
            ComponentConfig {
                id: "api".into(),
                name: "API".into(),
                description: Some("Everything".into()),
                group: None,
                models: Vec::new(),
                endpoints: Vec::new(),
                slo: SloOverrides::default(),
            },
            ComponentConfig {
                id: "fast".into(),
                name: "Fast chat".into(),
                description: None,
                group: Some("Models".into()),
                models: vec!["m1".into()],
                endpoints: vec![Family::Chat],
                slo: SloOverrides {
                    availability: Some(0.99),
                    ..SloOverrides::default()
                },
            },
        ]),
        show_providers: true,
        burn_rules: Vec::new(),
        ..settings()
    };
    let mut h = H::new(s);
    for _ in 0..3 {
        h.minute(100, 100, p1_failing("status_error"));
    }
    let page = h.page();
    let ids: Vec<&str> = page.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["api", "fast", "provider-p1", "provider-p2"]);
    assert_eq!(page.groups[0].name, "Models");
    assert_eq!(page.groups[0].id, "group-models");
    assert_eq!(page.groups[1].id, "group-upstream-providers");
    let fast = page.component("fast").unwrap();
    assert_eq!(fast.slo.as_ref().unwrap().availability_target, 0.99);
    assert_eq!(fast.status, ComponentStatus::Operational);
    // p1's breaker is open and all its attempts fail; p2 answers.
    assert_eq!(
        page.component("provider-p1").unwrap().status,
        ComponentStatus::MajorOutage
    );
    assert_eq!(
        page.component("provider-p2").unwrap().status,
        ComponentStatus::Operational
    );
    assert!(page.component("provider-p1").unwrap().slo.is_none());
}

#[test]
fn day_bars_charts_and_effective_versus_upstream() {
    let mut h = H::new(settings());
    let today = settings::day_floor(T0);
    let mut yesterday = traffic(0, 10_000, 9_990);
    yesterday.upstream_ok = 9_000;
    h.engine.load_history(
        "chat-m1",
        &[SliDay {
            day: today - DAY_MS,
            totals: yesterday,
            status_minutes: StatusMinutes {
                operational: 1400,
                degraded_performance: 40,
                ..StatusMinutes::default()
            },
            upstream_down_minutes: 0,
        }],
        &[],
    );
    // A resolved incident two days ago touched chat-m1.
    let past = h
        .store
        .inner
        .create_incident(&NewIncident {
            name: "Old".into(),
            status: IncidentStatus::Investigating,
            impact: lifeline_store::Impact::Critical,
            body: "x".into(),
            components: vec!["chat-m1".into()],
            automatic: false,
            draft: false,
            cause: None,
            at_ms: today - 2 * DAY_MS + 3_600_000,
        })
        .unwrap();
    h.store
        .inner
        .add_update(
            past.incident.id,
            IncidentStatus::Resolved,
            "ok",
            today - 2 * DAY_MS + 7_200_000,
        )
        .unwrap();
    // Today: the upstream fails 40 minutes, Lifeline's failover keeps
    // clients whole but for 3 requests.
    for k in 0..60 {
        let mut m = traffic(0, 100, 100);
        if k < 40 {
            m.upstream_attempts = 150;
            m.upstream_ok = 100;
            m.upstream_attempts += 100;
        }
        if k == 0 {
            m.good = 97;
        }
        m.ttft[bucket_of(400)] = 10;
        h.minute_with(m, healthy());
    }
    let page = h.page();
    let c = page.component("chat-m1").unwrap();
    assert_eq!(c.uptime.len(), 90);
    let bars = &c.uptime;
    let (two_ago, yday, now) = (&bars[87], &bars[88], &bars[89]);
    assert_eq!(now.day, today);
    assert_eq!(two_ago.incidents, [past.incident.id]);
    assert_eq!(two_ago.worst, ComponentStatus::MajorOutage);
    assert_eq!(two_ago.effective, None);
    assert_eq!(yday.requests, 10_000);
    assert_eq!(yday.effective, Some(0.999));
    assert_eq!(yday.upstream, Some(0.9));
    assert_eq!(yday.worst, ComponentStatus::DegradedPerformance);
    assert_eq!(now.requests, 6_000);
    assert_eq!(now.effective, Some(5_997.0 / 6_000.0));
    assert!(now.incidents.is_empty());
    assert_eq!(c.effective_24h, Some(5_997.0 / 6_000.0));
    assert_eq!(
        c.upstream_24h,
        Some((40.0 * 100.0 + 20.0 * 100.0) / (40.0 * 250.0 + 20.0 * 100.0))
    );
    assert_eq!(c.upstream_down_minutes_24h, 40);
    // One latency point per 5 minutes with traffic.
    assert_eq!(c.latency.len(), 12);
    assert_eq!(c.latency[0].at, T0);
    assert_eq!(c.latency[0].p50_ms, Some(100.0));
    assert_eq!(c.latency[0].ttft_p50_ms, Some(500.0));
}

#[test]
fn the_eta_of_an_open_incident_is_the_conditional_median() {
    let mut h = H::new(settings());
    let new = |name: &str, at: i64| NewIncident {
        name: name.into(),
        status: IncidentStatus::Investigating,
        impact: lifeline_store::Impact::Major,
        body: "x".into(),
        components: vec!["chat-m1".into()],
        automatic: true,
        draft: false,
        cause: Some("provider_errors".into()),
        at_ms: at,
    };
    // Twelve past incidents resolved after 10, 20, …, 120 minutes.
    for k in 1..=12 {
        let start = T0 - 30 * DAY_MS + k * DAY_MS;
        let i = h.store.inner.create_incident(&new("past", start)).unwrap();
        h.store
            .inner
            .add_update(
                i.incident.id,
                IncidentStatus::Resolved,
                "ok",
                start + k * 10 * MIN,
            )
            .unwrap();
    }
    // One still open after 100 minutes (censored), another a draft (not
    // counted), and the current one, open for 25 minutes.
    h.store
        .inner
        .create_incident(&NewIncident {
            automatic: false,
            ..new("censored", T0 + 35 * MIN - 100 * MIN)
        })
        .unwrap();
    h.store
        .inner
        .create_incident(&NewIncident {
            draft: true,
            automatic: false,
            ..new("draft", T0 - DAY_MS)
        })
        .unwrap();
    let current = h
        .store
        .inner
        .create_incident(&NewIncident {
            automatic: false,
            ..new("current", T0 + 10 * MIN)
        })
        .unwrap();
    h.tick_at(T0 + 35 * MIN, Vec::new(), Vec::new());
    let page = h.page();
    let view = page
        .incidents
        .iter()
        .find(|i| i.incident.incident.id == current.incident.id)
        .unwrap();
    let eta = view.eta.unwrap();
    assert_eq!(eta.elapsed, Duration::from_secs(25 * 60));
    // Incidents that lasted longer than 25 minutes: 30, 40, …, 120 (ten
    // resolved) and the censored one at 100: n = 11. Kaplan–Meier from 25
    // on: 10/11 at 30, 9/11 at 40, 8/11 at 50, 7/11 at 60, 6/11 at 70,
    // 5/11 at 80 ≤ 1/2: the median resolution is at 80, 55 more minutes.
    // (Finished incidents alone would say 70: 45 more.) Too few for a
    // 90th percentile.
    assert_eq!(
        eta.eta,
        Eta::Estimate {
            median: Duration::from_secs(55 * 60),
            p90: None,
            basis: Basis {
                pool: Pool::ComponentAndCause,
                source: Source::Local,
                n: 11,
            },
        }
    );
    // An operator's estimate wins: resolved expected in 10 minutes.
    h.store
        .inner
        .set_expected_resolved_at(current.incident.id, Some(h.now + 10 * MIN), h.now)
        .unwrap();
    h.flush();
    let page = h.page();
    let view = page
        .incidents
        .iter()
        .find(|i| i.incident.incident.id == current.incident.id)
        .unwrap();
    assert_eq!(
        view.eta.unwrap().eta,
        Eta::Override {
            remaining: Duration::from_secs(600)
        }
    );
}

#[test]
fn the_page_changes_only_when_something_changes() {
    let mut h = H::new(Settings {
        show_providers: true,
        ..settings()
    });
    h.minute(100, 100, healthy());
    let first = h.engine.build_page(h.now);
    let again = h.engine.build_page(h.now + 10_000);
    assert!(!again.changed);
    assert_eq!(again.page.updated_at, first.page.updated_at);
    assert_eq!(again.page.generated_at, h.now + 10_000);
    h.minute(100, 100, healthy());
    let next = h.engine.build_page(h.now);
    assert!(next.changed);
    assert_eq!(next.page.updated_at, h.now);
    // Providers' reports are passed through.
    let report = ProviderReport {
        provider: "p1".into(),
        source_url: "https://status.p1.example".into(),
        indicator: Some("minor".into()),
        description: Some("Partially Degraded Service".into()),
        incidents: Vec::new(),
        fetched_at: Some(h.now),
    };
    h.engine.tick(TickInput {
        now_ms: h.now,
        providers: Some(vec![report.clone()]),
        ..TickInput::default()
    });
    let built = h.engine.build_page(h.now);
    assert!(built.changed);
    assert_eq!(built.page.providers, [report]);
}

#[test]
fn providers_reports_only_with_show_providers_and_without_secrets() {
    let report = ProviderReport {
        provider: "p1".into(),
        source_url: "https://user:pw@status.p1.example/api/v2/summary.json?api_key=s3cret#top"
            .into(),
        indicator: Some("minor".into()),
        description: Some("Partially Degraded Service".into()),
        incidents: Vec::new(),
        fetched_at: Some(T0),
    };
    let page = |show_providers: bool| {
        let mut h = H::new(Settings {
            show_providers,
            ..settings()
        });
        h.engine.tick(TickInput {
            now_ms: h.now,
            providers: Some(vec![report.clone()]),
            ..TickInput::default()
        });
        h.page()
    };
    assert!(page(false).providers.is_empty());
    let mut shown = page(true);
    assert_eq!(
        shown.providers[0].source_url,
        "https://status.p1.example/api/v2/summary.json"
    );
    // The HTML strips them too, whatever page it is given.
    shown.providers[0].source_url = report.source_url.clone();
    let html = crate::render::html::status_page(
        &shown,
        crate::render::Lang::En,
        crate::render::html::LinkMode::Live,
        &crate::render::markdown::Bodies::new(&shown),
    )
    .unwrap();
    assert!(html.contains("https://status.p1.example/api/v2/summary.json"));
    assert!(
        !html.contains("s3cret") && !html.contains("user:pw"),
        "{html}"
    );
}

fn component(id: &str, name: &str, group: Option<&str>) -> ComponentConfig {
    ComponentConfig {
        id: id.into(),
        name: name.into(),
        description: None,
        group: group.map(Into::into),
        models: vec!["m1".into()],
        endpoints: Vec::new(),
        slo: SloOverrides::default(),
    }
}

/// The `id`s of `components.json`.
fn json_ids(page: &Page) -> Vec<String> {
    let docs = crate::render::json::documents(page).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&docs.bodies[2]).unwrap();
    v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_unique(ids: &[String]) {
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "{ids:?}");
    assert!(ids.iter().all(|id| !id.is_empty()), "{ids:?}");
}

#[test]
fn component_and_group_ids_are_unique_and_never_empty() {
    // A component named like its group, groups whose names have no ASCII
    // slug, a component id that a generated one would take.
    let s = Settings {
        components: Some(vec![
            component("chat", "Chat", Some("Chat")),
            component("a", "A", Some("模型")),
            component("b", "B", Some("接口")),
            component("group-chat", "Odd", None),
            component("provider-p1", "Named like a provider", None),
        ]),
        show_providers: true,
        ..settings()
    };
    let mut h = H::new(s);
    h.minute(100, 100, healthy());
    let page = h.page();
    let ids = json_ids(&page);
    assert_unique(&ids);
    // The HTML's element ids too.
    let html = crate::render::html::status_page(
        &page,
        crate::render::Lang::En,
        crate::render::html::LinkMode::Live,
        &crate::render::markdown::Bodies::new(&page),
    )
    .unwrap();
    let dom: Vec<String> = html
        .split(" id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    assert_unique(&dom);
    assert_eq!(page.groups.len(), 4, "{:?}", page.groups);
    let group = |name: &str| page.groups.iter().find(|g| g.name == name).unwrap();
    assert_eq!(group("Chat").components, ["chat"]);
    assert_eq!(group("模型").components, ["a"]);
    assert_eq!(group("接口").components, ["b"]);
    assert!(group("模型").id.starts_with("group-") && group("模型").id.len() == 14);
    assert_ne!(group("Chat").id, "group-chat");
    assert_eq!(
        page.component("chat").unwrap().group_id,
        Some(group("Chat").id.clone())
    );
    // Stable: the same ids on every build.
    let again = H::new(Settings {
        components: Some(vec![
            component("chat", "Chat", Some("Chat")),
            component("a", "A", Some("模型")),
            component("b", "B", Some("接口")),
            component("group-chat", "Odd", None),
            component("provider-p1", "Named like a provider", None),
        ]),
        show_providers: true,
        ..settings()
    })
    .page();
    assert_eq!(
        again.groups.iter().map(|g| &g.id).collect::<Vec<_>>(),
        page.groups[..3].iter().map(|g| &g.id).collect::<Vec<_>>()
    );

    // The default layout: models whose slugs collide, and one named like
    // a family's group.
    let s = Settings {
        public_models: vec!["GPT-4o".into(), "gpt-4o".into(), "completions".into()],
        ..settings()
    };
    let mut h = H::new(s);
    let at = h.now;
    let t = |model: &str| TrafficMinute {
        family: Family::Chat,
        model: model.into(),
        minute: traffic(at, 10, 10),
    };
    h.tick_at(at + MIN, vec![t("GPT-4o"), t("gpt-4o")], Vec::new());
    let page = h.page();
    let ids = json_ids(&page);
    assert_unique(&ids);
    let chat: Vec<&Component> = page
        .components
        .iter()
        .filter(|c| c.group_id.as_deref() == Some("group-chat-completions"))
        .collect();
    assert_eq!(chat.len(), 3);
    assert_eq!(chat[0].id, "chat-gpt-4o");
    assert!(chat[1].id.starts_with("chat-gpt-4o-"));
    assert_eq!(chat[2].id, "chat-completions");
    // Each model's traffic went to its own component only.
    for c in &chat[..2] {
        assert_eq!(c.uptime.last().unwrap().requests, 10, "{}", c.id);
    }
}

#[test]
fn a_demoted_deployment_shows_as_an_early_warning_when_configured() {
    let demoted = || {
        let mut deps = healthy();
        deps[0].demoted = true;
        deps
    };
    for early_warning in [true, false] {
        let s = Settings {
            show_providers: true,
            early_warning,
            ..settings()
        };
        let mut h = H::new(s);
        h.minute(100, 100, healthy());
        for _ in 0..3 {
            h.minute(100, 100, demoted());
        }
        let want = if early_warning {
            ComponentStatus::DegradedPerformance
        } else {
            ComponentStatus::Operational
        };
        assert_eq!(
            h.status("provider-p1"),
            want,
            "early_warning = {early_warning}"
        );
        assert_eq!(h.status("provider-p2"), ComponentStatus::Operational);
        // The public model's own component reflects its clients' traffic,
        // which is fine.
        assert_eq!(h.status("chat-m1"), ComponentStatus::Operational);
        // Promoted back: operational again after the page's hysteresis.
        for _ in 0..5 {
            h.minute(100, 100, healthy());
        }
        assert_eq!(h.status("provider-p1"), ComponentStatus::Operational);
    }
}
