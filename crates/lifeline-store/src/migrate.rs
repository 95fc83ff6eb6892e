//! Versioned schema migrations.
//!
//! The file's schema version is SQLite's `PRAGMA user_version` (0 for a new,
//! empty file). [`MIGRATIONS`]`[i]` takes the schema from version `i` to
//! `i + 1`. On open, every migration above the file's version runs in order,
//! each in its own transaction together with the bump of `user_version`, so
//! an interrupted upgrade leaves the file at the last complete version and
//! the next open continues from there. An existing file is upgraded in place.
//!
//! Rules: a shipped migration is never edited (files in the field were built
//! by it); a change is a new entry at the end.

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// The ordered migrations; entry `i` upgrades version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: incidents, their updates and affected components; maintenance.
    "CREATE TABLE incidents (
         id          INTEGER PRIMARY KEY,
         name        TEXT    NOT NULL,
         status      TEXT    NOT NULL CHECK (status IN
                         ('investigating','identified','monitoring','resolved','postmortem')),
         impact      TEXT    NOT NULL CHECK (impact IN ('none','minor','major','critical')),
         created_at  INTEGER NOT NULL,
         updated_at  INTEGER NOT NULL,
         resolved_at INTEGER,
         automatic   INTEGER NOT NULL CHECK (automatic IN (0, 1)),
         draft       INTEGER NOT NULL CHECK (draft IN (0, 1))
     );
     CREATE TABLE incident_updates (
         id          INTEGER PRIMARY KEY,
         incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
         status      TEXT    NOT NULL CHECK (status IN
                         ('investigating','identified','monitoring','resolved','postmortem')),
         body        TEXT    NOT NULL,
         created_at  INTEGER NOT NULL
     );
     CREATE TABLE incident_components (
         incident_id  INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
         component_id TEXT    NOT NULL,
         PRIMARY KEY (incident_id, component_id)
     ) WITHOUT ROWID;
     CREATE TABLE maintenances (
         id              INTEGER PRIMARY KEY,
         name            TEXT    NOT NULL,
         status          TEXT    NOT NULL CHECK (status IN
                             ('scheduled','in_progress','verifying','completed')),
         scheduled_for   INTEGER NOT NULL,
         scheduled_until INTEGER NOT NULL CHECK (scheduled_until > scheduled_for),
         body            TEXT    NOT NULL,
         created_at      INTEGER NOT NULL,
         updated_at      INTEGER NOT NULL
     );
     CREATE TABLE maintenance_components (
         maintenance_id INTEGER NOT NULL REFERENCES maintenances(id) ON DELETE CASCADE,
         component_id   TEXT    NOT NULL,
         PRIMARY KEY (maintenance_id, component_id)
     ) WITHOUT ROWID;",
    // 2: the cause class of an incident (provider errors, rate limiting,
    // timeouts, ...), which the restoration-time estimate pools by; and the
    // indexes the status side's reads need: an incident's timeline in order,
    // incidents newest first, the unresolved ones.
    "ALTER TABLE incidents ADD COLUMN cause TEXT;
     CREATE INDEX incident_updates_timeline ON incident_updates (incident_id, created_at, id);
     CREATE INDEX incidents_newest ON incidents (created_at DESC, id DESC);
     CREATE INDEX incidents_open ON incidents (status)
         WHERE status IN ('investigating','identified','monitoring');",
    // 3: an operator's restoration override on an incident; maintenance
    // windows by status (the engine's on-time transitions); the registry of
    // components seen, so a component's created_at survives restarts; a
    // key/value table for the store's own bookkeeping.
    "ALTER TABLE incidents ADD COLUMN expected_resolved_at INTEGER;
     CREATE INDEX maintenances_by_status ON maintenances (status, scheduled_for);
     CREATE TABLE components (
         id         TEXT    PRIMARY KEY,
         name       TEXT    NOT NULL,
         created_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE store_meta (
         key   TEXT    PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 4: SLI history: one row per component and minute, and its rollup per
    // component and UTC day, kept in step in the same transaction. Latency
    // buckets are 13 little-endian u64 (sli::BUCKETS) in a blob.
    "CREATE TABLE sli_minutes (
         component_id      TEXT    NOT NULL,
         minute            INTEGER NOT NULL,
         status            TEXT    NOT NULL CHECK (status IN ('operational','under_maintenance',
                               'degraded_performance','partial_outage','major_outage')),
         requests          INTEGER NOT NULL,
         good              INTEGER NOT NULL,
         latency           BLOB    NOT NULL,
         ttft              BLOB    NOT NULL,
         streams_completed INTEGER NOT NULL,
         streams_broken    INTEGER NOT NULL,
         upstream_attempts INTEGER NOT NULL,
         upstream_ok       INTEGER NOT NULL,
         probes_ok         INTEGER NOT NULL,
         probes_failed     INTEGER NOT NULL,
         PRIMARY KEY (component_id, minute)
     ) WITHOUT ROWID;
     CREATE INDEX sli_minutes_age ON sli_minutes (minute);
     CREATE TABLE sli_days (
         component_id          TEXT    NOT NULL,
         day                   INTEGER NOT NULL,
         requests              INTEGER NOT NULL,
         good                  INTEGER NOT NULL,
         latency               BLOB    NOT NULL,
         ttft                  BLOB    NOT NULL,
         streams_completed     INTEGER NOT NULL,
         streams_broken        INTEGER NOT NULL,
         upstream_attempts     INTEGER NOT NULL,
         upstream_ok           INTEGER NOT NULL,
         probes_ok             INTEGER NOT NULL,
         probes_failed         INTEGER NOT NULL,
         operational_minutes   INTEGER NOT NULL,
         maintenance_minutes   INTEGER NOT NULL,
         degraded_minutes      INTEGER NOT NULL,
         partial_minutes       INTEGER NOT NULL,
         major_minutes         INTEGER NOT NULL,
         upstream_down_minutes INTEGER NOT NULL,
         PRIMARY KEY (component_id, day)
     ) WITHOUT ROWID;
     CREATE INDEX sli_days_age ON sli_days (day);",
    // 5: the archive of providers' published incidents.
    "CREATE TABLE upstream_incidents (
         id            INTEGER PRIMARY KEY,
         provider      TEXT    NOT NULL,
         external_id   TEXT    NOT NULL,
         name          TEXT    NOT NULL,
         status        TEXT    NOT NULL,
         impact        TEXT    NOT NULL,
         created_at    INTEGER NOT NULL,
         started_at    INTEGER,
         resolved_at   INTEGER,
         updated_at    INTEGER NOT NULL,
         shortlink     TEXT,
         first_seen_at INTEGER NOT NULL,
         last_seen_at  INTEGER NOT NULL,
         UNIQUE (provider, external_id)
     );
     CREATE TABLE upstream_incident_components (
         incident_id INTEGER NOT NULL REFERENCES upstream_incidents(id) ON DELETE CASCADE,
         component_id TEXT   NOT NULL,
         PRIMARY KEY (incident_id, component_id)
     ) WITHOUT ROWID;",
    // 6: webhook subscriptions and the delivery outbox (which is also the
    // delivery log). A delivery is pending while neither delivered_at nor
    // gave_up_at is set; next_attempt_at is set exactly while pending.
    "CREATE TABLE webhook_subscriptions (
         id         INTEGER PRIMARY KEY,
         url        TEXT    NOT NULL,
         format     TEXT    NOT NULL CHECK (format IN ('statuspage','slack','discord')),
         secret     TEXT    NOT NULL,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE webhook_subscription_components (
         subscription_id INTEGER NOT NULL
                             REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
         component_id    TEXT    NOT NULL,
         PRIMARY KEY (subscription_id, component_id)
     ) WITHOUT ROWID;
     CREATE TABLE webhook_deliveries (
         id              INTEGER PRIMARY KEY,
         subscription_id INTEGER NOT NULL
                             REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
         event           TEXT    NOT NULL,
         body            TEXT    NOT NULL,
         created_at      INTEGER NOT NULL,
         attempts        INTEGER NOT NULL DEFAULT 0,
         next_attempt_at INTEGER,
         last_attempt_at INTEGER,
         last_status     INTEGER,
         last_error      TEXT,
         delivered_at    INTEGER,
         gave_up_at      INTEGER,
         CHECK ((next_attempt_at IS NULL) =
                (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL)),
         CHECK (delivered_at IS NULL OR gave_up_at IS NULL)
     );
     CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
         WHERE next_attempt_at IS NOT NULL;
     CREATE INDEX webhook_deliveries_log
         ON webhook_deliveries (subscription_id, created_at DESC, id DESC);",
    // 7: virtual client keys, by SHA-256 (never the key itself). `models`
    // is a comma-separated list, empty for every model.
    "CREATE TABLE keys (
         id           INTEGER PRIMARY KEY,
         name         TEXT    NOT NULL,
         sha256       BLOB    NOT NULL UNIQUE CHECK (length(sha256) = 32),
         prefix       TEXT    NOT NULL,
         priority     TEXT    NOT NULL DEFAULT 'standard'
                          CHECK (priority IN ('critical','standard','batch')),
         rpm          INTEGER CHECK (rpm IS NULL OR rpm >= 0),
         tpm          INTEGER CHECK (tpm IS NULL OR tpm >= 0),
         models       TEXT    NOT NULL DEFAULT '',
         expires_at   INTEGER,
         created_at   INTEGER NOT NULL,
         revoked_at   INTEGER,
         last_used_at INTEGER
     );",
    // 8: the audit log of admin actions (who: a token's id or `cli:USER`,
    // never a token). Only ever appended to; read newest first by id.
    "CREATE TABLE audit_log (
         id     INTEGER PRIMARY KEY,
         at     INTEGER NOT NULL,
         actor  TEXT    NOT NULL,
         source TEXT    NOT NULL,
         action TEXT    NOT NULL,
         target TEXT    NOT NULL
     );",
];

/// The schema version this build creates and upgrades to.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// The file's schema version.
pub(crate) fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Brings the file to [`LATEST_VERSION`], one transaction per migration.
/// Refuses a file newer than this build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        // `BEGIN IMMEDIATE` takes the write lock before reading the version,
        // so two processes opening the same old file do not both migrate.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        if current > LATEST_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: LATEST_VERSION,
            });
        }
        let index = usize::try_from(current)
            .map_err(|_| StoreError::Corrupt(format!("schema version {current}")))?;
        let Some(sql) = MIGRATIONS.get(index) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", current + 1))?;
        tx.commit()?;
    }
}
