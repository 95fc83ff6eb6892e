//! Which deployments can take a request across protocols, and what the
//! client sees of the other protocol: a prefill only where it is continued,
//! `anthropic-beta` off OpenAI-shaped deployments, the 503 (not a 400) while
//! the eligible ones are down, translated answers without the other
//! protocol's headers, and the Anthropic paths Lifeline does not serve.

use lifeline_mock::{Faults, MockHandle};

use crate::anthropic::*;
use crate::harness::{mocks, Env};

/// `config` with the breaker opening after one failure.
fn config_fragile(m: &[MockHandle], kinds: &[P], models: &str) -> String {
    config(m, kinds, "", models)
        .replace("consecutive_failures = 1000", "consecutive_failures = 1")
        .replace("cooldown_ms = 1000", "cooldown_ms = 30000")
}

#[tokio::test]
async fn a_request_one_protocol_cannot_take_gets_a_503_while_the_others_are_down() {
    // Tier 1 OpenAI (takes n = 2), tier 2 Anthropic (cannot).
    let m = mocks(2).await;
    let toml = config_fragile(&m, &[P::OpenAi, P::Anthropic], &tiers(&[&[0], &[1]]));
    let env = Env::boot(&toml, m).await;
    env.mocks[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    // p0 fails once (its breaker opens); p1 answers.
    let (status, h, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    let n2 = r#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, h, body) = env.post("/v1/chat/completions", n2).await;
    // Not a 400: p0 takes this request once it is back.
    assert_eq!(status, 503, "{body}");
    let back: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&back), "{back}");
    let v = json(&body);
    assert_eq!(v["error"]["code"], "no_deployment_available", "{body}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("p1/up-1") && msg.contains("n > 1"), "{msg}");
    env.stop().await;
}

#[tokio::test]
async fn a_prefill_goes_only_to_deployments_that_continue_it() {
    // An Anthropic client's prefill; the only deployment is OpenAI-shaped
    // and does not continue one: 400, the provider never sees it.
    let prefill = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"Count"},{"role":"assistant","content":"one two"}]}"#;
    let env = boot(&[P::OpenAi], &[&[0]]).await;
    let (status, _, body) = post_with(&env, "/v1/messages", &[], prefill).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(anthropic_error(&body), "invalid_request_error");
    assert!(
        body.contains("prefill") && body.contains("p0/up-0"),
        "{body}"
    );
    assert_eq!(env.mocks[0].stats().requests, 0);
    env.stop().await;

    // With an Anthropic fallback: it continues the prefill there.
    let env = boot(&[P::OpenAi, P::Anthropic], &[&[0], &[1]]).await;
    let (status, h, body) = post_with(&env, "/v1/messages", &[], prefill).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    assert_eq!(env.mocks[0].stats().requests, 0);
    env.stop().await;

    // An OpenAI client's final assistant message to Claude 4.6 (which
    // refuses a prefill): that deployment is skipped, the OpenAI one answers.
    let m = mocks(2).await;
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"claude-opus-4-6\" } ], [ { provider = \"p1\", model = \"up-1\" } ] ]\n";
    let env = Env::boot(&config(&m, &[P::Anthropic, P::OpenAi], "", models), m).await;
    let openai_prefill = r#"{"model":"m","messages":[{"role":"user","content":"Count"},{"role":"assistant","content":"one two"}]}"#;
    let (status, h, body) = env.post("/v1/chat/completions", openai_prefill).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    assert_eq!(env.mocks[0].stats().requests, 0);
    // Without a prefill, Claude 4.6 takes it.
    let (status, h, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!(
        (status, deployment(&h)),
        (200, "p0/claude-opus-4-6".into()),
        "{body}"
    );
    env.stop().await;
}

#[tokio::test]
async fn an_anthropic_beta_keeps_the_request_off_openai_deployments() {
    let beta = [("anthropic-beta", "context-1m-2025-08-07")];
    let env = boot(&[P::OpenAi], &[&[0]]).await;
    let (status, _, body) = post_with(&env, "/v1/messages", &beta, MESSAGES).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("anthropic-beta"), "{body}");
    assert_eq!(env.mocks[0].stats().requests, 0);
    // Without the header, translated as usual.
    let (status, _, body) = post_with(&env, "/v1/messages", &[], MESSAGES).await;
    assert_eq!(status, 200, "{body}");
    env.stop().await;

    let env = boot(&[P::OpenAi, P::Anthropic], &[&[0], &[1]]).await;
    let (status, h, body) = post_with(&env, "/v1/messages", &beta, MESSAGES).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    assert_eq!(
        env.mocks[1]
            .stats()
            .recent
            .pop()
            .unwrap()
            .header("anthropic-beta"),
        Some("context-1m-2025-08-07")
    );
    env.stop().await;
}

#[tokio::test]
async fn a_translated_answer_carries_no_header_of_the_other_protocol() {
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    // The provider sends Anthropic's `request-id`; an OpenAI client gets
    // only Lifeline's `x-request-id`.
    let (status, h, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("request-id"), "{h:?}");
    assert!(h.contains_key("x-request-id"));
    assert_eq!(h["content-type"], "application/json");
    let (status, h, body) = env.post("/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(status, 200, "{body}");
    assert!(!h.contains_key("request-id"), "{h:?}");
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // Passthrough keeps them.
    let (status, h, body) = post_with(&env, "/v1/messages", &[], MESSAGES).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        h["request-id"].to_str().unwrap().starts_with("req_mock"),
        "{h:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn anthropic_paths_lifeline_does_not_serve_answer_in_anthropics_shape() {
    let env = boot(&[P::OpenAi], &[&[0]]).await;
    // Anthropic's SDKs and Claude Code call these.
    for path in ["/v1/messages/count_tokens", "/v1/messages/batches"] {
        let (status, h, body) = post_with(&env, path, &[], MESSAGES).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(anthropic_error(&body), "not_found_error", "{path}");
        assert!(h.contains_key("request-id"), "{path}");
    }
    // 405 on /v1/models, asked by an Anthropic SDK.
    let (status, _, body) = post_with(
        &env,
        "/v1/models",
        &[("anthropic-version", "2023-06-01")],
        "{}",
    )
    .await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(anthropic_error(&body), "invalid_request_error");
    // Without anthropic-version: OpenAI's shape, as before.
    let (status, _, body) = post_with(&env, "/v1/models", &[], "{}").await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(json(&body)["error"]["code"], "method_not_allowed");
    env.stop().await;
}
