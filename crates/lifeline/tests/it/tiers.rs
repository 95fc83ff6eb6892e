//! Tiers over real sockets: a lower tier is a degradation, not a free
//! alternative (a transient failure is retried in tier 1 first, a
//! persistent one descends at once), and a model's refusal (its context
//! window, or with opt-in its content policy) moves the request to another
//! upstream model.

use std::time::Duration;

use lifeline_mock::{Faults, MockConfig, MockHandle};
use tokio::time::Instant;

use crate::fo_support::{
    attempts, breaker, cfg, chat_requests, dep, deployment, failing, layout, metrics,
};
use crate::harness::{error_code, mocks, Env};

/// Health settings that never open a breaker.
const NO_BREAKER: &[(&str, &str)] = &[
    ("consecutive_failures", "100000"),
    ("min_requests", "100000"),
];

fn blip(faults: Faults) -> Faults {
    Faults {
        max_injected: Some(1),
        ..faults
    }
}

fn chat_body(model: &str, stream: bool, prompt: &str) -> String {
    format!("{{\"model\":\"{model}\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}\"}}]}}")
}

#[tokio::test]
async fn a_blip_in_tier_1_is_retried_there_not_answered_by_tier_2() {
    let m = mocks(2).await;
    // `m` waits in its tier (the default, 3 s); `eager` descends at once.
    let models = format!(
        "{}[[models]]\nname = \"eager\"\ntier_wait_ms = 0\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ], [ {{ provider = \"p1\", model = \"up-1\" }} ] ]\n",
        layout(&[&[0], &[1]])
    );
    let env = Env::boot(&cfg(&m, &[], NO_BREAKER, &models), m).await;
    let faults = [
        failing(500),
        failing(503),
        Faults {
            rate_limit_rate: 1.0,
            ..Faults::default()
        },
    ];
    for stream in [false, true] {
        for f in &faults {
            env.mocks[0].set_faults(blip(f.clone()));
            let (status, h, body) = env
                .post("/v1/chat/completions", &chat_body("m", stream, "hi"))
                .await;
            assert_eq!(status, 200, "{f:?}: {body}");
            assert_eq!(deployment(&h), dep(0), "{f:?}: answered by tier 2");
            assert_eq!(attempts(&h), 2, "{f:?}");
        }
    }
    assert_eq!(chat_requests(&env.mocks[1]), 0);
    // The old behaviour, per model: the first transient failure descends.
    env.mocks[0].set_faults(blip(failing(500)));
    let (status, h, body) = env
        .post("/v1/chat/completions", &chat_body("eager", false, "hi"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2));
    env.stop().await;
}

#[tokio::test]
async fn a_short_retry_after_is_waited_for_in_tier_1() {
    let m = mocks(2).await;
    m[0].set_faults(blip(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: Some(1),
        ..Faults::default()
    }));
    let env = Env::boot(&cfg(&m, &[], NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    let t = Instant::now();
    let (status, h, body) = env.chat(false).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(0), 2));
    assert!(
        took >= Duration::from_millis(900),
        "Retry-After not honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(chat_requests(&env.mocks[1]), 0);
    env.stop().await;
}

#[tokio::test]
async fn persistent_failures_descend_at_once() {
    // A Retry-After longer than tier_wait_ms, or one that would not fit
    // the deadline: tier 2 answers without the 2 s wait.
    for setting in [("tier_wait_ms", "1500"), ("request_timeout_ms", "1500")] {
        descends_without_waiting_out_retry_after(setting).await;
    }

    // The failure opens the breaker.
    let m = mocks(2).await;
    m[0].set_faults(failing(500));
    let health = [("consecutive_failures", "1")];
    let env = Env::boot(&cfg(&m, &[], &health, &layout(&[&[0], &[1]])), m).await;
    let (status, h, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2));
    assert_eq!(breaker(&env, &dep(0)).await, "open");
    env.stop().await;

    // Nothing listening, and silence past the first-byte timeout.
    for fault in ["kill", "hang"] {
        let m = mocks(2).await;
        if fault == "kill" {
            m[0].kill();
        } else {
            m[0].set_faults(Faults {
                hang: true,
                ..Faults::default()
            });
        }
        let server = [("first_byte_timeout_ms", "300")];
        let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
        let (status, h, body) = env.chat(false).await;
        assert_eq!(status, 200, "{fault}: {body}");
        assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{fault}");
        env.stop().await;
    }

    // The retry budget says no: no wait for a retry that will not be made.
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: Some(3),
        ..Faults::default()
    });
    let server = [
        ("retry_budget_ratio", "0"),
        ("retry_budget_min_per_sec", "0"),
    ];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    let t = Instant::now();
    let (status, _, body) = env.chat(false).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("retry budget"), "{body}");
    assert!(
        t.elapsed() < Duration::from_millis(1800),
        "{:?}",
        t.elapsed()
    );
    env.stop().await;
}

/// Tier 1 answers 429 with `Retry-After: 2` under `setting`: the request
/// goes to tier 2 at once instead of waiting the 2 s out.
async fn descends_without_waiting_out_retry_after(setting: (&str, &str)) {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: Some(2),
        ..Faults::default()
    });
    let env = Env::boot(&cfg(&m, &[setting], NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    let t = Instant::now();
    let (status, h, body) = env.chat(false).await;
    assert_eq!(status, 200, "{setting:?}: {body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{setting:?}");
    assert!(
        t.elapsed() < Duration::from_millis(1800),
        "{setting:?}: waited {:?}",
        t.elapsed()
    );
    env.stop().await;
}

/// Gives mock `i` a context window of `tokens` (the harness's fast settings).
fn window(mock: &MockHandle, i: usize, tokens: u32) {
    mock.set_config(MockConfig {
        name: format!("p{i}"),
        tokens_per_second: 0.0,
        ttft_ms: 0,
        completion_tokens: 5,
        context_window: Some(tokens),
        ..MockConfig::default()
    });
}

/// A prompt of about 300 tokens for the mocks (four bytes a token).
fn long_prompt() -> String {
    "x".repeat(1200)
}

#[tokio::test]
async fn context_length_exceeded_moves_to_another_model() {
    let m = mocks(2).await;
    window(&m[0], 0, 100);
    // Every retry is refused by the budget: the move to another model is
    // not a retry of the same request against a failing provider.
    let server = [
        ("retry_budget_ratio", "0"),
        ("retry_budget_min_per_sec", "0"),
    ];
    let env = Env::boot(&cfg(&m, &server, &[], &layout(&[&[0], &[1]])), m).await;
    for stream in [false, true] {
        // Seven times: more than `consecutive_failures`.
        for _ in 0..7 {
            let (status, h, body) = env
                .post(
                    "/v1/chat/completions",
                    &chat_body("m", stream, &long_prompt()),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2));
        }
    }
    // A refusal says nothing about the deployment's health.
    assert_eq!(breaker(&env, &dep(0)).await, "closed");
    let (status, h, _) = env.chat(false).await;
    assert_eq!(
        (status, deployment(&h)),
        (200, dep(0)),
        "short prompts stay"
    );
    let text = metrics(&env).await;
    let line = format!(
        "lifeline_attempts_total{{deployment=\"{}\",outcome=\"context_length\"}} 14",
        dep(0)
    );
    assert!(text.contains(&line), "no {line} in\n{text}");
    env.stop().await;
}

#[tokio::test]
async fn a_larger_configured_context_window_qualifies_in_the_same_tier() {
    // Tier 1: p0 (small window) and p2 (large); tier 2: p1, whose window is
    // too small as well. Whichever tier-1 deployment is picked first, the
    // answer must come from p2.
    let m = mocks(3).await;
    window(&m[0], 0, 100);
    window(&m[1], 1, 100);
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\", context_window = 100 }, { provider = \"p2\", model = \"up-2\", context_window = 100000 } ], [ { provider = \"p1\", model = \"up-1\", context_window = 100 } ] ]\n";
    let env = Env::boot(&cfg(&m, &[], &[], models), m).await;
    for _ in 0..10 {
        let (status, h, body) = env
            .post(
                "/v1/chat/completions",
                &chat_body("m", false, &long_prompt()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), dep(2), "{body}");
    }
    assert!(
        chat_requests(&env.mocks[0]) > 0,
        "p0 never picked: the test proves less"
    );
    assert_eq!(chat_requests(&env.mocks[1]), 0);
    env.stop().await;
}

#[tokio::test]
async fn the_providers_400_is_returned_as_it_was_when_no_model_is_left() {
    let m = mocks(3).await;
    for (i, mock) in m.iter().enumerate() {
        window(mock, i, 100);
    }
    // p0 and p1 serve the same upstream model: a refusal by one is final for
    // the other. p2 serves another model, in a later tier, and refuses too.
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"same\" } ], [ { provider = \"p1\", model = \"same\" } ], [ { provider = \"p2\", model = \"up-2\" } ] ]\n";
    let env = Env::boot(&cfg(&m, &[], &[], models), m).await;
    let (status, h, body) = env
        .post(
            "/v1/chat/completions",
            &chat_body("m", false, &long_prompt()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "context_length_exceeded");
    assert_eq!(attempts(&h), 2);
    assert_eq!(deployment(&h), "p2/up-2", "the last refusal");
    // The body is the provider's own, byte for byte.
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["param"], "messages");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("This model's maximum context length is 100 tokens."));
    assert_eq!(
        chat_requests(&env.mocks[1]),
        0,
        "the same model was asked twice"
    );
    env.stop().await;
}

#[tokio::test]
async fn content_policy_falls_back_only_when_the_model_opts_in() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 400,
        error_code: Some("content_policy_violation".into()),
        ..Faults::default()
    });
    let models = format!(
        "{}[[models]]\nname = \"fallback\"\ncontent_policy_fallback = true\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ], [ {{ provider = \"p1\", model = \"up-1\" }} ] ]\n",
        layout(&[&[0], &[1]])
    );
    let env = Env::boot(&cfg(&m, &[], &[], &models), m).await;
    let (status, h, body) = env.chat(false).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), "content_policy_violation");
    assert_eq!(attempts(&h), 1);
    let (status, h, body) = env
        .post("/v1/chat/completions", &chat_body("fallback", false, "hi"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2));
    assert_eq!(breaker(&env, &dep(0)).await, "closed");
    env.stop().await;
}

#[tokio::test]
async fn the_last_attempt_is_kept_for_the_fallback_tier() {
    // A provider-wide burst of 503s: p0 and p1 (tier 1) fail every request,
    // p2 (tier 2) is fine. With three attempts, holding in tier 1 after p1's
    // failure would spend the last one on a retry of p0 or p1; it goes to
    // p2 instead.
    let m = mocks(3).await;
    m[0].set_faults(failing(503));
    m[1].set_faults(failing(503));
    let server = [("max_attempts", "3")];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, &layout(&[&[0, 1], &[2]])), m).await;
    for stream in [false, true] {
        let (status, h, body) = env
            .post("/v1/chat/completions", &chat_body("m", stream, "hi"))
            .await;
        assert_eq!(status, 200, "stream {stream}: {body}");
        assert_eq!((deployment(&h), attempts(&h)), (dep(2), 3), "{stream}");
    }
    // Tier 1 still got its second chance: both of its deployments, once each.
    assert_eq!(chat_requests(&env.mocks[0]), 2);
    assert_eq!(chat_requests(&env.mocks[1]), 2);
    env.stop().await;
}

#[tokio::test]
async fn after_a_context_refusal_a_slow_answer_from_the_other_model_is_waited_for() {
    // Tier 1: p0 and p1, both upstream model `same`, with a small window;
    // tier 2: p2, another model, whose answer takes longer than the
    // first-byte timeout, and which answers nothing else meanwhile. After
    // the refusal p0 or p1 is untried but ruled out (same model), so p2 is
    // the only way to an answer: it answers probes, its answer is waited
    // for instead of being abandoned for a deployment that cannot take the
    // request.
    let m = mocks(3).await;
    window(&m[0], 0, 100);
    window(&m[1], 1, 100);
    m[2].set_config(MockConfig {
        name: "p2".into(),
        tokens_per_second: 0.0,
        ttft_ms: 1500,
        completion_tokens: 5,
        ..MockConfig::default()
    });
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"same\" }, { provider = \"p1\", model = \"same\" } ], [ { provider = \"p2\", model = \"up-2\" } ] ]\n";
    let server = [
        ("first_byte_timeout_ms", "1000"),
        ("request_timeout_ms", "10000"),
    ];
    let env = Env::boot(&cfg(&m, &server, NO_BREAKER, models), m).await;
    let (status, h, body) = env
        .post(
            "/v1/chat/completions",
            &chat_body("m", false, &long_prompt()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(2), 2), "{body}");
    assert_eq!(
        chat_requests(&env.mocks[0]) + chat_requests(&env.mocks[1]),
        1,
        "the same model was asked twice"
    );
    assert_eq!(chat_requests(&env.mocks[2]), 1, "p2's answer was abandoned");
    env.stop().await;
}

#[tokio::test]
async fn a_slow_retry_in_the_held_tier_is_abandoned_for_a_later_tier() {
    // p0, alone in tier 1, answers 503 once, then takes 30 s per answer
    // while its model list answers at once (inference stuck, server up).
    // The 503 holds the request in tier 1; the retry on p0 is silent past
    // the first-byte timeout, and p1 (tier 2) could take the request: the
    // retry is abandoned there, as any attempt would be, instead of being
    // waited for because p0 answers probes.
    let m = mocks(2).await;
    m[0].set_config(MockConfig {
        name: "p0".into(),
        tokens_per_second: 0.0,
        ttft_ms: 30_000,
        completion_tokens: 5,
        faults: blip(failing(503)),
        ..MockConfig::default()
    });
    let env = Env::boot(&cfg(&m, &[], NO_BREAKER, &layout(&[&[0], &[1]])), m).await;
    let t = Instant::now();
    let (status, h, body) = env
        .post("/v1/chat/completions", &chat_body("m", false, "hi"))
        .await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 3), "{body}");
    assert_eq!(chat_requests(&env.mocks[0]), 2, "no retry in tier 1");
    assert!(took < Duration::from_millis(3500), "waited on p0: {took:?}");
    env.stop().await;
}
