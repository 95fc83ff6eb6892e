//! A store that cannot write now (locked, read-only, full) says so with
//! [`StoreError::Unavailable`], promptly, changes nothing, and works again
//! once the cause is gone.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::new_incident;
use crate::sli::{Minute, MinuteRecord};
use crate::*;

/// Far longer than any busy timeout here: a write that has not returned by
/// then hangs.
const NO_HANG: Duration = Duration::from_secs(60);

/// SQLite's reason behind an [`StoreError::Unavailable`].
fn unavailable_because(err: &StoreError) -> Option<ErrorCode> {
    match err {
        StoreError::Unavailable(rusqlite::Error::SqliteFailure(failure, _)) => Some(failure.code),
        _ => None,
    }
}

fn short_timeout() -> SqliteOptions {
    SqliteOptions {
        busy_timeout: Duration::from_millis(200),
        ..SqliteOptions::default()
    }
}

#[test]
fn a_write_under_another_connections_lock_fails_as_unavailable_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = std::sync::Arc::new(SqliteStore::open_with(&path, short_timeout()).unwrap());
    store.create_incident(&new_incident("before", 1)).unwrap();

    // Another process (here: another connection) holds the write lock.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    other
        .execute(
            "INSERT INTO components (id, name, created_at) VALUES ('x', 'X', 1)",
            [],
        )
        .unwrap();

    // The write runs on its own thread so that a hang fails the test
    // instead of stalling it.
    let (tx, rx) = mpsc::channel();
    {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            let m = Minute {
                at: 60_000,
                requests: 1,
                good: 1,
                ..Minute::default()
            };
            let results = (
                store.create_incident(&new_incident("during", 2)),
                store.write_minutes(&[MinuteRecord {
                    component: "chat",
                    minute: &m,
                    status: "operational",
                }]),
            );
            tx.send(results).unwrap();
        });
    }
    let (incident, minutes) = rx.recv_timeout(NO_HANG).expect("the write hung");
    let err = incident.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(unavailable_because(&err), Some(ErrorCode::DatabaseBusy));
    let err = minutes.unwrap_err();
    assert_eq!(unavailable_because(&err), Some(ErrorCode::DatabaseBusy));
    // Reads go on (WAL): the page can still be built from what is there.
    assert_eq!(store.list_incidents(10).unwrap().len(), 1);
    assert!(store.sli_components().unwrap().is_empty());

    other.execute_batch("COMMIT").unwrap();
    store.create_incident(&new_incident("after", 3)).unwrap();
    let names: Vec<_> = store
        .list_incidents(10)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["after", "before"], "the failed write left nothing");
    assert_eq!(store.known_components().unwrap().len(), 1);
}

#[test]
fn a_read_only_store_refuses_writes_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_incident(&new_incident("kept", 1)).unwrap();
    }

    // Opened read-only (SQLITE_OPEN_READONLY): this works as root too, for
    // whom file permissions do not stop writes.
    let options = SqliteOptions {
        read_only: true,
        ..short_timeout()
    };
    let store = SqliteStore::open_with(&path, options.clone()).unwrap();
    assert_eq!(store.list_incidents(10).unwrap().len(), 1);
    let err = store.create_incident(&new_incident("no", 2)).unwrap_err();
    assert_eq!(
        unavailable_because(&err),
        Some(ErrorCode::ReadOnly),
        "{err:?}"
    );
    assert!(store
        .touch_component("chat", "Chat", 1)
        .unwrap_err()
        .is_unavailable());
    drop(store);

    // A file its owner cannot write, where permissions apply (not root,
    // or root without CAP_DAC_OVERRIDE).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let enforced = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .is_err();
    if enforced {
        match SqliteStore::open(&path) {
            Err(err) => assert!(err.is_unavailable(), "{err:?}"),
            Ok(store) => {
                let err = store.create_incident(&new_incident("no", 2)).unwrap_err();
                assert!(err.is_unavailable(), "{err:?}");
            }
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&path).unwrap();
    store
        .create_incident(&new_incident("writable again", 3))
        .unwrap();
    assert_eq!(store.list_incidents(10).unwrap().len(), 2);

    // A read-only open of a file that would need migrating is refused.
    let old = dir.path().join("old.db");
    Connection::open(&old)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1")
        .unwrap();
    assert!(matches!(
        SqliteStore::open_with(&old, options),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn a_full_disk_fails_as_unavailable_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let kept = store.create_incident(&new_incident("kept", 1)).unwrap();
    // SQLite's page limit is how a full disk looks to it: SQLITE_FULL.
    let pages: i64 = {
        let conn = store.lock().unwrap();
        let pages = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages).unwrap();
        pages
    };
    let minutes: Vec<Minute> = (0..2_000)
        .map(|i| Minute {
            at: i * 60_000,
            requests: 1,
            ..Minute::default()
        })
        .collect();
    let records: Vec<_> = minutes
        .iter()
        .map(|m| MinuteRecord {
            component: "chat",
            minute: m,
            status: "operational",
        })
        .collect();
    let err = store.write_minutes(&records).unwrap_err();
    assert_eq!(
        unavailable_because(&err),
        Some(ErrorCode::DiskFull),
        "{err:?}"
    );
    // Nothing of the batch was written, and what was acknowledged is there.
    assert!(store.sli_components().unwrap().is_empty());
    assert_eq!(store.incident(kept.incident.id).unwrap().unwrap(), kept);

    // Space again: the same batch goes in.
    store
        .lock()
        .unwrap()
        .pragma_update(None, "max_page_count", pages * 1_000)
        .unwrap();
    assert_eq!(store.write_minutes(&records).unwrap(), 2_000);
}
