//! Restoring a backup into a live store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::new_incident;
use crate::migrate::MIGRATIONS;
use crate::sli::{Minute, MinuteRecord};
use crate::webhook::{NewDelivery, NewSubscription, WebhookFormat};
use crate::*;

fn names(store: &SqliteStore) -> Vec<String> {
    store
        .list_incidents(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect()
}

/// Waits (yielding) until `acked` holds more than `n` ids.
fn wait_for_more(acked: &Mutex<Vec<i64>>, n: usize) {
    while acked.lock().unwrap().len() <= n {
        std::thread::yield_now();
    }
}

#[test]
fn backup_and_restore_round_trip_while_another_thread_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let copy = dir.path().join("backup.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    // Some of everything the store keeps.
    let m = Minute {
        at: 0,
        requests: 7,
        good: 7,
        ..Minute::default()
    };
    store
        .write_minutes(&[MinuteRecord {
            component: "chat",
            minute: &m,
            status: "operational",
        }])
        .unwrap();
    let sub = store
        .create_subscription(&NewSubscription {
            url: "https://a.example".to_owned(),
            format: WebhookFormat::Statuspage,
            secret: "k".to_owned(),
            components: vec![],
            at_ms: 1,
        })
        .unwrap();
    store
        .enqueue(&[NewDelivery {
            subscription_id: sub.id,
            event: "incident.created".to_owned(),
            body: "{}".to_owned(),
            created_at: 1,
            next_attempt_at: 1,
        }])
        .unwrap();
    store.touch_component("chat", "Chat", 1).unwrap();

    // The writer records each id once the store acknowledged it.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acked, stop) = (Arc::clone(&store), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut at = 1_000;
            while !stop.load(Ordering::Relaxed) {
                let id = store
                    .create_incident(&new_incident("during", at))
                    .unwrap()
                    .incident
                    .id;
                acked.lock().unwrap().push(id);
                at += 1;
            }
        })
    };
    wait_for_more(&acked, 5);
    let before_backup: Vec<i64> = acked.lock().unwrap().clone();
    store.backup(&copy).unwrap();
    // Written after the backup: gone once it is restored.
    store
        .create_incident(&new_incident("after backup", 1))
        .unwrap();
    let n = acked.lock().unwrap().len();
    wait_for_more(&acked, n + 5);

    store.restore_from(&copy).unwrap();
    // The writer carries on against the restored content.
    let n = acked.lock().unwrap().len();
    wait_for_more(&acked, n + 5);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    for id in &before_backup {
        let got = store
            .incident(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("incident {id}, acknowledged before the backup, is lost"));
        assert_eq!(got.incident.name, "during");
        assert_eq!(got.incident_updates.len(), 1);
    }
    let all = names(&store);
    assert!(!all.iter().any(|n| n == "after backup"), "restore replaced");
    assert_eq!(store.minutes("chat", 0, 60_000).unwrap()[0].minute, m);
    assert_eq!(store.due(i64::MAX, 10).unwrap().len(), 1);
    assert_eq!(store.known_components().unwrap().len(), 1);

    // Usable, and what another connection sees is the same.
    store
        .create_incident(&new_incident("after restore", 2))
        .unwrap();
    let other = SqliteStore::open(&path).unwrap();
    assert_eq!(names(&other), names(&store));
    assert!(names(&other).iter().any(|n| n == "after restore"));
    let mode: String = store
        .lock()
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn restore_refuses_what_is_not_a_store_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("live.db")).unwrap();
    store.create_incident(&new_incident("mine", 1)).unwrap();

    let missing = dir.path().join("missing.db");
    assert!(matches!(
        store.restore_from(&missing),
        Err(StoreError::NotAStore(_))
    ));
    assert!(!missing.exists(), "restore does not create its source");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not an SQLite file, not even close....").unwrap();
    let err = store.restore_from(&garbage).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore(_)), "{err:?}");

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let err = store.restore_from(&foreign).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore(_)), "{err:?}");

    let future = dir.path().join("future.db");
    drop(SqliteStore::open(&future).unwrap());
    Connection::open(&future)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", LATEST_VERSION + 1))
        .unwrap();
    assert!(matches!(
        store.restore_from(&future),
        Err(StoreError::SchemaTooNew { .. })
    ));

    assert!(matches!(
        store.restore_from(store.path()),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.backup(store.path()),
        Err(StoreError::Invalid(_))
    ));

    assert_eq!(names(&store), ["mine"]);
}

#[test]
fn an_old_backup_is_restored_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v2.db");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO incidents (id, name, status, impact, created_at, updated_at,
                 automatic, draft, cause)
             VALUES (1, 'from the old backup', 'investigating', 'minor', 5, 5, 1, 0, 'timeouts');
             INSERT INTO incident_updates (incident_id, status, body, created_at)
             VALUES (1, 'investigating', 'slow', 5);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path().join("live.db")).unwrap();
    store.create_incident(&new_incident("replaced", 1)).unwrap();
    store.restore_from(&old).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    assert_eq!(names(&store), ["from the old backup"]);
    // The migrated schema works: new columns and tables.
    let edited = store.set_expected_resolved_at(1, Some(99), 6).unwrap();
    assert_eq!(edited.expected_resolved_at, Some(99));
    assert_eq!(edited.cause.as_deref(), Some("timeouts"));
    assert_eq!(store.touch_component("chat", "Chat", 7).unwrap(), 7);
}
