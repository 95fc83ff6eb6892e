//! [`Store`] for [`SqliteStore`]: incidents and their updates, scheduled
//! maintenance, the component registry.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Params, Row, Transaction};

use super::{components, limit, link_components, parse, sorted, SqliteStore};
use crate::error::{Result, StoreError};
use crate::model::{
    Incident, IncidentEdit, IncidentStatus, IncidentUpdate, IncidentWithUpdates, KnownComponent,
    MaintenanceStatus, NewIncident, NewMaintenance, ScheduledMaintenance,
};
use crate::Store;

const INCIDENT_COLUMNS: &str = "id, name, status, impact, created_at, updated_at, resolved_at, \
     automatic, draft, cause, expected_resolved_at";

const MAINTENANCE_COLUMNS: &str =
    "id, name, status, scheduled_for, scheduled_until, body, created_at, updated_at";

fn bool_from(row: &Row<'_>, index: usize) -> rusqlite::Result<bool> {
    Ok(row.get::<_, i64>(index)? != 0)
}

/// An incident row before its components are attached; enum text parsed
/// after the row closure (whose error type is rusqlite's).
struct IncidentRow {
    id: i64,
    name: String,
    status: String,
    impact: String,
    created_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
    automatic: bool,
    draft: bool,
    cause: Option<String>,
    expected_resolved_at: Option<i64>,
}

fn incident_row(row: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: row.get(0)?,
        name: row.get(1)?,
        status: row.get(2)?,
        impact: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        resolved_at: row.get(6)?,
        automatic: bool_from(row, 7)?,
        draft: bool_from(row, 8)?,
        cause: row.get(9)?,
        expected_resolved_at: row.get(10)?,
    })
}

fn finish_incident(conn: &Connection, row: IncidentRow) -> Result<Incident> {
    Ok(Incident {
        components: components(conn, "incident_components", "incident_id", row.id)?,
        id: row.id,
        name: row.name,
        status: parse(&row.status)?,
        impact: parse(&row.impact)?,
        created_at: row.created_at,
        updated_at: row.updated_at,
        resolved_at: row.resolved_at,
        automatic: row.automatic,
        draft: row.draft,
        cause: row.cause,
        expected_resolved_at: row.expected_resolved_at,
    })
}

fn query_incidents(conn: &Connection, sql: &str, limit: i64) -> Result<Vec<Incident>> {
    let rows = {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([limit], incident_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    rows.into_iter()
        .map(|row| finish_incident(conn, row))
        .collect()
}

fn incident_only(conn: &Connection, id: i64) -> Result<Option<Incident>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
        ))?
        .query_row([id], incident_row)
        .optional()?;
    row.map(|row| finish_incident(conn, row)).transpose()
}

fn incident_with_updates(conn: &Connection, id: i64) -> Result<Option<IncidentWithUpdates>> {
    let Some(incident) = incident_only(conn, id)? else {
        return Ok(None);
    };
    let raw = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, incident_id, status, body, created_at FROM incident_updates
             WHERE incident_id = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let incident_updates = raw
        .into_iter()
        .map(|(id, incident_id, status, body, created_at)| {
            Ok(IncidentUpdate {
                id,
                incident_id,
                status: parse(&status)?,
                body,
                created_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(IncidentWithUpdates {
        incident,
        incident_updates,
    }))
}

fn insert_update(
    tx: &Transaction<'_>,
    incident_id: i64,
    status: IncidentStatus,
    body: &str,
    at_ms: i64,
) -> Result<IncidentUpdate> {
    tx.prepare_cached(
        "INSERT INTO incident_updates (incident_id, status, body, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![incident_id, status.as_str(), body, at_ms])?;
    Ok(IncidentUpdate {
        id: tx.last_insert_rowid(),
        incident_id,
        status,
        body: body.to_owned(),
        created_at: at_ms,
    })
}

fn query_maintenances(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<ScheduledMaintenance>> {
    let rows = {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(7)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    rows.into_iter()
        .map(
            |(id, name, status, scheduled_for, scheduled_until, body, created_at, updated_at)| {
                Ok(ScheduledMaintenance {
                    components: components(conn, "maintenance_components", "maintenance_id", id)?,
                    id,
                    name,
                    status: parse(&status)?,
                    scheduled_for,
                    scheduled_until,
                    body,
                    created_at,
                    updated_at,
                })
            },
        )
        .collect()
}

fn maintenance(conn: &Connection, id: i64) -> Result<Option<ScheduledMaintenance>> {
    Ok(query_maintenances(
        conn,
        &format!("SELECT {MAINTENANCE_COLUMNS} FROM maintenances WHERE id = ?1"),
        [id],
    )?
    .pop())
}

/// Changes an incident's fields (see [`Store::edit_incident`]).
fn edit_incident(
    tx: &Transaction<'_>,
    id: i64,
    edit: &IncidentEdit,
    at_ms: i64,
) -> Result<Incident> {
    // Each field: (whether to set it, the new value).
    let changed = tx
        .prepare_cached(
            "UPDATE incidents SET
                 name = CASE WHEN ?2 THEN ?3 ELSE name END,
                 impact = CASE WHEN ?4 THEN ?5 ELSE impact END,
                 cause = CASE WHEN ?6 THEN ?7 ELSE cause END,
                 draft = CASE WHEN ?8 THEN ?9 ELSE draft END,
                 expected_resolved_at =
                     CASE WHEN ?10 THEN ?11 ELSE expected_resolved_at END,
                 updated_at = ?12
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            edit.name.is_some(),
            edit.name,
            edit.impact.is_some(),
            edit.impact.map(|i| i.as_str()),
            edit.cause.is_some(),
            edit.cause.clone().flatten(),
            edit.draft.is_some(),
            edit.draft,
            edit.expected_resolved_at.is_some(),
            edit.expected_resolved_at.flatten(),
            at_ms,
        ])?;
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: "incident",
            id,
        });
    }
    if let Some(components) = &edit.components {
        tx.prepare_cached("DELETE FROM incident_components WHERE incident_id = ?1")?
            .execute([id])?;
        link_components(tx, "incident_components", "incident_id", id, components)?;
    }
    incident_only(tx, id)?.ok_or(StoreError::NotFound {
        what: "incident",
        id,
    })
}

/// Posts an update and moves the incident to its status (see
/// [`Store::add_update`]).
fn update_incident(
    tx: &Transaction<'_>,
    incident_id: i64,
    status: IncidentStatus,
    body: &str,
    at_ms: i64,
) -> Result<IncidentUpdate> {
    // Open statuses clear resolved_at (a reopened incident); resolved and
    // postmortem keep the first resolution time.
    let changed = tx
        .prepare_cached(
            "UPDATE incidents SET status = ?2, updated_at = ?3,
                 resolved_at = CASE WHEN ?4 THEN NULL ELSE COALESCE(resolved_at, ?3) END
             WHERE id = ?1",
        )?
        .execute(params![
            incident_id,
            status.as_str(),
            at_ms,
            status.is_open()
        ])?;
    if changed == 0 {
        return Err(StoreError::NotFound {
            what: "incident",
            id: incident_id,
        });
    }
    insert_update(tx, incident_id, status, body, at_ms)
}

/// Whether a write decided at `at_ms` may still go in: the incident is open
/// and nothing changed it later ([`Store::add_update_if_current`]).
fn is_current(tx: &Transaction<'_>, id: i64, at_ms: i64) -> Result<bool> {
    let row: Option<(String, i64)> = tx
        .prepare_cached("SELECT status, updated_at FROM incidents WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((status, updated_at)) = row else {
        return Err(StoreError::NotFound {
            what: "incident",
            id,
        });
    };
    let status: IncidentStatus = parse(&status)?;
    Ok(status.is_open() && updated_at <= at_ms)
}

impl Store for SqliteStore {
    fn create_incident(&self, new: &NewIncident) -> Result<IncidentWithUpdates> {
        self.write(|tx| {
            let resolved_at = (!new.status.is_open()).then_some(new.at_ms);
            tx.prepare_cached(
                "INSERT INTO incidents (name, status, impact, created_at, updated_at,
                     resolved_at, automatic, draft, cause)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                new.name,
                new.status.as_str(),
                new.impact.as_str(),
                new.at_ms,
                resolved_at,
                new.automatic,
                new.draft,
                new.cause,
            ])?;
            let id = tx.last_insert_rowid();
            link_components(
                tx,
                "incident_components",
                "incident_id",
                id,
                &new.components,
            )?;
            insert_update(tx, id, new.status, &new.body, new.at_ms)?;
            incident_with_updates(tx, id)?.ok_or(StoreError::NotFound {
                what: "incident",
                id,
            })
        })
    }

    fn add_update(
        &self,
        incident_id: i64,
        status: IncidentStatus,
        body: &str,
        at_ms: i64,
    ) -> Result<IncidentUpdate> {
        self.write(|tx| update_incident(tx, incident_id, status, body, at_ms))
    }

    fn add_update_if_current(
        &self,
        incident_id: i64,
        status: IncidentStatus,
        body: &str,
        at_ms: i64,
    ) -> Result<Option<IncidentUpdate>> {
        self.write(|tx| {
            if !is_current(tx, incident_id, at_ms)? {
                return Ok(None);
            }
            update_incident(tx, incident_id, status, body, at_ms).map(Some)
        })
    }

    fn edit_incident(&self, id: i64, edit: &IncidentEdit, at_ms: i64) -> Result<Incident> {
        self.write(|tx| edit_incident(tx, id, edit, at_ms))
    }

    fn edit_incident_if_current(
        &self,
        id: i64,
        edit: &IncidentEdit,
        at_ms: i64,
    ) -> Result<Option<Incident>> {
        self.write(|tx| {
            if !is_current(tx, id, at_ms)? {
                return Ok(None);
            }
            edit_incident(tx, id, edit, at_ms).map(Some)
        })
    }

    fn incident(&self, id: i64) -> Result<Option<IncidentWithUpdates>> {
        incident_with_updates(&*self.lock()?, id)
    }

    fn list_incidents(&self, n: usize) -> Result<Vec<Incident>> {
        let conn = self.lock()?;
        query_incidents(
            &conn,
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 ORDER BY created_at DESC, id DESC LIMIT ?1"
            ),
            limit(n),
        )
    }

    fn list_unresolved(&self) -> Result<Vec<Incident>> {
        let conn = self.lock()?;
        query_incidents(
            &conn,
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 WHERE status IN ('investigating','identified','monitoring')
                 ORDER BY created_at DESC, id DESC LIMIT ?1"
            ),
            i64::MAX,
        )
    }

    fn create_maintenance(&self, new: &NewMaintenance) -> Result<ScheduledMaintenance> {
        let id = self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO maintenances
                     (name, status, scheduled_for, scheduled_until, body, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![
                new.name,
                MaintenanceStatus::Scheduled.as_str(),
                new.scheduled_for,
                new.scheduled_until,
                new.body,
                new.at_ms,
            ])?;
            let id = tx.last_insert_rowid();
            link_components(
                tx,
                "maintenance_components",
                "maintenance_id",
                id,
                &new.components,
            )?;
            Ok(id)
        })?;
        Ok(ScheduledMaintenance {
            id,
            name: new.name.clone(),
            status: MaintenanceStatus::Scheduled,
            scheduled_for: new.scheduled_for,
            scheduled_until: new.scheduled_until,
            components: sorted(&new.components),
            body: new.body.clone(),
            created_at: new.at_ms,
            updated_at: new.at_ms,
        })
    }

    fn list_maintenances(&self, n: usize) -> Result<Vec<ScheduledMaintenance>> {
        let conn = self.lock()?;
        query_maintenances(
            &conn,
            &format!(
                "SELECT {MAINTENANCE_COLUMNS} FROM maintenances
                 ORDER BY scheduled_for DESC, id DESC LIMIT ?1"
            ),
            [limit(n)],
        )
    }

    fn list_maintenances_by_status(
        &self,
        statuses: &[MaintenanceStatus],
    ) -> Result<Vec<ScheduledMaintenance>> {
        let conn = self.lock()?;
        let mut all = Vec::new();
        for status in statuses {
            all.extend(query_maintenances(
                &conn,
                &format!(
                    "SELECT {MAINTENANCE_COLUMNS} FROM maintenances WHERE status = ?1
                     ORDER BY scheduled_for, id"
                ),
                [status.as_str()],
            )?);
        }
        all.sort_by_key(|m| (m.scheduled_for, m.id));
        all.dedup_by_key(|m| m.id);
        Ok(all)
    }

    fn set_maintenance_status(
        &self,
        id: i64,
        status: MaintenanceStatus,
        at_ms: i64,
    ) -> Result<ScheduledMaintenance> {
        self.write(|tx| {
            let current = maintenance(tx, id)?.ok_or(StoreError::NotFound {
                what: "maintenance",
                id,
            })?;
            if current.status.rank() >= status.rank() {
                // Already there or past it (an operator was quicker, or the
                // engine repeats itself): nothing to do.
                return Ok(current);
            }
            tx.prepare_cached(
                "UPDATE maintenances SET status = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str(), at_ms])?;
            Ok(ScheduledMaintenance {
                status,
                updated_at: at_ms,
                ..current
            })
        })
    }

    fn cancel_maintenance(&self, id: i64) -> Result<bool> {
        self.write(|tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM maintenances WHERE id = ?1")?
                .execute([id])?;
            Ok(deleted > 0)
        })
    }

    fn touch_component(&self, id: &str, name: &str, at_ms: i64) -> Result<i64> {
        {
            // The common case, a component seen before under the same name,
            // is a read: no write lock, no fsync.
            let conn = self.lock()?;
            let known: Option<(String, i64)> = conn
                .prepare_cached("SELECT name, created_at FROM components WHERE id = ?1")?
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            if let Some((known_name, created_at)) = known {
                if known_name == name {
                    return Ok(created_at);
                }
            }
        }
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "INSERT INTO components (id, name, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name
                     RETURNING created_at",
                )?
                .query_row(params![id, name, at_ms], |row| row.get(0))?)
        })
    }

    fn known_components(&self) -> Result<Vec<KnownComponent>> {
        let conn = self.lock()?;
        let mut stmt =
            conn.prepare_cached("SELECT id, name, created_at FROM components ORDER BY id")?;
        let rows = stmt.query_map([], |row| {
            Ok(KnownComponent {
                id: row.get(0)?,
                name: row.get(1)?,
                created_at: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn backup(&self, path: &Path) -> Result<()> {
        self.backup_to(path)
    }
}
