//! [`SqliteStore`]: the default store, one SQLite file, implementing every
//! store trait ([`Store`](crate::Store), [`SliStore`](crate::SliStore),
//! [`UpstreamStore`](crate::UpstreamStore), [`WebhookStore`](crate::WebhookStore),
//! [`KeyStore`](crate::KeyStore)).
//!
//! One connection behind a mutex serves the store's own calls (SQLite
//! serialises writers anyway); a backup opens a second, read-only
//! connection so it does not hold up writers. Every write is one
//! `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so a
//! busy database makes the write wait up to the busy timeout and then fail
//! with [`StoreError::Unavailable`], never half-done.
//!
//! Layout: `incidents.rs` (incidents, maintenance, the component registry:
//! the [`Store`](crate::Store) impl), `sli.rs`, `upstream.rs`,
//! `webhooks.rs`, `keys.rs` (one trait each), `backup.rs` (backup and restore).

mod audit;
mod backup;
mod incidents;
mod keys;
mod sli;
mod upstream;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Result, StoreError};
use crate::migrate;

/// How long a statement waits for another connection's lock before failing
/// with `SQLITE_BUSY` ([`StoreError::Unavailable`]), by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`SqliteStore`] is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a write waits for another connection's lock before it
    /// fails with [`StoreError::Unavailable`].
    pub busy_timeout: Duration,
    /// Open the file read-only (`SQLITE_OPEN_READONLY`): reads work, every
    /// write fails with [`StoreError::Unavailable`]. The file must already
    /// be at [`LATEST_VERSION`](crate::LATEST_VERSION) (nothing can
    /// migrate it).
    pub read_only: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            read_only: false,
        }
    }
}

/// The SQLite store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    options: SqliteOptions,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if it does not exist and
    /// upgrading its schema in place to [`LATEST_VERSION`](crate::LATEST_VERSION).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the store at `path` with `options` (see [`SqliteStore::open`]).
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = if options.read_only {
            let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            conn.busy_timeout(options.busy_timeout)?;
            let found = migrate::version(&conn)?;
            if found > crate::LATEST_VERSION {
                return Err(StoreError::SchemaTooNew {
                    found,
                    supported: crate::LATEST_VERSION,
                });
            }
            if found < crate::LATEST_VERSION {
                return Err(StoreError::Invalid(format!(
                    "a read-only store must be at schema version {}; {} is at {found}",
                    crate::LATEST_VERSION,
                    path.display()
                )));
            }
            conn
        } else {
            let mut conn = Connection::open(&path)?;
            configure(&conn, options.busy_timeout)?;
            migrate::migrate(&mut conn)?;
            conn
        };
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            options,
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

    /// The store's connection (tests use it to provoke failures).
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`) and commits.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Per-connection settings of a read-write connection.
fn configure(conn: &Connection, busy_timeout: Duration) -> Result<()> {
    conn.busy_timeout(busy_timeout)?;
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
    // acknowledged is on the disk. Writes here are rare (incident updates,
    // one SLI batch a minute), so the cost of one fsync each does not matter.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Parses a text column into one of the model's enumerations.
fn parse<T: std::str::FromStr<Err = StoreError>>(text: &str) -> Result<T> {
    text.parse()
}

/// A `LIMIT` from a count.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count as SQLite's signed integer.
fn to_sql_count(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} {n} is too large")))
}

/// A count read back from SQLite.
fn from_sql_count(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} {n}")))
}

/// The component ids linked to an owner row (`table`/`key` are fixed names,
/// never input), sorted.
fn components(conn: &Connection, table: &str, key: &str, id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT component_id FROM {table} WHERE {key} = ?1 ORDER BY component_id"
    ))?;
    let rows = stmt.query_map([id], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Records which components an incident, a maintenance, a subscription or
/// an upstream incident concerns (`table` is the link table, `owner` its
/// id column; both are fixed names, never input). Duplicates collapse.
fn link_components(
    tx: &Transaction<'_>,
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

/// Sorted, deduplicated copy of a component list (as the link tables
/// return it).
fn sorted(components: &[String]) -> Vec<String> {
    let mut components = components.to_vec();
    components.sort();
    components.dedup();
    components
}
