//! Deployments, leases and waits.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::Config;
use std::time::Duration;

/// A provider with `max_concurrency = cap` (none: 0).
fn upstream(cap: u32) -> Arc<Upstream> {
    let cap = if cap == 0 {
        String::new()
    } else {
        format!("max_concurrency = {cap}\n")
    };
    let text = format!(
        "[[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n{cap}\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p\", model = \"x\" }} ] ]\n"
    );
    let config = Config::parse(&text, "<test>").unwrap();
    Arc::new(Upstream::new(&config.providers[0], "http://127.0.0.1:9/v1".into()).unwrap())
}

/// Upstream model `model` of `up`, with the given concurrency settings.
fn on(up: &Arc<Upstream>, model: &str, cfg: &ConcurrencyConfig) -> Arc<Deployment> {
    let dep = Deployment::new(
        up.clone(),
        model,
        HealthConfig::default(),
        Arc::new(HealthBus::new(16)),
        Arc::new(Metrics::new()),
    );
    Arc::new(dep.with_concurrency(cfg))
}

fn deployment(cap: u32, cfg: &ConcurrencyConfig) -> Arc<Deployment> {
    on(&upstream(cap), "x", cfg)
}

/// A waiter at the deployment's own limit is woken by the lease given
/// back, at once: the clock (paused, and advanced only by sleeps) does
/// not move, as it would for a waiter that polls.
#[tokio::test(start_paused = true)]
async fn a_lease_given_back_wakes_a_waiter_without_polling() {
    let cfg = ConcurrencyConfig {
        initial_limit: 2,
        min_limit: 1,
        ..ConcurrencyConfig::default()
    };
    let d = deployment(0, &cfg);
    let a = d.lease().unwrap();
    let _b = d.lease().unwrap();
    assert!(d.lease().is_none(), "over the limit");
    assert!(d.saturated());
    let t = Instant::now();
    let waiter = tokio::spawn({
        let d = d.clone();
        async move { matches!(d.wait_for_slot().await, Freed::Again) }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "woke before a slot freed");
    drop(a);
    assert!(waiter.await.unwrap());
    assert_eq!(Instant::now(), t, "the waiter polled");
    assert!(d.lease().is_some());
}

/// At the provider's cap (held by another of its deployments), a
/// waiter takes the permit given back and reserves the attempt itself.
#[tokio::test(start_paused = true)]
async fn at_the_providers_cap_a_waiter_gets_the_permit_given_back() {
    let up = upstream(1);
    let cfg = ConcurrencyConfig::default();
    let (x, d) = (on(&up, "x", &cfg), on(&up, "y", &cfg));
    assert_eq!(d.concurrency_limit(), Some(1));
    let a = x.lease().unwrap();
    assert!(d.saturated() && d.lease().is_none());
    let waiter = tokio::spawn({
        let d = d.clone();
        async move { matches!(d.wait_for_slot().await, Freed::Lease(_)) }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    drop(a);
    assert!(waiter.await.unwrap(), "the waiter did not get the slot");
    assert_eq!((x.in_flight(), d.in_flight()), (0, 0));
}

/// A 429 lowers the limit; the lease's outcome reaches the limiter.
#[tokio::test(start_paused = true)]
async fn an_overloaded_attempt_lowers_the_limit() {
    let d = deployment(0, &ConcurrencyConfig::default());
    assert_eq!(d.concurrency_limit(), Some(20));
    let mut lease = d.lease().unwrap();
    lease.overloaded();
    lease.finish(Outcome::failure(Duration::from_millis(5)));
    assert_eq!(d.concurrency_limit(), Some(18));
    assert_eq!(d.snapshot().concurrency_limit, Some(18));
}
