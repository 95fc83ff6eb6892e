//! The admin routes, called directly.
#![allow(clippy::unwrap_used)]

use super::*;
use lifeline_store::{SqliteStore, Store};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("s.db")).unwrap();
    (dir, s)
}

fn call(store: &dyn StatusStore, method: &str, path: &str, body: &str) -> AdminAnswer {
    let comps = vec!["chat".to_string(), "gateway".to_string()];
    handle(
        store,
        &comps,
        &AdminRequest {
            method,
            path,
            query: None,
            body: body.as_bytes(),
            now_ms: 1_000_000,
        },
    )
    .unwrap()
}

#[test]
fn incident_lifecycle() {
    let (_d, s) = store();
    let a = call(
        &s,
        "POST",
        "/admin/incidents",
        r#"{"name":"Slow chat","body":"Looking.","components":["chat"],"impact":"major"}"#,
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(a.changed);
    let id = a.body["id"].as_i64().unwrap();
    let u = call(
        &s,
        "POST",
        &format!("/admin/incidents/{id}/updates"),
        r#"{"status":"identified","body":"Provider A."}"#,
    );
    assert_eq!(u.status, 201, "{}", u.body);
    let r = call(&s, "POST", &format!("/admin/incidents/{id}/resolve"), "");
    assert_eq!(r.status, 201, "{}", r.body);
    let g = call(&s, "GET", &format!("/admin/incidents/{id}"), "");
    assert_eq!(g.body["status"], "resolved");
    assert_eq!(g.body["incident_updates"].as_array().unwrap().len(), 3);
    let l = call(&s, "GET", "/admin/incidents", "");
    assert_eq!(l.body["incidents"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let (_d, s) = store();
    for (body, needle) in [
        ("{", "Invalid JSON"),
        (r#"{"name":""}"#, "`name` must not be empty"),
        (
            r#"{"name":"x","components":["nope"]}"#,
            "no component `nope`",
        ),
        (r#"{"name":"x","impact":"huge"}"#, "unknown variant"),
        (r#"{"name":"x","colour":"red"}"#, "unknown field"),
        (r#"{"name":"x","status":"resolved"}"#, "a new incident"),
        (r#"{"name":5}"#, "invalid type"),
    ] {
        let a = call(&s, "POST", "/admin/incidents", body);
        assert_eq!(a.status, 400, "{body}");
        assert!(!a.changed);
        let msg = a.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    assert!(s.list_incidents(10).unwrap().is_empty());
    assert_eq!(call(&s, "GET", "/admin/incidents/99", "").status, 404);
    assert_eq!(call(&s, "GET", "/admin/incidents/x", "").status, 404);
    assert_eq!(
        call(
            &s,
            "POST",
            "/admin/incidents/99/updates",
            r#"{"status":"identified","body":"b"}"#
        )
        .status,
        404
    );
    assert_eq!(call(&s, "PUT", "/admin/incidents", "").status, 405);
    assert!(handle(
        &s,
        &[],
        &AdminRequest {
            method: "GET",
            path: "/admin/other",
            query: None,
            body: b"",
            now_ms: 0
        }
    )
    .is_none());
}

#[test]
fn maintenance_schedule_list_cancel() {
    let (_d, s) = store();
    let bad = call(
        &s,
        "POST",
        "/admin/maintenances",
        r#"{"name":"m","scheduled_for":"2026-12-01T03:00:00Z","scheduled_until":"2026-12-01T02:00:00Z"}"#,
    );
    assert_eq!(bad.status, 400);
    let bad = call(
        &s,
        "POST",
        "/admin/maintenances",
        r#"{"name":"m","scheduled_for":"tomorrow","scheduled_until":"2026-12-01T02:00:00Z"}"#,
    );
    assert!(bad.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("scheduled_for"));
    let a = call(
        &s,
        "POST",
        "/admin/maintenances",
        r#"{"name":"Upgrade","scheduled_for":"2026-12-01T02:00:00Z","scheduled_until":2000000000000,"components":["gateway"]}"#,
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["scheduled_for"], 1_796_090_400_000_i64);
    let id = a.body["id"].as_i64().unwrap();
    let l = call(&s, "GET", "/admin/maintenances", "");
    assert_eq!(
        l.body["scheduled_maintenances"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/maintenances/{id}"), "").status,
        200
    );
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/maintenances/{id}"), "").status,
        404
    );
    // A window in progress is completed rather than deleted.
    let a = call(
        &s,
        "POST",
        "/admin/maintenances",
        r#"{"name":"Now","scheduled_for":0,"scheduled_until":2000000000000}"#,
    );
    let id = a.body["id"].as_i64().unwrap();
    s.set_maintenance_status(id, MaintenanceStatus::InProgress, 1)
        .unwrap();
    let c = call(&s, "DELETE", &format!("/admin/maintenances/{id}"), "");
    assert_eq!(c.body["completed"], id, "{}", c.body);
    let l = call(&s, "GET", "/admin/maintenances", "");
    assert_eq!(l.body["scheduled_maintenances"][0]["status"], "completed");
}

#[test]
fn drafts_publish_and_eta_override() {
    let (_d, s) = store();
    let a = call(
        &s,
        "POST",
        "/admin/incidents",
        r#"{"name":"Held","draft":true}"#,
    );
    let id = a.body["id"].as_i64().unwrap();
    assert_eq!(a.body["draft"], true);
    let p = call(&s, "POST", &format!("/admin/incidents/{id}/publish"), "");
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["draft"], false);
    let e = call(
        &s,
        "POST",
        &format!("/admin/incidents/{id}/eta"),
        r#"{"minutes":30}"#,
    );
    assert_eq!(e.body["expected_resolved_at"], 1_000_000 + 30 * 60_000);
    let e = call(
        &s,
        "POST",
        &format!("/admin/incidents/{id}/eta"),
        r#"{"minutes":null}"#,
    );
    assert!(e.body["expected_resolved_at"].is_null());
    let bad = call(
        &s,
        "POST",
        &format!("/admin/incidents/{id}/eta"),
        r#"{"minutes":-5}"#,
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn webhooks_subscribe_list_without_secret_delete() {
    let (_d, s) = store();
    for (body, needle) in [
        (r#"{"url":"ftp://x"}"#, "http:// or https://"),
        (r#"{"url":"http://x","format":"teams"}"#, "`format`"),
        (r#"{"url":"http://x","secret":"short"}"#, "16 characters"),
        (
            r#"{"url":"http://x","components":["nope"]}"#,
            "no component",
        ),
    ] {
        let a = call(&s, "POST", "/admin/webhooks", body);
        assert_eq!(a.status, 400, "{body}");
        assert!(a.body.to_string().contains(needle), "{body}: {}", a.body);
    }
    let a = call(
        &s,
        "POST",
        "/admin/webhooks",
        r#"{"url":"https://hooks.example/x","format":"slack","components":["chat"]}"#,
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let secret = a.body["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64);
    let l = call(&s, "GET", "/admin/webhooks", "");
    assert_eq!(l.body["webhooks"].as_array().unwrap().len(), 1);
    assert!(!l.body.to_string().contains(&secret));
    let id = a.body["id"].as_i64().unwrap();
    let d = call(&s, "GET", &format!("/admin/webhooks/{id}/deliveries"), "");
    assert_eq!(d.status, 200);
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/webhooks/{id}"), "").status,
        200
    );
    assert_eq!(
        call(&s, "DELETE", &format!("/admin/webhooks/{id}"), "").status,
        404
    );
}
