//! The audit log: who did what to the gateway through its admin API or CLI.
//!
//! One row per admin action (a key created or revoked, a drain, a reload,
//! an incident, maintenance or webhook change), with its time, the actor
//! (an admin token's id, `token:` and the first 8 hex digits of the
//! token's HMAC-SHA-256 under the store's own secret
//! ([`AuditStore::actor_id_secret`](crate::AuditStore::actor_id_secret)),
//! never the token; `cli:USER` for CLI writes that bypass the API;
//! `signal:SIGHUP` for a reload by that signal), the source address, the
//! action and its target. Rows are only ever added.

use serde::{Deserialize, Serialize};

/// What [`AuditStore::record_audit`](crate::AuditStore::record_audit) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When (unix ms).
    pub at_ms: i64,
    /// Who: `token:1a2b3c4d` (an admin token's id), `cli:USER` or `signal:SIGHUP`.
    pub actor: String,
    /// From where: the client's socket address, or `local`.
    pub source: String,
    /// What, e.g. `key.create`, `deployment.drain`, `config.reload`.
    pub action: String,
    /// On what, e.g. a key's id, `provider/model`; `-` when nothing.
    pub target: String,
}

/// A recorded admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its id (increasing: newer entries have larger ids).
    pub id: i64,
    /// When (unix ms).
    pub at: i64,
    /// Who (see [`NewAuditEntry::actor`]).
    pub actor: String,
    /// From where.
    pub source: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
}
