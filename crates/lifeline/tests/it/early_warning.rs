//! Early warning: a deployment whose latency (or time to first token)
//! climbs is demoted, and gets less traffic, before its first failed
//! request; its traffic returns once it is back in its band; a noisy but
//! stable provider is never demoted.
//!
//! Two simulated providers behind one tier, steady clients, the gateway's
//! health feed watched; p0's faults change at run time. Windows of 200 ms
//! (`early_warning_window_ms`) keep the tests short; every bound is loose
//! against the timings of a loaded machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_core::gateway::{FeedItem, HealthFeed};
use lifeline_core::health::{Change, HealthEvent};
use lifeline_mock::Faults;
use tokio::time::Instant;

use crate::harness::{config, mocks, one_tier, Env};

/// The failure threshold: an attempt without its first content by then fails.
const TIMEOUT_MS: u64 = 2000;
/// Both providers' normal latency.
const BASE_MS: u64 = 100;

async fn boot(early_warning: bool) -> Env {
    let m = mocks(2).await;
    for mock in &m {
        mock.set_faults(slow(BASE_MS, 0));
    }
    let server = format!(
        "first_byte_timeout_ms = {TIMEOUT_MS}\nadaptive_timeouts = false\nmax_attempts = 1"
    );
    let health = format!(
        "[health]\nearly_warning = {early_warning}\nearly_warning_window_ms = 200\nearly_warning_min_samples = 5\n"
    );
    let toml = config(&m, &server, &one_tier(&m)).replace("[health]\n", &health);
    Env::boot(&toml, m).await
}

fn slow(latency_ms: u64, first_token_delay_ms: u64) -> Faults {
    Faults {
        latency_ms,
        first_token_delay_ms,
        ..Faults::default()
    }
}

/// One answered request: when, by which deployment, with what status.
type Served = (Instant, String, u16);

/// Clients sending one request after another until stopped.
struct Load {
    served: Arc<Mutex<Vec<Served>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(env: &Env, clients: usize, stream: bool) -> Load {
        let served = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let url = env.url("/v1/chat/completions");
        let body = format!(
            "{{\"model\":\"m\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"
        );
        let tasks = (0..clients)
            .map(|_| {
                let (served, stop, client) = (served.clone(), stop.clone(), env.client.clone());
                let (url, body) = (url.clone(), body.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await
                            .unwrap();
                        let status = resp.status().as_u16();
                        let dep = resp
                            .headers()
                            .get("x-lifeline-deployment")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string();
                        let _ = resp.bytes().await;
                        served.lock().unwrap().push((Instant::now(), dep, status));
                    }
                })
            })
            .collect();
        Load {
            served,
            stop,
            tasks,
        }
    }

    /// p0's share of the requests answered since `since`, and how many.
    fn p0_share(&self, since: Instant) -> (f64, usize) {
        let served = self.served.lock().unwrap();
        let recent: Vec<&Served> = served.iter().filter(|s| s.0 >= since).collect();
        let p0 = recent.iter().filter(|s| s.1 == "p0/up-0").count();
        (p0 as f64 / recent.len().max(1) as f64, recent.len())
    }

    fn failures(&self) -> Vec<Served> {
        let served = self.served.lock().unwrap();
        served.iter().filter(|s| s.2 != 200).cloned().collect()
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// The health feed's early-warning events, collected as they come.
fn watch(mut feed: HealthFeed) -> Arc<Mutex<Vec<HealthEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(item) = feed.next().await {
            if let FeedItem::Event(e) = item {
                if matches!(e.change, Change::EarlyWarning { .. }) {
                    sink.lock().unwrap().push(e);
                }
            }
        }
    });
    events
}

/// Waits (up to `limit`) for an early-warning event of p0 that says
/// `demoted`, doing `meanwhile` every 250 ms while none has come.
async fn until_event(
    events: &Mutex<Vec<HealthEvent>>,
    demoted: bool,
    limit: Duration,
    mut meanwhile: impl FnMut(),
) -> HealthEvent {
    let end = Instant::now() + limit;
    loop {
        let found = events.lock().unwrap().iter().find_map(|e| match &e.change {
            Change::EarlyWarning { demoted: d, .. }
                if *d == demoted && &*e.deployment == "p0/up-0" =>
            {
                Some(e.clone())
            }
            _ => None,
        });
        if let Some(e) = found {
            return e;
        }
        assert!(
            Instant::now() < end,
            "no early-warning event (demoted = {demoted}) within {limit:?}"
        );
        meanwhile();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn metrics(env: &Env) -> String {
    env.client
        .get(env.admin_url("/metrics"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// p0's attempts by outcome other than success, from `/metrics`.
async fn p0_failed_attempts(env: &Env) -> Vec<String> {
    metrics(env)
        .await
        .lines()
        .filter(|l| {
            l.starts_with("lifeline_attempts_total{")
                && l.contains("deployment=\"p0/up-0\"")
                && !l.contains("outcome=\"success\"")
        })
        .map(str::to_string)
        .collect()
}

async fn p0_factor(env: &Env) -> f64 {
    let v: serde_json::Value = serde_json::from_str(
        &env.client
            .get(env.admin_url("/admin/deployments"))
            .bearer_auth("admin-secret")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    v["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "p0/up-0")
        .unwrap()["early_warning_factor"]
        .as_f64()
        .unwrap()
}

/// p0's latency (whole answers, or time to first token) climbs by 8 % every
/// 250 ms from 100 ms towards the 2 s timeout, until it is demoted; returns
/// the demotion event and the latency p0 had reached.
async fn climb_until_demoted(
    env: &Env,
    events: &Mutex<Vec<HealthEvent>>,
    stream: bool,
) -> (HealthEvent, u64) {
    let mut ms = BASE_MS as f64;
    let p0 = &env.mocks[0];
    let event = until_event(events, true, Duration::from_secs(40), || {
        ms = (ms * 1.08).min(TIMEOUT_MS as f64 * 0.9);
        let ms = ms as u64;
        p0.set_faults(if stream { slow(0, ms) } else { slow(ms, 0) });
    })
    .await;
    (event, ms as u64)
}

#[tokio::test]
async fn a_provider_whose_latency_climbs_is_demoted_before_it_fails_and_gets_traffic_back() {
    let env = boot(true).await;
    let events = watch(env.gw.subscribe());
    let load = Load::start(&env, 8, false);
    // Both providers learn their normal band.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (before, n) = load.p0_share(Instant::now() - Duration::from_secs(4));
    assert!(n > 100 && before > 0.25, "p0's share {before:.2} of {n}");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|e| &*e.deployment != "p0/up-0"),
        "{events:?}"
    );

    let (event, reached) = climb_until_demoted(&env, &events, false).await;
    // Demoted long before the timeout, and before any request failed.
    assert!(reached < TIMEOUT_MS / 3, "demoted only at {reached} ms");
    assert!(load.failures().is_empty(), "{:?}", load.failures());
    assert!(
        p0_failed_attempts(&env).await.is_empty(),
        "{:?}",
        p0_failed_attempts(&env).await
    );
    assert_eq!(&*event.deployment, "p0/up-0");
    let Change::EarlyWarning { signal, reason, .. } = &event.change else {
        unreachable!()
    };
    assert_eq!(*signal, "latency");
    assert!(reason.contains("baseline"), "{reason}");
    // The health feed's snapshot carries the demotion too.
    match env.gw.subscribe().next().await {
        Some(FeedItem::Snapshot(s)) => {
            let p0 = s.deployments.iter().find(|d| &*d.id == "p0/up-0").unwrap();
            assert!(p0.demoted, "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    // Still at that latency: p0's share of the traffic falls, still
    // without a failure.
    let demoted_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (demoted_share, n) = load.p0_share(demoted_at);
    assert!(
        demoted_share < before / 2.0,
        "p0's share {demoted_share:.2} of {n} while demoted, {before:.2} before"
    );
    assert!(load.failures().is_empty(), "{:?}", load.failures());
    let m = metrics(&env).await;
    assert!(
        m.contains(
            "lifeline_early_warning_demotions_total{deployment=\"p0/up-0\",signal=\"latency\"} 1"
        ),
        "{m}"
    );
    assert!(!m.contains("lifeline_early_warning_factor{deployment=\"p0/up-0\"} 1"));
    assert!(m.contains("lifeline_early_warning_factor{deployment=\"p1/up-1\"} 1"));

    // Recovered: promoted back, and its traffic returns.
    env.mocks[0].set_faults(slow(BASE_MS, 0));
    let promoted = until_event(&events, false, Duration::from_secs(30), || {}).await;
    assert_eq!(&*promoted.deployment, "p0/up-0");
    assert_eq!(p0_factor(&env).await, 1.0);
    // Its traffic returns as the balancer's latency estimate of it decays.
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (after, n) = load.p0_share(back);
    assert!(after > 0.15, "p0's share {after:.2} of {n} after promotion");
    assert!(load.failures().is_empty(), "{:?}", load.failures());
    load.stop().await;
    assert!(p0_demoted_then_promoted(&events), "{events:?}");
    env.stop().await;
}

/// Whether p0's early-warning events began with its demotion, then its
/// promotion. (p1's are not looked at: on a loaded machine a steady
/// provider's latency can move with the gateway's own.)
fn p0_demoted_then_promoted(events: &Mutex<Vec<HealthEvent>>) -> bool {
    let events = events.lock().unwrap();
    let p0: Vec<bool> = events
        .iter()
        .filter(|e| &*e.deployment == "p0/up-0")
        .filter_map(|e| match e.change {
            Change::EarlyWarning { demoted, .. } => Some(demoted),
            _ => None,
        })
        .collect();
    p0.starts_with(&[true, false])
}

#[tokio::test]
async fn a_provider_whose_first_token_climbs_is_demoted_before_its_first_timeout() {
    let env = boot(true).await;
    let events = watch(env.gw.subscribe());
    let load = Load::start(&env, 8, true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (event, reached) = climb_until_demoted(&env, &events, true).await;
    assert!(reached < TIMEOUT_MS / 3, "demoted only at {reached} ms");
    assert!(load.failures().is_empty(), "{:?}", load.failures());
    assert!(p0_failed_attempts(&env).await.is_empty());
    let Change::EarlyWarning { signal, .. } = &event.change else {
        unreachable!()
    };
    assert_eq!(*signal, "first_token");
    load.stop().await;
    env.stop().await;
}

#[tokio::test]
async fn without_early_warning_the_same_climb_demotes_nothing() {
    // The control: early warning off, p0 climbs to the same point the
    // tests above are demoted at, and nothing is published or moved.
    let env = boot(false).await;
    let events = watch(env.gw.subscribe());
    let load = Load::start(&env, 8, false);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut ms = BASE_MS as f64;
    while ms < (TIMEOUT_MS / 3) as f64 {
        ms *= 1.08;
        env.mocks[0].set_faults(slow(ms as u64, 0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(events.lock().unwrap().is_empty());
    assert_eq!(p0_factor(&env).await, 1.0);
    load.stop().await;
    env.stop().await;
}

#[tokio::test]
async fn a_noisy_but_stable_provider_is_not_demoted() {
    let env = boot(true).await;
    let events = watch(env.gw.subscribe());
    let load = Load::start(&env, 8, false);
    // p0 answers anywhere between 50 and 200 ms, changing every 50 ms,
    // for 25 s (about 125 windows); p1 stays steady.
    let mut rng = fastrand::Rng::with_seed(12);
    let end = Instant::now() + Duration::from_secs(25);
    while Instant::now() < end {
        env.mocks[0].set_faults(slow(rng.u64(50..=200), 0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (share, n) = load.p0_share(end - Duration::from_secs(10));
    load.stop().await;
    let p0_events: Vec<HealthEvent> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| &*e.deployment == "p0/up-0")
        .cloned()
        .collect();
    assert!(p0_events.is_empty(), "a false alarm: {p0_events:?}");
    assert_eq!(p0_factor(&env).await, 1.0);
    // It kept its share (the balancer's latency weighting aside).
    assert!(share > 0.15, "p0's share {share:.2} of {n}");
    env.stop().await;
}
