//! The real third-party client, `async-openai`, against the gateway.
//!
//! Hand-written HTTP in the other modules proves what Lifeline sends; these
//! tests prove an SDK that was written against OpenAI understands it: its
//! typed responses parse, its SSE reader sees chunks and a clean end, the
//! base64 embeddings it asks for come back, and every failure surfaces as the
//! SDK's own error (`OpenAIError::ApiError`, or a stream error for a broken
//! stream) with the status and code an application would branch on.
//!
//! async-openai 0.43 retries 429/5xx by itself (3 retries, honouring
//! `Retry-After`, ignoring `x-should-retry`) and offers no way to turn that
//! off without its `middleware` feature, so the test that makes every
//! deployment fail takes a few seconds and bounds its time generously.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::{ApiErrorResponse, OpenAIError};
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionStreamOptions, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs, FinishReason, Role,
};
use async_openai::types::embeddings::{CreateEmbeddingRequestArgs, EmbeddingInput, EncodingFormat};
use async_openai::Client;
use futures::StreamExt;
use lifeline_mock::{Faults, MockHandle};
use tokio::time::Instant;

use crate::harness::{config, mocks, one_tier, Env};

/// Longest wait for any one SDK call or stream item.
const STEP: Duration = Duration::from_secs(30);

/// An SDK client pointed at the gateway, with a client key of its own.
fn sdk(env: &Env) -> Client<OpenAIConfig> {
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("http://{}/v1", env.addr))
            .with_api_key("sk-client-key"),
    )
}

async fn boot(n: usize) -> Env {
    let m = mocks(n).await;
    Env::boot(&config(&m, "", &one_tier(&m)), m).await
}

fn chat_request(model: &str) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model(model)
        .messages(vec![ChatCompletionRequestMessage::User("hi".into())])
        .build()
        .unwrap()
}

/// What mock `p{i}` answers with the harness's 5 completion tokens.
fn answer_of(i: usize) -> String {
    (1..=5)
        .map(|k| format!("p{i}{k}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_faults(mocks: &[MockHandle], faults: &Faults) {
    for m in mocks {
        m.set_faults(faults.clone());
    }
}

fn requests(mocks: &[MockHandle]) -> u64 {
    mocks.iter().map(|m| m.stats().requests).sum()
}

/// The `ApiError` inside `result`, or a panic naming what came instead.
fn api_error<T: std::fmt::Debug>(result: Result<T, OpenAIError>) -> ApiErrorResponse {
    match result {
        Err(OpenAIError::ApiError(e)) => e,
        other => panic!("expected OpenAIError::ApiError, got {other:?}"),
    }
}

#[tokio::test]
async fn sdk_parses_a_chat_completion() {
    let env = boot(1).await;
    let client = sdk(&env);
    let resp = tokio::time::timeout(STEP, client.chat().create(chat_request("m")))
        .await
        .expect("answer in time")
        .expect("typed response");
    assert_eq!(resp.model, "up-0", "the upstream model names the answer");
    assert_eq!(resp.object, "chat.completion");
    assert_eq!(resp.choices.len(), 1);
    let choice = &resp.choices[0];
    assert_eq!(choice.message.role, Role::Assistant);
    assert_eq!(choice.message.content.as_deref(), Some(&*answer_of(0)));
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    let usage = resp.usage.expect("usage present");
    assert_eq!(usage.completion_tokens, 5);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    // The provider saw the deployment's key and model, never the client's key.
    let seen = env.mocks[0]
        .stats()
        .recent
        .last()
        .cloned()
        .expect("recorded");
    assert_eq!(
        seen.authorization,
        Some(lifeline_mock::redact("Bearer sk-upstream-0"))
    );
    assert!(seen.body.contains(r#""model":"up-0""#), "{}", seen.body);
    env.stop().await;
}

#[tokio::test]
async fn sdk_streams_a_chat_completion_to_a_clean_end() {
    let env = boot(1).await;
    let client = sdk(&env);
    let whole = client.chat().create(chat_request("m")).await.unwrap();
    let whole_text = whole.choices[0].message.content.clone().unwrap();

    let mut req = chat_request("m");
    req.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = tokio::time::timeout(STEP, client.chat().create_stream(req))
        .await
        .expect("stream opens in time")
        .expect("stream opens");
    let (mut text, mut chunks, mut role, mut finish, mut usage) =
        (String::new(), 0, None, None, None);
    // Each `next` is bounded: a stream the SDK cannot see the end of hangs here.
    while let Some(item) = tokio::time::timeout(STEP, stream.next())
        .await
        .expect("next stream item (or the end) in time")
    {
        let chunk = item.expect("every chunk parses as a typed chunk");
        chunks += 1;
        assert_eq!(chunk.model, "up-0");
        assert_eq!(chunk.object, "chat.completion.chunk");
        for choice in &chunk.choices {
            role = role.or(choice.delta.role);
            finish = finish.or(choice.finish_reason);
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
        }
        if chunk.usage.is_some() {
            assert!(chunk.choices.is_empty(), "the usage chunk has no choices");
            usage = chunk.usage;
        }
    }
    assert_eq!(text, whole_text, "stream text is the whole answer's text");
    assert_eq!(text, answer_of(0));
    // role, 5 tokens, finish, usage: `[DONE]` itself is not a chunk.
    assert_eq!(chunks, 8);
    assert_eq!(role, Some(Role::Assistant));
    assert_eq!(finish, Some(FinishReason::Stop));
    assert_eq!(usage.expect("usage chunk").completion_tokens, 5);
    // The SDK ends on `[DONE]` or on the end of the body alike; the end it saw
    // was the `[DONE]` framing, as the raw bytes show.
    let (status, _, raw) = env.chat(true).await;
    assert_eq!(status, 200);
    assert!(raw.ends_with("\n\ndata: [DONE]\n\n"), "{raw}");
    env.stop().await;
}

#[tokio::test]
async fn sdk_embeds_as_floats_and_as_base64() {
    let env = boot(1).await;
    let client = sdk(&env);
    let inputs = ["alpha", "beta", "gamma"];
    let req = CreateEmbeddingRequestArgs::default()
        .model("m")
        .input(inputs)
        .build()
        .unwrap();
    let floats = client
        .embeddings()
        .create(req)
        .await
        .expect("float embeddings");
    assert_eq!(floats.model, "up-0");
    assert_eq!(floats.data.len(), inputs.len());
    for (i, e) in floats.data.iter().enumerate() {
        assert_eq!(e.index as usize, i);
        assert_eq!(e.embedding.len(), 16);
        let norm: f32 = e.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "unit vector, norm {norm}");
    }
    assert!(floats.usage.prompt_tokens > 0);
    let seen = env.mocks[0].stats().recent.last().cloned().unwrap();
    assert!(!seen.body.contains("encoding_format"), "{}", seen.body);

    // Official SDKs ask for base64; the field must reach the provider as sent
    // and its answer must come back as the SDK expects it.
    let req = CreateEmbeddingRequestArgs::default()
        .model("m")
        .input(inputs)
        .encoding_format(EncodingFormat::Base64)
        .build()
        .unwrap();
    let b64 = client
        .embeddings()
        .create_base64(req)
        .await
        .expect("base64 embeddings");
    let seen = env.mocks[0].stats().recent.last().cloned().unwrap();
    assert!(
        seen.body.contains(r#""encoding_format":"base64""#),
        "encoding_format passed through: {}",
        seen.body
    );
    assert_eq!(b64.data.len(), inputs.len());
    for (e, f) in b64.data.into_iter().zip(&floats.data) {
        let decoded: Vec<f32> = e.embedding.into();
        assert_eq!(&decoded, &f.embedding, "base64 decodes to the float vector");
    }
    env.stop().await;
}

#[tokio::test]
async fn sdk_sees_unknown_model_as_model_not_found() {
    let env = boot(1).await;
    let client = sdk(&env);
    let e = api_error(client.chat().create(chat_request("no-such-model")).await);
    assert_eq!(e.status_code.as_u16(), 404, "{e}");
    assert_eq!(e.api_error.code.as_deref(), Some("model_not_found"));
    assert_eq!(e.api_error.param.as_deref(), Some("model"));
    assert_eq!(e.api_error.r#type.as_deref(), Some("invalid_request_error"));
    assert!(e.api_error.message.contains("no-such-model"), "{e}");
    assert_eq!(requests(&env.mocks), 0, "no provider was asked");
    env.stop().await;
}

#[tokio::test]
async fn sdk_sees_an_invalid_parameter_as_400() {
    let env = boot(2).await;
    let client = sdk(&env);
    // A typed request is always well-formed JSON with a string `model`, so the
    // invalid value is one the provider rejects: an empty `input` array.
    let req = CreateEmbeddingRequestArgs::default()
        .model("m")
        .input(EmbeddingInput::StringArray(Vec::new()))
        .build()
        .unwrap();
    let e = api_error(client.embeddings().create(req).await);
    assert_eq!(e.status_code.as_u16(), 400, "{e}");
    assert_eq!(e.api_error.r#type.as_deref(), Some("invalid_request_error"));
    assert!(e.api_error.message.contains("input"), "{e}");
    assert_eq!(
        requests(&env.mocks),
        1,
        "the client's own error is neither failed over nor retried"
    );
    env.stop().await;
}

#[tokio::test]
async fn sdk_sees_a_provider_context_length_error_unchanged() {
    let env = boot(2).await;
    set_faults(
        &env.mocks,
        &Faults {
            error_rate: 1.0,
            error_status: 400,
            error_code: Some("context_length_exceeded".into()),
            ..Faults::default()
        },
    );
    let client = sdk(&env);
    let e = api_error(client.chat().create(chat_request("m")).await);
    assert_eq!(e.status_code.as_u16(), 400, "{e}");
    assert_eq!(
        e.api_error.code.as_deref(),
        Some("context_length_exceeded"),
        "{e}"
    );
    assert_eq!(e.api_error.r#type.as_deref(), Some("invalid_request_error"));
    assert_eq!(requests(&env.mocks), 1, "not failed over, not retried");
    env.stop().await;
}

#[tokio::test]
async fn sdk_sees_every_deployment_failing_as_503_in_bounded_time() {
    let env = boot(2).await;
    set_faults(
        &env.mocks,
        &Faults {
            error_rate: 1.0,
            error_status: 500,
            ..Faults::default()
        },
    );
    let client = sdk(&env);
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        client.chat().create(chat_request("m")),
    )
    .await
    .expect("the SDK gives up in bounded time");
    let elapsed = started.elapsed();
    let e = api_error(result);
    assert_eq!(e.status_code.as_u16(), 503, "{e}");
    // For 5xx async-openai does not parse the body: the message is Lifeline's
    // raw JSON error body.
    let body: serde_json::Value = serde_json::from_str(&e.api_error.message)
        .unwrap_or_else(|err| panic!("{err}: {}", e.api_error.message));
    let code = body["error"]["code"].as_str().unwrap_or("");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    match code {
        "all_deployments_failed" => assert!(message.contains("HTTP 500"), "{message}"),
        "no_deployment_available" => assert!(message.contains("`m`"), "{message}"),
        other => panic!("unexpected code {other:?} in {body}"),
    }
    // The SDK made 4 requests (3 retries, 1 s apart per Retry-After, despite
    // `x-should-retry: false`); each costs at most `max_attempts` (4) upstream
    // attempts. By the last one the breakers are usually open, so the error
    // the application finally sees is `no_deployment_available`.
    let upstream = requests(&env.mocks);
    assert!((2..=16).contains(&upstream), "{upstream} upstream attempts");
    assert!(
        elapsed < Duration::from_secs(20),
        "took {elapsed:?} ({upstream} upstream attempts)"
    );
    env.stop().await;
}

#[tokio::test]
async fn sdk_stream_cut_mid_answer_ends_in_an_error() {
    let env = boot(2).await;
    set_faults(
        &env.mocks,
        &Faults {
            cut_after_chunks: Some(3),
            ..Faults::default()
        },
    );
    let client = sdk(&env);
    let mut req = chat_request("m");
    req.stream = Some(true);
    let mut stream = tokio::time::timeout(STEP, client.chat().create_stream(req))
        .await
        .expect("stream opens in time")
        .expect("the stream is committed once content arrived");
    let (mut text, mut error) = (String::new(), None);
    while let Some(item) = tokio::time::timeout(STEP, stream.next())
        .await
        .expect("next stream item (or the end) in time")
    {
        match item {
            Ok(chunk) => {
                assert!(error.is_none(), "a chunk after the error: {chunk:?}");
                for choice in &chunk.choices {
                    text.push_str(choice.delta.content.as_deref().unwrap_or(""));
                    assert!(choice.finish_reason.is_none(), "{chunk:?}");
                }
            }
            // Lifeline ends a broken stream with `event: error` carrying an
            // OpenAI error body; async-openai ignores the event name and fails
            // to parse that body as a chunk, so it surfaces as a
            // deserialization error whose text holds the body.
            Err(e) => error = Some(e.to_string()),
        }
    }
    let error = error.expect("the broken stream yields an error, not a clean end");
    assert!(error.contains("stream_interrupted"), "{error}");
    assert!(!text.is_empty(), "some content arrived before the cut");
    assert!(
        answer_of(0).starts_with(&text) || answer_of(1).starts_with(&text),
        "{text:?}"
    );
    env.stop().await;
}
