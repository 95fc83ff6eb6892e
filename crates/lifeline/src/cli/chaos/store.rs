//! The store's faults: the status side's SQLite store made unavailable
//! while the gateway serves ([`Outage`]: another connection holds its write
//! lock, as a stuck backup, a long migration or a wedged disk would, so
//! every write the status side tries waits out its busy timeout and fails),
//! and how far its history has been written ([`last_minute`]), to see
//! writes stop and catch up; and the disaster-recovery [`Drill`].

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tokio::time::Instant;

use super::report::ExpectationResult;
use super::rig::Rig;

/// The store held unavailable until dropped or [`Outage::end`]ed.
pub struct Outage {
    release: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Outage {
    /// Takes the store's write lock (`BEGIN EXCLUSIVE`) on a thread of its
    /// own and holds it. Errors when the lock cannot be taken in 10 s.
    pub fn begin(path: &Path) -> anyhow::Result<Outage> {
        let (release, wait) = mpsc::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<Result<(), String>>();
        let path: PathBuf = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            let lock = || -> rusqlite::Result<rusqlite::Connection> {
                let conn = rusqlite::Connection::open(&path)?;
                conn.busy_timeout(Duration::from_secs(10))?;
                conn.execute_batch("BEGIN EXCLUSIVE")?;
                Ok(conn)
            };
            match lock() {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    let _ = wait.recv();
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        });
        match is_ready.recv() {
            Ok(Ok(())) => Ok(Outage {
                release: Some(release),
                thread: Some(thread),
            }),
            Ok(Err(e)) => anyhow::bail!("locking the store: {e}"),
            Err(_) => anyhow::bail!("locking the store: its thread ended"),
        }
    }

    /// Gives the store back.
    pub async fn end(mut self) {
        self.release.take();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        // The thread ends once the sender is gone.
        self.release.take();
    }
}

/// The latest status minute written to the store's history (unix ms), read
/// through a connection of its own (WAL: readers pass a writer's lock).
pub async fn last_minute(path: &Path) -> Option<i64> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(2)).ok()?;
        conn.query_row("SELECT max(minute) FROM sli_minutes", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .ok()
        .flatten()
    })
    .await
    .ok()
    .flatten()
}

/// The drill's records after the restore: (present, missing).
type Found = (Vec<String>, Vec<String>);

/// A disaster-recovery drill: records acknowledged before a backup, the
/// backup (as `lifeline backup` takes it, online), a record acknowledged
/// after it, the store lost, then restored from the backup (as `lifeline
/// restore` does) and the status side started on it again.
#[derive(Default)]
pub struct Drill {
    before: Vec<String>,
    after: Vec<String>,
    backup: Option<PathBuf>,
    lost_at: Option<Instant>,
    restore: Option<Result<(Duration, Duration), String>>,
    found: Option<Result<Found, String>>,
    failed: Option<String>,
}

fn maintenance(name: &str, now: i64) -> lifeline_store::NewMaintenance {
    let day = 86_400_000;
    lifeline_store::NewMaintenance {
        name: name.to_string(),
        scheduled_for: now + day,
        scheduled_until: now + 2 * day,
        components: Vec::new(),
        body: "Recorded by `lifeline chaos`'s disaster-recovery drill.".into(),
        at_ms: now,
    }
}

fn incident(name: &str, now: i64) -> lifeline_store::NewIncident {
    lifeline_store::NewIncident {
        name: name.to_string(),
        status: lifeline_store::IncidentStatus::Resolved,
        impact: lifeline_store::Impact::None,
        body: "Recorded by `lifeline chaos`'s disaster-recovery drill.".into(),
        components: Vec::new(),
        automatic: false,
        draft: false,
        cause: None,
        at_ms: now,
    }
}

/// Writes an incident and a maintenance named `name` through `store` (each
/// acknowledged once committed).
async fn record(
    store: Option<std::sync::Arc<lifeline_store::SqliteStore>>,
    name: String,
) -> anyhow::Result<()> {
    use lifeline_store::Store;
    let Some(store) = store else {
        anyhow::bail!("no store");
    };
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        store.create_incident(&incident(&name, now))?;
        store.create_maintenance(&maintenance(&name, now))?;
        Ok(())
    })
    .await?
}

impl Drill {
    /// Before the traffic: two records acknowledged (incident and
    /// maintenance each).
    pub async fn prepare(&mut self, rig: &Rig) {
        for i in 1..=2 {
            let name = format!("Chaos drill: acknowledged before the backup ({i})");
            match record(rig.store(), name.clone()).await {
                Ok(()) => self.before.push(name),
                Err(e) => self.failed = Some(format!("recording {name}: {e:#}")),
            }
        }
    }

    /// The window's start: backup, one more record, the store lost.
    pub async fn lose(&mut self, rig: &mut Rig) {
        let to = rig.store_path().with_file_name("backup.db");
        let store = rig.store();
        let copy = to.clone();
        let taken = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            use lifeline_store::Store;
            let Some(s) = store else {
                anyhow::bail!("no store");
            };
            s.backup(&copy)?;
            Ok(())
        })
        .await;
        match taken {
            Ok(Ok(())) => self.backup = Some(to),
            Ok(Err(e)) => self.failed = Some(format!("the backup: {e:#}")),
            Err(e) => self.failed = Some(format!("the backup: {e}")),
        }
        let name = "Chaos drill: acknowledged after the backup".to_string();
        if record(rig.store(), name.clone()).await.is_ok() {
            self.after.push(name);
        }
        rig.lose_store().await;
        self.lost_at = Some(Instant::now());
    }

    /// The window's end: the restore, the status side back, the records
    /// looked up.
    pub async fn recover(&mut self, rig: &mut Rig) {
        let Some(backup) = self.backup.clone() else {
            return;
        };
        let t0 = Instant::now();
        if let Err(e) = rig.restore_store(&backup).await {
            self.restore = Some(Err(format!("{e:#}")));
            return;
        }
        let restored = t0.elapsed();
        let deadline = t0 + Duration::from_secs(15);
        while rig.get("/api/v2/summary.json").await.is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.restore = Some(if Instant::now() < deadline {
            Ok((restored, t0.elapsed()))
        } else {
            Err("the status page did not serve within 15 s of the restore".into())
        });
        let store = rig.store();
        let names: Vec<String> = self.before.iter().chain(&self.after).cloned().collect();
        let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Found> {
            use lifeline_store::Store;
            let Some(s) = store else {
                anyhow::bail!("no store");
            };
            let incidents: Vec<String> = s
                .list_incidents(1000)?
                .into_iter()
                .map(|i| i.name)
                .collect();
            let windows: Vec<String> = s
                .list_maintenances(1000)?
                .into_iter()
                .map(|m| m.name)
                .collect();
            Ok(names
                .into_iter()
                .partition(|n| incidents.contains(n) && windows.contains(n)))
        })
        .await;
        self.found = Some(match found {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(e.to_string()),
        });
    }

    /// The drill's verdicts: nothing acknowledged before the backup lost,
    /// the recovery time, and what was lost.
    pub fn verdicts(&self) -> Vec<ExpectationResult> {
        let r = |name: &str, required: &str, measured: String, pass: bool| ExpectationResult {
            name: name.into(),
            required: required.into(),
            measured,
            pass,
        };
        if let Some(e) = &self.failed {
            return vec![r(
                "disaster-recovery drill",
                "carried out",
                e.clone(),
                false,
            )];
        }
        let mut out = Vec::new();
        match &self.restore {
            None => out.push(r(
                "store restored from the backup",
                "yes",
                "never".into(),
                false,
            )),
            Some(Err(e)) => out.push(r("store restored from the backup", "yes", e.clone(), false)),
            Some(Ok((restored, serving))) => out.push(r(
                "recovery time (restore to status page serving)",
                "<= 15.0 s",
                format!(
                    "{:.2} s (restore {:.2} s)",
                    serving.as_secs_f64(),
                    restored.as_secs_f64()
                ),
                true,
            )),
        }
        if let Some(Ok((present, missing))) = &self.found {
            let kept = self.before.iter().filter(|n| present.contains(n)).count();
            out.push(r(
                "records acknowledged before the backup, after the restore",
                "all",
                format!(
                    "{kept} of {} (incident and maintenance each)",
                    self.before.len()
                ),
                kept == self.before.len() && !self.before.is_empty(),
            ));
            let lost: Vec<&String> = missing.iter().filter(|n| self.after.contains(n)).collect();
            out.push(r(
                "lost: acknowledged after the backup",
                "reported",
                if lost.is_empty() {
                    "nothing".into()
                } else {
                    lost.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                true,
            ));
        } else if let Some(Err(e)) = &self.found {
            out.push(r("records after the restore", "readable", e.clone(), false));
        }
        out
    }
}
