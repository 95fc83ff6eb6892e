//! `max_concurrency`: a provider at its cap is not sent more, and requests
//! over the cap wait for a slot (within their deadline) instead of failing.

use std::time::Duration;

use lifeline_mock::Faults;
use tokio::time::Instant;

use crate::harness::{mocks, Env};

fn capped(base_url: &str, request_timeout_ms: u64) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\nrequest_timeout_ms = {request_timeout_ms}\n\n\
         [[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{base_url}\"\nmax_concurrency = 1\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n"
    )
}

#[tokio::test]
async fn requests_over_the_cap_wait_for_a_slot() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let env = Env::boot(&capped(&m[0].base_url(), 20_000), m).await;
    let t = Instant::now();
    let answers = futures::future::join_all((0..4).map(|_| env.chat(false))).await;
    for (status, headers, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(headers["x-lifeline-attempts"], "1");
    }
    // One at a time: four answers of 150 ms each take at least 600 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(550),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(env.mocks[0].stats().requests, 4);
    env.stop().await;
}

#[tokio::test]
async fn waiting_for_a_slot_is_bounded_by_the_deadline() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    // Model `long` may wait 5 s and holds the only slot for 1.5 s; model `m`
    // may wait 400 ms and never gets it.
    let toml = capped(&m[0].base_url(), 400)
        + "\n[[models]]\nname = \"long\"\nrequest_timeout_ms = 5000\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    let env = Env::boot(&toml, m).await;
    let long = env.post(
        "/v1/chat/completions",
        r#"{"model":"long","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let waiters = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        futures::future::join_all((0..2).map(|_| env.chat(false))).await
    };
    let ((status, _, body), answers) = tokio::join!(long, waiters);
    assert_eq!(status, 200, "{body}");
    for (status, headers, body) in answers {
        assert_eq!(status, 503, "{body}");
        // The wait happens in admission's queue (its limit follows the
        // deployment's, 1: `overloaded`), or at the deployment itself
        // (`at_capacity`); either way no attempt was made.
        let code = crate::harness::error_code(&body);
        assert!(
            matches!(code.as_str(), "overloaded" | "at_capacity"),
            "{body}"
        );
        assert!(headers.get("x-lifeline-attempts").is_none_or(|v| v == "0"));
        assert!(headers.contains_key("retry-after"));
    }
    assert_eq!(env.mocks[0].stats().requests, 1);
    env.stop().await;
}
