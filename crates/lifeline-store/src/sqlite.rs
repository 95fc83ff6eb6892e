//! [`SqliteStore`]: the default [`Store`], one SQLite file.
//!
//! One connection behind a mutex serves the store's own calls (SQLite
//! serialises writers anyway); [`Store::backup`] opens a second, read-only
//! connection so a backup does not hold up writers.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction};

use crate::error::{Result, StoreError};
use crate::migrate;
use crate::model::{
    Incident, IncidentStatus, IncidentUpdate, IncidentWithUpdates, MaintenanceStatus, NewIncident,
    NewMaintenance, ScheduledMaintenance,
};
use crate::Store;

/// How long a statement waits for another connection's lock before failing
/// with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a backup retries a step that found the source busy (each
/// try has already waited [`BUSY_TIMEOUT`] in SQLite's busy handler).
const BACKUP_BUSY_TRIES: u32 = 3;

const INCIDENT_COLUMNS: &str =
    "id, name, status, impact, created_at, updated_at, resolved_at, automatic, draft, cause";

const MAINTENANCE_COLUMNS: &str =
    "id, name, status, scheduled_for, scheduled_until, body, created_at, updated_at";

/// The SQLite store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if it does not exist and
    /// upgrading its schema in place to [`LATEST_VERSION`](crate::LATEST_VERSION).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path)?;
        configure(&conn)?;
        migrate::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        migrate::version(&*self.lock()?)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

/// Per-connection settings.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers (the status side's snapshot rebuilds, backups) do not
    // block the writer and the writer does not block them; a commit is one
    // append to the log.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode is {mode:?}, not wal"
        )));
    }
    // FULL, not WAL's usual NORMAL: with NORMAL a commit is only written to
    // the log and the log is synced at checkpoints, so a power cut or OS
    // crash can lose transactions that were already acknowledged to the
    // operator. FULL syncs the log on every commit; an update the admin API
    // acknowledged is on the disk. Writes here are rare (incident updates),
    // so the cost of one fsync each does not matter.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn bool_from(row: &Row<'_>, index: usize) -> rusqlite::Result<bool> {
    Ok(row.get::<_, i64>(index)? != 0)
}

/// Parses a text column into one of the model's enumerations.
fn parse<T: std::str::FromStr<Err = StoreError>>(text: &str) -> Result<T> {
    text.parse()
}

/// An incident row before its components are attached; enum text parsed
/// after the row closure (whose error type is rusqlite's).
struct IncidentRow {
    id: i64,
    name: String,
    status: String,
    impact: String,
    created_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
    automatic: bool,
    draft: bool,
    cause: Option<String>,
}

fn incident_row(row: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: row.get(0)?,
        name: row.get(1)?,
        status: row.get(2)?,
        impact: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        resolved_at: row.get(6)?,
        automatic: bool_from(row, 7)?,
        draft: bool_from(row, 8)?,
        cause: row.get(9)?,
    })
}

fn components(conn: &Connection, table: &str, key: &str, id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT component_id FROM {table} WHERE {key} = ?1 ORDER BY component_id"
    ))?;
    let rows = stmt.query_map([id], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

fn finish_incident(conn: &Connection, row: IncidentRow) -> Result<Incident> {
    Ok(Incident {
        components: components(conn, "incident_components", "incident_id", row.id)?,
        id: row.id,
        name: row.name,
        status: parse(&row.status)?,
        impact: parse(&row.impact)?,
        created_at: row.created_at,
        updated_at: row.updated_at,
        resolved_at: row.resolved_at,
        automatic: row.automatic,
        draft: row.draft,
        cause: row.cause,
    })
}

fn query_incidents(conn: &Connection, sql: &str, limit: i64) -> Result<Vec<Incident>> {
    let rows = {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([limit], incident_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    rows.into_iter()
        .map(|row| finish_incident(conn, row))
        .collect()
}

fn incident_with_updates(conn: &Connection, id: i64) -> Result<Option<IncidentWithUpdates>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
        ))?
        .query_row([id], incident_row)
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let incident = finish_incident(conn, row)?;
    let raw = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, incident_id, status, body, created_at FROM incident_updates
             WHERE incident_id = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let incident_updates = raw
        .into_iter()
        .map(|(id, incident_id, status, body, created_at)| {
            Ok(IncidentUpdate {
                id,
                incident_id,
                status: parse(&status)?,
                body,
                created_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(IncidentWithUpdates {
        incident,
        incident_updates,
    }))
}

fn insert_update(
    tx: &Transaction<'_>,
    incident_id: i64,
    status: IncidentStatus,
    body: &str,
    at_ms: i64,
) -> Result<IncidentUpdate> {
    tx.prepare_cached(
        "INSERT INTO incident_updates (incident_id, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![incident_id, status.as_str(), body, at_ms])?;
    Ok(IncidentUpdate {
        id: tx.last_insert_rowid(),
        incident_id,
        status,
        body: body.to_owned(),
        created_at: at_ms,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn create_incident(&self, new: &NewIncident) -> Result<IncidentWithUpdates> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let resolved_at = (!new.status.is_open()).then_some(new.at_ms);
        tx.prepare_cached(
            "INSERT INTO incidents
                 (name, status, impact, created_at, updated_at, resolved_at, automatic, draft, cause)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            new.name,
            new.status.as_str(),
            new.impact.as_str(),
            new.at_ms,
            resolved_at,
            new.automatic,
            new.draft,
            new.cause,
        ])?;
        let id = tx.last_insert_rowid();
        link_components(
            &tx,
            "incident_components",
            "incident_id",
            id,
            &new.components,
        )?;
        insert_update(&tx, id, new.status, &new.body, new.at_ms)?;
        let created = incident_with_updates(&tx, id)?.ok_or(StoreError::NotFound {
            what: "incident",
            id,
        })?;
        tx.commit()?;
        Ok(created)
    }

    fn add_update(
        &self,
        incident_id: i64,
        status: IncidentStatus,
        body: &str,
        at_ms: i64,
    ) -> Result<IncidentUpdate> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        // Open statuses clear resolved_at (a reopened incident); resolved
        // and postmortem keep the first resolution time.
        let changed = tx
            .prepare_cached(
                "UPDATE incidents SET status = ?2, updated_at = ?3,
                     resolved_at = CASE WHEN ?4 THEN NULL ELSE COALESCE(resolved_at, ?3) END
                 WHERE id = ?1",
            )?
            .execute(params![
                incident_id,
                status.as_str(),
                at_ms,
                status.is_open()
            ])?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "incident",
                id: incident_id,
            });
        }
        let update = insert_update(&tx, incident_id, status, body, at_ms)?;
        tx.commit()?;
        Ok(update)
    }

    fn incident(&self, id: i64) -> Result<Option<IncidentWithUpdates>> {
        incident_with_updates(&*self.lock()?, id)
    }

    fn list_incidents(&self, n: usize) -> Result<Vec<Incident>> {
        let conn = self.lock()?;
        query_incidents(
            &conn,
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 ORDER BY created_at DESC, id DESC LIMIT ?1"
            ),
            limit(n),
        )
    }

    fn list_unresolved(&self) -> Result<Vec<Incident>> {
        let conn = self.lock()?;
        query_incidents(
            &conn,
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 WHERE status IN ('investigating','identified','monitoring')
                 ORDER BY created_at DESC, id DESC LIMIT ?1"
            ),
            i64::MAX,
        )
    }

    fn create_maintenance(&self, new: &NewMaintenance) -> Result<ScheduledMaintenance> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO maintenances
                 (name, status, scheduled_for, scheduled_until, body, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?
        .execute(params![
            new.name,
            MaintenanceStatus::Scheduled.as_str(),
            new.scheduled_for,
            new.scheduled_until,
            new.body,
            new.at_ms,
        ])?;
        let id = tx.last_insert_rowid();
        link_components(
            &tx,
            "maintenance_components",
            "maintenance_id",
            id,
            &new.components,
        )?;
        let mut components = new.components.clone();
        components.sort();
        components.dedup();
        tx.commit()?;
        Ok(ScheduledMaintenance {
            id,
            name: new.name.clone(),
            status: MaintenanceStatus::Scheduled,
            scheduled_for: new.scheduled_for,
            scheduled_until: new.scheduled_until,
            components,
            body: new.body.clone(),
            created_at: new.at_ms,
            updated_at: new.at_ms,
        })
    }

    fn list_maintenances(&self, n: usize) -> Result<Vec<ScheduledMaintenance>> {
        let conn = self.lock()?;
        let rows = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MAINTENANCE_COLUMNS} FROM maintenances
                 ORDER BY scheduled_for DESC, id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit(n)], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                    row.get::<_, i64>(7)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        rows.into_iter()
            .map(
                |(
                    id,
                    name,
                    status,
                    scheduled_for,
                    scheduled_until,
                    body,
                    created_at,
                    updated_at,
                )| {
                    Ok(ScheduledMaintenance {
                        components: components(
                            &conn,
                            "maintenance_components",
                            "maintenance_id",
                            id,
                        )?,
                        id,
                        name,
                        status: parse(&status)?,
                        scheduled_for,
                        scheduled_until,
                        body,
                        created_at,
                        updated_at,
                    })
                },
            )
            .collect()
    }

    fn cancel_maintenance(&self, id: i64) -> Result<bool> {
        let conn = self.lock()?;
        let deleted = conn
            .prepare_cached("DELETE FROM maintenances WHERE id = ?1")?
            .execute([id])?;
        Ok(deleted > 0)
    }

    fn backup(&self, path: &Path) -> Result<()> {
        // A connection of its own: the copy is taken from one read snapshot
        // (WAL lets writers carry on meanwhile) and the store's connection
        // stays free for them.
        let source = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        source.busy_timeout(BUSY_TIMEOUT)?;
        let mut dest = Connection::open(path)?;
        dest.busy_timeout(BUSY_TIMEOUT)?;
        {
            let backup = Backup::new(&source, &mut dest)?;
            let mut busy = 0;
            loop {
                // All pages in one step: the copy is of a single snapshot. A
                // paged backup restarts whenever another connection writes,
                // which under steady writes may never finish.
                match backup.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    StepResult::Busy | StepResult::Locked => {
                        busy += 1;
                        if busy >= BACKUP_BUSY_TRIES {
                            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                                Some("backup: source stayed busy".to_owned()),
                            )));
                        }
                    }
                    _ => {}
                }
            }
        }
        // The copy is a store in its own right: same journal mode, synced.
        configure(&dest)?;
        Ok(())
    }
}

/// Records which components an incident or a maintenance affects
/// (`table` is `incident_components` or `maintenance_components`, `owner`
/// its id column; both are fixed names, never input).
fn link_components(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    owner: &str,
    id: i64,
    components: &[String],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {table} ({owner}, component_id) VALUES (?1, ?2)"
    ))?;
    for component in components {
        stmt.execute(params![id, component])?;
    }
    Ok(())
}
