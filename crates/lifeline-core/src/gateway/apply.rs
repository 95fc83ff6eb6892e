//! Applying a config: building the next [`Live`] state from a validated
//! [`Config`] and swapping it in, and reloading the config file.
//!
//! Provider adapters and deployments are kept by name across applies and
//! reused when their settings did not change, so a reload forgets no health
//! and disturbs no attempt in flight. A rebuilt deployment keeps an
//! operator's drain. What else a reload carries over:
//!
//! - a provider's quota forecast (`rpm`, `tpm`): the new adapter keeps
//!   the old one's meter (trend, steering factor) with the new settings;
//! - a provider's concurrency cap (`max_concurrency`): the new adapter
//!   shares the old one's semaphore, whose permits requests in flight still
//!   hold, resized when the cap changed, so a reload never lets more than
//!   the cap through. The new quota settings and the resize are applied
//!   only once the new state is built, just before the swap: a rejected
//!   reload changes neither;
//! - a model's retry budget, when `retry_budget_ratio` and
//!   `retry_budget_min_per_sec` are unchanged: a reload during an outage
//!   does not hand out a fresh allowance of retries;
//! - a model's hedge budget, when `hedge_budget_percent` is unchanged, and
//!   the degraded-mode cache, when `degraded_cache_bytes` is;
//! - the SLI counters ([`crate::telemetry::sli`]) of a model kept by name
//!   and of a deployment kept or rebuilt under the same id, so they stay
//!   monotonic; a model or deployment the reload adds starts at 0;
//! - a rebuilt deployment's early-warning state (tally, detector and its
//!   baselines, factor, cause), when the `early_warning*` settings are
//!   unchanged: a demoted deployment stays demoted, rather than coming back
//!   at once and learning its drifted latency as the baseline. Changed
//!   early-warning settings start it afresh (factor 1, warm-up).
//!
//! Once the new state serves, the deployments it rebuilt or removed are
//! retired ([`Deployment::retire`]): requests still in flight on them finish,
//! but they publish no more events or gauges under an id that now names
//! their replacement (or nothing). Then every deployment the reload added,
//! rebuilt or removed is published as a health event.
//!
//! An operator's drain ([`Gateway::set_drained`]) waits for a reload in
//! progress, so it lands either on the deployment a reload replaces, before
//! the reload copies it, or on the replacement.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use tokio::sync::Semaphore;

use super::{ApplyError, Gateway, Live};
use crate::auth::KeySet;
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::degraded::AnswerCache;
use crate::health::Change;
use crate::providers::Upstream;
use crate::retry::RetryBudget;
use crate::route::{Deployment, Member, Model, RouteTable};

impl Gateway {
    /// Swaps in a new validated config. On error the running one stays.
    pub async fn apply(&self, config: Config) -> Result<(), ApplyError> {
        let _one_at_a_time = self.inner.reload_lock.lock().await;
        let old = self.live();
        let health_changed = old.config.health != config.health;
        let concurrency_changed = old.config.server.concurrency != config.server.concurrency;
        // 1. Providers: start or update simulated ones, reuse unchanged adapters.
        let mut upstreams = HashMap::new();
        // Changes to what the running state shares, made only at the swap.
        let mut deferred = Deferred::default();
        for p in &config.providers {
            // The upstream models its deployments name: their rules are
            // read once, here (`Upstream::with_models`).
            let names = config
                .models
                .iter()
                .flat_map(|m| m.tiers.iter().flatten())
                .filter(|r| r.provider == p.name)
                .map(|r| r.model.as_str());
            let base_url = match (p.kind, &p.base_url) {
                // Anthropic's base URL has no `/v1` (its paths carry it).
                (ProviderKind::Mock, _) if p.anthropic.is_some() => {
                    let url = self.simulated_url(p).await?;
                    url.strip_suffix("/v1").map(str::to_owned).unwrap_or(url)
                }
                (ProviderKind::Mock, _) => self.simulated_url(p).await?,
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
                Some(prev) => {
                    let mut up = Upstream::new(p, base_url)?.with_models(names);
                    let (limit, resize) = carried_limit(&prev, p);
                    up.limit = limit;
                    deferred.resizes.extend(resize);
                    if let Some((meter, settings)) = super::quota::carried_quota(&prev, p) {
                        up.quota = Some(meter.clone());
                        deferred.quotas.push((meter, settings));
                    }
                    Arc::new(up)
                }
                None => Arc::new(Upstream::new(p, base_url)?.with_models(names)),
            };
            upstreams.insert(p.name.clone(), up);
        }
        // 2. Deployments and models.
        let mut models = HashMap::new();
        // Degraded mode's answers: one cache for every model, kept while
        // its bound is.
        let answers = match &old.routes.answers {
            Some(a) if a.bound() == config.server.degraded_cache_bytes => a.clone(),
            _ => Arc::new(AnswerCache::new(config.server.degraded_cache_bytes)),
        };
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
                                Some(d)
                                    if Arc::ptr_eq(&d.upstream, up)
                                        && !health_changed
                                        && !concurrency_changed =>
                                {
                                    // A reload forgets prefill rejections
                                    // (the model behind may have changed).
                                    d.set_prefill_rejected(false);
                                    d
                                }
                                previous => {
                                    let mut fresh = Deployment::new(
                                        up.clone(),
                                        &r.model,
                                        config.health.clone(),
                                        self.inner.events.clone(),
                                        self.inner.metrics.clone(),
                                    )
                                    .with_concurrency(&config.server.concurrency);
                                    // A drain is an operator's decision: a
                                    // rebuilt deployment keeps it (copied
                                    // again once the old one is retired);
                                    // its SLI counters count on.
                                    if let Some(p) = previous {
                                        fresh.keep_counters_of(&p);
                                        fresh.keep_drain_of(&p);
                                        fresh.keep_early_warning_of(&p);
                                    }
                                    Arc::new(fresh)
                                }
                            };
                            used.insert(id.clone(), dep.clone());
                            order.push(dep.clone());
                            dep
                        }
                    };
                    let prefill = r.prefill.unwrap_or_else(|| dep.upstream.config.prefill());
                    members.push(Member {
                        deployment: dep,
                        weight: r.weight,
                        context_window: r.context_window,
                        prefill,
                    });
                }
                tiers.push(members);
            }
            let budget = match old.routes.models.get(&m.name) {
                Some(o)
                    if o.policy.retry_budget_ratio == m.policy.retry_budget_ratio
                        && o.policy.retry_budget_min_per_sec
                            == m.policy.retry_budget_min_per_sec =>
                {
                    o.budget.clone()
                }
                _ => Arc::new(RetryBudget::new(
                    m.policy.retry_budget_ratio,
                    m.policy.retry_budget_min_per_sec,
                )),
            };
            // A kept model counts on; a new one starts at 0.
            let sli = old
                .routes
                .models
                .get(&m.name)
                .map(|o| o.sli.clone())
                .unwrap_or_default();
            let hedge_budget = m.policy.hedge.enabled.then(|| {
                let ratio = m.policy.hedge.budget_percent / 100.0;
                match old
                    .routes
                    .models
                    .get(&m.name)
                    .and_then(|o| o.hedge_budget.as_ref())
                {
                    Some(b) if old_hedge_ratio(&old, &m.name) == Some(ratio) => b.clone(),
                    _ => Arc::new(RetryBudget::new(ratio, 0)),
                }
            });
            let model = Model {
                hedge_budget,
                answers: m.policy.degraded.enabled.then(|| answers.clone()),
                name: m.name.as_str().into(),
                tiers,
                budget,
                policy: m.policy.clone(),
                continuation: m.continuation,
                client: self.client(m.policy.connect_timeout)?,
                sli,
                waiting: crate::concurrency::WaitRoom::new(&config.server.concurrency),
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
            keys: KeySet::from_config(config.server.auth, &config.keys),
            routes: RouteTable {
                models,
                models_json,
                created,
                answers: config
                    .models
                    .iter()
                    .any(|m| m.policy.degraded.enabled)
                    .then_some(answers),
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
        let live = Arc::new(live);
        // Nothing can fail from here on: reconfigure what the running state
        // shares with the new one (a carried quota meter, a carried cap).
        deferred.apply();
        self.inner.live.store(live.clone());
        self.inner.admission.configure(&live.config.admission);
        // The in-flight limit from the new config and deployments.
        self.follow_capacity();
        // After the swap: a subscriber that reads the new state and then
        // gets these events applies them idempotently; none misses them.
        self.retire_and_announce(&old.deployments, &live.deployments);
        // Only once the new state serves: a failed apply keeps every mock.
        self.stop_removed_simulated(&applied).await;
        Ok(())
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
                    || old.server.status_listen != config.server.status_listen
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

impl Gateway {
    /// Retires the deployments `new` rebuilt or removed relative to `old`
    /// (whose in-flight requests would otherwise go on publishing under the
    /// same id), then publishes what `new` added, rebuilt or removed.
    fn retire_and_announce(&self, old: &[Arc<Deployment>], new: &[Arc<Deployment>]) {
        let before: HashMap<&str, &Arc<Deployment>> = old.iter().map(|d| (&*d.id, d)).collect();
        for d in new {
            match before.get(&*d.id) {
                Some(o) if Arc::ptr_eq(o, d) => {}
                Some(o) => {
                    o.retire();
                    // Retired, the old one takes no more drains and sets no
                    // more gauges: its last drain and the new one's breaker
                    // state are final now.
                    d.keep_drain_of(o);
                    d.publish_breaker_gauge();
                    self.inner
                        .events
                        .publish(d.id.clone(), Change::Rebuilt(d.status()));
                }
                None => self
                    .inner
                    .events
                    .publish(d.id.clone(), Change::Added(d.status())),
            }
        }
        let after: std::collections::HashSet<&str> = new.iter().map(|d| &*d.id).collect();
        for d in old.iter().filter(|d| !after.contains(&*d.id)) {
            d.retire();
            let kinds = crate::health::latency::LatencyKind::ALL.map(|k| k.label());
            self.inner.metrics.forget_deployment(&d.id, &kinds);
            self.inner.events.publish(d.id.clone(), Change::Removed);
        }
    }
}

/// What a reload changes in state the running one shares with the new one:
/// a carried quota meter's settings, a carried semaphore's size. Applied
/// only once the new state is built, just before the swap, so that a
/// rejected reload changes nothing.
#[derive(Default)]
struct Deferred {
    quotas: Vec<(
        Arc<crate::health::quota::QuotaMeter>,
        crate::health::quota::QuotaSettings,
    )>,
    resizes: Vec<Resize>,
}

impl Deferred {
    fn apply(self) {
        for (meter, settings) in self.quotas {
            meter.reconfigure(settings);
        }
        for r in self.resizes {
            r.apply();
        }
    }
}

/// A carried semaphore's change of cap, from `old` to `new` permits.
struct Resize {
    sem: Arc<Semaphore>,
    old: u32,
    new: u32,
}

/// The concurrency cap of a rebuilt provider adapter: the previous adapter's
/// semaphore (requests in flight hold its permits, so a new one would let up
/// to twice the cap through), and its resize to the new `max_concurrency`,
/// to apply once the reload can no longer fail.
fn carried_limit(prev: &Upstream, p: &ProviderConfig) -> (Option<Arc<Semaphore>>, Option<Resize>) {
    let (Some(sem), Some(old), Some(new)) = (
        prev.limit.as_ref(),
        prev.config.max_concurrency,
        p.max_concurrency,
    ) else {
        // No cap before (no permits held) or none now: a fresh one, or none.
        let fresh = p
            .max_concurrency
            .map(|n| Arc::new(Semaphore::new(n as usize)));
        return (fresh, None);
    };
    let resize = (new != old).then(|| Resize {
        sem: sem.clone(),
        old,
        new,
    });
    (Some(sem.clone()), resize)
}

impl Resize {
    fn apply(self) {
        resize(&self.sem, self.old, self.new);
    }
}

/// Resizes `sem` from `old` to `new` permits; permits requests in flight
/// still hold are retired as they come back.
fn resize(sem: &Arc<Semaphore>, old: u32, new: u32) {
    match new.cmp(&old) {
        std::cmp::Ordering::Equal => {}
        std::cmp::Ordering::Greater => sem.add_permits((new - old) as usize),
        std::cmp::Ordering::Less => {
            let excess = old - new;
            let forgotten = sem.forget_permits(excess as usize) as u32;
            let owed = excess - forgotten;
            if owed > 0 {
                retire_when_released(sem, owed);
            }
        }
    }
}

/// Retires `owed` permits that requests in flight still hold, as they give
/// them back. The claim is queued now, before any request that comes after
/// the reload (the semaphore is fair: released permits go to the queue
/// first), and a task waits for it to be filled.
fn retire_when_released(sem: &Arc<Semaphore>, owed: u32) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut claim = Box::pin(sem.clone().acquire_many_owned(owed));
    // The first poll queues the claim; the task's polls replace the waker.
    match claim.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(permits)) => permits.forget(),
        // Closed: nothing to retire.
        Poll::Ready(Err(_)) => {}
        Poll::Pending => {
            tokio::spawn(async move {
                if let Ok(permits) = claim.await {
                    permits.forget();
                }
            });
        }
    }
}

/// The hedge budget's ratio of model `name` in `live`, if it hedges.
fn old_hedge_ratio(live: &Live, name: &str) -> Option<f64> {
    let m = live.routes.models.get(name)?;
    m.policy
        .hedge
        .enabled
        .then(|| m.policy.hedge.budget_percent / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::FeedItem;
    use crate::health::HealthEvent;

    /// One deployment, `p/x`, at a port nothing answers on.
    fn one_deployment() -> Config {
        let text = "[[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p\", model = \"x\" } ] ]\n";
        Config::parse(text, "<test>").unwrap()
    }

    async fn next_event(feed: &mut crate::gateway::HealthFeed) -> Option<HealthEvent> {
        match tokio::time::timeout(std::time::Duration::from_millis(100), feed.next()).await {
            Ok(Some(FeedItem::Event(e))) => Some(e),
            Ok(other) => panic!("not an event: {other:?}"),
            Err(_) => None,
        }
    }

    /// An operator's drain waits for a reload in progress (here, one that
    /// holds the reload lock): landing on the deployment being replaced
    /// after the reload copied its drain, it would be lost.
    #[tokio::test]
    async fn a_drain_waits_for_a_reload_in_progress() {
        let gw = Gateway::start(one_deployment()).await.unwrap();
        let reload = gw.inner.reload_lock.lock().await;
        let drain = tokio::spawn({
            let gw = gw.clone();
            async move { gw.set_drained("p/x", true).await.is_some() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !gw.deployment("p/x").unwrap().is_drained(),
            "drained during a reload"
        );
        drop(reload);
        assert!(drain.await.unwrap());
        assert!(gw.deployment("p/x").unwrap().is_drained());
        gw.close().await;
    }

    /// An operator's drain and a maintenance drain are held separately: the
    /// deployment takes traffic only when neither holds it, a window's end
    /// never gives back the operator's drain, and events announce only
    /// changes of the deployment's drain as a whole.
    #[tokio::test]
    async fn operator_and_maintenance_drains_are_separate() {
        let gw = Gateway::start(one_deployment()).await.unwrap();
        let mut feed = gw.subscribe();
        assert!(matches!(feed.next().await, Some(FeedItem::Snapshot(_))));
        let d = gw.set_maintenance("p/x", true).await.unwrap();
        assert!(d.is_drained() && d.in_maintenance());
        let e = next_event(&mut feed).await.unwrap();
        assert_eq!(e.change, Change::Drain { drained: true });
        gw.set_drained("p/x", true).await.unwrap();
        assert!(
            next_event(&mut feed).await.is_none(),
            "no change as a whole"
        );
        gw.set_maintenance("p/x", false).await.unwrap();
        assert!(
            d.is_drained(),
            "the window's end gave back the operator's drain"
        );
        assert!(!d.in_maintenance());
        assert!(next_event(&mut feed).await.is_none());
        gw.set_drained("p/x", false).await.unwrap();
        assert!(!d.is_drained());
        let e = next_event(&mut feed).await.unwrap();
        assert_eq!(e.change, Change::Drain { drained: false });
        assert!(gw.set_maintenance("nope", true).await.is_none());
        gw.close().await;
    }

    /// A drain of the replaced deployment that lands after the reload built
    /// its replacement (and copied the drain) is carried over once the new
    /// state serves, and announced with it; the retired deployment then
    /// publishes nothing.
    #[tokio::test]
    async fn a_late_drain_of_a_replaced_deployment_is_carried_over() {
        let gw = Gateway::start(one_deployment()).await.unwrap();
        let old = gw.deployment("p/x").unwrap();
        let fresh = Arc::new(Deployment::new(
            old.upstream.clone(),
            "x",
            gw.live().config.health.clone(),
            gw.inner.events.clone(),
            gw.inner.metrics.clone(),
        ));
        fresh.keep_drain_of(&old);
        old.set_drained(true);
        let mut feed = gw.subscribe();
        assert!(matches!(feed.next().await, Some(FeedItem::Snapshot(_))));
        gw.retire_and_announce(std::slice::from_ref(&old), std::slice::from_ref(&fresh));
        assert!(fresh.is_drained(), "the drain was lost");
        let e = next_event(&mut feed).await.unwrap();
        assert!(
            matches!(&e.change, Change::Rebuilt(s) if s.drained),
            "{e:?}"
        );
        assert!(old.is_retired() && !fresh.is_retired());
        old.set_drained(false);
        assert!(next_event(&mut feed).await.is_none());
        gw.close().await;
    }

    /// One second of 12 whole answers of `ms` each on `dep`, then a tick.
    async fn second(dep: &Arc<Deployment>, ms: u64) {
        for _ in 0..12 {
            let lease = dep.lease().unwrap();
            lease.finish(crate::health::Outcome::success(
                std::time::Duration::from_millis(ms),
            ));
        }
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        dep.early_warning_tick(tokio::time::Instant::now());
    }

    /// A reload that rebuilds a demoted deployment (here: another
    /// `[health]` key) keeps its early-warning state: still demoted, for the
    /// same cause, and the drifted latency is not learnt as its baseline.
    /// Changed early-warning settings start it afresh.
    #[tokio::test(start_paused = true)]
    async fn a_rebuilt_deployment_stays_demoted() {
        let gw = Gateway::start(one_deployment()).await.unwrap();
        let old = gw.deployment("p/x").unwrap();
        for _ in 0..40 {
            second(&old, 100).await;
        }
        for _ in 0..10 {
            second(&old, 400).await;
        }
        assert!(old.demoted());
        let mut config = one_deployment();
        config.health.cooldown *= 2;
        gw.apply(config.clone()).await.unwrap();
        let new = gw.deployment("p/x").unwrap();
        assert!(!Arc::ptr_eq(&old, &new), "not rebuilt");
        assert!(new.demoted(), "a reload promoted it");
        assert_eq!(new.demoted_by(), Some("latency"));
        // Still drifted 30 windows on: a fresh detector would have learnt
        // 400 ms as normal by now.
        for _ in 0..30 {
            second(&new, 400).await;
        }
        assert!(new.demoted(), "the drifted latency became the baseline");
        config.health.early_warning.band += 1.0;
        gw.apply(config).await.unwrap();
        let fresh = gw.deployment("p/x").unwrap();
        assert!(!fresh.demoted(), "changed settings start afresh");
        gw.close().await;
    }

    fn provider(cap: u32) -> ProviderConfig {
        let text = format!(
            "[[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmax_concurrency = {cap}\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p\", model = \"x\" }} ] ]\n"
        );
        let mut config = Config::parse(&text, "<test>").unwrap();
        config.providers.remove(0)
    }

    #[tokio::test]
    async fn a_changed_cap_resizes_the_semaphore_requests_in_flight_hold() {
        let old = Upstream::new(&provider(3), "http://127.0.0.1:9/v1".into()).unwrap();
        let sem = old.limit.clone().unwrap();
        let mut held: Vec<_> = (0..3)
            .map(|_| sem.clone().try_acquire_owned().unwrap())
            .collect();
        // Down to 1 while all 3 slots are taken: nothing is free until two
        // of them are given back and retired.
        let (shrunk, resize) = carried_limit(&old, &provider(1));
        assert!(Arc::ptr_eq(&sem, &shrunk.unwrap()));
        assert_eq!(sem.available_permits(), 0);
        resize.unwrap().apply();
        held.pop();
        held.pop();
        assert_eq!(sem.available_permits(), 0);
        held.pop();
        assert_eq!(sem.available_permits(), 1);
        // Up to 4 (from a cap of 1): three more slots.
        let mut one = Upstream::new(&provider(1), "http://127.0.0.1:9/v1".into()).unwrap();
        one.limit = Some(sem.clone());
        let (grown, resize) = carried_limit(&one, &provider(4));
        assert!(Arc::ptr_eq(&sem, &grown.unwrap()));
        assert_eq!(sem.available_permits(), 1, "resized before the swap");
        resize.unwrap().apply();
        assert_eq!(sem.available_permits(), 4);
    }
}
