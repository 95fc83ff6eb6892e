//! Virtual client keys: the data plane's keys kept in the store, so they
//! can be created and revoked while a gateway runs.
//!
//! Only a key's SHA-256 is stored, never the key; with it a short prefix
//! of the key (`ll-1a2b`, not enough to guess it) so an operator can tell
//! keys apart. A key is active while it is neither revoked nor past its
//! `expires_at`. Priority, limits and models are stored for the layers that
//! will enforce them; the store does not interpret them.

use serde::{Deserialize, Serialize};

/// What [`KeyStore::create_key`](crate::KeyStore::create_key) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// A display name (logs, metrics, lists).
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// The key's first characters, for display (not a secret).
    pub prefix: String,
    /// `critical`, `standard` or `batch`.
    pub priority: String,
    /// Requests per minute, if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute, if limited.
    pub tpm: Option<u64>,
    /// The models it may use; empty: all.
    pub models: Vec<String>,
    /// When it stops working (unix ms), if ever.
    pub expires_at: Option<i64>,
    /// Now (unix ms).
    pub at_ms: i64,
}

/// A stored key, without anything secret: what lists show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Its id.
    pub id: i64,
    /// Its display name.
    pub name: String,
    /// The key's first characters (not a secret).
    pub prefix: String,
    /// `critical`, `standard` or `batch`.
    pub priority: String,
    /// Requests per minute, if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute, if limited.
    pub tpm: Option<u64>,
    /// The models it may use; empty: all.
    pub models: Vec<String>,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it stops working (unix ms), if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked (unix ms), if it was.
    pub revoked_at: Option<i64>,
    /// When it was last used (unix ms), if known.
    pub last_used_at: Option<i64>,
}

/// An active key as the gateway needs it: its hash, to compare a presented
/// key with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKey {
    /// What lists show of it.
    pub info: KeyInfo,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
}

/// The priorities a key may have.
pub const PRIORITIES: [&str; 3] = ["critical", "standard", "batch"];
