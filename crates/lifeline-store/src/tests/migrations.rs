//! Upgrading a version 2 file (the first release with causes) in place.

use rusqlite::Connection;

use crate::migrate::MIGRATIONS;
use crate::sli::{Minute, MinuteRecord};
use crate::upstream::UpstreamIncident;
use crate::webhook::{NewSubscription, WebhookFormat};
use crate::*;

#[test]
fn a_version_2_file_with_data_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = wal").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO incidents (id, name, status, impact, created_at, updated_at,
                 resolved_at, automatic, draft, cause)
             VALUES (4, 'rate limited', 'resolved', 'major', 100, 300, 300, 1, 0, 'rate_limited'),
                    (5, 'slow', 'monitoring', 'minor', 400, 500, NULL, 1, 1, 'slowness');
             INSERT INTO incident_updates (incident_id, status, body, created_at)
             VALUES (4, 'investigating', 'a', 100), (4, 'resolved', 'b', 300),
                    (5, 'investigating', 'c', 400), (5, 'monitoring', 'd', 500);
             INSERT INTO incident_components VALUES (4, 'chat'), (5, 'embeddings');
             INSERT INTO maintenances VALUES (2, 'drill', 'scheduled', 1000, 2000, 'b', 1, 1);
             INSERT INTO maintenance_components VALUES (2, 'chat');",
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    const { assert!(LATEST_VERSION >= 6) };

    // Old rows intact, with the new column empty.
    let four = store.incident(4).unwrap().unwrap();
    assert_eq!(four.incident.name, "rate limited");
    assert_eq!(four.incident.cause.as_deref(), Some("rate_limited"));
    assert_eq!(four.incident.resolved_at, Some(300));
    assert_eq!(four.incident.expected_resolved_at, None);
    assert_eq!(four.incident.components, ["chat"]);
    assert_eq!(four.incident_updates.len(), 2);
    let open = store.list_unresolved().unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].draft);
    let scheduled = store
        .list_maintenances_by_status(&[MaintenanceStatus::Scheduled])
        .unwrap();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].components, ["chat"]);

    // Every new part works on the upgraded file.
    let published = store.publish_incident(5, 600).unwrap();
    assert!(!published.draft);
    store
        .set_maintenance_status(2, MaintenanceStatus::InProgress, 1000)
        .unwrap();
    assert_eq!(store.touch_component("chat", "Chat", 700).unwrap(), 700);
    let m = Minute {
        at: 60_000,
        requests: 2,
        good: 2,
        ..Minute::default()
    };
    store
        .write_minutes(&[MinuteRecord {
            component: "chat",
            minute: &m,
            status: "operational",
        }])
        .unwrap();
    assert_eq!(
        store.days("chat", 0, i64::MAX).unwrap()[0].totals.requests,
        2
    );
    store
        .upsert_upstream_incidents(
            &[UpstreamIncident {
                provider: "openai".to_owned(),
                external_id: "x".to_owned(),
                name: "n".to_owned(),
                status: "resolved".to_owned(),
                impact: "minor".to_owned(),
                components: vec![],
                created_at: 1,
                started_at: None,
                resolved_at: Some(2),
                updated_at: 2,
                shortlink: None,
            }],
            3,
        )
        .unwrap();
    assert_eq!(store.count_upstream_incidents("openai").unwrap(), 1);
    store
        .create_subscription(&NewSubscription {
            url: "https://a.example".to_owned(),
            format: WebhookFormat::Discord,
            secret: "s".to_owned(),
            components: vec![],
            at_ms: 1,
        })
        .unwrap();
    assert_eq!(store.subscriptions().unwrap().len(), 1);

    // Reopening is a no-op.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    assert_eq!(store.list_incidents(10).unwrap().len(), 2);
}

/// Version 8 adds the audit log: a version 7 file (the first with keys)
/// keeps its keys and starts with an empty log.
#[test]
fn a_version_7_file_with_keys_gets_an_empty_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = wal").unwrap();
        for m in &MIGRATIONS[..7] {
            conn.execute_batch(m).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 7;
             INSERT INTO keys (id, name, sha256, prefix, created_at)
             VALUES (3, 'team', zeroblob(32), 'll-0000', 100);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    const { assert!(LATEST_VERSION >= 8) };
    let keys = store.list_keys(10).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name, "team");
    assert!(store.audit_log(10, None).unwrap().is_empty());
    let e = store
        .record_audit(&audit::NewAuditEntry {
            at_ms: 200,
            actor: "cli:ops".to_owned(),
            source: "local".to_owned(),
            action: "key.revoke".to_owned(),
            target: "3".to_owned(),
        })
        .unwrap();
    assert_eq!(store.audit_log(10, None).unwrap(), [e]);
}
