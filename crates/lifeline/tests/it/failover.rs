//! Failover over real sockets: a refused, reset, hung, slow or erroring
//! provider costs the client nothing while another deployment can answer.

use std::time::Duration;

use futures::future::join_all;
use lifeline_mock::Faults;
use tokio::time::Instant;

use crate::fo_support::{
    admin_deployment, attempts, breaker, cfg, chat_requests, dep, deployment, eventually, failing,
    layout,
};
use crate::harness::{mocks, Env};

/// Health settings that never open a breaker, for tests about single attempts.
const NO_BREAKER: &[(&str, &str)] = &[
    ("consecutive_failures", "100000"),
    ("min_requests", "100000"),
];

#[tokio::test]
async fn refused_provider_fails_over_and_its_breaker_opens() {
    // One tier: whichever deployment is picked first, the client gets a 200.
    let m = mocks(2).await;
    m[0].kill();
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0, 1]])), m).await;
    for _ in 0..5 {
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
    }
    env.stop().await;

    // p0 first in its own tier: every request tries it, fails over to p1,
    // until the consecutive failures open p0's breaker; then p0 is skipped.
    let m = mocks(2).await;
    m[0].kill();
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0], &[1]])), m).await;
    let mut sent = 0;
    while breaker(&env, &dep(0)).await != "open" {
        assert!(
            sent < 20,
            "p0's breaker still not open after {sent} requests"
        );
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
        assert_eq!(attempts(&h), 2);
        sent += 1;
    }
    let (status, h, _) = env.chat(false).await;
    assert_eq!(status, 200);
    assert_eq!(attempts(&h), 1, "an open breaker must not cost an attempt");
    env.stop().await;
}

#[tokio::test]
async fn reset_before_headers_is_retried_in_its_tier_then_on_the_next() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        reset: true,
        ..Faults::default()
    });
    let env = Env::boot(&cfg(&m, &[], NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    for stream in [false, true] {
        let (status, h, body) = env.chat(stream).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
        // A reset is transient: p0 is tried again (after a backoff) before
        // the request descends to tier 2.
        assert_eq!(attempts(&h), 3);
        if stream {
            assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
        }
    }
    assert_eq!(
        env.mocks[0].stats().requests,
        4,
        "each request tried p0 twice"
    );
    env.stop().await;
}

#[tokio::test]
async fn hung_provider_is_abandoned_after_the_first_byte_timeout() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let server = [("first_byte_timeout_ms", "300")];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    for stream in [false, true] {
        let t = Instant::now();
        let (status, h, body) = env.chat(stream).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
        assert_eq!(attempts(&h), 2);
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }
    // The abandoned upstream requests were really closed, not left hanging.
    let p0 = &env.mocks[0];
    eventually(
        "the hung mock sees its requests cancelled",
        Duration::from_secs(5),
        || async { p0.stats().cancelled >= 2 && p0.stats().in_flight == 0 },
    )
    .await;
    env.stop().await;
}

#[tokio::test]
async fn balancing_prefers_the_fast_deployment() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0, 1]])), m).await;
    // Warm-up, a few at a time so that both deployments get measured.
    for _ in 0..3 {
        let round = join_all((0..4).map(|_| env.chat(false))).await;
        assert!(round.iter().all(|(s, _, _)| *s == 200));
    }
    let mut fast = 0;
    for _ in 0..60 {
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        if deployment(&h) == dep(1) {
            fast += 1;
        }
    }
    let slow = admin_deployment(&env, &dep(0)).await;
    assert!(
        fast >= 42,
        "only {fast}/60 on the fast deployment; slow one: {slow}"
    );
    env.stop().await;
}

#[tokio::test]
async fn balancing_finds_the_fast_deployment_under_sequential_traffic() {
    // Same as above, without a concurrent warm-up: one client, one request at
    // a time, from the start. The fast deployment must still win.
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0, 1]])), m).await;
    let mut fast = 0;
    for _ in 0..60 {
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        if deployment(&h) == dep(1) {
            fast += 1;
        }
    }
    assert!(fast >= 42, "only {fast}/60 on the fast deployment");
    env.stop().await;
}

#[tokio::test]
async fn retryable_statuses_fail_over() {
    // Tier 1 first gets a second chance (a 5xx is transient); with
    // `tier_wait_ms = 0` the request descends at once.
    for (tier_wait, tries) in [("3000", 2), ("0", 1)] {
        let m = mocks(2).await;
        let server = [("tier_wait_ms", tier_wait)];
        let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
        for status in [500, 502, 503, 504, 408] {
            env.mocks[0].set_faults(failing(status));
            let (got, h, body) = env.chat(false).await;
            assert_eq!(got, 200, "upstream {status}: {body}");
            assert_eq!(deployment(&h), dep(1), "upstream {status}");
            assert_eq!(attempts(&h), tries + 1, "upstream {status}");
        }
        assert_eq!(chat_requests(&env.mocks[0]), 5 * u64::from(tries));
        env.stop().await;
    }
}

#[tokio::test]
async fn rate_limited_deployment_is_skipped_until_retry_after() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: Some(30),
        ..Faults::default()
    });
    let env = Env::boot(&cfg(&m, &[], NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    let (status, h, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2));
    for _ in 0..20 {
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((deployment(&h), attempts(&h)), (dep(1), 1));
    }
    assert_eq!(
        env.mocks[0].stats().requests,
        1,
        "p0 called during its Retry-After"
    );
    let p0 = admin_deployment(&env, &dep(0)).await;
    assert!(p0["retry_after_ms"].as_u64().unwrap_or(0) > 20_000, "{p0}");
    env.stop().await;

    // Without Retry-After: still retried elsewhere.
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let env = Env::boot(&cfg(&m, &[], NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    for _ in 0..3 {
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(1));
    }
    assert!(chat_requests(&env.mocks[0]) >= 1);
    env.stop().await;
}

#[tokio::test]
async fn killing_a_provider_under_load_fails_no_request() {
    let m = mocks(3).await;
    for mock in &m {
        // Enough latency that requests are in flight when the kill lands.
        mock.set_faults(Faults {
            latency_ms: 30,
            ..Faults::default()
        });
    }
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0, 1, 2]])), m).await;
    let end = Instant::now() + Duration::from_secs(3);
    let client = |_| {
        let env = &env;
        async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while Instant::now() < end {
                let (status, _, body) = env.chat(false).await;
                if status == 200 {
                    ok += 1;
                } else {
                    failed.push(format!("{status}: {body}"));
                }
            }
            (ok, failed)
        }
    };
    let killer = async {
        // A second into the run, kill a provider with requests in flight.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let give_up = Instant::now() + Duration::from_secs(1);
        loop {
            let busiest = (0..3)
                .max_by_key(|i| env.mocks[*i].stats().in_flight)
                .unwrap();
            let in_flight = env.mocks[busiest].stats().in_flight;
            if in_flight > 0 || Instant::now() > give_up {
                env.mocks[busiest].kill();
                return (busiest, in_flight);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (results, (victim, in_flight)) = tokio::join!(join_all((0..16).map(client)), killer);
    let ok: u32 = results.iter().map(|r| r.0).sum();
    let failed: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests in 3 s");
    assert!(
        in_flight > 0,
        "kill of p{victim} found nothing in flight; the test proves less"
    );
    env.stop().await;
}
