//! Hedged requests over real sockets: a slow attempt gets a second one on
//! another deployment once it has waited longer than its deployment's p95;
//! the first to commit wins and the other is cancelled; no hedge before the
//! p95 is known; the hedge budget caps them; streams are hedged before
//! their first content.

use std::time::Duration;

use futures::future::join_all;
use lifeline_mock::Faults;
use tokio::time::Instant;

use crate::fo_support::{
    attempts, cfg, chat_requests, dep, deployment, eventually, failing, metrics,
};
use crate::harness::{mocks, Env};

/// Timeouts far above the delays used here (adaptive ones too: a slow
/// attempt ends only when the hedge wins), a fixed in-flight limit (so
/// that bursts all go to tier 1), and breakers that never open.
const SERVER: &[(&str, &str)] = &[
    ("first_byte_timeout_ms", "20000"),
    ("stream_idle_timeout_ms", "20000"),
    ("request_timeout_ms", "30000"),
    ("adaptive_timeout_floor_ms", "15000"),
    ("adaptive_concurrency", "false"),
];
const HEALTH: &[(&str, &str)] = &[
    ("consecutive_failures", "100000"),
    ("min_requests", "100000"),
];

/// Model `m`, hedged with `percent`: tier 1 is p0, tier 2 is p1, so the
/// first attempt always goes to p0 and a hedge to p1.
fn model(percent: u32) -> String {
    format!(
        "[[models]]\nname = \"m\"\nhedge = true\nhedge_budget_percent = {percent}\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ], [ {{ provider = \"p1\", model = \"up-1\" }} ] ]\n"
    )
}

fn body(stream: bool) -> String {
    format!("{{\"model\":\"m\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}")
}

fn slow(latency_ms: u64) -> Faults {
    Faults {
        latency_ms,
        ..Faults::default()
    }
}

fn slow_first_token(ms: u64) -> Faults {
    Faults {
        first_token_delay_ms: ms,
        ..Faults::default()
    }
}

/// `n` concurrent requests, all answered by p0 with one attempt: samples
/// of p0's latency (taken together, none of them sees a p95 yet).
async fn warm(env: &Env, stream: bool, n: usize) {
    let b = body(stream);
    let answers = join_all((0..n).map(|_| env.post("/v1/chat/completions", &b))).await;
    for (status, h, text) in answers {
        assert_eq!(status, 200, "{text}");
        assert_eq!((deployment(&h), attempts(&h)), (dep(0), 1), "{text}");
    }
}

/// The value of `lifeline_hedges_total{model="m",outcome}`.
fn hedges(metrics: &str, outcome: &str) -> u64 {
    let series = format!("lifeline_hedges_total{{model=\"m\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_slow_deployment_is_hedged_and_the_fast_one_wins() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model(100)), m).await;
    env.mocks[0].set_faults(slow(200));
    warm(&env, false, 25).await;

    // p0 now takes 8 s; its p95 is still about 200 ms.
    env.mocks[0].set_faults(slow(8000));
    let t = Instant::now();
    let (status, h, text) = env.post("/v1/chat/completions", &body(false)).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{text}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{text}");
    assert!(took < Duration::from_secs(4), "took {took:?}, p0 takes 8 s");
    assert!(text.contains("chat.completion"), "{text}");
    assert_eq!(chat_requests(&env.mocks[1]), 1);
    let text = metrics(&env).await;
    assert_eq!(hedges(&text, "won"), 1, "{text}");
    assert_eq!(hedges(&text, "lost"), 0);
    // The slow attempt was dropped: p0 saw its request cancelled, long
    // before it would have answered.
    eventually("p0's request cancelled", Duration::from_secs(4), || async {
        env.mocks[0].stats().cancelled >= 1
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(8));
    // A cancelled hedge is not a failure: p0 answered everything it finished.
    assert!(!text.contains("lifeline_attempts_total{deployment=\"p0/up-0\",outcome=\"timeout\"}"));
    env.stop().await;
}

#[tokio::test]
async fn no_hedge_before_the_p95_is_known() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model(100)), m).await;
    // Fewer than 20 samples: the slow answers stay with p0.
    env.mocks[0].set_faults(slow(600));
    for _ in 0..3 {
        let t = Instant::now();
        let (status, h, text) = env.post("/v1/chat/completions", &body(false)).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!((deployment(&h), attempts(&h)), (dep(0), 1), "{text}");
        assert!(t.elapsed() >= Duration::from_millis(600));
    }
    assert_eq!(chat_requests(&env.mocks[1]), 0);
    let text = metrics(&env).await;
    assert!(!text.contains("lifeline_hedges_total{"), "{text}");
    env.stop().await;
}

#[tokio::test]
async fn the_hedge_budget_caps_hedges() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model(10)), m).await;
    env.mocks[0].set_faults(slow(200));
    warm(&env, false, 25).await;
    env.mocks[0].set_faults(slow(1500));
    let n = 40;
    let b = body(false);
    let answers = join_all((0..n).map(|_| env.post("/v1/chat/completions", &b))).await;
    for (status, _, text) in &answers {
        assert_eq!(*status, 200, "{text}");
    }
    // 10 % of the 65 requests of the last 10 s: at most 6 hedges.
    let cap = (65 * 10) / 100;
    let text = metrics(&env).await;
    let made = hedges(&text, "won") + hedges(&text, "lost");
    assert!(
        made >= 1 && made <= cap,
        "{made} hedges, cap {cap}:\n{text}"
    );
    assert!(
        hedges(&text, "refused_budget") >= n - cap,
        "refused: {}",
        hedges(&text, "refused_budget")
    );
    assert_eq!(chat_requests(&env.mocks[1]), made, "one request per hedge");
    let hedged = answers.iter().filter(|(_, h, _)| attempts(h) == 2).count() as u64;
    assert_eq!(hedged, made);
    env.stop().await;
}

#[tokio::test]
async fn a_stream_is_hedged_before_its_first_content() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model(100)), m).await;
    env.mocks[0].set_faults(slow_first_token(200));
    warm(&env, true, 25).await;

    env.mocks[0].set_faults(slow_first_token(8000));
    let t = Instant::now();
    let (status, h, text) = env.post("/v1/chat/completions", &body(true)).await;
    assert_eq!(status, 200, "{text}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("event: error"), "{text}");
    assert_eq!(hedges(&metrics(&env).await, "won"), 1);
    eventually("p0's stream cancelled", Duration::from_secs(4), || async {
        env.mocks[0].stats().cancelled >= 1
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn when_the_hedged_attempt_fails_the_hedge_is_simply_the_next_attempt() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model(100)), m).await;
    env.mocks[0].set_faults(slow_first_token(200));
    warm(&env, true, 25).await;

    // p0's stream breaks after its role chunk, at 1 s: after the hedge
    // started (p95 about 200 ms), before the hedge's first content (2 s).
    env.mocks[0].set_faults(Faults {
        first_token_delay_ms: 1000,
        cut_after_chunks: Some(1),
        ..Faults::default()
    });
    env.mocks[1].set_faults(slow_first_token(2000));
    let (status, h, text) = env.post("/v1/chat/completions", &body(true)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(
        (chat_requests(&env.mocks[0]), chat_requests(&env.mocks[1])),
        (26, 1)
    );
    let text = metrics(&env).await;
    assert_eq!(hedges(&text, "won"), 1, "{text}");
    // Not a retry on top of the hedge: one extra attempt in all.
    assert!(
        !text.contains("lifeline_retries_total{model=\"m\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "lifeline_attempts_total{deployment=\"p0/up-0\",outcome=\"stream_failed\"} 1"
        ),
        "{text}"
    );
    env.stop().await;
}

/// The value of `lifeline_requests_total{model="m",status}`.
fn requests(metrics: &str, status: u16) -> u64 {
    let series = format!("lifeline_requests_total{{model=\"m\",status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn an_error_answer_never_beats_a_slow_success() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model(100)), m).await;
    env.mocks[0].set_faults(slow(200));
    warm(&env, false, 25).await;

    // p0 answers 200 in 1.5 s; the hedge's provider rejects the request
    // at once (a 400 returned as the client's own error).
    env.mocks[0].set_faults(slow(1500));
    env.mocks[1].set_faults(failing(400));
    let t = Instant::now();
    let (status, h, text) = env.post("/v1/chat/completions", &body(false)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(0), 2), "{text}");
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(chat_requests(&env.mocks[1]), 1, "the hedge was made");
    let text = metrics(&env).await;
    assert_eq!(
        (hedges(&text, "won"), hedges(&text, "lost")),
        (0, 1),
        "{text}"
    );
    // The held 400 was never the answer, nor counted as one.
    assert_eq!(
        (requests(&text, 200), requests(&text, 400)),
        (26, 0),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn when_neither_answers_2xx_the_error_answer_is_returned_after_both() {
    let m = mocks(2).await;
    // p0's attempts end at 1.5 s without headers (a failure).
    let server: Vec<(&str, &str)> = SERVER
        .iter()
        .map(|&(k, v)| {
            (
                k,
                if k == "first_byte_timeout_ms" {
                    "1500"
                } else {
                    v
                },
            )
        })
        .collect();
    let env = Env::boot(&cfg(&m, &server, HEALTH, &model(100)), m).await;
    env.mocks[0].set_faults(slow(200));
    warm(&env, false, 25).await;

    env.mocks[0].set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    env.mocks[1].set_faults(failing(400));
    let t = Instant::now();
    let (status, h, text) = env.post("/v1/chat/completions", &body(false)).await;
    assert_eq!(status, 400, "{text}");
    // Held until the hedged attempt failed too.
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{text}");
    let text = metrics(&env).await;
    assert_eq!(hedges(&text, "lost"), 1, "{text}");
    assert_eq!(
        (requests(&text, 200), requests(&text, 400)),
        (25, 1),
        "{text}"
    );
    assert!(
        text.contains("lifeline_attempts_total{deployment=\"p0/up-0\",outcome=\"timeout\"} 1"),
        "{text}"
    );
    env.stop().await;
}

/// `toml` with provider `p{i}` (mock `m`) made an Anthropic one.
fn anthropic(toml: &str, i: usize, m: &lifeline_mock::MockHandle) -> String {
    let url = m.base_url();
    let openai = format!("name = \"p{i}\"\nkind = \"openai-compatible\"\nbase_url = \"{url}\"");
    assert!(toml.contains(&openai), "{toml}");
    let url = url.trim_end_matches("/v1");
    toml.replace(
        &openai,
        &format!("name = \"p{i}\"\nkind = \"anthropic\"\nbase_url = \"{url}\""),
    )
}

/// A body Anthropic deployments cannot take (`logprobs`).
fn with_logprobs() -> String {
    body(false).replacen('{', "{\"logprobs\":true,", 1)
}

fn messages_requests(m: &lifeline_mock::MockHandle) -> u64 {
    m.stats().by_path.get("/v1/messages").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_hedge_skips_a_deployment_that_cannot_take_the_request() {
    let m = mocks(3).await;
    // Tier 1 p0, tier 2 p1 (Anthropic), tier 3 p2.
    let models = "[[models]]\nname = \"m\"\nhedge = true\nhedge_budget_percent = 100\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ], [ { provider = \"p1\", model = \"up-1\" } ], [ { provider = \"p2\", model = \"up-2\" } ] ]\n";
    let toml = anthropic(&cfg(&m, SERVER, HEALTH, models), 1, &m[1]);
    let env = Env::boot(&toml, m).await;
    env.mocks[0].set_faults(slow(200));
    let b = with_logprobs();
    for (status, h, text) in join_all((0..25).map(|_| env.post("/v1/chat/completions", &b))).await {
        assert_eq!((status, deployment(&h)), (200, dep(0)), "{text}");
    }

    env.mocks[0].set_faults(slow(8000));
    let t = Instant::now();
    let (status, h, text) = env.post("/v1/chat/completions", &b).await;
    assert_eq!(status, 200, "{text}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // The hedge went past the Anthropic deployment to p2; the skipped one
    // is no attempt.
    assert_eq!((deployment(&h), attempts(&h)), (dep(2), 2), "{text}");
    assert_eq!(messages_requests(&env.mocks[1]), 0);
    let text = metrics(&env).await;
    assert_eq!(hedges(&text, "won"), 1, "{text}");
    assert!(
        !text.contains("lifeline_attempts_total{deployment=\"p1/up-1\""),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_hedge_that_finds_only_ineligible_deployments_spends_no_token() {
    let m = mocks(2).await;
    // One hedge token per 25 requests: 4 %.
    let models = "[[models]]\nname = \"m\"\nhedge = true\nhedge_budget_percent = 4\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ], [ { provider = \"p1\", model = \"up-1\" } ] ]\n";
    let toml = anthropic(&cfg(&m, SERVER, HEALTH, models), 1, &m[1]);
    let env = Env::boot(&toml, m).await;
    env.mocks[0].set_faults(slow(200));
    warm(&env, false, 25).await;

    // 26 requests: one hedge token. This one cannot go to the Anthropic
    // deployment: no hedge, the token stays.
    env.mocks[0].set_faults(slow(1500));
    let (status, h, text) = env.post("/v1/chat/completions", &with_logprobs()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(0), 1), "{text}");
    assert_eq!(messages_requests(&env.mocks[1]), 0);
    assert!(!metrics(&env).await.contains("lifeline_hedges_total{"));
    // 27 requests: still one token, for a request the hedge can take.
    env.mocks[0].set_faults(slow(8000));
    let (status, h, text) = env.post("/v1/chat/completions", &body(false)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!((deployment(&h), attempts(&h)), (dep(1), 2), "{text}");
    let text = metrics(&env).await;
    assert_eq!(
        (hedges(&text, "won"), hedges(&text, "refused_budget")),
        (1, 0),
        "{text}"
    );
    env.stop().await;
}
