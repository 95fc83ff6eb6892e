//! The store's faults: the status side's SQLite store made unavailable
//! while the gateway serves ([`Outage`]: another connection holds its write
//! lock, as a stuck backup, a long migration or a wedged disk would, so
//! every write the status side tries waits out its busy timeout and fails),
//! and how far its history has been written ([`last_minute`]), to see
//! writes stop and catch up.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

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
