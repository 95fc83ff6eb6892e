//! Incidents beyond the operator's workflow: hostile text kept as data in
//! JSON and inert in HTML and feeds, an acknowledged incident that survives
//! `kill -9`, and an automatic incident opened from failing traffic and
//! resolved after recovery (status clock at 60×).

use std::process::Command;
use std::time::Duration;

use lifeline_mock::Faults;
use serde_json::Value;

use super::shapes::{assert_inert, atom, check_incident, is_iso_time, rss};
use super::{by_name, chat_request, component_status, opened_id, Options, Serve};
use crate::harness::mocks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_data_in_json_and_inert_in_html_and_feeds() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, Options::default()).await;
    let component = s.chat_component().await;
    let title = "<script>alert(1)</script>";
    let body = "See [x](javascript:alert(1)) and <img src=x onerror=alert(1)>\n\n<script>alert(2)</script>\n\n**still here**";
    let out = s
        .cli(&[
            "incident",
            "open",
            "--title",
            title,
            "--body",
            body,
            "--component",
            &component,
        ])
        .await;
    let id = opened_id(&out);
    let wait = Duration::from_secs(10);

    // JSON: the raw text, as data, in valid JSON.
    for path in [
        "/api/v2/incidents.json",
        "/api/v2/incidents/unresolved.json",
        "/api/v2/summary.json",
    ] {
        let v = s
            .poll_json(path, wait, |v| by_name(v, "incidents", title).is_some())
            .await;
        let i = by_name(&v, "incidents", title).unwrap();
        check_incident(i);
        assert_eq!(i["incident_updates"][0]["body"], body, "{path}");
    }

    // HTML: the status page, the incident's page, in every language.
    let page = s
        .poll_text("/status", wait, |b| b.contains("still here"))
        .await;
    for path in [
        "/status".to_string(),
        "/status?lang=de".to_string(),
        "/status?lang=zh".to_string(),
        format!("/status/incidents/{id}"),
        format!("/status/incidents/{id}?lang=de"),
    ] {
        let (status, _, html) = s.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert_inert(&path, &html);
        assert!(
            html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
            "{path}: the title is not shown escaped"
        );
    }
    assert!(page.contains("<strong>still here</strong>"), "{page}");

    // Feeds: well-formed, and their HTML content is inert too.
    let (_, _, body) = s.get("/history.atom").await;
    let feed = atom(&body);
    let entry = feed
        .entries()
        .iter()
        .find(|e| e.title().as_str() == title)
        .unwrap_or_else(|| panic!("no entry titled {title}:\n{body}"));
    let content = entry.content().and_then(|c| c.value()).unwrap_or_default();
    assert!(content.contains("still here"), "{content}");
    assert_inert("atom content", content);
    let (_, _, body) = s.get("/history.rss").await;
    let channel = rss(&body);
    let item = channel
        .items()
        .iter()
        .find(|i| i.title() == Some(title))
        .unwrap_or_else(|| panic!("no item titled {title}:\n{body}"));
    let description = item.description().unwrap_or_default();
    assert_inert("rss description", description);
    if let Some(content) = item.content() {
        assert_inert("rss content", content);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_incident_survives_kill_9() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, Options::default()).await;
    let (status, v) = s
        .admin_text(
            "POST",
            "/admin/incidents",
            r#"{"name":"Survives kill -9","body":"Written before the crash."}"#,
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().unwrap_or_else(|| panic!("no id: {v}"));
    // At once, before any tick or flush could have run.
    let killed = Command::new("kill")
        .args(["-KILL", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let first_log = s.logs();
    drop(s);

    let s = Serve::start(dir.path(), &m, Options::default()).await;
    let (status, v) = s
        .admin("GET", &format!("/admin/incidents/{id}"), None)
        .await;
    assert_eq!(status, 200, "{v}\nfirst run:\n{first_log}");
    assert_eq!(v["name"], "Survives kill -9", "{v:#}");
    assert_eq!(
        v["incident_updates"][0]["body"], "Written before the crash.",
        "{v:#}"
    );
    let v = s
        .poll_json("/api/v2/incidents.json", Duration::from_secs(10), |v| {
            by_name(v, "incidents", "Survives kill -9").is_some()
        })
        .await;
    assert_eq!(
        by_name(&v, "incidents", "Survives kill -9").unwrap()["id"],
        id.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_providers_open_an_automatic_incident_that_resolves_after_recovery() {
    let m = mocks(2).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(
        dir.path(),
        &m,
        Options {
            status: "clock_speed = 60\nopen_after_ms = 60000\nresolve_after_ms = 120000",
            ..Options::default()
        },
    )
    .await;
    let component = s.chat_component().await;
    let wait = Duration::from_secs(60);
    // An incident that names the component.
    let on_component = |i: &Value| {
        i["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == component.as_str())
    };
    s.poll_json("/api/v2/components.json", wait, |v| {
        component_status(v, &component) == "operational"
    })
    .await;

    // Steady traffic for the whole test.
    let traffic = {
        let base = s.url("");
        let client = s.client.clone();
        tokio::spawn(async move {
            loop {
                let _ = chat_request(&client, &base)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    for mock in &m {
        mock.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
    }
    let v = s
        .poll_json("/api/v2/incidents/unresolved.json", wait, |v| {
            v["incidents"].as_array().unwrap().iter().any(on_component)
        })
        .await;
    let incident = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| on_component(i))
        .unwrap()
        .clone();
    check_incident(&incident);
    let name = incident["name"].as_str().unwrap();
    assert!(name.contains("Chat Completions"), "{incident:#}");
    assert!(name.contains("(m)"), "{incident:#}");
    assert!(
        ["major", "critical"].contains(&incident["impact"].as_str().unwrap()),
        "{incident:#}"
    );
    let first = incident["incident_updates"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    let body = first["body"].as_str().unwrap();
    assert!(body.contains('%'), "no numbers in the body: {body}");
    assert!(body.chars().any(|c| c.is_ascii_digit()), "{body}");
    let summary = s.json("/api/v2/summary.json").await;
    assert_ne!(summary["status"]["indicator"], "none", "{summary:#}");
    let id = incident["id"].as_str().unwrap().to_string();

    for mock in &m {
        mock.set_faults(Faults::default());
    }
    let v = s
        .poll_json("/api/v2/incidents.json", wait, |v| {
            v["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == id.as_str() && i["status"] == "resolved")
        })
        .await;
    let resolved = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap();
    check_incident(resolved);
    assert!(is_iso_time(&resolved["resolved_at"]), "{resolved:#}");
    s.poll_json("/api/v2/components.json", wait, |v| {
        component_status(v, &component) == "operational"
    })
    .await;
    let unresolved = s.json("/api/v2/incidents/unresolved.json").await;
    assert!(
        !unresolved["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str()),
        "{unresolved:#}"
    );
    traffic.abort();
}
