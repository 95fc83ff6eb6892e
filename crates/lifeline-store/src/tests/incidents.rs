//! Incident edits (publish, restoration override, impact and components),
//! maintenance transitions and the component registry.

use super::new_incident;
use crate::*;

#[test]
fn a_draft_is_published_and_edited_without_touching_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let mut new = new_incident("held back", 1_000);
    new.draft = true;
    let id = store.create_incident(&new).unwrap().incident.id;
    assert!(store.incident(id).unwrap().unwrap().incident.draft);

    let published = store.publish_incident(id, 2_000).unwrap();
    assert!(!published.draft);
    assert_eq!(published.updated_at, 2_000);
    assert_eq!(published.created_at, 1_000);
    assert_eq!(published.status, IncidentStatus::Investigating);

    // The operator's override: an absolute time, then removed again.
    let overridden = store
        .set_expected_resolved_at(id, Some(9_000_000), 3_000)
        .unwrap();
    assert_eq!(overridden.expected_resolved_at, Some(9_000_000));
    assert_eq!(
        store
            .incident(id)
            .unwrap()
            .unwrap()
            .incident
            .expected_resolved_at,
        Some(9_000_000)
    );

    // Impact and components change; unset fields stay as they were.
    let edited = store
        .edit_incident(
            id,
            &IncidentEdit {
                impact: Some(Impact::Critical),
                components: Some(vec!["images".to_owned(), "chat".to_owned()]),
                cause: Some(None),
                ..IncidentEdit::default()
            },
            4_000,
        )
        .unwrap();
    assert_eq!(edited.impact, Impact::Critical);
    assert_eq!(edited.components, ["chat", "images"]);
    assert_eq!(edited.cause, None);
    assert_eq!(edited.name, "held back");
    assert!(!edited.draft);
    assert_eq!(edited.expected_resolved_at, Some(9_000_000));
    assert_eq!(edited.updated_at, 4_000);

    let cleared = store.set_expected_resolved_at(id, None, 5_000).unwrap();
    assert_eq!(cleared.expected_resolved_at, None);

    // Edits post no update: the timeline is the opening one only.
    let got = store.incident(id).unwrap().unwrap();
    assert_eq!(got.incident_updates.len(), 1);
    assert_eq!(got.incident, cleared);
    // And a postmortem is an update like any other.
    store
        .add_update(id, IncidentStatus::Resolved, "fixed", 6_000)
        .unwrap();
    store
        .add_update(id, IncidentStatus::Postmortem, "# What happened", 7_000)
        .unwrap();
    let got = store.incident(id).unwrap().unwrap();
    assert_eq!(got.incident.status, IncidentStatus::Postmortem);
    assert_eq!(got.incident.resolved_at, Some(6_000));
    assert_eq!(got.incident_updates[2].body, "# What happened");

    assert!(matches!(
        store.publish_incident(id + 1, 1),
        Err(StoreError::NotFound {
            what: "incident",
            ..
        })
    ));
}

#[test]
fn maintenance_moves_forward_on_time_and_never_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let make = |name: &str, from: i64| NewMaintenance {
        name: name.to_owned(),
        scheduled_for: from,
        scheduled_until: from + 60_000,
        components: vec!["chat".to_owned()],
        body: String::new(),
        at_ms: 1,
    };
    let later = store.create_maintenance(&make("later", 500_000)).unwrap();
    let sooner = store.create_maintenance(&make("sooner", 100_000)).unwrap();

    let scheduled = store
        .list_maintenances_by_status(&[MaintenanceStatus::Scheduled])
        .unwrap();
    assert_eq!(
        scheduled.iter().map(|m| m.id).collect::<Vec<_>>(),
        [sooner.id, later.id],
        "earliest first"
    );

    let started = store
        .set_maintenance_status(sooner.id, MaintenanceStatus::InProgress, 100_000)
        .unwrap();
    assert_eq!(started.status, MaintenanceStatus::InProgress);
    assert_eq!(started.updated_at, 100_000);
    // The engine repeating itself changes nothing.
    let again = store
        .set_maintenance_status(sooner.id, MaintenanceStatus::InProgress, 100_500)
        .unwrap();
    assert_eq!(again, started);
    let done = store
        .set_maintenance_status(sooner.id, MaintenanceStatus::Completed, 160_000)
        .unwrap();
    assert_eq!(done.status, MaintenanceStatus::Completed);
    assert_eq!(done.updated_at, 160_000);
    // Never back: a late "in progress" leaves it completed.
    let late = store
        .set_maintenance_status(sooner.id, MaintenanceStatus::InProgress, 170_000)
        .unwrap();
    assert_eq!(late, done);

    let open = store
        .list_maintenances_by_status(&[MaintenanceStatus::Scheduled, MaintenanceStatus::InProgress])
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, later.id);
    let completed = store
        .list_maintenances_by_status(&[MaintenanceStatus::Completed])
        .unwrap();
    assert_eq!(completed, [done]);
    assert!(store.list_maintenances_by_status(&[]).unwrap().is_empty());

    assert!(matches!(
        store.set_maintenance_status(999, MaintenanceStatus::Completed, 1),
        Err(StoreError::NotFound {
            what: "maintenance",
            id: 999
        })
    ));
}

#[test]
fn a_component_keeps_its_first_sighting_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.touch_component("chat", "Chat", 1_000).unwrap(), 1_000);
        assert_eq!(store.touch_component("chat", "Chat", 2_000).unwrap(), 1_000);
        assert_eq!(
            store.touch_component("gateway", "Gateway", 3_000).unwrap(),
            3_000
        );
    }
    let store = SqliteStore::open(&path).unwrap();
    // A rename keeps created_at.
    assert_eq!(
        store
            .touch_component("chat", "Chat Completions", 9_000)
            .unwrap(),
        1_000
    );
    assert_eq!(
        store.known_components().unwrap(),
        [
            KnownComponent {
                id: "chat".to_owned(),
                name: "Chat Completions".to_owned(),
                created_at: 1_000,
            },
            KnownComponent {
                id: "gateway".to_owned(),
                name: "Gateway".to_owned(),
                created_at: 3_000,
            },
        ]
    );
}

#[test]
fn a_late_automatic_write_yields_to_a_later_or_final_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let id = store
        .create_incident(&new_incident("errors", 1_000))
        .unwrap()
        .incident
        .id;
    // Current: written.
    let u = store
        .add_update_if_current(id, IncidentStatus::Identified, "found it", 2_000)
        .unwrap();
    assert!(u.is_some());
    // Someone changed it at 4 000: a write decided at 3 000 is dropped.
    store
        .add_update(id, IncidentStatus::Monitoring, "an operator", 4_000)
        .unwrap();
    let late = store
        .add_update_if_current(id, IncidentStatus::Identified, "stale", 3_000)
        .unwrap();
    assert!(late.is_none());
    let edit = IncidentEdit {
        impact: Some(Impact::Critical),
        ..IncidentEdit::default()
    };
    assert!(store
        .edit_incident_if_current(id, &edit, 3_000)
        .unwrap()
        .is_none());
    // Resolved: nothing reopens it, however late the write is stamped.
    store
        .add_update(id, IncidentStatus::Resolved, "fixed", 5_000)
        .unwrap();
    assert!(store
        .add_update_if_current(id, IncidentStatus::Identified, "again", 9_000)
        .unwrap()
        .is_none());
    assert!(store
        .edit_incident_if_current(id, &edit, 9_000)
        .unwrap()
        .is_none());
    let now = store.incident(id).unwrap().unwrap();
    assert_eq!(now.incident.status, IncidentStatus::Resolved);
    assert_eq!(now.incident.resolved_at, Some(5_000));
    assert_eq!(now.incident.updated_at, 5_000);
    assert_eq!(now.incident_updates.len(), 4);
    assert_ne!(now.incident.impact, Impact::Critical);
    // Still open and current: edits go in.
    let id2 = store
        .create_incident(&new_incident("other", 1_000))
        .unwrap()
        .incident
        .id;
    let edited = store.edit_incident_if_current(id2, &edit, 1_000).unwrap();
    assert_eq!(edited.unwrap().impact, Impact::Critical);
    assert!(matches!(
        store.add_update_if_current(999, IncidentStatus::Identified, "x", 1),
        Err(StoreError::NotFound { .. })
    ));
}
