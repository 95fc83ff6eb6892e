//! The public side: the eight Statuspage documents with their shapes,
//! types, CORS and HEAD lengths; the HTML page, the feeds and the badges;
//! the page on its own `status_listen`; the static export following the
//! page.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::shapes::{atom, check_document, rss, DOCUMENTS};
use super::{by_name, header, opened_id, Options, Serve};
use crate::harness::mocks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_documents_have_statuspage_shapes_types_cors_and_head_lengths() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, Options::default()).await;

    for (path, keys) in DOCUMENTS {
        let url = format!("/api/v2/{path}");
        let (status, headers, body) = s.get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            "application/json; charset=utf-8",
            "{url}"
        );
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            "*",
            "{url}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        check_document(path, keys, &v);
    }
    let summary = s.json("/api/v2/summary.json").await;
    assert_eq!(summary["status"]["indicator"], "none", "{summary:#}");
    assert_eq!(summary["page"]["url"], s.data, "{summary:#}");
    let component = s.chat_component().await;

    // Every kind of document, GET then HEAD: HEAD has GET's head, with the
    // body's length, and no body.
    let documents = [
        ("/status", "text/html; charset=utf-8"),
        ("/status?lang=de", "text/html; charset=utf-8"),
        ("/api/v2/summary.json", "application/json; charset=utf-8"),
        ("/history.atom", "application/atom+xml; charset=utf-8"),
        ("/history.rss", "application/rss+xml; charset=utf-8"),
        (
            &format!("/badge/{component}.svg"),
            "image/svg+xml; charset=utf-8",
        ),
    ];
    for (path, content_type) in documents {
        let (status, headers, body) = s.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert!(!body.is_empty(), "{path}: empty body");
        let head = s
            .client
            .head(format!("{}{path}", s.page()))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            header(head.headers(), "content-type"),
            content_type,
            "HEAD {path}"
        );
        assert_eq!(
            header(head.headers(), "content-length"),
            body.len().to_string(),
            "HEAD {path} does not carry the body's length"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    let (status, _, body) = s.get("/status").await;
    assert_eq!(status, 200);
    assert!(body.contains("Acme AI status"), "{body}");

    // The feeds parse with real feed parsers; the badge is SVG.
    let (_, _, body) = s.get("/history.atom").await;
    let feed = atom(&body);
    assert!(feed.title().contains("Acme AI status"), "{body}");
    let (_, _, body) = s.get("/history.rss").await;
    let channel = rss(&body);
    assert!(channel.title().contains("Acme AI status"), "{body}");
    let (_, _, body) = s.get(&format!("/badge/{component}.svg")).await;
    assert!(
        body.starts_with("<svg") && body.contains("</svg>"),
        "{body}"
    );

    // Unknown documents and components are the gateway's 404.
    let (status, _, _) = s.get("/api/v2/nope.json").await;
    assert_eq!(status, 404);
    let (status, _, _) = s.get("/badge/nope.svg").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_status_listen_the_page_is_served_there_and_not_on_the_data_listener() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(
        dir.path(),
        &m,
        Options {
            status_listen: true,
            ..Options::default()
        },
    )
    .await;
    let status_base = s.status.clone().unwrap();
    // Links point at the status listener (the default `page_url`).
    let summary = s.json("/api/v2/summary.json").await;
    assert_eq!(summary["page"]["url"], status_base, "{summary:#}");
    for (path, keys) in DOCUMENTS {
        let v = s.json(&format!("/api/v2/{path}")).await;
        check_document(path, keys, &v);
        let on_data = s
            .client
            .get(format!("{}/api/v2/{path}", s.data))
            .send()
            .await
            .unwrap();
        assert_eq!(on_data.status(), 404, "{path} is on the data listener");
    }
    for path in ["/status", "/history.atom", "/history.rss"] {
        let (status, _, _) = s.get(path).await;
        assert_eq!(status, 200, "{path} on {status_base}");
        let on_data = s
            .client
            .get(format!("{}{path}", s.data))
            .send()
            .await
            .unwrap();
        assert_eq!(on_data.status(), 404, "{path} is on the data listener");
    }
    // The data plane still answers on its own listener, and nothing of it
    // on the status listener.
    let models = s
        .client
        .get(format!("{}/v1/models", s.data))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let (status, _, _) = s.get("/v1/models").await;
    assert_eq!(status, 404, "the data plane is on the status listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_export_follows_the_page() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let status = format!("static_dir = \"{}\"", site.display());
    let s = Serve::start(
        dir.path(),
        &m,
        Options {
            status: &status,
            ..Options::default()
        },
    )
    .await;
    let component = s.chat_component().await;
    let end = Instant::now() + Duration::from_secs(10);
    let files = [
        "status/index.html".to_string(),
        "api/v2/summary.json".to_string(),
        "api/v2/incidents/unresolved.json".to_string(),
        "history.atom".to_string(),
        "history.rss".to_string(),
        format!("badge/{component}.svg"),
    ];
    while files.iter().any(|f| !site.join(f).exists()) {
        assert!(
            Instant::now() < end,
            "missing {:?}; stderr:\n{}",
            files
                .iter()
                .filter(|f| !site.join(f).exists())
                .collect::<Vec<_>>(),
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let read = |f: &str| std::fs::read_to_string(site.join(f)).unwrap();
    assert!(read("status/index.html").contains("Acme AI status"));
    atom(&read("history.atom"));
    rss(&read("history.rss"));
    let summary: Value = serde_json::from_str(&read("api/v2/summary.json")).unwrap();
    check_document("summary.json", DOCUMENTS[0].1, &summary);

    let out = s
        .cli(&[
            "incident",
            "open",
            "--title",
            "Exported incident",
            "--component",
            &component,
        ])
        .await;
    let id = opened_id(&out);
    // The export writes one file after the other (each atomically): wait
    // for all of them.
    let exported = [
        "api/v2/summary.json".to_string(),
        "status/index.html".to_string(),
        format!("status/incidents/{id}.html"),
        "history.atom".to_string(),
        "history.rss".to_string(),
    ];
    let end = Instant::now() + Duration::from_secs(10);
    let missing = |f: &String| {
        !std::fs::read_to_string(site.join(f)).is_ok_and(|t| t.contains("Exported incident"))
    };
    while exported.iter().any(missing) {
        assert!(
            Instant::now() < end,
            "the export never showed the incident in {:?}\nstderr:\n{}",
            exported.iter().filter(|f| missing(f)).collect::<Vec<_>>(),
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary: Value = serde_json::from_str(&read("api/v2/summary.json")).unwrap();
    check_document("summary.json", DOCUMENTS[0].1, &summary);
    let i = by_name(&summary, "incidents", "Exported incident").unwrap();
    assert_eq!(i["id"], id.to_string(), "{i:#}");
    atom(&read("history.atom"));
    rss(&read("history.rss"));
}
