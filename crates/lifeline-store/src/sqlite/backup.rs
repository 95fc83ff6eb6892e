//! Online backup and restore with SQLite's backup API.
//!
//! **Backup** copies the live file into a new one from a connection of its
//! own, in one step, so the copy is one consistent snapshot while writers
//! carry on (WAL).
//!
//! **Restore** runs the same API the other way: the backup file is the
//! source and the store's own connection the destination. The whole content
//! is replaced in one write transaction, so every reader (in this process
//! or another) sees either the old store or the restored one, never a mix,
//! and the store stays open and usable throughout: writes made while the
//! restore runs wait for it, then land on the restored content. The file is
//! checked first (an SQLite file that passes `PRAGMA quick_check`, with
//! Lifeline's schema at a version this build knows) and migrated up to
//! [`LATEST_VERSION`] afterwards. What was written after the backup was
//! taken is gone after the restore: that is what restoring means. Taking a
//! fresh backup before restoring is the caller's choice.

use std::path::Path;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{configure, SqliteStore};
use crate::error::{Result, StoreError};
use crate::{migrate, LATEST_VERSION};

/// How many times a backup or restore retries a step that found a database
/// busy (each try has already waited the busy timeout in SQLite's handler).
const BUSY_TRIES: u32 = 3;

impl SqliteStore {
    /// [`Store::backup`](crate::Store::backup): a consistent online copy.
    pub(crate) fn backup_to(&self, path: &Path) -> Result<()> {
        if same_file(path, &self.path) {
            return Err(StoreError::Invalid(format!(
                "{} is the store itself",
                path.display()
            )));
        }
        // A connection of its own: the copy is taken from one read snapshot
        // (WAL lets writers carry on meanwhile) and the store's connection
        // stays free for them.
        let source = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        source.busy_timeout(self.options.busy_timeout)?;
        let mut dest = Connection::open(path)?;
        dest.busy_timeout(self.options.busy_timeout)?;
        copy(&source, &mut dest)?;
        // The copy is a store in its own right: same journal mode, synced.
        configure(&dest, self.options.busy_timeout)?;
        Ok(())
    }

    /// Replaces the store's whole content with the backup at `path`, online
    /// (see the module docs), and migrates it to [`LATEST_VERSION`].
    ///
    /// Refuses, leaving the store as it was: a file that is not a Lifeline
    /// store ([`StoreError::NotAStore`]), one from a newer build
    /// ([`StoreError::SchemaTooNew`]), one with a different page size or
    /// the store's own file ([`StoreError::Invalid`]). [`StoreError::Unavailable`] if the store
    /// cannot be written now.
    pub fn restore_from(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if same_file(path, &self.path) {
            return Err(StoreError::Invalid(format!(
                "{} is the store itself",
                path.display()
            )));
        }
        let source = open_backup(path)?;
        let mut conn = self.lock()?;
        let page_size = |c: &Connection| -> Result<i64> {
            Ok(c.query_row("PRAGMA page_size", [], |row| row.get(0))?)
        };
        let (theirs, ours) = (page_size(&source)?, page_size(&conn)?);
        if theirs != ours {
            // A WAL database cannot change its page size in place.
            return Err(StoreError::Invalid(format!(
                "the backup's page size is {theirs}, the store's {ours}"
            )));
        }
        copy(&source, &mut conn)?;
        drop(source);
        configure(&conn, self.options.busy_timeout)?;
        migrate::migrate(&mut conn)
    }
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies all of `source` into `dest` in one step: the copy is of a single
/// snapshot. (A paged backup restarts whenever another connection writes,
/// which under steady writes may never finish.)
fn copy(source: &Connection, dest: &mut Connection) -> Result<()> {
    let backup = Backup::new(source, dest)?;
    let mut busy = 0;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                busy += 1;
                if busy >= BUSY_TRIES {
                    return Err(StoreError::Unavailable(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("backup: a database stayed busy".to_owned()),
                    )));
                }
            }
            _ => {}
        }
    }
}

/// Opens a file to restore from and checks that it is a Lifeline store.
fn open_backup(path: &Path) -> Result<Connection> {
    // A damaged or foreign file is "not a store", not a corrupt *store*.
    let not_a_store = |err: rusqlite::Error| match StoreError::from(err) {
        StoreError::Corrupt(why) => StoreError::NotAStore(format!("{}: {why}", path.display())),
        other => other,
    };
    if !path.is_file() {
        return Err(StoreError::NotAStore(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let source =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(not_a_store)?;
    let found: i64 = source
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(not_a_store)?;
    if found > LATEST_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: LATEST_VERSION,
        });
    }
    let has_incidents: bool = source
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'incidents'",
            [],
            |row| row.get(0),
        )
        .map_err(not_a_store)?;
    if found < 1 || !has_incidents {
        return Err(StoreError::NotAStore(format!(
            "{}: no Lifeline schema (version {found})",
            path.display()
        )));
    }
    let check: String = source
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(not_a_store)?;
    if check != "ok" {
        return Err(StoreError::NotAStore(format!(
            "{}: integrity check: {check}",
            path.display()
        )));
    }
    Ok(source)
}
