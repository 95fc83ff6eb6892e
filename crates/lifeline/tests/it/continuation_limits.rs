//! Continued streams at their limits: an upstream's in-band error event
//! after content (a break, withheld while the stream may be continued), the
//! client's `max_tokens` (a continuation asks only for what is left; a
//! stream broken at its limit ends finished by length), and the key's
//! token charge of a continued stream.

use lifeline_mock::Faults;

use crate::continuation::*;
use crate::harness::{config, Env};
use crate::streaming::{stream_body, two_tiers};

/// An in-band error chunk after content (OpenAI's `data: {"error":…}`
/// after HTTP 200) is a break like any other: the client never sees it,
/// and the stream is continued.
#[tokio::test]
async fn an_in_band_error_after_content_is_continued() {
    let env = first_breaks(
        Faults {
            error_after_chunks: Some(6),
            ..Faults::default()
        },
        "",
    )
    .await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("Overloaded"), "{body}");
    assert_whole(&body, 20, "instruction");
    env.stop().await;
}

/// Anthropic's `event: error` (`overloaded_error`) after content, on an
/// Anthropic client's stream: withheld, and the stream is continued in
/// Anthropic's grammar.
#[tokio::test]
async fn an_anthropic_error_event_after_content_is_continued() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(Faults {
        error_after_chunks: Some(9),
        ..Faults::default()
    });
    let env = Env::boot(&mixed(&m, &[true, true], &two_tiers("")), m).await;
    let body = r#"{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/messages", body).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("event: error") && !body.contains("overloaded_error"),
        "{body}"
    );
    let (text, starts) = anthropic_view(&body);
    assert_eq!(starts, 1, "{body}");
    assert_eq!(
        numbers(&text),
        (1..=20).collect::<Vec<_>>(),
        "{text:?}\n{body}"
    );
    assert!(text.contains("beta"), "not continued elsewhere: {text}");
    assert!(body.contains(": lifeline continued=1 method="), "{body}");
    assert!(
        body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{body}"
    );
    env.stop().await;
}

/// With nothing to continue the stream (continuation off), the upstream's
/// error event reaches the client as it was sent.
#[tokio::test]
async fn an_in_band_error_is_relayed_when_nothing_continues() {
    let env = first_breaks(
        Faults {
            error_after_chunks: Some(6),
            ..Faults::default()
        },
        "continuation = false",
    )
    .await;
    let (status, _, body) = env.post("/v1/chat/completions", &stream_body("m")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Overloaded (simulated)"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
    assert_eq!(env.mocks[1].stats().requests, 0);
    env.stop().await;
}

/// A continuation may write only what is left of the client's
/// `max_tokens`: the joined answer is never longer than the client allowed.
#[tokio::test]
async fn a_continuation_asks_only_for_what_is_left_of_max_tokens() {
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
    let body = r#"{"model":"m","stream":true,"max_tokens":12,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{body}");
    let sent = &env.mocks[1].stats().recent[0].body;
    let v: serde_json::Value = serde_json::from_str(sent).unwrap();
    // Five words reached the client before the cut.
    assert_eq!(v["max_tokens"], 7, "{sent}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    // (The mock counts the prefill's words in its limit, so it stops
    // sooner than a real model would: the point is the limit it was sent.)
    let (text, _) = client_view(&body);
    let n = numbers(&text);
    assert!(n.len() > 5 && n.len() <= 12, "{text:?}");
    assert_eq!(n, (1..=n.len() as u32).collect::<Vec<_>>(), "{text:?}");
    assert!(body.contains("\"finish_reason\":\"length\""), "{body}");
    env.stop().await;
}

/// A stream that broke when its output had reached the client's
/// `max_tokens` is not continued: it ends as finished by its length, in
/// the client's grammar.
#[tokio::test]
async fn a_stream_broken_at_its_max_tokens_ends_finished_by_length() {
    let env = first_breaks(
        Faults {
            cut_after_chunks: Some(6),
            ..Faults::default()
        },
        "",
    )
    .await;
    let body =
        r#"{"model":"m","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/chat/completions", body).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("event: error"), "{body}");
    let tail = body.rsplit("data: ").nth(1).unwrap_or_default();
    assert!(tail.contains("\"finish_reason\":\"length\""), "{body}");
    assert!(body.ends_with("\n\ndata: [DONE]\n\n"), "{body}");
    let (text, ids) = client_view(&body);
    assert_eq!(numbers(&text), (1..=5).collect::<Vec<_>>(), "{text:?}");
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(env.mocks[1].stats().requests, 0);
    let complete = "lifeline_streams_total{model=\"m\",outcome=\"complete\"}";
    assert_eq!(counter(&env, complete).await, 1.0);
    env.stop().await;
}

/// The same for an Anthropic client: the open block is closed, and the
/// message ends with `stop_reason: "max_tokens"` and `message_stop`.
#[tokio::test]
async fn an_anthropic_stream_broken_at_its_max_tokens_ends_with_max_tokens() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    // message_start, ping, content_block_start, then six words.
    m[0].set_faults(Faults {
        cut_after_chunks: Some(9),
        ..Faults::default()
    });
    let env = Env::boot(&mixed(&m, &[true, true], &two_tiers("")), m).await;
    let body =
        r#"{"model":"m","max_tokens":6,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/messages", body).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("event: error"), "{body}");
    let (text, _) = anthropic_view(&body);
    assert_eq!(numbers(&text), (1..=6).collect::<Vec<_>>(), "{text:?}");
    assert!(
        body.contains("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\n"),
        "{body}"
    );
    assert!(body.contains("\"stop_reason\":\"max_tokens\""), "{body}");
    assert!(
        body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{body}"
    );
    assert_eq!(env.mocks[1].stats().requests, 0);
    env.stop().await;
}

/// A continued stream's token charge counts the whole answer: the last
/// deployment's usage, plus the output the client had from the streams it
/// replaced (which that usage does not count).
#[tokio::test]
async fn a_continued_streams_charge_counts_the_output_before_the_break() {
    let m = voiced(&["alpha", "beta"], 20, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(6),
        ..Faults::default()
    });
    let toml = format!(
        "{}\n[[keys]]\nname = \"tok\"\nkey = \"sk-tok\"\ntpm = 1000000\n",
        config(&m, "auth = \"keys\"", &two_tiers(""))
    );
    let env = Env::boot(&toml, m).await;
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .bearer_auth("sk-tok")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert_whole(&body, 20, "instruction");
    let usage = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .find_map(|v| v.get("usage").filter(|u| u.is_object()).cloned())
        .unwrap();
    // The usage chunk counts the whole answer (20 words; the five sent
    // before the cut added to what the last deployment wrote) ...
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!(completion >= 20, "{usage}");
    // ... and so does the key's charge.
    let series = "lifeline_key_tokens_total{key=\"tok\"}";
    let total = usage["total_tokens"].as_u64().unwrap();
    assert_eq!(counter(&env, series).await, total as f64);
    env.stop().await;
}

/// A continuation stream that takes what the client was sent past what may
/// be kept (1 MiB) is still fitted to the client's stream to its end (its
/// events rewritten, the trailing comment, the usage): only a further break
/// would no longer be continued.
#[tokio::test]
async fn a_continuation_past_what_may_be_kept_is_still_spliced_to_its_end() {
    const WORDS: u32 = 12_000;
    let m = voiced(&["alpha", "beta"], WORDS, 0.0).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(9),
        ..Faults::default()
    });
    let env = Env::boot(&mixed(&m, &[true, true], &two_tiers("")), m).await;
    let body = r#"{"model":"m","max_tokens":20000,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = env.post("/v1/messages", body).await;
    assert_eq!(status, 200);
    assert!(body.len() > 1 << 20, "{} bytes only", body.len());
    assert!(!body.contains("event: error"));
    let (text, starts) = anthropic_view(&body);
    assert_eq!(starts, 1);
    assert_eq!(numbers(&text), (1..=WORDS).collect::<Vec<_>>());
    assert!(
        body.contains(": lifeline continued=1 method="),
        "no trailing comment: the splice was dropped"
    );
    assert!(body.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    env.stop().await;
}
