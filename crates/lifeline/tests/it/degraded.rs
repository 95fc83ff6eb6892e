//! Degraded mode over real sockets: with every deployment down, a request
//! identical to a recent successful temperature-0 one (volatile `user`
//! aside) is answered from the cache, marked stale with its age (a stream
//! gets the whole answer re-emitted as a chat stream); any other
//! gets the final 503 with `Retry-After` saying when the first deployment
//! is expected back (its breaker's cooldown).

use std::time::Duration;

use crate::fo_support::{attempts, cfg, metrics};
use crate::harness::{error_code, mocks, Env};

const SERVER: &[(&str, &str)] = &[("adaptive_concurrency", "false")];
/// A breaker opens at the first failure and stays open 30 s.
const HEALTH: &[(&str, &str)] = &[
    ("consecutive_failures", "1"),
    ("cooldown_ms", "30000"),
    ("max_cooldown_ms", "60000"),
];

fn model(extra: &str) -> String {
    format!(
        "[[models]]\nname = \"m\"\ndegraded = true\n{extra}\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }}, {{ provider = \"p1\", model = \"up-1\" }} ] ]\n"
    )
}

fn body(content: &str, temperature: Option<f64>, user: &str) -> String {
    let t = temperature.map_or(String::new(), |t| format!("\"temperature\":{t},"));
    format!("{{\"model\":\"m\",{t}\"user\":\"{user}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}]}}")
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn with_every_deployment_down_an_identical_request_is_answered_stale() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model("")), m).await;
    let path = "/v1/chat/completions";
    let (status, h, fresh) = env.post(path, &body("hi", Some(0.0), "alice")).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(header(&h, "x-lifeline-cache"), None);
    // Answered too, but never cached: temperature 1, and no temperature
    // (the API's default is 1).
    for t in [Some(1.0), None] {
        let (status, _, text) = env.post(path, &body("hi", t, "alice")).await;
        assert_eq!(status, 200, "{text}");
    }

    for mock in &env.mocks {
        mock.kill();
    }
    // Temperature 1: every attempt fails, both breakers open for 30 s, and
    // the final 503 says when the first is expected back.
    let (status, h, text) = env.post(path, &body("hi", Some(1.0), "alice")).await;
    assert_eq!(status, 503, "{text}");
    assert!(attempts(&h) >= 2, "{text}");
    let retry_after: u64 = header(&h, "retry-after").unwrap().parse().unwrap();
    assert!(
        (25..=30).contains(&retry_after),
        "Retry-After {retry_after}: {text}"
    );
    assert!(
        text.contains(&format!("expected back in about {retry_after} s")),
        "{text}"
    );
    assert_eq!(error_code(&text), "all_deployments_failed");

    // The temperature-0 request again, from another user: the stale answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, h, stale) = env.post(path, &body("hi", Some(0.0), "bob")).await;
    assert_eq!(status, 200, "{stale}");
    assert_eq!(stale, fresh);
    assert_eq!(header(&h, "x-lifeline-cache"), Some("stale"));
    let age: u64 = header(&h, "age").unwrap().parse().unwrap();
    assert!((1..=30).contains(&age), "Age {age}");
    assert!(header(&h, "x-request-id").is_some());

    // The same request as a stream: the whole answer re-emitted as a chat
    // stream, stale too.
    let stream = body("hi", Some(0.0), "carol").replacen('{', "{\"stream\":true,", 1);
    let (status, h, sse) = env.post(path, &stream).await;
    assert_eq!(status, 200, "{sse}");
    assert_eq!(header(&h, "x-lifeline-cache"), Some("stale"));
    assert!(header(&h, "content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
    let answer: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    let first: serde_json::Value = serde_json::from_str(
        sse.split("\n\n")
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["id"], answer["id"]);
    assert_eq!(
        first["choices"][0]["delta"]["content"],
        answer["choices"][0]["message"]["content"]
    );

    // Not the same request: no answer to give, the 503 with the cooldown.
    let (status, h, text) = env.post(path, &body("hello", Some(0.0), "bob")).await;
    assert_eq!(status, 503, "{text}");
    let retry_after: u64 = header(&h, "retry-after").unwrap().parse().unwrap();
    assert!((20..=30).contains(&retry_after), "{retry_after}: {text}");
    assert!(text.contains("expected back in about"), "{text}");
    // Nor a temperature-1 one, though its answer was seen, nor one without
    // a temperature.
    for t in [Some(1.0), None] {
        let (status, _, text) = env.post(path, &body("hi", t, "alice")).await;
        assert_eq!(status, 503, "{text}");
    }
    let text = metrics(&env).await;
    assert!(
        text.contains("lifeline_degraded_answers_total{model=\"m\"} 2"),
        "{text}"
    );
    env.stop().await;
}

/// POSTs `body` with `key` as its bearer token.
async fn post_as(env: &Env, key: &str, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let (status, h) = (resp.status().as_u16(), resp.headers().clone());
    (status, h, resp.text().await.unwrap())
}

#[tokio::test]
async fn one_keys_answer_is_never_served_to_another() {
    let m = mocks(1).await;
    let models = "[[models]]\nname = \"m\"\ndegraded = true\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    let toml = cfg(&m, SERVER, HEALTH, models).replace("auth = \"none\"", "auth = \"keys\"")
        + "\n[[keys]]\nname = \"a\"\nkey = \"sk-a\"\n\n[[keys]]\nname = \"b\"\nkey = \"sk-b\"\n";
    let env = Env::boot(&toml, m).await;
    // The same prompt (a shared template), asked by key a only.
    let prompt = body("the shared template", Some(0.0), "u");
    let (status, _, fresh) = post_as(&env, "sk-a", &prompt).await;
    assert_eq!(status, 200, "{fresh}");
    env.mocks[0].kill();
    // Key b never asked it: no answer of a's for b, the 503.
    let (status, h, text) = post_as(&env, "sk-b", &prompt).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(header(&h, "x-lifeline-cache"), None);
    // Key a gets its own answer back, stale.
    let (status, h, stale) = post_as(&env, "sk-a", &prompt).await;
    assert_eq!((status, stale), (200, fresh));
    assert_eq!(header(&h, "x-lifeline-cache"), Some("stale"));
    env.stop().await;
}

#[tokio::test]
async fn any_temperature_qualifies_when_configured_and_old_answers_do_not() {
    let m = mocks(1).await;
    let models = "[[models]]\nname = \"m\"\ndegraded = true\ndegraded_any_temperature = true\ndegraded_max_age_ms = 1500\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, models), m).await;
    let path = "/v1/chat/completions";
    let (status, _, fresh) = env.post(path, &body("hi", Some(0.7), "a")).await;
    assert_eq!(status, 200, "{fresh}");
    let (status, _, _) = env.post(path, &body("old", None, "a")).await;
    assert_eq!(status, 200);
    env.mocks[0].kill();
    let (status, h, stale) = env.post(path, &body("hi", Some(0.7), "b")).await;
    assert_eq!((status, stale), (200, fresh));
    assert_eq!(header(&h, "x-lifeline-cache"), Some("stale"));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, _, text) = env.post(path, &body("old", None, "a")).await;
    assert_eq!(status, 503, "older than degraded_max_age_ms: {text}");
    env.stop().await;
}

#[tokio::test]
async fn without_degraded_mode_nothing_is_served_stale() {
    let m = mocks(1).await;
    let models =
        "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, models), m).await;
    let path = "/v1/chat/completions";
    let (status, _, _) = env.post(path, &body("hi", Some(0.0), "a")).await;
    assert_eq!(status, 200);
    env.mocks[0].kill();
    let (status, h, text) = env.post(path, &body("hi", Some(0.0), "a")).await;
    assert_eq!(status, 503, "{text}");
    let retry_after: u64 = header(&h, "retry-after").unwrap().parse().unwrap();
    assert!((25..=30).contains(&retry_after), "{retry_after}: {text}");
    env.stop().await;
}

#[tokio::test]
async fn the_final_503_waits_for_the_upstreams_retry_after() {
    let m = mocks(2).await;
    let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" }, { provider = \"p1\", model = \"up-1\" } ] ]\n";
    // Breakers that stay closed: only the providers' `Retry-After` tells.
    let health = &[("consecutive_failures", "100"), ("min_requests", "100")];
    let env = Env::boot(&cfg(&m, SERVER, health, models), m).await;
    for mock in &env.mocks {
        mock.set_faults(lifeline_mock::Faults {
            retry_after_secs: Some(20),
            ..crate::fo_support::failing(429)
        });
    }
    let (status, h, text) = env
        .post("/v1/chat/completions", &body("hi", Some(0.0), "a"))
        .await;
    assert_eq!(status, 503, "{text}");
    let retry_after: u64 = header(&h, "retry-after").unwrap().parse().unwrap();
    assert!((15..=20).contains(&retry_after), "{retry_after}: {text}");
    assert!(
        text.contains(&format!("expected back in about {retry_after} s")),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_streaming_messages_request_gets_the_kept_answer_as_its_event_stream() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model("")), m).await;
    let path = "/v1/messages";
    let body = |stream: bool, user: &str| {
        format!("{{\"model\":\"m\",\"max_tokens\":64,\"temperature\":0,\"stream\":{stream},\"metadata\":{{\"user_id\":\"{user}\"}},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}")
    };
    let (status, _, fresh) = env.post(path, &body(false, "alice")).await;
    assert_eq!(status, 200, "{fresh}");
    for mock in &env.mocks {
        mock.kill();
    }
    let (status, h, sse) = env.post(path, &body(true, "bob")).await;
    assert_eq!(status, 200, "{sse}");
    assert_eq!(header(&h, "x-lifeline-cache"), Some("stale"));
    assert!(header(&h, "content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(
        sse.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{sse}"
    );
    let answer: serde_json::Value = serde_json::from_str(&fresh).unwrap();
    let mut text = String::new();
    for event in sse.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event.split_once("\ndata: ").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        if v["type"] == "message_start" {
            assert_eq!(v["message"]["id"], answer["id"]);
        }
        if let Some(t) = v["delta"]["text"].as_str() {
            text.push_str(t);
        }
    }
    assert_eq!(text, answer["content"][0]["text"].as_str().unwrap());
    env.stop().await;
}

/// The same body is a valid request to both chat APIs; a stale answer is
/// given only to the API it was answered on, in its wire (found by
/// `lifeline chaos`'s all-down scenario: a chat client got an Anthropic
/// message, marked stale, because both endpoints shared the cache key).
#[tokio::test]
async fn a_stale_answer_is_given_only_in_the_wire_it_was_answered_in() {
    let m = mocks(2).await;
    let env = Env::boot(&cfg(&m, SERVER, HEALTH, &model("")), m).await;
    let body = r#"{"model":"m","max_tokens":8,"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, fresh) = env.post("/v1/messages", body).await;
    assert_eq!(status, 200, "{fresh}");
    assert!(fresh.contains("\"type\":\"message\""), "{fresh}");
    for mock in &env.mocks {
        mock.kill();
    }
    let (status, h, text) = env.post("/v1/chat/completions", body).await;
    assert_eq!(
        status, 503,
        "an Anthropic message given to a chat client: {text}"
    );
    assert_eq!(header(&h, "x-lifeline-cache"), None);
    let (status, h, stale) = env.post("/v1/messages", body).await;
    assert_eq!(status, 200, "{stale}");
    assert_eq!(header(&h, "x-lifeline-cache"), Some("stale"));
    assert_eq!(stale, fresh);
}
