//! [`KeyStore`] for [`SqliteStore`]: virtual client keys, by hash.

use rusqlite::{params, Row};

use super::{limit, to_sql_count, SqliteStore};
use crate::error::{Result, StoreError};
use crate::keys::{ActiveKey, KeyInfo, NewKey, PRIORITIES};
use crate::KeyStore;

const COLUMNS: &str = "id, name, prefix, priority, rpm, tpm, models, created_at, expires_at, \
     revoked_at, last_used_at, sha256";

/// Reads [`COLUMNS`] 0 to 10.
fn info_row(row: &Row<'_>) -> rusqlite::Result<KeyInfo> {
    let models: String = row.get(6)?;
    let count = |i: usize| -> rusqlite::Result<Option<u64>> {
        let n: Option<i64> = row.get(i)?;
        Ok(n.and_then(|n| u64::try_from(n).ok()))
    };
    Ok(KeyInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        priority: row.get(3)?,
        rpm: count(4)?,
        tpm: count(5)?,
        models: models
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
        created_at: row.get(7)?,
        expires_at: row.get(8)?,
        revoked_at: row.get(9)?,
        last_used_at: row.get(10)?,
    })
}

fn active_row(row: &Row<'_>) -> rusqlite::Result<(KeyInfo, Vec<u8>)> {
    Ok((info_row(row)?, row.get(11)?))
}

impl KeyStore for SqliteStore {
    fn create_key(&self, new: &NewKey) -> Result<KeyInfo> {
        if !PRIORITIES.contains(&new.priority.as_str()) {
            return Err(StoreError::Invalid(format!(
                "priority {:?} is not one of {PRIORITIES:?}",
                new.priority
            )));
        }
        if let Some(m) = new.models.iter().find(|m| m.is_empty() || m.contains(',')) {
            return Err(StoreError::Invalid(format!("model name {m:?}")));
        }
        let rpm = new.rpm.map(|n| to_sql_count(n, "rpm")).transpose()?;
        let tpm = new.tpm.map(|n| to_sql_count(n, "tpm")).transpose()?;
        let id = self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO keys (name, sha256, prefix, priority, rpm, tpm, models,
                     expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                new.name,
                &new.sha256[..],
                new.prefix,
                new.priority,
                rpm,
                tpm,
                new.models.join(","),
                new.expires_at,
                new.at_ms,
            ])?;
            Ok(tx.last_insert_rowid())
        })?;
        Ok(KeyInfo {
            id,
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            priority: new.priority.clone(),
            rpm: new.rpm,
            tpm: new.tpm,
            models: new.models.clone(),
            created_at: new.at_ms,
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        })
    }

    fn list_keys(&self, max: usize) -> Result<Vec<KeyInfo>> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM keys ORDER BY id LIMIT ?1"))?;
        let rows = stmt.query_map([limit(max)], info_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revoke_key(&self, id: i64, at_ms: i64) -> Result<KeyInfo> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![id, at_ms])?;
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM keys WHERE id = ?1"))?;
            let mut rows = stmt.query_map([id], info_row)?;
            match rows.next() {
                Some(row) => Ok(row?),
                None => Err(StoreError::NotFound { what: "key", id }),
            }
        })
    }

    fn mark_keys_used(&self, ids: &[i64], at_ms: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, ?2), ?2)
                 WHERE id = ?1",
            )?;
            for id in ids {
                stmt.execute(params![id, at_ms])?;
            }
            Ok(())
        })
    }

    fn active_keys(&self, now_ms: i64) -> Result<Vec<ActiveKey>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM keys
             WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)
             ORDER BY id"
        ))?;
        let rows = stmt.query_map([now_ms], active_row)?;
        let mut keys = Vec::new();
        for row in rows {
            let (info, hash) = row?;
            let sha256: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("key {}: a hash of {} bytes", info.id, hash.len()))
            })?;
            keys.push(ActiveKey { info, sha256 });
        }
        Ok(keys)
    }
}
