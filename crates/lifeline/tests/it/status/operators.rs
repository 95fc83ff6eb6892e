//! Operators: incidents opened, updated, resolved, drafted and published,
//! and maintenance scheduled and cancelled, through the `lifeline` CLI;
//! bad input to the admin API and the CLI refused with a message, writing
//! nothing.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::shapes::{check_document, check_incident, is_iso_time};
use super::{by_name, opened_id, Options, Serve, TOKEN};
use crate::cli::BIN;
use crate::harness::mocks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_open_update_resolve_and_schedule_through_the_cli() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, Options::default()).await;
    let component = s.chat_component().await;
    let wait = Duration::from_secs(10);

    let out = s
        .cli(&[
            "incident",
            "open",
            "--title",
            "Elevated errors on chat",
            "--body",
            "We are looking into **elevated errors**.",
            "--impact",
            "major",
            "--component",
            &component,
        ])
        .await;
    let id = opened_id(&out);
    let v = s
        .poll_json("/api/v2/incidents/unresolved.json", wait, |v| {
            by_name(v, "incidents", "Elevated errors on chat").is_some()
        })
        .await;
    let i = by_name(&v, "incidents", "Elevated errors on chat").unwrap();
    check_incident(i);
    assert_eq!(i["id"], id.to_string(), "{i:#}");
    assert_eq!(i["status"], "investigating");
    assert_eq!(i["impact"], "major");
    assert_eq!(i["components"][0]["id"], component.as_str(), "{i:#}");
    s.poll_text("/status", wait, |b| {
        b.contains("Elevated errors on chat") && b.contains("<strong>elevated errors</strong>")
    })
    .await;

    s.cli(&[
        "incident",
        "update",
        &id.to_string(),
        "--status",
        "identified",
        "--body",
        "A provider fails; traffic moved.",
    ])
    .await;
    s.poll_text(&format!("/status/incidents/{id}"), wait, |b| {
        b.contains("A provider fails; traffic moved.") && b.contains("We are looking into")
    })
    .await;
    s.cli(&[
        "incident",
        "resolve",
        &id.to_string(),
        "--body",
        "All good again.",
    ])
    .await;
    let v = s
        .poll_json("/api/v2/incidents.json", wait, |v| {
            by_name(v, "incidents", "Elevated errors on chat")
                .is_some_and(|i| i["status"] == "resolved")
        })
        .await;
    let i = by_name(&v, "incidents", "Elevated errors on chat").unwrap();
    check_incident(i);
    assert!(is_iso_time(&i["resolved_at"]), "{i:#}");
    let timeline: Vec<&str> = i["incident_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        ["resolved", "identified", "investigating"],
        "{i:#}"
    );
    let bodies: Vec<&str> = i["incident_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "All good again.",
            "A provider fails; traffic moved.",
            "We are looking into **elevated errors**."
        ]
    );
    let unresolved = s.json("/api/v2/incidents/unresolved.json").await;
    assert!(by_name(&unresolved, "incidents", "Elevated errors on chat").is_none());
    let list = s.cli(&["incident", "list"]).await;
    assert!(
        list.lines()
            .any(|l| l.contains("Elevated errors on chat") && l.contains("resolved")),
        "{list}"
    );

    // A draft stays off the page until published.
    let out = s
        .cli(&["incident", "open", "--title", "Quiet draft", "--draft"])
        .await;
    let draft = opened_id(&out);
    assert!(out.contains("draft"), "{out}");
    let list = s.cli(&["incident", "list", "--json"]).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let listed = by_name(&list, "incidents", "Quiet draft").expect("draft listed");
    assert_eq!(listed["draft"], true, "{listed:#}");
    // Give the page time to (wrongly) show it: a later change is rebuilt
    // after the draft's, so once that one is visible the draft would be too.
    s.cli(&["incident", "open", "--title", "Marker after the draft"])
        .await;
    s.poll_json("/api/v2/incidents.json", wait, |v| {
        by_name(v, "incidents", "Marker after the draft").is_some()
    })
    .await;
    let v = s.json("/api/v2/incidents.json").await;
    assert!(by_name(&v, "incidents", "Quiet draft").is_none(), "{v:#}");
    let (_, _, page) = s.get("/status").await;
    assert!(!page.contains("Quiet draft"), "draft on the page");
    let (status, _, _) = s.get(&format!("/status/incidents/{draft}")).await;
    assert_eq!(status, 404, "the draft's own page is public");
    let out = s.cli(&["incident", "publish", &draft.to_string()]).await;
    assert!(out.contains("Published"), "{out}");
    s.poll_json("/api/v2/incidents.json", wait, |v| {
        by_name(v, "incidents", "Quiet draft").is_some()
    })
    .await;
    s.poll_text("/status", wait, |b| b.contains("Quiet draft"))
        .await;

    // The operator's restoration estimate wins, and can be given back.
    s.cli(&["incident", "eta", &draft.to_string(), "--minutes", "45"])
        .await;
    let page = format!("/status/incidents/{draft}");
    // 45 minutes from when it was set, counted by the page from the start
    // of the current minute (it changes once a minute): 45 or 46, or 44 on
    // a machine slow enough to cross a minute meanwhile.
    s.poll_text(&page, wait, |b| {
        ["44", "45", "46"].iter().any(|m| {
            b.contains(&format!(
                "The operator expects this to be resolved within {m} minutes"
            ))
        })
    })
    .await;
    s.cli(&["incident", "eta", &draft.to_string(), "--clear"])
        .await;
    s.poll_text(&page, wait, |b| !b.contains("The operator expects"))
        .await;

    // Webhook subscribers: the secret once, never in the list.
    let out = s
        .cli(&[
            "webhook",
            "add",
            "--url",
            "https://hooks.example.com/status",
            "--format",
            "slack",
        ])
        .await;
    let secret = out.lines().last().unwrap_or_default().trim().to_string();
    assert_eq!(secret.len(), 64, "{out}");
    let list = s.cli(&["webhook", "list"]).await;
    assert!(list.contains("https://hooks.example.com/status"), "{list}");
    assert!(!list.contains(&secret), "{list}");
    let log = s.cli(&["webhook", "deliveries", "1"]).await;
    assert!(log.contains("EVENT"), "{log}");
    s.cli(&["webhook", "remove", "1"]).await;
    let list = s.cli(&["webhook", "list"]).await;
    assert!(!list.contains("hooks.example.com"), "{list}");

    // Maintenance: scheduled in an hour, upcoming; cancelled, gone.
    let out = s
        .cli(&[
            "maintenance",
            "schedule",
            "--title",
            "Provider migration",
            "--start",
            "+1h",
            "--end",
            "2h",
            "--component",
            &component,
            "--body",
            "Moving to a new region.",
        ])
        .await;
    let mid: i64 = out
        .trim()
        .strip_prefix("Scheduled maintenance ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no maintenance id in {out:?}"));
    let v = s
        .poll_json("/api/v2/scheduled-maintenances/upcoming.json", wait, |v| {
            by_name(v, "scheduled_maintenances", "Provider migration").is_some()
        })
        .await;
    check_document(
        "scheduled-maintenances/upcoming.json",
        &["page", "scheduled_maintenances"],
        &v,
    );
    let w = by_name(&v, "scheduled_maintenances", "Provider migration").unwrap();
    assert_eq!(w["status"], "scheduled", "{w:#}");
    let from = chrono::DateTime::parse_from_rfc3339(w["scheduled_for"].as_str().unwrap()).unwrap();
    let until =
        chrono::DateTime::parse_from_rfc3339(w["scheduled_until"].as_str().unwrap()).unwrap();
    assert_eq!((until - from).num_minutes(), 120, "{w:#}");
    let active = s.json("/api/v2/scheduled-maintenances/active.json").await;
    assert!(by_name(&active, "scheduled_maintenances", "Provider migration").is_none());
    let list = s.cli(&["maintenance", "list"]).await;
    assert!(list.contains("Provider migration"), "{list}");
    s.cli(&["maintenance", "cancel", &mid.to_string()]).await;
    s.poll_json("/api/v2/scheduled-maintenances/upcoming.json", wait, |v| {
        by_name(v, "scheduled_maintenances", "Provider migration").is_none()
    })
    .await;
    let v = s.json("/api/v2/summary.json").await;
    assert!(
        by_name(&v, "scheduled_maintenances", "Provider migration").is_none(),
        "{v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_refused_with_a_message_and_writes_nothing() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, Options::default()).await;
    let component = s.chat_component().await;
    let cases = [
        (
            "/admin/incidents",
            r#"{"name":"Ghost one","components":["no-such-component"]}"#.to_string(),
            "no-such-component",
        ),
        ("/admin/incidents", r#"{"name":""}"#.to_string(), "name"),
        ("/admin/incidents", r#"{"name":"   "}"#.to_string(), "name"),
        ("/admin/incidents", r#"{"name":"Ghost two""#.to_string(), "JSON"),
        ("/admin/incidents", "not json at all".to_string(), "JSON"),
        (
            "/admin/incidents",
            r#"{"name":"Ghost three","impact":"apocalyptic"}"#.to_string(),
            "apocalyptic",
        ),
        (
            "/admin/maintenances",
            format!(
                r#"{{"name":"Ghost window","scheduled_for":"soon","scheduled_until":"later","components":["{component}"]}}"#
            ),
            "scheduled_for",
        ),
        (
            "/admin/maintenances",
            r#"{"name":"Ghost window","scheduled_for":"2099-01-01T00:00:00Z","scheduled_until":"2099-01-01T01:00:00Z","components":["nope"]}"#.to_string(),
            "nope",
        ),
    ];
    for (path, body, mentions) in &cases {
        let (status, v) = s.admin_text("POST", path, body).await;
        assert_eq!(status, 400, "{path} {body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains(mentions),
            "{path} {body}: message {msg:?} does not name {mentions}"
        );
    }
    // Also through the CLI: it fails and says why.
    let mut cmd = Command::new(BIN);
    cmd.args(["incident", "open", "--title", "Ghost four"])
        .args(["--component", "no-such-component"])
        .args(["--admin", &s.admin, "--token", TOKEN]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-component"), "{stderr}");

    // Nothing was written: a good request after them is the first incident.
    let (status, ok) = s
        .admin_text("POST", "/admin/incidents", r#"{"name":"Real one"}"#)
        .await;
    assert_eq!(status, 201, "{ok}");
    let (_, list) = s.admin("GET", "/admin/incidents", None).await;
    let names: Vec<&str> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Real one"], "{list:#}");
    let (_, windows) = s.admin("GET", "/admin/maintenances", None).await;
    assert_eq!(
        windows["scheduled_maintenances"].as_array().map(Vec::len),
        Some(0),
        "{windows:#}"
    );
    let v = s
        .poll_json("/api/v2/incidents.json", Duration::from_secs(10), |v| {
            by_name(v, "incidents", "Real one").is_some()
        })
        .await;
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1, "{v:#}");
    let (_, _, page) = s.get("/status").await;
    assert!(!page.contains("Ghost"), "a refused incident is on the page");
}
