//! The store against real SQLite files in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::Connection;

use crate::migrate::MIGRATIONS;
use crate::*;

mod audit;
mod failure;
mod incidents;
mod keys;
mod migrations;
mod restore;
mod sli;
mod upstream;
mod webhooks;

fn new_incident(name: &str, at_ms: i64) -> NewIncident {
    NewIncident {
        name: name.to_owned(),
        status: IncidentStatus::Investigating,
        impact: Impact::Major,
        body: format!("{name}: elevated errors"),
        components: vec!["chat".to_owned(), "embeddings".to_owned()],
        automatic: true,
        draft: false,
        cause: Some("provider_errors".to_owned()),
        at_ms,
    }
}

#[test]
fn open_creates_the_file_at_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.db");
    let store = SqliteStore::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    const { assert!(LATEST_VERSION >= 2) };
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    // Opening again is a no-op for the schema.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
}

#[test]
fn incident_round_trip_with_updates_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();

    let mut new = new_incident("Chat completions failing", 1_000);
    new.components.push("chat".to_owned()); // duplicates collapse
    let created = store.create_incident(&new).unwrap();
    let id = created.incident.id;
    assert_eq!(created.incident.name, "Chat completions failing");
    assert_eq!(created.incident.status, IncidentStatus::Investigating);
    assert_eq!(created.incident.impact, Impact::Major);
    assert_eq!(created.incident.components, ["chat", "embeddings"]);
    assert_eq!(created.incident.cause.as_deref(), Some("provider_errors"));
    assert!(created.incident.automatic && !created.incident.draft);
    assert_eq!(created.incident.resolved_at, None);
    assert_eq!(created.incident_updates.len(), 1);
    assert_eq!(created.incident_updates[0].body, new.body);
    assert_eq!(created.incident_updates[0].created_at, 1_000);

    store
        .add_update(id, IncidentStatus::Identified, "azure-east failing", 2_000)
        .unwrap();
    store
        .add_update(id, IncidentStatus::Monitoring, "recovered", 3_000)
        .unwrap();
    assert_eq!(store.list_unresolved().unwrap().len(), 1);
    let resolved = store
        .add_update(id, IncidentStatus::Resolved, "stable", 4_000)
        .unwrap();
    assert_eq!(resolved.incident_id, id);
    store
        .add_update(id, IncidentStatus::Postmortem, "what happened", 9_000)
        .unwrap();

    let got = store.incident(id).unwrap().unwrap();
    assert_eq!(got.incident.status, IncidentStatus::Postmortem);
    assert_eq!(got.incident.updated_at, 9_000);
    // The postmortem keeps the time it was resolved.
    assert_eq!(got.incident.resolved_at, Some(4_000));
    let statuses: Vec<_> = got.incident_updates.iter().map(|u| u.status).collect();
    assert_eq!(
        statuses,
        [
            IncidentStatus::Investigating,
            IncidentStatus::Identified,
            IncidentStatus::Monitoring,
            IncidentStatus::Resolved,
            IncidentStatus::Postmortem,
        ]
    );
    assert!(store.list_unresolved().unwrap().is_empty());

    // Reopening clears resolved_at.
    store
        .add_update(id, IncidentStatus::Investigating, "back", 10_000)
        .unwrap();
    let got = store.incident(id).unwrap().unwrap();
    assert_eq!(got.incident.resolved_at, None);
    assert_eq!(store.list_unresolved().unwrap()[0].id, id);

    assert!(store.incident(id + 100).unwrap().is_none());
    assert!(matches!(
        store.add_update(id + 100, IncidentStatus::Resolved, "x", 1),
        Err(StoreError::NotFound { id: missing, .. }) if missing == id + 100
    ));
}

#[test]
fn json_uses_statuspage_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let created = store.create_incident(&new_incident("x", 5)).unwrap();
    let json = serde_json::to_value(&created).unwrap();
    assert_eq!(json["status"], "investigating");
    assert_eq!(json["impact"], "major");
    assert_eq!(json["incident_updates"][0]["status"], "investigating");
    let m = store
        .create_maintenance(&NewMaintenance {
            name: "m".to_owned(),
            scheduled_for: 10,
            scheduled_until: 20,
            components: vec![],
            body: String::new(),
            at_ms: 1,
        })
        .unwrap();
    assert_eq!(serde_json::to_value(&m).unwrap()["status"], "scheduled");
    assert_eq!(
        serde_json::to_value(MaintenanceStatus::InProgress).unwrap(),
        "in_progress"
    );
}

#[test]
fn lists_are_newest_first_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    for i in 0..5 {
        store
            .create_incident(&new_incident(&format!("i{i}"), 1_000 * i))
            .unwrap();
    }
    let names: Vec<_> = store
        .list_incidents(3)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["i4", "i3", "i2"]);
    let first = store.list_incidents(10).unwrap()[4].id;
    store
        .add_update(first, IncidentStatus::Resolved, "done", 9_000)
        .unwrap();
    let open: Vec<_> = store
        .list_unresolved()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(open, ["i4", "i3", "i2", "i1"]);
}

#[test]
fn maintenance_create_list_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let make = |name: &str, from: i64| NewMaintenance {
        name: name.to_owned(),
        scheduled_for: from,
        scheduled_until: from + 3_600_000,
        components: vec!["embeddings".to_owned(), "chat".to_owned()],
        body: "provider upgrade".to_owned(),
        at_ms: 5,
    };
    let early = store.create_maintenance(&make("early", 1_000)).unwrap();
    let late = store.create_maintenance(&make("late", 2_000)).unwrap();
    assert_eq!(early.status, MaintenanceStatus::Scheduled);
    let listed = store.list_maintenances(10).unwrap();
    assert_eq!(listed, [late.clone(), early.clone()]);
    assert_eq!(listed[0].components, ["chat", "embeddings"]);
    assert_eq!(
        store.list_maintenances(1).unwrap(),
        std::slice::from_ref(&late)
    );

    assert!(store.cancel_maintenance(early.id).unwrap());
    assert!(!store.cancel_maintenance(early.id).unwrap());
    assert_eq!(store.list_maintenances(10).unwrap(), [late]);

    // A window must end after it starts.
    let mut backwards = make("backwards", 5_000);
    backwards.scheduled_until = 4_000;
    assert!(store.create_maintenance(&backwards).is_err());
}

#[test]
fn a_version_1_file_is_upgraded_in_place_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The file as the first release wrote it.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute(
            "INSERT INTO incidents (id, name, status, impact, created_at, updated_at,
                 resolved_at, automatic, draft)
             VALUES (7, 'old outage', 'resolved', 'critical', 100, 200, 200, 0, 1)",
            [],
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO incident_updates (incident_id, status, body, created_at)
                 VALUES (7, 'investigating', 'looking', 100), (7, 'resolved', 'fixed', 200);
             INSERT INTO incident_components VALUES (7, 'chat');
             INSERT INTO maintenances VALUES (3, 'old window', 'completed', 10, 20, 'b', 1, 2);
             INSERT INTO maintenance_components VALUES (3, 'chat');",
        )
        .unwrap();
        let has_cause = conn
            .prepare("SELECT cause FROM incidents")
            .map(|_| ())
            .is_ok();
        assert!(!has_cause, "version 1 has no cause column");
    }

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    let old = store.incident(7).unwrap().unwrap();
    assert_eq!(old.incident.name, "old outage");
    assert_eq!(old.incident.status, IncidentStatus::Resolved);
    assert_eq!(old.incident.impact, Impact::Critical);
    assert_eq!(old.incident.resolved_at, Some(200));
    assert_eq!(old.incident.components, ["chat"]);
    assert!(old.incident.draft && !old.incident.automatic);
    assert_eq!(old.incident.cause, None);
    assert_eq!(old.incident_updates.len(), 2);
    let maintenances = store.list_maintenances(10).unwrap();
    assert_eq!(maintenances.len(), 1);
    assert_eq!(maintenances[0].status, MaintenanceStatus::Completed);

    // Version 2's column and indexes are there and used.
    let new = store.create_incident(&new_incident("new", 300)).unwrap();
    assert_eq!(new.incident.cause.as_deref(), Some("provider_errors"));
    assert!(new.incident.id > 7);
    let conn = Connection::open(&path).unwrap();
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for index in [
        "incident_updates_timeline",
        "incidents_newest",
        "incidents_open",
    ] {
        assert!(indexes.iter().any(|i| i == index), "{index} in {indexes:?}");
    }
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM incident_updates
             WHERE incident_id = 7 ORDER BY created_at, id",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("incident_updates_timeline"), "{plan}");
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", LATEST_VERSION + 1))
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::SchemaTooNew { found, supported })
            if found == LATEST_VERSION + 1 && supported == LATEST_VERSION
    ));
}

/// Environment variable naming the file `durability_writer_child` writes to.
const WRITER_ENV: &str = "LIFELINE_STORE_TEST_WRITER_DB";
/// The line the writer prints once the store acknowledged its write.
const ACKED: &str = "LIFELINE-STORE-ACKED";

/// The child half of `an_acknowledged_write_survives_sigkill`: run only by
/// that test, as a separate process of this same test binary.
#[test]
#[ignore = "child process of an_acknowledged_write_survives_sigkill"]
fn durability_writer_child() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let store = SqliteStore::open(&path).unwrap();
    let created = store
        .create_incident(&new_incident("acknowledged", 42))
        .unwrap();
    store
        .add_update(
            created.incident.id,
            IncidentStatus::Identified,
            "found it",
            43,
        )
        .unwrap();
    // An SLI minute and a webhook delivery in the outbox, acknowledged
    // the same way.
    let m = crate::sli::Minute {
        at: 60_000,
        requests: 3,
        good: 2,
        ..crate::sli::Minute::default()
    };
    store
        .write_minutes(&[crate::sli::MinuteRecord {
            component: "chat",
            minute: &m,
            status: "degraded_performance",
        }])
        .unwrap();
    let sub = store
        .create_subscription(&crate::webhook::NewSubscription {
            url: "https://receiver.example/hook".to_owned(),
            format: crate::webhook::WebhookFormat::Statuspage,
            secret: "k".to_owned(),
            components: vec![],
            at_ms: 44,
        })
        .unwrap();
    store
        .enqueue(&[crate::webhook::NewDelivery {
            subscription_id: sub.id,
            event: "incident.created".to_owned(),
            body: "{}".to_owned(),
            created_at: 45,
            next_attempt_at: 45,
        }])
        .unwrap();
    // Straight to the process's stdout (the test harness may capture
    // `println!`), flushed, so the parent sees it now.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ACKED} {}", created.incident.id).unwrap();
    out.flush().unwrap();
    drop(out);
    // Wait for the kill, holding the store open: the parent keeps our stdin
    // open and never writes to it.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn an_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "tests::durability_writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut id = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        // The harness may have printed "test ... " on the same line.
        if let Some((_, rest)) = line.split_once(ACKED) {
            id = Some(rest.trim().parse::<i64>().unwrap());
            break;
        }
    }
    let id = id.expect("the writer never acknowledged its write");
    // Child::kill is SIGKILL on Unix: no destructors, no clean close.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());

    let store = SqliteStore::open(&path).unwrap();
    let got = store
        .incident(id)
        .unwrap()
        .expect("acknowledged incident lost");
    assert_eq!(got.incident.name, "acknowledged");
    assert_eq!(got.incident.status, IncidentStatus::Identified);
    assert_eq!(got.incident_updates.len(), 2);
    let days = store.days("chat", 0, i64::MAX).unwrap();
    assert_eq!(days[0].totals.good, 2);
    assert_eq!(days[0].status_minutes.degraded_performance, 1);
    let due = store.due(45, 10).unwrap();
    assert_eq!(due.len(), 1, "the outbox lost an acknowledged delivery");
    assert_eq!(due[0].delivery.event, "incident.created");
}

fn count_incidents(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn backup_while_another_thread_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("live.db")).unwrap());
    for i in 0..50 {
        store.create_incident(&new_incident("before", i)).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut written = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                let created = store
                    .create_incident(&new_incident("during", 1_000 + written))
                    .unwrap();
                store
                    .add_update(created.incident.id, IncidentStatus::Resolved, "ok", 2_000)
                    .unwrap();
                written += 1;
            }
            written
        })
    };
    // Let the writer get going, then take backups under its writes.
    while store.list_incidents(1).unwrap()[0].name != "during" {
        std::thread::yield_now();
    }
    let mut copies = Vec::new();
    for n in 0..3 {
        let copy = dir.path().join(format!("backup-{n}.db"));
        store.backup(&copy).unwrap();
        copies.push(copy);
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);

    for copy in &copies {
        // A consistent snapshot: every incident has its updates (none
        // half-written), and the copy opens as a store.
        let conn = Connection::open(copy).unwrap();
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM incidents i WHERE NOT EXISTS
                     (SELECT 1 FROM incident_updates u WHERE u.incident_id = i.id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
        drop(conn);
        assert!(count_incidents(copy) >= 50);
        let restored = SqliteStore::open(copy).unwrap();
        assert_eq!(restored.schema_version().unwrap(), LATEST_VERSION);
        let first = restored.incident(1).unwrap().unwrap();
        assert_eq!(first.incident.name, "before");
        assert_eq!(first.incident.components, ["chat", "embeddings"]);
        // Writable, like any store.
        restored
            .create_incident(&new_incident("after restore", 1))
            .unwrap();
    }
}
