//! The status side, connected to a running gateway.
//!
//! `lifeline-status` knows nothing of the gateway and `lifeline-core`
//! nothing of the status page; this module joins them:
//!
//! - opens the store (`[store] url`, created on first start) and reads back
//!   the SLI history and the providers' archived incidents;
//! - runs the engine ([`driver`]): every tick it samples the gateway's
//!   lock-free SLI counters ([`sampler`]), reads every deployment's health,
//!   lets the engine decide, writes through the store on a blocking thread
//!   (a store that fails never holds up the tick, and never the data plane,
//!   which does not know the store exists), drains and undrains deployments
//!   for maintenance, queues webhook notifications, and re-renders the page
//!   when it changed;
//! - serves the page from those pre-rendered bytes, on the data listener
//!   or `status_listen`, and the admin routes for incidents, maintenance and
//!   webhooks ([`ext`]);
//! - runs the webhook worker and one poller per `[[status.upstream]]`.

mod driver;
pub(crate) mod ext;
mod sampler;
mod settings;

use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, ArcSwapOption};
use lifeline_core::{Config, Gateway};
use lifeline_status::render::Rendered;
use lifeline_store::{AuditStore, SqliteStore, StatusStore};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use settings::store_path;

/// The status side's clock: wall-clock time, or (for demos and tests,
/// `[status] clock_speed`) a clock that runs faster from the moment the
/// status side started.
#[derive(Debug, Clone, Copy)]
pub struct StatusClock {
    speed: u32,
    origin_ms: i64,
    origin: tokio::time::Instant,
}

impl StatusClock {
    /// A clock running `speed` times faster than real time (1: real time).
    pub fn new(speed: u32) -> Self {
        Self {
            speed: speed.max(1),
            origin_ms: wall_ms(),
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        if self.speed == 1 {
            return wall_ms();
        }
        let elapsed = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.origin_ms
            .saturating_add(elapsed.saturating_mul(i64::from(self.speed)))
    }
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What the driver, the extension and the CLI share.
pub struct Shared {
    /// The store, as the driver, the webhook worker and the pollers use it.
    pub store: Arc<dyn StatusStore>,
    /// The same store through a connection of its own, for the admin API.
    pub admin: Arc<dyn StatusStore>,
    /// The page's documents, rendered; `None` before the first build.
    pub rendered: ArcSwapOption<Rendered>,
    /// Component ids the page knows (incidents may only name those).
    pub components: ArcSwap<Vec<String>>,
    /// Wakes the driver at once (after an operator's change).
    pub poke: Notify,
    /// The status clock.
    pub clock: StatusClock,
}

/// A running status side.
pub struct StatusSide {
    shared: Arc<Shared>,
    stop: CancellationToken,
    driver: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long to wait between attempts to open a store that failed to open.
pub const RETRY_OPEN: std::time::Duration = std::time::Duration::from_secs(10);

/// The status side as `serve` holds it: started, or still trying to open
/// its store in the background. Whatever happens to the store, the gateway
/// keeps serving: a status side that cannot start is logged and retried,
/// never fatal.
pub struct Supervised {
    started: Arc<tokio::sync::Mutex<Option<StatusSide>>>,
    retry: Option<JoinHandle<()>>,
}

impl Supervised {
    /// Starts the status side, or (when its store cannot be opened, or a
    /// part of it cannot start) logs why and keeps trying every
    /// [`RETRY_OPEN`] while the gateway serves.
    pub async fn start(gw: &Gateway, config: &Config) -> Supervised {
        let started = Arc::new(tokio::sync::Mutex::new(None));
        match StatusSide::start(gw, config).await {
            Ok(side) => {
                *started.lock().await = side;
                return Supervised {
                    started,
                    retry: None,
                };
            }
            Err(e) => tracing::error!(
                message = "The status page cannot start; the gateway serves without it and retries.",
                error = %format!("{e:#}"),
                retry_in_s = RETRY_OPEN.as_secs()
            ),
        }
        let (gw, config, slot) = (gw.clone(), config.clone(), started.clone());
        let retry = tokio::spawn(async move {
            for attempt in 1u64.. {
                tokio::time::sleep(RETRY_OPEN).await;
                match StatusSide::start(&gw, &config).await {
                    Ok(side) => {
                        tracing::info!(message = "The status page started after all.");
                        *slot.lock().await = side;
                        return;
                    }
                    // A reminder about once a minute, not every try.
                    Err(e) if attempt % 6 == 0 => tracing::warn!(
                        message = "The status page still cannot start; retrying.",
                        error = %format!("{e:#}")
                    ),
                    Err(e) => tracing::debug!(
                        message = "The status page still cannot start.",
                        error = %format!("{e:#}")
                    ),
                }
            }
        });
        Supervised {
            started,
            retry: Some(retry),
        }
    }

    /// Stops retrying, and stops the status side if it started.
    pub async fn stop(self) {
        if let Some(r) = self.retry {
            r.abort();
            let _ = r.await;
        }
        if let Some(side) = self.started.lock().await.take() {
            side.stop().await;
        }
    }
}

impl StatusSide {
    /// Starts the status side for `gw` (unless `[status] enabled = false`):
    /// opens the store, builds the first page, installs the routes and
    /// spawns its tasks.
    pub async fn start(gw: &Gateway, config: &Config) -> anyhow::Result<Option<StatusSide>> {
        if !config.status.enabled {
            tracing::info!(message = "The status page is disabled ([status] enabled = false).");
            return Ok(None);
        }
        let path = store_path(config);
        let open_path = path.clone();
        // Two connections: one for the status side's own writes, one for
        // the operators' admin requests, so that these never queue behind
        // the driver's writes (each of which, on a store another process
        // holds locked, waits the whole busy timeout before failing).
        let (store, admin) = tokio::task::spawn_blocking(move || {
            Ok::<_, lifeline_store::StoreError>((
                SqliteStore::open(&open_path)?,
                SqliteStore::open(&open_path)?,
            ))
        })
        .await
        .context("opening the store")?
        .with_context(|| format!("opening the store {}", path.display()))?;
        // The secret that keys admin token ids in the audit log: made once
        // per store, so that an id stays the same across restarts.
        let mut fresh = [0u8; 16];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("random bytes: {e}"))?;
        let (secret, store) = tokio::task::spawn_blocking(move || {
            let secret = store.actor_id_secret(fresh);
            (secret, store)
        })
        .await
        .context("reading the store's actor id secret")?;
        gw.set_actor_id_secret(secret.context("reading the store's actor id secret")?);
        let store: Arc<dyn StatusStore> = Arc::new(store);
        let admin: Arc<dyn StatusStore> = Arc::new(admin);
        let clock = StatusClock::new(config.status.clock_speed);
        let shared = Arc::new(Shared {
            store,
            admin,
            rendered: ArcSwapOption::empty(),
            components: ArcSwap::from_pointee(Vec::new()),
            poke: Notify::new(),
            clock,
        });
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let pollers = driver::start_pollers(config, &shared, &mut tasks)?;
        let worker = lifeline_status::webhook::Worker::new(
            shared.store.clone(),
            lifeline_status::webhook::RetryPolicy::default(),
        )
        .map_err(|e| anyhow::anyhow!("webhook worker: {e}"))?;
        let webhooks = worker.handle();
        tasks.push(tokio::spawn(worker.run()));
        let driver =
            driver::Driver::new(gw.clone(), config, shared.clone(), pollers, webhooks).await?;
        let driver = tokio::spawn(driver.run(stop.clone()));
        gw.set_extension(Arc::new(ext::StatusExtension::new(shared.clone())));
        tracing::info!(
            message = "The status page is up.",
            store = %path.display(),
            url = %format!("{}/status", config.status.page_url),
        );
        Ok(Some(StatusSide {
            shared,
            stop,
            driver,
            tasks,
        }))
    }

    /// What the driver, the extension and the CLI share (the store, the
    /// clock, the driver's wake-up): `lifeline chaos` schedules its
    /// maintenance windows through it, as the admin API does.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the tasks after a last flush of what the engine queued (given
    /// up to ten seconds: a store that cannot be written keeps it queued in
    /// vain).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.driver).await;
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        drop(self.shared);
    }
}
