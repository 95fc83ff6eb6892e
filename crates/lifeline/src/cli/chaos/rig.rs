//! One scenario's world: a simulated provider per configured provider, the
//! gateway running the chaos copy of the config (`plan::Plan::chaos_config`),
//! its status side, and a store in a temporary directory of its own.
//! Every scenario gets a fresh rig, so scenarios are independent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use lifeline_core::{Gateway, Server};
use lifeline_mock::{MockHandle, MockServer};
use lifeline_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::scenario::Fault;
use crate::status_side::StatusSide;

/// A running scenario world.
pub struct Rig {
    /// The gateway.
    pub gw: Gateway,
    /// Its data-plane address.
    pub addr: SocketAddr,
    /// Simulated providers by provider name.
    pub mocks: BTreeMap<String, MockHandle>,
    status: Option<StatusSide>,
    stop_server: CancellationToken,
    server: JoinHandle<()>,
    dir: PathBuf,
    store: Option<Arc<lifeline_store::SqliteStore>>,
    /// The config the gateway runs (the chaos copy, `listen` the address
    /// it is bound to, so a restart binds it again).
    pub config: lifeline_core::Config,
}

/// What a restart measured.
#[derive(Clone, Copy, Debug)]
pub struct Restarted {
    /// From the stop to the last connection drained.
    pub drained: std::time::Duration,
    /// From the stop to the new listener accepting.
    pub down: std::time::Duration,
}

/// What the status page has opened, as read from its store.
#[derive(Clone, Debug)]
pub struct IncidentRow {
    /// Store id.
    pub id: i64,
    /// Title.
    pub name: String,
    /// Resolved already.
    pub resolved: bool,
}

impl Rig {
    /// Starts the world for scenario `sc` (its name names the directory;
    /// `gateway::tune` and `gateway::tune_mock` adapt the config and the
    /// simulated providers to it).
    pub async fn start(plan: &Plan, sc: &super::scenario::Scenario) -> anyhow::Result<Rig> {
        let tag = sc.name;
        let dir = std::env::temp_dir().join(format!(
            "lifeline-chaos-{}-{tag}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut mocks = BTreeMap::new();
        for name in &plan.providers {
            let mut cfg = plan.mock_config(name);
            super::gateway::tune_mock(sc, &mut cfg);
            let h = MockServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg)
                .await
                .with_context(|| format!("starting the simulated provider for {name}"))?;
            mocks.insert(name.clone(), h);
        }
        let store_path = dir.join("status.db");
        let mut config = plan.chaos_config(&mocks, &store_path);
        super::gateway::tune(sc, &mut config);
        let gw = Gateway::start(config.clone())
            .await
            .context("starting the gateway")?;
        let bound = Server::bind(gw.clone())
            .await
            .context("binding the gateway")?;
        let addr = bound.data_addr;
        let mut config = config;
        config.server.listen = addr;
        let stop_server = CancellationToken::new();
        let server = tokio::spawn(bound.run(stop_server.clone()));
        let status = StatusSide::start(&gw, &config)
            .await
            .context("starting the status page")?;
        let path = store_path.clone();
        let store = tokio::task::spawn_blocking(move || lifeline_store::SqliteStore::open(&path))
            .await
            .ok()
            .and_then(Result::ok)
            .map(Arc::new);
        Ok(Rig {
            gw,
            addr,
            mocks,
            status,
            stop_server,
            server,
            dir,
            store,
            config,
        })
    }

    /// Restarts the gateway as an operator's deploy does: the running one
    /// stops gracefully (stops accepting, its connections finish their
    /// requests in flight, up to `drain_timeout`), then a new one with the
    /// same config binds the same address, with its status side.
    pub async fn restart(&mut self) -> anyhow::Result<Restarted> {
        let t0 = tokio::time::Instant::now();
        self.stop_server.cancel();
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = server.await;
        let drained = t0.elapsed();
        if let Some(s) = self.status.take() {
            s.stop().await;
        }
        self.gw.close().await;
        let gw = Gateway::start(self.config.clone())
            .await
            .context("starting the gateway again")?;
        let bound = Server::bind(gw.clone())
            .await
            .context("binding the gateway's address again")?;
        self.stop_server = CancellationToken::new();
        self.server = tokio::spawn(bound.run(self.stop_server.clone()));
        let down = t0.elapsed();
        self.status = StatusSide::start(&gw, &self.config)
            .await
            .context("starting the status page again")?;
        self.gw = gw;
        Ok(Restarted { drained, down })
    }

    /// Applies (`on`) or lifts a fault on the named providers.
    pub async fn apply(&self, fault: &Fault, providers: &[String], on: bool) {
        for name in providers {
            let Some(m) = self.mocks.get(name) else {
                continue;
            };
            match (fault, on) {
                (Fault::Kill, true) => m.kill(),
                (Fault::Kill, false) => {
                    if let Err(e) = m.revive().await {
                        tracing::warn!(message = "A simulated provider could not come back.", provider = %name, error = %e);
                    }
                }
                (Fault::Mock(f), true) => m.set_faults(f.clone()),
                (Fault::Mock(_), false) => m.clear_faults(),
                // The runner's `gateway::Driver` carries these out.
                (Fault::Gateway(_), _) => {}
            }
        }
    }

    /// Each deployment's breaker state, by deployment id (`provider/model`),
    /// with its provider.
    pub fn breakers(&self) -> Vec<(String, String, &'static str)> {
        self.gw
            .live()
            .deployments
            .iter()
            .map(|d| {
                let s = d.snapshot();
                (s.id, s.provider, s.breaker.as_str())
            })
            .collect()
    }

    /// Requests each simulated provider has received so far.
    pub fn received(&self) -> BTreeMap<String, u64> {
        self.mocks
            .iter()
            .map(|(n, m)| (n.clone(), m.stats().requests))
            .collect()
    }

    /// The incidents the status page has opened (newest first), or `None`
    /// when its store cannot be read.
    pub async fn incidents(&self) -> Option<Vec<IncidentRow>> {
        let store = self.store.clone()?;
        tokio::task::spawn_blocking(move || store.list_incidents(100))
            .await
            .ok()?
            .ok()
            .map(|v| {
                v.into_iter()
                    .map(|i| IncidentRow {
                        id: i.id,
                        name: i.name,
                        resolved: i.resolved_at.is_some(),
                    })
                    .collect()
            })
    }

    /// Schedules a maintenance window on provider `provider`'s component of
    /// the status page, as `lifeline maintenance schedule` does through the
    /// admin API: starting `start_in` from now and lasting `length` (real
    /// time; the status clock runs faster, so both are scaled to it).
    /// Returns its title.
    pub async fn schedule_maintenance(
        &self,
        provider: &str,
        start_in: std::time::Duration,
        length: std::time::Duration,
    ) -> anyhow::Result<String> {
        let Some(side) = &self.status else {
            anyhow::bail!("the status page is off");
        };
        let shared = side.shared().clone();
        let component = format!("provider-{}", lifeline_status::engine::slug(provider));
        if !shared.components.load().contains(&component) {
            anyhow::bail!("the status page has no component {component}");
        }
        let speed = i64::from(self.config.status.clock_speed.max(1));
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX) * speed;
        let now = shared.clock.now_ms();
        let name = format!("Chaos rehearsal: {provider} maintenance");
        let new = lifeline_store::NewMaintenance {
            name: name.clone(),
            scheduled_for: now + ms(start_in),
            scheduled_until: now + ms(start_in) + ms(length),
            components: vec![component],
            body: "Scheduled by `lifeline chaos`.".into(),
            at_ms: now,
        };
        let store = shared.admin.clone();
        tokio::task::spawn_blocking(move || store.create_maintenance(&new))
            .await
            .context("the store task")?
            .context("scheduling the maintenance")?;
        shared.poke.notify_one();
        Ok(name)
    }

    /// The store is lost: the status side stops (as a process whose disk
    /// died would) and the store's files are deleted. The data plane keeps
    /// serving.
    pub async fn lose_store(&mut self) {
        if let Some(s) = self.status.take() {
            s.stop().await;
        }
        self.store = None;
        let path = self.store_path().into_os_string();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    /// Restores the store from `backup` as `lifeline restore` does (onto a
    /// new, empty store: the old one is gone) and starts the status side
    /// again on it.
    pub async fn restore_store(&mut self, backup: &std::path::Path) -> anyhow::Result<()> {
        let (into, from) = (self.store_path(), backup.to_path_buf());
        let store =
            tokio::task::spawn_blocking(move || -> anyhow::Result<lifeline_store::SqliteStore> {
                let s = lifeline_store::SqliteStore::open(&into).context("opening a new store")?;
                s.restore_from(&from).context("restoring the backup")?;
                Ok(s)
            })
            .await
            .context("the restore task")??;
        self.store = Some(Arc::new(store));
        self.status = StatusSide::start(&self.gw, &self.config)
            .await
            .context("starting the status page on the restored store")?;
        Ok(())
    }

    /// The store, as the run reads it (`None` while it is lost).
    pub fn store(&self) -> Option<Arc<lifeline_store::SqliteStore>> {
        self.store.clone()
    }

    /// The status side's store file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("status.db")
    }

    /// GETs `path` from the gateway's listener (the status page's routes),
    /// returning the body of a 200.
    pub async fn get(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let fetch = async {
            let mut s = tokio::net::TcpStream::connect(self.addr).await.ok()?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                self.addr
            );
            s.write_all(req.as_bytes()).await.ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let (head, body) = text.split_once("\r\n\r\n")?;
            head.starts_with("HTTP/1.1 200").then(|| body.to_string())
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), fetch)
            .await
            .ok()
            .flatten()
    }

    /// Stops everything and removes the temporary directory.
    pub async fn stop(self) {
        if let Some(s) = self.status {
            s.stop().await;
        }
        self.stop_server.cancel();
        let _ = self.server.await;
        self.gw.close().await;
        for m in self.mocks.values() {
            m.shutdown().await;
        }
        drop(self.store);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
