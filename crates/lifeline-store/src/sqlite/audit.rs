//! [`AuditStore`] for [`SqliteStore`]: the audit log.

use rusqlite::{params, OptionalExtension, Row};

use super::{limit, SqliteStore};
use crate::audit::{AuditEntry, NewAuditEntry};
use crate::error::Result;
use crate::AuditStore;

fn row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        source: row.get(3)?,
        action: row.get(4)?,
        target: row.get(5)?,
    })
}

impl AuditStore for SqliteStore {
    fn record_audit(&self, e: &NewAuditEntry) -> Result<AuditEntry> {
        let id = self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO audit_log (at, actor, source, action, target)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![e.at_ms, e.actor, e.source, e.action, e.target])?;
            Ok(tx.last_insert_rowid())
        })?;
        Ok(AuditEntry {
            id,
            at: e.at_ms,
            actor: e.actor.clone(),
            source: e.source.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
        })
    }

    fn audit_log(&self, max: usize, before_id: Option<i64>) -> Result<Vec<AuditEntry>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, source, action, target FROM audit_log
             WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit(max), before_id.unwrap_or(i64::MAX)], row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn actor_id_secret(&self, fresh: [u8; 16]) -> Result<[u8; 16]> {
        self.write(|tx| {
            let mut secret = [0u8; 16];
            for (i, name) in ACTOR_ID_SECRET.iter().enumerate() {
                let half: [u8; 8] = fresh[i * 8..i * 8 + 8].try_into().unwrap_or_default();
                tx.prepare_cached("INSERT OR IGNORE INTO store_meta (key, value) VALUES (?1, ?2)")?
                    .execute(params![name, i64::from_le_bytes(half)])?;
                let value: Option<i64> = tx
                    .prepare_cached("SELECT value FROM store_meta WHERE key = ?1")?
                    .query_row([name], |r| r.get(0))
                    .optional()?;
                secret[i * 8..i * 8 + 8].copy_from_slice(&value.unwrap_or(0).to_le_bytes());
            }
            Ok(secret)
        })
    }
}

/// The `store_meta` keys of the actor id secret's two halves.
const ACTOR_ID_SECRET: [&str; 2] = ["audit_actor_secret_0", "audit_actor_secret_1"];
