//! Circuit breakers, over real sockets: misconfigured deployments are opened
//! at once, a dead model answers a fast 503, a flapping provider is taken out
//! and brought back by probes, and an admin drain moves traffic away.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use crate::fo_support::{
    admin_post, attempts, breaker, cfg, chat_requests, dep, deployment, eventually, failing, layout,
};
use crate::harness::{error_code, mocks, Env};

#[tokio::test]
async fn unauthorized_and_forbidden_open_the_breaker_and_fail_over() {
    let m = mocks(3).await;
    m[0].set_faults(failing(401));
    m[1].set_faults(failing(403));
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0], &[1], &[2]])), m).await;
    let (status, h, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(2), 3));
    assert_eq!(breaker(&env, &dep(0)).await, "open");
    assert_eq!(breaker(&env, &dep(1)).await, "open");
    // Open: the next request goes straight to p2.
    let (status, h, _) = env.chat(false).await;
    assert_eq!((status, attempts(&h)), (200, 1));
    assert_eq!(chat_requests(&env.mocks[0]), 1);
    assert_eq!(chat_requests(&env.mocks[1]), 1);
    env.stop().await;
}

/// Checks the shape of a "nothing could answer" response.
fn assert_unavailable(status: u16, h: &reqwest::header::HeaderMap, body: &str) -> String {
    assert_eq!(status, 503, "{body}");
    let retry_after: u64 = h
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {h:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after <= 120, "Retry-After {retry_after}");
    error_code(body)
}

#[tokio::test]
async fn every_deployment_down_is_a_bounded_503() {
    let m = mocks(2).await;
    m[0].kill();
    m[1].kill();
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0, 1]])), m).await;
    for stream in [false, true] {
        let t = Instant::now();
        let (status, h, body) = env.chat(stream).await;
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_unavailable(status, &h, &body);
        assert_eq!(h["x-should-retry"], "false");
    }
    env.stop().await;
}

#[tokio::test]
async fn open_breakers_give_a_fast_503_without_calling_upstream() {
    let m = mocks(2).await;
    m[0].set_faults(failing(500));
    m[1].set_faults(failing(500));
    let health = [("consecutive_failures", "2")];
    let env = Env::boot(&cfg(&m, &[], &health, &layout(&[&[0, 1]])), m).await;
    let t = Instant::now();
    let (status, h, body) = env.chat(false).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_unavailable(status, &h, &body);
    assert_eq!(h["x-should-retry"], "false");
    let mut sent = 1;
    while breaker(&env, &dep(0)).await != "open" || breaker(&env, &dep(1)).await != "open" {
        assert!(sent < 10, "breakers not open after {sent} requests");
        let (status, h, body) = env.chat(false).await;
        assert_unavailable(status, &h, &body);
        sent += 1;
    }
    let seen = chat_requests(&env.mocks[0]) + chat_requests(&env.mocks[1]);
    for _ in 0..5 {
        let t = Instant::now();
        let (status, h, body) = env.chat(false).await;
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(
            assert_unavailable(status, &h, &body),
            "no_deployment_available"
        );
    }
    let after = chat_requests(&env.mocks[0]) + chat_requests(&env.mocks[1]);
    assert_eq!(after, seen, "open breakers let requests through");
    env.stop().await;
}

#[tokio::test]
async fn flapping_primary_is_opened_then_probed_back_into_service() {
    let m = mocks(2).await;
    m[0].set_faults(failing(500));
    let health = [("consecutive_failures", "3")];
    let env = Env::boot(&cfg(&m, &[], &health, &layout(&[&[0], &[1]])), m).await;
    let mut sent = 0;
    while breaker(&env, &dep(0)).await != "open" {
        assert!(sent < 10, "p0 not open after {sent} requests");
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
        sent += 1;
    }
    // Open: p1 serves alone, p0 is not even tried.
    for _ in 0..3 {
        let (status, h, _) = env.chat(false).await;
        assert_eq!((status, deployment(&h), attempts(&h)), (200, dep(1), 1));
    }
    env.mocks[0].clear_faults();
    // Cooldown, a successful probe (half-open), then trial requests close it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut states = Vec::new();
    loop {
        let state = breaker(&env, &dep(0)).await;
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == "closed" {
            break;
        }
        assert!(Instant::now() < deadline, "p0 not closed again: {states:?}");
        let (status, _, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(states, ["open", "half_open", "closed"]);
    for _ in 0..5 {
        let (status, h, _) = env.chat(false).await;
        assert_eq!((status, deployment(&h), attempts(&h)), (200, dep(0), 1));
    }
    env.stop().await;
}

#[tokio::test]
async fn drained_deployment_gets_no_new_requests_until_undrained() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0, 1]])), m).await;
    for _ in 0..3 {
        let round = join_all((0..4).map(|_| env.chat(false))).await;
        assert!(round.iter().all(|(s, _, _)| *s == 200));
    }
    let (status, body) = admin_post(&env, &format!("/admin/deployments/{}/drain", dep(0))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"drained\":true"), "{body}");
    let before = chat_requests(&env.mocks[0]);
    for _ in 0..20 {
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
    }
    assert_eq!(chat_requests(&env.mocks[0]), before);
    let (status, body) = admin_post(&env, &format!("/admin/deployments/{}/undrain", dep(0))).await;
    assert_eq!(status, 200, "{body}");
    let e = &env;
    eventually(
        "p0 serves again after undrain",
        Duration::from_secs(10),
        move || async move {
            let round = join_all((0..4).map(|_| e.chat(false))).await;
            round.iter().all(|(s, _, _)| *s == 200)
                && round.iter().any(|(_, h, _)| deployment(h) == dep(0))
        },
    )
    .await;
    env.stop().await;
}

/// `probe_completion = true`: the prober spends one token on the deployment's
/// own model instead of listing models, and that is what closes the breaker.
#[tokio::test]
async fn completion_probes_are_one_token_requests_for_the_deployment_model() {
    use crate::harness::config;
    use lifeline_mock::Faults;
    let m = mocks(2).await;
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ], [ { provider = \"p1\", model = \"up-1\" } ] ]\n";
    let toml = config(&m, "", models).replace(
        "[[providers]]\nname = \"p0\"\n",
        "[[providers]]\nname = \"p0\"\nprobe_completion = true\n",
    );
    assert!(toml.contains("probe_completion = true"));
    m[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 500,
        ..Faults::default()
    });
    let env = Env::boot(&toml, m).await;
    for _ in 0..6 {
        assert_eq!(env.chat(false).await.0, 200);
    }
    env.mocks[0].clear_faults();
    let p0 = env.mocks[0].clone();
    let probed = crate::streaming::eventually(Duration::from_secs(10), || {
        p0.stats().recent.iter().any(|r| {
            r.method == "POST"
                && r.path_and_query == "/v1/chat/completions"
                && r.body.contains("\"max_tokens\":1")
                && r.body.contains("\"up-0\"")
        })
    })
    .await;
    assert!(
        probed,
        "no one-token probe seen: {:?}",
        env.mocks[0].stats().recent
    );
    assert!(
        !env.mocks[0]
            .stats()
            .recent
            .iter()
            .any(|r| r.path_and_query.ends_with("/models")),
        "a completion-probed provider was sent model-list probes"
    );
    env.stop().await;
}

/// Breaker transitions are published to subscribers (`Gateway::subscribe`,
/// what the status page will build on): after the initial snapshot, a
/// failing deployment's closed → open, with its id, a reason and the time.
#[tokio::test]
async fn breaker_transitions_are_published_to_subscribers() {
    use crate::harness::config;
    use lifeline_core::gateway::FeedItem;
    use lifeline_core::health::BreakerState;
    use lifeline_mock::Faults;
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 500,
        ..Faults::default()
    });
    // p0 alone in tier 1, so it keeps being tried until its breaker opens.
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ], [ { provider = \"p1\", model = \"up-1\" } ] ]\n";
    let env = Env::boot(&config(&m, "", models), m).await;
    let mut events = env.gw.subscribe();
    match events.next().await {
        Some(FeedItem::Snapshot(s)) => assert_eq!(s.deployments.len(), 2, "{s:?}"),
        other => panic!("the feed did not start with a snapshot: {other:?}"),
    }
    let before = std::time::SystemTime::now();
    for _ in 0..12 {
        assert_eq!(env.chat(false).await.0, 200);
    }
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.next().await {
                Some(FeedItem::Event(e))
                    if e.breaker().is_some_and(|b| b.1 == BreakerState::Open) =>
                {
                    break e
                }
                Some(_) => continue,
                None => panic!("the feed ended"),
            }
        }
    })
    .await
    .expect("no transition to open was published");
    assert_eq!(&*event.deployment, "p0/up-0");
    let (from, _, reason) = event.breaker().unwrap();
    assert_eq!(from, BreakerState::Closed);
    assert!(
        reason.contains("consecutive failures") || reason.contains("failure rate"),
        "{reason}"
    );
    assert!(event.at >= before && event.at <= std::time::SystemTime::now());
    env.stop().await;
}
