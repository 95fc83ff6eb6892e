//! The audit log: appended, read newest first, paged by id, kept across
//! reopening; the actor id secret is made once.

use super::*;
use crate::audit::NewAuditEntry;

fn entry(i: i64) -> NewAuditEntry {
    NewAuditEntry {
        at_ms: 1000 + i,
        actor: "sha256:0123abcd".to_owned(),
        source: "127.0.0.1:5000".to_owned(),
        action: "deployment.drain".to_owned(),
        target: format!("p/m{i}"),
    }
}

#[test]
fn entries_are_read_newest_first_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path).unwrap();
    let ids: Vec<i64> = (0..5)
        .map(|i| store.record_audit(&entry(i)).unwrap().id)
        .collect();
    let page = store.audit_log(2, None).unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    assert_eq!(page[0].target, "p/m4");
    assert_eq!(page[0].at, 1004);
    let next = store.audit_log(2, Some(page[1].id)).unwrap();
    assert_eq!(
        next.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let last = store.audit_log(10, Some(next[1].id)).unwrap();
    assert_eq!(last.len(), 1);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.audit_log(100, None).unwrap().len(), 5);
}

#[test]
fn the_actor_id_secret_is_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path).unwrap();
    let first: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
    assert_eq!(store.actor_id_secret(first).unwrap(), first);
    // A later call, or another process on the same file, gets the stored one.
    assert_eq!(store.actor_id_secret([9; 16]).unwrap(), first);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.actor_id_secret([7; 16]).unwrap(), first);
}
