//! The API surface: bodies pass through byte for byte except `model`, every
//! data-plane endpoint answers, request ids travel both ways, Azure gets its
//! URL and header shape, Responses streams end on their own terminal event,
//! and `/metrics` and the admin API expose the promised series without ever
//! showing a key.

use lifeline_mock::Faults;

use crate::harness::{config, mocks, one_tier, Env};
use crate::streaming::{metrics, two_tiers};

/// The POST requests a mock received, oldest first.
fn posts(mock: &lifeline_mock::MockHandle) -> Vec<lifeline_mock::RecordedRequest> {
    mock.stats()
        .recent
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn body_passes_through_byte_for_byte_except_model() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let sent = "{ \"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9 \\\"q\\\"\"}],\n  \"model\" : \"m\", \"encoding_format\":\"base64\",\"x_custom\":{\"a\":[1,2.50,null]},\"temperature\":0.70 }";
    let (status, _, body) = env.post("/v1/chat/completions", sent).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["model"], "up-0", "{body}");
    let seen = posts(&env.mocks[0]);
    assert_eq!(seen.len(), 1);
    let want = sent.replace("\"model\" : \"m\"", "\"model\" : \"up-0\"");
    assert_eq!(seen[0].body, want);
    env.stop().await;
}

#[tokio::test]
async fn every_endpoint_answers() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;

    let (status, _, body) = env
        .post("/v1/embeddings", r#"{"model":"m","input":["a","b"]}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(v["model"], "up-0");

    let (status, _, body) = env
        .post(
            "/v1/embeddings",
            r#"{"model":"m","input":"a","encoding_format":"base64"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["data"][0]["embedding"].is_string(), "{body}");

    let (status, _, body) = env
        .post(
            "/v1/images/generations",
            r#"{"model":"m","prompt":"a cat","response_format":"b64_json"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(json(&body)["data"][0]["b64_json"].is_string(), "{body}");

    let (status, _, body) = env
        .post("/v1/responses", r#"{"model":"m","input":"hi"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "up-0");

    let (status, headers, body) = env
        .post(
            "/v1/responses",
            r#"{"model":"m","input":"hi","stream":true}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(body.contains("event: response.completed"), "{body}");
    assert!(
        !body.contains("[DONE]"),
        "[DONE] added to a Responses stream: {body}"
    );
    assert!(!body.contains("event: error"), "{body}");

    let resp = env.client.get(env.url("/v1/models")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v = json(&resp.text().await.unwrap());
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["m"], "{v}");
    assert_eq!(v["object"], "list");

    let paths = env.mocks[0].stats().by_path;
    assert_eq!(paths.get("/v1/embeddings"), Some(&2), "{paths:?}");
    assert_eq!(paths.get("/v1/images/generations"), Some(&1));
    assert_eq!(paths.get("/v1/responses"), Some(&2));
    env.stop().await;
}

#[tokio::test]
async fn request_id_is_echoed_forwarded_or_generated() {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    for stream in [false, true] {
        let b = body.replace("\"messages\"", &format!("\"stream\":{stream},\"messages\""));
        let resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("x-request-id", format!("client-id-{stream}"))
            .body(b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["x-request-id"],
            format!("client-id-{stream}").as_str()
        );
        resp.text().await.unwrap();
        let last = posts(&env.mocks[0]).pop().unwrap();
        assert_eq!(
            last.request_id.as_deref(),
            Some(format!("client-id-{stream}").as_str())
        );
    }
    let (status, headers, _) = env.chat(false).await;
    assert_eq!(status, 200);
    let generated = headers["x-request-id"].to_str().unwrap().to_string();
    assert!(!generated.is_empty());
    assert_ne!(generated, "client-id-false");
    let last = posts(&env.mocks[0]).pop().unwrap();
    assert_eq!(last.request_id.as_deref(), Some(generated.as_str()));
    // Errors carry one too.
    let (status, headers, _) = env.post("/v1/chat/completions", "{").await;
    assert_eq!(status, 400);
    assert!(headers.contains_key("x-request-id"));
    env.stop().await;
}

#[tokio::test]
async fn azure_gets_deployment_url_and_api_key_header() {
    let m = mocks(1).await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\n\n[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"http://{}\"\napi_key = \"az-key\"\napi_version = \"2024-10-21\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"az\", model = \"gpt4-prod\" }} ] ]\n",
        m[0].addr()
    );
    let env = Env::boot(&toml, m).await;
    for stream in [false, true] {
        let (status, headers, body) = env.chat(stream).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-lifeline-deployment"], "az/gpt4-prod");
        let last = posts(&env.mocks[0]).pop().unwrap();
        assert_eq!(
            last.path_and_query,
            "/openai/deployments/gpt4-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            last.api_key.as_deref(),
            Some(lifeline_mock::redact("az-key").as_str())
        );
        assert_eq!(last.authorization, None);
    }
    let (status, _, body) = env
        .post("/v1/embeddings", r#"{"model":"m","input":"a"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let last = posts(&env.mocks[0]).pop().unwrap();
    assert_eq!(
        last.path_and_query,
        "/openai/deployments/gpt4-prod/embeddings?api-version=2024-10-21"
    );
    env.stop().await;
}

#[tokio::test]
async fn metrics_and_admin_show_series_but_no_keys() {
    let m = mocks(2).await;
    let models = format!(
        "{}\n[[keys]]\nname = \"app\"\nkey = \"sk-client-secret\"\n",
        one_tier(&m)
    );
    let env = Env::boot(&config(&m, "auth = \"keys\"", &models), m).await;
    for stream in [false, true] {
        let resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .header("authorization", "Bearer sk-client-secret")
            .body(format!(
                r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
    let text = metrics(&env).await;
    for name in [
        "lifeline_requests_total{model=\"m\",status=\"200\"}",
        "lifeline_attempts_total{deployment=\"p",
        "lifeline_request_duration_seconds_bucket",
        "lifeline_time_to_first_token_seconds_bucket",
        "lifeline_in_flight_requests",
        "lifeline_breaker_state{deployment=\"p0/up-0\"}",
        "lifeline_breaker_state{deployment=\"p1/up-1\"}",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    let admin = env
        .client
        .get(env.admin_url("/admin/deployments"))
        .header("authorization", "Bearer admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    let admin = admin.text().await.unwrap();
    assert_eq!(
        json(&admin)["deployments"].as_array().map(Vec::len),
        Some(2)
    );
    let unauthorized = env
        .client
        .get(env.admin_url("/admin/deployments"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    for secret in ["sk-upstream", "sk-client-secret", "admin-secret"] {
        assert!(!text.contains(secret), "{secret} in /metrics");
        assert!(!admin.contains(secret), "{secret} in admin JSON");
    }
    env.stop().await;
}

#[tokio::test]
async fn responses_stream_without_completed_event_ends_with_error() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        no_done: true,
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let (status, _, body) = env
        .post(
            "/v1/responses",
            r#"{"model":"m","input":"hi","stream":true}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("response.output_text.delta"), "{body}");
    assert!(!body.contains("response.completed"), "{body}");
    assert!(
        body.contains("event: error"),
        "incomplete answer looks complete: {body}"
    );
    assert!(!body.contains("[DONE]"), "{body}");
    env.stop().await;
}

#[tokio::test]
async fn responses_stream_cut_before_content_fails_over() {
    let m = mocks(2).await;
    m[0].set_faults(Faults {
        cut_after_chunks: Some(1),
        ..Faults::default()
    });
    let env = Env::boot(&config(&m, "", &two_tiers("tier_wait_ms = 0")), m).await;
    let (status, headers, body) = env
        .post(
            "/v1/responses",
            r#"{"model":"m","input":"hi","stream":true}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-lifeline-attempts"], "2", "{body}");
    assert!(body.contains("event: response.completed"), "{body}");
    assert!(!body.contains("event: error"), "{body}");
    env.stop().await;
}

/// `GET /v1/models/{id}` (the SDKs' `models.retrieve`): the public model, or
/// OpenAI's 404 for one that does not exist.
#[tokio::test]
async fn a_model_can_be_retrieved_by_name() {
    let m = crate::harness::mocks(1).await;
    let env = crate::harness::Env::boot(
        &crate::harness::config(&m, "", &crate::harness::one_tier(&m)),
        m,
    )
    .await;
    let resp = env
        .client
        .get(env.url("/v1/models/m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["id"], "m");
    assert_eq!(v["object"], "model");
    let resp = env
        .client
        .get(env.url("/v1/models/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        crate::harness::error_code(&resp.text().await.unwrap()),
        "model_not_found"
    );
    env.stop().await;
}
