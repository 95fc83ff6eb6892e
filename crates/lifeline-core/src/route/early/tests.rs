//! Early warning on a deployment, under paused time: samples through real
//! leases, windows closed by ticks, the factor, the event, the metrics.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Config, HealthConfig};
use crate::health::{Change, HealthBus, Outcome};
use crate::providers::Upstream;
use crate::route::Deployment;
use crate::telemetry::Metrics;

fn deployment(bus: &Arc<HealthBus>, metrics: &Arc<Metrics>) -> Arc<Deployment> {
    let text = "[[providers]]\nname = \"p\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p\", model = \"x\" } ] ]\n";
    let config = Config::parse(text, "<test>").unwrap();
    let up = Arc::new(Upstream::new(&config.providers[0], "http://127.0.0.1:9/v1".into()).unwrap());
    Arc::new(Deployment::new(
        up,
        "x",
        HealthConfig::default(),
        bus.clone(),
        metrics.clone(),
    ))
}

/// One second: 12 whole answers of `ms` each, then the prober's tick.
async fn second(dep: &Arc<Deployment>, ms: u64) {
    for _ in 0..12 {
        let lease = dep.lease().unwrap();
        lease.finish(Outcome::success(Duration::from_millis(ms)));
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    dep.early_warning_tick(Instant::now());
}

#[tokio::test(start_paused = true)]
async fn a_slowing_deployment_is_demoted_published_counted_and_promoted_back() {
    let bus = Arc::new(HealthBus::new(64));
    let metrics = Arc::new(Metrics::new());
    let dep = deployment(&bus, &metrics);
    let (mut rx, _) = bus.subscribe();
    for _ in 0..40 {
        second(&dep, 100).await;
    }
    assert_eq!(dep.early_warning_factor(), 1.0);
    assert!(rx.try_recv().is_err(), "nothing moved while steady");
    // Four times slower: demoted within a few windows, down to the floor.
    let mut demoted_after = None;
    for s in 0..15 {
        second(&dep, 400).await;
        if dep.demoted() && demoted_after.is_none() {
            demoted_after = Some(s);
        }
    }
    assert!(demoted_after.unwrap() <= 3, "{demoted_after:?}");
    assert!((dep.early_warning_factor() - 0.1).abs() < 1e-9);
    let e = rx.try_recv().unwrap();
    assert_eq!(&*e.deployment, "p/x");
    match &e.change {
        Change::EarlyWarning {
            demoted,
            signal,
            reason,
        } => {
            assert!(demoted);
            assert_eq!(*signal, "latency");
            assert!(reason.contains("baseline of 100 ms"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(rx.try_recv().is_err(), "one event for the whole demotion");
    assert!(dep.status().demoted);
    let snap = dep.snapshot();
    assert_eq!(snap.early_warning, Some("latency"));
    assert!((snap.early_warning_factor - 0.1).abs() < 1e-9);
    let text = metrics.encode();
    assert!(
        text.contains(
            "lifeline_early_warning_demotions_total{deployment=\"p/x\",signal=\"latency\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("lifeline_early_warning_factor{deployment=\"p/x\"} 0.1"));
    // Back to normal: promoted within a dozen windows.
    for _ in 0..12 {
        second(&dep, 100).await;
    }
    assert_eq!(dep.early_warning_factor(), 1.0);
    assert!(!dep.status().demoted);
    let e = rx.try_recv().unwrap();
    assert!(matches!(
        e.change,
        Change::EarlyWarning { demoted: false, .. }
    ));
    assert_eq!(dep.snapshot().early_warning, None);
    assert!(metrics
        .encode()
        .contains("lifeline_early_warning_factor{deployment=\"p/x\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn ticks_before_the_window_ends_judge_nothing() {
    let bus = Arc::new(HealthBus::new(64));
    let metrics = Arc::new(Metrics::new());
    let dep = deployment(&bus, &metrics);
    for _ in 0..40 {
        second(&dep, 100).await;
    }
    // Slow answers, but the ticks come every 100 ms and the tally is only
    // taken once a second: ten ticks, one window.
    for _ in 0..3 {
        for _ in 0..12 {
            let lease = dep.lease().unwrap();
            lease.finish(Outcome::success(Duration::from_millis(400)));
        }
        for _ in 0..9 {
            tokio::time::advance(Duration::from_millis(100)).await;
            dep.early_warning_tick(Instant::now());
        }
        assert!(!dep.demoted());
        tokio::time::advance(Duration::from_millis(100)).await;
        dep.early_warning_tick(Instant::now());
    }
    assert!(dep.demoted(), "three windows out of band");
}
