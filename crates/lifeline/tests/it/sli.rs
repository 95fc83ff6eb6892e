//! The status side's SLI counters (`Gateway::sli_totals`), fed by real
//! requests through the gateway to the simulated provider: per model and
//! endpoint family (requests, good, latency and time-to-first-token
//! buckets, streams completed and broken, upstream attempts) and per
//! deployment (attempts, probes); monotonic across a reload that keeps a
//! model or rebuilds a deployment, from 0 for a model a reload adds.

use std::time::Duration;

use lifeline_core::telemetry::sli::{DeploymentTotals, ModelTotals, SliTotals};
use lifeline_core::Config;
use lifeline_mock::{Faults, MockHandle};

use crate::harness::{mocks, providers, Env};
use crate::streaming::{eventually, stream_body};

/// One mock p0 behind model `m` (and `extra_models`), one attempt per
/// request (no retries to count), idle probes every 100 ms.
fn sli_config(m: &[MockHandle], extra_models: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\nmax_attempts = 1\n\n[health]\nprobe_interval_ms = 100\nidle_probe_after_ms = 100\nprobe_timeout_ms = 500\nconsecutive_failures = 1000\nmin_requests = 1000\n\n{}[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n{extra_models}",
        providers(m)
    )
}

fn family<'a>(t: &'a SliTotals, model: &str, family: &str) -> &'a ModelTotals {
    t.models
        .iter()
        .find(|m| m.model == model && m.family == family)
        .unwrap_or_else(|| panic!("no {model}/{family} in {t:?}"))
}

fn deployment<'a>(t: &'a SliTotals, id: &str) -> &'a DeploymentTotals {
    t.deployments
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no {id} in {t:?}"))
}

#[tokio::test]
async fn requests_streams_and_attempts_are_counted_per_model_and_family() {
    let m = mocks(1).await;
    let env = Env::boot(&sli_config(&m, ""), m).await;
    let t = env.gw.sli_totals();
    assert_eq!(t.models.len(), 4, "{t:?}");
    let fams: Vec<_> = t.models.iter().map(|m| m.family).collect();
    assert_eq!(fams, ["chat", "embeddings", "images", "responses"]);
    let d = deployment(&t, "p0/up-0");
    assert_eq!((d.provider.as_str(), d.model.as_str()), ("p0", "up-0"));
    assert_eq!(d.public_models, ["m"]);

    // A whole answer, a complete stream, an embedding.
    assert_eq!(env.chat(false).await.0, 200);
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let (status, _, body) = env
        .post("/v1/embeddings", r#"{"model":"m","input":"hi"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    // The client's own error (the provider's 400) is good, and so is its
    // attempt; a 500 answered as the gateway's 503 is neither.
    env.mocks[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 400,
        ..Faults::default()
    });
    assert_eq!(env.chat(false).await.0, 400);
    env.mocks[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 500,
        ..Faults::default()
    });
    assert_eq!(env.chat(false).await.0, 503);
    // A stream cut after its first content: broken.
    env.mocks[0].set_faults(Faults {
        cut_after_chunks: Some(3),
        ..Faults::default()
    });
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200);
    assert!(body.contains("event: error"), "{body}");
    // Rejected before a model is known: counted nowhere.
    let (status, _, _) = env
        .post(
            "/v1/chat/completions",
            r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
    assert_eq!(status, 404);

    let t = env.gw.sli_totals();
    let chat = &family(&t, "m", "chat").counts;
    assert_eq!((chat.requests, chat.good), (5, 4), "{chat:?}");
    assert_eq!(chat.latency.iter().sum::<u64>(), 5, "{chat:?}");
    // Fast loopback answers: everything in the first bucket (≤ 50 ms) or
    // close to it.
    assert!(chat.latency[..4].iter().sum::<u64>() == 5, "{chat:?}");
    assert_eq!(chat.ttft.iter().sum::<u64>(), 2, "{chat:?}");
    assert_eq!((chat.streams_completed, chat.streams_broken), (1, 1));
    // One attempt per request (max_attempts = 1); the broken stream's
    // attempt succeeded (it reached its first content), the 500's did not.
    assert_eq!(
        (chat.upstream_attempts, chat.upstream_ok),
        (5, 4),
        "{chat:?}"
    );
    let emb = &family(&t, "m", "embeddings").counts;
    assert_eq!((emb.requests, emb.good, emb.upstream_attempts), (1, 1, 1));
    assert_eq!(emb.ttft.iter().sum::<u64>(), 0);
    assert_eq!(family(&t, "m", "images").counts.requests, 0);
    let d = deployment(&t, "p0/up-0").counts.clone();
    assert_eq!((d.attempts, d.attempts_ok), (6, 5), "{d:?}");
    env.stop().await;
}

#[tokio::test]
async fn probes_are_counted_per_deployment() {
    let m = mocks(1).await;
    let env = Env::boot(&sli_config(&m, ""), m).await;
    let gw = env.gw.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            deployment(&gw.sli_totals(), "p0/up-0").counts.probes_ok >= 2
        })
        .await,
        "{:?}",
        gw.sli_totals()
    );
    env.mocks[0].kill();
    assert!(
        eventually(Duration::from_secs(10), || {
            deployment(&gw.sli_totals(), "p0/up-0").counts.probes_failed >= 1
        })
        .await,
        "{:?}",
        gw.sli_totals()
    );
    env.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_counting_and_a_new_model_starts_at_zero() {
    let m = mocks(1).await;
    let text = sli_config(&m, "");
    let env = Env::boot(&text, m).await;
    for _ in 0..3 {
        assert_eq!(env.chat(false).await.0, 200);
    }
    // Same model, a provider setting changed (the deployment is rebuilt),
    // and a new model on the same deployment.
    let next = text.replace(
        "api_key = \"sk-upstream-0\"",
        "api_key = \"sk-upstream-0\"\nmax_concurrency = 50",
    )
        + "[[models]]\nname = \"n\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    let old = env.gw.deployment("p0/up-0").unwrap();
    env.gw
        .apply(Config::parse(&next, "<test>").unwrap())
        .await
        .unwrap();
    let new = env.gw.deployment("p0/up-0").unwrap();
    assert!(!std::sync::Arc::ptr_eq(&old, &new), "not rebuilt");
    let t = env.gw.sli_totals();
    assert_eq!(family(&t, "m", "chat").counts.requests, 3);
    assert_eq!(family(&t, "n", "chat").counts.requests, 0);
    assert_eq!(deployment(&t, "p0/up-0").counts.attempts, 3);
    assert_eq!(deployment(&t, "p0/up-0").public_models, ["m", "n"]);
    assert_eq!(env.chat(false).await.0, 200);
    let t = env.gw.sli_totals();
    assert_eq!(family(&t, "m", "chat").counts.requests, 4);
    assert_eq!(deployment(&t, "p0/up-0").counts.attempts, 4);
    env.stop().await;
}
