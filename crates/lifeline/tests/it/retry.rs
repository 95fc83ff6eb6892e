//! Retry limits, over real sockets: client errors are never retried, the
//! retry budget stops a retry storm, and the end-to-end deadline holds.

use std::time::Duration;

use futures::stream::{self, StreamExt};
use lifeline_mock::Faults;
use tokio::time::Instant;

use crate::fo_support::{attempts, breaker, cfg, chat_requests, dep, layout, metrics};
use crate::harness::{error_code, mocks, Env};

#[tokio::test]
async fn client_errors_are_returned_as_given_and_not_retried() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0], &[1]])), m).await;
    // (A context-window refusal moves to another upstream model instead:
    // tiers.rs.)
    let cases = [
        (400, None),
        (400, Some("content_policy_violation")),
        (404, None),
        (422, None),
    ];
    for (status, code) in cases {
        env.mocks[0].set_faults(Faults {
            error_rate: 1.0,
            error_status: status,
            error_code: code.map(str::to_string),
            ..Faults::default()
        });
        let (got, h, body) = env.chat(false).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(attempts(&h), 1);
        let got_code = error_code(&body);
        if let Some(code) = code {
            assert_eq!(got_code, code, "{body}");
        }
    }
    assert_eq!(chat_requests(&env.mocks[0]), 4);
    assert_eq!(
        chat_requests(&env.mocks[1]),
        0,
        "a client error was retried"
    );
    assert_eq!(
        breaker(&env, &dep(0)).await,
        "closed",
        "client errors are not the deployment's fault"
    );
    env.stop().await;
}

#[tokio::test]
async fn retry_budget_stops_a_retry_storm() {
    let m = mocks(2).await;
    for mock in &m {
        mock.set_faults(Faults {
            error_rate: 1.0,
            error_status: 500,
            ..Faults::default()
        });
    }
    let server = [
        ("max_attempts", "4"),
        ("retry_budget_ratio", "0.2"),
        ("retry_budget_min_per_sec", "1"),
    ];
    let health = [
        ("consecutive_failures", "100000"),
        ("min_requests", "100000"),
    ];
    let env = Env::boot(&cfg(&m, &server, &health, &layout(&[&[0, 1]])), m).await;
    const REQUESTS: u64 = 200;
    let answers: Vec<(u16, String)> = stream::iter(0..REQUESTS)
        .map(|_| async {
            let (status, h, body) = env.chat(false).await;
            let should_retry = h
                .get("x-should-retry")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(should_retry.as_deref(), Some("false"), "{body}");
            (status, body)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        answers.iter().all(|(s, _)| *s == 503),
        "{:?}",
        &answers[..3]
    );
    let upstream = chat_requests(&env.mocks[0]) + chat_requests(&env.mocks[1]);
    // ratio × requests, plus the floor (1/s) over the budget's 10 s window.
    let bound = REQUESTS + REQUESTS / 5 + 10;
    assert!(upstream >= REQUESTS, "{upstream}");
    assert!(
        upstream <= bound,
        "{upstream} upstream requests for {REQUESTS}; budget allows {bound}"
    );
    let text = metrics(&env).await;
    let refusals: f64 = text
        .lines()
        .filter(|l| l.starts_with("lifeline_retry_budget_refusals_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(refusals > 0.0, "no budget refusals in /metrics:\n{text}");
    env.stop().await;
}

#[tokio::test]
async fn request_deadline_bounds_all_attempts() {
    let m = mocks(2).await;
    for mock in &m {
        mock.set_faults(Faults {
            hang: true,
            ..Faults::default()
        });
    }
    let server = [
        ("request_timeout_ms", "800"),
        ("first_byte_timeout_ms", "5000"),
    ];
    let env = Env::boot(&cfg(&m, &server, &[], &layout(&[&[0, 1]])), m).await;
    for stream in [false, true] {
        let t = Instant::now();
        let (status, h, body) = env.chat(stream).await;
        let took = t.elapsed();
        assert_eq!(status, 504, "{body}");
        assert_eq!(error_code(&body), "deadline_exceeded");
        assert_eq!(h["x-should-retry"], "false");
        assert!(took >= Duration::from_millis(700), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    env.stop().await;
}
