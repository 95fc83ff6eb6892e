//! Anthropic in and out, over real sockets against the real simulated
//! provider (which serves Anthropic's `/v1/messages` beside OpenAI's
//! paths): OpenAI clients on Anthropic deployments, Anthropic clients
//! (`POST /v1/messages`) on both, failover across protocols, ineligible
//! deployments, and every error of `/v1/messages` in Anthropic's shape.

use std::time::Duration;

use lifeline_mock::{Faults, MockHandle};
use serde_json::Value;

use crate::harness::{mocks, Env};

/// The protocol a test mock is configured as.
#[derive(Clone, Copy)]
pub(crate) enum P {
    /// `kind = "anthropic"`, pointed at the mock (no `/v1`).
    Anthropic,
    /// `kind = "openai-compatible"`.
    OpenAi,
}

/// `[[providers]]` p0..pn as `kinds` says, `[server]` extras, and `models`.
pub(crate) fn config(m: &[MockHandle], kinds: &[P], server_extra: &str, models: &str) -> String {
    let auth = if server_extra.contains("auth =") || models.contains("[[keys]]") {
        ""
    } else {
        "auth = \"none\"\n"
    };
    let mut providers = String::new();
    for (i, (mock, kind)) in m.iter().zip(kinds).enumerate() {
        let url = mock.base_url();
        providers.push_str(&match kind {
            P::Anthropic => format!(
                "[[providers]]\nname = \"p{i}\"\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"sk-ant-{i}\"\ndefault_max_tokens = 123\n\n",
                url.trim_end_matches("/v1")
            ),
            P::OpenAi => format!(
                "[[providers]]\nname = \"p{i}\"\nkind = \"openai-compatible\"\nbase_url = \"{url}\"\napi_key = \"sk-oai-{i}\"\n\n"
            ),
        });
    }
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{auth}{server_extra}\n\n[health]\ncooldown_ms = 1000\nprobe_interval_ms = 100\nprobe_timeout_ms = 500\nconsecutive_failures = 1000\nmin_requests = 1000\n\n{providers}{models}"
    )
}

/// One model `m` whose tiers hold the given provider indexes.
pub(crate) fn tiers(tiers: &[&[usize]]) -> String {
    let t: Vec<String> = tiers
        .iter()
        .map(|tier| {
            let members: Vec<String> = tier
                .iter()
                .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
                .collect();
            format!("[ {} ]", members.join(", "))
        })
        .collect();
    format!("[[models]]\nname = \"m\"\ntiers = [ {} ]\n", t.join(", "))
}

pub(crate) async fn boot(kinds: &[P], layout: &[&[usize]]) -> Env {
    let m = mocks(kinds.len()).await;
    Env::boot(&config(&m, kinds, "", &tiers(layout)), m).await
}

/// POSTs with extra headers.
pub(crate) async fn post_with(
    env: &Env,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = env
        .client
        .post(env.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(30));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.text().await.unwrap_or_default())
}

pub(crate) fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The SSE events of a body: (event name or "", data).
pub(crate) fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            (name, data)
        })
        .collect()
}

/// Anthropic's error shape, with `error.type`.
pub(crate) fn anthropic_error(body: &str) -> String {
    let v = json(body);
    assert_eq!(v["type"], "error", "{body}");
    assert!(v["error"]["message"].is_string(), "{body}");
    v["error"]["type"].as_str().unwrap_or_default().to_string()
}

pub(crate) fn deployment(h: &reqwest::header::HeaderMap) -> String {
    h.get("x-lifeline-deployment")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(crate) const CHAT: &str = r#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}"#;
pub(crate) const CHAT_STREAM: &str = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
pub(crate) const TOOLS_STREAM: &str = r#"{"model":"m","stream":true,"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"messages":[{"role":"user","content":"Weather in Paris?"}]}"#;
/// An Anthropic request as an SDK writes it, with a field Lifeline does not
/// know and odd spacing: passthrough must keep every byte but the model.
pub(crate) const MESSAGES: &str = r#"{"model": "m", "max_tokens": 64, "x_unknown": {"a": [1, 2]},  "messages": [{"role": "user", "content": "hi"}]}"#;
pub(crate) const MESSAGES_STREAM: &str =
    r#"{"model":"m","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn openai_client_on_an_anthropic_deployment_whole_answer() {
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    let (status, h, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployment(&h), "p0/up-0");
    let v = json(&body);
    assert_eq!(v["object"], "chat.completion", "{body}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(v["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0));
    // What the provider saw: its own protocol, path, auth and version.
    let seen = env.mocks[0].stats().recent;
    let r = seen.last().expect("recorded");
    assert_eq!(r.path_and_query, "/v1/messages");
    assert_eq!(
        r.x_api_key.as_deref(),
        Some(lifeline_mock::redact("sk-ant-0").as_str())
    );
    assert_eq!(r.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(r.authorization, None, "no Authorization leaked");
    let sent = json(&r.body);
    assert_eq!(sent["model"], "up-0");
    // The provider's default_max_tokens, since the request set none.
    assert_eq!(sent["max_tokens"], 123);
    assert_eq!(sent["system"], "Be brief.", "{sent}");
    env.stop().await;
}

#[tokio::test]
async fn openai_client_on_an_anthropic_deployment_streams_in_openai_grammar() {
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    let (status, h, body) = env.post("/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(status, 200, "{body}");
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = events(&body);
    assert!(ev.iter().all(|(name, _)| name.is_empty()), "{body}");
    assert_eq!(ev.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = ev[..ev.len() - 1].iter().map(|e| json(&e.1)).collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty(), "{body}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{body}"
    );
    // The usage chunk the client asked for.
    assert!(
        chunks
            .iter()
            .any(|c| c["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0)),
        "{body}"
    );
    env.stop().await;
}

#[tokio::test]
async fn openai_client_streams_a_tool_call_from_an_anthropic_deployment() {
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    let (status, _, body) = env.post("/v1/chat/completions", TOOLS_STREAM).await;
    assert_eq!(status, 200, "{body}");
    let ev = events(&body);
    assert_eq!(ev.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = ev[..ev.len() - 1].iter().map(|e| json(&e.1)).collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{body}");
    assert!(calls[0]["id"].is_string(), "{body}");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(json(&args), serde_json::json!({"city": "Paris"}), "{body}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"),
        "{body}"
    );
    // The provider got Anthropic's tools.
    let r = env.mocks[0].stats().recent.pop().expect("recorded");
    let sent = json(&r.body);
    assert_eq!(sent["tools"][0]["name"], "get_weather", "{sent}");
    assert!(sent["tools"][0]["input_schema"].is_object(), "{sent}");
    env.stop().await;
}

#[tokio::test]
async fn an_anthropic_error_reaches_an_openai_client_in_openai_shape() {
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    env.mocks[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 400,
        ..Faults::default()
    });
    let (status, _, body) = env.post("/v1/chat/completions", CHAT).await;
    // The provider's 400 to a translated request is returned, in OpenAI's shape.
    assert_eq!(status, 400, "{body}");
    let v = json(&body);
    assert!(v["error"]["message"].is_string(), "{body}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
    assert!(v.get("type").is_none(), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn anthropic_529_is_retried_on_another_deployment() {
    let env = boot(&[P::Anthropic, P::Anthropic], &[&[0], &[1]]).await;
    env.mocks[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 529,
        ..Faults::default()
    });
    for _ in 0..3 {
        let (status, h, body) = env.post("/v1/chat/completions", CHAT).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(deployment(&h), "p1/up-1");
    }
    // Tried, and counted as a server error like a 503 (not the client's).
    assert!(env.mocks[0].stats().requests >= 3);
    let metrics = env
        .client
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("p0/up-0") && l.contains("outcome=\"status_error\"")),
        "{metrics}"
    );
    env.stop().await;
}

#[tokio::test]
async fn anthropic_client_on_an_anthropic_deployment_is_passthrough() {
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    let (status, h, body) = post_with(
        &env,
        "/v1/messages",
        &[
            ("x-api-key", "anything"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
        ],
        MESSAGES,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(h.contains_key("request-id") && h.contains_key("x-request-id"));
    let v = json(&body);
    assert_eq!(v["type"], "message", "{body}");
    assert_eq!(v["content"][0]["type"], "text", "{body}");
    let r = env.mocks[0].stats().recent.pop().expect("recorded");
    // Byte for byte, but the model.
    assert_eq!(
        r.body,
        MESSAGES.replace(r#""model": "m""#, r#""model": "up-0""#)
    );
    assert_eq!(
        r.x_api_key.as_deref(),
        Some(lifeline_mock::redact("sk-ant-0").as_str()),
        "the provider's key"
    );
    assert_eq!(
        r.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(r.authorization, None);

    // A stream keeps Anthropic's grammar as the provider wrote it.
    let (status, _, body) = post_with(&env, "/v1/messages", &[], MESSAGES_STREAM).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<String> = events(&body).into_iter().map(|e| e.0).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(names.iter().any(|n| n == "message_delta"));
    env.stop().await;
}

/// The body of the last request `m` received.
pub(crate) fn r_n(m: &MockHandle) -> String {
    m.stats().recent.pop().expect("recorded").body
}

/// Consecutive duplicates removed: the shape of a stream.
pub(crate) fn shape(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if out.last() != Some(&n) {
            out.push(n);
        }
    }
    out
}

#[tokio::test]
async fn anthropic_client_on_an_openai_deployment_is_translated() {
    let env = boot(&[P::OpenAi], &[&[0]]).await;
    let (status, h, body) = post_with(&env, "/v1/messages", &[], MESSAGES).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployment(&h), "p0/up-0");
    let v = json(&body);
    assert_eq!(v["type"], "message", "{body}");
    assert_eq!(v["role"], "assistant", "{body}");
    assert!(v["content"][0]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    // The mock writes `max_tokens` words when asked for them: `length`.
    assert_eq!(v["stop_reason"], "max_tokens", "{body}");
    let r = env.mocks[0].stats().recent.pop().expect("recorded");
    assert_eq!(r.path_and_query, "/v1/chat/completions");
    assert_eq!(
        r.authorization.as_deref(),
        Some(lifeline_mock::redact("Bearer sk-oai-0").as_str())
    );
    assert_eq!(json(&r.body)["model"], "up-0");

    // Streamed: Anthropic's grammar, event by event.
    let (status, _, body) = post_with(&env, "/v1/messages", &[], MESSAGES_STREAM).await;
    assert_eq!(status, 200, "{body}");
    let ev = events(&body);
    for (name, data) in &ev {
        assert_eq!(json(data)["type"], name.as_str(), "{body}");
    }
    let names = shape(ev.iter().map(|e| e.0.clone()).collect());
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{body}"
    );
    let delta = ev.iter().find(|e| e.0 == "message_delta").unwrap();
    assert_eq!(json(&delta.1)["delta"]["stop_reason"], "max_tokens");
    let text: String = ev
        .iter()
        .filter(|e| e.0 == "content_block_delta")
        .filter_map(|e| json(&e.1)["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert!(!text.is_empty(), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn a_broken_translated_stream_ends_with_anthropics_error_event() {
    let env = boot(&[P::OpenAi], &[&[0]]).await;
    env.mocks[0].set_faults(Faults {
        cut_after_chunks: Some(3),
        ..Faults::default()
    });
    let (status, _, body) = post_with(&env, "/v1/messages", &[], MESSAGES_STREAM).await;
    assert_eq!(status, 200, "{body}");
    let ev = events(&body);
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "error", "{body}");
    assert_eq!(anthropic_error(data), "api_error", "{body}");
    assert!(!ev.iter().any(|e| e.0 == "message_stop"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn a_model_fails_over_from_anthropic_to_openai() {
    let env = boot(&[P::Anthropic, P::OpenAi], &[&[0], &[1]]).await;
    env.mocks[0].set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    // Both client wires, both streaming and not.
    let (status, h, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    assert_eq!(json(&body)["object"], "chat.completion");
    let (status, h, body) = post_with(&env, "/v1/messages", &[], MESSAGES).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    assert_eq!(json(&body)["type"], "message");
    let (status, h, body) = post_with(&env, "/v1/messages", &[], MESSAGES_STREAM).await;
    assert_eq!((status, deployment(&h)), (200, "p1/up-1".into()), "{body}");
    assert_eq!(events(&body).last().unwrap().0, "message_stop", "{body}");
    env.stop().await;
}

#[tokio::test]
async fn a_request_anthropic_cannot_take_makes_its_deployments_ineligible() {
    // Anthropic only: n = 2 cannot be translated; the final error says why,
    // and the provider never saw the request.
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    let n2 = r#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, h, body) = env.post("/v1/chat/completions", n2).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(h["x-lifeline-attempts"], "0");
    let v = json(&body);
    assert_eq!(v["error"]["code"], "no_eligible_deployment", "{body}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("p0/up-0") && msg.contains("n > 1"), "{msg}");
    // An endpoint the Anthropic adapter does not serve.
    let (status, _, body) = env
        .post("/v1/embeddings", r#"{"model":"m","input":"hi"}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("does not serve"), "{body}");
    assert_eq!(env.mocks[0].stats().requests, 0);
    env.stop().await;

    // With an OpenAI fallback: answered there, without a retry-budget token
    // or a failure on the Anthropic deployment.
    let env = boot(&[P::Anthropic, P::OpenAi], &[&[0], &[1]]).await;
    let (status, h, body) = env.post("/v1/chat/completions", n2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployment(&h), "p1/up-1");
    assert_eq!(h["x-lifeline-attempts"], "1");
    assert_eq!(json(&r_n(&env.mocks[1]))["n"], 2, "sent as it was");
    assert_eq!(env.mocks[0].stats().requests, 0);
    let metrics = env
        .client
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.contains("p0/up-0") && l.contains("outcome=")),
        "no attempt counted on p0:\n{metrics}"
    );
    env.stop().await;
}

#[tokio::test]
async fn every_error_of_v1_messages_is_in_anthropics_shape() {
    let m = mocks(1).await;
    let models = format!(
        "{}\n[[keys]]\nname = \"app\"\nkey = \"sk-client\"\nrpm = 2\n",
        tiers(&[&[0]])
    );
    let env = Env::boot(
        &config(&m, &[P::OpenAi], "max_body_bytes = 4096", &models),
        m,
    )
    .await;
    let key = [("x-api-key", "sk-client")];
    // 401: no key, and a wrong one.
    let (status, h, body) = post_with(&env, "/v1/messages", &[], MESSAGES).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(anthropic_error(&body), "authentication_error");
    assert!(h.contains_key("request-id"));
    let (status, _, body) =
        post_with(&env, "/v1/messages", &[("x-api-key", "sk-wrong")], MESSAGES).await;
    assert_eq!(
        (status, anthropic_error(&body)),
        (401, "authentication_error".into())
    );
    // 413.
    let big = format!(
        r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(5000)
    );
    let (status, _, body) = post_with(&env, "/v1/messages", &key, &big).await;
    assert_eq!(
        (status, anthropic_error(&body)),
        (413, "request_too_large".into())
    );
    // 400: bad JSON, and no max_tokens.
    let (status, _, body) = post_with(&env, "/v1/messages", &key, "{\"model\":").await;
    assert_eq!(
        (status, anthropic_error(&body)),
        (400, "invalid_request_error".into())
    );
    let no_max = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = post_with(&env, "/v1/messages", &key, no_max).await;
    assert_eq!(
        (status, anthropic_error(&body)),
        (400, "invalid_request_error".into())
    );
    assert!(body.contains("max_tokens"), "{body}");
    // 404: an unknown model.
    let unknown = MESSAGES.replace(r#""model": "m""#, r#""model": "nope""#);
    let (status, _, body) = post_with(&env, "/v1/messages", &key, &unknown).await;
    assert_eq!(
        (status, anthropic_error(&body)),
        (404, "not_found_error".into())
    );
    // x-api-key works; then the key's rpm = 2 is spent: 429 with retry-after.
    let (status, _, body) = post_with(&env, "/v1/messages", &key, MESSAGES).await;
    assert_eq!(status, 200, "{body}");
    let mut limited = None;
    for _ in 0..3 {
        let (status, h, body) = post_with(&env, "/v1/messages", &key, MESSAGES).await;
        if status == 429 {
            limited = Some((h, body));
            break;
        }
    }
    let (h, body) = limited.expect("rate limited");
    assert_eq!(anthropic_error(&body), "rate_limit_error");
    assert!(h.contains_key("retry-after"), "{h:?}");
    // 405 on the path, in Anthropic's shape too.
    let resp = env
        .client
        .get(env.url("/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        anthropic_error(&resp.text().await.unwrap()),
        "invalid_request_error"
    );
    // The OpenAI routes keep OpenAI's shape, and take x-api-key too.
    let (status, _, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!(status, 401);
    assert!(json(&body)["error"]["code"].is_string(), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn models_are_listed_in_anthropics_shape_for_anthropic_clients() {
    let env = boot(&[P::OpenAi], &[&[0]]).await;
    let get = |h: Option<(&'static str, &'static str)>, path: &'static str| {
        let mut r = env.client.get(env.url(path));
        if let Some((k, v)) = h {
            r = r.header(k, v);
        }
        r.send()
    };
    let v = json(&get(None, "/v1/models").await.unwrap().text().await.unwrap());
    assert_eq!(v["object"], "list");
    let resp = get(Some(("anthropic-version", "2023-06-01")), "/v1/models")
        .await
        .unwrap();
    assert!(resp.headers().contains_key("request-id"));
    let v = json(&resp.text().await.unwrap());
    assert_eq!(v["data"][0]["type"], "model", "{v}");
    assert_eq!(v["data"][0]["id"], "m");
    assert!(v["data"][0]["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        (v["first_id"].clone(), v["has_more"].clone()),
        ("m".into(), false.into())
    );
    let resp = get(Some(("anthropic-version", "2023-06-01")), "/v1/models/nope")
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        anthropic_error(&resp.text().await.unwrap()),
        "not_found_error"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_simulated_provider_can_speak_anthropic() {
    // `kind = "mock"` with `protocol = "anthropic"`: the in-process mock
    // served through the Anthropic adapter.
    let toml = "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\n\n[[providers]]\nname = \"sim\"\nkind = \"mock\"\nprotocol = \"anthropic\"\n[providers.mock]\ntokens_per_second = 0.0\nttft_ms = 0\ncompletion_tokens = 4\n\n[[models]]\nname = \"m\"\ntiers = [[{ provider = \"sim\", model = \"claude-x\" }]]\n";
    let env = Env::boot(toml, Vec::new()).await;
    let (status, _, body) = env.post("/v1/chat/completions", CHAT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["object"], "chat.completion");
    let mock = env.gw.mock("sim").await.expect("running");
    let r = mock.stats().recent.pop().expect("recorded");
    assert_eq!(r.path_and_query, "/v1/messages");
    assert_eq!(r.anthropic_version.as_deref(), Some("2023-06-01"));
    let (status, _, body) = post_with(&env, "/v1/messages", &[], MESSAGES).await;
    assert_eq!(
        (status, json(&body)["type"].clone()),
        (200, "message".into()),
        "{body}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_finished_stream_without_its_terminal_event_ends_in_the_clients_grammar() {
    // Passthrough: an Anthropic stream without `message_stop` gets one.
    let env = boot(&[P::Anthropic], &[&[0]]).await;
    env.mocks[0].set_faults(Faults {
        no_done: true,
        ..Faults::default()
    });
    let (status, _, body) = post_with(&env, "/v1/messages", &[], MESSAGES_STREAM).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<String> = events(&body).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "{body}"
    );
    assert_eq!(names.iter().filter(|n| *n == "message_stop").count(), 1);
    assert!(!body.contains("[DONE]"), "{body}");
    // Translated: the OpenAI client gets its `[DONE]`, once.
    let (status, _, body) = env.post("/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(status, 200, "{body}");
    let ev = events(&body);
    assert_eq!(ev.last().map(|e| e.1.as_str()), Some("[DONE]"), "{body}");
    assert_eq!(ev.iter().filter(|e| e.1 == "[DONE]").count(), 1, "{body}");
    assert!(!body.contains("event:"), "{body}");
    env.stop().await;
}
