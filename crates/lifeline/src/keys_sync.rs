//! Virtual client keys from the store, installed in the running gateway.
//!
//! `lifeline keys create|revoke` write to the store (`[store] url`)
//! directly. [`KeySync`] reads the active keys (not revoked, not expired)
//! from the same store every second, on a blocking thread, and installs
//! them with [`Gateway::set_dynamic_keys`] when they changed; so a new key
//! works, and a revoked or expired one stops working, within about a
//! second. The data plane never waits on the store: it reads the installed
//! set lock-free, and marks a key it accepts as used; each tick writes
//! those marks back as the keys' `last_used_at` (to about a second).
//!
//! The first read happens before `serve` binds its listeners, so the first
//! request already sees the stored keys. A store that cannot be opened or
//! read keeps the last good set installed (none, if it never could be
//! read), logs once, and is retried every second; its recovery is logged
//! too.
//!
//! The rule (see `lifeline_core::auth`): while neither the config's
//! `[[keys]]` nor the store has a key, the data plane needs none; once
//! either has one, every data-plane request needs a key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lifeline_core::auth::DynamicKey;
use lifeline_core::config::Priority;
use lifeline_core::Gateway;
use lifeline_store::{KeyStore, SqliteStore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the store is read.
const PERIOD: Duration = Duration::from_secs(1);

/// The running sync task.
pub struct KeySync {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

struct State {
    gw: Gateway,
    path: PathBuf,
    store: Option<Arc<SqliteStore>>,
    installed: Option<Vec<DynamicKey>>,
    failing: bool,
}

impl KeySync {
    /// Reads the store once (installing what it holds), then every second
    /// until [`KeySync::stop`].
    pub async fn start(gw: &Gateway, path: PathBuf) -> Self {
        let mut state = State {
            gw: gw.clone(),
            path,
            store: None,
            installed: None,
            failing: false,
        };
        state.tick().await;
        let static_keys = gw.live().keys.enabled();
        if static_keys || gw.dynamic_key_count() > 0 {
            tracing::info!(
                message = "The data plane requires a client key.",
                config_keys = static_keys,
                stored_keys = gw.dynamic_key_count()
            );
        } else {
            tracing::info!(
                message = "The data plane requires no client key: none in the config's [[keys]] nor in the store (one created with `lifeline keys create` turns keys on)."
            );
        }
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(PERIOD);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => state.tick().await,
                }
            }
        });
        Self { cancel, task }
    }

    /// Stops the task.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

impl State {
    async fn tick(&mut self) {
        let store = self.store.clone();
        let path = self.path.clone();
        let now = chrono::Utc::now().timestamp_millis();
        // Taken before a new set may replace the one that holds the marks.
        let used = self.gw.take_used_dynamic_keys();
        let read = tokio::task::spawn_blocking(move || {
            let store = match store {
                Some(s) => s,
                None => Arc::new(SqliteStore::open(&path)?),
            };
            // "Last used", to the second; lost (like the marks) if the
            // store fails now, and written again at the key's next use.
            store.mark_keys_used(&used, now)?;
            let keys = store.active_keys(now)?;
            Ok::<_, lifeline_store::StoreError>((store, keys))
        })
        .await;
        let (store, keys) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return self.failed(&e.to_string()),
            Err(e) => return self.failed(&e.to_string()),
        };
        self.store = Some(store);
        if self.failing {
            self.failing = false;
            tracing::info!(message = "Client keys are read from the store again.");
        }
        let keys: Vec<DynamicKey> = keys
            .into_iter()
            .map(|k| DynamicKey {
                id: k.info.id,
                name: k.info.name,
                sha256: k.sha256,
                // The store holds only spellings `keys create` checked.
                priority: Priority::parse(&k.info.priority).unwrap_or_default(),
                rpm: k.info.rpm,
                tpm: k.info.tpm,
                models: k.info.models,
            })
            .collect();
        if self.installed.as_ref() != Some(&keys) {
            self.gw.set_dynamic_keys(&keys);
            // Names and a count only: the store holds no key to log.
            tracing::info!(
                message = "Client keys from the store installed.",
                count = keys.len()
            );
            self.installed = Some(keys);
        }
    }

    fn failed(&mut self, error: &str) {
        // Drop the connection: the next tick opens the store afresh.
        self.store = None;
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                message = "Cannot read client keys from the store; keeping the last ones read.",
                store = %self.path.display(),
                error
            );
        }
    }
}
