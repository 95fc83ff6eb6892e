//! Renderer tests: a page shaped like the reference model's example
//! `summary.json` (same ids, names and times), plus hostile and edge
//! variants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod export;
mod feed;
mod hostile;
mod html;
mod i18n;
pub(crate) mod json;
mod serve;

use std::time::Duration;

use lifeline_store::{
    Impact, Incident, IncidentStatus, IncidentUpdate, IncidentWithUpdates, MaintenanceStatus,
    ScheduledMaintenance,
};

use crate::eta::{Basis, Eta, Pool, Source};
use crate::page::{
    BurnAlert, Component, ComponentStatus, DayBar, EtaView, Group, IncidentView, LatencyPoint,
    Page, ProviderIncident, ProviderReport, SloView,
};

/// 2026-08-23T10:05:00Z.
pub(super) const NOW: i64 = 1_787_479_500_000;
/// 2026-01-01T00:00:00Z.
pub(super) const JAN1: i64 = 1_767_225_600_000;
/// 2026-08-23T10:04:00Z.
pub(super) const T1004: i64 = 1_787_479_440_000;
/// 2026-08-20T08:00:00Z.
pub(super) const AUG20_0800: i64 = 1_787_212_800_000;
/// 2026-08-23T10:02:00Z.
pub(super) const T1002: i64 = 1_787_479_320_000;
/// 2026-08-20T12:00:00Z.
pub(super) const AUG20_1200: i64 = 1_787_227_200_000;
/// 2026-08-30T02:00:00Z.
pub(super) const AUG30_0200: i64 = 1_788_055_200_000;
/// 2026-08-30T02:30:00Z.
pub(super) const AUG30_0230: i64 = 1_788_057_000_000;
/// 2026-08-23T00:00:00Z.
pub(super) const AUG23: i64 = 1_787_443_200_000;
const DAY: i64 = 86_400_000;

pub(super) fn component(id: &str, name: &str, status: ComponentStatus) -> Component {
    Component {
        status,
        ..Component::fixture(id, name, JAN1, T1004)
    }
}

pub(super) fn incident(
    id: i64,
    name: &str,
    status: IncidentStatus,
    impact: Impact,
    components: &[&str],
    updates: &[(i64, IncidentStatus, &str, i64)],
) -> IncidentView {
    let created = updates.first().map_or(T1002, |u| u.3);
    let updated = updates.last().map_or(T1002, |u| u.3);
    IncidentView {
        incident: IncidentWithUpdates {
            incident: Incident {
                id,
                name: name.into(),
                status,
                impact,
                created_at: created,
                updated_at: updated,
                resolved_at: (!status.is_open()).then_some(updated),
                components: components.iter().map(|s| s.to_string()).collect(),
                automatic: true,
                draft: false,
                cause: Some("latency".into()),
                expected_resolved_at: None,
            },
            incident_updates: updates
                .iter()
                .map(|&(uid, status, body, at)| IncidentUpdate {
                    id: uid,
                    incident_id: id,
                    status,
                    body: body.into(),
                    created_at: at,
                })
                .collect(),
        },
        eta: None,
    }
}

pub(super) fn maintenance(id: i64, name: &str, status: MaintenanceStatus) -> ScheduledMaintenance {
    ScheduledMaintenance {
        id,
        name: name.into(),
        status,
        scheduled_for: AUG30_0200,
        scheduled_until: AUG30_0230,
        components: vec![],
        body: "We will fail the database over to its replica.".into(),
        created_at: AUG20_1200,
        updated_at: AUG20_1200,
    }
}

/// The reference example's page: one group of two components, one open
/// incident, one upcoming maintenance.
pub(super) fn reference_page() -> Page {
    let mut chat = component(
        "cmpchat001",
        "Chat Completions",
        ComponentStatus::DegradedPerformance,
    );
    chat.description = Some("POST /v1/chat/completions".into());
    chat.group_id = Some("grpapis01".into());
    let mut embed = component("cmpembed01", "Embeddings", ComponentStatus::Operational);
    embed.group_id = Some("grpapis01".into());
    embed.updated_at = AUG20_0800;
    let mut inc = incident(
        7,
        "Elevated latency on Chat Completions",
        IncidentStatus::Investigating,
        Impact::Minor,
        &["cmpchat001"],
        &[(
            1,
            IncidentStatus::Investigating,
            "p95 latency is 2.4x the weekly baseline for one upstream; traffic is being shifted.",
            T1004,
        )],
    );
    inc.incident.incident.created_at = T1002;
    Page {
        id: "gw01page".into(),
        name: "Acme AI Gateway".into(),
        url: "https://status.acme.ai".into(),
        updated_at: NOW,
        generated_at: NOW,
        groups: vec![Group {
            id: "grpapis01".into(),
            name: "APIs".into(),
            components: vec!["cmpchat001".into(), "cmpembed01".into()],
        }],
        components: vec![chat, embed],
        incidents: vec![inc],
        maintenances: vec![maintenance(
            3,
            "Database failover drill",
            MaintenanceStatus::Scheduled,
        )],
        providers: vec![],
        history_behind_since: None,
    }
}

/// The reference page with everything the HTML shows filled in: SLOs,
/// 90 days of bars, a latency chart, an ETA, a resolved incident,
/// maintenances in every state, a provider report, history behind.
pub(super) fn rich_page() -> Page {
    let mut page = reference_page();
    let chat = &mut page.components[0];
    chat.slo = Some(SloView {
        period: Duration::from_secs(30 * 86_400),
        availability_target: 0.999,
        availability: Some(0.9995),
        availability_budget_left: 0.5,
        latency_target: Some(0.99),
        latency_threshold: Some(Duration::from_secs(2)),
        latency_budget_left: Some(-0.2),
        alerts: vec![BurnAlert {
            severity: "page",
            objective: "availability",
            long_window: Duration::from_secs(3600),
            short_window: Duration::from_secs(300),
            burn_rate: 14.4,
            threshold: 14.4,
        }],
    });
    chat.effective_24h = Some(0.9997);
    chat.upstream_24h = Some(0.97);
    chat.upstream_down_minutes_24h = 40;
    chat.uptime = (0..90)
        .map(|i| DayBar {
            day: AUG23 - (89 - i) * DAY,
            effective: if i == 10 { None } else { Some(0.9997) },
            upstream: Some(0.99),
            requests: if i == 10 { 0 } else { 1204 },
            incidents: if i == 89 { vec![7] } else { vec![] },
            worst: if i == 89 {
                ComponentStatus::DegradedPerformance
            } else {
                ComponentStatus::Operational
            },
        })
        .collect();
    chat.latency = (0..288)
        .filter(|i| !(100..110).contains(i))
        .map(|i| LatencyPoint {
            at: NOW - DAY + i * 300_000,
            p50_ms: Some(300.0 + i as f64),
            p99_ms: Some(if i == 200 { 2400.0 } else { 900.0 }),
            ttft_p50_ms: Some(210.0),
        })
        .collect();
    page.components[1].no_recent_data = true;
    page.incidents[0].eta = Some(EtaView {
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
    });
    page.incidents.push(incident(
        5,
        "Errors on Embeddings",
        IncidentStatus::Resolved,
        Impact::Major,
        &["cmpembed01"],
        &[
            (
                2,
                IncidentStatus::Investigating,
                "Errors from one provider.",
                AUG20_0800,
            ),
            (
                3,
                IncidentStatus::Monitoring,
                "Traffic moved; **watching**.",
                AUG20_0800 + 600_000,
            ),
            (
                4,
                IncidentStatus::Resolved,
                "Resolved after a stable period.",
                AUG20_0800 + 1_800_000,
            ),
        ],
    ));
    let mut now = maintenance(4, "Provider migration", MaintenanceStatus::InProgress);
    now.components = vec!["cmpembed01".into()];
    page.maintenances.push(now);
    page.maintenances
        .push(maintenance(2, "Old drill", MaintenanceStatus::Completed));
    page.providers.push(ProviderReport {
        provider: "openai".into(),
        source_url: "https://status.openai.com/api/v2/summary.json".into(),
        indicator: Some("minor".into()),
        description: Some("Partially Degraded Service".into()),
        incidents: vec![ProviderIncident {
            name: "Elevated errors on Chat Completions".into(),
            status: "investigating".into(),
            started_at: T1002 - 120_000,
            url: Some("https://status.openai.com/incidents/abc".into()),
        }],
        fetched_at: Some(NOW),
    });
    page.providers.push(ProviderReport {
        provider: "anthropic".into(),
        source_url: "https://status.anthropic.com/api/v2/summary.json".into(),
        indicator: None,
        description: None,
        incidents: vec![],
        fetched_at: None,
    });
    page.history_behind_since = Some(T1002);
    page
}

/// The start tags of an HTML document with their attributes (names
/// lowercased, values as written), skipping the contents of `<style>` and
/// `<script>` elements. Escaped text (`&lt;img …`) is text, not a tag.
pub(crate) fn start_tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find('>').unwrap_or(rest.len());
        let inner = &rest[..end];
        let name_end = inner
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(inner.len());
        let name = inner[..name_end].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut a = &inner[name_end..];
        loop {
            a = a.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if a.is_empty() {
                break;
            }
            let n_end = a
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(a.len());
            let attr = a[..n_end].to_ascii_lowercase();
            a = a[n_end..].trim_start();
            let mut value = String::new();
            if let Some(v) = a.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') {
                    let close = v[1..].find(q).map_or(v.len(), |i| i + 1);
                    value = v[1..close].to_string();
                    a = v.get(close + 1..).unwrap_or("");
                } else {
                    let v_end = v.find(char::is_whitespace).unwrap_or(v.len());
                    value = v[..v_end].to_string();
                    a = &v[v_end..];
                }
            }
            attrs.push((attr, value));
        }
        rest = &rest[end..];
        if name == "style" || name == "script" {
            let close = format!("</{name}>");
            rest = rest.find(&close).map_or("", |i| &rest[i..]);
        }
        out.push((name, attrs));
    }
    out
}

/// No active markup: at most `scripts` script elements (the page's own),
/// no image, frame, object or form, no event handler attribute, no link or
/// source with a scheme other than http(s), mailto or a relative path (but
/// the page's own empty icon, `<link rel="icon" href="data:,">`, which keeps
/// browsers from asking for a favicon).
pub(crate) fn assert_inert(what: &str, html: &str, scripts: usize) {
    let tags = start_tags(html);
    let count = tags.iter().filter(|(n, _)| n == "script").count();
    assert!(count <= scripts, "{what}: {count} script elements");
    for (name, attrs) in &tags {
        assert!(
            ![
                "img",
                "iframe",
                "object",
                "embed",
                "form",
                "input",
                "base",
                "meta http-equiv"
            ]
            .contains(&name.as_str()),
            "{what}: <{name}>"
        );
        let empty_icon = name == "link"
            && attrs.iter().any(|(a, v)| a == "rel" && v == "icon")
            && attrs.iter().any(|(a, v)| a == "href" && v == "data:,");
        for (attr, value) in attrs {
            assert!(!attr.starts_with("on"), "{what}: <{name} {attr}={value:?}>");
            if empty_icon && attr == "href" {
                continue;
            }
            if matches!(
                attr.as_str(),
                "href" | "src" | "xlink:href" | "action" | "formaction"
            ) {
                let v = value.trim().to_ascii_lowercase();
                let scheme = v
                    .split_once(':')
                    .map(|(s, _)| s)
                    .filter(|s| !s.contains('/') && !s.contains('?'));
                assert!(
                    matches!(scheme, None | Some("http" | "https" | "mailto")),
                    "{what}: <{name} {attr}={value:?}>"
                );
            }
        }
    }
}

#[test]
fn the_markup_checker_catches_what_it_should() {
    let caught = |html: &str| std::panic::catch_unwind(|| assert_inert("t", html, 0)).is_err();
    assert!(caught("<p><img src=x onerror=alert(1)></p>"));
    assert!(caught("<a href=\"javascript:alert(1)\">x</a>"));
    assert!(caught("<a href=' JavaScript:alert(1)'>x</a>"));
    assert!(caught("<div onclick=\"x\">"));
    assert!(caught("<script>alert(1)</script>"));
    assert!(caught("<a href=\"data:,\">x</a>"));
    assert!(caught("<link rel=\"icon\" href=\"data:text/html,x\">"));
    assert!(!caught("<link rel=\"icon\" href=\"data:,\">"));
    assert!(!caught(
        "<p title=\"a onerror=b\">&lt;img src=x onerror=alert(1)&gt; javascript:alert(1)</p>"
    ));
    assert!(!caught(
        "<a href=\"https://x.y/a:b\">x</a><a href=\"../index.html\">y</a>"
    ));
}
