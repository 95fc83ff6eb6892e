//! A provider that freezes under load (accepts, never answers, like a
//! stopped process or a wedged GPU server): every request still succeeds,
//! and the balancer stops sending it new work within moments, long before
//! the stuck requests time out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lifeline_mock::Faults;

use crate::harness::{mocks, Env};

#[tokio::test]
async fn frozen_provider_is_priced_out_and_no_request_fails() {
    let m = mocks(3).await;
    // p0 is the fast one (say a local GPU server): the balancer favours it,
    // which is exactly what makes its freezing dangerous.
    for mock in &m[1..] {
        mock.set_faults(Faults {
            latency_ms: 40,
            ..Faults::default()
        });
    }
    let members: Vec<String> = (0..3)
        .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
        .collect();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\nfirst_byte_timeout_ms = 2000\n\n[health]\nprobe_timeout_ms = 500\n\n{}[[models]]\nname = \"m\"\ntiers = [ [ {} ] ]\n",
        crate::harness::providers(&m),
        members.join(", ")
    );
    let env = Arc::new(Env::boot(&toml, m).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (env, stop, ok, failed) = (env.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _, body) = env.chat(false).await;
                if status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed: {status} {body}");
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let frozen = &env.mocks[0];
    frozen.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let at_freeze = frozen.stats().requests;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_while_frozen = frozen.stats().requests - at_freeze;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 100, "too little traffic to judge: {ok}");
    // Several of the 16 clients were waiting on it when it froze, and a few
    // more reach it in the first tens of milliseconds, while its silence is
    // still shorter than the others' latency (measured: 7 or 8). Priced by
    // its old, fast latency instead, it draws nearly every client (14-15).
    assert!(
        sent_while_frozen <= 11,
        "the frozen provider kept getting traffic: {sent_while_frozen} requests"
    );
}

#[tokio::test]
async fn a_long_non_streaming_generation_is_not_mistaken_for_a_frozen_server() {
    let m = mocks(2).await;
    // 15 tokens at 10 tokens/s: the answer takes 1.5 s to generate, well past
    // the 400 ms first-byte timeout, while the server answers probes at once.
    m[0].set_config(lifeline_mock::MockConfig {
        name: "p0".into(),
        tokens_per_second: 10.0,
        completion_tokens: 15,
        ttft_ms: 0,
        ..lifeline_mock::MockConfig::default()
    });
    // Only p0 serves `m`: waiting for it is the only way to an answer, and
    // it answers probes, so the wait goes on past the first-byte timeout.
    let models =
        "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    let env = Env::boot(
        &crate::harness::config(&m, "first_byte_timeout_ms = 400", models),
        m,
    )
    .await;
    let t = tokio::time::Instant::now();
    let (status, headers, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-deployment"], "p0/up-0", "{body}");
    assert_eq!(headers["x-lifeline-attempts"], "1");
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    // A stream, by contrast, must start within the first-byte timeout: this
    // one does (the first token comes at once), and then runs its 1.5 s.
    let (status, headers, body) = env.chat(true).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-lifeline-deployment"], "p0/up-0");
    assert!(body.ends_with("data: [DONE]\n\n"));
    env.stop().await;
}

/// Streams under load while one of three providers is killed: a stream that
/// had not sent content yet is rescued on another deployment; the only
/// streams allowed to fail are those already mid-answer, and they fail
/// honestly (an error event, no `[DONE]`).
#[tokio::test]
async fn killing_a_provider_under_streaming_load_fails_only_streams_mid_answer() {
    let m = mocks(3).await;
    for (i, mock) in m.iter().enumerate() {
        // A slow first token keeps many streams before their first content.
        mock.set_config(lifeline_mock::MockConfig {
            name: format!("p{i}"),
            tokens_per_second: 100.0,
            completion_tokens: 5,
            ttft_ms: 80,
            ..lifeline_mock::MockConfig::default()
        });
    }
    let env = Arc::new(
        Env::boot(
            &crate::harness::config(&m, "", &crate::harness::one_tier(&m)),
            m,
        )
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, honest, bad) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (env, stop, ok, honest, bad) = (
            env.clone(),
            stop.clone(),
            ok.clone(),
            honest.clone(),
            bad.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _, body) = env.chat(true).await;
                let content = body.contains("\"content\":\"p");
                if status == 200
                    && body.ends_with("data: [DONE]\n\n")
                    && !body.contains("event: error")
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else if status == 200
                    && content
                    && body.contains("event: error")
                    && !body.contains("[DONE]")
                {
                    honest.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed without an honest mid-answer ending: {status} {body}");
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let busiest = env
        .mocks
        .iter()
        .max_by_key(|m| m.stats().in_flight)
        .unwrap()
        .clone();
    busiest.kill();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, honest, bad) = (
        ok.load(Ordering::Relaxed),
        honest.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
    );
    assert_eq!(
        bad, 0,
        "{bad} streams failed before any content reached the client ({ok} ok, {honest} honest)"
    );
    assert!(ok > 50, "too little traffic to judge: {ok}");
    // At most the streams that were mid-answer on the killed provider.
    assert!(honest <= 16, "{honest} streams broke mid-answer");
}
