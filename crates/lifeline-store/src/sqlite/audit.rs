//! [`AuditStore`] for [`SqliteStore`]: the audit log.

use rusqlite::{params, Row};

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
}
