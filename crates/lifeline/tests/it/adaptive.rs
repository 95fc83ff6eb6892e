//! Adaptive concurrency per deployment, and the bounded wait at the cap.
//!
//! A provider that answers 429 past its capacity sees the gateway's
//! in-flight toward it settle near that capacity (its limit comes down, the
//! 429s become rare) while the requests still succeed; a flood at a model
//! whose deployments are all at their cap gets prompt 503s with
//! `Retry-After` beyond `capacity_waiters`, and the waiters are served as
//! slots free; a wait is bounded by `capacity_wait_ms`.

use std::time::Duration;

use lifeline_mock::{Faults, MockHandle};
use serde_json::Value;
use tokio::time::Instant;

use crate::harness::{error_code, mocks, Env};

/// One model `m` on `p0/up-0`, with `server` lines and `provider` lines.
/// Admission does not follow the deployments' limits here: these tests
/// look at the deployment layer itself, which admission's priority queue
/// would otherwise shield (`admission::the_admission_limit_follows_the_deployments`).
fn config(mock: &MockHandle, server: &str, provider: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nauth = \"none\"\n{server}\n\n\
         [admin]\ntoken = \"admin-secret\"\n\n\
         [health]\nfailure_rate = 1.0\nconsecutive_failures = 1000\nmin_requests = 1000\n\n\
         [[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n{provider}\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n\n\
         [admission]\nfollow_deployments = false\n",
        mock.base_url()
    )
}

/// `workers` clients each sending `each` requests one after another;
/// returns every status.
async fn flood(env: &Env, workers: usize, each: usize) -> Vec<u16> {
    let runs = (0..workers).map(|_| async {
        let mut statuses = Vec::with_capacity(each);
        for _ in 0..each {
            statuses.push(env.chat(false).await.0);
        }
        statuses
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn admin_get(env: &Env, path: &str) -> String {
    env.client
        .get(env.admin_url(path))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn limit_of(env: &Env) -> Option<u64> {
    let v: Value = serde_json::from_str(&admin_get(env, "/admin/deployments").await).unwrap();
    v["deployments"][0]["concurrency_limit"].as_u64()
}

#[tokio::test]
async fn a_provider_refusing_past_its_capacity_is_not_flooded() {
    let m = mocks(1).await;
    // Four at a time; a fifth concurrent request is answered 429.
    m[0].set_faults(Faults {
        capacity: Some(4),
        latency_ms: 50,
        ..Faults::default()
    });
    let server = "max_attempts = 6\nretry_budget_ratio = 1.0\nretry_budget_min_per_sec = 1000\nbackoff_base_ms = 10\nbackoff_max_ms = 50";
    let env = Env::boot(&config(&m[0], server, ""), m).await;
    assert_eq!(limit_of(&env).await, Some(20), "the initial limit");
    // 32 clients at once against a capacity of 4. The first round teaches
    // the gateway the provider's capacity.
    let warm = flood(&env, 32, 3).await;
    assert!(warm.iter().all(|s| *s == 200), "{warm:?}");
    let before = env.mocks[0].stats();
    let statuses = flood(&env, 32, 5).await;
    let after = env.mocks[0].stats();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let sent = after.requests - before.requests;
    let refused = after.over_capacity - before.over_capacity;
    // Unlimited, 32 concurrent requests against 4 slots: about 7 in 8 would
    // be 429s. Adapted, an occasional probe above the capacity.
    assert!(
        refused * 4 < sent,
        "{refused} of {sent} upstream requests were refused for capacity"
    );
    let limit = limit_of(&env).await.unwrap();
    assert!((2..=8).contains(&limit), "limit {limit}");
    let metrics = admin_get(&env, "/metrics").await;
    assert!(
        metrics.contains("lifeline_deployment_concurrency_limit{deployment=\"p0/up-0\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("lifeline_capacity_waits_total{model=\"m\"}"));
    env.stop().await;
}

#[tokio::test]
async fn without_adaptation_the_same_flood_is_mostly_refused_upstream() {
    // The control for the test above: the same flood, adaptive concurrency
    // off, no cap: most upstream requests are refused.
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        capacity: Some(4),
        latency_ms: 50,
        ..Faults::default()
    });
    let server =
        "adaptive_concurrency = false\nmax_attempts = 2\nbackoff_base_ms = 10\nbackoff_max_ms = 50";
    let env = Env::boot(&config(&m[0], server, ""), m).await;
    assert_eq!(limit_of(&env).await, None);
    flood(&env, 32, 2).await;
    let stats = env.mocks[0].stats();
    assert!(
        stats.over_capacity * 2 > stats.requests,
        "{} of {} refused",
        stats.over_capacity,
        stats.requests
    );
    env.stop().await;
}

#[tokio::test]
async fn a_flood_at_the_cap_is_refused_at_once_beyond_the_waiters() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        latency_ms: 3000,
        ..Faults::default()
    });
    let env = Env::boot(
        &config(&m[0], "capacity_waiters = 3", "max_concurrency = 2"),
        m,
    )
    .await;
    assert_eq!(limit_of(&env).await, Some(2));
    let t = Instant::now();
    let answers = futures::future::join_all((0..10).map(|_| async {
        let (status, headers, body) = env.chat(false).await;
        (status, headers, body, t.elapsed())
    }))
    .await;
    let mut served = 0;
    let mut refused = 0;
    for (status, headers, body, took) in &answers {
        match status {
            200 => served += 1,
            503 => {
                refused += 1;
                assert_eq!(error_code(body), "at_capacity");
                assert_eq!(headers["retry-after"], "1");
                assert_eq!(headers["x-lifeline-attempts"], "0");
                // At once, not after a wait: the first slot frees at 3 s.
                assert!(*took < Duration::from_secs(2), "refused after {took:?}");
            }
            _ => panic!("{status}: {body}"),
        }
    }
    // Two in flight, three waiting (served as slots free), five refused.
    assert_eq!((served, refused), (5, 5));
    let stats = env.mocks[0].stats();
    assert_eq!(stats.requests, 5);
    assert!(stats.peak_in_flight <= 2, "{}", stats.peak_in_flight);
    let metrics = admin_get(&env, "/metrics").await;
    for line in [
        "lifeline_capacity_waits_total{model=\"m\"} 3",
        "lifeline_capacity_refusals_total{model=\"m\",reason=\"waiters\"} 5",
        "lifeline_deployment_concurrency_limit{deployment=\"p0/up-0\"} 2",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    env.stop().await;
}

#[tokio::test]
async fn a_wait_at_the_cap_is_bounded_by_capacity_wait_ms() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        latency_ms: 4000,
        ..Faults::default()
    });
    let env = Env::boot(
        &config(
            &m[0],
            "capacity_wait_ms = 300\nrequest_timeout_ms = 30000",
            "max_concurrency = 1",
        ),
        m,
    )
    .await;
    // Two requests for one slot: whichever comes second waits 300 ms.
    let timed = || async {
        let t = Instant::now();
        let answer = env.chat(false).await;
        (answer, t.elapsed())
    };
    let (one, two) = tokio::join!(timed(), timed());
    let (mut statuses, mut refused) = (Vec::new(), None);
    for ((status, headers, body), took) in [one, two] {
        statuses.push(status);
        if status == 503 {
            assert_eq!(error_code(&body), "at_capacity");
            assert!(headers.contains_key("retry-after"));
            refused = Some(took);
        }
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503]);
    // Well before the slot frees (4 s) or the deadline (30 s).
    let took = refused.unwrap();
    assert!(took < Duration::from_secs(3), "{took:?}");
    let metrics = admin_get(&env, "/metrics").await;
    assert!(
        metrics.contains("lifeline_capacity_refusals_total{model=\"m\",reason=\"timeout\"} 1"),
        "{metrics}"
    );
    env.stop().await;
}
