//! Virtual keys: create, list, revoke, expiry; and a version 6 file
//! upgraded to hold them.

use rusqlite::Connection;

use crate::keys::NewKey;
use crate::migrate::MIGRATIONS;
use crate::*;

fn new_key(name: &str, byte: u8, at_ms: i64) -> NewKey {
    NewKey {
        name: name.to_owned(),
        sha256: [byte; 32],
        prefix: format!("ll-{byte:02x}{byte:02x}"),
        priority: "standard".to_owned(),
        rpm: None,
        tpm: None,
        models: vec![],
        expires_at: None,
        at_ms,
    }
}

#[test]
fn keys_are_created_listed_revoked_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut a = new_key("app", 1, 1_000);
    a.priority = "critical".to_owned();
    a.rpm = Some(60);
    a.tpm = Some(10_000);
    a.models = vec!["gpt-4o".to_owned(), "embed".to_owned()];
    let a = store.create_key(&a).unwrap();
    let mut b = new_key("batch-job", 2, 2_000);
    b.expires_at = Some(5_000);
    let b = store.create_key(&b).unwrap();
    let c = store.create_key(&new_key("old", 3, 3_000)).unwrap();

    let listed = store.list_keys(10).unwrap();
    assert_eq!(listed, [a.clone(), b.clone(), c.clone()]);
    assert_eq!(listed[0].models, ["gpt-4o", "embed"]);
    assert_eq!(listed[0].rpm, Some(60));
    assert_eq!(listed[0].priority, "critical");
    assert_eq!(listed[1].priority, "standard");
    assert_eq!(store.list_keys(1).unwrap(), std::slice::from_ref(&a));

    let ids = |now| -> Vec<i64> {
        store
            .active_keys(now)
            .unwrap()
            .iter()
            .map(|k| k.info.id)
            .collect()
    };
    assert_eq!(ids(4_999), [a.id, b.id, c.id]);
    // Expired at its expiry time.
    assert_eq!(ids(5_000), [a.id, c.id]);
    let active = store.active_keys(0).unwrap();
    assert_eq!(active[0].sha256, [1; 32]);

    let revoked = store.revoke_key(c.id, 6_000).unwrap();
    assert_eq!(revoked.revoked_at, Some(6_000));
    // Revoking again keeps the first time.
    assert_eq!(
        store.revoke_key(c.id, 7_000).unwrap().revoked_at,
        Some(6_000)
    );
    assert_eq!(ids(6_000), [a.id]);
    assert!(matches!(
        store.revoke_key(999, 1),
        Err(StoreError::NotFound {
            what: "key",
            id: 999
        })
    ));

    store.mark_keys_used(&[a.id, 999], 8_000).unwrap();
    store.mark_keys_used(&[a.id], 7_500).unwrap();
    store.mark_keys_used(&[], 9_000).unwrap();
    let listed = store.list_keys(10).unwrap();
    assert_eq!(listed[0].last_used_at, Some(8_000), "a later time is kept");
    assert_eq!(listed[1].last_used_at, None);

    // Survives a reopen.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_keys(10).unwrap().len(), 3);
    assert_eq!(store.active_keys(6_000).unwrap().len(), 1);
}

#[test]
fn the_key_itself_is_never_stored_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_key(&new_key("app", 7, 1)).unwrap();
    // The table holds the hash and the prefix; nothing else of the key.
    let conn = Connection::open(&path).unwrap();
    let (hash, prefix): (Vec<u8>, String) = conn
        .query_row("SELECT sha256, prefix FROM keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(hash, [7; 32]);
    assert_eq!(prefix, "ll-0707");

    let mut bad = new_key("x", 8, 1);
    bad.priority = "urgent".to_owned();
    assert!(matches!(
        store.create_key(&bad),
        Err(StoreError::Invalid(_))
    ));
    let mut bad = new_key("x", 8, 1);
    bad.models = vec!["a,b".to_owned()];
    assert!(matches!(
        store.create_key(&bad),
        Err(StoreError::Invalid(_))
    ));
    // The same hash twice is refused.
    assert!(store.create_key(&new_key("dup", 7, 2)).is_err());
    assert_eq!(store.list_keys(10).unwrap().len(), 1);
}

#[test]
fn a_version_6_file_is_upgraded_to_hold_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 6;
             INSERT INTO webhook_subscriptions (id, url, format, secret, created_at)
             VALUES (3, 'https://h.example/x', 'slack', 's', 10);",
        )
        .unwrap();
        assert!(conn.prepare("SELECT id FROM keys").is_err());
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    const { assert!(LATEST_VERSION >= 7) };
    assert_eq!(store.subscriptions().unwrap()[0].id, 3);
    assert!(store.list_keys(10).unwrap().is_empty());
    let k = store.create_key(&new_key("app", 9, 20)).unwrap();
    assert_eq!(store.active_keys(20).unwrap()[0].info, k);
    // The priority's default is the schema's too.
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO keys (name, sha256, prefix, created_at) VALUES ('raw', ?1, 'll-', 1)",
            [&[5u8; 32][..]],
        )
        .unwrap();
    assert_eq!(store.list_keys(10).unwrap()[1].priority, "standard");
}
