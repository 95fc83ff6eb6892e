//! Adaptive deadlines over real sockets: a deployment that is normally fast
//! and falls silent is abandoned at a multiple of its own recent p99, not
//! at the configured timeout; streaming and non-streaming are tracked apart;
//! and only successful answers show that a deployment is working.

use std::time::Duration;

use futures::future::join_all;
use lifeline_mock::{Faults, MockConfig};
use tokio::time::Instant;

use crate::fo_support::{attempts, cfg, dep, deployment, layout, metrics};
use crate::harness::{mocks, Env};

/// Health settings that never open a breaker.
const NO_BREAKER: &[(&str, &str)] = &[
    ("consecutive_failures", "100000"),
    ("min_requests", "100000"),
];

fn hang() -> Faults {
    Faults {
        hang: true,
        ..Faults::default()
    }
}

fn chat_body(model: &str, stream: bool) -> String {
    format!("{{\"model\":\"{model}\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}")
}

/// Sends one request for `model`; returns how long it took, after checking
/// that tier 2 (p1) answered it after one failed attempt on p0.
async fn rescued(env: &Env, model: &str, stream: bool) -> Duration {
    let t = Instant::now();
    let (status, h, body) = env
        .post("/v1/chat/completions", &chat_body(model, stream))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{body}");
    t.elapsed()
}

/// `n` requests for `model` answered by p0.
async fn warm(env: &Env, model: &str, stream: bool, n: usize) {
    let body = chat_body(model, stream);
    let answers = join_all((0..n).map(|_| env.post("/v1/chat/completions", &body))).await;
    for (status, h, body) in answers {
        assert_eq!((status, deployment(&h)), (200, dep(0)), "{body}");
    }
}

#[tokio::test]
async fn a_normally_fast_deployment_that_falls_silent_is_left_in_seconds() {
    let m = mocks(2).await;
    let tiers = "tiers = [ [ { provider = \"p0\", model = \"up-0\" } ], [ { provider = \"p1\", model = \"up-1\" } ] ]";
    // Two models over the same deployments: `m` with adaptive deadlines (the
    // default), `fixed` without.
    let models = format!(
        "[[models]]\nname = \"m\"\n{tiers}\n[[models]]\nname = \"fixed\"\nadaptive_timeouts = false\n{tiers}\n"
    );
    let server = [
        ("first_byte_timeout_ms", "2500"),
        ("adaptive_timeout_floor_ms", "500"),
        ("tier_wait_ms", "0"), // Bursts of 20 must all reach tier 1: its in-flight limit, lowered
        // by the timeouts this test provokes, would spill some to tier 2.
        ("adaptive_concurrency", "false"),
    ];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &models), m).await;
    let configured = Duration::from_millis(2400);

    // Too few samples yet: the configured timeout applies.
    warm(&env, "m", false, 10).await;
    env.mocks[0].set_faults(hang());
    let took = rescued(&env, "m", false).await;
    assert!(took >= configured, "adaptive before 20 samples: {took:?}");

    // Enough samples of a fast deployment: 3 × p99 is below the floor.
    env.mocks[0].clear_faults();
    warm(&env, "m", false, 20).await;
    env.mocks[0].set_faults(hang());
    let took = rescued(&env, "m", false).await;
    assert!(
        took >= Duration::from_millis(450),
        "below the floor: {took:?}"
    );
    assert!(took < Duration::from_millis(2200), "not adaptive: {took:?}");

    // Off per model.
    let took = rescued(&env, "fixed", false).await;
    assert!(
        took >= configured,
        "adaptive_timeouts = false ignored: {took:?}"
    );

    // Streams are tracked apart: no stream has been measured yet.
    let took = rescued(&env, "m", true).await;
    assert!(
        took >= configured,
        "a stream used non-streaming samples: {took:?}"
    );

    let text = metrics(&env).await;
    let answer = format!(
        "lifeline_deployment_latency_p99_seconds{{deployment=\"{}\",kind=\"answer\"}}",
        dep(0)
    );
    assert!(text.contains(&answer), "no {answer} in\n{text}");
    assert!(
        !text.contains("kind=\"first_content\""),
        "a stream p99 without streams:\n{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_stream_that_stalls_before_content_is_left_at_its_adaptive_stall_timeout() {
    let m = mocks(2).await;
    // p0's first token takes 1.5 s; its tokens then come at once.
    m[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 1500,
        completion_tokens: 5,
        ..MockConfig::default()
    });
    let server = [
        ("first_byte_timeout_ms", "6000"),
        ("stream_idle_timeout_ms", "6000"),
        ("adaptive_timeout_floor_ms", "300"),
        ("tier_wait_ms", "0"), // Bursts of 20 must all reach tier 1: its in-flight limit, lowered
        // by the timeouts this test provokes, would spill some to tier 2.
        ("adaptive_concurrency", "false"),
    ];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    warm(&env, "m", true, 24).await;
    let text = metrics(&env).await;
    for kind in ["first_content", "stream_gap"] {
        let line = format!(
            "lifeline_deployment_latency_p99_seconds{{deployment=\"{}\",kind=\"{kind}\"}}",
            dep(0)
        );
        assert!(text.contains(&line), "no {line} in\n{text}");
    }
    // The role chunk comes after 1.5 s, then nothing. The first-content
    // deadline is about 4.5 s (3 × p99 of 1.5 s), the configured ones 6 s;
    // the stall timeout is the floor, 300 ms after the role chunk.
    env.mocks[0].set_faults(Faults {
        stall_after_chunks: Some(1),
        ..Faults::default()
    });
    let took = rescued(&env, "m", true).await;
    assert!(took >= Duration::from_millis(1200), "{took:?}");
    assert!(
        took < Duration::from_millis(5000),
        "stall not adaptive: {took:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_timeout_on_one_request_does_not_extend_anothers_wait() {
    // p0 is frozen. A starts, B a second later. When A's first-byte timeout
    // passes, p0 has answered nothing since A started: A fails over. That
    // failure is no sign that p0 works, so B fails over at its own
    // first-byte timeout too, instead of waiting another one.
    let m = mocks(2).await;
    m[0].set_faults(hang());
    let server = [
        ("first_byte_timeout_ms", "2000"),
        ("request_timeout_ms", "20000"),
        ("adaptive_timeouts", "false"),
    ];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    let a = rescued(&env, "m", false);
    let b = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rescued(&env, "m", false).await
    };
    let (a, b) = tokio::join!(a, b);
    assert!(a < Duration::from_millis(3800), "A: {a:?}");
    assert!(b >= Duration::from_millis(1900), "B: {b:?}");
    assert!(
        b < Duration::from_millis(3800),
        "B waited on a frozen server because A timed out: {b:?}"
    );
    env.stop().await;
}

/// The `answer` p99 of p0 in seconds, as exported.
async fn answer_p99(env: &Env) -> f64 {
    let text = metrics(env).await;
    let name = format!(
        "lifeline_deployment_latency_p99_seconds{{deployment=\"{}\",kind=\"answer\"}} ",
        dep(0)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line[name.len()..].trim().parse().unwrap()
}

#[tokio::test]
async fn a_timeout_after_a_working_extension_is_no_adaptive_cut() {
    // p0 alone, normally fast: its adaptive deadline is the floor, 300 ms.
    // Then one answer takes 5 s. At 300 ms nothing else can take the
    // request and p0 answers probes, so the wait goes on, and ends at the
    // request deadline (2 s). That is no cut at the adaptive deadline: the
    // 2 s waited must not become a sample of p0's answer latency (which
    // would lift its p99, and so its deadline, to the configured timeout).
    let m = mocks(1).await;
    let server = [
        ("first_byte_timeout_ms", "1500"),
        ("request_timeout_ms", "2000"),
        ("adaptive_timeout_floor_ms", "300"),
    ];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0]])), m).await;
    warm(&env, "m", false, 20).await;
    assert!(
        answer_p99(&env).await < 0.45,
        "not fast enough for an adaptive deadline"
    );
    env.mocks[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 5000,
        completion_tokens: 5,
        ..MockConfig::default()
    });
    let t = Instant::now();
    let (status, _, body) = env
        .post("/v1/chat/completions", &chat_body("m", false))
        .await;
    assert_eq!(status, 504, "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "not extended: {:?}",
        t.elapsed()
    );
    env.mocks[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 0,
        completion_tokens: 5,
        ..MockConfig::default()
    });
    // Eight more samples: the p99 is recomputed over all of them.
    warm(&env, "m", false, 8).await;
    let p99 = answer_p99(&env).await;
    assert!(p99 < 0.5, "the extended wait became a sample: p99 {p99} s");
    env.stop().await;
}
