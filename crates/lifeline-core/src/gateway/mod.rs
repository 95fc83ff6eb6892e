//! The gateway's live state: routes, keys and deployments, swapped whole on
//! reload.
//!
//! Requests take a cheap `Arc` snapshot of [`Live`] when they start and keep
//! it to the end, so a reload never disturbs a request in flight. Deployments
//! and provider adapters are kept by name across reloads and reused when
//! their settings are unchanged: health, latency and drains survive a
//! reload. In-process simulated providers (`kind = "mock"`) are started here
//! and kept for the life of the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod prober;

use crate::auth::KeySet;
use crate::config::{Config, ProviderKind};
use crate::health::HealthEvent;
use crate::providers::HttpClient;
use crate::providers::Upstream;
use crate::retry::RetryBudget;
use crate::route::{Deployment, Member, Model, RouteTable};
use crate::telemetry::Metrics;

/// The state one request reads, fixed for its whole life.
pub struct Live {
    /// The config this state was built from.
    pub config: Arc<Config>,
    /// Public models.
    pub routes: RouteTable,
    /// Client keys.
    pub keys: KeySet,
    /// Every deployment in use, in config order.
    pub deployments: Vec<Arc<Deployment>>,
}

/// A config that could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A provider's settings cannot make valid requests.
    #[error(transparent)]
    Upstream(#[from] crate::providers::UpstreamError),
    /// An in-process simulated provider could not start.
    #[error("provider {provider}: the simulated provider could not start: {source}")]
    Mock {
        /// Provider name.
        provider: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The upstream TLS client could not be built.
    #[error("TLS client: {0}")]
    Tls(String),
}

/// The running gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    live: RwLock<Arc<Live>>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<HealthEvent>,
    ready: AtomicBool,
    deployments: Mutex<HashMap<String, Arc<Deployment>>>,
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    mocks: tokio::sync::Mutex<HashMap<String, lifeline_mock::MockHandle>>,
    clients: Mutex<HashMap<Duration, HttpClient>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Gateway {
    /// Builds the gateway from a validated config, starting in-process
    /// simulated providers and the prober.
    pub async fn start(config: Config) -> Result<Self, ApplyError> {
        let (events, _) = broadcast::channel(1024);
        let gw = Self {
            inner: Arc::new(Inner {
                live: RwLock::new(Arc::new(Live {
                    config: Arc::new(config.clone()),
                    routes: RouteTable::default(),
                    keys: KeySet::default(),
                    deployments: Vec::new(),
                })),
                metrics: Arc::new(Metrics::new()),
                events,
                ready: AtomicBool::new(true),
                deployments: Mutex::new(HashMap::new()),
                upstreams: Mutex::new(HashMap::new()),
                mocks: tokio::sync::Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                reload_lock: tokio::sync::Mutex::new(()),
            }),
        };
        gw.apply(config).await?;
        gw.spawn_prober();
        Ok(gw)
    }

    /// The state for one request.
    pub fn live(&self) -> Arc<Live> {
        self.inner
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Subscribes to breaker transitions.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.inner.events.subscribe()
    }

    /// Whether `/readyz` says yes.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// Marks the gateway as draining (`/readyz` turns false).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Relaxed);
    }

    /// The upstream client for a connect timeout (one pool per distinct value).
    pub fn client(&self, connect_timeout: Duration) -> Result<HttpClient, ApplyError> {
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&connect_timeout) {
            return Ok(c.clone());
        }
        let client = crate::providers::build_client(connect_timeout).map_err(ApplyError::Tls)?;
        clients.insert(connect_timeout, client.clone());
        Ok(client)
    }

    /// The in-process simulated provider named `provider`, if any.
    pub async fn mock(&self, provider: &str) -> Option<lifeline_mock::MockHandle> {
        self.inner.mocks.lock().await.get(provider).cloned()
    }

    /// Swaps in a new validated config. On error the running one stays.
    pub async fn apply(&self, config: Config) -> Result<(), ApplyError> {
        let _one_at_a_time = self.inner.reload_lock.lock().await;
        let old = self.live();
        let health_changed = old.config.health != config.health;
        // 1. Providers: start or update simulated ones, reuse unchanged adapters.
        let mut upstreams = HashMap::new();
        for p in &config.providers {
            let base_url = match (p.kind, &p.base_url) {
                (ProviderKind::Mock, _) => self.mock_url(p).await?,
                (ProviderKind::OpenAi, None) => "https://api.openai.com/v1".to_string(),
                (_, Some(u)) => u.clone(),
                (_, None) => String::new(),
            };
            let previous = self
                .inner
                .upstreams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p.name)
                .cloned();
            let up = match previous {
                Some(prev) if prev.config == *p && prev.base_url == base_url => prev,
                _ => Arc::new(Upstream::new(p, base_url)?),
            };
            upstreams.insert(p.name.clone(), up);
        }
        // 2. Deployments and models.
        let mut models = HashMap::new();
        let mut used: HashMap<String, Arc<Deployment>> = HashMap::new();
        let mut order = Vec::new();
        for m in &config.models {
            let mut tiers = Vec::with_capacity(m.tiers.len());
            for tier in &m.tiers {
                let mut members = Vec::with_capacity(tier.len());
                for r in tier {
                    let Some(up) = upstreams.get(&r.provider) else {
                        continue;
                    };
                    let id = format!("{}/{}", r.provider, r.model);
                    let dep = match used.get(&id) {
                        Some(d) => d.clone(),
                        None => {
                            let existing = self
                                .inner
                                .deployments
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&id)
                                .cloned();
                            let dep = match existing {
                                Some(d) if Arc::ptr_eq(&d.upstream, up) && !health_changed => d,
                                previous => {
                                    let fresh = Arc::new(Deployment::new(
                                        up.clone(),
                                        &r.model,
                                        config.health.clone(),
                                        self.inner.events.clone(),
                                        self.inner.metrics.clone(),
                                    ));
                                    // A drain is an operator's decision: a
                                    // rebuilt deployment keeps it.
                                    if previous.is_some_and(|p| p.is_drained()) {
                                        fresh.set_drained(true);
                                    }
                                    fresh
                                }
                            };
                            used.insert(id.clone(), dep.clone());
                            order.push(dep.clone());
                            dep
                        }
                    };
                    members.push(Member {
                        deployment: dep,
                        weight: r.weight,
                        context_window: r.context_window,
                    });
                }
                tiers.push(members);
            }
            let model = Model {
                name: m.name.as_str().into(),
                tiers,
                budget: RetryBudget::new(
                    m.policy.retry_budget_ratio,
                    m.policy.retry_budget_min_per_sec,
                ),
                policy: m.policy.clone(),
                client: self.client(m.policy.connect_timeout)?,
            };
            models.insert(m.name.clone(), Arc::new(model));
        }
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let list: Vec<_> = config
            .models
            .iter()
            .map(|m| serde_json::json!({"id": m.name, "object": "model", "created": created, "owned_by": "lifeline"}))
            .collect();
        let models_json =
            Bytes::from(serde_json::json!({"object": "list", "data": list}).to_string());
        let live = Live {
            keys: KeySet::new(&config.keys),
            routes: RouteTable {
                models,
                models_json,
                created,
            },
            deployments: order,
            config: Arc::new(config),
        };
        *self
            .inner
            .upstreams
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = upstreams;
        *self
            .inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = used;
        let applied = live.config.clone();
        *self.inner.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        // Only once the new state serves: a failed apply keeps every mock.
        self.stop_removed_mocks(&applied).await;
        Ok(())
    }

    /// Stops in-process simulated providers that the new config no longer has
    /// as `kind = "mock"`. Requests still in flight to them fail over like
    /// any other broken attempt.
    async fn stop_removed_mocks(&self, config: &Config) {
        let keep: std::collections::HashSet<&str> = config
            .providers
            .iter()
            .filter(|p| p.kind == ProviderKind::Mock)
            .map(|p| p.name.as_str())
            .collect();
        let removed: Vec<lifeline_mock::MockHandle> = {
            let mut mocks = self.inner.mocks.lock().await;
            let gone: Vec<String> = mocks
                .keys()
                .filter(|k| !keep.contains(k.as_str()))
                .cloned()
                .collect();
            gone.iter().filter_map(|k| mocks.remove(k)).collect()
        };
        for m in removed {
            tracing::info!(message = "Simulated provider removed by reload.", base_url = %m.base_url());
            m.shutdown().await;
        }
    }

    async fn mock_url(&self, p: &crate::config::ProviderConfig) -> Result<String, ApplyError> {
        let mut mocks = self.inner.mocks.lock().await;
        let cfg = p.mock.clone().unwrap_or_default();
        if let Some(h) = mocks.get(&p.name) {
            if p.mock.is_some() {
                h.set_config(cfg);
            }
            return Ok(h.base_url());
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let h = lifeline_mock::MockServer::start(addr, cfg)
            .await
            .map_err(|source| ApplyError::Mock {
                provider: p.name.clone(),
                source,
            })?;
        tracing::info!(message = "Simulated provider started.", provider = %p.name, base_url = %h.base_url());
        let url = h.base_url();
        mocks.insert(p.name.clone(), h);
        Ok(url)
    }

    /// Finds a deployment by id (`provider/model`).
    pub fn deployment(&self, id: &str) -> Option<Arc<Deployment>> {
        self.live()
            .deployments
            .iter()
            .find(|d| &*d.id == id)
            .cloned()
    }

    /// Stops background tasks (the prober) and waits for them.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        for (_, m) in self.inner.mocks.lock().await.drain() {
            m.shutdown().await;
        }
    }
}

impl Gateway {
    /// Re-reads the config file the gateway was started from and applies it.
    /// On any error the running config stays and the error is returned (and logged).
    pub async fn reload(&self) -> Result<(), String> {
        let Some(path) = self.live().config.source.clone() else {
            return Err(
                "the gateway runs the built-in example; there is no config file to reload".into(),
            );
        };
        let result = match Config::load(&path) {
            Err(errors) => Err(errors.to_string()),
            Ok(config) => {
                let old = self.live().config.clone();
                if old.server.listen != config.server.listen
                    || old.server.admin_listen != config.server.admin_listen
                {
                    tracing::warn!(
                        message = "Listen addresses changed; they take effect at the next restart."
                    );
                }
                self.apply(config).await.map_err(|e| e.to_string())
            }
        };
        match &result {
            Ok(()) => tracing::info!(message = "Config reloaded.", path = %path.display()),
            Err(e) => {
                tracing::error!(message = "Config reload rejected; keeping the running config.", path = %path.display(), error = %e)
            }
        }
        result
    }
}
