//! Quota forecast: a provider whose traffic climbs towards its `rpm` is
//! warned about (metric, health event) and steered away from before it
//! answers a single 429, while the same climb without `rpm` runs into the
//! provider's quota.
//!
//! Two simulated providers serve model `m` in one tier: p0 (weight 9, the
//! preferred one) enforces a quota of 1 200 requests per minute over a
//! sliding 2 s window (`Faults::rpm_quota`), p1 (weight 1) has none. The
//! client's rate climbs from 6 to 30 requests a second over 8 s, then
//! holds 3 s: p0 alone would be at its quota (20 a second) two thirds of
//! the way up. Buckets of 500 ms and a horizon of 30 s make the minute
//! scale of the real thing run in seconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_core::gateway::{FeedItem, HealthFeed};
use lifeline_core::health::Change;
use lifeline_mock::{Faults, Stats};
use tokio::time::Instant;

use crate::harness::{config, mocks, Env};

const MODEL: &str = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" }, { provider = \"p1\", model = \"up-1\" } ] ]\n";

/// Boots the two providers and a gateway; `quota` is added to p0's
/// `[[providers]]` entry.
async fn boot(quota: &str) -> Env {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        rpm_quota: Some(1200),
        quota_window_ms: Some(3000),
        latency_ms: 60,
        ..Faults::default()
    });
    m[1].set_faults(Faults {
        latency_ms: 60,
        ..Faults::default()
    });
    let toml = config(&m, "", MODEL).replacen(
        "api_key = \"sk-upstream-0\"\n",
        &format!("api_key = \"sk-upstream-0\"\n{quota}"),
        1,
    );
    Env::boot(&toml, m).await
}

/// The client's rate `t` seconds in: 6 a second climbing by 3 a second
/// for 8 s, then 30 a second.
fn rate(t: f64) -> f64 {
    5.0 + 4.5 * t.min(10.0)
}

/// Sends the climbing traffic (open loop: each request at its time,
/// whatever the others do) and returns every answer's status.
async fn climb(env: &Env) -> Vec<u16> {
    let start = Instant::now();
    let mut t = 0.0;
    let mut tasks = Vec::new();
    while t < 12.0 {
        tokio::time::sleep_until(start + Duration::from_secs_f64(t)).await;
        let client = env.client.clone();
        let url = env.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        }));
        t += 1.0 / rate(t);
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap_or(0));
    }
    statuses
}

/// Every health event published so far on `feed` (after its snapshot).
async fn events(feed: &mut HealthFeed) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(50), feed.next()).await {
        if let FeedItem::Event(e) = item {
            out.push((e.deployment.to_string(), e.change));
        }
    }
    out
}

/// Samples p0's steering factor as `/metrics` shows it into `seen`, every
/// 100 ms, until aborted.
async fn sample_factors(client: reqwest::Client, url: String, seen: Arc<Mutex<Vec<f64>>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(resp) = client.get(&url).send().await else {
            continue;
        };
        let text = resp.text().await.unwrap_or_default();
        let factor = text
            .lines()
            .find_map(|l| l.strip_prefix("lifeline_provider_quota_factor{provider=\"p0\"} "))
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(f) = factor {
            seen.lock().unwrap().push(f);
        }
    }
}

fn describe(s: &Stats) -> String {
    format!(
        "requests {}, over quota {}, peak in flight {}",
        s.requests, s.over_quota, s.peak_in_flight
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_before_the_provider_answers_429() {
    let env = boot("rpm = 1200\nquota_horizon_ms = 30000\nquota_bucket_ms = 500\n").await;
    let mut feed = env.gw.subscribe();
    let factors = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample_factors(
        env.client.clone(),
        env.admin_url("/metrics"),
        factors.clone(),
    ));
    let statuses = climb(&env).await;
    sampler.abort();
    let (p0, p1) = (env.mocks[0].stats(), env.mocks[1].stats());
    let context = format!("p0: {}; p1: {}", describe(&p0), describe(&p1));
    let events = events(&mut feed).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Not one request reached p0 over its quota.
    assert_eq!(p0.over_quota, 0, "{context}");
    // Traffic moved: p1, a tenth of the weight, took a real share, and p0
    // still served close to its quota while the climb held.
    assert!(p1.requests * 5 >= p0.requests, "{context}");
    assert!(p0.requests >= 120, "{context}");
    // Warned: the counter, and an event for p0's deployment with its
    // forecast and the steering factor below 1.
    let metrics = crate::fo_support::metrics(&env).await;
    let warned = metrics.lines().any(|l| {
        l.starts_with("lifeline_provider_quota_warnings_total{")
            && l.contains("provider=\"p0\"")
            && !l.ends_with(" 0")
    });
    assert!(warned, "no warning counted in:\n{metrics}");
    assert!(
        metrics.contains("lifeline_provider_quota_factor{provider=\"p0\"}"),
        "{metrics}"
    );
    let warning = events.iter().find_map(|(dep, c)| match c {
        Change::Quota {
            warning: true,
            kind,
            quota,
            seconds_to_quota,
            ..
        } if dep == "p0/up-0" => Some((*kind, *quota, *seconds_to_quota)),
        _ => None,
    });
    let (kind, quota, forecast) =
        warning.unwrap_or_else(|| panic!("no quota warning event in {events:?}"));
    assert_eq!((kind, quota), ("requests", 1200));
    assert!(forecast.is_some_and(|s| s <= 30), "{events:?}");
    // The steering factor fell below 1 while the climb went on.
    let lowest = factors.lock().unwrap().iter().copied().fold(1.0, f64::min);
    assert!(lowest < 0.9, "the factor never fell: {lowest}; {context}");
    // p1 has no quota: nothing about it.
    assert!(
        !events
            .iter()
            .any(|(d, c)| d == "p1/up-1" && matches!(c, Change::Quota { .. })),
        "{events:?}"
    );
    env.stop().await;
}

/// The same climb without `rpm` on p0: the balancer keeps preferring it
/// and it answers 429s (the gateway retries them on p1): the test above
/// would fail without the forecast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quota_the_same_climb_runs_into_429s() {
    let env = boot("").await;
    let statuses = climb(&env).await;
    let p0 = env.mocks[0].stats();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(p0.over_quota >= 1, "p0: {}", describe(&p0));
    env.stop().await;
}
