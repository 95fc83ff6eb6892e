//! [`UpstreamStore`] for [`SqliteStore`]: the archive of providers'
//! published incidents.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::{from_sql_count, link_components, SqliteStore};
use crate::error::Result;
use crate::upstream::{ArchivedIncident, UpstreamIncident};
use crate::UpstreamStore;

impl UpstreamStore for SqliteStore {
    fn upsert_upstream_incidents(
        &self,
        incidents: &[UpstreamIncident],
        seen_at_ms: i64,
    ) -> Result<()> {
        self.write(|tx| {
            for incident in incidents {
                let known: Option<(i64, i64)> = tx
                    .prepare_cached(
                        "SELECT id, updated_at FROM upstream_incidents
                         WHERE provider = ?1 AND external_id = ?2",
                    )?
                    .query_row(params![incident.provider, incident.external_id], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()?;
                let id = match known {
                    // An older copy than the one archived (a stale cache
                    // answered the poll): only note that it was seen.
                    Some((id, updated_at)) if updated_at > incident.updated_at => {
                        tx.prepare_cached(
                            "UPDATE upstream_incidents SET last_seen_at = MAX(last_seen_at, ?2)
                             WHERE id = ?1",
                        )?
                        .execute(params![id, seen_at_ms])?;
                        continue;
                    }
                    Some((id, _)) => {
                        tx.prepare_cached(
                            "UPDATE upstream_incidents SET name = ?2, status = ?3, impact = ?4,
                                 created_at = ?5, started_at = ?6, resolved_at = ?7,
                                 updated_at = ?8, shortlink = ?9,
                                 last_seen_at = MAX(last_seen_at, ?10)
                             WHERE id = ?1",
                        )?
                        .execute(params![
                            id,
                            incident.name,
                            incident.status,
                            incident.impact,
                            incident.created_at,
                            incident.started_at,
                            incident.resolved_at,
                            incident.updated_at,
                            incident.shortlink,
                            seen_at_ms,
                        ])?;
                        tx.prepare_cached(
                            "DELETE FROM upstream_incident_components WHERE incident_id = ?1",
                        )?
                        .execute([id])?;
                        id
                    }
                    None => {
                        tx.prepare_cached(
                            "INSERT INTO upstream_incidents (provider, external_id, name, status,
                                 impact, created_at, started_at, resolved_at, updated_at,
                                 shortlink, first_seen_at, last_seen_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
                        )?
                        .execute(params![
                            incident.provider,
                            incident.external_id,
                            incident.name,
                            incident.status,
                            incident.impact,
                            incident.created_at,
                            incident.started_at,
                            incident.resolved_at,
                            incident.updated_at,
                            incident.shortlink,
                            seen_at_ms,
                        ])?;
                        tx.last_insert_rowid()
                    }
                };
                link_components(
                    tx,
                    "upstream_incident_components",
                    "incident_id",
                    id,
                    &incident.components,
                )?;
            }
            Ok(())
        })
    }

    fn upstream_incidents(&self, provider: &str) -> Result<Vec<ArchivedIncident>> {
        let conn = self.lock()?;
        // Components in one query, grouped here, rather than one query per
        // incident: the archive of a provider may hold thousands.
        let mut components: HashMap<i64, Vec<String>> = HashMap::new();
        {
            let mut stmt = conn.prepare_cached(
                "SELECT c.incident_id, c.component_id FROM upstream_incident_components c
                 JOIN upstream_incidents i ON i.id = c.incident_id
                 WHERE i.provider = ?1 ORDER BY c.incident_id, c.component_id",
            )?;
            let rows = stmt.query_map([provider], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (id, name) = row?;
                components.entry(id).or_default().push(name);
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT id, provider, external_id, name, status, impact, created_at, started_at,
                 resolved_at, updated_at, shortlink, first_seen_at, last_seen_at
             FROM upstream_incidents WHERE provider = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([provider], |row| {
            let id: i64 = row.get(0)?;
            Ok(ArchivedIncident {
                incident: UpstreamIncident {
                    provider: row.get(1)?,
                    external_id: row.get(2)?,
                    name: row.get(3)?,
                    status: row.get(4)?,
                    impact: row.get(5)?,
                    components: components.remove(&id).unwrap_or_default(),
                    created_at: row.get(6)?,
                    started_at: row.get(7)?,
                    resolved_at: row.get(8)?,
                    updated_at: row.get(9)?,
                    shortlink: row.get(10)?,
                },
                first_seen_at: row.get(11)?,
                last_seen_at: row.get(12)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn count_upstream_incidents(&self, provider: &str) -> Result<u64> {
        let conn = self.lock()?;
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM upstream_incidents WHERE provider = ?1")?
            .query_row([provider], |row| row.get(0))?;
        from_sql_count(n, "incident count")
    }
}
