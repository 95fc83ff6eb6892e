//! [`SliStore`] for [`SqliteStore`]: per-minute SLI rows and their daily
//! rollups.
//!
//! **Rollup on write.** Each minute write reads the component's day row,
//! takes out the minute's previous version if there was one, adds the new
//! one and writes both rows back, all in the batch's transaction. So the
//! day is always the exact sum of the minutes written for it (a re-flush
//! after a failure replaces, never double counts), it is correct across
//! restarts without any catch-up work, and it outlives its minutes, which
//! are pruned sooner.
//!
//! **Late writes.** Once minutes (or days) before a time have been pruned, a
//! write for such a minute could no longer take out its old version, so it
//! would count twice: [`SliStore::prune`] records that time and later writes
//! for minutes before it are skipped.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::{from_sql_count, to_sql_count, SqliteStore};
use crate::error::{Result, StoreError};
use crate::sli::{
    day_of, status_severity, Minute, MinuteRecord, Pruned, SliDay, SliMinute, StatusMinutes,
    BUCKETS, COMPONENT_STATUSES, DAY_MS, MINUTE_MS,
};
use crate::SliStore;

/// The `store_meta` key of the time before which SLI writes are skipped.
const PRUNED_BEFORE: &str = "sli_pruned_before";

/// The count columns shared by both tables, in [`Counts`] order.
const COUNT_COLUMNS: &str = "requests, good, latency, ttft, streams_completed, streams_broken, \
     upstream_attempts, upstream_ok, probes_ok, probes_failed";

/// The day table's extra columns, in [`COMPONENT_STATUSES`] order, then the
/// upstream-down minutes.
const DAY_EXTRA_COLUMNS: &str = "operational_minutes, maintenance_minutes, degraded_minutes, \
     partial_minutes, major_minutes, upstream_down_minutes";

/// Buckets as stored: little-endian u64s, one after another.
fn encode(buckets: &[u64; BUCKETS]) -> Vec<u8> {
    buckets.iter().flat_map(|n| n.to_le_bytes()).collect()
}

fn decode(blob: &[u8]) -> Result<[u64; BUCKETS]> {
    if blob.len() != BUCKETS * 8 {
        return Err(StoreError::Corrupt(format!(
            "latency buckets of {} bytes",
            blob.len()
        )));
    }
    let mut buckets = [0; BUCKETS];
    for (bucket, bytes) in buckets.iter_mut().zip(blob.chunks_exact(8)) {
        let mut word = [0; 8];
        word.copy_from_slice(bytes);
        *bucket = u64::from_le_bytes(word);
    }
    Ok(buckets)
}

/// The count columns of one row, as SQLite returns them.
struct Counts {
    ints: [i64; 8],
    latency: Vec<u8>,
    ttft: Vec<u8>,
}

/// Reads [`COUNT_COLUMNS`] starting at column `at`.
fn counts(row: &Row<'_>, at: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        ints: [
            row.get(at)?,
            row.get(at + 1)?,
            row.get(at + 4)?,
            row.get(at + 5)?,
            row.get(at + 6)?,
            row.get(at + 7)?,
            row.get(at + 8)?,
            row.get(at + 9)?,
        ],
        latency: row.get(at + 2)?,
        ttft: row.get(at + 3)?,
    })
}

impl Counts {
    fn into_minute(self, at: i64) -> Result<Minute> {
        let n = |i: usize| from_sql_count(self.ints[i], "SLI count");
        Ok(Minute {
            at,
            requests: n(0)?,
            good: n(1)?,
            latency: decode(&self.latency)?,
            ttft: decode(&self.ttft)?,
            streams_completed: n(2)?,
            streams_broken: n(3)?,
            upstream_attempts: n(4)?,
            upstream_ok: n(5)?,
            probes_ok: n(6)?,
            probes_failed: n(7)?,
        })
    }
}

/// A minute's scalar counts as SQL integers, in [`Counts`] order.
fn ints(m: &Minute) -> Result<[i64; 8]> {
    let n = |v: u64| to_sql_count(v, "SLI count");
    Ok([
        n(m.requests)?,
        n(m.good)?,
        n(m.streams_completed)?,
        n(m.streams_broken)?,
        n(m.upstream_attempts)?,
        n(m.upstream_ok)?,
        n(m.probes_ok)?,
        n(m.probes_failed)?,
    ])
}

/// Takes `m`'s counts out of `sum` (the inverse of [`Minute::add`]).
fn subtract(sum: &mut Minute, m: &Minute) {
    sum.requests = sum.requests.saturating_sub(m.requests);
    sum.good = sum.good.saturating_sub(m.good);
    for i in 0..BUCKETS {
        sum.latency[i] = sum.latency[i].saturating_sub(m.latency[i]);
        sum.ttft[i] = sum.ttft[i].saturating_sub(m.ttft[i]);
    }
    sum.streams_completed = sum.streams_completed.saturating_sub(m.streams_completed);
    sum.streams_broken = sum.streams_broken.saturating_sub(m.streams_broken);
    sum.upstream_attempts = sum.upstream_attempts.saturating_sub(m.upstream_attempts);
    sum.upstream_ok = sum.upstream_ok.saturating_sub(m.upstream_ok);
    sum.probes_ok = sum.probes_ok.saturating_sub(m.probes_ok);
    sum.probes_failed = sum.probes_failed.saturating_sub(m.probes_failed);
}

/// A day row as read: the summed minute, per-status minutes (in
/// [`COMPONENT_STATUSES`] order) and upstream-down minutes.
struct DayRow {
    totals: Minute,
    status_minutes: [u64; 5],
    upstream_down: u64,
}

/// Reads a day row whose columns are `day, COUNT_COLUMNS, DAY_EXTRA_COLUMNS`.
fn day_row(row: &Row<'_>) -> rusqlite::Result<(i64, Counts, [i64; 6])> {
    Ok((
        row.get(0)?,
        counts(row, 1)?,
        [
            row.get(11)?,
            row.get(12)?,
            row.get(13)?,
            row.get(14)?,
            row.get(15)?,
            row.get(16)?,
        ],
    ))
}

fn finish_day((day, counts, extra): (i64, Counts, [i64; 6])) -> Result<DayRow> {
    let mut status_minutes = [0; 5];
    for (slot, n) in status_minutes.iter_mut().zip(extra) {
        *slot = from_sql_count(n, "status minutes")?;
    }
    Ok(DayRow {
        totals: counts.into_minute(day)?,
        status_minutes,
        upstream_down: from_sql_count(extra[5], "upstream-down minutes")?,
    })
}

/// Writes one minute and its day's rollup.
fn write_one(tx: &Transaction<'_>, record: &MinuteRecord<'_>, severity: usize) -> Result<()> {
    let minute = record.minute;
    let day = day_of(minute.at);
    let old = tx
        .prepare_cached(&format!(
            "SELECT status, {COUNT_COLUMNS} FROM sli_minutes
             WHERE component_id = ?1 AND minute = ?2"
        ))?
        .query_row(params![record.component, minute.at], |row| {
            Ok((row.get::<_, String>(0)?, counts(row, 1)?))
        })
        .optional()?;
    let current = tx
        .prepare_cached(&format!(
            "SELECT day, {COUNT_COLUMNS}, {DAY_EXTRA_COLUMNS} FROM sli_days
             WHERE component_id = ?1 AND day = ?2"
        ))?
        .query_row(params![record.component, day], day_row)
        .optional()?;
    let mut sum = match current {
        Some(raw) => finish_day(raw)?,
        None => DayRow {
            totals: Minute {
                at: day,
                ..Minute::default()
            },
            status_minutes: [0; 5],
            upstream_down: 0,
        },
    };
    if let Some((old_status, old_counts)) = old {
        let old_minute = old_counts.into_minute(minute.at)?;
        let old_severity = status_severity(&old_status)
            .ok_or_else(|| StoreError::Corrupt(format!("component status {old_status:?}")))?;
        subtract(&mut sum.totals, &old_minute);
        sum.status_minutes[old_severity] = sum.status_minutes[old_severity].saturating_sub(1);
        if old_minute.upstream_down() {
            sum.upstream_down = sum.upstream_down.saturating_sub(1);
        }
    }
    sum.totals.add(minute);
    sum.status_minutes[severity] += 1;
    if minute.upstream_down() {
        sum.upstream_down += 1;
    }

    let m = ints(minute)?;
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO sli_minutes (component_id, minute, status, {COUNT_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?
    .execute(params![
        record.component,
        minute.at,
        COMPONENT_STATUSES[severity],
        m[0],
        m[1],
        encode(&minute.latency),
        encode(&minute.ttft),
        m[2],
        m[3],
        m[4],
        m[5],
        m[6],
        m[7],
    ])?;
    let d = ints(&sum.totals)?;
    let s = sum
        .status_minutes
        .map(|n| to_sql_count(n, "status minutes"))
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO sli_days
             (component_id, day, {COUNT_COLUMNS}, {DAY_EXTRA_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                 ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?
    .execute(params![
        record.component,
        day,
        d[0],
        d[1],
        encode(&sum.totals.latency),
        encode(&sum.totals.ttft),
        d[2],
        d[3],
        d[4],
        d[5],
        d[6],
        d[7],
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        to_sql_count(sum.upstream_down, "upstream-down minutes")?,
    ])?;
    Ok(())
}

fn pruned_before(tx: &Transaction<'_>) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT value FROM store_meta WHERE key = ?1")?
        .query_row([PRUNED_BEFORE], |row| row.get(0))
        .optional()?
        .unwrap_or(i64::MIN))
}

impl SliStore for SqliteStore {
    fn write_minutes(&self, rows: &[MinuteRecord<'_>]) -> Result<usize> {
        // Check the whole batch before writing any of it.
        let severities = rows
            .iter()
            .map(|r| {
                if r.minute.at.rem_euclid(MINUTE_MS) != 0 {
                    return Err(StoreError::Invalid(format!(
                        "SLI minute {} of {:?} is not on a minute boundary",
                        r.minute.at, r.component
                    )));
                }
                ints(r.minute)?;
                status_severity(r.status)
                    .ok_or_else(|| StoreError::Invalid(format!("component status {:?}", r.status)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write(|tx| {
            let horizon = pruned_before(tx)?;
            let mut written = 0;
            for (record, severity) in rows.iter().zip(severities) {
                if record.minute.at < horizon {
                    continue;
                }
                write_one(tx, record, severity)?;
                written += 1;
            }
            Ok(written)
        })
    }

    fn minutes(&self, component: &str, from_ms: i64, to_ms: i64) -> Result<Vec<SliMinute>> {
        let conn = self.lock()?;
        let raw = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT minute, status, {COUNT_COLUMNS} FROM sli_minutes
                 WHERE component_id = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute"
            ))?;
            let rows = stmt.query_map(params![component, from_ms, to_ms], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    counts(row, 2)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        raw.into_iter()
            .map(|(at, status, counts)| {
                Ok(SliMinute {
                    minute: counts.into_minute(at)?,
                    status,
                })
            })
            .collect()
    }

    fn days(&self, component: &str, from_ms: i64, to_ms: i64) -> Result<Vec<SliDay>> {
        let conn = self.lock()?;
        let raw = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT day, {COUNT_COLUMNS}, {DAY_EXTRA_COLUMNS} FROM sli_days
                 WHERE component_id = ?1 AND day >= ?2 AND day < ?3 ORDER BY day"
            ))?;
            let rows = stmt.query_map(params![component, from_ms, to_ms], day_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        raw.into_iter()
            .map(|raw| {
                let row = finish_day(raw)?;
                Ok(SliDay {
                    day: row.totals.at,
                    totals: row.totals,
                    status_minutes: StatusMinutes::from_array(row.status_minutes),
                    upstream_down_minutes: row.upstream_down,
                })
            })
            .collect()
    }

    fn sli_components(&self) -> Result<Vec<String>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT component_id FROM sli_days UNION SELECT component_id FROM sli_minutes
             ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    fn prune(&self, now_ms: i64, minute_days: u32, day_days: u32) -> Result<Pruned> {
        let minute_cutoff = now_ms.saturating_sub(i64::from(minute_days) * DAY_MS);
        let day_cutoff = now_ms.saturating_sub(i64::from(day_days) * DAY_MS);
        self.write(|tx| {
            let minutes = tx
                .prepare_cached("DELETE FROM sli_minutes WHERE minute < ?1")?
                .execute([minute_cutoff])?;
            // Whole days only: a day goes once all of it is past the cutoff.
            let days = tx
                .prepare_cached("DELETE FROM sli_days WHERE day + ?2 <= ?1")?
                .execute([day_cutoff, DAY_MS])?;
            // Minutes before this can no longer be rewritten exactly (their
            // row or their day is gone).
            let horizon = pruned_before(tx)?
                .max(minute_cutoff)
                .max(day_of(day_cutoff));
            tx.prepare_cached(
                "INSERT INTO store_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![PRUNED_BEFORE, horizon])?;
            Ok(Pruned { minutes, days })
        })
    }
}
