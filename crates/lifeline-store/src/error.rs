//! The store's error type.
//!
//! Callers need to tell two kinds of failure apart: the store is there but
//! cannot take the operation *right now* ([`StoreError::Unavailable`]: locked
//! by another writer, a read-only file, a full disk, an I/O error), after
//! which the status side keeps its data in memory, says that its history is
//! behind and tries again later; and everything else (a missing row, a file
//! from a newer build, a damaged file, a value this build does not know),
//! which retrying does not fix.

use rusqlite::ErrorCode;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take the operation now, but may later: the database
    /// is locked by another connection past the busy timeout, the file or
    /// its directory is read-only, the disk is full, or the disk reported an
    /// I/O error. Nothing was changed; retry later.
    #[error("store unavailable (retry later): {0}")]
    Unavailable(#[source] rusqlite::Error),
    /// Any other error SQLite reported (a constraint, a misuse, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The named row does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of row ("incident", ...).
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The file's schema is newer than this build knows (a downgrade).
    #[error("the store's schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The latest version this build ships.
        supported: i64,
    },
    /// The file is damaged (SQLite found a malformed page), or a value in
    /// it is not one this build understands.
    #[error("unexpected value in the store: {0}")]
    Corrupt(String),
    /// A file given to restore from is not a Lifeline store (not SQLite,
    /// no Lifeline schema, or failing SQLite's integrity check).
    #[error("not a Lifeline store: {0}")]
    NotAStore(String),
    /// The caller passed a value the store refuses (an unknown component
    /// status, a minute not on a minute boundary, a count too large, ...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Another thread panicked while holding the connection.
    #[error("the store's connection lock is poisoned")]
    Poisoned,
}

impl StoreError {
    /// Whether this is [`StoreError::Unavailable`]: a retry later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        let code = match &err {
            rusqlite::Error::SqliteFailure(failure, _) => failure.code,
            _ => return Self::Sqlite(err),
        };
        match code {
            // Another connection holds the lock past the busy timeout.
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
            // The file, its journal or its directory cannot be written.
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            // ENOSPC, or the page limit.
            | ErrorCode::DiskFull
            // EIO and friends: the disk, not the data.
            | ErrorCode::SystemIoFailure => Self::Unavailable(err),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Self::Corrupt(err.to_string()),
            _ => Self::Sqlite(err),
        }
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;
