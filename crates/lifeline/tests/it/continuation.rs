//! Streams that survive their provider: a chat stream that breaks after
//! content reached the client (reset, killed server, stall, cut, malformed
//! chunk) is continued from another deployment in the same client stream,
//! by prefill, instruction and seam, or replay; the client gets one
//! complete answer, no word lost or doubled, and `[DONE]`.
//!
//! The simulated provider's words are `{voice}{k}`: the numbers tell
//! whether every word of the answer arrived exactly once, whichever
//! deployment wrote it.

use std::time::Duration;

use lifeline_mock::{Faults, MockConfig, MockHandle, MockServer};
use tokio::time::Instant;

use crate::harness::{config, Env};
use crate::streaming::{metrics, stream_body, two_tiers};

/// Mocks p0, p1, ... with these voices, `tokens` words per answer.
pub(crate) async fn voiced(
    voices: &[&str],
    tokens: u32,
    tokens_per_second: f64,
) -> Vec<MockHandle> {
    let mut v = Vec::new();
    for (i, voice) in voices.iter().enumerate() {
        let cfg = MockConfig {
            name: format!("p{i}"),
            voice: Some((*voice).to_string()),
            tokens_per_second,
            ttft_ms: 0,
            completion_tokens: tokens,
            ..MockConfig::default()
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        v.push(MockServer::start(addr, cfg).await.expect("mock starts"));
    }
    v
}

/// The text of a chat stream as the client reads it, and its chunk ids.
pub(crate) fn client_view(body: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut ids = Vec::new();
    for line in body.lines() {
        let Some(p) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(p) else {
            continue;
        };
        if let Some(id) = v["id"].as_str() {
            ids.push(id.to_string());
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    (text, ids)
}

/// The word numbers of the answer, in order.
pub(crate) fn numbers(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .map(|w| {
            w.trim_start_matches(|c: char| c.is_alphabetic())
                .parse()
                .unwrap_or_else(|_| panic!("word {w:?} in {text:?}"))
        })
        .collect()
}

/// One complete answer of `n` words (each once, in order, single spaces),
/// ending with `[DONE]`, one chunk id throughout, continued by `method`.
pub(crate) fn assert_whole(body: &str, n: u32, method: &str) {
    assert!(body.ends_with("data: [DONE]\n\n"), "not complete: {body}");
    assert!(!body.contains("event: error"), "{body}");
    assert!(
        !body.contains("\"error\""),
        "an error reached the client: {body}"
    );
    let (text, ids) = client_view(body);
    assert_eq!(
        numbers(&text),
        (1..=n).collect::<Vec<_>>(),
        "words lost or doubled: {text:?}\n{body}"
    );
    assert!(!text.contains("  ") && !text.starts_with(' '), "{text:?}");
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "chunk ids changed: {ids:?}"
    );
    assert!(
        body.contains(&format!(
            ": lifeline continued=1 method={method} deployment="
        )),
        "no trailing comment for {method}: {body}"
    );
}

/// Two deployments of model `m` in two tiers, the simulated providers p0
/// and p1 with voices `alpha` and `beta` (20 words an answer, no pacing),
/// p0 with `faults`; `model_extra`: more keys of the model.
pub(crate) async fn first_breaks(faults: Faults, model_extra: &str) -> Env {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(faults);
    Env::boot(&config(&m, "", &two_tiers(model_extra)), m).await
}

/// Enough complete streams of model `m` for a p99 of the deployments'
/// gaps between events (their adaptive stall figure).
async fn warm_up(env: &Env) {
    for _ in 0..30 {
        let (_, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    }
}

pub(crate) async fn counter(env: &Env, series: &str) -> f64 {
    let text = metrics(env).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn cut_after_content_is_continued_by_instruction_and_seam() {
    let env = first_breaks(
        Faults {
            cut_after_chunks: Some(6),
            ..Faults::default()
        },
        "",
    )
    .await;
    let (status, headers, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-deployment"], "p0/up-0");
    assert_whole(&body, 20, "instruction");
    assert!(body.contains("deployment=p1/up-1"), "{body}");
    let (text, _) = client_view(&body);
    assert!(text.contains("alpha5 beta6"), "{text}");
    let series = "lifeline_stream_continuations_total{model=\"m\",method=\"instruction\",outcome=\"continued\"}";
    assert_eq!(counter(&env, series).await, 1.0);
    let complete = "lifeline_streams_total{model=\"m\",outcome=\"complete\"}";
    assert_eq!(counter(&env, complete).await, 1.0);
    // The client's request went to p1 with the partial answer and the
    // instruction to continue.
    let sent = &env.mocks[1].stats().recent[0].body;
    assert!(
        sent.contains("alpha1 alpha2 alpha3 alpha4 alpha5"),
        "{sent}"
    );
    assert!(
        sent.contains("Continue exactly where you stopped"),
        "{sent}"
    );
    env.stop().await;
}

#[tokio::test]
async fn malformed_chunk_after_content_is_continued() {
    let env = first_breaks(
        Faults {
            malformed_chunk_at: Some(7),
            ..Faults::default()
        },
        "",
    )
    .await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("{\"broken"), "{body}");
    assert_whole(&body, 20, "instruction");
    env.stop().await;
}

#[tokio::test]
async fn a_killed_server_mid_stream_is_continued() {
    let m = voiced(&["alpha", "beta"], 40, 40.0).await;
    let env = Env::boot(&config(&m, "", &two_tiers("")), m).await;
    let mut resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(stream_body("m"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let mut body = String::new();
    // Some words reached the client; then the server dies (RST).
    while !body.contains("alpha5") {
        let chunk = resp.chunk().await.unwrap().expect("stream goes on");
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    env.mocks[0].kill();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_whole(&body, 40, "instruction");
    env.stop().await;
}

/// `prefill = true` on a provider: the partial answer goes as an assistant
/// prefill and the new output is appended as it comes.
#[tokio::test]
async fn prefill_continues_where_the_provider_takes_one() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(6),
        ..Faults::default()
    });
    let toml = config(&m, "", &two_tiers("")).replace(
        "api_key = \"sk-upstream-1\"\n",
        "api_key = \"sk-upstream-1\"\nprefill = true\n",
    );
    let env = Env::boot(&toml, m).await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_whole(&body, 20, "prefill");
    let sent = &env.mocks[1].stats().recent[0].body;
    let v: serde_json::Value = serde_json::from_str(sent).unwrap();
    let last = v["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant", "{sent}");
    assert_eq!(last["content"], "alpha1 alpha2 alpha3 alpha4 alpha5");
    env.stop().await;
}

/// A fallback that rejects the prefill (400 about the trailing assistant
/// message): instruction and seam on the same deployment, the 400 never
/// reaches the client, and the deployment is not asked for a prefill again.
#[tokio::test]
async fn a_rejected_prefill_falls_back_to_instruction_and_is_remembered() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(6),
        ..Faults::default()
    });
    m[1].set_faults(Faults {
        reject_prefill: true,
        ..Faults::default()
    });
    let toml = config(&m, "", &two_tiers("")).replace(
        "api_key = \"sk-upstream-1\"\n",
        "api_key = \"sk-upstream-1\"\nprefill = true\n",
    );
    let env = Env::boot(&toml, m).await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_whole(&body, 20, "instruction");
    assert!(!body.to_lowercase().contains("prefill\""), "{body}");
    assert_eq!(
        env.mocks[1].stats().requests,
        2,
        "prefill, then instruction"
    );
    // Remembered: the next broken stream goes straight to the instruction.
    let (_, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_whole(&body, 20, "instruction");
    assert_eq!(env.mocks[1].stats().requests, 3);
    let rejected =
        "lifeline_stream_continuations_total{model=\"m\",method=\"prefill\",outcome=\"failed\"}";
    assert_eq!(counter(&env, rejected).await, 1.0);
    env.stop().await;
}

/// Two deployments of one model with identical output (same voice): the
/// instruction's answer repeats too little to find a seam (three words of
/// 8 characters), so the request is replayed and relayed from where it
/// passes the text already sent.
#[tokio::test]
async fn replay_continues_a_deterministic_model() {
    let m = voiced(&["v", "v"], 40, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(10),
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &two_tiers("")), m).await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_whole(&body, 40, "replay");
    let failed = "lifeline_stream_continuations_total{model=\"m\",method=\"instruction\",outcome=\"failed\"}";
    assert_eq!(counter(&env, failed).await, 1.0);
    env.stop().await;
}

#[tokio::test]
async fn continuation_off_for_a_model_ends_honestly() {
    let env = first_breaks(
        Faults {
            cut_after_chunks: Some(6),
            ..Faults::default()
        },
        "continuation = false",
    )
    .await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("event: error") && body.contains("stream_interrupted"),
        "{body}"
    );
    assert!(!body.contains("[DONE]"), "{body}");
    assert!(!body.contains(": lifeline continued"), "{body}");
    assert_eq!(env.mocks[1].stats().requests, 0);
    env.stop().await;
}

/// A deployment whose streams flow without gaps, frozen mid-answer: the
/// stall is caught by its adaptive stall figure (a multiple of its p99 gap,
/// floored), far sooner than `stream_idle_timeout`, and the stream goes on
/// elsewhere.
#[tokio::test]
async fn a_stall_after_content_is_caught_adaptively_and_continued() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    let toml = config(
        &m,
        "stream_idle_timeout_ms = 60000\nadaptive_timeout_floor_ms = 300",
        &two_tiers(""),
    );
    let env = Env::boot(&toml, m).await;
    warm_up(&env).await;
    env.mocks[0].set_faults(Faults {
        stall_after_chunks: Some(6),
        ..Faults::default()
    });
    let t = Instant::now();
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_whole(&body, 20, "instruction");
    assert!(
        took < Duration::from_secs(20),
        "waited {took:?}, as long as the idle timeout"
    );
    env.stop().await;
}

/// Providers p0.. over the mocks: `anthropic[i]` makes p{i} a
/// `kind = "anthropic"` provider pointed at the mock's `/v1/messages`.
pub(crate) fn mixed(m: &[MockHandle], anthropic: &[bool], models: &str) -> String {
    let mut providers = String::new();
    for (i, (mock, a)) in m.iter().zip(anthropic).enumerate() {
        let url = mock.base_url();
        providers.push_str(&if *a {
            format!(
                "[[providers]]\nname = \"p{i}\"\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"sk-ant-{i}\"\n\n",
                url.trim_end_matches("/v1")
            )
        } else {
            format!(
                "[[providers]]\nname = \"p{i}\"\nkind = \"openai-compatible\"\nbase_url = \"{url}\"\napi_key = \"sk-oai-{i}\"\n\n"
            )
        });
    }
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nauth = \"none\"\n\n[health]\ncooldown_ms = 1000\nprobe_interval_ms = 100\nprobe_timeout_ms = 500\n\n{providers}{models}"
    )
}

/// The text of an Anthropic stream (its `text_delta`s) and how many
/// `message_start`s it has.
pub(crate) fn anthropic_view(body: &str) -> (String, usize) {
    let mut text = String::new();
    let mut starts = 0;
    for line in body.lines() {
        let Some(p) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(p) else {
            continue;
        };
        if v["type"] == "message_start" {
            starts += 1;
        }
        if v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta" {
            text.push_str(v["delta"]["text"].as_str().unwrap_or(""));
        }
    }
    (text, starts)
}

/// An Anthropic client (`POST /v1/messages`) on Anthropic deployments: the
/// broken stream is continued by prefill (Anthropic's native way) in
/// Anthropic's grammar: one `message_start`, the words in order, the
/// trailing comment, `message_stop`.
#[tokio::test]
async fn an_anthropic_stream_is_continued_in_anthropics_grammar() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(9),
        ..Faults::default()
    });
    let env = Env::boot(&mixed(&m, &[true, true], &two_tiers("")), m).await;
    let body = r#"{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/messages", body).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("event: error"), "{body}");
    let (text, starts) = anthropic_view(&body);
    assert_eq!(starts, 1, "{body}");
    assert_eq!(
        numbers(&text),
        (1..=20).collect::<Vec<_>>(),
        "{text:?}\n{body}"
    );
    assert!(text.contains("beta"), "not continued elsewhere: {text}");
    assert!(
        body.contains(
            ": lifeline continued=1 method=prefill deployment=p1/up-1\n\nevent: message_stop"
        ),
        "{body}"
    );
    let sent = &env.mocks[1].stats().recent[0];
    assert!(sent.path_and_query.ends_with("/v1/messages"), "{sent:?}");
    env.stop().await;
}

/// An OpenAI client whose fallback speaks Anthropic: the continuation is
/// translated there (a prefill), and its stream transcoded back into the
/// client's chunks, one id throughout.
#[tokio::test]
async fn an_openai_stream_is_continued_on_an_anthropic_deployment() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(6),
        ..Faults::default()
    });
    let env = Env::boot(&mixed(&m, &[false, true], &two_tiers("")), m).await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_whole(&body, 20, "prefill");
    let sent = &env.mocks[1].stats().recent[0].body;
    let v: serde_json::Value = serde_json::from_str(sent).unwrap();
    let last = v["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant", "{sent}");
    env.stop().await;
}

/// Sustained streaming load (30 concurrent clients, slow tokens) over three
/// providers, one of them killed mid-run: every stream completes, whole,
/// the ones in flight on the killed provider continued elsewhere. The
/// retry budget is sized for the burst of continuations a kill causes
/// (about a third of the streams in flight at once).
#[tokio::test]
async fn under_streaming_load_a_killed_provider_fails_no_stream() {
    let m = voiced(&["alpha", "bravo", "charlie"], 30, 60.0).await;
    let members: Vec<String> = (0..3)
        .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
        .collect();
    let models = format!(
        "[[models]]\nname = \"m\"\nretry_budget_min_per_sec = 50\ntiers = [ [ {} ] ]\n",
        members.join(", ")
    );
    let env = std::sync::Arc::new(Env::boot(&config(&m, "", &models), m).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..30 {
        let (env, stop) = (env.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut results = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
                results.push((status, body));
            }
            results
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.mocks[0].kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut total, mut continued) = (0, 0);
    for c in clients {
        for (status, body) in c.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "{body}");
            assert!(
                body.ends_with("data: [DONE]\n\n"),
                "a stream failed: {body}"
            );
            assert!(!body.contains("event: error"), "{body}");
            let (text, _) = client_view(&body);
            assert_eq!(numbers(&text), (1..=30).collect::<Vec<_>>(), "{text:?}");
            if body.contains(": lifeline continued=") {
                continued += 1;
            }
        }
    }
    assert!(total >= 60, "only {total} streams");
    assert!(
        continued >= 1,
        "no stream was in flight on the killed provider"
    );
    let env = std::sync::Arc::try_unwrap(env).unwrap_or_else(|_| panic!("env still shared"));
    env.stop().await;
}

/// A stream cut inside a tool call is not continued (its arguments would
/// be split across two generations): it ends honestly, as before.
#[tokio::test]
async fn a_stream_cut_inside_a_tool_call_ends_honestly() {
    let env = first_breaks(
        Faults {
            cut_after_chunks: Some(2),
            ..Faults::default()
        },
        "",
    )
    .await;
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"What is the weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;
    let (status, _, body) = env.post("/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("get_weather"), "{body}");
    assert!(
        body.contains("event: error") && !body.contains("[DONE]"),
        "{body}"
    );
    assert!(!body.contains(": lifeline continued"), "{body}");
    assert_eq!(env.mocks[1].stats().requests, 0);
    env.stop().await;
}

/// A continuation that breaks in turn is continued again: three providers,
/// the first two cut mid-answer, one answer in the end. (Long words, so
/// that the three words the model repeats are a full seam: a short one
/// waits for the end of the new output, which the second provider never
/// reaches.)
#[tokio::test]
async fn a_stream_that_breaks_twice_is_continued_twice() {
    let m = voiced(&["alphaalpha", "betabeta", "gammagamma"], 24, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(6),
        ..Faults::default()
    });
    m[1].set_faults(Faults {
        cut_after_chunks: Some(9),
        ..Faults::default()
    });
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ], [ { provider = \"p1\", model = \"up-1\" } ], [ { provider = \"p2\", model = \"up-2\" } ] ]\n";
    let env = Env::boot(&config(&m, "", models), m).await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let (text, ids) = client_view(&body);
    assert_eq!(numbers(&text), (1..=24).collect::<Vec<_>>(), "{text:?}");
    assert!(text.contains("beta") && text.contains("gamma"), "{text}");
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert!(
        body.contains(": lifeline continued=2 method=instruction deployment=p2/up-2"),
        "{body}"
    );
    env.stop().await;
}

/// The adaptive stall figure cuts a stream early only when it would be
/// continued: a stream paused inside a tool call (which is not continued)
/// keeps the configured `stream_idle_timeout`.
#[tokio::test]
async fn a_stream_that_cannot_be_continued_keeps_the_idle_timeout() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    let toml = config(
        &m,
        "stream_idle_timeout_ms = 3000\nadaptive_timeout_floor_ms = 200",
        &two_tiers(""),
    );
    let env = Env::boot(&toml, m).await;
    warm_up(&env).await;
    env.mocks[0].set_faults(Faults {
        stall_after_chunks: Some(2),
        ..Faults::default()
    });
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"What is the weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;
    let t = Instant::now();
    let (status, _, body) = env.post("/v1/chat/completions", body).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("no data for 3000 ms"), "{body}");
    assert!(took >= Duration::from_millis(2900), "cut after {took:?}");
    env.stop().await;
}

/// With `stream_options.include_usage`, a continued stream carries one
/// usage chunk, the last deployment's, before `[DONE]`.
#[tokio::test]
async fn a_continued_stream_carries_the_last_deployments_usage() {
    let env = first_breaks(
        Faults {
            cut_after_chunks: Some(6),
            ..Faults::default()
        },
        "",
    )
    .await;
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{body}");
    assert_whole(&body, 20, "instruction");
    let usage: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter(|v| !v["usage"].is_null())
        .collect();
    assert_eq!(usage.len(), 1, "{body}");
    assert!(
        usage[0]["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
    env.stop().await;
}

/// The relay keeps at most 1 MiB of a stream for a continuation: a stream
/// that broke after more than that is not continued (it ends honestly).
#[tokio::test]
async fn a_stream_past_the_kept_bound_is_not_continued() {
    let m = voiced(&["alpha", "beta"], 9000, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(8000),
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &two_tiers("")), m).await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200);
    assert!(body.len() > 1 << 20, "{}", body.len());
    assert!(body.contains("event: error") && !body.contains("[DONE]"));
    assert_eq!(env.mocks[1].stats().requests, 0);
    env.stop().await;
}
