//! The gateway's live state: routes, keys and deployments, swapped whole on
//! reload.
//!
//! Requests take a cheap `Arc` snapshot of [`Live`] when they start (a
//! lock-free [`ArcSwap`] load) and keep it to the end, so a reload never
//! disturbs a request in flight.
//!
//! By job:
//!
//! - this file: the state itself and its accessors;
//! - `apply.rs`: building the next state from a config, and reloads;
//! - `prober.rs`: the task that probes open and idle deployments;
//! - `quota.rs`: the task that closes the providers' quota buckets and
//!   reports the forecast (metrics, log, health events);
//! - `events.rs`: the health feed ([`Gateway::subscribe`]): a snapshot of
//!   every deployment, then the changes;
//! - `simulated.rs`: in-process simulated providers (`kind = "mock"`, with
//!   the `simulated` cargo feature).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod apply;
mod capacity;
mod events;
mod prober;
mod quota;
mod simulated;

pub use events::{FeedItem, HealthFeed, HealthSnapshot};

use crate::admission::Admission;
use crate::auth::{DynamicKey, DynamicKeys, KeySet};
use crate::config::Config;
use crate::extension::Extension;
use crate::health::HealthBus;
use crate::limit::{Limiter, Local};
use crate::providers::{Endpoint, HttpClient, Upstream};
use crate::route::{Deployment, RouteTable};
use crate::telemetry::{DeploymentTotals, Metrics, ModelTotals, SliTotals};

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
    /// Swapped whole on apply; read lock-free by every request.
    live: ArcSwap<Live>,
    metrics: Arc<Metrics>,
    /// Global admission and the memory budget, kept across reloads.
    admission: Admission,
    events: Arc<HealthBus>,
    ready: AtomicBool,
    deployments: Mutex<HashMap<String, Arc<Deployment>>>,
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    #[cfg(feature = "simulated")]
    simulated: simulated::Simulated,
    clients: Mutex<HashMap<Duration, HttpClient>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    reload_lock: tokio::sync::Mutex<()>,
    /// Routes the gateway does not own ([`Gateway::set_extension`]).
    extension: ArcSwapOption<Installed>,
    /// Keys installed at run time ([`Gateway::set_dynamic_keys`]); apart
    /// from [`Live`], so a reload keeps them and installing them does not
    /// rebuild the routes.
    dynamic_keys: ArcSwap<DynamicKeys>,
    /// Per-client-IP limits ([`crate::ip_limit`]); kept across reloads.
    ip_limits: crate::ip_limit::IpLimits,
    /// Keys the admin token's id ([`Gateway::set_actor_id_secret`]).
    actor_id_secret: ArcSwap<[u8; 16]>,
    /// Wrong admin tokens per client IP (the data plane's lockout rules,
    /// its own table).
    admin_ip_limits: crate::ip_limit::IpLimits,
    /// Per-key budgets ([`crate::limit`]); apart from [`Live`], so that
    /// neither a reload nor a new set of dynamic keys resets them.
    limiter: Arc<dyn Limiter>,
}

/// An installed [`Extension`] (`arc-swap` holds sized values only).
struct Installed(Arc<dyn Extension>);

impl Gateway {
    /// Builds the gateway from a validated config, starting in-process
    /// simulated providers and the prober.
    pub async fn start(config: Config) -> Result<Self, ApplyError> {
        let metrics = Arc::new(Metrics::new());
        let admission = Admission::new(&config.admission, metrics.clone());
        let gw = Self {
            inner: Arc::new(Inner {
                limiter: Arc::new(Local::new(metrics.clone())),
                live: ArcSwap::from_pointee(Live {
                    config: Arc::new(config.clone()),
                    routes: RouteTable::default(),
                    keys: KeySet::default(),
                    deployments: Vec::new(),
                }),
                metrics,
                admission,
                events: Arc::new(HealthBus::default()),
                ready: AtomicBool::new(true),
                deployments: Mutex::new(HashMap::new()),
                upstreams: Mutex::new(HashMap::new()),
                #[cfg(feature = "simulated")]
                simulated: simulated::Simulated::default(),
                clients: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                reload_lock: tokio::sync::Mutex::new(()),
                extension: ArcSwapOption::empty(),
                dynamic_keys: ArcSwap::from_pointee(DynamicKeys::default()),
                ip_limits: crate::ip_limit::IpLimits::default(),
                actor_id_secret: ArcSwap::from_pointee(random_secret()),
                admin_ip_limits: crate::ip_limit::IpLimits::default(),
            }),
        };
        gw.apply(config).await?;
        gw.spawn_prober();
        gw.spawn_capacity_follower();
        gw.spawn_quota_watch();
        Ok(gw)
    }

    /// Keys the admin token's id in logs and audit entries
    /// ([`crate::extension::token_id`]) with `secret` from now on: the
    /// store's, so that ids stay the same across restarts. Until then, a
    /// secret of this process's own.
    pub fn set_actor_id_secret(&self, secret: [u8; 16]) {
        self.inner.actor_id_secret.store(Arc::new(secret));
    }

    /// Wrong admin tokens per client IP ([`crate::admin`]).
    pub(crate) fn admin_ip_limits(&self) -> &crate::ip_limit::IpLimits {
        &self.inner.admin_ip_limits
    }

    /// The id of admin token `token` ([`crate::extension::token_id`]).
    pub fn admin_token_id(&self, token: &str) -> String {
        crate::extension::token_id(&self.inner.actor_id_secret.load(), token)
    }

    /// Installs the [`Extension`] that answers the requests the gateway has
    /// no route for (public `GET`/`HEAD` paths, admin paths under
    /// `/admin/`); replaces any earlier one. Takes effect for the next
    /// request; may be called at any time after [`Gateway::start`].
    pub fn set_extension(&self, extension: Arc<dyn Extension>) {
        self.inner
            .extension
            .store(Some(Arc::new(Installed(extension))));
    }

    /// The installed extension, if any.
    pub fn extension(&self) -> Option<Arc<dyn Extension>> {
        self.inner.extension.load_full().map(|i| i.0.clone())
    }

    /// Replaces the dynamic client keys (see [`crate::auth`]): accepted
    /// beside the config's `[[keys]]` from the next request on, and kept
    /// across reloads. Installing an empty list while the config has no
    /// keys opens the data plane again.
    pub fn set_dynamic_keys(&self, keys: &[DynamicKey]) {
        self.inner
            .dynamic_keys
            .store(Arc::new(DynamicKeys::new(keys)));
    }

    /// The ids of the dynamic keys used since the last call (see
    /// [`DynamicKeys::take_used`]). Uses recorded in a set that
    /// [`Gateway::set_dynamic_keys`] replaced are not reported: call this
    /// just before installing a new set (a request that checks its key in
    /// between goes unreported, and is counted at the key's next use).
    pub fn take_used_dynamic_keys(&self) -> Vec<i64> {
        self.inner.dynamic_keys.load().take_used()
    }

    /// How many dynamic keys are installed.
    pub fn dynamic_key_count(&self) -> usize {
        self.inner.dynamic_keys.load().len()
    }

    /// Checks a request's client key against `live`'s static keys and the
    /// dynamic ones (lock-free: one `arc-swap` guard load); returns the
    /// key's tenant, `None` when no key is needed.
    pub fn check_key(
        &self,
        live: &Live,
        headers: &http::HeaderMap,
    ) -> Result<Option<Arc<crate::context::Tenant>>, crate::error::ApiError> {
        live.keys
            .check_with(&self.inner.dynamic_keys.load(), headers)
    }

    /// Authenticates a data-plane request from `peer`: the per-IP limits
    /// ([`crate::ip_limit`]: an address locked out after failed
    /// authentications is refused without its key being checked; with
    /// `auth = "none"`, the per-IP request rate), then the key
    /// ([`Gateway::check_key`]); a wrong key counts against the client's
    /// address. With keys and no address locked out, the limits cost one
    /// atomic load.
    pub fn authenticate(
        &self,
        live: &Live,
        peer: std::net::SocketAddr,
        headers: &http::HeaderMap,
    ) -> Result<Option<Arc<crate::context::Tenant>>, crate::error::ApiError> {
        use crate::ip_limit::client_ip;
        let cfg = &live.config.server.ip;
        let limits = &self.inner.ip_limits;
        let open = live.keys.is_open();
        if (open && cfg.requests_per_minute.is_some()) || limits.any_locked_out() {
            let ip = client_ip(peer, headers, &cfg.trusted_proxies);
            if let Err(refused) = limits.admit(cfg, ip, open, tokio::time::Instant::now()) {
                self.inner.metrics.ip_rate_limited(refused.reason.label());
                return Err(refused.into_error());
            }
        }
        self.check_key(live, headers).inspect_err(|_| {
            // Only a key presented and wrong is a guess; a missing key, or
            // none configured at all, reveals nothing.
            let presented = headers.contains_key(http::header::AUTHORIZATION)
                || headers.contains_key("api-key");
            let any = live.keys.enabled() || self.dynamic_key_count() > 0;
            if presented && any {
                self.inner.metrics.auth_failure();
                let ip = client_ip(peer, headers, &cfg.trusted_proxies);
                if let Some(lockout) = limits.failed(cfg, ip, tokio::time::Instant::now()) {
                    tracing::warn!(message = "Client address locked out after failed authentications.", client = %ip, lockout_s = lockout.as_secs_f64());
                }
            }
        })
    }

    /// The state for one request.
    pub fn live(&self) -> Arc<Live> {
        self.inner.live.load_full()
    }

    /// The per-key budgets.
    pub fn limiter(&self) -> &dyn Limiter {
        &*self.inner.limiter
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Global admission and the memory budget ([`crate::admission`]).
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
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

    /// Finds a deployment by id (`provider/model`).
    pub fn deployment(&self, id: &str) -> Option<Arc<Deployment>> {
        self.live()
            .deployments
            .iter()
            .find(|d| &*d.id == id)
            .cloned()
    }

    /// Drains or undrains a deployment by id (`provider/model`); `None` if
    /// there is none. Waits for a reload in progress: a drain landing on a
    /// deployment the reload is replacing, after the reload copied its drain
    /// and before the new state serves, would be lost.
    pub async fn set_drained(&self, id: &str, drained: bool) -> Option<Arc<Deployment>> {
        let _no_reload = self.inner.reload_lock.lock().await;
        let d = self.deployment(id)?;
        d.set_drained(drained);
        Some(d)
    }

    /// Drains a deployment for a maintenance window, or gives it back
    /// (`on = false`); an operator's own drain is separate and stays.
    /// `None` if there is no such deployment. Waits for a reload in
    /// progress, as [`Self::set_drained`] does.
    pub async fn set_maintenance(&self, id: &str, on: bool) -> Option<Arc<Deployment>> {
        let _no_reload = self.inner.reload_lock.lock().await;
        let d = self.deployment(id)?;
        d.set_maintenance(on);
        Some(d)
    }

    /// The status side's SLI counters, cumulative: per public model of the
    /// running config and endpoint family (all four families of every
    /// model, in config order), and per deployment in use. A model or
    /// deployment kept by a reload keeps counting; one a reload adds starts
    /// at 0 and one it removes is no longer listed. Reads atomics and
    /// copies names: no lock the request path takes.
    pub fn sli_totals(&self) -> SliTotals {
        let live = self.live();
        let mut models = Vec::with_capacity(live.config.models.len() * Endpoint::FAMILIES.len());
        let mut users: HashMap<&str, Vec<String>> = HashMap::new();
        for m in &live.config.models {
            let Some(route) = live.routes.models.get(&m.name) else {
                continue;
            };
            for e in Endpoint::FAMILIES {
                models.push(ModelTotals {
                    family: e.family(),
                    model: m.name.clone(),
                    counts: route.sli.family(e.family_index()).totals(),
                });
            }
            for member in route.tiers.iter().flatten() {
                let list = users.entry(&member.deployment.id).or_default();
                if !list.contains(&m.name) {
                    list.push(m.name.clone());
                }
            }
        }
        let deployments = live
            .deployments
            .iter()
            .map(|d| DeploymentTotals {
                id: d.id.to_string(),
                provider: d.upstream.name.to_string(),
                model: d.model.clone(),
                public_models: users.remove(&*d.id).unwrap_or_default(),
                counts: d.sli().totals(),
            })
            .collect();
        SliTotals {
            models,
            deployments,
        }
    }

    /// Stops background tasks (the prober) and waits for them.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.stop_all_simulated().await;
    }
}

/// 16 random bytes (the OS's; should it fail, fastrand's, seeded from it).
fn random_secret() -> [u8; 16] {
    let mut secret = [0u8; 16];
    if getrandom::fill(&mut secret).is_err() {
        fastrand::fill(&mut secret);
    }
    secret
}
