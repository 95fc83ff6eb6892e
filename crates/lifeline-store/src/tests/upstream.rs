//! The archive of providers' published incidents.

use crate::upstream::*;
use crate::*;

fn published(provider: &str, id: &str, created_at: i64) -> UpstreamIncident {
    UpstreamIncident {
        provider: provider.to_owned(),
        external_id: id.to_owned(),
        name: format!("Elevated errors ({id})"),
        status: "investigating".to_owned(),
        impact: "minor".to_owned(),
        components: vec!["Chat Completions".to_owned(), "API".to_owned()],
        created_at,
        started_at: Some(created_at - 60_000),
        resolved_at: None,
        updated_at: created_at,
        shortlink: Some(format!("https://stspg.io/{id}")),
    }
}

#[test]
fn polls_upsert_by_provider_and_id_and_the_archive_outlives_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    // First poll: two incidents of openai, one of anthropic with the same
    // external id (ids are per provider).
    store
        .upsert_upstream_incidents(
            &[
                published("openai", "a1", 1_000),
                published("openai", "a2", 2_000),
                published("anthropic", "a1", 1_500),
            ],
            10_000,
        )
        .unwrap();
    assert_eq!(store.count_upstream_incidents("openai").unwrap(), 2);
    assert_eq!(store.count_upstream_incidents("anthropic").unwrap(), 1);
    assert_eq!(store.count_upstream_incidents("mistral").unwrap(), 0);

    // Second poll: a1 resolved (and its components changed), a2 has left
    // the feed (only the latest 50 are published), a3 is new.
    let mut resolved = published("openai", "a1", 1_000);
    resolved.status = "resolved".to_owned();
    resolved.resolved_at = Some(5_000);
    resolved.updated_at = 5_000;
    resolved.components = vec!["Embeddings".to_owned()];
    store
        .upsert_upstream_incidents(
            &[resolved.clone(), published("openai", "a3", 3_000)],
            20_000,
        )
        .unwrap();
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    let archive = store.upstream_incidents("openai").unwrap();
    let ids: Vec<_> = archive
        .iter()
        .map(|a| a.incident.external_id.as_str())
        .collect();
    assert_eq!(ids, ["a1", "a2", "a3"], "oldest first, a2 kept");
    assert_eq!(archive[0].incident, resolved);
    assert_eq!(archive[0].first_seen_at, 10_000);
    assert_eq!(archive[0].last_seen_at, 20_000);
    let a2 = &archive[1];
    assert_eq!(a2.incident.components, ["API", "Chat Completions"]);
    assert_eq!(a2.incident.started_at, Some(2_000 - 60_000));
    assert_eq!(a2.incident.resolved_at, None);
    assert_eq!(a2.last_seen_at, 10_000, "open, but its end was lost");
    assert_eq!(archive[2].first_seen_at, 20_000);
    assert_eq!(store.upstream_incidents("anthropic").unwrap().len(), 1);

    // A stale copy (older updated_at) does not undo the resolution, but it
    // was seen.
    store
        .upsert_upstream_incidents(&[published("openai", "a1", 1_000)], 30_000)
        .unwrap();
    let a1 = store.upstream_incidents("openai").unwrap().remove(0);
    assert_eq!(a1.incident, resolved);
    assert_eq!(a1.last_seen_at, 30_000);
}
