//! The store's error type.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (I/O, lock timeout, constraint, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    /// A value in the file is not one this build understands.
    #[error("unexpected value in the store: {0}")]
    Corrupt(String),
    /// Another thread panicked while holding the connection.
    #[error("the store's connection lock is poisoned")]
    Poisoned,
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;
