//! The `/api/v2/` documents against the reference model
//! (`statuspage-api.md`): the example `summary.json`, key by key and value
//! by value, the filters of each document and the enumerations.

use serde_json::{json, Value};

use super::*;
use crate::render::json::{documents, PATHS};

/// The reference model's example `summary.json`, verbatim.
const REFERENCE_SUMMARY: &str = r#"{
  "page": {"id": "gw01page", "name": "Acme AI Gateway", "url": "https://status.acme.ai",
           "time_zone": "Etc/UTC", "updated_at": "2026-08-23T10:05:00.000Z"},
  "status": {"indicator": "minor", "description": "Partially Degraded Service"},
  "components": [
    {"id": "grpapis01", "name": "APIs", "status": "degraded_performance", "created_at": "2026-01-01T00:00:00.000Z",
     "updated_at": "2026-08-23T10:04:00.000Z", "position": 1, "description": null, "showcase": false,
     "start_date": null, "group_id": null, "page_id": "gw01page", "group": true, "only_show_if_degraded": false,
     "components": ["cmpchat001", "cmpembed01"]},
    {"id": "cmpchat001", "name": "Chat Completions", "status": "degraded_performance",
     "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-08-23T10:04:00.000Z", "position": 1,
     "description": "POST /v1/chat/completions", "showcase": true, "start_date": "2026-01-01",
     "group_id": "grpapis01", "page_id": "gw01page", "group": false, "only_show_if_degraded": false},
    {"id": "cmpembed01", "name": "Embeddings", "status": "operational", "created_at": "2026-01-01T00:00:00.000Z",
     "updated_at": "2026-08-20T08:00:00.000Z", "position": 2, "description": null, "showcase": true,
     "start_date": "2026-01-01", "group_id": "grpapis01", "page_id": "gw01page", "group": false,
     "only_show_if_degraded": false}
  ],
  "incidents": [
    {"id": "inc7k2q9x1", "name": "Elevated latency on Chat Completions", "status": "investigating",
     "impact": "minor", "created_at": "2026-08-23T10:02:00.000Z", "updated_at": "2026-08-23T10:04:00.000Z",
     "monitoring_at": null, "resolved_at": null, "started_at": "2026-08-23T09:58:00.000Z",
     "shortlink": "https://status.acme.ai/incidents/inc7k2q9x1", "page_id": "gw01page",
     "incident_updates": [
       {"id": "upd1", "status": "investigating", "incident_id": "inc7k2q9x1",
        "body": "p95 latency is 2.4x the weekly baseline for one upstream; traffic is being shifted.",
        "created_at": "2026-08-23T10:04:00.000Z", "updated_at": "2026-08-23T10:04:00.000Z",
        "display_at": "2026-08-23T10:04:00.000Z", "deliver_notifications": true,
        "custom_tweet": null, "tweet_id": null,
        "affected_components": [{"code": "cmpchat001", "name": "Chat Completions",
                                 "old_status": "operational", "new_status": "degraded_performance"}]}],
     "components": []}
  ],
  "scheduled_maintenances": [
    {"id": "mnt3p8r2", "name": "Database failover drill", "status": "scheduled", "impact": "none",
     "created_at": "2026-08-20T12:00:00.000Z", "updated_at": "2026-08-20T12:00:00.000Z", "monitoring_at": null,
     "resolved_at": null, "started_at": "2026-08-20T12:00:00.000Z",
     "shortlink": "https://status.acme.ai/incidents/mnt3p8r2", "page_id": "gw01page",
     "scheduled_for": "2026-08-30T02:00:00.000Z", "scheduled_until": "2026-08-30T02:30:00.000Z",
     "incident_updates": [], "components": []}
  ]
}"#;

/// One of the `/api/v2/` documents of `page`, parsed.
pub(crate) fn doc(page: &Page, path: &str) -> Value {
    let docs = documents(page).unwrap();
    let index = PATHS.iter().position(|p| *p == path).unwrap();
    serde_json::from_slice(&docs.bodies[index]).unwrap()
}

/// Same keys at every level (objects), comparing each array element with
/// the reference's element at the same index (or its last); a `null` on
/// either side stands for "no value" and is not descended into.
fn same_keys(ours: &Value, reference: &Value, path: &str) {
    match (ours, reference) {
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<&String> = a.keys().collect();
            let mut kb: Vec<&String> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "keys of {path}");
            for (k, v) in a {
                same_keys(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) if !b.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                same_keys(v, &b[i.min(b.len() - 1)], &format!("{path}[{i}]"));
            }
        }
        (Value::Null, _) | (_, Value::Null) | (Value::Array(_), Value::Array(_)) => {}
        (a, b) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "type of {path}: {a} vs {b}"
        ),
    }
}

#[test]
fn summary_matches_the_reference_example() {
    let ours = doc(&reference_page(), "summary.json");
    let reference: Value = serde_json::from_str(REFERENCE_SUMMARY).unwrap();
    same_keys(&ours, &reference, "summary");

    // page, status and components: identical, value for value.
    assert_eq!(ours["page"], reference["page"]);
    assert_eq!(ours["status"], reference["status"]);
    assert_eq!(ours["components"], reference["components"]);

    // The incident: the same values except those the reference's ids and
    // start time make different.
    let (inc, rinc) = (&ours["incidents"][0], &reference["incidents"][0]);
    for key in [
        "name",
        "status",
        "impact",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "page_id",
    ] {
        assert_eq!(inc[key], rinc[key], "incident.{key}");
    }
    assert_eq!(inc["id"], "7");
    assert_eq!(inc["started_at"], "2026-08-23T10:02:00.000Z");
    assert_eq!(
        inc["shortlink"],
        "https://status.acme.ai/status/incidents/7"
    );
    assert_eq!(inc["components"], json!([reference["components"][1]]));
    let (u, ru) = (&inc["incident_updates"][0], &rinc["incident_updates"][0]);
    for key in [
        "status",
        "body",
        "created_at",
        "updated_at",
        "display_at",
        "deliver_notifications",
        "custom_tweet",
        "tweet_id",
    ] {
        assert_eq!(u[key], ru[key], "incident_update.{key}");
    }
    assert_eq!(u["id"], "1");
    assert_eq!(u["incident_id"], "7");
    assert_eq!(u["affected_components"], Value::Null);

    let (m, rm) = (
        &ours["scheduled_maintenances"][0],
        &reference["scheduled_maintenances"][0],
    );
    for key in [
        "name",
        "status",
        "impact",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "started_at",
        "page_id",
        "scheduled_for",
        "scheduled_until",
        "components",
    ] {
        assert_eq!(m[key], rm[key], "scheduled_maintenance.{key}");
    }
    assert_eq!(m["id"], "3");
    assert_eq!(
        m["shortlink"],
        "https://status.acme.ai/status#maintenance-3"
    );
    assert_eq!(
        m["incident_updates"][0]["body"],
        "We will fail the database over to its replica."
    );
    assert_eq!(m["incident_updates"][0]["status"], "scheduled");
}

#[test]
fn every_document_has_its_shape_and_filter() {
    let page = rich_page();
    let reference: Value = serde_json::from_str(REFERENCE_SUMMARY).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };

    let status = doc(&page, "status.json");
    assert_eq!(keys(&status), ["page", "status"]);
    assert_eq!(status["page"]["updated_at"], "2026-08-23T10:05:00.000Z");

    let components = doc(&page, "components.json");
    assert_eq!(keys(&components), ["components", "page"]);
    same_keys(
        &components["components"],
        &reference["components"],
        "components",
    );
    assert_eq!(
        ids(&components["components"]),
        ["grpapis01", "cmpchat001", "cmpembed01"]
    );

    // All incidents, newest first, resolved included; updates newest first.
    let incidents = doc(&page, "incidents.json");
    assert_eq!(keys(&incidents), ["incidents", "page"]);
    assert_eq!(ids(&incidents["incidents"]), ["7", "5"]);
    let resolved = &incidents["incidents"][1];
    same_keys(resolved, &reference["incidents"][0], "incident");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["impact"], "major");
    assert_eq!(resolved["resolved_at"], "2026-08-20T08:30:00.000Z");
    assert_eq!(resolved["monitoring_at"], "2026-08-20T08:10:00.000Z");
    assert_eq!(ids(&resolved["incident_updates"]), ["4", "3", "2"]);
    assert_eq!(resolved["components"][0]["id"], "cmpembed01");

    let unresolved = doc(&page, "incidents/unresolved.json");
    assert_eq!(ids(&unresolved["incidents"]), ["7"]);

    let all = doc(&page, "scheduled-maintenances.json");
    assert_eq!(keys(&all), ["page", "scheduled_maintenances"]);
    assert_eq!(ids(&all["scheduled_maintenances"]), ["3", "4", "2"]);
    for m in all["scheduled_maintenances"].as_array().unwrap() {
        same_keys(
            m,
            &reference["scheduled_maintenances"][0],
            "scheduled_maintenance",
        );
    }
    let completed = &all["scheduled_maintenances"][2];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["resolved_at"], "2026-08-20T12:00:00.000Z");
    assert_eq!(
        all["scheduled_maintenances"][1]["components"][0]["id"],
        "cmpembed01"
    );
    assert_eq!(
        ids(&doc(&page, "scheduled-maintenances/upcoming.json")["scheduled_maintenances"]),
        ["3"]
    );
    assert_eq!(
        ids(&doc(&page, "scheduled-maintenances/active.json")["scheduled_maintenances"]),
        ["4"]
    );

    // The summary: unresolved incidents, upcoming and active maintenance.
    let summary = doc(&page, "summary.json");
    assert_eq!(
        keys(&summary),
        [
            "components",
            "incidents",
            "page",
            "scheduled_maintenances",
            "status"
        ]
    );
    assert_eq!(ids(&summary["incidents"]), ["7"]);
    assert_eq!(ids(&summary["scheduled_maintenances"]), ["3", "4"]);
}

#[test]
fn enumerations_and_rollup() {
    use ComponentStatus::*;
    let component_values = [
        "operational",
        "degraded_performance",
        "partial_outage",
        "major_outage",
        "under_maintenance",
    ];
    let indicators = ["none", "minor", "major", "critical", "maintenance"];
    let descriptions = [
        "All Systems Operational",
        "Major System Outage",
        "Partial System Outage",
        "Minor Service Outage",
        "Degraded System Service",
        "Partially Degraded Service",
        "Service Under Maintenance",
    ];
    let cases: &[(&[ComponentStatus], &str, &str)] = &[
        (&[], "none", "All Systems Operational"),
        (
            &[Operational, Operational],
            "none",
            "All Systems Operational",
        ),
        (
            &[MajorOutage, MajorOutage],
            "critical",
            "Major System Outage",
        ),
        (
            &[MajorOutage, Operational],
            "major",
            "Partial System Outage",
        ),
        (
            &[PartialOutage, Operational],
            "minor",
            "Minor Service Outage",
        ),
        (
            &[DegradedPerformance, DegradedPerformance],
            "minor",
            "Degraded System Service",
        ),
        (
            &[DegradedPerformance, Operational],
            "minor",
            "Partially Degraded Service",
        ),
        (
            &[UnderMaintenance, Operational],
            "maintenance",
            "Service Under Maintenance",
        ),
    ];
    for (statuses, indicator, description) in cases {
        let mut page = reference_page();
        page.groups.clear();
        page.incidents.clear();
        page.components = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| component(&format!("c{i}"), "C", *s))
            .collect();
        let status = doc(&page, "status.json");
        assert_eq!(status["status"]["indicator"], *indicator, "{statuses:?}");
        assert_eq!(
            status["status"]["description"], *description,
            "{statuses:?}"
        );
        assert!(indicators.contains(&status["status"]["indicator"].as_str().unwrap()));
        assert!(descriptions.contains(&status["status"]["description"].as_str().unwrap()));
        for (c, s) in doc(&page, "components.json")["components"]
            .as_array()
            .unwrap()
            .iter()
            .zip(*statuses)
        {
            assert_eq!(c["status"], s.as_str());
            assert!(component_values.contains(&c["status"].as_str().unwrap()));
            assert_eq!(c["group"], false);
            assert_eq!(c["group_id"], Value::Null);
        }
    }

    // Every incident status and impact, every maintenance status.
    let mut page = reference_page();
    page.incidents = [
        (IncidentStatus::Investigating, Impact::None),
        (IncidentStatus::Identified, Impact::Minor),
        (IncidentStatus::Monitoring, Impact::Major),
        (IncidentStatus::Resolved, Impact::Critical),
        (IncidentStatus::Postmortem, Impact::Minor),
    ]
    .iter()
    .enumerate()
    .map(|(i, (s, impact))| {
        incident(
            i as i64 + 1,
            "x",
            *s,
            *impact,
            &[],
            &[(i as i64 + 1, *s, "b", T1004)],
        )
    })
    .collect();
    page.maintenances = [
        MaintenanceStatus::Scheduled,
        MaintenanceStatus::InProgress,
        MaintenanceStatus::Verifying,
        MaintenanceStatus::Completed,
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| maintenance(i as i64 + 1, "m", *s))
    .collect();
    let incidents = doc(&page, "incidents.json");
    let statuses: Vec<&str> = incidents["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "investigating",
            "identified",
            "monitoring",
            "resolved",
            "postmortem"
        ]
    );
    let impacts: Vec<&str> = incidents["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["impact"].as_str().unwrap())
        .collect();
    assert_eq!(impacts, ["none", "minor", "major", "critical", "minor"]);
    assert_eq!(
        incidents["incidents"][4]["incident_updates"][0]["status"],
        "postmortem"
    );
    let unresolved = doc(&page, "incidents/unresolved.json");
    assert_eq!(unresolved["incidents"].as_array().unwrap().len(), 3);
    let all = doc(&page, "scheduled-maintenances.json");
    let statuses: Vec<&str> = all["scheduled_maintenances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["scheduled", "in_progress", "verifying", "completed"]
    );
    let active = doc(&page, "scheduled-maintenances/active.json");
    let statuses: Vec<&str> = active["scheduled_maintenances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["in_progress", "verifying"]);
    // An open critical incident raises the rollup over operational
    // components.
    assert_eq!(doc(&page, "status.json")["status"]["indicator"], "major");
}

#[test]
fn ungrouped_components_and_empty_groups() {
    let mut page = reference_page();
    page.components.push(component(
        "gateway",
        "Gateway",
        ComponentStatus::Operational,
    ));
    page.groups.push(Group {
        id: "empty".into(),
        name: "Nothing yet".into(),
        components: vec![],
    });
    let components = doc(&page, "components.json")["components"].clone();
    let rows: Vec<(String, i64, bool)> = components
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().into(),
                c["position"].as_i64().unwrap(),
                c["group"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("grpapis01".to_string(), 1, true),
            ("cmpchat001".to_string(), 1, false),
            ("cmpembed01".to_string(), 2, false),
            ("gateway".to_string(), 2, false),
            ("empty".to_string(), 3, true),
        ]
    );
    assert_eq!(components[4]["components"], json!([]));
    assert_eq!(components[4]["status"], "operational");
}
