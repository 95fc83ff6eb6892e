//! The store: one locked by another process never holds up the data plane
//! (the page keeps answering and says its history is behind, an operator's
//! write is refused with 503 in bounded time, no SLI minute is lost); one
//! that cannot be opened never stops the gateway, and the page starts once
//! it can; `lifeline backup` while serving and `lifeline restore`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::shapes::{check_document, DOCUMENTS};
use super::{chat, chat_request, eventually, Options, Serve, FAST};
use crate::cli::{wait_for, BIN};
use crate::harness::mocks;

/// A chat completion's status, read to its end.
async fn try_chat(client: &reqwest::Client, base: &str) -> reqwest::Result<u16> {
    let resp = chat_request(client, base).send().await?;
    let status = resp.status().as_u16();
    resp.bytes().await?;
    Ok(status)
}

/// Requests in a loop until stopped: (status, milliseconds) of each.
struct Traffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(u16, u128)>>>,
}

impl Traffic {
    fn start(base: String, loops: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..loops)
            .map(|_| {
                let stop = stop.clone();
                let base = base.clone();
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        // 0: no answer at all.
                        let status = try_chat(&client, &base).await.unwrap_or_default();
                        seen.push((status, t.elapsed().as_millis()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    seen
                })
            })
            .collect();
        Traffic { stop, tasks }
    }

    async fn finish(self) -> Vec<(u16, u128)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.unwrap());
        }
        all
    }
}

const BEHIND: &str = "The history on this page has been behind since";

fn requests_stored(db: &rusqlite::Connection, component: &str) -> i64 {
    db.query_row(
        "SELECT coalesce(sum(requests), 0) FROM sli_minutes WHERE component_id = ?1",
        [component],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_never_holds_up_the_data_plane() {
    let m = mocks(2).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &m, FAST).await;
    let traffic = Traffic::start(serve.url(""), 2);
    let db = rusqlite::Connection::open(&serve.store).unwrap();
    let stored = eventually(Duration::from_secs(20), || async {
        (requests_stored(&db, "chat-m") > 0).then_some(())
    })
    .await;
    assert!(
        stored.is_some(),
        "no SLI minute was written; stderr:\n{}",
        serve.logs()
    );

    // Another process takes the store's write lock and keeps it.
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let last_before: i64 = db
        .query_row(
            "SELECT max(minute) FROM sli_minutes WHERE component_id = 'chat-m'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let locked_at = Instant::now();

    // The page keeps answering, and says its history is behind.
    let behind = eventually(Duration::from_secs(30), || async {
        let t = Instant::now();
        let (status, _, _) = serve.get("/api/v2/summary.json").await;
        assert_eq!(status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "summary.json took {:?}",
            t.elapsed()
        );
        let (status, _, html) = serve.get("/status").await;
        assert_eq!(status, 200);
        html.contains(BEHIND).then_some(())
    })
    .await;
    assert!(
        behind.is_some(),
        "the page never said it is behind; stderr:\n{}",
        serve.logs()
    );

    // An operator's write is refused, in bounded time, with a reason.
    let t = Instant::now();
    let (status, answer) = serve
        .admin(
            "POST",
            "/admin/incidents",
            Some(json!({"name": "Written while locked", "body": "x"})),
        )
        .await;
    let took = t.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The store could not be written"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(8), "the refusal took {took:?}");

    // Hold the lock a while longer with traffic flowing.
    while locked_at.elapsed() < Duration::from_secs(12) {
        let (status, _, _) = serve.get("/api/v2/summary.json").await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.execute_batch("ROLLBACK").unwrap();

    // Writable again: the notice goes, an operator's write works.
    let caught_up = eventually(Duration::from_secs(30), || async {
        let (_, _, html) = serve.get("/status").await;
        (!html.contains(BEHIND)).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the page still says it is behind; stderr:\n{}",
        serve.logs()
    );
    let released = serve.open_incident("Written after the lock").await;
    let released_at = released["created_at"].as_i64().unwrap();

    let seen = traffic.finish().await;
    assert!(seen.len() > 50, "only {} requests", seen.len());
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:?}",
        failed.len()
    );
    let slowest = seen.iter().map(|(_, ms)| *ms).max().unwrap();
    assert!(
        slowest < 2000,
        "a request took {slowest} ms while the store was locked"
    );

    // Nothing lost: every request is in the stored minutes, including the
    // minutes that closed while the store was locked.
    let sent = seen.len() as i64;
    let all_in = eventually(Duration::from_secs(30), || async {
        (requests_stored(&db, "chat-m") == sent).then_some(())
    })
    .await;
    assert!(
        all_in.is_some(),
        "{} requests sent, {} stored; stderr:\n{}",
        sent,
        requests_stored(&db, "chat-m"),
        serve.logs()
    );
    let during_lock: i64 = db
        .query_row(
            "SELECT count(*) FROM sli_minutes WHERE component_id = 'chat-m' AND minute > ?1 AND minute < ?2",
            [last_before, released_at - 60_000],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        during_lock > 0,
        "no minute from the locked period was stored"
    );
    serve.stop().await;
}

fn lifeline(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("lifeline runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn incident_names(serve: &Serve) -> (Vec<String>, Vec<String>) {
    let (status, admin) = serve.admin("GET", "/admin/incidents", None).await;
    assert_eq!(status, 200, "{admin}");
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let public = serve.json("/api/v2/incidents.json").await;
    (names(&admin), names(&public))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_and_restore() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &m, FAST).await;
    let traffic = Traffic::start(serve.url(""), 1);
    serve.open_incident("Before the backup: one").await;
    let two = serve.open_incident("Before the backup: two").await;
    let (status, v) = serve
        .admin(
            "POST",
            &format!("/admin/incidents/{}/resolve", two["id"]),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{v}");

    // The copy is taken while serve runs and writes its SLI minutes.
    let (ok, out) = lifeline(
        dir.path(),
        &["backup", "snapshot.db", "--config", "lifeline.toml"],
    );
    assert!(ok, "backup failed: {out}");
    assert!(out.contains("snapshot.db"), "{out}");
    serve.open_incident("After the backup").await;
    let (admin, _) = incident_names(&serve).await;
    assert_eq!(admin.len(), 3, "{admin:?}");
    traffic.finish().await;
    serve.stop().await;

    // A file that is not a store is refused, and the store left alone.
    std::fs::write(
        dir.path().join("notes.txt"),
        "not a database at all, just text\n",
    )
    .unwrap();
    let (ok, out) = lifeline(
        dir.path(),
        &["restore", "notes.txt", "--config", "lifeline.toml"],
    );
    assert!(!ok, "restoring a text file succeeded: {out}");
    assert!(out.contains("not a Lifeline store"), "{out}");
    let db = rusqlite::Connection::open(dir.path().join("status.db")).unwrap();
    let count: i64 = db
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3, "a refused restore changed the store");
    drop(db);
    // Nor does a refused restore leave an empty store where there was none.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("lifeline.toml"),
        elsewhere.path().join("lifeline.toml"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("notes.txt"),
        elsewhere.path().join("notes.txt"),
    )
    .unwrap();
    let (ok, out) = lifeline(
        elsewhere.path(),
        &["restore", "notes.txt", "--config", "lifeline.toml"],
    );
    assert!(!ok, "{out}");
    assert!(!elsewhere.path().join("status.db").exists(), "{out}");
    let (ok, out) = lifeline(
        dir.path(),
        &["restore", "missing.db", "--config", "lifeline.toml"],
    );
    assert!(!ok, "restoring a missing file succeeded: {out}");

    let (ok, out) = lifeline(
        dir.path(),
        &["restore", "snapshot.db", "--config", "lifeline.toml"],
    );
    assert!(ok, "restore failed: {out}");
    let serve = Serve::start(dir.path(), &m, FAST).await;
    let (admin, public) = incident_names(&serve).await;
    let expected = vec![
        "Before the backup: one".to_string(),
        "Before the backup: two".to_string(),
    ];
    assert_eq!(admin, expected);
    // The page reads the store after its first flush.
    let shown = eventually(Duration::from_secs(20), || async {
        let (_, public) = incident_names(&serve).await;
        (public == expected).then_some(())
    })
    .await;
    assert!(
        shown.is_some(),
        "incidents.json shows {public:?}; stderr:\n{}",
        serve.logs()
    );
    serve.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_opened_never_stops_the_gateway() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    // `blocked` is a file: no store can be opened below it.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "a file, not a directory\n").unwrap();
    let mut serve = Serve::spawn(
        dir.path(),
        &m,
        Options {
            store: Some("blocked/status.db"),
            ..Options::default()
        },
    );

    // The gateway serves without its page, and says why.
    let up = wait_for(
        &serve.client,
        &serve.url("/healthz"),
        Duration::from_secs(30),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(up, "/healthz never answered; stderr:\n{}", serve.logs());
    let said = eventually(Duration::from_secs(10), || async {
        serve
            .logs()
            .contains("The status page cannot start")
            .then_some(())
    })
    .await;
    assert!(
        said.is_some(),
        "no word of the store; stderr:\n{}",
        serve.logs()
    );
    let running = serve.proc.as_mut().unwrap().0.try_wait().unwrap();
    assert!(running.is_none(), "serve exited: {running:?}");
    for _ in 0..5 {
        let (status, body) = chat(&serve.client, &serve.url("")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = serve.get("/status").await;
    assert_eq!(status, 404, "a page without a store");
    let (status, _, _) = serve.get("/api/v2/summary.json").await;
    assert_eq!(status, 404, "documents without a store");

    // Once the store can be opened, the retry (every 10 s) starts the page.
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    serve
        .poll_text("/status", Duration::from_secs(45), |b| {
            b.contains("Acme AI status")
        })
        .await;
    let summary = serve.json("/api/v2/summary.json").await;
    check_document("summary.json", DOCUMENTS[0].1, &summary);
    assert!(serve.store.is_file(), "no store at {:?}", serve.store);
    assert!(
        serve.logs().contains("The status page started after all."),
        "{}",
        serve.logs()
    );
    let (status, body) = chat(&serve.client, &serve.url("")).await;
    assert_eq!(status, 200, "{body}");
    serve.stop().await;
}
