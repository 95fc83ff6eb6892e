//! SLI minutes and their daily rollups.

use crate::sli::*;
use crate::*;

/// Midnight UTC, 2026-08-23.
const DAY0: i64 = 1_787_443_200_000;

/// A minute with `requests` requests of which `good` good, latencies in
/// the 100 ms bucket, and upstream attempts as given.
fn minute(at: i64, requests: u64, good: u64, attempts: u64, ok: u64) -> Minute {
    let mut m = Minute {
        at,
        requests,
        good,
        upstream_attempts: attempts,
        upstream_ok: ok,
        streams_completed: 1,
        ..Minute::default()
    };
    m.latency[bucket_of(80)] = requests;
    m.ttft[bucket_of(30)] = 1;
    m
}

fn record<'a>(component: &'a str, minute: &'a Minute, status: &'a str) -> MinuteRecord<'a> {
    MinuteRecord {
        component,
        minute,
        status,
    }
}

#[test]
fn minutes_roll_up_into_days_and_a_reflush_does_not_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let m0 = minute(DAY0, 10, 10, 10, 10);
    let m1 = minute(DAY0 + MINUTE_MS, 10, 4, 10, 2); // upstream down
    let m2 = minute(DAY0 + 2 * MINUTE_MS, 10, 9, 0, 0); // no attempts: not down
    let e0 = minute(DAY0, 3, 3, 3, 3);
    let written = store
        .write_minutes(&[
            record("chat", &m0, "operational"),
            record("chat", &m1, "major_outage"),
            record("chat", &m2, "degraded_performance"),
            record("embeddings", &e0, "operational"),
        ])
        .unwrap();
    assert_eq!(written, 4);

    let check = |store: &SqliteStore| {
        let days = store.days("chat", DAY0, DAY0 + DAY_MS).unwrap();
        assert_eq!(days.len(), 1);
        let day = &days[0];
        assert_eq!(day.day, DAY0);
        assert_eq!(day.totals.at, DAY0);
        assert_eq!(day.totals.requests, 30);
        assert_eq!(day.totals.good, 23);
        assert_eq!(day.totals.latency[bucket_of(80)], 30);
        assert_eq!(day.totals.ttft[bucket_of(30)], 3);
        assert_eq!(day.totals.streams_completed, 3);
        assert_eq!(day.totals.upstream_attempts, 20);
        assert_eq!(day.totals.upstream_ok, 12);
        assert_eq!(day.status_minutes.operational, 1);
        assert_eq!(day.status_minutes.major_outage, 1);
        assert_eq!(day.status_minutes.degraded_performance, 1);
        assert_eq!(day.status_minutes.total(), 3);
        assert_eq!(day.upstream_down_minutes, 1);
        assert_eq!(day.worst(), Some("major_outage"));
    };
    check(&store);

    // The same flush again (after a failure the caller could not see the
    // outcome of): nothing counts twice.
    store
        .write_minutes(&[
            record("chat", &m0, "operational"),
            record("chat", &m1, "major_outage"),
            record("chat", &m2, "degraded_performance"),
        ])
        .unwrap();
    check(&store);
    // And it is all still there after a restart.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    check(&store);

    // A minute rewritten with other counts and status replaces its old self
    // in the day: now no minute is down and the worst is partial outage.
    let m1b = minute(DAY0 + MINUTE_MS, 10, 8, 10, 9);
    store
        .write_minutes(&[record("chat", &m1b, "partial_outage")])
        .unwrap();
    let day = &store.days("chat", DAY0, DAY0 + DAY_MS).unwrap()[0];
    assert_eq!(day.totals.good, 27);
    assert_eq!(day.totals.upstream_ok, 19);
    assert_eq!(day.status_minutes.major_outage, 0);
    assert_eq!(day.status_minutes.partial_outage, 1);
    assert_eq!(day.upstream_down_minutes, 0);
    assert_eq!(day.worst(), Some("partial_outage"));

    let minutes = store.minutes("chat", DAY0, DAY0 + 2 * MINUTE_MS).unwrap();
    assert_eq!(minutes.len(), 2, "[from, to): the third minute is out");
    assert_eq!(minutes[0].minute, m0);
    assert_eq!(minutes[0].status, "operational");
    assert_eq!(minutes[1].minute, m1b);
    assert_eq!(minutes[1].status, "partial_outage");
    assert_eq!(store.sli_components().unwrap(), ["chat", "embeddings"]);
}

#[test]
fn days_split_at_utc_midnight_and_read_by_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let last = minute(DAY0 + DAY_MS - MINUTE_MS, 1, 1, 0, 0);
    let first = minute(DAY0 + DAY_MS, 2, 2, 0, 0);
    let later = minute(DAY0 + 3 * DAY_MS + 5 * MINUTE_MS, 4, 0, 4, 0);
    store
        .write_minutes(&[
            record("chat", &last, "operational"),
            record("chat", &first, "under_maintenance"),
            record("chat", &later, "major_outage"),
        ])
        .unwrap();
    let days = store.days("chat", DAY0, DAY0 + 10 * DAY_MS).unwrap();
    let summary: Vec<_> = days
        .iter()
        .map(|d| (d.day, d.totals.requests, d.worst().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            (DAY0, 1, "operational"),
            (DAY0 + DAY_MS, 2, "under_maintenance"),
            (DAY0 + 3 * DAY_MS, 4, "major_outage"),
        ]
    );
    assert_eq!(days[2].upstream_down_minutes, 1);
    assert_eq!(
        store
            .days("chat", DAY0 + DAY_MS, DAY0 + 3 * DAY_MS)
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .days("images", DAY0, DAY0 + DAY_MS)
        .unwrap()
        .is_empty());
}

#[test]
fn a_bad_batch_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let good = minute(DAY0, 1, 1, 0, 0);
    let off_grid = minute(DAY0 + 1_234, 1, 1, 0, 0);
    assert!(matches!(
        store.write_minutes(&[
            record("chat", &good, "operational"),
            record("chat", &off_grid, "operational"),
        ]),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.write_minutes(&[
            record("chat", &good, "operational"),
            record("chat", &good, "green"),
        ]),
        Err(StoreError::Invalid(_))
    ));
    let huge = Minute {
        requests: u64::MAX,
        ..good.clone()
    };
    assert!(matches!(
        store.write_minutes(&[record("chat", &huge, "operational")]),
        Err(StoreError::Invalid(_))
    ));
    assert!(store.sli_components().unwrap().is_empty());
}

#[test]
fn prune_keeps_the_retention_windows_and_skips_late_writes_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    // One minute at the start of each of 100 days.
    let minutes: Vec<Minute> = (0..100)
        .map(|d| minute(DAY0 + d * DAY_MS, 1, 1, 0, 0))
        .collect();
    let records: Vec<_> = minutes
        .iter()
        .map(|m| record("chat", m, "operational"))
        .collect();
    assert_eq!(store.write_minutes(&records).unwrap(), 100);

    // Noon of day 99.
    let now = DAY0 + 99 * DAY_MS + DAY_MS / 2;
    let pruned = store
        .prune(
            now,
            DEFAULT_MINUTE_RETENTION_DAYS,
            DEFAULT_DAY_RETENTION_DAYS,
        )
        .unwrap();
    // Minutes: those starting at or after now - 7 days (days 93..=99).
    let kept = store.minutes("chat", i64::MIN, i64::MAX).unwrap();
    assert_eq!(kept.len(), 7);
    assert_eq!(kept[0].minute.at, DAY0 + 93 * DAY_MS);
    // Days: those ending after now - 90 days (days 9..=99).
    let days = store.days("chat", i64::MIN, i64::MAX).unwrap();
    assert_eq!(days.len(), 91);
    assert_eq!(days[0].day, DAY0 + 9 * DAY_MS);
    assert_eq!(
        pruned,
        Pruned {
            minutes: 93,
            days: 9
        }
    );

    // A late re-flush of a pruned minute would count twice in its day: it
    // is skipped. A recent one is written.
    let old = minute(DAY0 + 50 * DAY_MS, 5, 5, 0, 0);
    let recent = minute(DAY0 + 99 * DAY_MS + MINUTE_MS, 5, 5, 0, 0);
    let written = store
        .write_minutes(&[
            record("chat", &old, "operational"),
            record("chat", &recent, "operational"),
        ])
        .unwrap();
    assert_eq!(written, 1);
    let day50 = store
        .days("chat", DAY0 + 50 * DAY_MS, DAY0 + 51 * DAY_MS)
        .unwrap();
    assert_eq!(day50[0].totals.requests, 1);

    // Pruning again with nothing old left deletes nothing.
    assert_eq!(store.prune(now, 7, 90).unwrap(), Pruned::default());
}

#[test]
fn status_minutes_helpers() {
    let s = StatusMinutes {
        operational: 3,
        under_maintenance: 2,
        ..StatusMinutes::default()
    };
    assert_eq!(s.worst(), Some("under_maintenance"));
    assert_eq!(s.get("operational"), Some(3));
    assert_eq!(s.get("nope"), None);
    assert_eq!(StatusMinutes::from_array(s.as_array()), s);
    assert_eq!(StatusMinutes::default().worst(), None);
    assert!(minute(0, 1, 1, 4, 1).upstream_down());
    assert!(!minute(0, 1, 1, 4, 2).upstream_down());
    assert!(!minute(0, 1, 1, 0, 0).upstream_down());
    assert_eq!(day_of(DAY0 + 5), DAY0);
    assert_eq!(day_of(-1), -DAY_MS);
}
