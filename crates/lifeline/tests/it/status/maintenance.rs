//! Maintenance: a window drains its component's deployments and shows
//! under maintenance on time, and gives them back at its end, without an
//! operator, leaving an operator's own drain alone (status clock at 60×).

use std::time::Duration;

use serde_json::json;

use super::{chat, component_status, eventually, Serve, FAST};
use crate::harness::mocks;

/// Now on the status clock: the `created_at` of a far-off window scheduled
/// (and cancelled again) through the admin API.
async fn status_now(serve: &Serve) -> i64 {
    let far = 4_000_000_000_000_i64;
    let (status, w) = serve
        .admin(
            "POST",
            "/admin/maintenances",
            Some(json!({"name": "clock probe", "scheduled_for": far, "scheduled_until": far + 60_000})),
        )
        .await;
    assert_eq!(status, 201, "{w}");
    let id = w["id"].as_i64().unwrap();
    let (status, _) = serve
        .admin("DELETE", &format!("/admin/maintenances/{id}"), None)
        .await;
    assert_eq!(status, 200);
    w["created_at"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_drains_and_gives_back_on_time() {
    let m = mocks(3).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &m, FAST).await;
    for _ in 0..5 {
        let (status, body) = chat(&serve.client, &serve.url("")).await;
        assert_eq!(status, 200, "{body}");
    }
    // An operator drains p2 by hand before the window.
    let (status, v) = serve
        .admin("POST", "/admin/deployments/p2/up-2/drain", None)
        .await;
    assert_eq!(status, 200, "{v}");

    let now = status_now(&serve).await;
    let start = now + 60_000;
    let end = start + 3 * 60_000;
    let (status, w) = serve
        .admin(
            "POST",
            "/admin/maintenances",
            Some(json!({"name": "Provider migration", "scheduled_for": start, "scheduled_until": end, "components": ["chat-m"], "body": "Moving to new hosts."})),
        )
        .await;
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["status"], "scheduled", "{w}");
    let wid = w["id"].as_i64().unwrap().to_string();

    // During the window: drained, under maintenance, in progress.
    let during = eventually(Duration::from_secs(20), || async {
        let drained = serve.drained().await;
        let components = serve.json("/api/v2/components.json").await;
        let active = serve
            .json("/api/v2/scheduled-maintenances/active.json")
            .await;
        let all_drained = drained.iter().all(|(_, d)| *d);
        let shown = active["scheduled_maintenances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"].as_str() == Some(wid.as_str()) && s["status"] == "in_progress");
        (all_drained && component_status(&components, "chat-m") == "under_maintenance" && shown)
            .then_some((drained, active))
    })
    .await;
    let (drained, active) = during.unwrap_or_else(|| {
        panic!(
            "the window never showed in progress; stderr:\n{}",
            serve.logs()
        )
    });
    assert_eq!(drained.len(), 3, "{drained:?}");
    let listed = &active["scheduled_maintenances"][0];
    assert_eq!(listed["name"], "Provider migration", "{active}");
    assert_eq!(listed["components"][0]["id"], "chat-m", "{active}");

    // An operator also drains p1 during the window: that drain is theirs
    // and outlives the window.
    let (status, body) = serve
        .admin("POST", "/admin/deployments/p1/up-1/drain", None)
        .await;
    assert_eq!(status, 200, "{body}");

    // After it: given back, completed, operational; p1 and p2 stay drained.
    let after = eventually(Duration::from_secs(30), || async {
        let drained = serve.drained().await;
        let components = serve.json("/api/v2/components.json").await;
        let active = serve
            .json("/api/v2/scheduled-maintenances/active.json")
            .await;
        let all = serve.json("/api/v2/scheduled-maintenances.json").await;
        let completed = all["scheduled_maintenances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"].as_str() == Some(wid.as_str()) && s["status"] == "completed");
        let back = drained
            .iter()
            .all(|(id, d)| *d == (id == "p2/up-2" || id == "p1/up-1"));
        (back
            && completed
            && active["scheduled_maintenances"]
                .as_array()
                .unwrap()
                .is_empty()
            && component_status(&components, "chat-m") == "operational")
            .then_some(())
    })
    .await;
    assert!(
        after.is_some(),
        "the window did not end by itself: deployments {:?}, components {}, maintenances {}; stderr:\n{}",
        serve.drained().await,
        serve.json("/api/v2/components.json").await,
        serve.json("/api/v2/scheduled-maintenances.json").await,
        serve.logs()
    );
    let (_, stored) = serve.admin("GET", "/admin/maintenances", None).await;
    assert_eq!(
        stored["scheduled_maintenances"][0]["status"], "completed",
        "{stored}"
    );
    // Traffic flows again.
    for _ in 0..10 {
        let (status, body) = chat(&serve.client, &serve.url("")).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        serve
            .drained()
            .await
            .iter()
            .filter(|(id, d)| (id == "p2/up-2" || id == "p1/up-1") && *d)
            .count()
            == 2,
        "the operator's drains were undone"
    );
    serve.stop().await;
}
